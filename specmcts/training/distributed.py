"""``specmcts run --ray [ADDRESS]``: the run loop with its self-play workers as Ray actors.

Everything but where self-play happens is the single-machine run (``specmcts.training.loop.RunLoop`` with the
``RayBackend`` defined here, one of the backends of ``specmcts.training.backends``): the same run directory (``data/``, ``sgf/``, ``models/`` with ``selfplay.json``, ``tb/``,
``config.yaml``, ``run.lock``), the same checkpoints, ratio control, gating, Elo, ``--resume`` and summary. A
user switches by one flag.

Who does what::

    driver (this process)                           Ray cluster
    RunLoop: Trainer, ReplayBuffer, checkpoints,     SelfPlayWorker actor x ray.workers, each with its own
    TensorBoard, gating/Elo                           net, evaluator (GPU share) and NN cache
      | ray.put(weights) -> ObjectRef, with model id  --> play(session, games, seed, weights)
      | <-- summary + shard/SGF bytes (object store)  <--   one chunk of games = one shard
      | writes them into <run>/data, <run>/sgf (atomic renames)

- Weights: when a checkpoint is published (``models/selfplay.json`` changes), the driver puts its state dict
  into the object store once and hands every later chunk the model id and the reference; a worker fetches
  the weights only when the id differs from the one it holds, copies them in place (CUDA graphs stay valid)
  and clears its NN cache.
- Shards: by default workers return each chunk's shard and SGF files as bytes and the driver writes them, so
  only the driver's machine needs the run directory. ``ray.shared_storage: true`` lets workers write into
  the run directory themselves; it must then be the same path on every node (NFS or similar).
- Fault tolerance: actors are not restarted by Ray (``max_restarts=0``); the driver supervises them. A task
  that fails with ``RayActorError`` (actor killed, process crashed, node lost) means the worker is gone: it is
  respawned, its queued chunks are lost (async mode) or played again by whoever is free (generations mode,
  whose chunks are named and seeded by generation and index). A Python exception inside a chunk, an actor
  that cannot start, or more than ``ray.max_restarts`` deaths stop the run with the reason in one line.
- Schedules: the run loop's own (one schedule for every backend). ``async`` keeps ``ray.chunks_in_flight``
  chunks queued per worker while the driver trains (pausing at ``run.max_lead_samples``); ``generations``
  spreads a generation's chunks over the workers and trains when all are on disk. Shard names are those of
  the single-machine run (``<ms>-w<worker>-0000`` and ``g<gen>-c<chunk>-0000``), stamped by the driver.

Ray is an optional extra (``pip install 'specmcts[ray]'``): this module imports it only when a run starts.
"""
from __future__ import annotations

import dataclasses
import math
import os
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from specmcts.atomic import atomic_write_bytes
from specmcts.training.backends import BoardNets, Chunk, WorkerFailed, play_chunk
from specmcts.config import Config, ConfigError
from specmcts.threads import SEARCH
from specmcts.threads import configure as configure_threads
from specmcts.stopping import say

NAMESPACE = "specmcts"  # Ray namespace of the named worker actors (`ray list actors`, `ray.get_actor`)


class RayUnavailable(RuntimeError):
    """``--ray`` without Ray installed."""



def import_ray():
    try:
        import ray
    except ImportError:
        raise RayUnavailable("--ray needs Ray: pip install 'specmcts[ray]' (or pip install 'ray[default]')") from None
    return ray


