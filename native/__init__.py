"""numba kernels: Go rules on fixed-size arrays, feature planes, and (later) the MCTS tree.

The only place where per-point and per-node loops live; everything here is ``@njit(cache=True)``.
"""
