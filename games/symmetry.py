"""The 8 symmetries of the square board: what training augments samples with and what KataGo's
``kata-raw-nn`` reports under."""
from __future__ import annotations

import numpy as np

NUM_SYMMETRIES = 8


def apply_symmetry(grids: np.ndarray, symmetry: int) -> np.ndarray:
    """One of the 8 symmetries of the square on the last two axes of ``grids`` ([..., N, N]).

    ``symmetry`` in 0..7: ``symmetry % 4`` quarter turns, then a left-right mirror if ``symmetry >= 4``.
    Feature planes and the board part of a policy go through this same function, which is what keeps them
    consistent."""
    out = np.rot90(grids, symmetry % 4, axes=(-2, -1))
    if symmetry >= 4:
        out = out[..., ::-1]
    return out


def symmetric_action(size: int, action: int, symmetry: int) -> int:
    """Where ``action`` (a point, or pass) goes under ``symmetry``."""
    if action >= size * size:
        return action
    grid = np.zeros((size, size), np.int8)
    grid.flat[action] = 1
    return int(np.flatnonzero(apply_symmetry(grid, symmetry))[0])
