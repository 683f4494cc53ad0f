"""Batched network evaluation: the search writes leaf planes into ``inputs``, one call evaluates them all.

Contract (what ``search`` relies on)::

    ev.inputs            uint8 [max_batch, num_planes, N, N], preallocated (pinned host memory on CUDA);
                         the caller writes the planes of its leaves into rows 0..n-1
    ev.forward(n)        -> NNOutput(policy float32 [n, N*N+1], value float32 [n], score float32 [n]):
                         softmax over all actions (unmasked), the value in [-1, 1] and the score (points)
                         from the side to move's point of view (zeros without a score head); views of
                         preallocated buffers, valid until the next call. (``evaluate(n)`` is the same
                         without the score, for callers that need no score.)
    ev.evals, ev.batches rows evaluated, non-empty calls made
    ev.model_id          id of the weights (stored in training shards; clear the NN cache when it changes)

Implementations:

- ``NetEvaluator``: a ``PolicyValueNet``. On CPU, eager PyTorch over a float copy of ``inputs``: float32, or
  bf16 autocast (``cpu_dtype``; ``auto`` takes bf16 for batches of at least ``CPU_BF16_MIN_ROWS`` rows where
  the CPU computes bf16 natively, about 2x faster there, and float32 for smaller batches, where bf16 is slower).
  On CUDA: channels_last, bf16 autocast, and one captured CUDA graph per batch size in
  ``graph_batch_sizes(max_batch)`` (1, 2, 4, ..., max_batch); a call copies ``inputs[:n]`` host->device
  without blocking, replays the graph of the next captured size >= n (rows n.. hold stale inputs whose outputs
  are ignored; BatchNorm runs in eval mode, so rows do not interact), copies the outputs into pinned host
  buffers and synchronizes once. Eager PyTorch at batch 1 costs 1-3 ms against 0.2-0.8 ms for a graph.
- ``UniformEvaluator``: uniform policy, constant value (pure-search benchmarks, tactical tests).
- ``HashEvaluator``: pseudo-random policy/value that are a function of each row's bytes alone (numba), so a
  row's output does not depend on the batch it came in: the reference for exactness tests of speculation.

Several worker processes can share one evaluator (the GPU's) through ``specmcts.engine.shared_evaluator``.

Note on exactness: a real net's output for a row can differ in the last bits with the batch size it was
computed at (different kernels are picked per shape, more so in bf16 on GPU). The NN cache returns exactly
what was inserted; "cached == fresh" is bit-exact only for evaluators like ``HashEvaluator``.
"""
from __future__ import annotations

import bisect
import functools
from typing import NamedTuple

import numpy as np
import torch

from native import nncache as native_nncache
from native.features import NUM_PLANES
from specmcts.config import Config, EvaluatorConfig, NetConfig
from specmcts.limits import CPU_DTYPES
from specmcts.engine.network import PolicyValueNet, build_net

GRAPH_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
CPU_BF16_MIN_ROWS = 16  # cpu_dtype auto: bf16 from this batch size up (6x48 net, one Zen 4 core: batch 1 bf16
# 3.1 ms vs float32 2.2 ms, 8 rows 6.0 vs 5.7, 16 rows 8.8 vs 13.0, 64 rows 29.6 vs 51.5, 128 rows 46 vs 96)

_AUTOCAST_DTYPES = {
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "float32": None, "fp32": None, "float": None,
}


@functools.lru_cache(maxsize=1)
def cpu_bf16_native() -> bool:
    """Whether this CPU computes bf16 matrix products in hardware (AVX512-BF16 or AMX, read from
    /proc/cpuinfo's flags) and torch's oneDNN uses them. Elsewhere bf16 on the CPU is emulated and slower
    than float32."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
        supported = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    except (OSError, AttributeError, RuntimeError):
        return False
    return bool(supported) and ("avx512_bf16" in flags or "amx_bf16" in flags)


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


class NNOutput(NamedTuple):
    """What one forward pass answers for ``n`` rows (``Evaluator.forward``)."""

    policy: np.ndarray  # float32 [n, N*N+1]
    value: np.ndarray  # float32 [n]
    score: np.ndarray  # float32 [n]


class Done:
    """A forward pass's answer, already there: what ``Evaluator.launch`` returns where nothing runs apart."""

    def __init__(self, out: NNOutput):
        self._out = out

    def result(self) -> NNOutput:
        return self._out


class CudaLaunched:
    """A batch queued on a CUDA evaluator's stream (``NetEvaluator.launch``): ``result()`` waits for its event,
    then its outputs are in the evaluator's host buffers. One batch in flight per evaluator (a twin has its
    own buffers, stream and event)."""

    def __init__(self, evaluator: "NetEvaluator", n: int):
        self.evaluator, self.n = evaluator, n
        self._out = None

    def result(self) -> "NNOutput":
        if self._out is None:
            ev, n = self.evaluator, self.n
            ev._done.synchronize()
            self._out = NNOutput(ev._policy[:n], ev._value[:n], ev._score[:n])
        return self._out


