"""The player layer over ``Search``: how a finished search becomes a move, one rule for self-play,
evaluation and GTP, and a search-backed player for one game at a time (GTP, analysis).

- ``MoveRule``: the move from visit counts, a pure function of (seed, game, move number): the first
  ``temperature_moves`` moves are drawn from ``counts ** (1 / temperature)`` with a uniform drawn before the
  search (speculation applies the same uniform to partial counts to predict the move), later moves are the
  most visited action.
- ``draw`` / ``rng``: every random number a game uses, by (seed, game, move number, stream), so a record does
  not depend on how its searches were scheduled (speculation, batch composition, concurrency).
- ``root_noise``: the Dirichlet noise mixed into a root's priors.
- ``ResignStreak``: resign after ``consecutive`` moves in a row whose root value was below ``threshold``.
- ``MCTSPlayer``: searches one position when asked, within a visit and time budget, streams what it is
  thinking (``analyze``) and gives principal variations; GTP uses it.
"""
from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass

import numpy as np

from games.go import BLACK, GoRules, GoState
from games.scoring import DEFAULT_PLAYOUTS, Status, estimate_status, ownership
from native import tree as tree_kernels
from specmcts.config import Config
from specmcts.engine.search import Search, dirichlet_noise, node_budget

# The random streams of a (seed, game, move number).
UNIFORM, NOISE, PER_GAME, FULL_SEARCH, GUMBEL = range(5)


def rng(seed: int, game: int, move_number: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(game), int(move_number), stream])


@functools.lru_cache(maxsize=1 << 16)
def draw(seed: int, game: int, move_number: int, stream: int) -> float:
    """The first uniform of ``rng(seed, game, move_number, stream)``; memoised, since speculation asks for a
    move's uniform at every stage boundary of every search of that move (a generator costs ~25 us)."""
    return float(rng(seed, game, move_number, stream).random())


def root_noise(seed: int, game: int, state: GoState, alpha: float) -> np.ndarray:
    """Dirichlet(``alpha``) noise over the legal moves of ``state`` for game ``game`` of seed ``seed``."""
    return dirichlet_noise(rng(seed, game, state.move_number, NOISE), state.legal_mask(), alpha)


class MoveRule:
    """The move from a finished search's visit counts (see the module docstring)."""

    def __init__(self, seed: int, temperature: float, temperature_moves: int):
        self.seed = int(seed)
        self.temperature_value = float(temperature)
        self.temperature_moves = int(temperature_moves)

    def temperature(self, move_number: int) -> float:
        return self.temperature_value if move_number < self.temperature_moves else 0.0

    def greedy(self, move_number: int) -> bool:
        """Is the move simply the most visited action?"""
        return self.temperature(move_number) <= 0.0

    def uniform(self, game: int, move_number: int) -> float:
        return draw(self.seed, int(game), move_number, UNIFORM)

    def pick(self, counts: np.ndarray, game: int, move_number: int) -> int:
        t = self.temperature(move_number)
        return int(tree_kernels.pick_from_counts(counts, t, self.uniform(game, move_number) if t > 0 else 0.0))


class ResignStreak:
    """Resign after ``consecutive`` moves in a row (per key: a game, a colour) whose root value, from the
    mover's view in [-1, 1], was below ``threshold``. ``consecutive`` <= 0 never resigns."""

    def __init__(self, threshold: float, consecutive: int):
        self.threshold = float(threshold)
        self.consecutive = int(consecutive)
        self.streak: dict = {}

    def observe(self, key, value: float) -> bool:
        """Record a move's root value; True when the mover should resign now."""
        n = self.streak.get(key, 0) + 1 if value < self.threshold else 0
        self.streak[key] = n
        return self.consecutive > 0 and n >= self.consecutive

    def forget(self, key) -> None:
        self.streak.pop(key, None)




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
    score: np.ndarray | None = None  # [A] mean final score (points, side to move's view), nan where unvisited
    root_score: float = 0.0  # mean final score at the root (points, side to move's view)
    raw_value: float = 0.0  # the net's value of the root before any search, in [-1, 1] (side to move's view)
    raw_score: float = 0.0  # the net's score of the root (points, side to move's view)

    @property
    def raw_winrate(self) -> float:
        return (self.raw_value + 1.0) / 2.0

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
    """One position at a time (no root noise): GTP's engine."""

    def __init__(self, rules: GoRules, cfg: Config, evaluator, cache, *, sims: int | None = None):
        self.rules = rules
        self.cfg = cfg
        self.sims = sims or cfg.search.sims
        self.search = Search(rules, cfg.search, evaluator, cache, num_trees=1,
                             max_nodes=node_budget(self.sims, cfg.search.leaves_per_tree))

    def analyze(self, state: GoState, sims: int | None = None, seconds: float | None = None,
                stop=None, callback=None, every: float = 0.1, forbidden=None) -> Analysis:
        """Search ``state`` until ``sims`` simulations, ``seconds`` of wall time, or ``stop()`` is true;
        ``callback(analysis)`` every ``every`` seconds (GUI analysis streams). ``forbidden`` (actions) are
        not searched at the root (a GUI's avoid/allow lists), unless that would leave no move."""
        sims = min(sims or self.sims, self.search.sims_capacity)
        self.search.reset(0, state)
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
            if forbidden is not None and len(forbidden):  # the first step expanded the root
                self.search.restrict_root(0, forbidden)
                forbidden = None
            if callback is not None and now - last >= every:
                last = now
                callback(self._analysis(start))
        result = self._analysis(start)
        if callback is not None:
            callback(result)
        return result

    def _analysis(self, start: float) -> Analysis:
        return analysis_of(self.search, 0, start)

    def principal_variation(self, action: int) -> list[int]:
        """``action`` and the most visited line below it in the tree just searched (``Search.pv``)."""
        return self.search.pv(0, action)


