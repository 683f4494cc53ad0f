"""Where a run's self-play games are played: one small interface, three backends.

``RunLoop`` (``specmcts.loop``) owns the one schedule (async or generations, ratio control, lead pause, burst
training). It hands self-play out in *chunks*: a session name (the shard's name), a number of games and a
seed. A backend plays them somewhere and hands back each finished chunk's summary once its shard and SGFs
are in the run directory::

    backend.start(loop)          after the run directory is ready (models/selfplay.json names the net)
    backend.free() -> [worker]   worker slots that can take another chunk now
    backend.submit(worker, chunk)
    backend.collect(timeout) -> (summaries, lost chunks)    raises WorkerFailed when self-play cannot go on
    backend.busy() -> bool       chunks submitted and not yet collected
    backend.published()          a new self-play net was published (the pointer changed)
    backend.stop() -> summaries  of chunks that finished while stopping; games in flight are lost
    backend.summary() -> dict

- ``InProcess``: the run's own process plays a chunk when it is collected (the default of ``generations``:
  one process, seeded, reproducible).
- ``LocalProcesses``: ``run.workers`` processes on this machine (the default of ``async``), each with its own
  net, evaluator and NN cache; a worker loads the published net from ``models/selfplay.json`` before a chunk.
  Workers die with the run (``PR_SET_PDEATHSIG``), so a ``kill -9`` leaves no orphan writing into the run.
- ``RayBackend`` (``specmcts.distributed``): actors anywhere in a Ray cluster, weights by object-store reference.

A chunk lost with a dead worker comes back from ``collect``: generations play it again (it is named and
seeded by generation and index), async runs simply play another.
"""
from __future__ import annotations

import dataclasses
import multiprocessing
import os
import queue as queue_module
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from specmcts.config import Config
from specmcts.network import CheckpointError, load_model
from specmcts.stopping import die_with_parent

def _stderr_report(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


LOCAL_DEPTH = 2  # chunks queued per local worker: the next is there when one ends, while the driver trains
STOP_GRACE_S = 3.0  # a stopping local worker may finish its chunk this long; then it is terminated


class WorkerFailed(RuntimeError):
    """Self-play cannot go on: a chunk raised, a worker cannot start, or the workers are gone."""

    def __init__(self, message: str, reason: str = "self-play failed"):
        super().__init__(message)
        self.reason = reason  # the run's stop reason


@dataclass
class Chunk:
    session: str
    games: int
    seed: int


def chunk_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1)[0])


def chunk_config(cfg: Config, games: int, seed: int) -> Config:
    """The config of one self-play chunk: ``games`` games, all in one shard, seeded with ``seed``."""
    sp = dataclasses.replace(cfg.selfplay, games=games, shard_games=games, concurrent=min(cfg.selfplay.concurrent, games))
    return dataclasses.replace(cfg, seed=int(seed), selfplay=sp)


def play_chunk(cfg: Config, run_dir: Path, evaluator, cache, session: str, games: int, seed: int) -> dict:
    """Play ``games`` self-play games into ``run_dir`` (SGF + one shard named ``<session>-0000.npz``)."""
    from specmcts.selfplay import SelfPlay

    runner = SelfPlay(chunk_config(cfg, games, seed), evaluator, cache, out=run_dir, model_id=evaluator.model_id,
                      progress=False, tensorboard=False)
    # The loop names its shards (sequence or time + worker) so that they sort in the order they were made and
    # a resumed generation can tell which chunks are done.
    runner.writer.session = session
    summary = runner.run()
    summary["samples"] = summary["moves"]
    summary["model_id"] = evaluator.model_id
    # Speculation per stage/phase and cache hit rate per game phase, as self-play names them in TensorBoard.
    summary["scalars"] = {k: v for k, v in runner._tb_scalars(summary).items()
                          if k.startswith(("speculation/", "cache/")) and v is not None}
    return summary


def load_selfplay_net(store, board: int):
    """The net the pointer names (else the newest good checkpoint), on CPU, and the pointer."""
    pointer = store.read_pointer()
    if pointer is not None:
        try:
            net, _meta = load_model(store.dir / pointer["path"], expect_board=board)
            return net, pointer
        except CheckpointError:
            pass
    found = store.latest_good(lambda _m: None)
    if found is None:
        raise CheckpointError(f"no usable checkpoint in {store.dir} for self-play")
    net, meta = load_model(found[0], expect_board=board)
    return net, {"path": found[0].name, "model_id": net.model_id, "step": int(meta.get("step", 0))}


