"""specmcts: AlphaZero-style self-play for Go with speculative, inter-decision parallel MCTS."""

from specmcts.threads import prepare_environment

__version__ = "0.1.0"

prepare_environment()  # before torch or numba load OpenMP: waiting threads sleep instead of spinning
