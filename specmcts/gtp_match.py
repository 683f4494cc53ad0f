"""Full games between two GTP engines: specmcts against GnuGo (or Pachi, or another specmcts), both colours.

A referee ``GoState`` (our rules: area scoring, positional superko, suicide illegal) follows every game:
each ``genmove`` answer is checked and passed on to the other engine with ``play``. A game ends

- by two passes in a row, or at the rules' length limit (2·N² moves): then *both* engines are asked
  ``final_score`` and the result stands when they agree (same winner, same margin); a disagreement is
  recorded as a dispute with both answers, and the referee's Tromp-Taylor count (no dead stones removed)
  is written to the SGF (``judge_game``, shared with ``specmcts.evaluate``);
- by resignation (``X+R``), or by an illegal or unreadable move, which loses (``X+F``).

Every game is written as SGF (``<out>/game-NNN.sgf``) with both engines' scores in the game comment.
``play_match`` alternates colours and returns ``MatchGame`` records; ``summary`` condenses them.
Used by ``tools/gtp_vs_gnugo.py``; ``specmcts eval`` (``specmcts.evaluate``) starts GnuGo with ``gnugo_spec`` and
judges its games with ``judge_game``.
"""
from __future__ import annotations

import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from games.go import (BLACK, EMPTY, WHITE, GoRules, GoState, IllegalMoveError, action_to_gtp, gtp_to_action,
                      result_string)
from specmcts.gtp import parse_score
from specmcts.gtp_client import GTPEngine, GTPError, gnugo_command


@dataclass(frozen=True)
class EngineSpec:
    """How to start one engine: a display name, the command line, and GTP commands to send first."""

    name: str
    command: tuple[str, ...]
    setup: tuple[str, ...] = ()

    def start(self, log_path: Path | None = None) -> GTPEngine:
        stderr = open(log_path, "a") if log_path is not None else subprocess.DEVNULL
        try:
            engine = GTPEngine(list(self.command), stderr=stderr)
        finally:
            if log_path is not None:
                stderr.close()  # the child holds its own descriptor
        for line in self.setup:
            engine.send(line)
        return engine


def gnugo_spec(level: int = 1, seed: int = 1) -> EngineSpec:
    """GnuGo with our rules: Chinese (area) counting, positional superko, suicide forbidden (its default).
    ``--capture-all-dead`` makes it remove dead stones before passing, as area scoring without a dead-stone
    agreement phase wants. The seed makes it deterministic."""
    cmd = gnugo_command(level=level, chinese_rules=True, extra=("--positional-superko", "--capture-all-dead"))
    return EngineSpec(f"gnugo-l{level}", tuple(cmd), (f"set_random_seed {seed}",))


def specmcts_spec(visits: int = 16, board: int = 9, model: str | None = None, seed: int = 0,
                  extra: tuple[str, ...] = (), name: str = "specmcts") -> EngineSpec:
    """Our engine as a subprocess (``python -m specmcts gtp``); ``model``: a checkpoint, 'shipped' or
    'fresh' (None: the engine's default, the net that ships for the board)."""
    cmd = [sys.executable, "-m", "specmcts", "gtp", "--board", str(board), "--visits", str(visits),
           "--seed", str(seed)]
    if model:
        cmd += ["--model", model]
    return EngineSpec(name, tuple(cmd) + tuple(extra))


@dataclass
class MatchGame:
    index: int
    black: str
    white: str
    moves: list[str] = field(default_factory=list)  # GTP vertices
    end: str = ""  # passes | length limit | resignation | illegal move | engine error
    result: str | None = None  # 'B+3.5', 'W+R', '0', 'B+F' ...; the agreed one when both engines scored
    scores: dict[str, str] = field(default_factory=dict)  # engine name -> its final_score answer
    agreed: bool | None = None  # None: no scoring was needed (resignation, forfeit)
    judgement: list[str] = field(default_factory=list)  # both engines' final_score and our count (Judgement)
    sgf: str | None = None
    seconds: float = 0.0
    note: str = ""

    @property
    def winner(self) -> str | None:
        """Name of the winning engine, None for a draw or no result."""
        if not self.result or self.result == "0":
            return None
        return self.black if self.result.upper().startswith("B") else self.white

    def as_dict(self) -> dict:
        d = asdict(self)
        d["winner"] = self.winner
        return d


def _colour(c: int) -> str:
    return "B" if c == BLACK else "W"


