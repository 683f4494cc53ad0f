"""Matches: two players, many games at once, alternating colours, SGF of every game, Elo with a 95 % CI.

A player is a ``Side``. ``genmove`` receives every game where that side is to move and answers them together,
so a network side runs *one* batched search over all its games (a tree slot per game, as self-play does) and
a GTP side asks all its engine processes at once (one process per concurrent game, answers read in threads).

- ``NetSide``: a checkpoint (or a live net) + MCTS. No root noise; the first ``temperature_moves`` moves of a
  game are sampled in proportion to visits with a per-(seed, game, move) uniform, so games differ and a
  match is reproducible; later moves are the most visited. Resigns when its root value stays below
  ``moves.resign_threshold`` for ``moves.resign_consecutive`` of its moves (``eval.resign``).
- ``GTPSide``: an external GTP engine (GnuGo at a level, another ``specmcts gtp``, any command line), driven
  through ``specmcts.play.gtp_client.GtpClient``. Our rules referee: an illegal answer loses the game (``X+F``).
  GnuGo is started as ``gtp_match.gnugo_spec`` starts it: Chinese rules, positional superko and
  ``--capture-all-dead`` (it removes dead stones before it passes).
- ``RandomSide``: uniform random moves that do not fill the mover's own eyes (``GoState.play_random``).

A game that ends by two passes or the length limit is judged twice (``gtp_match.judge_game``): by each GTP
side's ``final_score`` (GnuGo removes dead stones) and by our Tromp-Taylor count of the board as it stands.
The result is the engines' answer when they give a readable one, else our count; games where the two name
different winners are counted (``judge_disagreements``) and both judgements go into the SGF. Matches without
a GTP side (net against net, random) are scored by our count alone, the rules the nets were trained under.

Gating (``gate``): the candidate is adopted when its score against the current net reaches the threshold.
"""
from __future__ import annotations

import dataclasses
import shlex
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from games.go import BLACK, EMPTY, WHITE, GoRules, GoState, IllegalMoveError, action_to_gtp, gtp_to_action
from games.scoring import FINAL_SCORE, judge_game
from specmcts.play import elo as elo_module
from specmcts.config import Config, EvalConfig
from specmcts.play.gtp_client import DEFAULT_TIMEOUT_S, GtpClient, GtpClientError
from specmcts.play.gtp_client import gnugo_spec
from specmcts.engine.player import MoveRule, ResignStreak
from specmcts.engine.search import Search


UNREADABLE = -1  # a genmove answer that is no move: the side forfeits the game


class MatchError(RuntimeError):
    """A player failed (engine died, checkpoint unusable); the message is one line."""