class Evaluator:
    """Base class: owns ``inputs`` and the output buffers, checks ``n`` and keeps the counters. A subclass
    implements ``_forward``."""

    model_id: str = "none"
    has_score: bool = False  # its scores mean something (a score head): search may use them (score utility)
    # launch() returns at once while a device computes (as a CUDA stream does: the emulated GPU); else launch()
    # computes on the caller's thread, and a caller that wants to go on meanwhile runs forward() in a thread
    launches: bool = False

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

    def _checked(self, n: int, what: str = "evaluate", least: int = 0) -> int:
        """``n`` as an int, in ``least``..``max_batch`` (else ValueError naming ``what``)."""
        n = int(n)
        if not least <= n <= self.max_batch:
            raise ValueError(f"{what}({n}): n must be in {least}..{self.max_batch}")
        return n

    def _count(self, n: int) -> None:
        """One batch of ``n`` rows evaluated (or launched)."""
        self.evals += n
        self.batches += 1

    def evaluate(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Evaluate ``inputs[:n]``: (policy float32 [n, A], value float32 [n]), views valid until the next call."""
        n = self._checked(n)
        if n:
            self._forward(n)
            self._count(n)
        return self._policy[:n], self._value[:n]

    def forward(self, n: int) -> NNOutput:
        """Evaluate ``inputs[:n]``: policy, value and score in one ``NNOutput`` (views valid until the next
        call)."""
        policy, value = self.evaluate(n)
        return NNOutput(policy, value, self._score[:n])

    def launch(self, n: int):
        """Start evaluating ``inputs[:n]``; ``.result()`` of what it returns is ``forward(n)``'s answer. Where
        ``launches`` is False it is computed here and now."""
        return Done(self.forward(n))

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
    to CUDA; ``cpu_dtype`` (float32, bfloat16 or auto: bfloat16 for batches of at least ``CPU_BF16_MIN_ROWS``
    rows where ``cpu_bf16_native()``, float32 otherwise) to the CPU. ``cudnn_benchmark`` turns on ``torch.backends.cudnn.benchmark``
    (process-wide) before the graphs are captured, so each captured size gets its fastest kernels."""

    def __init__(self, net: PolicyValueNet, device: str | torch.device = "cpu", max_batch: int = 512,
                 cuda_graphs: bool = True, dtype: str = "bfloat16", cudnn_benchmark: bool = True,
                 cpu_dtype: str = "float32"):
        self.device = torch_device(device)
        self._cuda = self.device.type == "cuda"
        if dtype not in _AUTOCAST_DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(_AUTOCAST_DTYPES)}, got {dtype!r}")
        if cpu_dtype not in CPU_DTYPES:
            raise ValueError(f"cpu_dtype must be one of {', '.join(CPU_DTYPES)}, got {cpu_dtype!r}")
        self.dtype = dtype
        self.cpu_dtype = cpu_dtype
        self._amp_dtype = _AUTOCAST_DTYPES[dtype] if self._cuda else None
        # CPU: batches of at least _cpu_amp_rows rows are computed under bf16 autocast (never: a row count no
        # batch reaches)
        bf16 = not self._cuda and (cpu_dtype in ("bfloat16", "bf16") or (cpu_dtype == "auto" and cpu_bf16_native()))
        self._cpu_amp_rows = (CPU_BF16_MIN_ROWS if cpu_dtype == "auto" else 1) if bf16 else max_batch + 1
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
            self._done = torch.cuda.Event()  # recorded after a launched batch's copies back
            self.launches = True  # a CUDA stream computes while the caller goes on
        else:
            self._x = torch.zeros(self.inputs.shape, dtype=torch.float32)

    def twin(self) -> "NetEvaluator":
        """The same net (weights shared: ``load_state_dict`` on either changes both), buffers, device
        buffers, stream and CUDA graphs of its own."""
        twin = NetEvaluator(self.net, self.device, self.max_batch, self.cuda_graphs, self.dtype,
                            cudnn_benchmark=False, cpu_dtype=self.cpu_dtype)
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
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=n >= self._cpu_amp_rows):
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
        self._enqueue_cuda(n)
        self._stream.synchronize()  # the one sync per call: outputs are in host memory after it

    def _enqueue_cuda(self, n: int) -> None:
        """Queue a batch on this evaluator's stream: inputs to the device, the graph (or eager net), outputs
        back into the pinned host buffers; returns at once."""
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

    def launch(self, n: int):
        """CUDA: queue the batch on this evaluator's stream and return at once (``CudaLaunched.result()``
        waits for it), so that the search selects the next batch, into a twin's buffers, while the GPU
        computes this one. The CPU computes here and now (``Done``)."""
        if not self._cuda:
            return super().launch(n)
        n = self._checked(n, "launch", least=1)
        self._enqueue_cuda(n)
        self._done.record(self._stream)
        self._count(n)
        return CudaLaunched(self, n)

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

    @property
    def cpu_mode(self) -> str:
        """What the CPU computes in: 'float32', 'bfloat16' or 'bfloat16 from 16 rows' (float32 below)."""
        if self._cpu_amp_rows > self.max_batch:
            return "float32"
        return "bfloat16" if self._cpu_amp_rows <= 1 else f"bfloat16 from {self._cpu_amp_rows} rows"

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
                else (f"{self.cpu_mode}, eager" if not self._cuda else f"{self.dtype}, eager"))
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
    return NetEvaluator(net, chosen, max_batch=max_batch, cuda_graphs=ev_cfg.cuda_graphs, dtype=ev_cfg.dtype,
                        cpu_dtype=ev_cfg.cpu_dtype)