class SelfPlayNet:
    """A self-play process's net, evaluator and NN cache, following ``models/selfplay.json``."""

    def __init__(self, cfg: Config, store, device: str):
        from specmcts.evaluator import make_evaluator
        from specmcts.nncache import NNCache

        self.cfg, self.store = cfg, store
        net, self.pointer = load_selfplay_net(store, cfg.game.board)
        self.evaluator = make_evaluator(cfg, cfg.game.board, net, device=device)
        self.cache = NNCache.for_board(cfg.evaluator.cache_entries, cfg.game.board)

    def follow(self) -> bool:
        """Switch to the published net if it changed (weights copied in place); True if it did."""
        current = self.store.read_pointer()
        if current is None or current.get("model_id") == self.pointer.get("model_id"):
            return False
        new_net, _meta = load_model(self.store.dir / current["path"], expect_board=self.cfg.game.board)
        self.evaluator.load_state_dict(new_net.state_dict(), new_net.model_id)
        self.cache.clear()  # cached evaluations belong to the old weights
        self.pointer = current
        return True

    def play(self, run_dir: Path, chunk: Chunk) -> dict:
        return play_chunk(self.cfg, run_dir, self.evaluator, self.cache, chunk.session, chunk.games, chunk.seed)


# -- in this process -----------------------------------------------------------------------------------------


class InProcess:
    """Chunks played by the run's own process, one at a time, when collected."""

    name = "in-process"
    separate = False  # shares the driver's cores

    def __init__(self, cfg: Config, run_dir: Path, device: str, report=_stderr_report):
        self.cfg, self.run_dir, self.device = cfg, Path(run_dir), device
        self.workers = 1
        self.queue: deque[Chunk] = deque()
        self.player: SelfPlayNet | None = None

    def start(self, loop) -> None:
        self.player = SelfPlayNet(self.cfg, loop.store, self.device)

    def free(self) -> list[int]:
        return [] if self.queue else [0]

    def submit(self, worker: int, chunk: Chunk) -> None:
        self.queue.append(chunk)

    def busy(self) -> bool:
        return bool(self.queue)

    def collect(self, timeout: float) -> tuple[list[dict], list[Chunk]]:
        if not self.queue:
            return [], []
        self.player.follow()
        return [self.player.play(self.run_dir, self.queue.popleft())], []

    def published(self) -> None:
        pass  # followed before the next chunk

    def stop(self) -> list[dict]:
        self.queue.clear()
        return []

    def summary(self) -> dict:
        return {}


# -- local processes -----------------------------------------------------------------------------------------


def selfplay_worker(cfg: Config, run_dir: str, worker: int, device: str, threads: int, tasks, messages,
                    parent_pid: int) -> None:
    """A local self-play process: plays the chunks it is handed, with the newest published net."""
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        import torch

        from specmcts.train import CheckpointStore

        # Each worker gets its share of the cores (torch and the numba batch kernels), unless the config says.
        torch.set_num_threads(cfg.evaluator.torch_threads or max(1, threads))
        if cfg.search.threads <= 0:
            cfg = dataclasses.replace(cfg, search=dataclasses.replace(cfg.search, threads=max(1, threads)))
        run_path = Path(run_dir)
        player = SelfPlayNet(cfg, CheckpointStore(run_path), device)
        while True:
            if os.getppid() != parent_pid:
                return
            try:
                chunk = tasks.get(timeout=0.5)
            except queue_module.Empty:
                continue
            if chunk is None:
                return
            try:
                player.follow()
            except CheckpointError as e:
                messages.put(("warning", worker, None, str(e)))
            messages.put(("chunk", worker, chunk.session, player.play(run_path, chunk)))
    except KeyboardInterrupt:
        return
    except Exception as e:  # reported by the parent in one line
        text = str(e).strip().splitlines()
        messages.put(("error", worker, None, f"{type(e).__name__}: {text[0] if text else ''}"))


