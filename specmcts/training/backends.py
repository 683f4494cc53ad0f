"""Where a run's self-play games are played: one small interface, three backends.

``RunLoop`` (``specmcts.training.loop``) owns the one schedule (async or generations, ratio control, lead pause, burst
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
- ``LocalProcesses`` (``specmcts.training.local``): ``run.workers`` processes on this machine (the default of
  ``async``), each with its own net, evaluator and NN cache; a worker loads the published net from
  ``models/selfplay.json`` before a chunk. Workers die with the run (``PR_SET_PDEATHSIG``), so a ``kill -9``
  leaves no orphan writing into the run.
- ``RayBackend`` (``specmcts.training.distributed``): actors anywhere in a Ray cluster, weights by object-store reference.

A chunk lost with a dead worker comes back from ``collect``: generations play it again (it is named and
seeded by generation and index), async runs simply play another.
"""
from __future__ import annotations

import dataclasses
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from specmcts.config import Config
from specmcts.engine.network import CheckpointError, load_fixed_net, load_model
from specmcts.stopping import say
from specmcts.training.selfplay import SelfPlay


FOLLOW_EVERY_S = 0.2  # the shared evaluator reads models/selfplay.json this often (between batches)
FOLLOW_WAIT_S = 60.0  # a worker waits this long for it to switch to a newly published net


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
    board: int = 0  # the size its games are played on (0: the run's game.board; game.boards: one of them)


def chunk_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1)[0])


def chunk_config(cfg: Config, games: int, seed: int) -> Config:
    """The config of one self-play chunk: ``games`` games, all in one shard, seeded with ``seed``."""
    sp = dataclasses.replace(cfg.selfplay, games=games, shard_games=games, concurrent=min(cfg.selfplay.concurrent, games))
    return dataclasses.replace(cfg, seed=int(seed), selfplay=sp)


def play_chunk(cfg: Config, run_dir: Path, evaluator, cache, session: str, games: int, seed: int,
               stop_when=None, board: int = 0) -> dict:
    """Play ``games`` self-play games into ``run_dir`` (SGF + one shard named ``<session>-0000.npz``) on
    ``board`` (0: ``cfg.game.board``), with that size's evaluator and cache. ``stop_when()`` true: stop at
    the next batch and keep the games finished so far. The NN cache starts empty: which chunks a process
    played before is timing's choice, and an evaluation cached in another batch can differ in its last bits
    from one made in this chunk's (a CPU net's rows depend on their batch), so a chunk plays the same games
    whoever plays it, after whatever."""
    cfg = cfg.at_board(board or cfg.game.board)
    cache.clear()
    runner = SelfPlay(chunk_config(cfg, games, seed), evaluator, cache, out=run_dir, model_id=evaluator.model_id,
                      progress=False, tensorboard=False)
    runner.stop_when = stop_when
    # The loop names its shards (sequence or time + worker) so that they sort in the order they were made and
    # a resumed generation can tell which chunks are done.
    runner.writer.session = session
    cpu_started = time.process_time()
    summary = runner.run()
    summary["board"] = cfg.game.board
    summary["play_cpu_s"] = time.process_time() - cpu_started  # the playing process's (all its threads)
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




class NetFollower:
    """Where a self-play net comes from and when it changes: the run directory's ``models/selfplay.json``
    (``store``), or one fixed model (``model``) that never changes."""

    def __init__(self, cfg: Config, store=None, model: str | None = None):
        self.cfg, self.store, self.model = cfg, store, model
        self.pointer: dict = {}

    def load(self):
        if self.store is None:
            net = load_fixed_net(self.cfg, self.model)
            self.pointer = {"model_id": net.model_id}
            return net
        net, self.pointer = load_selfplay_net(self.store, self.cfg.game.board)
        return net

    def published_id(self) -> str | None:
        """The model id the run directory names now (None for a fixed model or no pointer yet)."""
        if self.store is None:
            return None
        pointer = self.store.read_pointer()
        return None if pointer is None else pointer.get("model_id")

    def changed(self):
        """The published net if it is not the one loaded last (and remember it), else None."""
        if self.store is None:
            return None
        current = self.store.read_pointer()
        if current is None or current.get("model_id") == self.pointer.get("model_id"):
            return None
        new_net, _meta = load_model(self.store.dir / current["path"], expect_board=self.cfg.game.board)
        self.pointer = current
        return new_net