def analysis_of(search: Search, slot: int, started: float, pv_moves: int = 10) -> Analysis:
    """What the tree in ``slot`` says about its root (the side to move's view), with the principal
    variations of its ``pv_moves`` most visited moves (what a GUI shows, in the order it shows them)."""
    tr = search.trees
    counts = search.visit_counts(slot)
    children = tr.children[slot, tree_kernels.ROOT]
    idx = np.where(children >= 0, children, 0)
    visits = tr.visits[slot, idx]
    seen = (children >= 0) & (visits > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = np.where(seen, tr.value_sum[slot, idx] / np.maximum(visits, 1), np.nan)
        score = np.where(seen, tr.score_sum[slot, idx] / np.maximum(visits, 1), np.nan)
    n_root = tr.visits[slot, tree_kernels.ROOT]
    root_score = float(-tr.score_sum[slot, tree_kernels.ROOT] / n_root) if n_root > 0 else 0.0
    raw_value, raw_score = search.root_raw(slot)
    analysis = Analysis(counts=counts, q=q.astype(np.float32), prior=search.root_prior(slot),
                        root_value=search.root_value(slot), sims=search.completed(slot),
                        seconds=time.perf_counter() - started, pvs={}, score=score.astype(np.float32),
                        root_score=root_score, raw_value=raw_value, raw_score=raw_score)
    for a in analysis.ranked()[:pv_moves]:
        analysis.pvs[a] = search.pv(slot, a)
    return analysis


def net_ownership(net, states: list[GoState]) -> np.ndarray | None:
    """The net's ownership head for ``states`` ([n, N*N] in [-1, 1], row-major from the top left, each from
    its side to move's view), or None for a net without one (fc heads)."""
    if not getattr(net, "has_aux_heads", False) or not states:
        return None
    import torch

    x = torch.from_numpy(np.stack([s.features(np.float32) for s in states]))
    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            logit = net.heads(x.to(device), aux=True)["ownership_logit"]
    finally:
        net.train(was_training)
    return torch.tanh(logit / 2).reshape(len(states), -1).float().cpu().numpy()


def board_ownership(net, state: GoState) -> np.ndarray | None:
    """The net's ownership of ``state``'s points as [N, N], +1 black .. -1 white (what ``games.scoring``
    takes), or None for a net without an ownership head."""
    owned = net_ownership(net, [state])
    if owned is None:
        return None
    sign = 1.0 if state.to_play == BLACK else -1.0
    return sign * owned[0].reshape(state.size, state.size)


def final_status(net, state: GoState, playouts: int = DEFAULT_PLAYOUTS) -> Status:
    """Dead stones and the area score of a finished game (GTP ``final_score``/``final_status_list``): the mean
    of a trained net's ownership head and ``playouts`` random playouts, or the playouts alone for a net
    without the head or an untrained one (``trained_steps`` 0: its head says nothing yet and would only
    dilute the playouts). The mean agreed with GnuGo's ``final_score`` more often than either alone
    (``tools/scoring_agreement.py``; docs/strength.md)."""
    own = ownership(state, playouts)
    trained = net is not None and getattr(net, "trained_steps", 0) > 0
    net_own = board_ownership(net, state) if trained else None
    return estimate_status(state, own=own if net_own is None else (own + net_own) / 2)


def winrate_lcb(winrate: float, visits: int, z: float = 1.96) -> float:
    """A normal-approximation lower confidence bound of a winrate over ``visits`` (Leela Zero's ``lcb``): the
    tree keeps no value variances."""
    return winrate - z * math.sqrt(max(winrate * (1.0 - winrate), 0.0) / max(visits, 1))
