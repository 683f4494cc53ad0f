"""The GTP engine's networks: one per board size, from a checkpoint, the embedded default or a fresh net."""
from __future__ import annotations

from typing import Callable

from native import layout
from specmcts.engine.network import FRESH, load_fixed_net


class NetSource:
    """Where nets come from, one per board size:

    - ``--model PATH``: that checkpoint. A net with KataGo-style heads plays every size (its weights do not
      depend on the board); an fc-heads net only its own, which then fixes the engine's board size.
    - no ``--model``: the net that ships for the size (``specmcts/weights/go<N>.pt``), else the shipped net of
      another size, which plays any size (it says so: it was not trained there), else a fresh net.
    - ``--model fresh``: an untrained net seeded by the config's seed, even where one ships.
    Each size's net is built once, and the log says which net plays which size."""

    def __init__(self, cfg, model_path: str | None = None, log: Callable[[str], None] = lambda message: None):
        self.cfg = cfg
        self.log = log
        self._by_size: dict = {}  # size -> its net, built once (final_score asks often)
        self._fixed_size = None
        self._fresh = model_path == FRESH  # --model fresh: an untrained net even where one ships
        self._path = None if self._fresh else model_path
        if self._path:
            from specmcts.engine.network import load_model

            net, meta = load_model(self._path, device="cpu")
            if not net.kata:
                self._fixed_size = net.board_size
            self._by_size[net.board_size] = net
            log(f"model {self._path} ({net.model_id}), trained on {net.board_size}x{net.board_size}"
                + ("" if self._fixed_size else "; its kata heads play every board size"))

    @property
    def fixed_size(self) -> int | None:
        return self._fixed_size

    def supports(self, size: int) -> bool:
        return layout.MIN_SIZE <= size <= layout.MAX_SIZE and (self._fixed_size is None or size == self._fixed_size)

    def net(self, size: int):
        if size not in self._by_size:
            self._by_size[size] = self._build(size)
        return self._by_size[size]

    def _build(self, size: int):
        from specmcts.engine.network import embedded_any, load_model

        if self._path:
            net, _ = load_model(self._path, device="cpu", expect_board=size)
            self.log(f"{size}x{size}: {self._path}, trained on {net.trained_board}x{net.trained_board} "
                     f"({net.model_id})")
            return net
        if not self._fresh:
            found = embedded_any(size)
            if found is not None:
                path, trained = found
                net, _ = load_model(path, device="cpu", expect_board=size)
                if trained == size:
                    self.log(f"{size}x{size}: using the embedded net {path.name} ({net.model_id})")
                else:
                    self.log(f"{size}x{size}: no net trained for this size ships; playing the {trained}x{trained} "
                             f"net {path.name} ({net.model_id}), which plays every size but was not trained on "
                             f"this one")
                return net
        net = load_fixed_net(self.cfg, FRESH, board=size)
        self.log(f"{size}x{size}: a fresh, untrained {self.cfg.net.blocks}x{self.cfg.net.channels} net "
                 f"({net.model_id})")
        return net
