"""Network input planes, written straight from the state arrays.

Planes (``NUM_PLANES`` = 18), from the side to move's point of view, AlphaZero style:
  0..7   the mover's stones now, 1, ..., 7 moves ago
  8..15  the opponent's stones at the same times
  16     1 everywhere if black is to move
  17     1 everywhere (lets the convolutions see the board edge through zero padding)
Positions before the first move are empty boards.
"""
from numba import njit

from .arrays import fill
from .layout import BLACK, HISTORY_PLANES, M_PAST_HEAD, M_SIZE, M_TO_PLAY

NUM_PLANES = 2 * HISTORY_PLANES + 2


@njit(cache=True)
def encode(core, past, out):
    """Write the planes of one state into ``out`` [NUM_PLANES, N, N] (any numeric dtype, C-contiguous).
    Each plane is a flat loop without branches over a past board, which LLVM vectorises: 7x faster than
    indexing ``out[t, r, c]`` (0.21 against 1.46 us on 9x9)."""
    size = core[M_SIZE]
    nn = size * size
    own = past.dtype.type(core[M_TO_PLAY])
    opp = past.dtype.type(3 - core[M_TO_PLAY])
    head = core[M_PAST_HEAD]
    flat = out.reshape(out.shape[0], nn)
    one = flat.dtype.type(1)
    zero = flat.dtype.type(0)
    for t in range(HISTORY_PLANES):
        base = ((head - t + HISTORY_PLANES) % HISTORY_PLANES) * nn
        mine = flat[t]
        theirs = flat[HISTORY_PLANES + t]
        for j in range(nn):
            v = past[base + j]
            mine[j] = one if v == own else zero
            theirs[j] = one if v == opp else zero
    black_to_move = one if core[M_TO_PLAY] == BLACK else zero
    fill(flat[2 * HISTORY_PLANES], black_to_move)
    fill(flat[2 * HISTORY_PLANES + 1], one)
