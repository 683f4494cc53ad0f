"""PUCT search over many trees at once, driving the ``native.tree`` kernels.

``Search`` owns ``T`` tree slots, one scratch row per leaf of a batch, and talks to one evaluator and one
NN cache. ``step(slots, wanted)`` is one round of the search's hot loop for every slot
given: select leaves, answer what the cache knows and encode the rest (one native call,
``native.batch.prepare_batch``), evaluate them in one forward pass, store, expand and back up (one native
call, ``complete_batch``). Python here touches arrays, never nodes, and makes two native calls per batch
however many trees, games and speculation levels the batch holds.

Who owns which slot, and when a tree is reset, is the caller's business (self-play, speculation, GTP).
"""
from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numba
import numpy as np

from concurrent.futures import ThreadPoolExecutor

from games.go import GoRules, GoState
from native import batch as batch_kernels
from native.calls import Compiled
from native import tree as kernels
from native import layout
from specmcts.config import SearchConfig
from specmcts.engine.evaluator import NNOutput
from specmcts.threads import numba_threads



NODE_SLACK = 2  # tree nodes beyond one per simulation and a batch of leaves in flight


PV_MAX = 32  # the longest principal variation reported (Search.pv)


def node_budget(sims: int, leaves: int) -> int:
    """The nodes a tree needs for ``sims`` simulations with a batch of ``leaves`` leaves in flight."""
    return int(sims) + int(leaves) + NODE_SLACK

@dataclass
class SearchStats:
    steps: int = 0
    leaves: int = 0  # simulations completed (root expansions included)
    collisions: int = 0  # selections dropped because they met a leaf already pending in the batch
    evals: int = 0  # rows sent to the network
    cache_hits: int = 0
    shared_rows: int = 0  # cache misses answered by another row of the same batch with the same input
    terminal: int = 0  # leaves scored by the rules
    parallel_steps: int = 0  # steps whose batch kernels ran in parallel over trees
    overlapped_steps: int = 0  # steps that had two batches in flight (search.overlap)
    # wall seconds per phase of step(): select (select, cache lookup, encode: native.batch.prepare_batch),
    # forward (the evaluator), backup (cache store, expand, back up: complete_batch)
    seconds: dict = field(default_factory=lambda: dict.fromkeys(("select", "forward", "backup"), 0.0))
    batch_rows: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))  # [r]: batches that sent r rows

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["seconds"] = dict(self.seconds)
        d["batch_rows"] = {int(r): int(n) for r, n in enumerate(self.batch_rows) if n}
        return d


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


def allocate_states(rows: int, size: int) -> kernels.States:
    """``rows`` Go states of a ``size`` board stacked in rows (``native/layout.py``)."""
    return kernels.States(core=np.zeros((rows, layout.core_len(size)), np.int32),
                          hist=np.zeros((rows, layout.hist_len(size)), np.uint64),
                          past=np.zeros((rows, layout.past_len(size)), np.int8))


def load_state(rows: kernels.States, row: int, state: GoState) -> None:
    """Copy ``state`` into row ``row`` (only the history words in use)."""
    used = state.history_words
    rows.core[row] = state.core
    rows.hist[row, :used] = state.hist[:used]
    rows.past[row] = state.past


@runtime_checkable
class BatchEvaluator(Protocol):
    """What the search needs of an evaluator (``specmcts.engine.evaluator.Evaluator`` and every subclass)."""

    inputs: np.ndarray  # uint8 [max_batch, planes, N, N]: the search encodes its leaves here
    max_batch: int
    has_score: bool

    def forward(self, n: int) -> NNOutput: ...

    def twin(self) -> "BatchEvaluator | None": ...

    def close(self) -> None: ...


@runtime_checkable
class LeafCache(Protocol):
    """What the search needs of an NN cache (``specmcts.engine.nncache.NNCache``): its table, which the batch
    kernels read and write (``native.nncache.Table``)."""

    table: tuple