class LocalProcesses:
    """``run.workers`` self-play processes on this machine; chunks go to each through its own queue."""

    name = "processes"
    separate = True

    def __init__(self, cfg: Config, run_dir: Path, device: str, report=_stderr_report):
        self.cfg, self.run_dir, self.device, self.report = cfg, Path(run_dir), device, report
        self.workers = cfg.run.workers
        self.ctx = multiprocessing.get_context("spawn")
        self.messages = self.ctx.Queue()
        self.tasks = [self.ctx.Queue() for _ in range(self.workers)]
        self.procs: list = []
        self.pending: list[deque[Chunk]] = [deque() for _ in range(self.workers)]
        self.games = [0] * self.workers
        self.chunks_lost = 0
        self.closed = False

    def start(self, loop) -> None:
        threads = max(1, (os.cpu_count() or 1) // (self.workers + 1))
        for w in range(self.workers):
            p = self.ctx.Process(target=selfplay_worker, name=f"selfplay-{w}", daemon=True,
                                 args=(self.cfg, str(self.run_dir), w, self.device, threads, self.tasks[w],
                                       self.messages, os.getpid()))
            p.start()
            self.procs.append(p)

    def free(self) -> list[int]:
        alive = [w for w, p in enumerate(self.procs) if p.is_alive()]
        return sorted((w for w in alive if len(self.pending[w]) < LOCAL_DEPTH), key=lambda w: (len(self.pending[w]), w))

    def submit(self, worker: int, chunk: Chunk) -> None:
        self.pending[worker].append(chunk)
        self.tasks[worker].put(chunk)

    def busy(self) -> bool:
        return any(self.pending)

    def _take(self, item, done: list[dict]) -> None:
        kind, worker, session, payload = item
        if kind == "chunk":
            queued = self.pending[worker]
            if queued and queued[0].session == session:
                queued.popleft()
            self.games[worker] += int(payload["games"])
            done.append(payload)
        elif kind == "error":
            raise WorkerFailed(f"self-play worker {worker} failed: {payload}")
        elif kind == "warning":
            self.report(f"run: self-play worker {worker}: {payload}")

    def collect(self, timeout: float) -> tuple[list[dict], list[Chunk]]:
        done: list[dict] = []
        try:
            self._take(self.messages.get(timeout=timeout) if timeout > 0 else self.messages.get_nowait(), done)
        except queue_module.Empty:
            pass
        while True:
            try:
                self._take(self.messages.get_nowait(), done)
            except queue_module.Empty:
                break
        lost: list[Chunk] = []
        for w, p in enumerate(self.procs):
            if not p.is_alive() and self.pending[w]:
                lost.extend(self.pending[w])  # a killed worker: its chunks are lost
                self.chunks_lost += len(self.pending[w])
                self.pending[w].clear()
        if self.procs and not any(p.is_alive() for p in self.procs):
            raise WorkerFailed("every self-play worker exited", reason="self-play workers exited")
        return done, lost

    def published(self) -> None:
        pass  # each worker reads the pointer before its next chunk

    def stop(self) -> list[dict]:
        if self.closed:
            return []
        self.closed = True
        for q in self.tasks:
            while True:  # chunks not started are not played
                try:
                    q.get_nowait()
                except queue_module.Empty:
                    break
            q.put(None)
        deadline = time.perf_counter() + STOP_GRACE_S
        for p in self.procs:
            p.join(timeout=max(0.1, deadline - time.perf_counter()))
        for p in self.procs:
            if p.is_alive():
                p.terminate()  # games in flight are lost; every finished shard is already on disk
                p.join(timeout=5)
        done: list[dict] = []
        while True:
            try:
                self._take(self.messages.get_nowait(), done)
            except (queue_module.Empty, WorkerFailed):
                break
            except (EOFError, OSError):
                break
        return done

    def summary(self) -> dict:
        return {"workers": self.workers, "chunks_lost": self.chunks_lost,
                "games_by_worker": {f"w{w:02d}": n for w, n in enumerate(self.games)}}


def make_backend(kind: str, cfg: Config, run_dir: Path, device: str, report):
    """``kind``: ``auto`` (in-process for generations, local processes for async), ``in-process``,
    ``processes`` or ``ray``."""
    if kind == "auto":
        kind = "in-process" if cfg.run.mode == "generations" else "processes"
    if kind == "in-process":
        return InProcess(cfg, run_dir, device, report)
    if kind == "processes":
        return LocalProcesses(cfg, run_dir, device, report)
    if kind == "ray":
        from specmcts.distributed import RayBackend

        return RayBackend(cfg, run_dir, device, report)
    raise ValueError(f"unknown self-play backend {kind!r}")