def play_game(black: GTPEngine, white: GTPEngine, names: tuple[str, str], size: int = 9, komi: float = 7.5,
              index: int = 0, sgf_path: Path | None = None, max_moves: int | None = None) -> MatchGame:
    """One game to the end; ``names`` are (black, white). ``max_moves`` (default: the rules' limit) ends a
    game early, scored as it stands."""
    rules = GoRules(size, komi)
    game = MatchGame(index, names[0], names[1])
    start = time.perf_counter()
    engines = {BLACK: black, WHITE: white}
    limit = min(max_moves or rules.max_moves, rules.max_moves)
    state = GoState(rules)
    actions: list[int] = []
    try:
        for engine in (black, white):
            engine.send(f"boardsize {size}")
            engine.send("clear_board")
            engine.send(f"komi {komi:g}")
        while True:
            colour = state.to_play
            mover, other = engines[colour], engines[3 - colour]
            reply = mover.send(f"genmove {_colour(colour).lower()}").strip()
            if reply.lower() == "resign":
                game.end, game.result = "resignation", f"{_colour(3 - colour)}+R"
                actions.append(rules.resign_action)
                break
            try:
                action = gtp_to_action(size, reply)
                if action == rules.resign_action:
                    raise ValueError(reply)
                state.play(action)
            except (ValueError, IllegalMoveError) as e:
                game.end, game.result = "illegal move", f"{_colour(3 - colour)}+F"
                game.note = f"{names[0] if colour == BLACK else names[1]} played {reply!r}: {e}"
                break
            actions.append(action)
            game.moves.append(action_to_gtp(size, action))
            try:
                other.send(f"play {_colour(colour).lower()} {reply}")
            except GTPError as e:
                game.end, game.result = "illegal move", f"{_colour(colour)}+F"
                game.note = f"{names[1] if colour == BLACK else names[0]} rejected {reply}: {e}"
                break
            if state.is_over or state.move_number >= limit:
                game.end = "passes" if state.consecutive_passes >= 2 else "length limit"
                break
        if game.end in ("passes", "length limit"):
            for name, engine in zip(names, (black, white)):
                game.scores[name] = engine.send("final_score").strip()
            judgement = judge_game(state, game.scores)
            game.agreed = judgement.judge == FINAL_SCORE
            game.result = judgement.result
            game.judgement = judgement.comment_lines()
            if not game.agreed:
                game.note = "final_score disputed; result is the Tromp-Taylor count as the board stands"
    except (GTPError, ValueError) as e:
        game.end = game.end or "engine error"
        game.note = f"{type(e).__name__}: {e}"
    game.seconds = time.perf_counter() - start
    if sgf_path is not None:
        game.sgf = str(sgf_path)
        _write_game_sgf(sgf_path, rules, actions, game)
    return game


FINAL_SCORE, TROMP_TAYLOR = "final_score", "tromp-taylor"


def read_final_score(answer: str | None) -> float | None:
    """An engine's ``final_score`` answer as Black's margin; None when it is not a score (no answer,
    ``W+R``, an error text)."""
    try:
        return None if answer is None else parse_score(answer)
    except ValueError:
        return None


@dataclass(frozen=True)
class Judgement:
    """How a finished game (two passes or the length limit) was scored."""

    result: str  # the result that counts: 'B+3.5', 'W+12', '0'
    winner: int  # BLACK, WHITE or EMPTY (draw)
    judge: str  # FINAL_SCORE (the engines' answer) or TROMP_TAYLOR (our count of the board as it stands)
    tromp_taylor: str  # our count, always
    scores: dict  # engine name -> its final_score answer (None: it gave none)
    disagree: bool  # the final_score that counts and the Tromp-Taylor count name different winners

    def comment_lines(self) -> list[str]:
        """The two judgements, for an SGF comment."""
        lines = [f"final_score by {name}: {answer if answer is not None else '(no answer)'}"
                 for name, answer in self.scores.items()]
        lines.append(f"Tromp-Taylor count (board as it stands): {self.tromp_taylor}")
        if self.disagree:
            lines.append(f"final_score and the Tromp-Taylor count disagree on the winner; the result is {self.result} "
                         "by final_score")
        else:
            lines.append(f"result {self.result} by {self.judge}")
        return lines