@dataclass
class Lane:
    """The buffers of one batch in flight: its evaluator (lane 1: the twin of ``search.overlap``), one scratch
    state per leaf, the leaves, the rows that missed the cache, each tree's first row, the scratch of the
    misses' de-duplication (``native.nncache.dedup_misses``) and ``prepare_batch``'s counts."""

    index: int  # 0, or 1 for the twin's
    evaluator: BatchEvaluator
    scratch: kernels.States
    leaves: kernels.Leaves
    miss_rows: np.ndarray
    row_start: np.ndarray
    dedup: tuple[np.ndarray, np.ndarray, np.ndarray]
    counts: np.ndarray

    @classmethod
    def allocate(cls, index: int, evaluator: BatchEvaluator, rows: int, size: int, num_actions: int, num_trees: int
                 ) -> "Lane":
        dedup = (np.zeros(1 << (2 * rows - 1).bit_length(), np.int32), np.zeros(rows, np.int32),
                 np.zeros(rows, np.int32))
        return cls(index, evaluator, allocate_states(rows, size), kernels.Leaves.allocate(rows, num_actions),
                   np.zeros(rows, np.int32), np.zeros(num_trees, np.int32), dedup, batch_kernels.counts_array())


@dataclass
class InFlight:
    """A batch between ``_start`` (selected, looked up, encoded, its forward pass started) and ``_finish``."""

    lane: Lane
    slots: np.ndarray
    wanted: np.ndarray
    starts: np.ndarray
    leaves: int  # rows reserved (collided walks included)
    collisions: int
    hits: int
    misses: int
    distinct: int  # the rows sent to the evaluator: one per distinct input among the misses
    answer: object  # the forward pass: an NNOutput, or its result() (a thread or a device computes it), or None


