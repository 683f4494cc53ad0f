"""A GPU in emulation: the measured H100 forward table, and an evaluator that behaves like a CUDA device.

Speculation is meant to cut the time a move takes on a GPU, where a batch of a hundred rows costs about
what one row costs. Where no GPU is at hand, ``EmulatedDevice`` stands in for one, measured rather than
modelled: every batch is answered with the real net's outputs and held for the time the real device took
for a batch of that size, with the GIL released, as a CUDA call holds its thread; or, launched
(``launch``), it computes while the caller goes on, as a CUDA stream does (``search.overlap``: two batches in
flight). The search, the speculation pipeline and the NN cache run unchanged around it, so the
wall time per move is measured, and so is how much of it the device was busy, the CPU worked, or the
device waited for the CPU.

How a run is emulated (``specmcts/bench/speculation.py --emulate h100``):

1. **Record.** The run plays once with ``RecordingEvaluator`` around the real net (``NetEvaluator``). It
   keeps the outputs of every input row it evaluates, keyed by the row's exact bytes, and answers a row it
   has seen with the outputs it kept: the run is a function of its rows alone, as on a deterministic
   device, so recordings of several shapes agree with each other exactly.
2. **Replay.** The same run plays again on ``EmulatedDevice``: each batch's outputs come from the record (a
   row the record lacks raises ``MissingRowError``: never a silent miss), and the batch is held for the
   table's milliseconds at its number of rows (``ForwardCost``, interpolated in log(rows)). The replayed
   games equal the recorded ones.

The lookup of a batch's rows in the record is done inside its hold (at these sizes it takes a fraction
of the table's time; a hold that ends late is logged as it was, and the benchmark reports the overshoot).
How the caller's thread waits is ``EmulatedDevice``'s ``wait``: it spins, as a CUDA synchronisation does
by default, or sleeps where a second lane of the same process needs the core.

What the emulation leaves out: the host's own work of a real CUDA call (the copies in and out, the graph
launch, the synchronisation: tens of microseconds a call), and two batches computing at once on one GPU (the
emulated device runs one batch at a time: a second batch waits for the first to end). ``tools/gpu_bench.sh`` runs
the same benchmark on a real GPU beside the emulation, to check it.

The table (``specmcts/data/h100_forward.json``): one forward pass of the project's ResNet on one H100,
measured 2026-11-22, batch 1..2048, fp32 and bf16, eager and CUDA graph, for 9x9 6x64 and 10x128 and 19x19
10x128 and 20x256 nets. ``forward_cost`` picks the bf16 CUDA-graph rows of the net nearest to the one
played (by compute, blocks x channels^2) and says when it is not the same net.
"""
from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from specmcts.engine.evaluator import Evaluator, NNOutput

DATA_DIR = Path(__file__).resolve().parents[1] / "data"


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


# -- the record ------------------------------------------------------------------------------------------------


class MissingRowError(LookupError):
    """The emulated device was asked for an input row the recording pass never evaluated."""


