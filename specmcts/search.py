"""PUCT search over many trees at once, driving the ``native.tree`` kernels.

``Search`` owns ``T`` tree slots, one scratch row per leaf of a batch, and talks to one evaluator and one
NN cache. ``step(slots, wanted)`` is one round of the hot loop of DESIGN.md section 2 for every slot
given: select leaves (one numba call), answer what the cache knows, evaluate the rest in one forward
pass, expand and back up (one numba call). Python here touches arrays, never nodes.

Who owns which slot, and when a tree is reset, is the caller's business (self-play, speculation, GTP).
"""
from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field

import numba
import numpy as np

from games.go import GoRules, GoState
from native import tree as kernels
from native import layout
from specmcts.config import SearchConfig


@dataclass
class SearchStats:
    steps: int = 0
    leaves: int = 0  # simulations completed (root expansions included)
    collisions: int = 0  # selections dropped because they met a leaf already pending in the batch
    evals: int = 0  # rows sent to the network
    cache_hits: int = 0
    terminal: int = 0  # leaves scored by the rules
    parallel_steps: int = 0  # steps whose batch kernels ran in parallel over trees
    # wall seconds per phase of step(): where the time goes (select, cache, encode, forward, backup)
    seconds: dict = field(default_factory=lambda: dict.fromkeys(("select", "cache", "encode", "forward", "backup"), 0.0))
    batch_rows: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))  # [r]: batches that sent r rows

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["seconds"] = dict(self.seconds)
        d["batch_rows"] = {int(r): int(n) for r, n in enumerate(self.batch_rows) if n}
        return d


@dataclass
class TreeArrays:
    """The structure-of-arrays trees; fields and shapes are documented in ``native/tree.py``."""

    node_count: np.ndarray
    visits: np.ndarray
    value_sum: np.ndarray
    virtual_loss: np.ndarray
    parent: np.ndarray
    action: np.ndarray
    status: np.ndarray
    nn_value: np.ndarray
    children: np.ndarray
    prior: np.ndarray
    root_noise: np.ndarray
    noise_fraction: np.ndarray
    root_budget: np.ndarray
    gumbel: np.ndarray
    gumbel_table: np.ndarray
    score_sum: np.ndarray
    score_center: np.ndarray

    @classmethod
    def allocate(cls, num_trees: int, max_nodes: int, num_actions: int) -> "TreeArrays":
        t, m, a = num_trees, max_nodes, num_actions
        return cls(
            node_count=np.zeros(t, np.int32),
            visits=np.zeros((t, m), np.int32),
            value_sum=np.zeros((t, m), np.float64),
            virtual_loss=np.zeros((t, m), np.int32),
            parent=np.full((t, m), kernels.NO_PARENT, np.int32),
            action=np.full((t, m), -1, np.int32),
            status=np.zeros((t, m), np.int8),
            nn_value=np.zeros((t, m), np.float32),
            children=np.full((t, m, a), kernels.UNVISITED, np.int32),
            prior=np.full((t, m, a), kernels.ILLEGAL, np.float32),
            root_noise=np.zeros((t, a), np.float32),
            noise_fraction=np.zeros(t, np.float32),
            root_budget=np.zeros(t, np.int32),
            gumbel=np.zeros((t, a), np.float32),
            gumbel_table=np.zeros((t, m), np.int32),
            score_sum=np.zeros((t, m), np.float64),
            score_center=np.zeros(t, np.float32),
        )