@dataclass
class Search:
    rules: GoRules
    cfg: SearchConfig
    evaluator: BatchEvaluator
    cache: LeafCache
    num_trees: int
    max_nodes: int = 0  # 0: node_budget(sims, leaves_per_tree)
    stats: SearchStats = field(default_factory=SearchStats)

    def __post_init__(self):
        size = self.rules.size
        self.num_actions = self.rules.num_actions
        if self.max_nodes <= 0:
            self.max_nodes = node_budget(self.cfg.sims, self.cfg.leaves_per_tree)
        self.trees = kernels.Tree.allocate(self.num_trees, self.max_nodes, self.num_actions)
        self.roots = allocate_states(self.num_trees, size)
        rows = int(self.evaluator.max_batch)
        self.stats.batch_rows = np.zeros(rows + 1, np.int64)
        # A tree's batch is taken whole or not at all (``select_leaves``), so it must fit in the scratch
        # rows: asking a tree for more leaves than the evaluator takes would skip it forever.
        self.leaves_per_tree = min(int(self.cfg.leaves_per_tree), rows)
        self.lanes = [Lane.allocate(0, self.evaluator, rows, size, self.num_actions, self.num_trees)]
        # what complete_batch reads when the cache answered every leaf (no forward pass)
        self._no_answer = NNOutput(np.zeros((1, self.num_actions), np.float32), np.zeros(1, np.float32),
                                   np.zeros(1, np.float32))
        self.threads = numba_threads(self.cfg.threads)
        # the batch kernels called without numba's dispatch (native.calls): every call of one key passes this
        # search's own buffers, so the same types (key: lane, and for complete_batch whether the evaluator
        # answered or ``_no_answer`` stands in)
        self._prepare = {False: Compiled(batch_kernels.prepare_batch),
                         True: Compiled(batch_kernels.prepare_batch_parallel)}
        self._complete = {False: Compiled(batch_kernels.complete_batch),
                          True: Compiled(batch_kernels.complete_batch_parallel)}
        self._wanted = Compiled(batch_kernels.wanted_leaves)
        self._reached = Compiled(batch_kernels.reached)
        # the per-move and per-stage calls on the trees, likewise (their arguments: the trees, Python ints,
        # this search's params, int32 / float32 arrays made here)
        self._tree_calls = {f.__name__: Compiled(f) for f in (
            kernels.reset_tree, kernels.root_visit_counts, kernels.gumbel_root_action,
            kernels.gumbel_improved_policy, kernels.stage_events, kernels.ranked_root_actions)}
        self._events = (np.empty(self.num_trees, np.int32), np.empty(self.num_trees, np.int64),
                        np.empty(self.num_trees, np.int32), np.empty(self.num_trees, np.int64))
        self._ranked = (np.empty(self.num_actions, np.int64), np.empty(self.num_actions, np.int64))
        self._queue = np.zeros(self.max_nodes, np.int32)
        self._no_pass: set[int] = set()  # slots whose root may not pass, once expanded (``reset``'s no_pass)
        c = self.cfg
        # the score utility needs scores: an evaluator without a score head (fc nets) searches by value alone
        self.params = kernels.Params(
            c_puct=float(c.c_puct), fpu_reduction=float(c.fpu_reduction), vl_value=float(c.virtual_loss),
            c_visit=float(c.gumbel_c_visit), c_scale=float(c.gumbel_c_scale),
            su_weight=float(c.score_utility) if self.evaluator.has_score else 0.0,
            su_scale=float(c.score_utility_scale or size / 2.0))
        for t in range(self.num_trees):
            self._reset_arrays(t)
        # a list: every step leaves (what, lane, start, end) in perf_counter seconds: "step" (lane -1), "select"
        # (select, cache lookup, encode: the CPU work before a lane's forward pass), "backup" (cache insert,
        # expand and back up); what specmcts/bench/speculation.py draws on the emulated device's timeline
        self.timeline: list | None = None
        # search.overlap: a second set of rows and a twin evaluator, so that one half of the trees' batch is
        # evaluated (in a thread) while the other half selects
        self._twin = self.evaluator.twin() if self.cfg.overlap else None
        if self._twin is not None:
            self.lanes.append(Lane.allocate(1, self._twin, rows, size, self.num_actions, self.num_trees))
            self._forwarder = ThreadPoolExecutor(1, thread_name_prefix="forward")

    # -- slots -----------------------------------------------------------------------------------
    def _reset_arrays(self, slot: int) -> None:
        self._tree_calls["reset_tree"].call(0, self.trees, int(slot))

    def reset(self, slot: int, state: GoState, noise: np.ndarray | None = None, noise_fraction: float = 0.0,
              gumbel: np.ndarray | None = None, budget: int = 0, no_pass: bool = False) -> None:
        """Start a fresh tree in ``slot`` rooted at ``state``; ``noise`` ([A], zero on illegal moves) is
        mixed into the root priors with weight ``noise_fraction`` when the root is expanded.

        ``budget > 0`` makes the root a Gumbel root (``native.tree``): sequential halving over ``budget``
        simulations with ``cfg.gumbel_considered`` candidates, ranked with the Gumbel noise ``gumbel`` ([A];
        None: zeros, the deterministic choice of evaluation).

        ``no_pass``: the root may not pass while it has another move (self-play's early moves): its pass is
        made illegal as soon as the root is expanded, before any simulation below it. Below the root the
        search may still pass."""
        if state.is_over:
            raise ValueError("cannot search a finished game")
        load_state(self.roots, slot, state)
        self._reset_arrays(slot)
        tr = self.trees
        if noise is not None and noise_fraction > 0:
            tr.root_noise[slot] = noise
            tr.noise_fraction[slot] = noise_fraction
        else:
            tr.noise_fraction[slot] = 0.0
        tr.root_budget[slot] = max(0, int(budget))
        if no_pass:
            self._no_pass.add(slot)
        else:
            self._no_pass.discard(slot)
        if budget > 0:
            tr.gumbel[slot] = 0.0 if gumbel is None else gumbel
            moves = self.searchable(state).sum()
            if no_pass and moves > 1:
                moves -= 1
            table = considered_visits(max(1, min(self.cfg.gumbel_considered, moves)), int(budget))
            width = min(len(table), tr.gumbel_table.shape[1])
            tr.gumbel_table[slot, :width] = table[:width]

    def reuse(self, src: int, action: int, dst: int, state: GoState, noise: np.ndarray | None = None,
              noise_fraction: float = 0.0, no_pass: bool = False) -> bool:
        """Tree reuse: make slot ``dst`` the subtree of ``src`` below ``action`` (rooted at ``state``, the
        position after it), with fresh root noise. Returns False (and resets ``dst``) when that child was
        never expanded. ``no_pass`` as ``reset``'s: the kept root's pass is made illegal, and a subtree whose
        search had visited that pass is not kept (False, a fresh tree: its visits would count for no move)."""
        tr = self.trees
        child = int(tr.children[src, kernels.ROOT, action])
        passed = no_pass and child >= 0 and tr.children[src, child, self.num_actions - 1] >= 0
        if child < 0 or tr.status[src, child] != kernels.EXPANDED or passed:
            self.reset(dst, state, noise, noise_fraction, no_pass=no_pass)
            return False
        load_state(self.roots, dst, state)
        self._no_pass.discard(dst)
        kernels.extract_subtree(tr, src, child, dst, self._queue, self.params)
        tr.noise_fraction[dst] = 0.0
        tr.root_budget[dst] = 0  # a reused root searches by PUCT
        if noise is not None and noise_fraction > 0:
            tr.root_noise[dst] = noise
            kernels.mix_root_noise(tr, dst, noise_fraction)
        if no_pass:
            self.restrict_root(dst, [self.num_actions - 1])
        return True

    def searchable(self, state: GoState) -> np.ndarray:
        """bool [A]: the moves this search considers at ``state`` (legal, and not into the mover's own eyes
        unless ``search.fill_own_eyes``)."""
        out = np.zeros(self.num_actions, np.bool_)
        kernels.searchable_mask(state.core, state.hist, self.cfg.fill_own_eyes, out)
        return out

    def completed(self, slots=None):
        """Simulations completed below each root (the root's own evaluation not counted): an array for
        ``slots`` (None: every slot), an int for one slot (no arrays built: the pipeline asks at every stage
        boundary)."""
        if isinstance(slots, (int, np.integer)):
            return max(int(self.trees.visits[slots, kernels.ROOT]) - 1, 0)
        v = self.trees.visits[:, kernels.ROOT] if slots is None else self.trees.visits[slots, kernels.ROOT]
        return np.maximum(v - 1, 0)

    def reached(self, slots: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """The indices into ``slots`` (int32, contiguous) of the trees whose completed simulations reached their
        target, ``targets`` being indexed by slot (int64 [num_trees]): what a self-play loop asks after every
        batch, in one native call."""
        out = np.empty(len(slots), np.int64)
        n = self._reached.call(0, self.trees.visits, slots, targets, out)
        return out[:n]

    def wanted(self, slots: np.ndarray, targets) -> np.ndarray:
        """Leaves to ask of each slot this step: 1 for an unexpanded root, else up to ``leaves_per_tree``
        (capped at the evaluator's ``max_batch``) without passing ``targets`` (a per-slot or common
        simulation target)."""
        slots = np.ascontiguousarray(slots, np.int32)
        if not (isinstance(targets, np.ndarray) and targets.dtype == np.int64 and targets.shape == slots.shape
                and targets.flags.c_contiguous):
            targets = np.ascontiguousarray(np.broadcast_to(np.asarray(targets, np.int64), slots.shape))
        out = np.empty(len(slots), np.int32)
        self._wanted.call(0, slots, targets, self.trees, self.leaves_per_tree, out)
        return out

    def visit_counts(self, slot: int) -> np.ndarray:
        out = np.zeros(self.num_actions, np.int32)
        self._tree_calls["root_visit_counts"].call(0, self.trees, int(slot), out)
        return out

    def stage_events(self, slots: np.ndarray, next_event: np.ndarray, watch: np.ndarray, targets: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """After a batch, in one native call: the trees of ``slots`` (int32) whose completed simulations
        reached ``next_event[slot]``, in order; and for ``watch`` (int32 slots whose move is the most visited
        action), those whose leader can no longer be caught in the simulations left (``targets[slot]`` less
        those completed): (their indices into ``watch``, their leader, their simulations left). ``next_event``
        and ``targets`` are int64 arrays indexed by slot. The arrays returned are views of buffers that the next
        call overwrites."""
        crossed, sure, best, left = self._events
        n_crossed, n_sure = self._tree_calls["stage_events"].call(0, self.trees, slots, next_event, watch, targets,
                                                                  crossed, sure, best, left)
        return crossed[:n_crossed], sure[:n_sure], best[:n_sure], left[:n_sure]

    def ranked(self, slot: int, first: int, others: int) -> tuple[np.ndarray, np.ndarray]:
        """``first``, then up to ``others`` of the visited root actions by visits (lowest action on ties),
        as int64 actions and their shares of the root's visits (float64)."""
        actions, counts = self._ranked
        n, total = self._tree_calls["ranked_root_actions"].call(0, self.trees, int(slot), int(first), int(others),
                                                                actions, counts)
        return actions[:n].copy(), counts[:n] / max(total, 1)

    def root_value(self, slot: int) -> float:
        """Mean value of the search at the root, from the view of the side to move there."""
        tr = self.trees
        n = tr.visits[slot, kernels.ROOT]
        return float(-tr.value_sum[slot, kernels.ROOT] / n) if n > 0 else 0.0

    def root_prior(self, slot: int) -> np.ndarray:
        return self.trees.prior[slot, kernels.ROOT].copy()

    @property
    def sims_capacity(self) -> int:
        """The most simulations one tree holds (``node_budget``'s inverse)."""
        return self.max_nodes - self.leaves_per_tree - NODE_SLACK

    def full(self, slots: np.ndarray) -> np.ndarray:
        """Which trees of ``slots`` have no room left for another batch of leaves."""
        return self.trees.node_count[slots] + self.leaves_per_tree + NODE_SLACK > self.max_nodes

    def root_raw(self, slot: int) -> tuple[float, float]:
        """The net's own value and score of the root (side to move's view), before any search (a root kept by
        tree reuse has its subtree's mean score)."""
        return float(self.trees.nn_value[slot, kernels.ROOT]), float(self.trees.score_center[slot])

    def restrict_root(self, slot: int, forbidden) -> bool:
        """Make the actions ``forbidden`` (indices or a boolean mask) illegal at the expanded root of ``slot``
        and renormalise the rest (GUI avoid/allow lists). Returns False, changing nothing, when that would
        leave no legal move."""
        prior = self.trees.prior[slot, kernels.ROOT]
        keep = prior >= 0
        keep[forbidden] = False
        if not keep.any():
            return False
        prior[~keep] = kernels.ILLEGAL
        prior[keep] = prior[keep] / prior[keep].sum()
        return True

    def root_expanded(self, slot: int) -> bool:
        """Whether the root of ``slot`` has been evaluated (its priors exist: ``restrict_root`` can act)."""
        return bool(self.trees.status[slot, kernels.ROOT] == kernels.EXPANDED)

    def pv(self, slot: int, action: int) -> list[int]:
        """``action`` and the most visited line below it in the tree of ``slot`` (up to ``PV_MAX`` moves)."""
        child = int(self.trees.children[slot, kernels.ROOT, action])
        if child < 0:
            return [action]
        buf = np.zeros(PV_MAX, np.int32)
        n = kernels.principal_variation(self.trees, slot, child, buf)
        return [action] + [int(x) for x in buf[:n]]

    def pv_visits(self, slot: int, pv: list[int]) -> list[int]:
        """The visits of each node along ``pv`` from the root of ``slot`` (shorter where the tree ends)."""
        node, out = kernels.ROOT, []
        for action in pv:
            node = int(self.trees.children[slot, node, action])
            if node < 0:
                break
            out.append(int(self.trees.visits[slot, node]))
        return out

    def gumbel_action(self, slot: int) -> int:
        """A Gumbel root's move from its (partial or final) search: the most visited candidates ranked by
        ``g + log prior + sigma(q)``."""
        return int(self._tree_calls["gumbel_root_action"].call(0, self.trees, int(slot), self.params))

    def improved_policy(self, slot: int) -> np.ndarray:
        """The Gumbel policy target: ``softmax(log prior + sigma(completed q))`` over the legal root actions."""
        out = np.zeros(self.num_actions, np.float32)
        self._tree_calls["gumbel_improved_policy"].call(0, self.trees, int(slot), self.params, out)
        return out

    # -- the hot loop ----------------------------------------------------------------------------
    def step(self, slots: np.ndarray, wanted: np.ndarray) -> int:
        """One batch over ``slots``; returns the number of leaves evaluated and backed up.

        With ``search.overlap`` two batches are in flight: the first half of ``slots`` selects and its
        forward pass starts in a thread (on ``evaluator``); the second half selects meanwhile (into its own
        lane) and is evaluated on the twin while the first half backs up. Each tree's leaves, values and
        order are the same either way (trees are independent; every lookup of a step precedes its inserts),
        so records are unchanged."""
        slots = np.ascontiguousarray(slots, np.int32)
        wanted = np.ascontiguousarray(wanted, np.int32)
        parallel = self._parallel(len(slots), count=True)
        overlap = self._twin is not None and len(slots) >= 2
        half = len(slots) // 2 if overlap else len(slots)
        parts = (slice(0, half), slice(half, len(slots))) if overlap else (slice(0, len(slots)),)
        began = time.perf_counter()
        batches = [self._start(self.lanes[i], slots[part], wanted[part], parallel, overlap)
                   for i, part in enumerate(parts)]
        self.stats.steps += 1
        self.stats.overlapped_steps += int(overlap)
        done = sum(self._finish(batch, parallel) for batch in batches)
        if self.timeline is not None:
            self.timeline.append(("step", -1, began, time.perf_counter()))
        return done

    def start(self, lane: int, slots: np.ndarray, wanted: np.ndarray) -> InFlight:
        """Select, look up and encode one batch into ``lane`` (0, or 1 with ``search.overlap``) and start its
        forward pass (with ``search.overlap``: launched on a device that launches, else in the forward thread;
        without, run here); ``finish`` completes it. Two batches may be in flight at once, one per lane, over
        disjoint trees: what the speculation pipeline's overlap does (``specmcts.engine.speculation.Pipeline``)."""
        slots = np.ascontiguousarray(slots, np.int32)
        wanted = np.ascontiguousarray(wanted, np.int32)
        parallel = self._parallel(len(slots), count=True)
        self.stats.steps += 1
        return self._start(self.lanes[lane], slots, wanted, parallel, self._twin is not None)

    def finish(self, batch: InFlight) -> int:
        """Wait for ``batch``'s forward pass, then store, expand and back up; returns the leaves evaluated."""
        return self._finish(batch, self._parallel(len(batch.slots)))

    def _parallel(self, trees: int, count: bool = False) -> bool:
        """Whether a batch of ``trees`` trees runs the parallel kernels (numba's threads set for it);
        ``count``: a step's first call, counted in the statistics."""
        parallel = self.threads > 1 and trees >= self.cfg.parallel_min_trees
        if parallel:
            numba.set_num_threads(self.threads)
            self.stats.parallel_steps += int(count)
        return parallel

    def _start(self, lane: Lane, slots: np.ndarray, wanted: np.ndarray, parallel: bool, in_thread: bool
               ) -> InFlight:
        """Select, look up and encode one batch (one native call), and start (``in_thread``) or run its forward
        pass."""
        clock = time.perf_counter
        t0 = clock()
        starts = lane.row_start[:len(slots)]
        table_slots, source, unique = lane.dedup
        counts = lane.counts
        self._prepare[parallel].call(lane.index, slots, wanted, starts, self.trees, self.roots, lane.scratch, lane.leaves,
                                     self.params, self.cache.table, lane.miss_rows, table_slots, source, unique,
                                     lane.evaluator.inputs, counts)
        n, collisions, hits, misses, distinct = counts.tolist()
        t1 = clock()
        self.stats.seconds["select"] += t1 - t0
        if self.timeline is not None:
            self.timeline.append(("select", lane.index, t0, t1))
        answer = None
        if distinct:
            if in_thread and lane.evaluator.launches:  # a device computes while this thread goes on
                answer = lane.evaluator.launch(distinct)
            elif in_thread:
                answer = self._forwarder.submit(lane.evaluator.forward, distinct)
            else:
                answer = lane.evaluator.forward(distinct)
                self.stats.seconds["forward"] += clock() - t1
        return InFlight(lane, slots, wanted, starts, n, collisions, hits, misses, distinct, answer)

    def _finish(self, batch: InFlight, parallel: bool) -> int:
        """Wait for a batch's forward pass; store and scatter its answers, expand and back up (one native call)."""
        clock, spent, stats = time.perf_counter, self.stats.seconds, self.stats
        lane = batch.lane
        stats.collisions += batch.collisions
        if batch.leaves == 0:
            return 0
        t4 = t5 = clock()
        misses = 0
        out = self._no_answer
        if batch.answer is not None:
            out = batch.answer.result() if hasattr(batch.answer, "result") else batch.answer
            t5 = clock()
            spent["forward"] += t5 - t4  # in a thread: the part of the forward pass nothing overlapped
            misses = batch.misses
        stats.cache_hits += batch.hits
        stats.evals += batch.distinct
        stats.shared_rows += batch.misses - batch.distinct
        stats.batch_rows[batch.distinct] += 1
        self._complete[parallel].call((lane.index, out is self._no_answer), batch.slots, batch.wanted, batch.starts,
                                      self.trees, lane.scratch, lane.leaves, self.params, self.cache.table,
                                      lane.miss_rows, misses, lane.dedup[1], out.policy, out.value, out.score,
                                      bool(self.cfg.fill_own_eyes))
        if self._no_pass:
            self._forbid_root_pass(batch.slots)
        t6 = clock()
        spent["backup"] += t6 - t5
        if self.timeline is not None:
            self.timeline.append(("backup", lane.index, t5, t6))  # from the answer on (not the wait for it)
        evaluated = batch.leaves - batch.collisions
        stats.leaves += evaluated
        stats.terminal += evaluated - (batch.hits + batch.misses)
        return evaluated

    def _forbid_root_pass(self, slots: np.ndarray) -> None:
        """The roots of ``slots`` that may not pass and were just expanded lose their pass (``reset``)."""
        for slot in self._no_pass.intersection(slots.tolist()):
            if self.root_expanded(slot):
                self.restrict_root(slot, [self.num_actions - 1])  # no change if the pass is the only move
                self._no_pass.discard(slot)

    def close(self) -> None:
        """Stop the forward thread and release the twin evaluator (``search.overlap``)."""
        if self._twin is not None:
            self._forwarder.shutdown(wait=True)
            self._twin.close()
            self._twin = None

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
