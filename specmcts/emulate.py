"""The measured H100 forward table, shipped with the package, and the time it gives a batch.

The table (``specmcts/data/h100_forward.json``): one forward pass of the project's ResNet on one H100,
measured 2026-11-22, batch 1..2048, fp32 and bf16, eager and CUDA graph, for 9x9 6x64 and 10x128 and 19x19
10x128 and 20x256 nets. ``forward_cost`` picks the bf16 CUDA-graph rows of the net nearest to the one
played (by compute, blocks x channels^2) and says when it is not the same net.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parent / "data"


def forward_table(device: str = "h100") -> dict:
    """The measured forward-pass table of ``device`` shipped with the package: ``what`` (how it was
    measured), ``measured`` (the date), ``rows`` ({board, blocks, ch, dtype, mode, batch, ms, evals_per_s})."""
    path = DATA_DIR / f"{device.lower()}_forward.json"
    if not path.is_file():
        have = sorted(p.name.split("_forward")[0] for p in DATA_DIR.glob("*_forward.json"))
        raise ValueError(f"no forward table for device {device!r} (the package has: {', '.join(have) or 'none'})")
    return json.loads(path.read_text())


def _compute(blocks: int, channels: int) -> float:
    return float(blocks) * float(channels) ** 2


@dataclass
class ForwardCost:
    """The time one forward pass of ``rows`` rows takes on the device, from its measured table: linear in
    log(rows) between the measured batch sizes, the smallest size's time below it, and proportional to rows
    beyond the largest (the device is saturated there). A batch of 0 rows sends nothing and costs nothing."""

    device: str
    board: int
    blocks: int
    channels: int
    dtype: str
    mode: str
    measured: str
    batch: np.ndarray  # measured batch sizes, ascending
    ms: np.ndarray  # their times
    note: str = ""  # set when the table's net is not the one played

    @property
    def label(self) -> str:
        return (f"{self.device.upper()} {self.board}x{self.board} {self.blocks}x{self.channels} {self.dtype} "
                f"{'CUDA graph' if self.mode == 'cudagraph' else self.mode} (measured {self.measured})")

    def ms_at(self, rows):
        """Milliseconds for batches of ``rows`` rows (a number or an array)."""
        r = np.asarray(rows, float)
        inside = np.interp(np.log(np.maximum(r, 1.0)), np.log(self.batch), self.ms)
        beyond = self.ms[-1] * r / self.batch[-1]
        out = np.where(r > self.batch[-1], beyond, inside)
        out = np.where(r > 0, out, 0.0)
        return float(out) if np.ndim(out) == 0 else out

    def seconds(self, rows: int) -> float:
        return self.ms_at(rows) / 1000.0


def forward_cost(board: int, blocks: int, channels: int, device: str = "h100", dtype: str = "bf16",
                 mode: str = "cudagraph") -> ForwardCost:
    """The table's rows for the net nearest to ``blocks`` x ``channels`` on ``board`` (another board's nets
    when the table has none of this one), at ``dtype`` and ``mode``."""
    table = forward_table(device)
    rows = [r for r in table["rows"] if r["dtype"] == dtype and r["mode"] == mode]
    if not rows:
        raise ValueError(f"the {device} table has no {dtype} {mode} rows")
    same = [r for r in rows if r["board"] == board] or rows
    nets = sorted({(r["board"], r["blocks"], r["ch"]) for r in same})
    want = math.log(_compute(blocks, channels))
    b, nb, nc = min(nets, key=lambda n: (abs(math.log(_compute(n[1], n[2])) - want), n))
    pts = sorted((r["batch"], r["ms"]) for r in same if (r["board"], r["blocks"], r["ch"]) == (b, nb, nc))
    note = ""
    if (b, nb, nc) != (board, blocks, channels):
        note = (f"the {device.upper()} table has no {board}x{board} {blocks}x{channels} net: its nearest, {b}x{b} "
                f"{nb}x{nc}, stands in")
    return ForwardCost(device=device, board=b, blocks=nb, channels=nc, dtype=dtype, mode=mode,
                       measured=str(table.get("measured", "")), batch=np.array([p[0] for p in pts], float),
                       ms=np.array([p[1] for p in pts], float), note=note)
