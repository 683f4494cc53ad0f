"""What a run's self-play plays and what it reported: each generation's games per board size
(``generation_games``), the size of each async chunk (``BoardSchedule``), and the chunks' summaries merged
into the scalars logged at a trainer step (``SelfPlayStats``).
"""
from __future__ import annotations

import math

from specmcts.config import Config


# -- board sizes ---------------------------------------------------------------------------------------------


def generation_games(cfg: Config, g: int) -> dict[int, int]:
    """Generation ``g``'s self-play games per board size: ``run.games_per_generation`` split by the sizes' game
    shares (``GameConfig.game_shares``), the fractions carried from generation to generation so that over
    the run every size gets exactly its share. A function of ``g`` alone: a resumed run plays the same."""
    per_gen = cfg.run.games_per_generation
    if not cfg.game.mixed:
        return {cfg.game.board: per_gen}
    return {b: math.floor((g + 1) * per_gen * w + 1e-9) - math.floor(g * per_gen * w + 1e-9)
            for b, w in cfg.game.game_shares().items()}


class BoardSchedule:
    """The board size of each next async chunk: smooth weighted round-robin over the game shares (every size
    gets its share of the chunks, spread out rather than in runs)."""

    def __init__(self, shares: dict[int, float]):
        self.shares = dict(shares)
        self.credit = {b: 0.0 for b in self.shares}

    def next(self) -> int:
        for b, w in self.shares.items():
            self.credit[b] += w
        board = max(self.credit, key=lambda b: self.credit[b])
        self.credit[board] -= 1.0
        return board


# -- self-play statistics -------------------------------------------------------------------------------------


class SelfPlayStats:
    """Self-play summaries of chunks, merged (game-weighted) into the scalars logged at a trainer step."""

    KEYS = ("mean_game_length", "resign_rate", "false_resign_rate", "cache_hit_rate", "black_win_rate",
            "wasted_sims_fraction", "mean_move_ms")

    def __init__(self, per_board: bool = False):
        self.per_board = per_board  # a mixed-size run: each size's totals logged too
        self.games_total = 0
        self.samples_total = 0
        self.remote_cpu_s = 0.0  # CPU of chunks played by Ray actors (not this process's children: os.times misses it)
        self.by_board: dict[int, dict] = {}  # board size -> games, samples and the CPU seconds that played them
        self._pending: list[dict] = []
        self._last_wall = 0.0

    def add(self, summary: dict) -> None:
        self._pending.append(summary)
        self.games_total += summary["games"]
        self.samples_total += summary["samples"]
        self.remote_cpu_s += float(summary.get("cpu_s", 0.0))  # set by Ray actors only
        if "board" in summary:
            size = self.by_board.setdefault(int(summary["board"]), {"games": 0, "samples": 0, "cpu_s": 0.0})
            size["games"] += summary["games"]
            size["samples"] += summary["samples"]
            size["cpu_s"] += float(summary.get("play_cpu_s", 0.0))

    def scalars(self, wall_s: float) -> dict:
        chunks, self._pending = self._pending, []
        if not chunks:
            return {}
        games = sum(c["games"] for c in chunks) or 1
        out = {f"selfplay/{k}": sum(c[k] * c["games"] for c in chunks) / games for k in self.KEYS}
        busy = sum(c["wall_s"] for c in chunks)
        interval, self._last_wall = wall_s - self._last_wall, wall_s
        evals = sum(c["evals"] for c in chunks)
        # per self-play process while it plays, and of all processes over the wall clock since the last point
        out["selfplay/evals_per_s"] = evals / busy if busy else 0.0
        out["selfplay/sims_per_s"] = sum(c["sims"] for c in chunks) / busy if busy else 0.0
        out["selfplay/evals_per_s_total"] = evals / interval if interval > 0 else 0.0
        out["selfplay/games_total"] = self.games_total
        out["selfplay/samples_total"] = self.samples_total
        out["selfplay/games_per_hour"] = 3600.0 * self.games_total / wall_s if wall_s > 0 else 0.0
        if self.per_board:
            for b, size in self.by_board.items():  # a mixed-size run: each size's games and samples so far
                out[f"selfplay/{b}x{b}/games_total"] = size["games"]
                out[f"selfplay/{b}x{b}/samples_total"] = size["samples"]
            for b in {int(c["board"]) for c in chunks if "board" in c}:  # and its games' length since the last
                # point: a size whose games collapse (two passes, say) shows there, not in the mean over sizes
                of_b = [c for c in chunks if int(c.get("board", -1)) == b and c["games"]]
                if of_b:
                    out[f"selfplay/{b}x{b}/mean_game_length"] = (sum(c["mean_game_length"] * c["games"] for c in of_b)
                                                                 / sum(c["games"] for c in of_b))
        weights: dict[str, float] = {}
        sums: dict[str, float] = {}
        for c in chunks:
            for k, v in c.get("scalars", {}).items():
                sums[k] = sums.get(k, 0.0) + v * c["games"]
                weights[k] = weights.get(k, 0.0) + c["games"]
        out.update({k: sums[k] / weights[k] for k in sums if weights[k]})
        return out