def eval_temperature_moves(cfg: EvalConfig, board: int) -> int:
    return cfg.temperature_moves if cfg.temperature_moves > 0 else max(4, board * board // 16)


# -- players ----------------------------------------------------------------------------------------------------


class Side:
    name: str = "?"
    judges: bool = False  # answers final_score: its judgement of a finished game counts (GTP engines)

    def new_game(self, game: int, colour: int) -> None:
        """Game ``game`` starts; this side plays ``colour``."""

    def genmove(self, requests: list[tuple[int, GoState]]) -> list[tuple[int, str | None]]:
        """One move (action, SGF comment or None) for each ``(game, state)``; ``state`` must not be changed."""
        raise NotImplementedError

    def observe(self, game: int, colour: int, action: int) -> None:
        """The other side played ``action`` in ``game``."""

    def final_score(self, game: int) -> str | None:
        """Its ``final_score`` answer for finished game ``game`` (asked only when ``judges``); None: no answer."""
        return None

    def end_game(self, game: int) -> None:
        """Game ``game`` is over (release its slot)."""

    def close(self) -> None:
        pass


class NetSide(Side):
    """MCTS with a network: one ``Search`` with a tree slot per concurrent game."""

    def __init__(self, name: str, evaluator, cfg: Config, concurrent: int, seed: int = 0, sims: int | None = None,
                 cache=None):
        from specmcts.engine.nncache import NNCache

        self.name = name
        self.cfg = cfg
        self.rules = cfg.game.rules()
        self.sims = int(sims or cfg.eval.sims or cfg.search.sims)
        board = self.rules.size
        search_cfg = dataclasses.replace(cfg.search, sims=self.sims)
        if cache is None:
            cache = NNCache.for_board(cfg.evaluator.cache_entries, board)
        self.cache = cache
        self.evaluator = evaluator
        self.search = Search(self.rules, search_cfg, evaluator, cache, num_trees=max(1, concurrent))
        self.seed = int(seed)
        self.rule = MoveRule(seed, cfg.eval.temperature, eval_temperature_moves(cfg.eval, board))
        self.resign = ResignStreak(cfg.moves.resign_threshold, cfg.moves.resign_consecutive if cfg.eval.resign else 0)
        self._free = list(range(max(1, concurrent)))[::-1]
        self._slot: dict[int, int] = {}

    def new_game(self, game: int, colour: int) -> None:
        self._slot[game] = self._free.pop()
        self.resign.forget(game)

    def genmove(self, requests):
        slots = np.array([self._slot[g] for g, _ in requests], np.int32)
        for (g, state), slot in zip(requests, slots):
            self.search.reset(int(slot), state)
        self.search.run(slots, self.sims)
        out = []
        for (g, state), slot in zip(requests, slots):
            counts = self.search.visit_counts(int(slot))
            value = self.search.root_value(int(slot))
            action = self.rule.pick(counts, g, state.move_number)
            if self.resign.observe(g, value):
                action = self.rules.resign_action
            out.append((action, f"{self.name}: v={value:+.3f} n={int(counts.sum())}"))
        return out

    def end_game(self, game: int) -> None:
        self._free.append(self._slot.pop(game))
        self.resign.forget(game)


class GTPSide(Side):
    """An external engine speaking GTP: one process per concurrent game, asked in parallel threads."""

    judges = True

    def __init__(self, name: str, command: list[str], rules: GoRules, concurrent: int, setup: tuple[str, ...] = (),
                 log_path: Path | None = None, timeout: float = DEFAULT_TIMEOUT_S, seed: int | None = None):
        self.name = name
        self.seed = seed  # not None: each game starts with ``set_random_seed <seed + game>`` (GnuGo's GTP)
        self.command = list(command)
        self.setup = tuple(setup)  # GTP commands sent once to each new process (e.g. set_random_seed)
        self.log_path = log_path  # the engines' stderr is appended there (else discarded)
        self.timeout = timeout  # seconds per answer
        self.rules = rules
        self.engines: list[GtpClient] = []
        self._free: list[int] = []
        self._slot: dict[int, int] = {}
        self.concurrent = max(1, concurrent)
        self.pool = ThreadPoolExecutor(max_workers=self.concurrent)

    def _send(self, slot: int, line: str) -> str:
        try:
            return self.engines[slot].send(line)
        except (GtpClientError, OSError) as e:
            raise MatchError(f"{self.name} ({shlex.join(self.command)}): {str(e).splitlines()[0]}") from None

    def new_game(self, game: int, colour: int) -> None:
        if not self._free:
            try:
                stderr = open(self.log_path, "a") if self.log_path is not None else subprocess.DEVNULL
                try:
                    self.engines.append(GtpClient(self.command, stderr=stderr, timeout=self.timeout))
                finally:
                    if self.log_path is not None:
                        stderr.close()  # the child holds its own descriptor
            except OSError as e:
                raise MatchError(f"cannot start {self.name} ({shlex.join(self.command)}): {e}") from None
            for line in self.setup:
                self._send(len(self.engines) - 1, line)
            self._free.append(len(self.engines) - 1)
        slot = self._free.pop()
        self._slot[game] = slot
        self._send(slot, f"boardsize {self.rules.size}")
        self._send(slot, "clear_board")
        self._send(slot, f"komi {self.rules.komi:g}")
        if self.seed is not None:
            self._send(slot, f"set_random_seed {(self.seed + game) % (1 << 31)}")

    def genmove(self, requests):
        def ask(item):
            g, state = item
            colour = "b" if state.to_play == BLACK else "w"
            answer = self._send(self._slot[g], f"genmove {colour}").strip()
            try:
                return gtp_to_action(self.rules.size, answer), None
            except ValueError:
                return UNREADABLE, f"answered genmove with {answer[:80]!r}, not a vertex"  # forfeits the game

        return list(self.pool.map(ask, requests))

    def observe(self, game: int, colour: int, action: int) -> None:
        if action == self.rules.resign_action:
            return
        c = "b" if colour == BLACK else "w"
        self._send(self._slot[game], f"play {c} {action_to_gtp(self.rules.size, action)}")

    def final_score(self, game: int) -> str | None:
        try:
            return self.engines[self._slot[game]].send("final_score").strip()
        except (GtpClientError, OSError):
            return None

    def end_game(self, game: int) -> None:
        self._free.append(self._slot.pop(game))

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        for e in self.engines:
            e.close()
        self.engines = []


class RandomSide(Side):
    """Random moves that do not fill the mover's own eyes, from the kernels' RNG, seeded once here."""

    name = "random"

    def __init__(self, seed: int = 0):
        from native.board import seed_kernels

        seed_kernels(seed)

    def genmove(self, requests):
        return [(int(state.copy().play_random()), None) for _g, state in requests]


# -- the match ----------------------------------------------------------------------------------------------------


@dataclass
class GameResult:
    index: int
    black: str
    white: str
    winner: int  # BLACK, WHITE or EMPTY
    result: str
    moves: int
    a_colour: int
    judge: str | None = None  # 'final_score' or 'tromp-taylor'; None: no scoring (resignation, forfeit)
    tromp_taylor: str | None = None  # our count of the board as it stands
    final_score: dict = field(default_factory=dict)  # GTP side's name -> its final_score answer
    disagreement: bool = False  # final_score (the result) and our count name different winners
    end: str = ""  # passes | length limit | resignation | illegal move
    actions: list = field(default_factory=list)  # the moves played (a forfeited move is not among them)
    note: str = ""  # why a game ended early (a forfeit)
    seconds: float = 0.0
    sgf: str | None = None

    @property
    def a_score(self) -> float:
        if self.winner == EMPTY:
            return 0.5
        return 1.0 if self.winner == self.a_colour else 0.0


@dataclass
class MatchResult:
    a: str
    b: str
    games: list[GameResult] = field(default_factory=list)
    wall_s: float = 0.0
    stopped: bool = False  # stop_when ended the match early: ``games`` holds the finished ones
    opening: str = "the empty board"  # how the games began

    @property
    def wins(self) -> int:
        return sum(g.a_score == 1.0 for g in self.games)

    @property
    def losses(self) -> int:
        return sum(g.a_score == 0.0 for g in self.games)

    @property
    def draws(self) -> int:
        return sum(g.a_score == 0.5 for g in self.games)

    @property
    def score(self) -> float:
        return sum(g.a_score for g in self.games) / len(self.games) if self.games else 0.0

    def elo(self) -> elo_module.EloEstimate:
        """A's Elo relative to B."""
        return elo_module.estimate(self.wins, self.draws, self.losses)

    def summary(self) -> dict:
        a_black = [g for g in self.games if g.a_colour == BLACK]
        a_white = [g for g in self.games if g.a_colour == WHITE]
        scored = [g for g in self.games if g.judge]
        judges = {g.judge for g in scored}
        by_final_score = sum(g.judge == FINAL_SCORE for g in scored)
        return {
            "a": self.a, "b": self.b, **self.elo().as_dict(),
            "a_black_score": sum(g.a_score for g in a_black) / len(a_black) if a_black else None,
            "a_white_score": sum(g.a_score for g in a_white) / len(a_white) if a_white else None,
            "mean_game_length": float(np.mean([g.moves for g in self.games])) if self.games else 0.0,
            "resignations": sum(g.result.endswith("+R") for g in self.games),
            "judge": judges.pop() if len(judges) == 1 else ("mixed" if judges else None),
            "judged_by_final_score": by_final_score,
            "judged_by_tromp_taylor": len(scored) - by_final_score,
            "judge_disagreements": sum(g.disagreement for g in self.games),
            "distinct_games": self.distinct_games,
            "duplicate_games": len(self.games) - self.distinct_games,
            "opening": self.opening,
            "wall_s": round(self.wall_s, 3),
        }

    @property
    def distinct_games(self) -> int:
        """Games whose move sequences differ from every other game's (a repeated game is no new evidence)."""
        return len({tuple(g.actions) for g in self.games})


@dataclass
class _Live:
    index: int
    state: GoState
    black: Side
    white: Side
    moves: list = field(default_factory=list)
    comments: list = field(default_factory=list)
    result: str = ""
    winner: int = EMPTY
    note: str = ""  # why a game ended early (a forfeit), written as the SGF game comment
    end: str = ""
    started: float = 0.0


def opening_moves(rules: GoRules, plies: int, seed: int, pair: int) -> list[int]:
    """``plies`` random legal moves (never a pass) from the empty board, the same for a given (seed, pair)."""
    rng = np.random.default_rng([int(seed), int(pair), 0x0BE1])
    state = GoState(rules)
    moves = []
    for _ in range(plies):
        legal = [int(x) for x in state.legal_actions() if x != rules.pass_action]
        if not legal:
            break
        action = legal[int(rng.integers(len(legal)))]
        state.play(action)
        moves.append(action)
    return moves


def play_match(rules: GoRules, a: Side, b: Side, games: int, concurrent: int = 64, sgf_dir: str | Path | None = None,
               prefix: str = "game", progress: bool = False, first_game: int = 0, max_moves: int | None = None,
               on_game=None, stop_when=None, opening_plies: int = 0, seed: int = 0) -> MatchResult:
    """``games`` games between ``a`` and ``b``, ``a`` Black in even games; at most ``concurrent`` at once.
    ``opening_plies`` > 0: games 2k and 2k + 1 start from the same ``opening_moves(rules, plies, seed, k)``,
    ``a`` playing Black in one and White in the other, so that the games of a match are distinct.
    Writes ``<sgf_dir>/<prefix>-<i>.sgf`` for every game when ``sgf_dir`` is given. ``max_moves`` (default:
    the rules' limit) ends a game early, scored as it stands; ``on_game(GameResult)`` is called as each ends.
    ``stop_when()`` true (checked before each side's moves): the match ends there with the games finished so
    far (``stopped``); the ones in flight are abandoned, without an SGF.
    The one match loop: ``specmcts eval``, the run loop's Elo and gating, and ``gtp_match`` (engine against
    engine) all play through it."""
    from specmcts.sgf import write_sgf

    started = time.perf_counter()
    result = MatchResult(a.name, b.name)
    if opening_plies > 0:
        result.opening = (f"{opening_plies} random plies per pair of games (seed {seed}), each opening played "
                          f"with colours swapped")
    concurrent = max(1, min(concurrent, games))
    limit = min(max_moves or rules.max_moves, rules.max_moves)
    live: dict[int, _Live] = {}
    next_game = first_game
    end = first_game + games
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=games, unit="game", dynamic_ncols=True, leave=False, desc=f"{a.name} vs {b.name}")

    def start() -> None:
        nonlocal next_game
        i = next_game
        next_game += 1
        black, white = (a, b) if (i - first_game) % 2 == 0 else (b, a)
        g = live[i] = _Live(i, GoState(rules), black, white, started=time.perf_counter())
        black.new_game(i, BLACK)
        white.new_game(i, WHITE)
        for action in opening_moves(rules, opening_plies, seed, (i - first_game) // 2) if opening_plies else ():
            mover = g.state.to_play
            g.state.play(action)
            g.moves.append(action)
            g.comments.append("opening (random)")
            for side in (black, white):
                side.observe(i, mover, action)

    def finish(g: _Live) -> None:
        judgement = None
        if not g.result:
            g.winner = g.state.winner()
            g.result = g.state.result_string()
            g.end = "resignation" if g.state.resigned != EMPTY else (
                "passes" if g.state.consecutive_passes >= 2 else "length limit")
            if g.state.resigned == EMPTY:  # passes or the length limit: the GTP sides judge too
                judgement = judge_game(g.state, {s.name: s.final_score(g.index) for s in (g.black, g.white)
                                                 if s.judges})
                g.winner, g.result = judgement.winner, judgement.result
        g.black.end_game(g.index)
        g.white.end_game(g.index)
        del live[g.index]
        a_colour = BLACK if g.black is a else WHITE
        record = GameResult(g.index, g.black.name, g.white.name, g.winner, g.result, len(g.moves), a_colour,
                            end=g.end, actions=list(g.moves), note=g.note,
                            seconds=time.perf_counter() - g.started)
        if judgement is not None:
            record.judge, record.tromp_taylor = judgement.judge, judgement.tromp_taylor
            record.final_score, record.disagreement = judgement.scores, judgement.disagree
        result.games.append(record)
        if sgf_dir is not None:
            lines = ([g.note] if g.note else []) + (judgement.comment_lines() if judgement and judgement.scores else [])
            record.sgf = str(Path(sgf_dir) / f"{prefix}-{g.index:04d}.sgf")
            write_sgf(record.sgf, rules, g.moves, result=g.result,
                      players=(g.black.name, g.white.name), comments=g.comments,
                      game_comment="\n".join(lines) or None)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(score=f"{result.score:.2f}", refresh=False)
        if on_game is not None:
            on_game(record)

    try:
        while next_game < end and len(live) < concurrent:
            start()
        while live and not result.stopped:
            for side in (a, b):
                if stop_when is not None and stop_when():
                    result.stopped = True
                    break
                requests = [(g.index, g.state) for g in live.values()
                            if (g.black if g.state.to_play == BLACK else g.white) is side]
                if not requests:
                    continue
                answers = side.genmove(requests)
                for (i, _state), (action, comment) in zip(requests, answers):
                    g = live[i]
                    mover = g.state.to_play
                    other = g.white if mover == BLACK else g.black
                    try:
                        if action == UNREADABLE:
                            raise IllegalMoveError(comment)
                        g.state.play(action)
                    except IllegalMoveError as e:
                        g.winner = 3 - mover
                        g.result = f"{'W' if mover == BLACK else 'B'}+F"
                        g.end = "illegal move"
                        g.note = f"{side.name} forfeits with an illegal move ({e})"
                        finish(g)
                        if next_game < end:
                            start()
                        continue
                    g.moves.append(action)
                    g.comments.append(comment)
                    if action != rules.resign_action and not g.state.is_over:
                        other.observe(i, mover, action)
                    if g.state.is_over or g.state.move_number >= limit:
                        finish(g)
                        if next_game < end:
                            start()
    finally:
        if bar is not None:
            bar.close()
    result.games.sort(key=lambda r: r.index)
    result.wall_s = time.perf_counter() - started
    return result


# -- building players ------------------------------------------------------------------------------------------


def net_side(name: str, model, cfg: Config, concurrent: int, device: str = "cpu", seed: int = 0) -> NetSide:
    """A ``NetSide`` for a checkpoint path or a ``PolicyValueNet``."""
    from specmcts.engine.evaluator import make_evaluator
    from specmcts.engine.network import load_model

    if isinstance(model, (str, Path)):
        net, _meta = load_model(model, device="cpu", expect_board=cfg.game.board)
    else:
        net = model
    evaluator = make_evaluator(cfg, cfg.game.board, net, device=device)
    return NetSide(name, evaluator, cfg, concurrent, seed=seed)


def engine_opponent(spec: str) -> str | None:
    """The kind of opponent ``spec`` names when it is not a net: ``gnugo``, ``random`` or ``gtp``; None for a
    net (a checkpoint path or ``shipped``), the one kind that has a config of its own."""
    if spec in ("gnugo", "random"):
        return spec
    return "gtp" if spec.startswith("gtp:") else None


def opponent_side(spec: str, cfg: Config, concurrent: int, device: str = "cpu", gnugo_level: int | None = None,
                  seed: int = 0) -> Side:
    """``gnugo`` (at ``gnugo_level``, default ``eval.gnugo_level``), ``random``, ``gtp:<command line>``, a
    checkpoint path, or ``shipped`` (the net that ships for the board) (``engine_opponent`` tells which)."""
    rules = cfg.game.rules()
    kind = engine_opponent(spec)
    if kind == "gnugo":
        level = cfg.eval.gnugo_level if gnugo_level is None else gnugo_level
        try:
            gnugo = gnugo_spec(level)  # the one way GnuGo is started for matches
        except FileNotFoundError as e:
            raise MatchError(str(e)) from None
        return GTPSide(gnugo.name, list(gnugo.command), rules, concurrent, setup=gnugo.setup,
                       timeout=cfg.eval.gtp_timeout, seed=seed)
    if kind == "random":
        return RandomSide(seed)
    if kind == "gtp":
        command = shlex.split(spec[4:])
        if not command:
            raise MatchError("gtp: needs a command line, e.g. gtp:'gnugo --mode gtp --level 5'")
        return GTPSide(Path(command[0]).name, command, rules, concurrent, timeout=cfg.eval.gtp_timeout)
    from specmcts.engine.network import model_label, resolve_model

    spec = resolve_model(spec, cfg.game.board, flag="--opponent")
    return net_side(model_label(spec, cfg.game.board), spec, cfg, concurrent, device, seed=seed + 1)


def gate(score: float, threshold: float) -> bool:
    """AlphaGo Zero gating: adopt the candidate when it scores at least ``threshold``."""
    return score >= threshold


# -- `specmcts eval` ----------------------------------------------------------------------------------------------


def eval_run(cfg: Config, model: str, opponent: str, games: int, out: Path | None, device: str = "cpu",
             gnugo_level: int | None = None, progress: bool = False, stop_when=None,
             opponent_cfg: Config | None = None) -> dict:
    """Play ``model`` against ``opponent``; SGF under ``<out>/sgf/``; returns the summary (Elo of ``model``).
    ``stop_when()`` true: stop at the next move; the summary is of the finished games (``stop_reason``).
    ``opponent_cfg``: the opponent's own config (search, evaluator), e.g. the same net at other settings;
    the match itself (games, openings, judge) follows ``cfg``."""
    from specmcts.engine.network import CheckpointError, model_label
    from specmcts.threads import SEARCH, configure

    configure(cfg, SEARCH)
    rules = cfg.game.rules()
    concurrent = max(1, min(cfg.eval.concurrent, games))
    try:
        a = net_side(model_label(model, cfg.game.board), model, cfg, concurrent, device, seed=cfg.seed)
        b = opponent_side(opponent, opponent_cfg or cfg, concurrent, device, gnugo_level, seed=cfg.seed)
    except CheckpointError as e:
        raise MatchError(str(e)) from None
    if a.name == b.name:
        b.name = f"{b.name}'"
    sgf_dir = out / "sgf" if (out is not None and cfg.eval.sgf) else None
    prefix = time.strftime("%Y%m%d-%H%M%S") + f"-{a.name}-vs-{b.name}"
    try:
        result = play_match(rules, a, b, games, concurrent, sgf_dir, prefix=prefix, progress=progress,
                            stop_when=stop_when, opening_plies=cfg.eval.opening_plies, seed=cfg.seed)
    finally:
        a.close()
        b.close()
    summary = result.summary()
    summary["sims"] = a.sims
    if opponent_cfg is not None and opponent_cfg != cfg:
        summary["opponent_settings"] = {k: v for k, v in _differences(cfg, opponent_cfg)}
    summary["board"] = rules.size
    summary["sgf_dir"] = str(sgf_dir) if sgf_dir is not None else None
    summary["stop_reason"] = "interrupted" if result.stopped else "done"
    return summary


def _differences(a, b, prefix: str = ""):
    """(key, b's value) of every config value where ``b`` differs from ``a``, keys dotted."""
    import dataclasses

    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if dataclasses.is_dataclass(x):
            yield from _differences(x, y, f"{prefix}{f.name}.")
        elif x != y:
            yield f"{prefix}{f.name}", y


def format_eval_summary(s: dict) -> str:
    est = elo_module.estimate(s["wins"], s["draws"], s["losses"])
    colours = ""
    if s.get("a_black_score") is not None and s.get("a_white_score") is not None:
        colours = f" (as Black {100 * s['a_black_score']:.0f}%, as White {100 * s['a_white_score']:.0f}%)"
    judged = ""
    if s.get("judged_by_final_score") or s.get("judge_disagreements"):
        scored = s["judged_by_final_score"] + s["judged_by_tromp_taylor"]
        judged = (f", final_score judged {s['judged_by_final_score']}/{scored} games, "
                  f"{s['judge_disagreements']} disagree with Tromp-Taylor")
    stopped = " | stopped: interrupted (finished games kept)" if s.get("stop_reason") == "interrupted" else ""
    distinct = f" ({s['distinct_games']} distinct)" if "distinct_games" in s else ""
    settings = s.get("opponent_settings") or {}
    opponent = s["b"] + (f" ({', '.join(f'{k}={v}' for k, v in settings.items())})" if settings else "")
    return (f"eval: {s['a']} vs {opponent}: {est}{colours} over {s['games']} games{distinct}, mean length "
            f"{s['mean_game_length']:.1f}{judged}, {s['wall_s']:.1f} s{stopped}")
