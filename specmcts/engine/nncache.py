"""NN cache: exact network-input key -> (policy, value, score), bounded, with hit/miss counters by move number.

Keys are 64-bit hashes of the exact network input (position, history, side to move, komi/rules); the
search derives them from the Zobrist hashes of the position and its history (``native.tree.input_key``). Entries are stored bit-exactly (float32), so a hit returns what a fresh evaluation of the same
input by the same model returned. The cache knows nothing about models: clear it when the weights change.

Memory: ``capacity * (8 + 4 * (A + 2))`` bytes, about 344 MB for 2^20 entries on 9x9 and 1.5 GB on 19x19.
Arrays are allocated with ``np.zeros`` (pages are committed as they are first written), and ``clear`` only
resets the keys.
"""
from __future__ import annotations

import numpy as np

from native import nncache as kernels


def round_capacity(capacity: int) -> int:
    """The largest power of two <= ``capacity``; 0 (disabled) for capacity <= 0."""
    capacity = int(capacity)
    return 0 if capacity <= 0 else 1 << (capacity.bit_length() - 1)


class NNCache:
    """Direct-mapped cache of ``capacity`` entries (rounded down to a power of two; 0 disables it: every lookup
    misses, inserts do nothing, counters still count) over ``num_actions`` policy entries.

    ``max_moves`` is the length of the per-move-number counters; later moves are counted in the last one."""

    def __init__(self, capacity: int, num_actions: int, max_moves: int):
        if num_actions < 1 or max_moves < 1:
            raise ValueError(f"num_actions and max_moves must be >= 1, got {num_actions}, {max_moves}")
        self.capacity = round_capacity(capacity)
        self.num_actions = int(num_actions)
        self.max_moves = int(max_moves)
        self.table = kernels.Table.allocate(self.capacity, self.num_actions, self.max_moves)
        # the table's arrays by name (the score is the score head's answer, 0 for nets without one)
        self.keys, self.policy, self.value, self.score = (self.table.keys, self.table.policy, self.table.value,
                                                          self.table.score)
        self.hits_by_move, self.misses_by_move = self.table.hits_by_move, self.table.misses_by_move

    @classmethod
    def for_board(cls, capacity: int, board: int) -> "NNCache":
        """A cache for ``board`` x ``board`` Go: N * N + 1 actions, counters for every move a game can have."""
        return cls(capacity, board * board + 1, 2 * board * board + 1)

    @property
    def enabled(self) -> bool:
        return self.capacity > 0

    @property
    def nbytes(self) -> int:
        """Memory footprint of the table and counters, in bytes (once every page has been touched)."""
        return sum(a.nbytes for a in (self.keys, self.policy, self.value, self.score, self.hits_by_move,
                                      self.misses_by_move))

    def lookup(self, keys: np.ndarray, move_numbers: np.ndarray, out_policy: np.ndarray, out_value: np.ndarray,
               hit: np.ndarray, out_score: np.ndarray | None = None) -> int:
        """For each ``keys[i]`` found, copy its entry into ``out_policy[i]`` (float32 [n, A]),
        ``out_value[i]`` (float32 [n]) and ``out_score[i]`` (if given) and set ``hit[i]`` (bool [n]); other
        rows are left as they were. Counts each key as a hit or miss at ``move_numbers[i]``. Returns the
        number of hits."""
        keys = np.asarray(keys, np.uint64)
        n = keys.shape[0]
        if out_score is None:
            out_score = np.zeros(n, np.float32)
        if out_policy.shape[0] < n or out_value.shape[0] < n or hit.shape[0] < n or len(move_numbers) < n:
            raise ValueError(f"lookup of {n} keys: output arrays and move_numbers need at least {n} rows")
        if out_policy.shape[1] != self.num_actions:
            raise ValueError(f"out_policy has {out_policy.shape[1]} actions, cache holds {self.num_actions}")
        return int(kernels.lookup(self.table, keys, np.asarray(move_numbers), out_policy, out_value, out_score, hit))

    def insert(self, keys: np.ndarray, policy: np.ndarray, value: np.ndarray, score: np.ndarray | None = None) -> None:
        """Store ``policy[i]``, ``value[i]`` and ``score[i]`` (default 0) under ``keys[i]`` (overwriting
        whatever shared its slot)."""
        if not self.enabled:
            return
        keys = np.asarray(keys, np.uint64)
        n = keys.shape[0]
        if policy.shape[0] < n or value.shape[0] < n or policy.shape[1] != self.num_actions:
            raise ValueError(f"insert of {n} keys: need policy [{n}, {self.num_actions}] and value [{n}]")
        score = np.zeros(n, np.float32) if score is None else np.asarray(score, np.float32)
        kernels.insert(self.table, keys, np.asarray(policy, np.float32), np.asarray(value, np.float32), score)

    # -- statistics --------------------------------------------------------------------------------
    @property
    def hits(self) -> int:
        return int(self.hits_by_move.sum())

    @property
    def misses(self) -> int:
        return int(self.misses_by_move.sum())

    @property
    def hit_rate(self) -> float:
        """Hits / lookups since the last ``reset_stats`` (0.0 before any lookup)."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def hit_rate_by_move(self) -> np.ndarray:
        """float64 [max_moves]: hit rate at each move number, NaN where there was no lookup."""
        total = self.hits_by_move + self.misses_by_move
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, self.hits_by_move / np.maximum(total, 1), np.nan)

    def reset_stats(self) -> None:
        self.hits_by_move[:] = 0
        self.misses_by_move[:] = 0

    def clear(self) -> None:
        """Forget every entry (e.g. when the model changes); statistics are kept."""
        self.keys[:] = kernels.EMPTY_KEY

    def __len__(self) -> int:
        """Occupied slots (O(capacity): for reports, not the hot loop)."""
        return int(np.count_nonzero(self.keys))

    def __repr__(self) -> str:
        return (f"NNCache(capacity={self.capacity}, num_actions={self.num_actions}, "
                f"{self.nbytes / 2**20:.1f} MiB, hit_rate={self.hit_rate:.3f})")
