"""Self-play: many concurrent games in one process, one evaluator, one NN cache, the speculation pipeline.

Writes under the run directory: ``sgf/*.sgf``, ``data/*.npz`` training shards and
``tb/`` TensorBoard scalars. Randomness is drawn per (seed, game, move number), so a game's record does
not depend on how its searches were scheduled (speculation depth, batch composition, concurrency).
"""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from games.go import BLACK, EMPTY, GoRules, GoState, action_to_gtp
from specmcts.atomic import atomic_open, remove_stale_temporaries
from specmcts.stopping import notice_if_slow, say
from specmcts.config import AUTO, Config, dirichlet_alpha, pass_from, temperature_moves
from specmcts.engine.player import FULL_SEARCH, GUMBEL, PER_GAME, MoveRule, ResignStreak, draw, rng, root_noise
from specmcts.engine.search import Search
from specmcts.engine.spec_shape import measured_cost, plan_speculation, speculation_trees
from specmcts.engine.speculation import Pipeline, RootSetup, game_phase

ETA_AFTER_S = 20.0  # seconds of self-play before the time the games will take is estimated (said if hours)
SHARD_VERSION = 2  # 2: ownership, score, aux_weight and policy_weight (version 1 shards still load)


class SelfPlayPolicy:
    """Move picking, search budget and root randomness for self-play, as pure functions of (seed, game,
    move number) and the tree.

    ``search.root: puct``: visit counts, a temperature pick with a pre-drawn uniform, Dirichlet noise, the
    visit distribution as the policy target. ``gumbel``: Gumbel noise drawn per (game, move), sequential
    halving, the move the halving leaves, the improved policy as the target. Playout cap randomization
    (``moves.fast_sims`` > 0): whether a move gets the full search is drawn per (game, move); fast moves
    have no root noise and their policy target weight is 0."""

    def __init__(self, cfg: Config, rules: GoRules):
        self.seed = cfg.seed
        self.sims = cfg.search.sims
        self.moves = cfg.moves
        self.rules = rules
        self.gumbel = cfg.search.root == "gumbel"
        self.rule = MoveRule(cfg.seed, cfg.moves.temperature, temperature_moves(cfg.moves, rules.size))
        self.alpha = dirichlet_alpha(cfg.moves, rules.size)
        self.pass_from = pass_from(cfg.moves, rules.size)
        self.resign = ResignStreak(cfg.moves.resign_threshold, cfg.moves.resign_consecutive)

    def temperature(self, move_number: int) -> float:
        return self.rule.temperature(move_number)

    def uniform(self, game: int, move_number: int) -> float:
        return self.rule.uniform(game, move_number)

    def full_search(self, game, move_number: int) -> bool:
        """Playout cap randomization: does this move get the full search (and a trained policy target)?"""
        m = self.moves
        if m.fast_sims <= 0:
            return True
        return draw(self.seed, int(game), move_number, FULL_SEARCH) < m.full_search_fraction

    def pick(self, game, move_number: int, search: Search, slot: int) -> int:
        if self.gumbel:
            return search.gumbel_action(slot)
        return self.rule.pick(search.visit_counts(slot), game, move_number)

    def greedy(self, game, move_number: int) -> bool:
        """PUCT moves after the temperature moves are the most visited root action."""
        return not self.gumbel and self.rule.greedy(move_number)

    def target(self, search: Search, slot: int) -> np.ndarray:
        """The policy training target of a finished search (float32 [A], sums to 1)."""
        if self.gumbel:
            return search.improved_policy(slot)
        counts = search.visit_counts(slot)
        total = counts.sum()
        return (counts / total).astype(np.float32) if total else counts.astype(np.float32)

    def root(self, game, state: GoState) -> RootSetup:
        m = state.move_number
        full = self.full_search(game, m)
        setup = RootSetup(sims=self.sims if full else self.moves.fast_sims, no_pass=m < self.pass_from)
        if self.gumbel:
            legal = state.legal_mask()
            g = rng(self.seed, game, m, GUMBEL).gumbel(size=legal.shape[0]).astype(np.float32)
            setup.gumbel = np.where(legal, g, 0.0).astype(np.float32)
        elif full and self.moves.dirichlet_fraction > 0:
            setup.noise = root_noise(self.seed, game, state, self.alpha)
            setup.noise_fraction = self.moves.dirichlet_fraction
        return setup

    def no_resign(self, game: int) -> bool:
        return draw(self.seed, int(game), 0, PER_GAME) < self.moves.no_resign_fraction


