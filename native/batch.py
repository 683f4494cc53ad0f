"""One evaluator batch of many searches in two native calls.

A batch of ``specmcts.engine.search.Search`` is, for every tree of every game in it:

1. ``prepare_batch``: reserve each tree's rows (``tree.reserve_rows``), select its leaves (``tree``'s walks,
   virtual loss), answer what the NN cache knows (``nncache.lookup_leaves``), de-duplicate the misses
   (``nncache.dedup_misses``) and write one input row per distinct position into the evaluator's inputs
   (``features.encode``);
2. the evaluator's forward pass over those rows (the device's work; Python starts it);
3. ``complete_batch``: give every miss its row's answer and store it in the cache (``nncache.insert_leaves``),
   expand the new leaves and back every value up (``tree``'s backup).

Each is one call from Python whatever the number of trees, games or speculation levels in the batch: the CPU
cost of a batch is the work on its leaves plus two calls' fixed cost, not a Python loop over searches.
The ``_parallel`` variants run the per-tree parts over numba's threads (trees are independent; a tree's
leaves stay in order), with identical results. Both release the GIL, so a forward pass can run in another thread meanwhile.
"""
import numpy as np
from numba import njit

from .nncache import dedup_misses, insert_leaves, lookup_leaves
from .tree import (EXPANDED, LEAF_EVAL, encode_leaves, encode_leaves_parallel, expand_and_backup,
                   expand_and_backup_parallel, select_leaves, select_leaves_parallel)

# prepare_batch's counts, by index
ROWS = 0  # rows reserved (selected leaves, collided walks included)
COLLISIONS = 1  # walks dropped: they met a leaf already pending in the batch
HITS = 2  # leaves the NN cache answered
MISSES = 3  # leaves that need the network
DISTINCT = 4  # distinct inputs among the misses: the rows written to the evaluator's inputs
COUNTS = 5


@njit(cache=True, nogil=True)
def prepare_batch(slots, wanted, row_start, tr, roots, scratch, leaves, p, table, miss_rows, dedup_slots, source,
                  unique, inputs, counts):
    """Select ``wanted[i]`` leaves in tree ``slots[i]`` (all or none per tree, in ``slots``' order of priority),
    look them up, and encode the distinct misses into ``inputs[:counts[DISTINCT]]``; ``counts`` (int64
    [COUNTS]) gets the figures above. Miss ``i`` is leaf row ``miss_rows[i]``, answered by input row
    ``source[i]``."""
    n, collisions = select_leaves(slots, wanted, row_start, tr, roots, scratch, leaves, p)
    distinct = _lookup(n, collisions, leaves, table, miss_rows, dedup_slots, source, unique, counts)
    if distinct > 0:
        encode_leaves(scratch, unique[:distinct], inputs)


@njit(cache=True, nogil=True)
def prepare_batch_parallel(slots, wanted, row_start, tr, roots, scratch, leaves, p, table, miss_rows, dedup_slots,
                           source, unique, inputs, counts):
    """``prepare_batch`` with the trees over numba's threads. A function of its own, so that a process that
    never runs a parallel batch never starts numba's thread pool (starting it sets OpenMP's thread count,
    which torch's pool shares)."""
    n, collisions = select_leaves_parallel(slots, wanted, row_start, tr, roots, scratch, leaves, p)
    distinct = _lookup(n, collisions, leaves, table, miss_rows, dedup_slots, source, unique, counts)
    if distinct > 0:
        encode_leaves_parallel(scratch, unique[:distinct], inputs)


@njit(cache=True, nogil=True)
def _lookup(n, collisions, leaves, table, miss_rows, dedup_slots, source, unique, counts):
    """The cache lookup and the misses' de-duplication of a selected batch; fills ``counts``, returns the
    distinct rows to encode."""
    hits = 0
    misses = 0
    distinct = 0
    if n > 0:
        hits, misses = lookup_leaves(table, leaves, n, LEAF_EVAL, miss_rows)
        if misses > 0:
            distinct = dedup_misses(leaves, miss_rows, misses, dedup_slots, source, unique)
    counts[ROWS] = n
    counts[COLLISIONS] = collisions
    counts[HITS] = hits
    counts[MISSES] = misses
    counts[DISTINCT] = distinct
    return distinct


@njit(cache=True, nogil=True)
def complete_batch(slots, wanted, row_start, tr, scratch, leaves, p, table, miss_rows, misses, source, policy,
                   value, score, fill_eyes):
    """The evaluator answered input row ``r`` with ``policy[r]``, ``value[r]``, ``score[r]``: give each of the
    ``misses`` its answer and store it in the cache, then expand and back up every leaf of the batch."""
    if misses > 0:
        insert_leaves(table, leaves, miss_rows, misses, source, policy, value, score)
    expand_and_backup(slots, wanted, row_start, tr, scratch, leaves, p, fill_eyes)


@njit(cache=True, nogil=True)
def complete_batch_parallel(slots, wanted, row_start, tr, scratch, leaves, p, table, miss_rows, misses, source,
                            policy, value, score, fill_eyes):
    """``complete_batch`` with the trees over numba's threads (see ``prepare_batch_parallel``)."""
    if misses > 0:
        insert_leaves(table, leaves, miss_rows, misses, source, policy, value, score)
    expand_and_backup_parallel(slots, wanted, row_start, tr, scratch, leaves, p, fill_eyes)


@njit(cache=True, nogil=True)
def wanted_leaves(slots, targets, tr, leaves_per_tree, out):
    """``out[i]``: the leaves to ask of tree ``slots[i]`` this batch: 1 for an unexpanded root, else up to
    ``leaves_per_tree`` without passing ``targets[i]`` simulations below the root."""
    for i in range(slots.shape[0]):
        t = slots[i]
        if tr.status[t, 0] != EXPANDED:
            out[i] = 1
            continue
        remaining = targets[i] - max(tr.visits[t, 0] - 1, 0)
        out[i] = min(max(remaining, 0), leaves_per_tree)


@njit(cache=True)
def reached(visits, slots, targets, out):
    """The indices ``i`` of the trees ``slots[i]`` whose simulations below the root (``visits[t, 0] - 1``, the
    root's own evaluation not counted) reached ``targets[slots[i]]``, into ``out``; returns how many."""
    n = 0
    for i in range(slots.shape[0]):
        t = slots[i]
        if max(visits[t, 0] - 1, 0) >= targets[t]:
            out[n] = i
            n += 1
    return n


def counts_array() -> np.ndarray:
    return np.zeros(COUNTS, np.int64)
