"""Batched network evaluation: the search writes leaf planes into ``inputs``, one call evaluates them all.

Contract (what ``search`` relies on)::

    ev.inputs            uint8 [max_batch, num_planes, N, N], preallocated (pinned host memory on CUDA);
                         the caller writes the planes of its leaves into rows 0..n-1
    ev.evaluate(n)       -> (policy float32 [n, N*N+1], value float32 [n]): softmax over all actions
                         (unmasked) and the value in [-1, 1] from the side to move's point of view;
                         views of preallocated buffers, valid until the next call
    ev.evals, ev.batches rows evaluated, non-empty calls made
    ev.model_id          id of the weights (stored in training shards; clear the NN cache when it changes)

Implementations:

- ``NetEvaluator``: a ``PolicyValueNet``. On CPU, float32 eager PyTorch over a float copy of ``inputs``.
  On CUDA: channels_last, bf16 autocast, and one captured CUDA graph per batch size in
  ``graph_batch_sizes(max_batch)`` (1, 2, 4, ..., max_batch); a call copies ``inputs[:n]`` host->device
  without blocking, replays the graph of the next captured size >= n (rows n.. hold stale inputs whose outputs
  are ignored; BatchNorm runs in eval mode, so rows do not interact), copies the outputs into pinned host
  buffers and synchronizes once. Eager PyTorch at batch 1 costs 1-3 ms against 0.2-0.8 ms for a graph.
- ``UniformEvaluator``: uniform policy, constant value (pure-search benchmarks, tactical tests).
- ``HashEvaluator``: pseudo-random policy/value that are a function of each row's bytes alone (numba), so a
  row's output does not depend on the batch it came in: the reference for exactness tests of speculation.

Several worker processes can share one evaluator (the GPU's) through ``SharedEvaluatorServer``: each worker
gets a ``SharedEvaluatorClient`` with the same contract, whose ``inputs`` and outputs live in
``multiprocessing.shared_memory``; a server thread batches the pending requests of all workers into one call.

Note on exactness: a real net's output for a row can differ in the last bits with the batch size it was
computed at (different kernels are picked per shape, more so in bf16 on GPU). The NN cache returns exactly
what was inserted; "cached == fresh" is bit-exact only for evaluators like ``HashEvaluator``.
"""
from __future__ import annotations

import bisect
import multiprocessing
import os
import threading
import time
from dataclasses import dataclass
from multiprocessing import shared_memory
from typing import Any

import numpy as np
import torch

from native import nncache as native_nncache
from native.features import NUM_PLANES
from specmcts.config import Config, EvaluatorConfig, NetConfig
from specmcts.network import PolicyValueNet, build_net

GRAPH_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)

_AUTOCAST_DTYPES = {
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "float32": None, "fp32": None, "float": None,
}


def graph_batch_sizes(max_batch: int) -> tuple[int, ...]:
    """Batch sizes to capture: powers of two below ``max_batch``, then ``max_batch`` itself."""
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    sizes = []
    b = 1
    while b < max_batch:
        sizes.append(b)
        b *= 2
    sizes.append(max_batch)
    return tuple(sizes)


def padded_batch_size(n: int, sizes: tuple[int, ...]) -> int:
    """The smallest size in ``sizes`` (sorted ascending) that holds ``n`` rows."""
    if n < 1:
        raise ValueError(f"batch of {n} rows: nothing to pad")
    i = bisect.bisect_left(sizes, n)
    if i == len(sizes):
        raise ValueError(f"batch of {n} rows exceeds the largest captured size {sizes[-1]}")
    return sizes[i]


def torch_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' -> cuda if available, else cpu; asking for cuda without a GPU is an error that says so."""
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but no CUDA GPU is available (torch {torch.__version__})")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {name!r}")
    return dev


