"""Self-play on this machine's processes: ``LocalProcesses`` (the backend of async runs and of ``selfplay
--workers N``; the interface is ``specmcts.training.backends``'s), its worker processes, the shared evaluator
process, and the per-process message pipes to the driver.
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
from pathlib import Path

from specmcts.atomic import remove_stale_temporaries
from specmcts.config import Config
from specmcts.engine.network import FRESH, CheckpointError, load_model
from specmcts.stopping import die_with_parent, say
from specmcts.threads import SEARCH, TRAIN
from specmcts.threads import configure as configure_threads
from specmcts.training.backends import (FOLLOW_EVERY_S, Chunk, NetFollower, SelfPlayNet, WorkerFailed, chunk_seed)
from specmcts.training.selfplay import merge_summaries

LOCAL_DEPTH = 2  # chunks queued per local worker: the next is there when one ends, while the driver trains
STOP_GRACE_S = 3.0  # a stopping local worker may finish its chunk this long; then it is terminated


def _follower(cfg: Config, run_dir: str, model: str | None) -> NetFollower:
    if model is not None:
        return NetFollower(cfg, model=model)
    from specmcts.training.trainer import CheckpointStore

    return NetFollower(cfg, store=CheckpointStore(Path(run_dir)))


def selfplay_worker(cfg: Config, run_dir: str, worker: int, device: str, threads: int, tasks, messages,
                    parent_pid: int, model: str | None = None, shared=None, stopping=None) -> None:
    """A local self-play process: plays the chunks it is handed, with the newest published net (or the fixed
    ``model``), on its own evaluator or on the shared one (``shared``: its handle). ``stopping`` set: the
    chunk in hand stops at its next batch and keeps its finished games."""
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        configure_threads(cfg, SEARCH, cores=threads)  # this process's share of the cores
        run_path = Path(run_dir)
        player = SelfPlayNet(cfg, _follower(cfg, run_dir, model), device, shared=shared)
        if stopping is not None:
            player.stop_when = stopping.is_set
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


EVALUATOR = -1  # the shared evaluator process, in messages


class Outbox:
    """One process's message pipe to the driver (``put``). A pipe per writer: a writer killed in the middle of
    a message (kill -9) leaves no lock held that the other processes' messages would wait on, as the one
    write lock of a shared ``multiprocessing.Queue`` would."""

    def __init__(self, conn):
        self.conn = conn

    def put(self, item) -> None:
        self.conn.send(item)


class Inbox:
    """The driver's end of every process's ``Outbox``: ``get(timeout)`` / ``get_nowait()`` as a queue's,
    raising ``queue.Empty``. The driver closes its copy of each writing end once the process has started, so
    a writer that dies mid-message reads as the end of its pipe, never as a message that never ends."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.readers: list = []

    def outbox(self) -> Outbox:
        reader, writer = self.ctx.Pipe(duplex=False)
        self.readers.append(reader)
        return Outbox(writer)

    def get(self, timeout: float = 0.0):
        from multiprocessing.connection import wait

        deadline = time.monotonic() + max(0.0, timeout)
        while self.readers:
            for reader in wait(self.readers, max(0.0, deadline - time.monotonic())):
                try:
                    return reader.recv()
                except (EOFError, OSError):  # its process is gone (and with it anything half sent)
                    self.readers.remove(reader)
                    reader.close()
            if time.monotonic() >= deadline:
                break
        raise queue_module.Empty

    def get_nowait(self):
        return self.get(0.0)


def evaluator_worker(cfg: Config, run_dir: str, spec, device: str, threads: int, messages, parent_pid: int,
                     model: str | None = None, follow_every: float = FOLLOW_EVERY_S) -> None:
    """The shared evaluator process: owns the net (and the GPU), serves every self-play worker through
    ``spec`` (``specmcts.engine.shared_evaluator.EvaluatorChannel``) with one NN cache, and follows the published net."""
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        from specmcts.engine.evaluator import make_evaluator
        from specmcts.engine.shared_evaluator import SharedEvaluatorServer
        from specmcts.engine.nncache import NNCache

        configure_threads(cfg, TRAIN, cores=threads)  # batches of every worker's rows: intra-op threads pay
        source = _follower(cfg, run_dir, model)
        batch = cfg.evaluator.server_batch or min(spec.clients * spec.rows, 2048)
        evaluator = make_evaluator(cfg, cfg.game.board, source.load(), device=device,
                                   max_batch=max(batch, spec.rows))
        cache = NNCache.for_board(cfg.evaluator.cache_entries, cfg.game.board)
        server = SharedEvaluatorServer(evaluator, spec=spec, cache=cache)

        def follow(server) -> None:
            if os.getppid() != parent_pid:
                raise SystemExit(0)
            try:
                new_net = source.changed()
            except CheckpointError as e:
                messages.put(("warning", EVALUATOR, None, str(e)))
                return
            if new_net is not None:
                evaluator.load_state_dict(new_net.state_dict(), new_net.model_id)
                server.set_model(new_net.model_id)

        messages.put(("ready", EVALUATOR, None, {"model_id": evaluator.model_id, "max_batch": evaluator.max_batch}))
        server.serve(follow, follow_every)
        messages.put(("served", EVALUATOR, None, server.counters()))
    except (KeyboardInterrupt, SystemExit):
        return
    except Exception as e:
        text = str(e).strip().splitlines()
        messages.put(("error", EVALUATOR, None, f"{type(e).__name__}: {text[0] if text else ''}"))


