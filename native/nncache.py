"""NN cache kernels: a bounded, direct-mapped table of network outputs, and a hash evaluator for tests.

``Table`` (preallocated by ``specmcts.engine.nncache.NNCache``; ``cap`` a power of two, or 0 for a disabled cache):

    keys      uint64  [cap]      key of the entry in each slot; EMPTY_KEY (0) marks an empty slot
    policy    float32 [cap, A]   policy probabilities, stored exactly as the evaluator returned them
    value     float32 [cap]      value, same
    score     float32 [cap]      score, same (0 for nets without a score head)
    hits_by_move, misses_by_move  int64 [moves]  counters by the root's move number

A key lives in exactly one slot, ``mix(key) & (cap - 1)``; a new entry overwrites whatever was there (KataGo's
``NNCacheTable`` works the same way: bounded memory, no eviction bookkeeping). A real key equal to EMPTY_KEY
is stored as 1 (``cache_key``), so keys 0 and 1 share an entry; at 2^-64 per pair that is accepted.

Outputs are stored as float32 without compression, so a hit is bit-identical to the evaluation that was
inserted: speculation relies on a cached result being the result the search would have received fresh.

``hash_evaluate`` turns an xxHash64-style hash (single lane) of the exact bytes of an input row, seeded,
into a deterministic pseudo-random policy and value (``specmcts.engine.evaluator.HashEvaluator``).
"""
from typing import NamedTuple

import numpy as np
from numba import njit

from .arrays import copy_into

EMPTY_KEY = np.uint64(0)
_ONE = np.uint64(1)

# xxHash64 primes.
_P1 = np.uint64(0x9E3779B185EBCA87)
_P2 = np.uint64(0xC2B2AE3D27D4EB4F)
_P3 = np.uint64(0x165667B19E3779F9)
_P4 = np.uint64(0x85EBCA77C2B2AE63)
_P5 = np.uint64(0x27D4EB2F165667C5)
# splitmix64 constants.
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)

_S11 = np.uint64(11)
_S27 = np.uint64(27)
_S29 = np.uint64(29)
_S30 = np.uint64(30)
_S31 = np.uint64(31)
_S32 = np.uint64(32)
_S33 = np.uint64(33)
_S37 = np.uint64(37)
_S53 = np.uint64(53)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2^-53


@njit(cache=True, inline="always")
def _rotl(x, r, r_complement):
    return (x << r) | (x >> r_complement)


@njit(cache=True, inline="always")
def _splitmix_finalize(z):
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(cache=True, inline="always")
def cache_key(key):
    """The key as stored: EMPTY_KEY marks empty slots, so a real key 0 becomes 1."""
    return _ONE if key == EMPTY_KEY else key


@njit(cache=True, inline="always")
def _slot(key, cap):
    # Zobrist keys are already uniform, but keys from other sources may not be in their low bits.
    return np.int64(_splitmix_finalize(key) & np.uint64(cap - 1))


class Table(NamedTuple):
    """A direct-mapped cache of ``capacity`` entries (a power of two, or 0: disabled): per slot the stored key
    (``EMPTY_KEY``: empty), policy [A], value and score; and hit and miss counters by move number."""

    keys: np.ndarray
    policy: np.ndarray
    value: np.ndarray
    score: np.ndarray
    hits_by_move: np.ndarray
    misses_by_move: np.ndarray

    @classmethod
    def allocate(cls, capacity: int, num_actions: int, max_moves: int) -> "Table":
        return cls(keys=np.zeros(capacity, np.uint64), policy=np.zeros((capacity, num_actions), np.float32),
                   value=np.zeros(capacity, np.float32), score=np.zeros(capacity, np.float32),
                   hits_by_move=np.zeros(max_moves, np.int64), misses_by_move=np.zeros(max_moves, np.int64))


@njit(cache=True)
def _probe(table, key, out_policy, out_value, out_score, row):
    """Copy the entry of ``key`` into ``out_policy[row]``/``out_value[row]``/``out_score[row]``; False if absent."""
    table_keys = table.keys
    cap = table_keys.shape[0]
    if cap == 0:
        return False
    key = cache_key(key)
    s = _slot(key, cap)
    if table_keys[s] != key:
        return False
    copy_into(out_policy[row], table.policy[s], out_policy.shape[1])
    out_value[row] = table.value[s]
    out_score[row] = table.score[s]
    return True


@njit(cache=True)
def _store(table, key, policy, value, score, row):
    """Store ``policy[row]``/``value[row]``/``score[row]`` under ``key``, overwriting whatever shared its slot."""
    cap = table.keys.shape[0]
    if cap == 0:
        return
    key = cache_key(key)
    s = _slot(key, cap)
    table.keys[s] = key
    copy_into(table.policy[s], policy[row], policy.shape[1])
    table.value[s] = value[row]
    table.score[s] = score[row]


@njit(cache=True)
def _count(table, move_number, found):
    hits_by_move, misses_by_move = table.hits_by_move, table.misses_by_move
    last_move = hits_by_move.shape[0] - 1
    if last_move < 0:
        return
    m = min(max(np.int64(move_number), 0), last_move)
    if found:
        hits_by_move[m] += 1
    else:
        misses_by_move[m] += 1


@njit(cache=True)
def lookup(table, keys, move_numbers, out_policy, out_value, out_score, hit):
    """Answer ``keys[n]`` from the table: for each hit copy its row into ``out_policy[i]``/``out_value[i]``/
    ``out_score[i]`` and set ``hit[i]``; rows that miss are left untouched. Counts hits and misses per move number (clipped
    to ``0..len(hits_by_move) - 1``). Returns the number of hits."""
    hits = 0
    for i in range(keys.shape[0]):
        found = _probe(table, keys[i], out_policy, out_value, out_score, i)
        hit[i] = found
        _count(table, move_numbers[i], found)
        hits += found
    return hits


