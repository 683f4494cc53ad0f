"""NN cache kernels: a bounded, direct-mapped table of network outputs, and a 64-bit hash of network inputs.

Table (preallocated by ``specmcts.nncache.NNCache``; ``cap`` a power of two, or 0 for a disabled cache):

    table_keys    uint64  [cap]      key of the entry in each slot; EMPTY_KEY (0) marks an empty slot
    table_policy  float32 [cap, A]   policy probabilities, stored exactly as the evaluator returned them
    table_value   float32 [cap]      value, same

A key lives in exactly one slot, ``mix(key) & (cap - 1)``; a new entry overwrites whatever was there (KataGo's
``NNCacheTable`` works the same way: bounded memory, no eviction bookkeeping). A real key equal to EMPTY_KEY
is stored as 1 (``cache_key``), so keys 0 and 1 share an entry; at 2^-64 per pair that is accepted.

Outputs are stored as float32 without compression, so a hit is bit-identical to the evaluation that was
inserted: speculation relies on a cached result being the result the search would have received fresh.

``hash_rows`` is an xxHash64-style hash (single lane) over the exact bytes of an input row, seeded with
``extra`` (komi, rules, model, ...); ``hash_evaluate`` turns the same hash into a deterministic pseudo-random
policy and value (``specmcts.evaluator.HashEvaluator``).
"""
import numpy as np
from numba import njit

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


@njit(cache=True)
def _probe(table_keys, table_policy, table_value, table_score, key, out_policy, out_value, out_score, row):
    """Copy the entry of ``key`` into ``out_policy[row]``/``out_value[row]``/``out_score[row]``; False if absent."""
    cap = table_keys.shape[0]
    if cap == 0:
        return False
    key = cache_key(key)
    s = _slot(key, cap)
    if table_keys[s] != key:
        return False
    out_policy[row, :] = table_policy[s, :]
    out_value[row] = table_value[s]
    out_score[row] = table_score[s]
    return True


@njit(cache=True)
def _store(table_keys, table_policy, table_value, table_score, key, policy, value, score, row):
    """Store ``policy[row]``/``value[row]``/``score[row]`` under ``key``, overwriting whatever shared its slot."""
    cap = table_keys.shape[0]
    if cap == 0:
        return
    key = cache_key(key)
    s = _slot(key, cap)
    table_keys[s] = key
    table_policy[s, :] = policy[row, :]
    table_value[s] = value[row]
    table_score[s] = score[row]


@njit(cache=True)
def _count(hits_by_move, misses_by_move, move_number, found):
    last_move = hits_by_move.shape[0] - 1
    if last_move < 0:
        return
    m = min(max(np.int64(move_number), 0), last_move)
    if found:
        hits_by_move[m] += 1
    else:
        misses_by_move[m] += 1


@njit(cache=True)
def lookup(table_keys, table_policy, table_value, table_score, keys, move_numbers, out_policy, out_value, out_score,
           hit, hits_by_move, misses_by_move):
    """Answer ``keys[n]`` from the table: for each hit copy its row into ``out_policy[i]``/``out_value[i]``/
    ``out_score[i]`` and set ``hit[i]``; rows that miss are left untouched. Counts hits and misses per move number (clipped
    to ``0..len(hits_by_move) - 1``). Returns the number of hits."""
    hits = 0
    for i in range(keys.shape[0]):
        found = _probe(table_keys, table_policy, table_value, table_score, keys[i], out_policy, out_value, out_score, i)
        hit[i] = found
        _count(hits_by_move, misses_by_move, move_numbers[i], found)
        hits += found
    return hits


@njit(cache=True)
def insert(table_keys, table_policy, table_value, table_score, keys, policy, value, score):
    """Store ``policy[i]``/``value[i]``/``score[i]`` under ``keys[i]``, overwriting the slot's previous entry."""
    for i in range(keys.shape[0]):
        _store(table_keys, table_policy, table_value, table_score, keys[i], policy, value, score, i)


@njit(cache=True)
def lookup_leaves(table_keys, table_policy, table_value, table_score, n, leaf_kind, eval_kind, leaf_key,
                  leaf_move_number, leaf_policy, leaf_value, leaf_score, miss_rows, hits_by_move, misses_by_move):
    """The search's fused lookup: for leaves ``0..n-1`` of kind ``eval_kind``, copy a hit straight into
    ``leaf_policy[j]``/``leaf_value[j]``/``leaf_score[j]`` and list a miss in ``miss_rows``. Returns (hits,
    misses)."""
    hits = 0
    misses = 0
    for j in range(n):
        if leaf_kind[j] != eval_kind:
            continue
        found = _probe(table_keys, table_policy, table_value, table_score, leaf_key[j], leaf_policy, leaf_value,
                       leaf_score, j)
        _count(hits_by_move, misses_by_move, leaf_move_number[j], found)
        if found:
            hits += 1
        else:
            miss_rows[misses] = j
            misses += 1
    return hits, misses


@njit(cache=True)
def insert_leaves(table_keys, table_policy, table_value, table_score, miss_rows, m, leaf_key, policy, value, score,
                  leaf_policy, leaf_value, leaf_score):
    """Scatter the network's answers for ``miss_rows[:m]`` into the leaf arrays and store them."""
    for i in range(m):
        j = miss_rows[i]
        leaf_policy[j, :] = policy[i, :]
        leaf_value[j] = value[i]
        leaf_score[j] = score[i]
        _store(table_keys, table_policy, table_value, table_score, leaf_key[j], policy, value, score, i)


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
def hash_rows(rows, seed, out):
    """``out[i]`` = 64-bit hash of the bytes of ``rows[i]`` (uint8 [n, L], C-contiguous rows) and ``seed``."""
    for i in range(rows.shape[0]):
        out[i] = _hash_row(rows, i, seed)


@njit(cache=True)
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


def as_rows(features: np.ndarray) -> np.ndarray:
    """View input planes ``[C, N, N]`` or ``[n, C, N, N]`` (uint8) as C-contiguous bytes ``[n, C*N*N]``."""
    features = np.asarray(features)
    if features.dtype != np.uint8:
        raise TypeError(f"network inputs are hashed as uint8 bytes, got {features.dtype}")
    if features.ndim == 3:
        features = features[None]
    if features.ndim != 4:
        raise ValueError(f"expected planes [C, N, N] or [n, C, N, N], got shape {features.shape}")
    return np.ascontiguousarray(features).reshape(features.shape[0], -1)


def seed_u64(extra) -> np.uint64:
    """Any Python int (negative included) as a uint64 seed."""
    return np.uint64(int(extra) & 0xFFFFFFFFFFFFFFFF)


def hash_features(features: np.ndarray, extra: int = 0):
    """64-bit hash of the exact network input: uint64 [n] for ``[n, C, N, N]``, one ``np.uint64`` for
    ``[C, N, N]``. ``extra`` is mixed in (e.g. komi and rules, which the planes do not show)."""
    single = np.ndim(features) == 3
    rows = as_rows(features)
    out = np.empty(rows.shape[0], np.uint64)
    hash_rows(rows, seed_u64(extra), out)
    return out[0] if single else out
