"""A search-backed Go player for one game at a time: GTP, matches, analysis.

Self-play drives ``Search`` through the speculation pipeline for many games; a player searches one
position when asked (``genmove``), and can stream what it is thinking (``analyze``) for GUIs.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from games.go import GoRules, GoState
from native import tree as tree_kernels
from specmcts.config import Config, dirichlet_alpha
from specmcts.search import Search, dirichlet_noise

PV_MAX = 32


@dataclass
class Analysis:
    """What the search thinks of a position, from the view of the side to move."""

    counts: np.ndarray  # [A] visits per action
    q: np.ndarray  # [A] mean value per action (side to move's view), nan where unvisited
    prior: np.ndarray  # [A] root priors (-1 for illegal)
    root_value: float  # mean value at the root, in [-1, 1]
    sims: int
    seconds: float
    pvs: dict  # action -> list of actions (the principal variation starting with it)

    @property
    def winrate(self) -> float:
        return (self.root_value + 1.0) / 2.0

    def best(self) -> int:
        return int(np.argmax(self.counts))

    def ranked(self) -> list[int]:
        """Visited actions, most visited first (ties: higher prior first)."""
        visited = np.flatnonzero(self.counts > 0)
        order = np.lexsort((-self.prior[visited], -self.counts[visited]))
        return [int(a) for a in visited[order]]


class MCTSPlayer:
    def __init__(self, rules: GoRules, cfg: Config, evaluator, cache, *, sims: int | None = None,
                 seed: int = 0, noise: bool = False, temperature_moves: int = 0, temperature: float = 1.0):
        self.rules = rules
        self.cfg = cfg
        self.sims = sims or cfg.search.sims
        self.search = Search(rules, cfg.search, evaluator, cache, num_trees=1,
                             max_nodes=self.sims + cfg.search.leaves_per_tree + 2)
        self.seed = seed
        self.noise = noise
        self.temperature_moves = temperature_moves
        self.temperature = temperature
        self.games = 0

    def new_game(self) -> None:
        self.games += 1

    def analyze(self, state: GoState, sims: int | None = None, seconds: float | None = None,
                stop=None, callback=None, every: float = 0.1) -> Analysis:
        """Search ``state`` until ``sims`` simulations, ``seconds`` of wall time, or ``stop()`` is true;
        ``callback(analysis)`` every ``every`` seconds (GUI analysis streams)."""
        sims = min(sims or self.sims, self.search.max_nodes - self.cfg.search.leaves_per_tree - 2)
        noise, fraction = None, 0.0
        if self.noise:
            rng = np.random.default_rng([self.seed, self.games, state.move_number, 1])
            noise = dirichlet_noise(rng, state.legal_mask(), dirichlet_alpha(self.cfg.search, self.rules.size))
            fraction = self.cfg.search.dirichlet_fraction
        self.search.reset(0, state, noise, fraction)
        slots = np.zeros(1, np.int32)
        start = time.perf_counter()
        last = start
        while True:
            want = self.search.wanted(slots, sims)
            if not want.any():
                break
            now = time.perf_counter()
            if seconds is not None and now - start >= seconds and self.search.completed(slots)[0] > 0:
                break
            if stop is not None and stop():
                break
            if self.search.step(slots, want) == 0:
                break
            if callback is not None and now - last >= every:
                last = now
                callback(self._analysis(start))
        result = self._analysis(start)
        if callback is not None:
            callback(result)
        return result

    def genmove(self, state: GoState, sims: int | None = None, seconds: float | None = None) -> tuple[int, Analysis]:
        analysis = self.analyze(state, sims, seconds)
        if state.move_number < self.temperature_moves:
            u = float(np.random.default_rng([self.seed, self.games, state.move_number, 0]).random())
            action = int(tree_kernels.pick_from_counts(analysis.counts, self.temperature, u))
        else:
            action = int(tree_kernels.pick_from_counts(analysis.counts, 0.0, 0.0))
        return action, analysis

    def _analysis(self, start: float) -> Analysis:
        tr = self.search.trees
        counts = self.search.visit_counts(0)
        children = tr.children[0, tree_kernels.ROOT]
        idx = np.where(children >= 0, children, 0)
        visits = tr.visits[0, idx]
        with np.errstate(invalid="ignore", divide="ignore"):
            q = np.where((children >= 0) & (visits > 0), tr.value_sum[0, idx] / np.maximum(visits, 1), np.nan)
        analysis = Analysis(counts=counts, q=q.astype(np.float32), prior=self.search.root_prior(0),
                            root_value=self.search.root_value(0), sims=int(self.search.completed([0])[0]),
                            seconds=time.perf_counter() - start, pvs={})
        for a in analysis.ranked()[:10]:  # the moves a GUI shows, in the order it shows them
            analysis.pvs[a] = self.principal_variation(a)
        return analysis

    def principal_variation(self, action: int) -> list[int]:
        """``action`` and the most visited line below it in the tree just searched (up to ``PV_MAX`` moves)."""
        tr = self.search.trees
        child = int(tr.children[0, tree_kernels.ROOT, action])
        if child < 0:
            return [action]
        buf = np.zeros(PV_MAX, np.int32)
        n = tree_kernels.principal_variation(0, child, tr.visits, tr.children, buf)
        return [action] + [int(x) for x in buf[:n]]
