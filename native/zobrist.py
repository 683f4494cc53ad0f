"""Zobrist keys: one random 64-bit word per (colour, padded point), fixed forever by a seed.

The table is a module-level constant, so numba freezes it into the compiled kernels.
"""
import numpy as np

from .layout import MAX_PADDED

ZOBRIST_SEED = 20261122

# ZOBRIST[colour, point]; row 0 (EMPTY) and 3 (BORDER) are unused zeros, kept so indexing by colour is direct.
ZOBRIST = np.zeros((4, MAX_PADDED), dtype=np.uint64)
ZOBRIST[1:3] = np.random.default_rng(ZOBRIST_SEED).integers(
    1, np.iinfo(np.uint64).max, size=(2, MAX_PADDED), dtype=np.uint64, endpoint=True
)
ZOBRIST.setflags(write=False)