def validate_ray_config(cfg: Config) -> None:
    r = cfg.ray
    if r.workers < 0:
        raise ConfigError(f"ray.workers must be >= 0 (0: run.workers), got {r.workers}")
    if r.num_cpus_per_worker < 0:
        raise ConfigError(f"ray.num_cpus_per_worker must be >= 0 (0: automatic), got {r.num_cpus_per_worker}")
    if r.num_gpus_per_worker < 0 and r.num_gpus_per_worker != -1:
        raise ConfigError(f"ray.num_gpus_per_worker must be >= 0, or -1 (automatic), got {r.num_gpus_per_worker}")
    if r.chunks_in_flight < 1:
        raise ConfigError(f"ray.chunks_in_flight must be >= 1, got {r.chunks_in_flight}")
    if r.max_restarts < 0:
        raise ConfigError(f"ray.max_restarts must be >= 0, got {r.max_restarts}")
    if r.trainer not in ("driver", "actor"):
        raise ConfigError(f"ray.trainer must be driver or actor, got {r.trainer!r}")
    if r.trainer_cpus < 0 or (r.trainer_gpus < 0 and r.trainer_gpus != -1):
        raise ConfigError("ray.trainer_cpus must be >= 0 and ray.trainer_gpus >= 0 or -1 (automatic)")


# -- the actor -----------------------------------------------------------------------------------------------


class SelfPlayWorker:
    """A self-play actor: its own net, evaluator and NN cache, kept between chunks.

    Plain class; ``WorkerPool`` wraps it with ``ray.remote`` (so this module imports without Ray)."""

    def __init__(self, cfg: Config, run_dir: str, index: int, device: str, threads: int, storage_marker: str | None):
        from specmcts.engine.network import build_net

        threads = max(1, int(threads))
        configure_threads(cfg, SEARCH, cores=threads)  # the actor's CPU share, not every core of the node
        self.cfg = cfg
        self.index = index
        self.threads = threads
        board = cfg.game.board
        if storage_marker:  # ray.shared_storage: the driver's marker file proves this is the same directory
            self.out = Path(run_dir)
            if not (self.out / storage_marker).is_file() or not os.access(self.out / "data", os.W_OK):
                raise RuntimeError(f"ray.shared_storage: the run directory {run_dir} of the driver is not "
                                   f"mounted (writable) on {socket.gethostname()}; mount it at the same path or "
                                   f"set ray.shared_storage=false")
            self.scratch = None
        else:
            _remove_stale_scratch()
            self.scratch = Path(tempfile.mkdtemp(prefix=f"specmcts-w{index:02d}-{os.getpid()}-"))
            self.out = self.scratch
        self.net_spec = dataclasses.asdict(cfg.net)
        self.device = device
        # Placeholder weights: the first chunk brings the run's net (its model id differs from this one).
        self.nets = BoardNets(cfg, build_net(board, cfg.net), device)
        self.evaluator, self.cache = self.nets.get()

    def info(self) -> dict:
        import ray

        return {"worker": self.index, "node": ray.util.get_node_ip_address(), "host": socket.gethostname(),
                "node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid(), "device": str(getattr(self.evaluator, "device", "cpu")), "threads": self.threads}

    def _adopt(self, weights: dict) -> None:
        """Switch to the broadcast net if it is not the one held (weights fetched once per model id)."""
        if weights["model_id"] == self.evaluator.model_id:
            return
        import ray

        payload = ray.get(weights["refs"][0])
        if payload["net"] != self.net_spec:  # another architecture (not expected within a run): rebuild
            from specmcts.engine.network import build_net, net_config_of

            self.cfg = dataclasses.replace(self.cfg, net=net_config_of(payload["net"]))
            self.net_spec = dict(payload["net"])
            board = self.cfg.game.board
            self.nets = BoardNets(self.cfg, build_net(board, self.cfg.net), self.device)
        # the weights' id is the trainer's, recorded for game.board; every other size's evaluator gets @NxN
        self.nets.load_state_dict(payload["state"], weights["model_id"], self.cfg.game.board)
        self.evaluator, self.cache = self.nets.get()

    def play(self, session: str, games: int, seed: int, weights: dict, board: int = 0) -> dict:
        """One chunk: ``games`` games on ``board`` (0: game.board) with the broadcast net into one shard
        ``<session>-0000.npz`` and SGFs."""
        cpu_started = time.process_time()
        self._adopt(weights)
        evaluator, cache = self.nets.get(board)
        summary = play_chunk(self.cfg, self.out, evaluator, cache, session, games, seed, board=board)
        summary["worker"] = self.index
        summary["cpu_s"] = time.process_time() - cpu_started  # all threads of the actor's process
        return {"summary": summary, "files": self._take_files(session) if self.scratch is not None else {}}

    def _take_files(self, session: str) -> dict[str, bytes]:
        files = {}
        for sub in ("sgf", "data"):
            for p in sorted((self.out / sub).glob(f"{session}-*")):
                if p.name.endswith(".tmp"):
                    continue
                files[f"{sub}/{p.name}"] = p.read_bytes()
                p.unlink()
        return files

    def __del__(self):
        if getattr(self, "scratch", None) is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)