@functools.lru_cache(maxsize=256)
def considered_visits(m: int, n: int) -> np.ndarray:
    """Sequential halving's table (mctx's ``get_sequence_of_considered_visits``): entry ``i`` is the visit
    count of the action the ``i``-th of ``n`` root simulations goes to, with ``m`` candidates. Each phase
    gives every remaining candidate ``max(1, n // (ceil(log2 m) * remaining))`` more visits, then halves
    the candidates (never below 2)."""
    if m <= 1:
        return np.arange(n, dtype=np.int32)
    log2m = max(1, math.ceil(math.log2(m)))
    seq: list[int] = []
    visits = [0] * m
    considered = m
    while len(seq) < n:
        extra = max(1, n // (log2m * considered))
        for _ in range(extra):
            seq.extend(visits[:considered])
            for i in range(considered):
                visits[i] += 1
        considered = max(2, considered // 2)
    table = np.array(seq[:n], np.int32)
    table.flags.writeable = False
    return table


@dataclass
class StatePool:
    """Fixed-size Go states stacked in rows (``native/layout.py``)."""

    core: np.ndarray
    hist: np.ndarray
    past: np.ndarray

    @classmethod
    def allocate(cls, rows: int, size: int) -> "StatePool":
        return cls(
            core=np.zeros((rows, layout.core_len(size)), np.int32),
            hist=np.zeros((rows, layout.hist_len(size)), np.uint64),
            past=np.zeros((rows, layout.past_len(size)), np.int8),
        )

    def load(self, row: int, state: GoState) -> None:
        used = state.history_words
        self.core[row] = state.core
        self.hist[row, :used] = state.hist[:used]
        self.past[row] = state.past

    def state(self, row: int, rules: GoRules) -> GoState:
        """A GoState copy of a row."""
        return GoState(rules, _arrays=(self.core[row].copy(), self.hist[row].copy(), self.past[row].copy())).copy()


@dataclass
class Search:
    rules: GoRules
    cfg: SearchConfig
    evaluator: object  # specmcts.evaluator.Evaluator
    cache: object  # specmcts.nncache.NNCache
    num_trees: int
    max_nodes: int = 0  # 0: sims + leaves_per_tree + 2
    stats: SearchStats = field(default_factory=SearchStats)

    def __post_init__(self):
        size = self.rules.size
        self.num_actions = self.rules.num_actions
        if self.max_nodes <= 0:
            self.max_nodes = self.cfg.sims + self.cfg.leaves_per_tree + 2
        self.trees = TreeArrays.allocate(self.num_trees, self.max_nodes, self.num_actions)
        self.roots = StatePool.allocate(self.num_trees, size)
        rows = int(self.evaluator.max_batch)
        self.stats.batch_rows = np.zeros(rows + 1, np.int64)
        # A tree's batch is taken whole or not at all (``select_leaves``), so it must fit in the scratch
        # rows: asking a tree for more leaves than the evaluator takes would skip it forever.
        self.leaves_per_tree = min(int(self.cfg.leaves_per_tree), rows)
        self.scratch = StatePool.allocate(rows, size)
        self.leaf_slot = np.zeros(rows, np.int32)
        self.leaf_node = np.zeros(rows, np.int32)
        self.leaf_kind = np.zeros(rows, np.int8)
        self.leaf_value = np.zeros(rows, np.float32)
        self.leaf_score = np.zeros(rows, np.float32)
        self.leaf_key = np.zeros(rows, np.uint64)
        self.leaf_move_number = np.zeros(rows, np.int32)
        self.leaf_policy = np.zeros((rows, self.num_actions), np.float32)
        self._miss_rows = np.zeros(rows, np.int32)
        self._row_start = np.zeros(self.num_trees, np.int32)
        self._threads = min(self.cfg.threads or numba.config.NUMBA_NUM_THREADS, numba.config.NUMBA_NUM_THREADS)
        self._queue = np.zeros(self.max_nodes, np.int32)
        # the score utility needs scores: an evaluator without a score head (fc nets) searches by value alone
        self._su_weight = float(self.cfg.score_utility) if self.evaluator.has_score else 0.0
        self._su_scale = float(self.cfg.score_utility_scale or size / 2.0)
        for t in range(self.num_trees):
            self._reset_arrays(t)

    # -- slots -----------------------------------------------------------------------------------
    def _reset_arrays(self, slot: int) -> None:
        tr = self.trees
        kernels.reset_tree(slot, tr.node_count, tr.visits, tr.value_sum, tr.virtual_loss, tr.parent, tr.action,
                           tr.status, tr.children, tr.prior, tr.score_sum)

    def reset(self, slot: int, state: GoState, noise: np.ndarray | None = None, noise_fraction: float = 0.0,
              gumbel: np.ndarray | None = None, budget: int = 0) -> None:
        """Start a fresh tree in ``slot`` rooted at ``state``; ``noise`` ([A], zero on illegal moves) is
        mixed into the root priors with weight ``noise_fraction`` when the root is expanded.

        ``budget > 0`` makes the root a Gumbel root (``native.tree``): sequential halving over ``budget``
        simulations with ``cfg.gumbel_considered`` candidates, ranked with the Gumbel noise ``gumbel`` ([A];
        None: zeros, the deterministic choice of evaluation)."""
        if state.is_over:
            raise ValueError("cannot search a finished game")
        self.roots.load(slot, state)
        self._reset_arrays(slot)
        tr = self.trees
        if noise is not None and noise_fraction > 0:
            tr.root_noise[slot] = noise
            tr.noise_fraction[slot] = noise_fraction
        else:
            tr.noise_fraction[slot] = 0.0
        tr.root_budget[slot] = max(0, int(budget))
        if budget > 0:
            tr.gumbel[slot] = 0.0 if gumbel is None else gumbel
            moves = self.searchable(state).sum()
            table = considered_visits(max(1, min(self.cfg.gumbel_considered, moves)), int(budget))
            width = min(len(table), tr.gumbel_table.shape[1])
            tr.gumbel_table[slot, :width] = table[:width]

    def reuse(self, src: int, action: int, dst: int, state: GoState, noise: np.ndarray | None = None,
              noise_fraction: float = 0.0) -> bool:
        """Tree reuse: make slot ``dst`` the subtree of ``src`` below ``action`` (rooted at ``state``, the
        position after it), with fresh root noise. Returns False (and resets ``dst``) when that child was
        never expanded."""
        tr = self.trees
        child = int(tr.children[src, kernels.ROOT, action])
        if child < 0 or tr.status[src, child] != kernels.EXPANDED:
            self.reset(dst, state, noise, noise_fraction)
            return False
        self.roots.load(dst, state)
        kernels.extract_subtree(src, child, dst, tr.node_count, tr.visits, tr.value_sum, tr.virtual_loss, tr.parent,
                                tr.action, tr.status, tr.nn_value, tr.children, tr.prior, self._queue,
                                tr.score_sum, tr.score_center)
        tr.noise_fraction[dst] = 0.0
        tr.root_budget[dst] = 0  # a reused root searches by PUCT
        if noise is not None and noise_fraction > 0:
            tr.root_noise[dst] = noise
            kernels.mix_root_noise(dst, tr.prior, tr.root_noise, noise_fraction)
        return True

    def searchable(self, state: GoState) -> np.ndarray:
        """bool [A]: the moves this search considers at ``state`` (legal, and not into the mover's own eyes
        unless ``search.fill_own_eyes``)."""
        out = np.zeros(self.num_actions, np.bool_)
        kernels.searchable_mask(state.core, state.hist, self.cfg.fill_own_eyes, out)
        return out

    def completed(self, slots=None) -> np.ndarray:
        """Simulations completed below each root (the root's own evaluation not counted)."""
        v = self.trees.visits[:, kernels.ROOT] if slots is None else self.trees.visits[slots, kernels.ROOT]
        return np.maximum(v - 1, 0)

    def wanted(self, slots: np.ndarray, targets) -> np.ndarray:
        """Leaves to ask of each slot this step: 1 for an unexpanded root, else up to ``leaves_per_tree``
        (capped at the evaluator's ``max_batch``) without passing ``targets`` (a per-slot or common
        simulation target)."""
        slots = np.asarray(slots, np.int32)
        expanded = self.trees.status[slots, kernels.ROOT] == kernels.EXPANDED
        remaining = np.asarray(targets) - self.completed(slots)
        want = np.clip(remaining, 0, self.leaves_per_tree)
        return np.where(expanded, want, 1).astype(np.int32)

    def visit_counts(self, slot: int) -> np.ndarray:
        out = np.zeros(self.num_actions, np.int32)
        kernels.root_visit_counts(slot, self.trees.visits, self.trees.children, out)
        return out

    def leaders(self, slots) -> tuple[np.ndarray, np.ndarray]:
        """Each slot's most visited root action (lowest on ties) and its lead in visits over the runner-up."""
        slots = np.ascontiguousarray(slots, np.int32)
        best = np.zeros(len(slots), np.int32)
        margin = np.zeros(len(slots), np.int32)
        kernels.root_leaders(slots, self.trees.visits, self.trees.children, best, margin)
        return best, margin

    def root_value(self, slot: int) -> float:
        """Mean value of the search at the root, from the view of the side to move there."""
        tr = self.trees
        n = tr.visits[slot, kernels.ROOT]
        return float(-tr.value_sum[slot, kernels.ROOT] / n) if n > 0 else 0.0

    def root_prior(self, slot: int) -> np.ndarray:
        return self.trees.prior[slot, kernels.ROOT].copy()

    def gumbel_action(self, slot: int) -> int:
        """A Gumbel root's move from its (partial or final) search: the most visited candidates ranked by
        ``g + log prior + sigma(q)``."""
        tr, c = self.trees, self.cfg
        return int(kernels.gumbel_root_action(slot, tr.visits, tr.value_sum, tr.nn_value, tr.children, tr.prior,
                                              tr.gumbel, c.gumbel_c_visit, c.gumbel_c_scale, tr.score_sum,
                                              tr.score_center, self._su_weight, self._su_scale))

    def improved_policy(self, slot: int) -> np.ndarray:
        """The Gumbel policy target: ``softmax(log prior + sigma(completed q))`` over the legal root actions."""
        tr, c = self.trees, self.cfg
        out = np.zeros(self.num_actions, np.float32)
        kernels.gumbel_improved_policy(slot, tr.visits, tr.value_sum, tr.nn_value, tr.children, tr.prior,
                                       c.gumbel_c_visit, c.gumbel_c_scale, out, tr.score_sum, tr.score_center,
                                       self._su_weight, self._su_scale)
        return out

    # -- the hot loop ----------------------------------------------------------------------------
    def step(self, slots: np.ndarray, wanted: np.ndarray) -> int:
        """One batch over ``slots``; returns the number of leaves evaluated and backed up."""
        tr, sc = self.trees, self.scratch
        clock = time.perf_counter
        spent = self.stats.seconds
        t0 = clock()
        slots = np.ascontiguousarray(slots, np.int32)
        wanted = np.ascontiguousarray(wanted, np.int32)
        row_start = self._row_start[:len(slots)]
        parallel = self._threads > 1 and len(slots) >= self.cfg.parallel_min_trees
        if parallel:
            numba.set_num_threads(self._threads)
            self.stats.parallel_steps += 1
        select = kernels.select_leaves_parallel if parallel else kernels.select_leaves
        n, collisions = select(
            slots, wanted, row_start,
            tr.node_count, tr.visits, tr.value_sum, tr.virtual_loss, tr.parent, tr.action, tr.status,
            tr.children, tr.prior,
            self.roots.core, self.roots.hist, self.roots.past,
            sc.core, sc.hist, sc.past,
            self.leaf_slot, self.leaf_node, self.leaf_kind, self.leaf_value, self.leaf_key, self.leaf_move_number,
            self.cfg.c_puct, self.cfg.fpu_reduction, self.cfg.virtual_loss,
            tr.nn_value, tr.root_budget, tr.gumbel, tr.gumbel_table, self.cfg.gumbel_c_visit, self.cfg.gumbel_c_scale,
            tr.score_sum, tr.score_center, self.leaf_score, self._su_weight, self._su_scale,
        )
        self.stats.steps += 1
        self.stats.collisions += int(collisions)
        t1 = clock()
        spent["select"] += t1 - t0
        if n == 0:
            return 0
        hits, misses = self.cache.lookup_leaves(n, self.leaf_kind, kernels.LEAF_EVAL, self.leaf_key,
                                                self.leaf_move_number, self.leaf_policy, self.leaf_value,
                                                self.leaf_score, self._miss_rows)
        if misses:
            t2 = clock()
            encode = kernels.encode_leaves_parallel if parallel else kernels.encode_leaves
            encode(sc.core, sc.past, self._miss_rows[:misses], self.evaluator.inputs)
            t3 = clock()
            policy, value = self.evaluator.evaluate(misses)
            score = self.evaluator.scores(misses)
            t4 = clock()
            self.cache.insert_leaves(self._miss_rows, misses, self.leaf_key, policy, value, score, self.leaf_policy,
                                     self.leaf_value, self.leaf_score)
            spent["encode"] += t3 - t2
            spent["forward"] += t4 - t3
            spent["cache"] += (t2 - t1) + (clock() - t4)
        else:
            spent["cache"] += clock() - t1
        self.stats.cache_hits += hits
        self.stats.evals += misses
        self.stats.batch_rows[misses] += 1
        m = hits + misses
        t5 = clock()
        backup = kernels.expand_and_backup_parallel if parallel else kernels.expand_and_backup
        backup(
            slots, wanted, row_start,
            tr.visits, tr.value_sum, tr.virtual_loss, tr.parent, tr.status, tr.nn_value, tr.prior,
            tr.root_noise, tr.noise_fraction,
            sc.core, sc.hist,
            self.leaf_slot, self.leaf_node, self.leaf_kind, self.leaf_value, self.leaf_policy,
            tr.score_sum, tr.score_center, self.leaf_score, self.cfg.fill_own_eyes,
        )
        spent["backup"] += clock() - t5
        leaves = n - int(collisions)
        self.stats.leaves += leaves
        self.stats.terminal += leaves - m
        return leaves

    def run(self, slots, sims: int) -> None:
        """Search ``slots`` until each has ``sims`` simulations (a convenience for tests and GTP)."""
        slots = np.asarray(slots, np.int32)
        while True:
            want = self.wanted(slots, sims)
            if not want.any():
                return
            if self.step(slots, want) == 0 and (self.trees.node_count[slots] >= self.max_nodes).all():
                return


def dirichlet_noise(rng: np.random.Generator, legal: np.ndarray, alpha: float) -> np.ndarray:
    """Dirichlet(alpha) over the legal actions, zero elsewhere."""
    noise = np.zeros(legal.shape[0], np.float32)
    idx = np.flatnonzero(legal)
    if len(idx):
        noise[idx] = rng.dirichlet(np.full(len(idx), alpha))
    return noise
