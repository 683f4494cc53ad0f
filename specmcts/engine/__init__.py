"""The engine: the network, the batched evaluator and its NN cache, the search and its speculation, and the
move rules every front-end shares. Imports only the rules (``games``, ``native``) and ``specmcts``'s
utilities (config, threads, stopping, atomic)."""
