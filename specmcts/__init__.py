"""specmcts: AlphaZero-style self-play for Go with speculative, inter-decision parallel MCTS."""

__version__ = "0.1.0"
