"""Network input planes, written straight from the state arrays.

Planes (``NUM_PLANES`` = 18), from the side to move's point of view, AlphaZero style:
  0..7   the mover's stones now, 1, ..., 7 moves ago
  8..15  the opponent's stones at the same times
  16     1 everywhere if black is to move
  17     1 everywhere (lets the convolutions see the board edge through zero padding)
Positions before the first move are empty boards.
"""
from numba import njit

from .layout import BLACK, HISTORY_PLANES, M_PAST_HEAD, M_SIZE, M_TO_PLAY

NUM_PLANES = 2 * HISTORY_PLANES + 2


@njit(cache=True)
def encode(core, past, out):
    """Write the planes of one state into ``out`` [NUM_PLANES, N, N] (any numeric dtype)."""
    size = core[M_SIZE]
    nn = size * size
    own = core[M_TO_PLAY]
    head = core[M_PAST_HEAD]
    black_to_move = 1 if own == BLACK else 0
    for t in range(HISTORY_PLANES):
        slot = (head - t + HISTORY_PLANES) % HISTORY_PLANES
        base = slot * nn
        for r in range(size):
            for c in range(size):
                v = past[base + r * size + c]
                out[t, r, c] = 1 if v == own else 0
                out[HISTORY_PLANES + t, r, c] = 1 if (v != 0 and v != own) else 0
    for r in range(size):
        for c in range(size):
            out[2 * HISTORY_PLANES, r, c] = black_to_move
            out[2 * HISTORY_PLANES + 1, r, c] = 1