@dataclass
class GameRecord:
    index: int
    state: GoState
    no_resign: bool
    moves: list = field(default_factory=list)
    features: list = field(default_factory=list)  # uint8 [C, N, N] per move
    targets: list = field(default_factory=list)  # float32 [A] policy target per move
    policy_weights: list = field(default_factory=list)  # 1: full search, trained on; 0: fast search
    to_play: list = field(default_factory=list)
    root_values: list = field(default_factory=list)
    comments: list = field(default_factory=list)
    move_seconds: list = field(default_factory=list)  # wall time per move (latency)
    move_steps: list = field(default_factory=list)  # evaluator batches per move (latency, noise-free)
    would_resign: int = EMPTY  # in a no-resign game: who would have resigned first
    started: float = 0.0
    last_decision: float = 0.0
    last_step: int = 0
    result: str = ""
    winner: int = EMPTY


def final_position_targets(records: list[GameRecord]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The auxiliary targets of every move of ``records``, from the Tromp-Taylor count of each game's final
    position and the view of the side to move: ``ownership`` int8 [n, N, N] (+1 the mover's), ``score``
    float32 [n] (the mover's area minus the opponent's, komi included) and ``aux_weight`` float32 [n]
    (0 for a resigned game, whose final board is not a finished position; its targets are zeros)."""
    ownership, score, weight = [], [], []
    for r in records:  # per game; the moves of a game are arrays
        counted = float(r.state.resigned == EMPTY)
        sign = np.where(np.asarray(r.to_play) == BLACK, 1, -1).astype(np.int8) * np.int8(counted)
        ownership.append(r.state.ownership()[None] * sign[:, None, None])
        score.append(np.float32(r.state.score()) * sign)
        weight.append(np.full(len(sign), counted, np.float32))
    return (np.concatenate(ownership).astype(np.int8), np.concatenate(score).astype(np.float32),
            np.concatenate(weight))


class RunWriter:
    """SGF files, training shards and TensorBoard scalars of a run directory."""

    def __init__(self, out: Path | None, rules: GoRules, model_id: str, shard_games: int, tensorboard: bool = True):
        self.out = out
        self.rules = rules
        self.model_id = model_id
        self.shard_games = max(1, shard_games)
        self.pending: list[GameRecord] = []
        self.written: set[int] = set()  # games handed to a shard (pending or flushed), by index
        self.shards_written = 0
        self.tb = None
        # Names carry a session stamp, so a second session in the same run directory adds, never overwrites.
        self.session = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
        if out is not None:
            (out / "sgf").mkdir(parents=True, exist_ok=True)
            (out / "data").mkdir(parents=True, exist_ok=True)
            if tensorboard:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out / "tb"))
        self._next_shard = 0

    def game(self, rec: GameRecord, games_done: int) -> None:
        if self.out is None:
            return
        from specmcts.sgf import write_sgf

        write_sgf(
            self.out / "sgf" / f"{self.session}-{rec.index:06d}.sgf",
            self.rules,
            rec.moves,
            result=rec.result,
            players=(f"specmcts {self.model_id}", f"specmcts {self.model_id}"),
            comments=rec.comments,
        )
        self.pending.append(rec)
        self.written.add(rec.index)
        if len(self.pending) >= self.shard_games:
            self.flush()
        if self.tb is not None:
            self.tb.add_scalar("game/length", len(rec.moves), games_done)
            self.tb.add_scalar("game/black_win", 1.0 if rec.winner == BLACK else 0.0, games_done)
            self.tb.add_scalar("game/latency_s", sum(rec.move_seconds), games_done)
            if rec.move_seconds:
                self.tb.add_scalar("game/move_latency_ms", 1000 * sum(rec.move_seconds) / len(rec.move_seconds), games_done)

    def flush(self) -> None:
        if self.out is None or not self.pending:
            return
        feats = np.stack([f for r in self.pending for f in r.features])
        policy = np.stack([p for r in self.pending for p in r.targets]).astype(np.float32)
        value = np.array([r.state.result_for(c) for r in self.pending for c in r.to_play], np.float32)
        move = np.array([i for r in self.pending for i in range(len(r.features))], np.int16)
        policy_weight = np.array([w for r in self.pending for w in r.policy_weights], np.float32)
        ownership, score, aux_weight = final_position_targets(self.pending)
        path = self.out / "data" / f"{self.session}-{self._next_shard:04d}.npz"
        with atomic_open(path) as fh:
            np.savez_compressed(
                fh, features=feats, policy=policy, value=value, move_number=move,
                policy_weight=policy_weight, ownership=ownership, score=score, aux_weight=aux_weight,
                board_size=np.int32(self.rules.size), komi=np.float32(self.rules.komi),
                rules=np.array("area/positional-superko"), model_id=np.array(self.model_id),
                created=np.float64(time.time()), version=np.int32(SHARD_VERSION),
            )
        self._next_shard += 1
        self.shards_written += 1
        self.pending = []

    def scalars(self, values: dict, step: int) -> None:
        if self.tb is None:
            return
        for k, v in values.items():
            if v is not None and np.isfinite(v):
                self.tb.add_scalar(k, v, step)

    def cache_by_move(self, cache) -> None:
        """NN cache hit rate by move number: one curve whose step axis is the move number (compare runs
        with and without speculation in TensorBoard)."""
        if self.tb is None or not getattr(cache, "enabled", False):
            return
        hits, misses = cache.hits_by_move, cache.misses_by_move
        for m in np.flatnonzero(hits + misses):
            self.tb.add_scalar("cache_by_move/hit_rate", hits[m] / (hits[m] + misses[m]), int(m))

    def close(self) -> None:
        self.flush()
        if self.tb is not None:
            self.tb.flush()
            self.tb.close()


class SelfPlay:
    """Plays ``cfg.selfplay.games`` games, ``cfg.selfplay.concurrent`` at a time, speculating
    ``cfg.speculation.k`` moves deep."""

    def __init__(self, cfg: Config, evaluator, cache, out: Path | None = None, model_id: str = "fresh",
                 progress: bool = False, tensorboard: bool = True):
        self.cfg = cfg
        self.rules = cfg.game.rules()
        self.evaluator = evaluator
        self.cache = cache
        self.concurrent = max(1, min(cfg.selfplay.concurrent, cfg.selfplay.games))
        auto = cfg.speculation.k == AUTO
        self.k = 0 if auto else cfg.speculation.k
        width, trees, stages = cfg.speculation.width, speculation_trees(cfg, self.k), cfg.speculation.stages
        self.auto = None  # SpeculationPlan of --speculate auto
        if auto:
            with (notice_if_slow("selfplay: --speculate auto: measuring the evaluator's time per batch size "
                                 "(once, at start)", after=1.0) if progress else contextlib.nullcontext()):
                self.auto = plan_speculation(measured_cost(evaluator), cfg.search.leaves_per_tree, self.concurrent,
                                             int(evaluator.max_batch))
            self.k, width, trees, stages = self.auto.k, self.auto.width, self.auto.trees, self.auto.stages
        self.search = Search(self.rules, cfg.search, evaluator, cache,
                             num_trees=self.concurrent * trees + int(cfg.search.tree_reuse))  # reuse needs one spare slot
        self.policy = SelfPlayPolicy(cfg, self.rules)
        self.pipeline = Pipeline(self.search, self.k, self.policy, tree_reuse=cfg.search.tree_reuse,
                                 width=width, trees=trees, sure=cfg.speculation.sure,
                                 stages=stages)
        self.writer = RunWriter(out, self.rules, model_id, cfg.selfplay.shard_games, tensorboard)
        self.progress = progress
        self.max_moves = cfg.selfplay.max_moves or self.rules.max_moves
        self.records: list[GameRecord] = []  # finished games, in order of completion
        self.steps = 0
        self.started = time.perf_counter()
        self._bar = None
        self.report_every = 1.0  # seconds between progress-bar and TensorBoard updates
        self.stop_requested = False  # set (e.g. by a signal handler): stop after this batch, keep what finished
        self.stop_when = None  # or a callable saying the same (another process's request: an Event's is_set)

    # -- one decision ----------------------------------------------------------------------------
    def _decide(self, rec: GameRecord) -> bool:
        """Level 0 of ``rec`` is done: pick, record and play the move. Returns True if the game ended."""
        g = rec.index
        state = self.pipeline.root(g)
        slot = self.pipeline.slot(g)
        counts = self.pipeline.visit_counts(g)
        value = self.pipeline.root_value(g)
        m = state.move_number
        action = self.policy.pick(g, m, self.search, slot)
        now = time.perf_counter()
        rec.move_seconds.append(now - rec.last_decision)
        rec.move_steps.append(self.steps - rec.last_step)
        rec.last_decision, rec.last_step = now, self.steps

        mover = state.to_play
        resign = self.policy.resign.observe((g, mover), value)
        if resign and rec.no_resign:
            if rec.would_resign == EMPTY:
                rec.would_resign = mover
            resign = False
        if resign:
            action = self.rules.resign_action

        total = counts.sum()
        rec.features.append(state.features(np.uint8))
        rec.targets.append(self.policy.target(self.search, slot))
        rec.policy_weights.append(1.0 if self.policy.full_search(g, m) else 0.0)
        rec.to_play.append(mover)
        rec.root_values.append(value)
        rec.moves.append(action)
        top = np.argsort(-counts, kind="stable")[:3]
        rec.comments.append(
            f"v={value:+.3f} n={int(total)} " + " ".join(f"{action_to_gtp(self.rules.size, int(a))}:{int(counts[a])}" for a in top if counts[a] > 0)
        )
        after = state.copy()
        after.play(action)
        over = after.is_over or after.move_number >= self.max_moves
        self.pipeline.advance(g, action, None if over else after)
        rec.state = after
        return over

    def _finish(self, rec: GameRecord) -> None:
        rec.winner = rec.state.winner()
        rec.result = rec.state.result_string()
        for colour in (BLACK, 3 - BLACK):
            self.policy.resign.forget((rec.index, colour))
        self.records.append(rec)
        self.writer.game(rec, len(self.records))

    # -- the loop --------------------------------------------------------------------------------
    def run(self) -> dict:
        total_games = self.cfg.selfplay.games
        self.started = started = time.perf_counter()
        live: dict[int, GameRecord] = {}
        next_game = 0
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = self._bar = tqdm(total=total_games, unit="game", dynamic_ncols=True, leave=False)

        def start_game():
            nonlocal next_game
            rec = GameRecord(index=next_game, state=GoState(self.rules), no_resign=self.policy.no_resign(next_game))
            rec.started = rec.last_decision = time.perf_counter()
            rec.last_step = self.steps
            live[next_game] = rec
            self.pipeline.start(next_game, rec.state)
            next_game += 1

        while next_game < total_games and len(live) < self.concurrent:
            start_game()
        last_report = started
        said_eta = False
        eta_from = None  # (time, sims) at the end of the first batch: the rate the estimate uses leaves out
        # that batch, which compiles the kernels in a first run
        while live and not self.stop_requested:
            if self.stop_when is not None and self.stop_when():
                self.stop_requested = True
                break
            # A commit can hand over a search that is already complete: decide until nothing is ready.
            ready = self.pipeline.ready()
            while ready:
                for g in ready:
                    rec = live[g]
                    if self._decide(rec):
                        del live[g]
                        self._finish(rec)
                        if bar is not None:
                            bar.update(1)
                        if next_game < total_games:
                            start_game()
                ready = self.pipeline.ready()
            if not live:
                break
            if self.steps == 0 and self.progress:
                with notice_if_slow("selfplay: the first batch: a first run compiles the search kernels (up to a "
                                    "minute; numba caches them for the next runs)"):
                    self.pipeline.step()
            else:
                self.pipeline.step()
            self.steps += 1
            now = time.perf_counter()
            if eta_from is None:
                eta_from = (now, self.search.stats.leaves)
            if now - last_report >= self.report_every:
                last_report = now
                summary = self.summary(now - started)
                if self.progress and not said_eta and now - eta_from[0] >= ETA_AFTER_S:
                    rate = (self.search.stats.leaves - eta_from[1]) / (now - eta_from[0])
                    said_eta = self._say_if_hours(summary, live, total_games, rate)
                if bar is not None:  # moves played so far, games in progress included
                    moves = summary["moves"] + sum(len(r.moves) for r in live.values())
                    bar.set_postfix(moves=moves, sims_s=f"{summary['sims_per_s']:.0f}",
                                    hit=f"{summary['cache_hit_rate']:.2f}", refresh=True)
                self.writer.scalars(self._tb_scalars(summary), self.search.stats.leaves)
        return self.finish(interrupted=self.stop_requested)

    def _say_if_hours(self, summary: dict, live: dict, total_games: int, rate: float) -> bool:
        """Once the speed is known (``rate``: sims/s since the first batch): when the games will take hours,
        say so (and, on a CPU, what is quicker)."""
        moves = summary["moves"] + sum(len(r.moves) for r in live.values())
        if summary["sims"] == 0 or rate <= 0:
            return False
        length = summary["mean_game_length"] or self.rules.size * self.rules.size  # until a game has ended
        m, sims = self.cfg.moves, self.cfg.search.sims
        per_move = (summary["sims"] / moves if moves else  # until a move is played: what the config asks
                    m.full_search_fraction * sims + (1 - m.full_search_fraction) * m.fast_sims if m.fast_sims
                    else sims)
        left = max(0.0, total_games * length - moves) * per_move / rate
        if left >= 3600:
            device = str(getattr(self.evaluator, "device", "cpu"))
            hint = ("; on a CPU, `specmcts selfplay --board N` with no --config plays the small CPU defaults"
                    if device == "cpu" else "")
            say(f"selfplay: at {rate:.0f} sims/s on {device}, the {total_games} games will take "
                f"about {left / 3600:.1f} hours{hint}")
        return True

    def finish(self, interrupted: bool = False) -> dict:
        """Write what is finished (the last, partial shard: the summary counts it), close, summarise. After
        an interrupt (``run`` raised KeyboardInterrupt) the games in flight are lost, every finished one is
        kept, in its SGF and in a shard."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        for rec in self.records:  # a game an interrupt caught between its SGF and its shard entry
            if rec.index not in self.writer.written:
                self.writer.game(rec, len(self.records))
        self.writer.flush()
        summary = self.summary(time.perf_counter() - self.started)
        summary["stop_reason"] = "interrupted" if interrupted else "done"
        self.writer.scalars(self._tb_scalars(summary), self.search.stats.leaves)
        self.writer.cache_by_move(self.cache)
        self.writer.close()
        self.search.close()  # the forward thread of search.overlap
        return summary

    # -- reporting -------------------------------------------------------------------------------
    def summary(self, wall: float) -> dict:
        recs = self.records
        moves = sum(len(r.moves) for r in recs)
        st = self.search.stats
        spec = self.pipeline.stats
        resigned = [r for r in recs if r.state.resigned != EMPTY]
        false_resign = [r for r in recs if r.no_resign and r.would_resign != EMPTY and r.winner == r.would_resign]
        no_resign_would = [r for r in recs if r.no_resign and r.would_resign != EMPTY]
        move_seconds = [t for r in recs for t in r.move_seconds]
        move_steps = [t for r in recs for t in r.move_steps]
        out = {
            "games": len(recs),
            "moves": moves,
            "sims": st.leaves,
            "wall_s": round(wall, 3),
            "sims_per_s": st.leaves / wall if wall > 0 else 0.0,
            "evals": st.evals,
            "forwards": int(st.batch_rows[1:].sum()),  # evaluator calls (an all-cached step makes none)
            "evals_per_s": st.evals / wall if wall > 0 else 0.0,
            "cache_hit_rate": st.cache_hits / lookups if (lookups := st.cache_hits + st.evals + st.shared_rows) else 0.0,
            "shared_rows": st.shared_rows,  # misses answered by the same input elsewhere in their batch
            "mean_game_length": moves / len(recs) if recs else 0.0,
            "black_win_rate": sum(r.winner == BLACK for r in recs) / len(recs) if recs else 0.0,
            "resign_rate": len(resigned) / len(recs) if recs else 0.0,
            "false_resign_rate": len(false_resign) / len(no_resign_would) if no_resign_would else 0.0,
            "speculate": self.k,
            "speculation_width": self.pipeline.width,
            "speculation_trees": self.pipeline.trees,
            "speculation_stages": self.pipeline.stages,
            "speculation_auto": self.auto is not None,
            "sure_moves": spec.sure_moves,  # moves played whose search was sure before its end
            "prediction_accuracy": spec.accuracy() if self.k else None,
            "prediction_accuracy_by_stage": spec.accuracy_by_stage() if self.k else [],
            "prediction_accuracy_by_phase": spec.accuracy_by_phase() if self.k else {},
            "wasted_sims_fraction": spec.waste_fraction(),
            "mean_move_ms": 1000 * float(np.mean(move_seconds)) if move_seconds else 0.0,
            "mean_move_steps": float(np.mean(move_steps)) if move_steps else 0.0,
            "mean_game_s": float(np.mean([sum(r.move_seconds) for r in recs])) if recs else 0.0,
            "collisions": st.collisions,
            "shards": self.writer.shards_written,
        }
        return out

    def _tb_scalars(self, s: dict) -> dict:
        values = {
            "selfplay/sims_per_s": s["sims_per_s"],
            "selfplay/evals_per_s": s["evals_per_s"],
            "selfplay/cache_hit_rate": s["cache_hit_rate"],
            "selfplay/mean_game_length": s["mean_game_length"],
            "selfplay/resign_rate": s["resign_rate"],
            "selfplay/false_resign_rate": s["false_resign_rate"],
            "selfplay/move_latency_ms": s["mean_move_ms"],
            "selfplay/move_latency_steps": s["mean_move_steps"],
            "speculation/wasted_sims_fraction": s["wasted_sims_fraction"],
        }
        if self.k:
            values["speculation/accuracy"] = s["prediction_accuracy"]
            for j, a in enumerate(s["prediction_accuracy_by_stage"], start=1):
                values[f"speculation/accuracy_stage{j}"] = a
            for phase, a in s["prediction_accuracy_by_phase"].items():
                values[f"speculation/accuracy_{phase}"] = a
        rates = self.cache.hit_rate_by_move() if hasattr(self.cache, "hit_rate_by_move") else None
        if rates is not None and len(rates):
            size = self.rules.size
            for phase in ("opening", "middle", "end"):
                idx = [m for m in range(len(rates)) if game_phase(m, size) == phase]
                hits = self.cache.hits_by_move[idx].sum()
                total = hits + self.cache.misses_by_move[idx].sum()
                if total:
                    values[f"cache/hit_rate_{phase}"] = hits / total
        return values


def format_summary(s: dict) -> str:
    workers = (f" on {s['workers']} processes ({'one shared evaluator' if s.get('shared_evaluator') else 'a net each'})"
               if s.get("workers", 1) > 1 else "")
    line = (f"selfplay: {s['games']} games{workers}, {s['moves']} moves in {s['wall_s']:.1f} s | "
            f"{s['sims_per_s']:.0f} sims/s, {s['evals_per_s']:.0f} evals/s, cache hit {100 * s['cache_hit_rate']:.1f}% | "
            f"mean length {s['mean_game_length']:.1f}, move latency {s['mean_move_ms']:.1f} ms ({s['mean_move_steps']:.1f} batches)")
    if s["speculate"]:
        acc = s["prediction_accuracy_by_stage"]
        if len(acc) > 6:  # first, middle and last boundary
            acc = [acc[0], acc[len(acc) // 2], acc[-1]]
        stages = "/".join("-" if a != a else f"{100 * a:.0f}" for a in acc)
        shape = (f"k={s['speculate']}" if s["speculation_width"] == 1 and s["speculation_trees"] == s["speculate"] + 1
                 else f"tree k={s['speculate']} width {s['speculation_width']} {s['speculation_trees']} searches")
        line += (f" | {'auto ' if s['speculation_auto'] else ''}{shape}: prediction {100 * s['prediction_accuracy']:.1f}% (by stage {stages}), "
                 f"wasted {100 * s['wasted_sims_fraction']:.1f}% sims")
    if s.get("stop_reason") == "interrupted":
        line += " | stopped: interrupted (finished games kept)"
    if s.get("out"):
        line += f" | games, shards and TensorBoard in {s['out']}"
    if s.get("seed") is not None:
        line += f" | seed {s['seed']} (--seed {s['seed']} plays these games again)"
    return line


def run_selfplay(cfg: Config, out: Path | None, model_path: str | None = None, progress: bool = False) -> dict:
    """Build the net (a checkpoint, else a fresh one seeded by ``cfg.seed``), the evaluator and the cache,
    play ``cfg.selfplay.games`` games into ``out`` in this process, and return the summary (``selfplay
    --workers N``: ``specmcts.training.local.run_selfplay_processes``)."""
    from specmcts.engine.network import FRESH, load_fixed_net
    from specmcts.engine.evaluator import make_evaluator
    from specmcts.engine.nncache import NNCache
    from specmcts.threads import SEARCH
    from specmcts.threads import configure as configure_threads

    board = cfg.game.board
    threads = configure_threads(cfg, SEARCH)
    if out is not None:  # a kill -9 of an earlier selfplay here left its unfinished files
        remove_stale_temporaries(out / "sgf", out / "data")
    net = load_fixed_net(cfg, model_path or FRESH)
    evaluator = make_evaluator(cfg, board, net)
    cache = NNCache.for_board(cfg.evaluator.cache_entries, board)
    from specmcts.stopping import GracefulStop

    runner = SelfPlay(cfg, evaluator, cache, out=out, model_id=net.model_id, progress=progress)

    def stop() -> None:
        runner.stop_requested = True
        say("selfplay: stopping after this batch, keeping the finished games (again to stop now)")

    try:  # Ctrl-C: keep every finished game (SGF and shard), lose the ones in flight
        with GracefulStop(stop):
            summary = runner.run()
    except KeyboardInterrupt:  # the second Ctrl-C, wherever it landed
        summary = runner.finish(interrupted=True)
    summary["model_id"] = net.model_id
    summary["device"] = str(getattr(evaluator, "device", "cpu"))
    summary["out"] = str(out) if out is not None else None
    summary["seed"] = cfg.seed
    summary["threads"] = {"torch": threads.torch, "numba": threads.numba, "why": threads.why}
    return summary


def merge_summaries(parts: list[dict], wall: float) -> dict:
    """One summary of chunks played by several processes: totals, and means weighted by what they count."""
    games = sum(p["games"] for p in parts)
    moves = sum(p["moves"] for p in parts)
    sims = sum(p["sims"] for p in parts)
    evals = sum(p["evals"] for p in parts)
    forwards = sum(p.get("forwards", 0) for p in parts)

    def weighted(key: str, weight: str) -> float:
        total = sum(p[weight] for p in parts if p.get(key) is not None)
        return sum(p[key] * p[weight] for p in parts if p.get(key) is not None) / total if total else 0.0

    first = parts[0] if parts else {}
    stages = [p["prediction_accuracy_by_stage"] for p in parts if p.get("prediction_accuracy_by_stage")]
    return {
        "games": games, "moves": moves, "sims": sims, "wall_s": round(wall, 3),
        "sims_per_s": sims / wall if wall > 0 else 0.0, "evals": evals, "forwards": forwards,
        "evals_per_s": evals / wall if wall > 0 else 0.0,
        "cache_hit_rate": weighted("cache_hit_rate", "sims"),
        "mean_game_length": moves / games if games else 0.0,
        "black_win_rate": weighted("black_win_rate", "games"), "resign_rate": weighted("resign_rate", "games"),
        "mean_move_ms": weighted("mean_move_ms", "moves"), "mean_move_steps": weighted("mean_move_steps", "moves"),
        "speculate": first.get("speculate", 0), "speculation_width": first.get("speculation_width", 1),
        "speculation_trees": first.get("speculation_trees", 1), "speculation_auto": first.get("speculation_auto", False),
        "prediction_accuracy": weighted("prediction_accuracy", "moves") if first.get("speculate") else None,
        "prediction_accuracy_by_stage": [float(np.mean(col)) for col in zip(*stages)] if stages else [],
        "wasted_sims_fraction": weighted("wasted_sims_fraction", "sims"),
        "shards": sum(p.get("shards", 0) for p in parts),
    }