class BoardNets:
    """One evaluator and NN cache per board size a run plays (``game.sizes()``), all with the same weights:
    what a self-play process holds. ``get(board)`` -> ``(evaluator, cache)``."""

    def __init__(self, cfg: Config, net, device: str):
        from specmcts.engine.evaluator import make_evaluator
        from specmcts.engine.network import on_board
        from specmcts.engine.nncache import NNCache

        self.by_board = {b: (make_evaluator(cfg.at_board(b), b, on_board(net, b), device=device),
                             NNCache.for_board(cfg.evaluator.cache_entries, b)) for b in cfg.game.sizes()}
        self.board = cfg.game.board

    def get(self, board: int = 0):
        board = board or self.board
        if board not in self.by_board:
            raise ValueError(f"a chunk of {board}x{board} games, but the run plays {sorted(self.by_board)}")
        return self.by_board[board]

    def load_state_dict(self, state: dict, model_id: str, trained_board: int) -> None:
        """New weights for every size (each evaluator named for its size); the caches are emptied."""
        from specmcts.engine.network import board_model_id

        for b, (evaluator, cache) in self.by_board.items():
            evaluator.load_state_dict(state, board_model_id(model_id, b, trained_board))
            cache.clear()  # cached evaluations belong to the old weights


class SelfPlayNet:
    """A self-play process's evaluator and NN cache: its own net (following ``source``), or a client of the
    shared evaluator process (``shared``: its handle), whose NN cache is the server's: the worker's own is
    disabled so that a new net can never meet a stale entry."""

    def __init__(self, cfg: Config, source: NetFollower, device: str, shared=None):
        from specmcts.engine.nncache import NNCache

        self.cfg, self.source = cfg, source
        self.nets = None  # BoardNets, without a shared evaluator
        if shared is not None:  # one board size (config.shared_evaluator)
            self.evaluator = shared.connect()
            self.cache = NNCache.for_board(0, cfg.game.board)
        else:
            self.nets = BoardNets(cfg, source.load(), device)
            self.evaluator, self.cache = self.nets.get()
        self.shared = shared is not None
        self.stop_when = None  # a callable: stop the chunk at the next batch, keep its finished games

    def follow(self) -> bool:
        """Switch to the published net if it changed (weights copied in place); True if it did. A shared
        evaluator follows the pointer itself (every ``FOLLOW_EVERY_S``): wait until it has, so that a chunk
        handed out after a publication (a new generation) is played by the new net."""
        if self.shared:
            wanted = self.source.published_id()
            if wanted is None or self.evaluator.model_id == wanted:
                return False
            deadline = time.monotonic() + FOLLOW_WAIT_S
            while self.evaluator.model_id != wanted and time.monotonic() < deadline:
                time.sleep(0.01)
            if self.evaluator.model_id != wanted:
                raise CheckpointError(f"the shared evaluator did not switch to the published net {wanted} within "
                                      f"{FOLLOW_WAIT_S:g} s; playing on with {self.evaluator.model_id}")
            return True
        new_net = self.source.changed()
        if new_net is None:
            return False
        self.nets.load_state_dict(new_net.state_dict(), new_net.model_id, new_net.trained_board)
        return True

    def play(self, run_dir: Path, chunk: Chunk) -> dict:
        evaluator, cache = (self.evaluator, self.cache) if self.nets is None else self.nets.get(chunk.board)
        return play_chunk(self.cfg, run_dir, evaluator, cache, chunk.session, chunk.games, chunk.seed,
                          stop_when=self.stop_when, board=chunk.board)


# -- in this process -----------------------------------------------------------------------------------------


class InProcess:
    """Chunks played by the run's own process, one at a time, when collected."""

    name = "in-process"
    separate = False  # shares the driver's cores

    def __init__(self, cfg: Config, run_dir: Path, device: str, report=say):
        self.cfg, self.run_dir, self.device = cfg, Path(run_dir), device
        self.workers = 1
        self.queue: deque[Chunk] = deque()
        self.player: SelfPlayNet | None = None

    def start(self, loop) -> None:
        self.player = SelfPlayNet(self.cfg, NetFollower(self.cfg, store=loop.store), self.device)

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