class LocalProcesses:
    """``run.workers`` self-play processes on this machine; chunks go to each through its own queue.

    With a shared evaluator (``evaluator.shared``; ``shared=True/False`` overrides) one more process owns the
    net and serves every worker (``evaluator_worker``); workers then load no net. A worker that dies loses its
    chunks and the others go on; the evaluator process dying stops self-play (``WorkerFailed``), with every
    finished chunk already on disk. ``model``: a fixed net (``selfplay --workers``) instead of the run
    directory's published one."""

    name = "processes"
    separate = True

    def __init__(self, cfg: Config, run_dir: Path, device: str, report=say, model: str | None = None,
                 shared: bool | None = None):
        from specmcts.config import shared_evaluator

        self.cfg, self.run_dir, self.device, self.report = cfg, Path(run_dir), device, report
        self.model = model
        self.workers = cfg.run.workers
        self.shared = shared_evaluator(cfg, device, self.workers) if shared is None else bool(shared)
        self.ctx = multiprocessing.get_context("spawn")
        self.messages = Inbox(self.ctx)
        self.tasks = [self.ctx.Queue() for _ in range(self.workers)]
        self.stopping = self.ctx.Event()
        self.procs: list = []
        self.pending: list[deque[Chunk]] = [deque() for _ in range(self.workers)]
        self.games = [0] * self.workers
        self.chunks_lost = 0
        self.closed = False
        self.channel = None
        self.server = None  # the shared evaluator's process
        self.served: dict = {}

    def start(self, loop=None) -> None:
        cores = os.cpu_count() or 1
        handles = [None] * self.workers
        if self.shared:
            from specmcts.engine.shared_evaluator import EvaluatorChannel
            from native.features import NUM_PLANES

            self.channel = EvaluatorChannel(self.workers, self.cfg.evaluator.max_batch, self.cfg.game.board,
                                            NUM_PLANES, self.ctx)
            handles = [self.channel.handle(w) for w in range(self.workers)]
            outbox = self.messages.outbox()
            self.server = self.ctx.Process(target=evaluator_worker, name="evaluator", daemon=True,
                                           args=(self.cfg, str(self.run_dir), self.channel.spec, self.device,
                                                 max(1, cores // 2), outbox, os.getpid(), self.model))
            self.server.start()
            outbox.conn.close()  # the child has its own copy
        threads = max(1, cores // (self.workers + 1))
        for w in range(self.workers):
            outbox = self.messages.outbox()
            p = self.ctx.Process(target=selfplay_worker, name=f"selfplay-{w}", daemon=True,
                                 args=(self.cfg, str(self.run_dir), w, self.device, threads, self.tasks[w],
                                       outbox, os.getpid(), self.model, handles[w], self.stopping))
            p.start()
            outbox.conn.close()  # the child has its own copy
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
        elif kind == "error" and worker == EVALUATOR:
            self._evaluator_gone(f"the shared evaluator failed: {payload}")
        elif kind == "error":
            raise WorkerFailed(f"self-play worker {worker} failed: {payload}")
        elif kind == "warning":
            who = "the shared evaluator" if worker == EVALUATOR else f"self-play worker {worker}"
            self.report(f"run: {who}: {payload}")
        elif kind == "served":
            self.served = payload

    def _evaluator_gone(self, message: str) -> None:
        if self.channel is not None:
            self.channel.stop()  # clients waiting for an answer fail at once instead of polling
        raise WorkerFailed(f"{message}; every finished self-play chunk is on disk",
                           reason="shared evaluator failed")

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
        if self.server is not None and not self.server.is_alive():
            self._evaluator_gone(f"the shared evaluator process exited (code {self.server.exitcode})")
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
        pass  # each worker (or the shared evaluator) reads the pointer before its next chunk (every second)

    def stop(self, finish_games: bool = False) -> list[dict]:
        """Stop the workers. Chunks not started are not played; a chunk in hand is lost, or with
        ``finish_games`` stops at its next batch and is written with the games it finished."""
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
        if finish_games:
            self.stopping.set()
        deadline = time.perf_counter() + STOP_GRACE_S * (10 if finish_games else 1)
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
        if self.server is not None:
            self.channel.stop()  # the server returns from serve() within a second
            self.server.join(timeout=5)
            if self.server.is_alive():
                self.server.terminate()
                self.server.join(timeout=5)
            while True:
                try:
                    self._take(self.messages.get_nowait(), done)
                except (queue_module.Empty, WorkerFailed, EOFError, OSError):
                    break
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        return done

    def summary(self) -> dict:
        out = {"workers": self.workers, "chunks_lost": self.chunks_lost, "shared_evaluator": self.shared,
               "games_by_worker": {f"w{w:02d}": n for w, n in enumerate(self.games)}}
        if self.served:
            out["evaluator"] = self.served
        return out


# -- `specmcts selfplay --workers N` -------------------------------------------------------------------------


def run_selfplay_processes(cfg: Config, out: Path, model_path: str | None, workers: int,
                           progress: bool = False) -> dict:
    """``selfplay --workers N``: ``cfg.selfplay.games`` games in chunks of ``selfplay.shard_games`` (a shard
    each, named and seeded by their index) on N local processes (``LocalProcesses``), with
    one shared evaluator process or a net each (``evaluator.shared``). Ctrl-C: each chunk in hand stops at
    its next batch and keeps its finished games."""
    from specmcts.config import resolve_device
    from specmcts.stopping import GracefulStop

    if model_path:  # a bad checkpoint is one line here, before any process starts
        load_model(model_path, expect_board=cfg.game.board)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out / "sgf", out / "data")
    total = cfg.selfplay.games
    per_chunk = max(1, min(cfg.selfplay.shard_games, total))
    cfg = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, workers=workers))
    device = resolve_device(cfg.evaluator.device)
    backend = LocalProcesses(cfg, out, device, model=model_path or FRESH,
                             report=lambda message: print(message, file=sys.stderr, flush=True))
    stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
    todo = [Chunk(f"{stamp}-c{i:04d}", min(per_chunk, total - i * per_chunk), chunk_seed(cfg.seed, i))
            for i in range(-(-total // per_chunk))]
    parts: list[dict] = []
    stopped = {"now": False}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="game", dynamic_ncols=True, leave=False)

    def stop() -> None:
        stopped["now"] = True
        print("selfplay: stopping: each worker finishes its current batch and keeps its finished games "
              "(again to stop now)", file=sys.stderr)

    from torch.utils.tensorboard import SummaryWriter

    tb = SummaryWriter(str(out / "tb"))  # the single-process tags, over all workers, at each finished chunk

    def log(wall: float) -> None:
        merged = merge_summaries(parts, wall)
        values = {"selfplay/sims_per_s": merged["sims_per_s"], "selfplay/evals_per_s": merged["evals_per_s"],
                  "selfplay/cache_hit_rate": merged["cache_hit_rate"],
                  "selfplay/mean_game_length": merged["mean_game_length"],
                  "selfplay/move_latency_ms": merged["mean_move_ms"],
                  "selfplay/games_per_hour": 3600 * merged["games"] / wall if wall > 0 else 0.0,
                  "speculation/accuracy": merged["prediction_accuracy"]}
        for tag, value in values.items():
            if value is not None:
                tb.add_scalar(tag, value, merged["sims"])

    started = time.perf_counter()
    reason = "done"
    try:
        backend.start()
        queue = list(todo)
        with GracefulStop(stop):
            while (queue or backend.busy()) and not stopped["now"]:
                for w in backend.free():
                    if queue:
                        backend.submit(w, queue.pop(0))
                done, lost = backend.collect(0.5)
                queue = lost + queue
                parts.extend(done)
                if done:
                    log(time.perf_counter() - started)
                if bar is not None and done:
                    bar.update(sum(p["games"] for p in done))
    except KeyboardInterrupt:
        stopped["now"] = True
    except WorkerFailed as e:  # the games finished before are kept; the exit status says it failed
        reason = f"failed: {e}"
        print(f"selfplay: {e}", file=sys.stderr)
    finally:
        parts.extend(backend.stop(finish_games=True))
        if parts:
            log(time.perf_counter() - started)
        tb.close()
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - started
    summary = merge_summaries(parts, wall)
    shared = backend.summary()
    if shared.get("evaluator"):
        served = shared["evaluator"]
        summary["cache_hit_rate"] = served["cache_hits"] / served["rows"] if served["rows"] else 0.0
        summary["evals"] = served["forwarded"]
        summary["evals_per_s"] = served["forwarded"] / wall if wall > 0 else 0.0
    summary.update(stop_reason="interrupted" if stopped["now"] else reason, workers=workers,
                   shared_evaluator=backend.shared, model_id=parts[0]["model_id"] if parts else None,
                   device=device, out=str(out), backend=shared, seed=cfg.seed)
    return summary