class Evaluator:
    """Base class: owns ``inputs`` and the output buffers, checks ``n`` and keeps the counters."""

    model_id: str = "none"
    has_score: bool = False  # its scores mean something (a score head): search may use them (score utility)

    def __init__(self, board_size: int, max_batch: int, num_planes: int = NUM_PLANES,
                 buffers: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None):
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.board_size = int(board_size)
        self.num_actions = self.board_size * self.board_size + 1
        self.num_planes = int(num_planes)
        self.max_batch = int(max_batch)
        self.evals = 0
        self.batches = 0
        if buffers is not None:  # (inputs, policy, value, score) living elsewhere, e.g. in shared memory
            self.inputs, self._policy, self._value, self._score = buffers
            return
        self.inputs = self._host_buffer((self.max_batch, self.num_planes, self.board_size, self.board_size), np.uint8)
        self._policy = self._host_buffer((self.max_batch, self.num_actions), np.float32)
        self._value = self._host_buffer((self.max_batch,), np.float32)
        self._score = self._host_buffer((self.max_batch,), np.float32)

    def _host_buffer(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        """Zeroed host array; subclasses that copy to a device return pinned memory."""
        return np.zeros(shape, dtype)

    def evaluate(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Evaluate ``inputs[:n]``: (policy float32 [n, A], value float32 [n]), views valid until the next call."""
        n = int(n)
        if not 0 <= n <= self.max_batch:
            raise ValueError(f"evaluate({n}): n must be in 0..{self.max_batch}")
        if n:
            self._forward(n)
            self.evals += n
            self.batches += 1
        return self._policy[:n], self._value[:n]

    def scores(self, n: int) -> np.ndarray:
        """The score (final margin for the side to move, in points) of the rows of the last ``evaluate``:
        float32 [n], a view valid until the next call; zeros for an evaluator without a score head."""
        return self._score[:n]

    def _forward(self, n: int) -> None:
        """Fill ``self._policy[:n]``, ``self._value[:n]`` and ``self._score[:n]`` from ``self.inputs[:n]``."""
        raise NotImplementedError

    def twin(self) -> "Evaluator | None":
        """A second evaluator of the same weights with buffers of its own, so that two batches can be in
        flight at once (``search.overlap``), or None where there can be only one (a shared client)."""
        return None

    def close(self) -> None:
        """Release device resources (CUDA graphs); the evaluator is unusable afterwards."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class UniformEvaluator(Evaluator):
    """Uniform policy over all N*N+1 actions and a constant value: search without a network."""

    def __init__(self, board_size: int, value: float = 0.0, max_batch: int = 512, num_planes: int = NUM_PLANES):
        if not -1.0 <= value <= 1.0:
            raise ValueError(f"value must be in [-1, 1], got {value}")
        super().__init__(board_size, max_batch, num_planes)
        self.constant_value = np.float32(value)
        self.model_id = f"uniform(v={value:g})"

    def twin(self) -> "UniformEvaluator":
        return UniformEvaluator(self.board_size, float(self.constant_value), self.max_batch, self.num_planes)

    def _forward(self, n: int) -> None:
        # Refilled on every call: callers may have modified the returned views in place (e.g. noise).
        self._policy[:n] = np.float32(1.0 / self.num_actions)
        self._value[:n] = self.constant_value
        self._score[:n] = 0.0


class HashEvaluator(Evaluator):
    """Pseudo-random policy/value, a function of each input row's exact bytes and ``seed`` only: the same
    planes give bit-identical outputs in any batch, at any position in it. The score is the value times a
    quarter of the board's area (so it varies, and agrees with the value's sign)."""

    def __init__(self, board_size: int, seed: int = 0, max_batch: int = 512, num_planes: int = NUM_PLANES):
        super().__init__(board_size, max_batch, num_planes)
        self.seed = int(seed)
        self._seed = native_nncache.seed_u64(seed)
        self._rows = self.inputs.reshape(self.max_batch, -1)  # a view: rows are C*N*N bytes
        self.model_id = f"hash(seed={seed})"
        self.has_score = True

    def twin(self) -> "HashEvaluator":
        return HashEvaluator(self.board_size, self.seed, self.max_batch, self.num_planes)

    def _forward(self, n: int) -> None:
        native_nncache.hash_evaluate(self._rows[:n], self._seed, self._policy[:n], self._value[:n])
        self._score[:n] = self._value[:n] * np.float32(self.board_size * self.board_size / 4)


class NetEvaluator(Evaluator):
    """A ``PolicyValueNet`` behind the ``Evaluator`` contract.

    The net is moved to ``device`` and put in eval mode in place (on CUDA also to channels_last), so a trainer
    sharing it sees the same parameters. To change weights later use ``load_state_dict``: it copies in place,
    which keeps the captured CUDA graphs valid. ``dtype`` (autocast dtype: bfloat16, float16 or float32) applies
    to CUDA; CPU always computes in float32. ``cudnn_benchmark`` turns on ``torch.backends.cudnn.benchmark``
    (process-wide) before the graphs are captured, so each captured size gets its fastest kernels."""

    def __init__(self, net: PolicyValueNet, device: str | torch.device = "cpu", max_batch: int = 512,
                 cuda_graphs: bool = True, dtype: str = "bfloat16", cudnn_benchmark: bool = True):
        self.device = torch_device(device)
        self._cuda = self.device.type == "cuda"
        if dtype not in _AUTOCAST_DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(_AUTOCAST_DTYPES)}, got {dtype!r}")
        self.dtype = dtype
        self._amp_dtype = _AUTOCAST_DTYPES[dtype] if self._cuda else None
        self.cuda_graphs = bool(cuda_graphs) and self._cuda
        self._graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self._graph_sizes: tuple[int, ...] = ()
        self.net = net.to(self.device).eval()
        self._pinned: list[torch.Tensor] = []
        super().__init__(net.board_size, max_batch, net.num_planes)
        self.model_id = net.model_id
        self.has_score = net.has_aux_heads
        if self._cuda:  # the pinned tensors behind inputs, _policy, _value, _score (allocated in that order)
            self._inputs_t, self._policy_t, self._value_t, self._score_t = self._pinned
        else:  # torch views of the numpy buffers (shared memory, no copies)
            self._inputs_t = torch.from_numpy(self.inputs)
            self._policy_t = torch.from_numpy(self._policy)
            self._value_t = torch.from_numpy(self._value)
            self._score_t = torch.from_numpy(self._score)
        if self._cuda:
            self._setup_cuda(cudnn_benchmark)
        else:
            self._x = torch.zeros(self.inputs.shape, dtype=torch.float32)

    def twin(self) -> "NetEvaluator":
        """The same net (weights shared: ``load_state_dict`` on either changes both), buffers, device
        buffers, stream and CUDA graphs of its own."""
        twin = NetEvaluator(self.net, self.device, self.max_batch, self.cuda_graphs, self.dtype,
                            cudnn_benchmark=False)
        twin.model_id = self.model_id
        return twin

    def _host_buffer(self, shape, dtype) -> np.ndarray:
        if not self._cuda:
            return np.zeros(shape, dtype)
        # Pinned: host<->device copies are true DMA transfers and can run without blocking.
        torch_dtype = {np.dtype(np.uint8): torch.uint8, np.dtype(np.float32): torch.float32}[np.dtype(dtype)]
        tensor = torch.zeros(shape, dtype=torch_dtype, pin_memory=True)
        self._pinned.append(tensor)
        return tensor.numpy()

    # -- CPU -----------------------------------------------------------------------------------
    def _forward_cpu(self, n: int) -> None:
        if self.net.training:  # a trainer sharing the net switched it; BatchNorm must use running statistics
            self.net.eval()
        with torch.inference_mode():
            x = self._x[:n]
            x.copy_(self._inputs_t[:n])  # uint8 -> float32 into the preallocated tensor
            logits, value, score = self.net.evaluate(x)
            self._policy_t[:n].copy_(torch.softmax(logits.float(), dim=1))
            self._value_t[:n].copy_(value.float())
            self._score_t[:n].copy_(score.float())

    # -- CUDA ----------------------------------------------------------------------------------
    def _setup_cuda(self, cudnn_benchmark: bool) -> None:
        dev = self.device
        if cudnn_benchmark:
            torch.backends.cudnn.benchmark = True
        self.net.to(memory_format=torch.channels_last)
        shape = self.inputs.shape
        compute_dtype = self._amp_dtype or torch.float32
        # Static device buffers: graphs read and write these addresses on every replay.
        self._dev_in = torch.zeros(shape, dtype=torch.uint8, device=dev)
        self._dev_x = torch.zeros(shape, dtype=compute_dtype, device=dev).contiguous(
            memory_format=torch.channels_last)
        self._dev_policy = torch.zeros((self.max_batch, self.num_actions), dtype=torch.float32, device=dev)
        self._dev_value = torch.zeros((self.max_batch,), dtype=torch.float32, device=dev)
        self._dev_score = torch.zeros((self.max_batch,), dtype=torch.float32, device=dev)
        self._stream = torch.cuda.Stream(device=dev)
        self._stream.wait_stream(torch.cuda.current_stream(dev))  # weights were just moved on that stream
        if self.cuda_graphs:
            self._capture_graphs()

    def _compute(self, b: int) -> None:
        """Device-only work for a batch of ``b`` rows of ``_dev_in``: what a graph captures."""
        x = self._dev_x[:b]
        x.copy_(self._dev_in[:b])  # uint8 -> compute dtype, NCHW -> channels_last, one kernel
        with torch.autocast("cuda", dtype=self._amp_dtype or torch.bfloat16, enabled=self._amp_dtype is not None,
                            cache_enabled=False):  # the autocast weight cache must stay off under capture
            logits, value, score = self.net.evaluate(x)
        self._dev_policy[:b].copy_(torch.softmax(logits.float(), dim=1))
        self._dev_value[:b].copy_(value.float())
        self._dev_score[:b].copy_(score.float())

    def _capture_graphs(self) -> None:
        self._graph_sizes = graph_batch_sizes(self.max_batch)
        pool = torch.cuda.graph_pool_handle()
        order = sorted(self._graph_sizes, reverse=True)  # largest first: smaller graphs reuse its memory
        with torch.no_grad(), torch.cuda.stream(self._stream):
            for b in order:  # warm up on the side stream: cuDNN autotuning and lazy init happen outside capture
                for _ in range(2):
                    self._compute(b)
        self._stream.synchronize()
        with torch.no_grad():
            for b in order:
                graph = torch.cuda.CUDAGraph()
                # Graphs share one memory pool: they are replayed one at a time on one stream, and nothing
                # allocated inside a graph outlives its replay (outputs land in the static buffers).
                with torch.cuda.graph(graph, pool=pool, stream=self._stream):
                    self._compute(b)
                self._graphs[b] = graph
        self._stream.synchronize()

    def _forward_cuda(self, n: int) -> None:
        stream = self._stream
        stream.wait_stream(torch.cuda.current_stream(self.device))  # e.g. weights updated by a trainer
        with torch.cuda.stream(stream):
            self._dev_in[:n].copy_(self._inputs_t[:n], non_blocking=True)
            if self.cuda_graphs:
                self._graphs[padded_batch_size(n, self._graph_sizes)].replay()
            else:
                if self.net.training:  # graphs captured the eval-mode kernels; eager needs the flag
                    self.net.eval()
                with torch.inference_mode():
                    self._compute(n)
            self._policy_t[:n].copy_(self._dev_policy[:n], non_blocking=True)
            self._value_t[:n].copy_(self._dev_value[:n], non_blocking=True)
            self._score_t[:n].copy_(self._dev_score[:n], non_blocking=True)
        stream.synchronize()  # the one sync per call: outputs are in host memory after it

    # -- common --------------------------------------------------------------------------------
    def _forward(self, n: int) -> None:
        if self._cuda:
            self._forward_cuda(n)
        else:
            self._forward_cpu(n)

    @property
    def graph_sizes(self) -> tuple[int, ...]:
        """Captured batch sizes (empty without CUDA graphs)."""
        return self._graph_sizes

    def padded_size(self, n: int) -> int:
        """Rows the device actually computes for a call with ``n`` rows."""
        return padded_batch_size(n, self._graph_sizes) if self.cuda_graphs else n

    def load_state_dict(self, state_dict: dict, model_id: str | None = None) -> None:
        """New weights, copied in place into the existing parameters (captured graphs stay valid)."""
        with torch.no_grad():
            self.net.load_state_dict(state_dict)
        if model_id is not None:
            self.net.model_id = model_id
        self.model_id = self.net.model_id

    def close(self) -> None:
        self._graphs.clear()
        self._graph_sizes = ()
        self.cuda_graphs = False

    def __repr__(self) -> str:
        mode = (f"{self.dtype}, graphs {self._graph_sizes[0]}..{self._graph_sizes[-1]}" if self.cuda_graphs
                else ("float32, eager" if not self._cuda else f"{self.dtype}, eager"))
        return f"NetEvaluator({self.device}, {mode}, max_batch={self.max_batch}, model={self.model_id})"


def make_evaluator(cfg: EvaluatorConfig | Config, board_size: int, net: PolicyValueNet | str | None = None,
                   device: str = "auto", max_batch: int = 0) -> Evaluator:
    """The evaluator a config asks for.

    ``cfg``: an ``EvaluatorConfig`` or a whole ``Config`` (then ``cfg.net`` shapes a fresh net). ``net``: a
    ``PolicyValueNet``; ``None`` for a freshly initialised one; or ``'uniform'`` / ``'hash'`` for the
    network-free evaluators. ``device``: 'auto' defers to ``cfg.device``, and 'auto' there picks cuda when
    available. ``max_batch``: 0 for the config's."""
    net_cfg = cfg.net if isinstance(cfg, Config) else NetConfig()
    seed = cfg.seed if isinstance(cfg, Config) else 0
    ev_cfg = cfg.evaluator if isinstance(cfg, Config) else cfg
    max_batch = max_batch or ev_cfg.max_batch
    if isinstance(net, str):
        if net == "uniform":
            return UniformEvaluator(board_size, max_batch=max_batch)
        if net == "hash":
            return HashEvaluator(board_size, seed=seed, max_batch=max_batch)
        raise ValueError(f"net must be a PolicyValueNet, None, 'uniform' or 'hash', got {net!r}")
    if net is None:
        net = build_net(board_size, net_cfg)
    if net.board_size != board_size:
        raise ValueError(f"the net is for {net.board_size}x{net.board_size}, asked for {board_size}x{board_size}")
    chosen = torch_device(device if str(device) != "auto" else ev_cfg.device)
    return NetEvaluator(net, chosen, max_batch=max_batch, cuda_graphs=ev_cfg.cuda_graphs, dtype=ev_cfg.dtype)


# -- one evaluator shared by worker processes -----------------------------------------------------------------
# Shared-memory block (one per channel), 64-byte aligned sections:
#   control     int64   [10 + clients]               the server's state (_NOT_STARTED, _RUNNING, _STOPPED) and
#                                                   pid, the model's version and has_score, counters; then
#                                                   control[10 + i]: rows client i asks for (0: none pending)
#   model_name  uint8   [128]                       the model id, NUL-padded
#   inputs      uint8   [clients, rows, C, N, N]    each client's own input rows
#   policy      float32 [clients, rows, A]          each client's outputs
#   value, score float32 [clients, rows]
# A client writes its rows and count, then releases the shared ``pending`` semaphore and waits on its own
# ``done`` semaphore (checking now and then that the server's process is alive). The server wakes once per
# release, gathers every pending request (answering cached rows, sending each distinct new row once) into
# one batch, evaluates, scatters, clears the counts and releases each client. A wake-up that finds nothing
# (its request was served by an earlier gather) costs one scan. Nothing is pickled per request.


# -- one evaluator for many processes -------------------------------------------------------------------------

_NOT_STARTED, _RUNNING, _STOPPED = 0, 1, 2
# control words: the server's state and pid, the model (version, has_score), counters, then per-client requests
_STATE, _PID, _VERSION, _HAS_SCORE, _REQUESTS, _BATCHES, _ROWS, _FORWARDED, _HITS, _SHARED = range(10)
_HEAD = 10
MODEL_ID_BYTES = 128


def _shared_layout(clients: int, rows: int, planes: int, size: int) -> dict[str, tuple[int, tuple, type]]:
    actions = size * size + 1
    sections = (("control", (_HEAD + clients,), np.int64), ("model_name", (MODEL_ID_BYTES,), np.uint8),
                ("inputs", (clients, rows, planes, size, size), np.uint8),
                ("policy", (clients, rows, actions), np.float32), ("value", (clients, rows), np.float32),
                ("score", (clients, rows), np.float32))
    layout, offset = {}, 0
    for name, shape, dtype in sections:
        layout[name] = (offset, shape, dtype)
        offset += -(-int(np.prod(shape)) * np.dtype(dtype).itemsize // 64) * 64
    layout["_total"] = (offset, (), np.uint8)
    return layout


@dataclass
class ChannelSpec:
    """Where one server and its clients meet: the shared memory's name, its shape and the semaphores
    (picklable as an argument of ``multiprocessing.Process``; semaphores can only travel that way)."""

    shm_name: str
    clients: int
    rows: int
    board_size: int
    num_planes: int
    pending: Any
    done: list

    def layout(self):
        return _shared_layout(self.clients, self.rows, self.num_planes, self.board_size)


class _Attached:
    """The channel's arrays in this process."""

    def __init__(self, spec: ChannelSpec, create: bool = False):
        layout = spec.layout()
        if create:
            self.shm = shared_memory.SharedMemory(create=True, size=max(layout["_total"][0], 1))
        else:
            self.shm = shared_memory.SharedMemory(name=spec.shm_name)
        self._names = [name for name in layout if name != "_total"]
        for name in self._names:
            offset, shape, dtype = layout[name]
            setattr(self, name, np.ndarray(shape, dtype, buffer=self.shm.buf, offset=offset))

    @property
    def model_id(self) -> str:
        return bytes(self.model_name).split(b"\0", 1)[0].decode("utf-8", "replace")

    def set_model(self, model_id: str, has_score: bool) -> None:
        raw = model_id.encode()[:MODEL_ID_BYTES - 1]
        buf = self.model_name
        buf[:] = 0
        buf[:len(raw)] = np.frombuffer(raw, np.uint8)
        self.control[_HAS_SCORE] = int(has_score)
        self.control[_VERSION] += 1

    def close(self) -> None:
        for name in self._names:
            self.__dict__.pop(name, None)
        self.shm.close()


class EvaluatorChannel:
    """Shared memory and semaphores between one evaluation server and ``clients`` client processes, made by
    the process that outlives both (it unlinks the memory on ``close``). ``spec`` goes to the server's
    process (which may be another one: ``SharedEvaluatorServer(evaluator, spec=...)``), ``handle(i)`` to
    client ``i``."""

    def __init__(self, clients: int, rows: int, board_size: int, num_planes: int = NUM_PLANES, mp_context=None):
        if clients < 1 or rows < 1:
            raise ValueError(f"need clients >= 1 and rows >= 1, got {clients}, {rows}")
        ctx = mp_context or multiprocessing.get_context()
        spec = ChannelSpec("", int(clients), int(rows), int(board_size), int(num_planes), ctx.Semaphore(0),
                           [ctx.Semaphore(0) for _ in range(clients)])
        self._mem = _Attached(spec, create=True)
        spec.shm_name = self._mem.shm.name
        self._mem.control[:] = 0  # _NOT_STARTED, no requests
        self.spec = spec

    def stop(self) -> None:
        """Tell the clients that no answer will come (e.g. the server's process died)."""
        if self._mem is not None:
            self._mem.control[_STATE] = _STOPPED

    def counters(self) -> dict:
        c = self._mem.control
        return {"requests": int(c[_REQUESTS]), "batches": int(c[_BATCHES]), "rows": int(c[_ROWS]),
                "forwarded": int(c[_FORWARDED]), "cache_hits": int(c[_HITS]), "shared_rows": int(c[_SHARED]),
                "model_version": int(c[_VERSION])}

    def handle(self, client: int) -> "SharedEvaluatorHandle":
        if not 0 <= client < self.spec.clients:
            raise ValueError(f"client must be in 0..{self.spec.clients - 1}, got {client}")
        return SharedEvaluatorHandle(self.spec, client)

    def close(self) -> None:
        if self._mem is None:
            return
        self._mem.control[_STATE] = _STOPPED
        shm = self._mem.shm
        self._mem.close()
        self._mem = None
        shm.unlink()


@dataclass
class SharedEvaluatorHandle:
    """What a worker process needs to reach the server (pass it as an argument of ``multiprocessing.Process``)."""

    spec: ChannelSpec
    client: int

    def connect(self) -> "SharedEvaluatorClient":
        return SharedEvaluatorClient(self)


class SharedEvaluatorClient(Evaluator):
    """The ``Evaluator`` contract in a worker process: ``inputs`` and the outputs live in shared memory, and
    ``evaluate(n)`` is answered by the server (batched with the other clients' requests, and from its NN cache
    when it has one). ``model_id`` and ``has_score`` are the server's, read when asked: the server may change
    its weights between two calls (a run publishing a new net)."""

    def __init__(self, handle: SharedEvaluatorHandle, poll_s: float = 1.0):
        spec = handle.spec
        self._mem = _Attached(spec)
        i = handle.client
        m = self._mem
        super().__init__(spec.board_size, spec.rows, spec.num_planes,
                         buffers=(m.inputs[i], m.policy[i], m.value[i], m.score[i]))
        self._slot = _HEAD + i
        self._pending, self._done = spec.pending, spec.done[i]
        self.poll_s = poll_s  # seconds between checks that the server is still there

    @property
    def model_id(self) -> str:
        return self._mem.model_id if self._mem is not None else "closed"

    @property
    def has_score(self) -> bool:
        return self._mem is not None and bool(self._mem.control[_HAS_SCORE])

    def _server_gone(self) -> str | None:
        control = self._mem.control
        if control[_STATE] == _STOPPED:
            return "the shared evaluator stopped"
        pid = int(control[_PID])
        if pid and pid != os.getpid():
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return f"the shared evaluator process (pid {pid}) exited"
            except PermissionError:
                pass
        return None

    def _forward(self, n: int) -> None:
        # A request posted before the server starts waits for it; one posted after it stopped fails.
        control = self._mem.control
        if control[_STATE] == _STOPPED:
            raise RuntimeError("the shared evaluator is not running")
        control[self._slot] = n
        self._pending.release()
        while not self._done.acquire(timeout=self.poll_s):
            gone = self._server_gone()
            if gone:
                raise RuntimeError(f"{gone} before answering")

    def close(self) -> None:
        if self._mem is not None:
            self.inputs = self._policy = self._value = self._score = None
            self._mem.close()
            self._mem = None


class SharedEvaluatorServer:
    """Serves ``evaluator`` to client processes: the pending requests of all clients go to the evaluator
    together, in as few calls as fit its ``max_batch``.

    With a ``cache`` (``specmcts.nncache.NNCache``; one of capacity 0 only deduplicates) the server keys every
    requested row by its exact bytes (``native.nncache.row_keys``), answers rows it has seen from the cache,
    and sends each distinct new row to the evaluator once, however many clients asked for it: one NN cache
    for all the clients.

    Two ways to run it::

        with SharedEvaluatorServer(evaluator, clients=4, rows=64) as server:   # a thread of this process
            procs = [ctx.Process(target=work, args=(server.handle(i),)) for i in range(4)]
            ...                                   # in work(): ev = handle.connect(); ev.evaluate(n) ...

        SharedEvaluatorServer(evaluator, spec=channel.spec, cache=cache).serve(hook)  # in its own process

    The first owns its ``EvaluatorChannel``; the second serves one made by another process, in the calling
    thread, until that channel is stopped, calling ``hook(server)`` between batches at most every
    ``hook_every`` seconds (to follow a published net: ``set_model``). With CUDA initialised in this process,
    start workers with the 'spawn' or 'forkserver' method."""

    def __init__(self, evaluator: Evaluator, clients: int = 1, rows: int | None = None, mp_context=None, *,
                 spec: ChannelSpec | None = None, cache=None):
        self.channel = None
        if spec is None:
            rows = evaluator.max_batch if rows is None else int(rows)
            if clients < 1 or not 1 <= rows <= evaluator.max_batch:
                raise ValueError(f"need clients >= 1 and 1 <= rows <= {evaluator.max_batch}, got {clients}, {rows}")
            self.channel = EvaluatorChannel(clients, rows, evaluator.board_size, evaluator.num_planes, mp_context)
            spec = self.channel.spec
        if spec.rows > evaluator.max_batch:
            raise ValueError(f"clients send up to {spec.rows} rows, the evaluator takes {evaluator.max_batch}")
        self.spec = spec
        self.evaluator = evaluator
        self.clients, self.rows = spec.clients, spec.rows
        self.cache = cache
        self._mem = _Attached(spec)
        self._control = self._mem.control
        self._control[_PID] = os.getpid()
        self._mem.set_model(evaluator.model_id, evaluator.has_score)
        self._keys = np.zeros((self.clients, self.rows), np.uint64)
        self._hit = np.zeros(self.rows, np.bool_)
        self._moves = np.zeros(self.rows, np.int64)
        self._seed = native_nncache.seed_u64(0)
        self._stop = False
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None  # what stopped the serving thread, if it failed

    # counters (shared: every process attached to the channel sees them; kept after close)
    @property
    def requests(self) -> int:
        return self.counters()["requests"]

    @property
    def batches(self) -> int:
        return self.counters()["batches"]

    def counters(self) -> dict:
        c = self._control
        if c is None:
            return dict(self._final)
        return {"requests": int(c[_REQUESTS]), "batches": int(c[_BATCHES]), "rows": int(c[_ROWS]),
                "forwarded": int(c[_FORWARDED]), "cache_hits": int(c[_HITS]), "shared_rows": int(c[_SHARED])}

    def handle(self, client: int) -> SharedEvaluatorHandle:
        if not 0 <= client < self.clients:
            raise ValueError(f"client must be in 0..{self.clients - 1}, got {client}")
        return SharedEvaluatorHandle(self.spec, client)

    def set_model(self, model_id: str) -> None:
        """The evaluator's weights changed (call between batches, from the serving thread or ``hook``):
        forget the cached answers and tell the clients."""
        if self.cache is not None:
            self.cache.clear()
        self.evaluator.model_id = model_id
        self._mem.set_model(model_id, self.evaluator.has_score)

    def start(self) -> "SharedEvaluatorServer":
        self._control[_STATE] = _RUNNING
        self._thread = threading.Thread(target=self._serve, name="shared-evaluator", daemon=True)
        self._thread.start()
        return self

    def serve(self, hook=None, hook_every: float = 1.0) -> None:
        """Serve in the calling thread until the channel is stopped (``EvaluatorChannel.stop``/``close``)."""
        if self._control[_STATE] == _STOPPED:  # stopped before this process got here
            return
        self._control[_STATE] = _RUNNING
        self._serve(hook, hook_every)

    def _serve(self, hook=None, hook_every: float = 1.0) -> None:
        try:
            self._serve_requests(hook, hook_every)
        except BaseException as e:  # clients see _STOPPED and raise instead of waiting forever
            self.error = e
            self._control[_STATE] = _STOPPED
            raise

    def _serve_requests(self, hook, hook_every: float) -> None:
        ev = self.evaluator
        control = self._control
        next_hook = time.perf_counter() + hook_every
        while True:
            got = self._pending_acquire(hook_every if hook is not None else None)
            if self._stop or control[_STATE] == _STOPPED:
                return
            if hook is not None and time.perf_counter() >= next_hook:
                hook(self)
                next_hook = time.perf_counter() + hook_every
            if not got:
                continue
            batch, misses_in_batch = [], 0
            for client in np.flatnonzero(control[_HEAD:] > 0):
                client = int(client)
                n = int(control[_HEAD + client])
                misses = self._lookup(client, n)
                if misses_in_batch + len(misses) > ev.max_batch:  # the evaluator takes this many at most
                    self._answer(batch)
                    batch, misses_in_batch = [], 0
                batch.append((client, misses))
                misses_in_batch += len(misses)
                control[_REQUESTS] += 1
                control[_ROWS] += n
            if batch:
                self._answer(batch)

    def _pending_acquire(self, timeout):
        return self.spec.pending.acquire(timeout=timeout) if timeout is not None else self.spec.pending.acquire()

    def _lookup(self, client: int, n: int) -> np.ndarray:
        """The rows of ``client``'s request the cache does not answer (hits are written into its outputs)."""
        if self.cache is None:
            return np.arange(n)
        keys = self._keys[client, :n]
        m = self._mem
        native_nncache.row_keys(m.inputs[client, :n].reshape(n, -1), n, self._seed, keys)
        hits = self.cache.lookup(keys, self._moves[:n], m.policy[client], m.value[client], self._hit[:n],
                                 m.score[client])
        self._control[_HITS] += hits
        return np.flatnonzero(~self._hit[:n])

    def _answer(self, batch: list[tuple[int, np.ndarray]]) -> None:
        """Evaluate the missed rows of ``batch`` ((client, rows) pairs), each distinct input once (with a
        cache: rows are keyed by their bytes), scatter the answers and release the clients. Array
        operations only: no loop over rows."""
        m, control = self._mem, self._control
        clients = np.concatenate([np.full(len(rows), c, np.int64) for c, rows in batch])
        rows = np.concatenate([rows for _c, rows in batch]).astype(np.int64)
        if len(rows):
            if self.cache is not None:
                keys = self._keys[clients, rows]
                _distinct, first, answer = np.unique(keys, return_index=True, return_inverse=True)
            else:
                first = answer = np.arange(len(rows))
            used = len(first)
            self.evaluator.inputs[:used] = m.inputs[clients[first], rows[first]]
            policy, value = self.evaluator.evaluate(used)
            score = self.evaluator.scores(used)
            control[_BATCHES] += 1
            control[_FORWARDED] += used
            control[_SHARED] += len(rows) - used  # the same input as another row of the batch
            if self.cache is not None:
                self.cache.insert(keys[first], policy, value, score)
            answer = answer.reshape(-1)
            m.policy[clients, rows] = policy[answer]
            m.value[clients, rows] = value[answer]
            m.score[clients, rows] = score[answer]
        for client, _rows in batch:
            control[_HEAD + client] = 0
            self.spec.done[client].release()

    def close(self) -> None:
        """Stop serving and free the shared memory if this server made it (clients should have closed)."""
        if self._mem is None:
            return
        self._control[_STATE] = _STOPPED
        if self._thread is not None:
            self._stop = True
            self.spec.pending.release()
            self._thread.join()
            self._thread = None
        self._final = self.counters()
        self._mem.close()
        self._mem = None
        self._control = None
        if self.channel is not None:
            self.channel.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