def _remove_stale_scratch() -> None:
    """Scratch folders of killed actors on this node (``__del__`` does not run on SIGKILL): the games in
    flight they hold are lost anyway."""
    for folder in Path(tempfile.gettempdir()).glob("specmcts-w*-*-*"):
        try:
            pid = int(folder.name.split("-")[2])
            os.kill(pid, 0)
        except ValueError:
            continue
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except OSError:  # alive, another user's
            continue


# -- the driver's side ---------------------------------------------------------------------------------------


@dataclass
class WorkerSlot:
    index: int
    handle: object = None
    incarnation: int = 0
    info: dict | None = None
    games: int = 0
    chunks: int = 0
    restarts: int = 0
    spawned: float = 0.0  # time.monotonic() of the spawn
    warned: bool = False  # "not started yet" reported


STARTUP_WARN_S = 60.0  # an actor not up after this long is reported (usually: no node has its resources free)


def worker_resources(cfg: Config, nodes: list[dict], workers: int) -> tuple[float, float]:
    """(CPUs, GPU share) per actor: the configured ones, or the most that lets ``workers`` actors fit on the
    cluster's ``nodes`` (their resource dicts) at once. An actor's share must fit on one node (and a GPU share
    on one GPU), so the split is by node, not of the cluster's total."""
    r = cfg.ray
    gpus = r.num_gpus_per_worker
    if gpus < 0:
        total = sum(int(n.get("GPU", 0)) for n in nodes)
        # 1/k of a GPU: k actors per GPU; every GPU takes the same number.
        gpus = 1.0 / math.ceil(workers / total) if total > 0 and cfg.evaluator.device != "cpu" else 0.0
    cpus = r.num_cpus_per_worker
    if cpus <= 0:
        hosts = [n for n in nodes if n.get("GPU", 0) >= gpus] if gpus > 0 else nodes
        node_cpus = [int(n.get("CPU", 0)) for n in hosts] or [1]
        cpus = next((c for c in range(max(node_cpus), 0, -1) if sum(n // c for n in node_cpus) >= workers), 0)
        if cpus == 0:  # more actors than CPUs: they share (Ray accepts fractional CPUs)
            cpus = max(0.01, math.floor(100 * sum(node_cpus) / workers) / 100)
    return float(cpus), round(float(gpus), 4)


def cluster_nodes(ray) -> list[dict]:
    """Resources of the cluster's live nodes."""
    return [dict(n.get("Resources", {})) for n in ray.nodes() if n.get("Alive", n.get("alive", False))]


class WorkerPool:
    """The self-play actors, their queued chunks, and their supervision (respawn on death)."""

    def __init__(self, cfg: Config, run_dir: Path, report: Callable[[str], None] = say):
        self.ray = import_ray()
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.report = report
        self.workers = cfg.ray.workers or cfg.run.workers
        nodes = cluster_nodes(self.ray)
        self.cpus, self.gpus = worker_resources(cfg, nodes, self.workers)
        if not any(n.get("CPU", 0) >= self.cpus and n.get("GPU", 0) >= self.gpus for n in nodes):
            have = ", ".join(f"{n.get('CPU', 0):g} CPU/{n.get('GPU', 0):g} GPU" for n in nodes) or "none"
            message = (f"no node can hold a self-play worker ({self.cpus:g} CPU and {self.gpus:g} GPU; nodes: "
                       f"{have}); see ray.num_cpus_per_worker, ray.num_gpus_per_worker")
            if cfg.ray.address == "local":  # a local cluster does not grow
                raise WorkerFailed(message)
            report(f"ray: {message}; waiting for the cluster to grow")
        self.device = "cuda" if self.gpus > 0 else "cpu"
        self.threads = max(1, int(self.cpus))
        self.slots = [WorkerSlot(i) for i in range(self.workers)]
        self.pending: dict = {}  # ObjectRef -> (worker, incarnation, Chunk or None for the start-up probe)
        self.restarts = 0
        self.chunks_lost = 0
        self.nodes_seen: set[str] = set()  # Ray node ids a worker ran on
        self.closed = False
        self.storage_marker: str | None = None  # ray.shared_storage: a file the workers must see
        self._prefix = f"{self.run_dir.resolve().name}-{socket.gethostname()}-{os.getpid()}"
        self._actor_class = self.ray.remote(SelfPlayWorker)

    # -- actors ----------------------------------------------------------------------------------
    def start(self) -> None:
        if self.cfg.ray.shared_storage:
            for sub in ("data", "sgf"):
                (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
            self.storage_marker = f".shared-storage-{self._prefix}"
            (self.run_dir / self.storage_marker).write_text(f"{socket.gethostname()} {os.getpid()}\n")
        for slot in self.slots:
            self._spawn(slot)

    def _spawn(self, slot: WorkerSlot) -> None:
        # max_restarts=0: the driver respawns (a fresh actor, fresh name) and decides what a death costs.
        slot.handle = self._actor_class.options(
            name=f"{self._prefix}-w{slot.index:02d}-{slot.incarnation}", namespace=NAMESPACE,
            num_cpus=self.cpus, num_gpus=self.gpus, max_restarts=0, max_task_retries=0,
        ).remote(self.cfg, str(self.run_dir.resolve()), slot.index, self.device, self.threads, self.storage_marker)
        slot.info = None
        slot.spawned, slot.warned = time.monotonic(), False
        self.pending[slot.handle.info.remote()] = (slot.index, slot.incarnation, None)

    def handle(self, worker: int):
        """The live actor of worker ``worker`` (e.g. to ``ray.kill`` it in a test)."""
        return self.slots[worker].handle

    def queued(self, worker: int) -> int:
        return sum(1 for w, _inc, chunk in self.pending.values() if w == worker and chunk is not None)

    def free(self, depth: int) -> list[int]:
        """Started workers with fewer than ``depth`` chunks queued, emptiest first. A worker whose actor has
        not started (still starting, or respawned where no node has room, e.g. after its node was lost) gets
        no chunks: they would wait for it while the others idle."""
        counts = {s.index: self.queued(s.index) for s in self.slots if s.info is not None}
        return sorted((w for w, n in counts.items() if n < depth), key=lambda w: (counts[w], w))

    def busy(self) -> bool:
        return any(chunk is not None for _w, _inc, chunk in self.pending.values())

    def submit(self, worker: int, chunk: Chunk, weights: dict) -> None:
        slot = self.slots[worker]
        ref = slot.handle.play.remote(chunk.session, chunk.games, chunk.seed, weights, chunk.board)
        self.pending[ref] = (worker, slot.incarnation, chunk)

    # -- results ---------------------------------------------------------------------------------
    def wait(self, timeout: float) -> tuple[list[tuple[int, Chunk, dict]], list[Chunk]]:
        """Results that arrived within ``timeout`` seconds: ``(done, lost)``; ``done`` holds ``(worker, chunk,
        result)``, ``lost`` the chunks of workers that died (already respawned). Raises ``WorkerFailed``."""
        ray = self.ray
        if not self.pending:
            time.sleep(timeout)
            return [], []
        refs = list(self.pending)
        ready, rest = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready and rest:
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        self._warn_unstarted()
        done, lost = [], []
        for ref in ready:
            worker, incarnation, chunk = self.pending.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayActorError as e:
                self._died(worker, incarnation, e)
                if chunk is not None:
                    lost.append(chunk)
                    self.chunks_lost += 1
                continue
            except ray.exceptions.RayTaskError as e:
                raise WorkerFailed(f"self-play worker {worker} failed: {_first_line(e)}") from None
            except ray.exceptions.RayError as e:  # e.g. a result lost with its node: only the chunk is lost
                self.report(f"ray: chunk {chunk.session if chunk else '(start-up)'} of worker {worker} lost: "
                            f"{_first_line(e)}")
                if chunk is not None:
                    lost.append(chunk)
                    self.chunks_lost += 1
                continue
            slot = self.slots[worker]
            if chunk is None:
                if incarnation == slot.incarnation:
                    slot.info = result
                    self.nodes_seen.add(result["node_id"])
                    if slot.incarnation > 0:
                        self.report(f"ray: worker {worker} is back on {result['host']} ({result['node']})")
                continue
            slot.games += int(result["summary"]["games"])
            slot.chunks += 1
            done.append((worker, chunk, result))
        return done, lost

    def _warn_unstarted(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            if slot.info is None and not slot.warned and now - slot.spawned > STARTUP_WARN_S:
                slot.warned = True
                self.report(f"ray: self-play worker {slot.index} has not started after {STARTUP_WARN_S:.0f} s: it "
                            f"needs {self.cpus:g} CPU and {self.gpus:g} GPU on one node (`ray status` shows what "
                            f"is free; ray.num_cpus_per_worker / ray.num_gpus_per_worker set them)")

    def _died(self, worker: int, incarnation: int, error: Exception) -> None:
        slot = self.slots[worker]
        if incarnation != slot.incarnation:
            return  # another queued task of the same dead actor: already respawned
        text = str(error)
        if "creation task" in text:  # its __init__ raised: deterministic, respawning would loop
            raise WorkerFailed(f"self-play worker {worker} cannot start: {last_line(text)}")
        if self.restarts >= self.cfg.ray.max_restarts:
            raise WorkerFailed(f"self-play workers died {self.restarts + 1} times (ray.max_restarts="
                               f"{self.cfg.ray.max_restarts}); last: worker {worker}: {_first_line(error)}")
        self.restarts += 1
        slot.restarts += 1
        self.report(f"ray: self-play worker {worker} died ({death_reason(text)}); respawning it, its chunks in flight "
                    f"are lost")
        try:
            self.ray.kill(slot.handle, no_restart=True)
        except Exception:  # already gone
            pass
        slot.incarnation += 1
        self._spawn(slot)

    def stop(self) -> None:
        """Kill every actor: games in flight are lost; every finished chunk is on disk already."""
        if self.closed:
            return
        self.closed = True
        for slot in self.slots:
            if slot.handle is not None:
                try:
                    self.ray.kill(slot.handle, no_restart=True)
                except Exception:
                    pass
        self.pending.clear()
        if self.storage_marker:
            (self.run_dir / self.storage_marker).unlink(missing_ok=True)

    def summary(self) -> dict:
        return {
            "workers": self.workers,
            "num_cpus_per_worker": self.cpus,
            "num_gpus_per_worker": self.gpus,
            "nodes": len(self.nodes_seen),  # by node id: several nodes may share a host and an IP
            "restarts": self.restarts,
            "chunks_lost": self.chunks_lost,
            "storage": "shared" if self.cfg.ray.shared_storage else "object store",
            "games_by_worker": {f"w{s.index:02d}": s.games for s in self.slots},
        }


def _first_line(e: BaseException | str) -> str:
    lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    return lines[0][:200] if lines else type(e).__name__


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else "unknown error"


def death_reason(text: str) -> str:
    """The most telling line of a Ray actor-death message."""
    for line in text.splitlines():
        if "killed by `ray.kill`" in line or "The actor is dead because" in line:
            return line.strip().removeprefix("The actor is dead because ").rstrip(".")
    return _first_line(text)


# -- the backend ---------------------------------------------------------------------------------------------


class RayBackend:
    """The run's self-play on a ``WorkerPool`` of Ray actors (``specmcts.training.backends`` has the interface):
    the driver broadcasts each published net once and writes the chunks' files into the run directory."""

    name = "ray"
    separate = True

    def __init__(self, cfg: Config, run_dir: Path, device: str = "cpu",
                 report: Callable[[str], None] = say):
        validate_ray_config(cfg)
        self.cfg, self.run_dir, self.report = cfg, Path(run_dir), report
        self.pool = WorkerPool(cfg, self.run_dir, report)
        self.workers = self.pool.workers
        self.weights: dict | None = None  # {"model_id", "step", "refs": [ObjectRef]} of the self-play net
        self.broadcasts = 0
        self.loop = None
        # The actors start (import torch, build their evaluators) while the trainer is set up.
        self.pool.start()

    def start(self, loop) -> None:
        self.loop = loop
        self._broadcast()
        pool = self.pool
        self.report(f"ray: {pool.workers} self-play worker(s), {pool.cpus:g} CPU and {pool.gpus:g} GPU each, "
                    f"shards via {'shared storage' if self.cfg.ray.shared_storage else 'the object store'}")

    def handle(self, worker: int):
        """The live actor of worker ``worker`` (e.g. to ``ray.kill`` it in a test)."""
        return self.pool.handle(worker)

    def free(self) -> list[int]:
        return self.pool.free(self.cfg.ray.chunks_in_flight)

    def submit(self, worker: int, chunk: Chunk) -> None:
        self.pool.submit(worker, chunk, self.weights)

    def busy(self) -> bool:
        return self.pool.busy()

    def collect(self, timeout: float) -> tuple[list[dict], list[Chunk]]:
        done, lost = self.pool.wait(timeout)
        for _worker, _chunk, result in done:
            self._store(result["files"])
        return [result["summary"] for _w, _c, result in done], lost

    def published(self) -> None:
        self._broadcast()

    def stop(self) -> list[dict]:
        self.pool.stop()
        return []

    def summary(self) -> dict:
        return {**self.pool.summary(), "broadcasts": self.broadcasts}

    def _broadcast(self) -> None:
        """Put the net ``models/selfplay.json`` names into the object store, once per model id."""
        if self.pool.closed or self.loop is None:
            return
        pointer = self.loop.store.read_pointer()
        if pointer is None or (self.weights and self.weights["model_id"] == pointer.get("model_id")):
            return
        import torch

        trainer = self.loop.trainer
        if pointer.get("model_id") == trainer.model_id:
            net = trainer.net
        else:
            from specmcts.engine.network import load_model

            net, _meta = load_model(self.loop.store.dir / pointer["path"], expect_board=self.cfg.game.board)
            net.model_id = pointer.get("model_id", net.model_id)
        with torch.no_grad():
            state = {k: v.detach().to("cpu", copy=True) for k, v in net.state_dict().items()}
        ref = self.pool.ray.put({"state": state, "net": dataclasses.asdict(net.net_cfg)})
        # The reference travels inside a list so that Ray does not fetch the weights for every chunk; a worker
        # fetches them when the model id is new to it.
        self.weights = {"model_id": net.model_id, "step": int(pointer.get("step", 0)), "refs": [ref]}
        self.broadcasts += 1

    def _store(self, files: dict[str, bytes]) -> None:
        """Write a chunk's files into the run directory: SGFs first, the shard last; each to a temp name and
        renamed, so a reader (the replay buffer) never sees half a file."""
        for rel in sorted(files, key=lambda r: (r.startswith("data/"), r)):
            sub, _, name = rel.partition("/")
            if sub not in ("sgf", "data") or not name or "/" in name or name.startswith("."):
                raise WorkerFailed(f"a self-play worker returned an unexpected file {rel!r}")
            atomic_write_bytes(self.run_dir / sub / name, files[rel])