@njit(cache=True)
def insert(table, keys, policy, value, score):
    """Store ``policy[i]``/``value[i]``/``score[i]`` under ``keys[i]``, overwriting the slot's previous entry."""
    for i in range(keys.shape[0]):
        _store(table, keys[i], policy, value, score, i)


@njit(cache=True, nogil=True)
def lookup_leaves(table, leaves, n, eval_kind, miss_rows):
    """The search's fused lookup: for rows ``0..n-1`` of ``leaves`` (``native.tree.Leaves``) of kind
    ``eval_kind``, copy a hit straight into the leaf's policy, value and score and list a miss in
    ``miss_rows``. Returns (hits, misses)."""
    hits = 0
    misses = 0
    for j in range(n):
        if leaves.kind[j] != eval_kind:
            continue
        found = _probe(table, leaves.key[j], leaves.policy, leaves.value, leaves.score, j)
        _count(table, leaves.move_number[j], found)
        if found:
            hits += 1
        else:
            miss_rows[misses] = j
            misses += 1
    return hits, misses


@njit(cache=True, nogil=True)
def insert_leaves(table, leaves, miss_rows, m, source, policy, value, score):
    """Scatter the network's answers into the misses ``miss_rows[:m]`` of ``leaves`` (miss ``i`` is answered by
    row ``source[i]`` of ``policy``, ``value``, ``score``: ``dedup_misses``) and store them."""
    for i in range(m):
        j = miss_rows[i]
        r = source[i]
        copy_into(leaves.policy[j], policy[r], policy.shape[1])
        leaves.value[j] = value[r]
        leaves.score[j] = score[r]
        _store(table, leaves.key[j], policy, value, score, r)


@njit(cache=True, nogil=True)
def dedup_misses(leaves, miss_rows, m, slots, source, unique):
    """The distinct inputs among the cache misses ``miss_rows[:m]`` of one batch (trees of several games
    reach the same position: the empty board at every game's start). ``unique[:u]`` gets the first row of
    each distinct key, ``source[i]`` the index into ``unique`` that answers miss ``i``; returns ``u``.
    ``slots`` is scratch (int32, a power of two >= 2 m)."""
    cap = slots.shape[0]
    for s in range(cap):
        slots[s] = -1
    keys = leaves.key
    u = 0
    for i in range(m):
        key = keys[miss_rows[i]]
        s = _slot(cache_key(key), cap)
        while True:
            j = slots[s]
            if j < 0:
                slots[s] = u
                unique[u] = miss_rows[i]
                source[i] = u
                u += 1
                break
            if keys[unique[j]] == key:
                source[i] = j
                break
            s = (s + 1) & (cap - 1)
    return u


@njit(cache=True)
def _hash_row(rows, i, seed):
    """xxHash64 single-lane mixing of the bytes of ``rows[i]`` (uint8), seeded."""
    length = rows.shape[1]
    h = seed + _P5 + np.uint64(length)
    j = 0
    while j + 8 <= length:
        w = np.uint64(0)
        for k in range(8):
            w |= np.uint64(rows[i, j + k]) << np.uint64(8 * k)
        w = _rotl(w * _P2, _S31, _S33) * _P1
        h = _rotl(h ^ w, _S27, _S37) * _P1 + _P4
        j += 8
    while j < length:
        h ^= np.uint64(rows[i, j]) * _P5
        h = _rotl(h, _S11, _S53) * _P1
        j += 1
    h ^= h >> _S33
    h *= _P2
    h ^= h >> _S29
    h *= _P3
    h ^= h >> _S32
    return h


@njit(cache=True)
def row_keys(rows, n, seed, out):
    """``out[i]``: the cache key of the exact bytes of ``rows[i]`` (uint8 [n, C*N*N]) for ``i < n``: the
    key of a network input itself (what a server that sees only input rows caches under)."""
    for i in range(n):
        out[i] = cache_key(_hash_row(rows, i, seed))


@njit(cache=True, nogil=True)
def hash_evaluate(rows, seed, out_policy, out_value):
    """Deterministic pseudo-random (policy, value) per row, a function of the row's bytes and ``seed`` only.

    Policy: softmax of uniform(0, 4) logits over all actions (peaked enough that argmax is meaningful);
    value: uniform in [-1, 1)."""
    num_actions = out_policy.shape[1]
    for i in range(rows.shape[0]):
        h = _hash_row(rows, i, seed)
        state = h
        total = 0.0
        for a in range(num_actions):
            state += _GOLDEN
            u = np.float64(_splitmix_finalize(state) >> _S11) * _TO_UNIT
            total += np.exp(4.0 * u)
        state = h
        for a in range(num_actions):
            state += _GOLDEN
            u = np.float64(_splitmix_finalize(state) >> _S11) * _TO_UNIT
            out_policy[i, a] = np.float32(np.exp(4.0 * u) / total)
        state += _GOLDEN
        u = np.float64(_splitmix_finalize(state) >> _S11) * _TO_UNIT
        out_value[i] = np.float32(2.0 * u - 1.0)


def seed_u64(extra) -> np.uint64:
    """Any Python int (negative included) as a uint64 seed."""
    return np.uint64(int(extra) & 0xFFFFFFFFFFFFFFFF)
