"""One evaluator shared by many worker processes (the GPU's): each worker gets a ``SharedEvaluatorClient``
with the ``Evaluator`` contract (``specmcts.engine.evaluator``), whose ``inputs`` and outputs live in
``multiprocessing.shared_memory``; a ``SharedEvaluatorServer`` thread batches the pending requests of all
workers into one call of the real evaluator, answering repeats from one NN cache.
"""
from __future__ import annotations

import multiprocessing
import os
import threading
import time
from dataclasses import dataclass
from multiprocessing import shared_memory
from typing import Any

import numpy as np

from native import nncache as native_nncache
from native.features import NUM_PLANES
from specmcts.engine.evaluator import Evaluator

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

    With a ``cache`` (``specmcts.engine.nncache.NNCache``; one of capacity 0 only deduplicates) the server keys every
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
            policy, value, score = self.evaluator.forward(used)
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