def judge_game(state: GoState, scores: dict[str, str | None]) -> Judgement:
    """Judge a game that ended by passes or by the length limit: by the engines' ``final_score`` answers
    (``scores``: engine name -> answer) when there is at least one, all are readable scores and all agree;
    otherwise by our Tromp-Taylor count of the board as it stands (no dead stones removed)."""
    ours, our_winner = state.result_string(), state.winner()
    values = [read_final_score(answer) for answer in scores.values()]
    if values and None not in values and max(values) - min(values) < 1e-6:
        v = values[0]
        winner = EMPTY if v == 0 else (BLACK if v > 0 else WHITE)
        result = result_string(v)
        return Judgement(result, winner, FINAL_SCORE, ours, dict(scores), winner != our_winner)
    return Judgement(ours, our_winner, TROMP_TAYLOR, ours, dict(scores), False)


def _write_game_sgf(path: Path, rules: GoRules, actions: list[int], game: MatchGame) -> None:
    from specmcts.sgf import write_sgf

    lines = [f"{game.black} (B) vs {game.white} (W): {game.end}"] + game.judgement
    if game.note:
        lines.append(game.note)
    result = game.result if game.result and not game.result.endswith("+F") else None
    props = {"RE": game.result} if game.result and game.result.endswith("+F") else None
    write_sgf(path, rules, actions, result=result, players=(game.black, game.white),
              game_comment="\n".join(lines), properties=props, validate=False)


def play_match(a: EngineSpec, b: EngineSpec, games: int = 2, size: int = 9, komi: float = 7.5,
               out: Path | None = None, max_moves: int | None = None, progress=None) -> list[MatchGame]:
    """``games`` games, ``a`` Black in the even-numbered ones; both engines are started once and reused
    (``clear_board`` between games). SGF and engine logs go under ``out`` when given."""
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
    engine_a = a.start(out / f"{a.name}.log" if out else None)
    try:
        engine_b = b.start(out / f"{b.name}.log" if out else None)
    except BaseException:
        engine_a.close()
        raise
    results = []
    try:
        for i in range(games):
            (black, bn), (white, wn) = ((engine_a, a.name), (engine_b, b.name)) if i % 2 == 0 else \
                ((engine_b, b.name), (engine_a, a.name))
            sgf = out / f"game-{i:03d}.sgf" if out else None
            game = play_game(black, white, (bn, wn), size, komi, i, sgf, max_moves)
            results.append(game)
            if progress is not None:
                progress(game)
            if game.end == "engine error":
                break
    finally:
        engine_a.close()
        engine_b.close()
    return results


def summary(games: list[MatchGame], name: str) -> dict:
    """Wins/losses/draws of engine ``name``, scoring agreement, moves and time."""
    played = [g for g in games if g.result]
    wins = sum(g.winner == name for g in played)
    draws = sum(g.result == "0" for g in played)
    scored = [g for g in games if g.agreed is not None]
    return {
        "engine": name,
        "games": len(games),
        "wins": wins,
        "losses": len(played) - wins - draws,
        "draws": draws,
        "scored": len(scored),
        "agreed": sum(bool(g.agreed) for g in scored),
        "errors": sum(g.end in ("engine error", "illegal move") for g in games),
        "moves": sum(len(g.moves) for g in games),
        "seconds": sum(g.seconds for g in games),
    }


def format_table(games: list[MatchGame]) -> str:
    head = f"{'game':>4}  {'black':<12} {'white':<12} {'moves':>5}  {'end':<12} {'result':<8} {'agreed':<6}  scores"
    rows = [head]
    for g in games:
        agreed = "-" if g.agreed is None else ("yes" if g.agreed else "NO")
        scores = ", ".join(f"{n}: {s}" for n, s in g.scores.items())
        rows.append(f"{g.index:>4}  {g.black:<12} {g.white:<12} {len(g.moves):>5}  {g.end:<12} "
                    f"{g.result or '-':<8} {agreed:<6}  {scores}")
    return "\n".join(rows)


def format_summary(s: dict, opponent: str) -> str:
    return (f"{s['engine']} vs {opponent}: {s['wins']}-{s['losses']}-{s['draws']} (W-L-D) in {s['games']} games, "
            f"final_score agreed {s['agreed']}/{s['scored']}, {s['errors']} errors, {s['moves']} moves, "
            f"{s['seconds']:.1f} s")


def parse_command(text: str) -> tuple[str, ...]:
    return tuple(shlex.split(text))