class RowRecord:
    """A net's outputs by exact input row: row bytes -> float32 [A + 2] (policy over A actions, value,
    score). The first outputs recorded for a row are the row's for good."""

    def __init__(self, num_actions: int):
        self.num_actions = int(num_actions)
        self.rows: dict[bytes, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def keep(self, keys: list[bytes], policy: np.ndarray, value: np.ndarray, score: np.ndarray) -> np.ndarray:
        """Record the rows not seen yet; returns the indices of the rows seen before (whose outputs differ
        from the record's only in what the batch changed: the caller answers those from the record)."""
        fresh = np.concatenate([policy, value[:, None], score[:, None]], axis=1).astype(np.float32, copy=True)
        seen = []
        rows = self.rows
        for i, key in enumerate(keys):
            mine = fresh[i]
            if rows.setdefault(key, mine) is not mine:  # setdefault: one answer per row, across threads
                seen.append(i)
        return np.array(seen, np.int64)

    def answer(self, keys: list[bytes]) -> np.ndarray:
        """The recorded outputs of ``keys``, [n, A + 2]; ``MissingRowError`` for a row never recorded."""
        rows = self.rows
        got = [rows.get(key) for key in keys]
        for i, out in enumerate(got):
            if out is None:
                raise MissingRowError(
                    f"emulated device: row {i} of a batch of {len(keys)} is not in the record ({len(rows)} rows "
                    f"recorded): the replay asked for an input the recording pass never evaluated")
        return np.stack(got) if got else np.zeros((0, self.num_actions + 2), np.float32)


def _row_keys(inputs: np.ndarray, n: int) -> list[bytes]:
    return [row.tobytes() for row in inputs[:n].reshape(n, -1)]


class RecordingEvaluator(Evaluator):
    """The first pass of an emulated run: ``evaluator`` (the real net) answers, and every row's outputs go
    into ``record``; a row already recorded is answered from the record, so that one run is a function of
    its rows alone. Shares ``evaluator``'s buffers (no copies)."""

    def __init__(self, evaluator: Evaluator, record: RowRecord | None = None):
        self.inner = evaluator
        super().__init__(evaluator.board_size, evaluator.max_batch, evaluator.num_planes,
                         buffers=(evaluator.inputs, evaluator._policy, evaluator._value, evaluator._score))
        self.record = record if record is not None else RowRecord(self.num_actions)
        self.model_id = evaluator.model_id
        self.has_score = evaluator.has_score

    def twin(self) -> "RecordingEvaluator | None":
        inner = self.inner.twin()
        return None if inner is None else RecordingEvaluator(inner, self.record)

    def _forward(self, n: int) -> None:
        policy, value, score = self.inner.forward(n)
        keys = _row_keys(self.inputs, n)
        seen = self.record.keep(keys, policy, value, score)
        if len(seen):
            out = self.record.answer([keys[i] for i in seen])
            A = self.num_actions
            self._policy[seen] = out[:, :A]
            self._value[seen] = out[:, A]
            self._score[seen] = out[:, A + 1]

    def close(self) -> None:
        self.inner.close()


# -- the device ------------------------------------------------------------------------------------------------

SPIN_S = 60e-6  # a sleeping hold wakes this early and waits out the rest yielding the core (a sleep overshoots)
_thread_state = threading.local()


def _fine_timer() -> None:
    """Ask Linux for sleeps that end on time (a thread's default timer slack is 50 us): once per thread."""
    if getattr(_thread_state, "fine", False):
        return
    _thread_state.fine = True
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(29, 1, 0, 0, 0)  # PR_SET_TIMERSLACK, 1 ns
        except (OSError, AttributeError):
            pass


_release_gil = os.sched_yield if hasattr(os, "sched_yield") else (lambda: time.sleep(0))


def hold_until(deadline: float, spin: bool = False) -> None:
    """Wait until ``perf_counter() >= deadline`` with the GIL released (other threads of the process run).

    ``spin``: keep the core, as a CUDA synchronisation does by default while cores are spare (it spins):
    every check releases the GIL (``os.sched_yield``: 0.7 us; ``time.sleep(0)`` is a timed sleep that took
    30-80 us on a virtual machine's timers, which stretched every hold by that much), and the core goes to
    another program only when one is waiting for it. Else sleep (the core is free for the process's other
    threads), then yield it until the deadline; on a core other programs use too, a sleeping hold may wake
    late: the caller logs what it took."""
    if spin:
        while time.perf_counter() < deadline:
            _release_gil()
        return
    _fine_timer()
    left = deadline - time.perf_counter()
    if left > SPIN_S:
        time.sleep(left - SPIN_S)
    while time.perf_counter() < deadline:
        _release_gil()


@dataclass
class DeviceLog:
    """What the emulated device did: one entry per batch (lane, asked, start, end, rows, table seconds), all
    in ``time.perf_counter`` seconds. ``asked`` is when the call came, ``start`` when the device took it (a
    batch of another lane may have held it), ``end`` when it answered. ``lock`` makes it one device."""

    batches: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    lanes: int = 0  # evaluators on this device (search.overlap: 2)
    free_at: float = -math.inf  # a launched batch (``EmulatedDevice.launch``): when the device is free again
    late_lookup_s: float = 0.0  # record lookups done after their batch's end (the caller came late): not a
    #                             real device's cost, on the caller's time

    def busy_s(self, since: float = -math.inf) -> float:
        return float(sum(end - start for _l, _a, start, end, _r, _t in self.batches if start >= since))

    def table_s(self, since: float = -math.inf) -> float:
        return float(sum(t for _l, _a, start, _e, _r, t in self.batches if start >= since))

    def clear(self) -> None:
        self.batches.clear()
        self.late_lookup_s = 0.0


class Launched:
    """A batch on the emulated device (``EmulatedDevice.launch``): it computes from ``start`` to ``end``;
    ``result()`` looks its rows up in the record (inside the hold when called before ``end``) and waits for
    ``end`` with the GIL released."""

    def __init__(self, device: "EmulatedDevice", n: int, asked: float, start: float, end: float, hold: float):
        self.device, self.n, self.asked, self.start, self.end, self.hold = device, n, asked, start, end, hold
        self._out = None

    def result(self):
        if self._out is None:
            dev, n = self.device, self.n
            began = time.perf_counter()
            dev._answer(n)
            done = time.perf_counter()
            if done > self.end:
                dev.log.late_lookup_s += done - max(began, self.end)
            hold_until(self.end, spin=dev.wait == "spin" or (dev.wait == "auto" and dev.log.lanes == 1))
            dev.log.batches.append((dev.lane, self.asked, self.start, self.end, n, self.hold))
            self._out = NNOutput(dev._policy[:n], dev._value[:n], dev._score[:n])
        return self._out


class EmulatedDevice(Evaluator):
    """A GPU in emulation behind the ``Evaluator`` contract: ``evaluate(n)`` answers ``inputs[:n]`` from
    ``record`` (``MissingRowError`` for a row it lacks) and returns after ``cost``'s time for ``n`` rows,
    counted from when the device took the batch, with the GIL released meanwhile, as a CUDA call would.
    One device: ``twin()`` (``search.overlap``) gets buffers of its own and the same record, log and lock,
    so the second lane's batch waits while the first computes.

    ``wait``: how the calling thread waits out a hold. ``spin`` keeps the core, as CUDA's default
    synchronisation does where cores are spare; ``sleep`` leaves it to the process's other threads; ``auto``
    spins while the device has one lane and sleeps once it has two, so that on a machine with one core the
    waiting lane does not take the CPU from the lane that selects (a GPU host has cores to spare for it)."""

    def __init__(self, record: RowRecord, cost: ForwardCost, board_size: int, max_batch: int,
                 num_planes: int | None = None, model_id: str = "emulated", has_score: bool = True,
                 log: DeviceLog | None = None, lane: int = 0, wait: str = "auto"):
        from native.features import NUM_PLANES

        super().__init__(board_size, max_batch, NUM_PLANES if num_planes is None else num_planes)
        if record.num_actions != self.num_actions:
            raise ValueError(f"the record has {record.num_actions} actions, the board {self.num_actions}")
        self.record = record
        self.cost = cost
        self.model_id = model_id
        self.has_score = has_score
        if wait not in ("auto", "spin", "sleep"):
            raise ValueError(f"wait must be auto, spin or sleep, got {wait!r}")
        self.log = log if log is not None else DeviceLog()
        self.log.lanes += 1
        self.lane = lane
        self.wait = wait
        self.device = f"emulated {cost.device}"

    @classmethod
    def replaying(cls, recorder: RecordingEvaluator, cost: ForwardCost, max_batch: int = 0,
                  wait: str = "auto") -> "EmulatedDevice":
        """The device that replays what ``recorder`` recorded, with its board, planes, model and max batch."""
        return cls(recorder.record, cost, recorder.board_size, max_batch or recorder.max_batch,
                   recorder.num_planes, recorder.model_id, recorder.has_score, wait=wait)

    def twin(self) -> "EmulatedDevice":
        return EmulatedDevice(self.record, self.cost, self.board_size, self.max_batch, self.num_planes,
                              self.model_id, self.has_score, self.log, self.lane + 1, self.wait)

    launches = True  # launch(): the batch computes on the device while the caller goes on (a CUDA stream)

    def launch(self, n: int) -> Launched:
        """Queue ``inputs[:n]`` on the device and return at once: it starts when the device is free (one batch
        at a time, launches in order) and holds it for the table's time; ``result()`` waits for its end.
        The caller must not write ``inputs`` or read the outputs of this evaluator until then (a lane owns
        its evaluator)."""
        n = self._checked(n, "launch", least=1)
        asked = time.perf_counter()
        hold = self.cost.seconds(n)
        with self.log.lock:
            start = max(asked, self.log.free_at)
            self.log.free_at = end = start + hold
        self._count(n)
        return Launched(self, n, asked, start, end, hold)

    def _answer(self, n: int) -> None:
        out = self.record.answer(_row_keys(self.inputs, n))
        A = self.num_actions
        self._policy[:n] = out[:, :A]
        self._value[:n] = out[:, A]
        self._score[:n] = out[:, A + 1]

    def _forward(self, n: int) -> None:
        asked = time.perf_counter()
        hold = self.cost.seconds(n)
        with self.log.lock:
            start = max(time.perf_counter(), self.log.free_at)
            hold_until(start)  # a launched batch still on the device
            self._answer(n)
            hold_until(start + hold, spin=self.wait == "spin" or (self.wait == "auto" and self.log.lanes == 1))
            end = time.perf_counter()
            self.log.free_at = end
        self.log.batches.append((self.lane, asked, start, end, n, hold))
