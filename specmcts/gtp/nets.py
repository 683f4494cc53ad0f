"""The GTP engine's networks: one per board size, from a checkpoint, the embedded default or a fresh net."""
from __future__ import annotations

from typing import Callable


from native import layout


FRESH = "fresh"  # --model fresh: play with an untrained net, seeded by the config's seed


class NetSource:
    """Where nets come from: a checkpoint (one board size), else an embedded default for the size if one
    ships in ``specmcts/weights/go<N>.pt`` (not with ``--model fresh``), else a fresh net seeded by the
    config's seed."""

    def __init__(self, cfg, model_path: str | None = None, log: Callable[[str], None] = lambda message: None):
        self.cfg = cfg
        self.log = log
        self._loaded = None
        self._by_size: dict = {}  # size -> the embedded or fresh net, built once (final_score asks often)
        self._fixed_size = None
        self._fresh = model_path == FRESH  # --model fresh: an untrained net even where one ships
        if model_path and not self._fresh:
            from specmcts.network import load_model

            self._loaded, _meta = load_model(model_path, device="cpu")
            self._fixed_size = self._loaded.board_size
            log(f"model {model_path} ({self._loaded.model_id}), {self._fixed_size}x{self._fixed_size}")

    @property
    def fixed_size(self) -> int | None:
        return self._fixed_size

    def supports(self, size: int) -> bool:
        return layout.MIN_SIZE <= size <= layout.MAX_SIZE and (self._fixed_size is None or size == self._fixed_size)

    def net(self, size: int):
        if self._loaded is not None:
            return self._loaded
        if size not in self._by_size:
            self._by_size[size] = self._build(size)
        return self._by_size[size]

    def _build(self, size: int):
        from specmcts.network import embedded_model, load_model

        embedded = None if self._fresh else embedded_model(size)
        if embedded is not None:
            net, _ = load_model(embedded, device="cpu", expect_board=size)
            self.log(f"no --model: using the embedded net {embedded.name} ({net.model_id})")
            return net
        from specmcts.backends import load_fixed_net

        net = load_fixed_net(self.cfg, FRESH, board=size)  # the same "fresh" as backends.FRESH
        self.log(f"no --model and no embedded net for {size}x{size}: playing with a fresh, untrained "
                 f"{self.cfg.net.blocks}x{self.cfg.net.channels} net ({net.model_id})")
        return net
