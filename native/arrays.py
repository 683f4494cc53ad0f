"""Copies and fills as explicit loops.

numba compiles a slice assignment (``dst[:] = src``, ``x[i, :] = v``) through its general broadcasting
path, about ten times slower than the plain loop for the short rows of the hot path (a Go state: 1.5 us
against 0.15 us on 9x9). Kernels call these instead.
"""
from numba import njit


@njit(cache=True, inline="always")
def copy_into(dst, src, n):
    """``dst[:n] = src[:n]`` for 1-d arrays."""
    for i in range(n):
        dst[i] = src[i]


@njit(cache=True, inline="always")
def fill(dst, value):
    """``dst[:] = value`` for a 1-d array."""
    for i in range(dst.shape[0]):
        dst[i] = value
