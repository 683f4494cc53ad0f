"""``specmcts run``: self-play, training, gating and Elo on one machine.

Two schedules (``run.mode``):

- ``generations`` (AlphaZero): in turns. Generation ``g`` plays ``run.games_per_generation`` self-play games
  with the current self-play net (in chunks, one shard per chunk named ``g<g>-c<chunk>``), then trains until
  the step the ratio allows, checkpoints, gates, evaluates. Single process and seeded: a run is reproducible,
  and a resumed run skips the chunks whose shard is already on disk.
- ``async`` (KataGo): concurrently. ``run.workers`` self-play processes play chunks of games with the newest
  published net (they look for a new one between chunks: no restart), while this process trains. Workers die
  with this process (``PR_SET_PDEATHSIG``), so a ``kill -9`` leaves no orphan writing into the run.

One schedule for both, whoever plays the games: a self-play *backend* (``specmcts.training.backends``: this process,
local processes, or Ray actors with ``--ray``) takes chunks and hands back their summaries.

Ratio control (both modes): the trainer may reach step ``floor(run.train_samples_per_sample * samples produced /
train.batch_size)`` and waits for self-play beyond it, so it never over-fits a small window; in async mode
self-play pauses when it is ``run.max_lead_samples`` ahead of that ratio, so the trainer is not left behind.

Everything the run needs to continue lives on disk: shards (atomic), checkpoints (atomic, with optimizer,
step, RNG and the loop's own state), ``models/selfplay.json`` (which net self-play uses). ``--resume`` picks
up from the newest good checkpoint; a killed run loses at most the games in flight and the steps since its
last checkpoint. A lock file keeps two runs out of one directory.

TensorBoard (``<run>/tb``), one step axis (the trainer's step): ``train/*`` and ``replay/*`` (trainer),
``selfplay/*`` (game length, resign and false-resign rate, speculation accuracy, cache hit rate, evals/s,
games/h, samples), ``elo/vs_first`` and ``elo/vs_gnugo_l<L>`` (evaluation), ``gating/*``.
"""
from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from collections import deque
from pathlib import Path
from typing import Callable

import yaml

from specmcts.atomic import atomic_write_bytes, remove_stale_temporaries
from specmcts.training.backends import Chunk, InProcess, WorkerFailed, chunk_seed
from specmcts.training.local import LocalProcesses
from specmcts.training.schedule import BoardSchedule, SelfPlayStats, generation_games
from specmcts.config import Config, validate
from specmcts.training.distributed import RayBackend, import_ray, validate_ray_config
from specmcts.training.ray_trainer import remote_trainer
from specmcts.training.evaluation import RunMatches, elo_reference
from specmcts.engine.network import CheckpointError
from specmcts.training.replay import make_replay
from specmcts.stopping import GracefulStop, RunLock, say
from specmcts.threads import SEARCH, TRAIN
from specmcts.threads import configure as configure_threads
from specmcts.training.trainer import CheckpointStore, Trainer, open_writer


CONFIG_NAME = "config.yaml"



def validate_run_config(cfg: Config) -> None:
    """Every section (config.validate) and what only a run can check: the Elo reference's file."""
    validate(cfg)
    elo_reference(cfg)


# -- where self-play plays ----------------------------------------------------------------------------------


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
        return RayBackend(cfg, run_dir, device, report)
    raise ValueError(f"unknown self-play backend {kind!r}")


# -- the loop ------------------------------------------------------------------------------------------------


class RunLoop:
    def __init__(self, cfg: Config, run_dir: str | Path, device: str = "cpu", resume: bool = False,
                 init_model: str | None = None, progress: bool = False,
                 report: Callable[[str], None] = say, backend: str = "auto"):
        validate_run_config(cfg)
        self.cfg = cfg
        self.backend_kind = backend  # where self-play plays (make_backend)
        self.backend = None
        self.trainer = None
        self._last_session_ms = 0
        self._chunks_asked = 0
        self.run_dir = Path(run_dir)
        self.device = device
        self.resume = resume
        self.init_model = init_model
        self.progress = progress
        self.report = report
        self.store = CheckpointStore(self.run_dir)
        self.stats = SelfPlayStats(per_board=cfg.game.mixed)
        self.stop_reason = ""
        self.generation = 0
        self.started = 0.0
        self.matches = RunMatches(self)  # Elo points and gating
        self.bar = None
        self._last_eval_step = 0
        self.totals_before: dict = {}  # compute of the sessions before this one (``compute_totals``)
        t = os.times()
        self._cpu_at_start = t.user + t.system + t.children_user + t.children_system

    # -- setup -----------------------------------------------------------------------------------
    def _prepare(self) -> None:
        cfg = self.cfg
        run = self.run_dir
        for sub in ("models", "data", "sgf"):
            (run / sub).mkdir(parents=True, exist_ok=True)
        removed = remove_stale_temporaries(*(run / sub for sub in ("models", "data", "sgf")))
        if removed:
            self.report(f"run: removed {removed} unfinished temporary file(s) of an interrupted session")
        remote = self.backend_kind == "ray" and cfg.ray.trainer == "actor"
        if remote:  # the trainer and its replay buffer in a Ray actor (specmcts.training.ray_trainer.TrainerHost)
            self.trainer, meta = remote_trainer(cfg, run, self.device, self.resume, self.init_model, self.report)
            self.buffer = self.trainer.buffer
        else:
            self.buffer = make_replay(cfg, run / "data", seed=cfg.seed, report=self.report)
            self.buffer.refresh()
        if self.resume:
            if not remote:
                self.trainer, meta = Trainer.resume(cfg, run, self.buffer, self.device, report=self.report)
            state = meta.get("run") or {}
            self.totals_before = dict(state.get("totals") or {})
            self.generation = int(state.get("generation", 0))
            self.matches.gating = dict(state.get("gating", self.matches.gating))
            self.report(f"run: resuming {run} at step {self.trainer.step} (checkpoint "
                        f"{self.trainer.last_checkpoint.name}, {self.buffer.total_samples} samples on disk)")
            if self.store.read_pointer() is None:
                self.store.write_pointer(self.trainer.last_checkpoint, self.trainer.model_id, self.trainer.step)
        else:
            if self.store.steps():
                raise CheckpointError(f"{self.store.dir} already holds checkpoints (newest step "
                                      f"{self.store.steps()[-1][0]}): pass --resume to continue, or --out for a new run")
            if not remote:
                self.trainer = Trainer.create(cfg, run, self.buffer, self.device, init_model=self.init_model,
                                              report=self.report)
            if self.init_model:  # a run continued from another run's checkpoint carries its compute on
                from specmcts.engine.network import read_checkpoint

                self.totals_before = dict((read_checkpoint(self.init_model).get("run") or {}).get("totals") or {})
            path = self._save()
            self.store.write_pointer(path, self.trainer.model_id, 0)
        # The config the run runs with, written once the run is accepted (a refused or failed start leaves the
        # record of what ran before as it was).
        data = cfg.to_dict()
        data.pop("cpu_fallback", None)
        atomic_write_bytes(run / CONFIG_NAME, yaml.safe_dump(data, sort_keys=False).encode())
        self.writer = open_writer(run, purge_step=self.trainer.step if self.resume else None)
        self.trainer.writer = self.writer
        self._last_eval_step = self.trainer.step

    def _save(self) -> Path:
        return self.trainer.save({"run": {"generation": self.generation, "mode": self.cfg.run.mode,
                                          "gating": dict(self.matches.gating), "totals": self.compute_totals()}})

    def _cpu_seconds(self) -> float:
        """CPU seconds of this run start: this process (all threads), its finished children, and what Ray actors
        report (their chunks' CPU, the trainer actor's)."""
        t = os.times()
        remote = self.stats.remote_cpu_s + float(getattr(self.trainer, "remote_cpu_s", 0.0))
        return t.user + t.system + t.children_user + t.children_system - self._cpu_at_start + remote

    def compute_totals(self) -> dict:
        """The compute behind the current net, over every session that trained it (checkpoint metadata
        ``run.totals``): ``cpu_hours`` (user + system time of this process and its finished children, e.g.
        async self-play workers, and of Ray actors, plus the earlier sessions'), ``games`` and ``samples`` of self-play,
        ``sessions``."""
        before = self.totals_before
        cpu = self._cpu_seconds()
        return {
            "cpu_hours": float(before.get("cpu_hours", 0.0)) + cpu / 3600.0,
            "games": int(before.get("games", 0)) + self.stats.games_total,
            "samples": int(before.get("samples", 0)) + self.stats.samples_total,
            "sessions": int(before.get("sessions", 0)) + 1,
            "boards": self._board_totals(),
        }

    def _board_totals(self) -> dict:
        """Games, samples and self-play CPU-hours per board size (``"9x9"``: ...) over every session; compute
        recorded before sizes were counted is the size the checkpoint was recorded for."""
        before = self.totals_before
        out = {k: dict(v) for k, v in (before.get("boards") or {}).items()}
        if not out and int(before.get("games", 0)):
            b = self.cfg.game.board
            out[f"{b}x{b}"] = {"games": int(before["games"]), "samples": int(before.get("samples", 0))}
        for b, size in self.stats.by_board.items():
            entry = out.setdefault(f"{b}x{b}", {"games": 0, "samples": 0})
            entry["games"] = int(entry.get("games", 0)) + size["games"]
            entry["samples"] = int(entry.get("samples", 0)) + size["samples"]
            entry["selfplay_cpu_hours"] = float(entry.get("selfplay_cpu_hours", 0.0)) + size["cpu_s"] / 3600.0
        return out

    def _selfplay_paused(self) -> bool:
        """Async runs: self-play waits while it is more than ``run.max_lead_samples`` ahead of the train
        ratio, but only once the buffer holds ``train.min_samples``: before that the trainer cannot catch up,
        and pausing would wait until the time budget ends. One rule for local and Ray runs."""
        cfg = self.cfg
        lead = cfg.run.max_lead_samples
        behind = self.buffer.total_samples - self.trainer.samples_trained / cfg.run.train_samples_per_sample
        return lead > 0 and behind > lead and self.buffer.total_samples >= cfg.train.min_samples

    # -- stopping --------------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Stop after the current chunk or step, as a Ctrl-C does (``stop_reason`` "interrupted"); safe to call
        from another thread, e.g. by code that drives ``run()`` in a thread of its own."""
        self.stop_reason = "interrupted"
        self.report("run: stopping after the current chunk or step (again to stop now)")

    def _elapsed(self) -> float:
        return time.perf_counter() - self.started

    def _should_stop(self) -> bool:
        r = self.cfg.run
        if self.stop_reason:
            return True
        if r.minutes > 0 and self._elapsed() >= 60.0 * r.minutes:
            self.stop_reason = "time budget"
        elif r.cpu_minutes > 0 and self._cpu_seconds() >= 60.0 * r.cpu_minutes:
            self.stop_reason = "CPU budget"
        elif r.max_steps > 0 and self.trainer.step >= r.max_steps:
            self.stop_reason = "max steps"
        elif r.mode == "generations" and r.generations > 0 and self.generation >= r.generations:
            self.stop_reason = "generations"
        return bool(self.stop_reason)

    # -- training --------------------------------------------------------------------------------
    def target_step(self) -> int:
        """The step the ratio control allows for the samples produced so far."""
        cfg = self.cfg
        if self.buffer.total_samples < cfg.train.min_samples:
            return self.trainer.step
        target = int(cfg.run.train_samples_per_sample * self.buffer.total_samples / cfg.train.batch_size)
        if cfg.run.max_steps > 0:
            target = min(target, cfg.run.max_steps)
        return target

    def _train_one(self) -> None:
        metrics = self.trainer.train_step()
        step = self.trainer.step
        if step % self.cfg.train.checkpoint_every == 0:
            path = self._save()
            if self.cfg.run.mode == "async":  # generations publish and evaluate at the end of the generation
                self._publish(path)
        if self.cfg.run.mode == "async":
            self._maybe_evaluate()
        if self.bar is not None:
            self.bar.update(1)
            if step % 10 == 0:
                self.bar.set_postfix(loss=f"{metrics.loss:.3f}", games=self.stats.games_total, refresh=False)

    def _end_generation(self) -> None:
        """Checkpoint (recording the finished generation), hand the net to self-play, evaluate if due."""
        self._publish(self._save())
        self._maybe_evaluate()

    def _maybe_evaluate(self) -> None:
        every = self.cfg.run.eval_every
        if every > 0 and self.trainer.step - self._last_eval_step >= every:
            self._last_eval_step = self.trainer.step
            self.matches.evaluate_elo()

    def _publish(self, path: Path) -> None:
        """Hand a new checkpoint to self-play, through gating when it is on."""
        self._gate(path)
        if self.backend is not None:
            self.backend.published()

    def _gate(self, path: Path) -> None:
        self.matches.adopt(path)

    # -- evaluation ------------------------------------------------------------------------------
    def _interrupted(self) -> bool:
        return self.stop_reason == "interrupted"

    def _note(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
        else:
            self.report(line)

    def _log_selfplay(self) -> None:
        for k, v in self.stats.scalars(self._elapsed()).items():
            if v is not None and math.isfinite(v):
                self.writer.add_scalar(k, v, self.trainer.step)
        totals = self.compute_totals()  # all sessions: the x axes of learning curves (docs/strength.md)
        self.writer.add_scalar("compute/cpu_hours", totals["cpu_hours"], self.trainer.step)
        self.writer.add_scalar("compute/games", totals["games"], self.trainer.step)
        if self.bar is not None:
            self.bar.set_postfix(games=self.stats.games_total, samples=self.buffer.total_samples, refresh=True)

    # -- self-play -----------------------------------------------------------------------------
    def _session(self, worker: int) -> str:
        """``<ms>-w<worker>``: stamped when the chunk is asked for and strictly increasing, so names are unique
        and sort in the order the chunks were asked for."""
        ms = max(time.time_ns() // 1_000_000, self._last_session_ms + 1)
        self._last_session_ms = ms
        return f"{ms:013d}-w{worker:02d}"

    def _collect(self, timeout: float) -> tuple[bool, list[Chunk]]:
        """Finished chunks into the statistics; the chunks lost with a dead worker are returned."""
        try:
            done, lost = self.backend.collect(timeout)
        except WorkerFailed as e:
            self.report(f"run: {e}")
            self.stop_reason = e.reason
            return False, []
        for summary in done:
            self.stats.add(summary)
        return bool(done), lost

    def _generation_chunks(self, g: int) -> deque[Chunk]:
        """Generation ``g``'s chunks not yet on disk (named and seeded by generation and index, so a resumed
        generation skips what was played before a stop, and who plays a chunk does not matter)."""
        cfg = self.cfg
        chunk_games = cfg.run.chunk_games or cfg.selfplay.concurrent
        todo: deque[Chunk] = deque()
        c = 0
        for board, games in generation_games(cfg, g).items():
            for first in range(0, games, chunk_games):
                # a mixed-size run's names carry the size: -b09, -b13, -b19
                session = f"g{g:05d}-c{c:04d}" + (f"-b{board:02d}" if cfg.game.mixed else "")
                if not (self.run_dir / "data" / f"{session}-0000.npz").exists():
                    todo.append(Chunk(session, min(chunk_games, games - first), chunk_seed(cfg.seed, g, c), board))
                c += 1
        return todo

    def _train_to(self, target: int, seconds: float | None = None) -> None:
        """Train up to step ``target`` (for at most ``seconds``: a burst between self-play results)."""
        end = time.perf_counter() + seconds if seconds is not None else math.inf
        while self.trainer.step < target and time.perf_counter() < end and not self._should_stop():
            self._train_one()

    # -- generations -----------------------------------------------------------------------------
    def _run_generations(self) -> None:
        backend = self.backend
        while not self._should_stop():
            g = self.generation
            todo = self._generation_chunks(g)
            while (todo or backend.busy()) and not self._should_stop():
                for w in backend.free():
                    if todo:
                        backend.submit(w, todo.popleft())
                _got, lost = self._collect(0.5)
                todo.extendleft(reversed(lost))  # the same chunk, the same seed, on another worker
            if self.stop_reason:
                break
            self.buffer.refresh()
            self._log_selfplay()
            target = self.target_step()
            self._train_to(target)
            if self.stop_reason and self.trainer.step < target:
                break
            self.generation = g + 1
            self.trainer.flush_log()
            self._end_generation()

    # -- async -----------------------------------------------------------------------------------
    def _run_async(self) -> None:
        cfg = self.cfg
        backend = self.backend
        games = cfg.run.chunk_games or cfg.selfplay.concurrent
        sizes = BoardSchedule(cfg.game.game_shares())
        last_refresh = 0.0
        while not self._should_stop():
            if not self._selfplay_paused():
                for w in backend.free():
                    board = sizes.next()
                    session = self._session(w) + (f"-b{board:02d}" if cfg.game.mixed else "")
                    seed = chunk_seed(cfg.seed, w, int(session.split("-")[0]), self._chunks_asked)
                    backend.submit(w, Chunk(session, games, seed, board))
                    self._chunks_asked += 1
            train = self.trainer.step < self.target_step()
            got, _lost = self._collect(0.0 if train else 0.5)  # async: a lost chunk is simply not played
            if self.stop_reason:
                break
            now = time.perf_counter()
            if got or now - last_refresh > 2.0:
                self.buffer.refresh()
                last_refresh = now
            if got:
                self._log_selfplay()
            self._train_to(self.target_step(), seconds=1.0)

    # -- entry point -----------------------------------------------------------------------------
    def run(self) -> dict:
        configure_threads(self.cfg, SEARCH)  # self-play in this process; a separate backend: see _run
        with RunLock(self.run_dir):
            # The backend first: a Ray cluster that cannot hold a worker fails before the directory is touched.
            self.backend = make_backend(self.backend_kind, self.cfg, self.run_dir, self.device, self.report)
            try:
                return self._run()
            finally:
                self.backend.stop()
                close = getattr(self.trainer, "close", None)  # a trainer actor (ray.trainer: actor)
                if close is not None:
                    close()

    def _run(self) -> dict:
        self._prepare()
        self.backend.start(self)
        if self.backend.separate:  # this process only trains: its share of the cores, beside the workers
            configure_threads(self.cfg, TRAIN, processes=self.backend.workers + 1)
        self.started = time.perf_counter()
        start_step = self.trainer.step
        if self.progress:
            from tqdm import tqdm

            total = self.cfg.run.max_steps - start_step if self.cfg.run.max_steps > 0 else None
            self.bar = tqdm(total=total, unit="step", dynamic_ncols=True, leave=False)
        try:
            with GracefulStop(self.request_stop):  # SIGINT/SIGTERM: stop after this chunk or step
                self._schedule()
        finally:
            if self.bar is not None:
                self.bar.close()
            self.writer.flush()
            self.writer.close()
        wall = self._elapsed()
        return self.summary(start_step, wall)

    def _schedule(self) -> None:
        """The run's schedule until it stops, then what finished is logged and the net checkpointed."""
        try:
            if self.cfg.run.mode == "generations":
                self._run_generations()
            else:
                self._run_async()
        finally:
            for summary in self.backend.stop():  # chunks that finished while the workers stopped
                self.stats.add(summary)
            self.buffer.refresh()
            self._log_selfplay()
        self.trainer.flush_log()
        if self.trainer.last_checkpoint != self.store.path(self.trainer.step):
            path = self._save()
            if self.cfg.run.mode == "async":  # a generation's net changes only at its end
                self._publish(path)

    def summary(self, start_step: int, wall: float) -> dict:
        t = self.trainer
        return {
            "mode": self.cfg.run.mode,
            "stop_reason": self.stop_reason or "done",
            "seed": self.cfg.seed,
            "out": str(self.run_dir),
            "steps": t.step - start_step,
            "step": t.step,
            "generation": self.generation,
            "games": self.stats.games_total,
            "selfplay_samples": self.stats.samples_total,
            "games_per_hour": 3600.0 * self.stats.games_total / wall if wall > 0 else 0.0,
            "train_samples_per_s": (t.step - start_step) * self.cfg.train.batch_size / t.train_seconds
            if t.train_seconds else 0.0,
            "wall_s": round(wall, 3),
            "checkpoint": str(t.last_checkpoint),
            "model_id": t.model_id,
            "elo": self.matches.last_elo,
            "gating": self.matches.gating,
            "totals": self.compute_totals(),
            **self.buffer.stats(),
            **({self.backend.name: self.backend.summary()} if self.backend and self.backend.summary() else {}),
        }


def format_run_summary(s: dict) -> str:
    elo = ""
    for size, point in ([("", s["elo"])] if "vs_first" in s["elo"] else sorted(s["elo"].items())):
        if isinstance(point, dict) and "vs_first" in point:
            e = point["vs_first"]
            elo += f" | {size + ' ' if size else ''}Elo vs first {e['elo']:+.0f} ({100 * e['score']:.0f}%)"
    return (f"run ({s['mode']}): {s['steps']} steps to step {s['step']}, {s['games']} games "
            f"({s['games_per_hour']:.0f}/h), {s['selfplay_samples']} samples in {s['wall_s']:.0f} s | "
            f"train {s['train_samples_per_s']:.0f} samples/s | window {s['buffer_samples']} of {s['total_samples']}"
            f"{elo} | stopped: {s['stop_reason']} | {s['checkpoint']} | seed {s['seed']}")


def run_loop(cfg: Config, run_dir: str | Path, device: str = "cpu", resume: bool = False,
             init_model: str | None = None, progress: bool = False, backend: str = "auto",
             report: Callable[[str], None] = say) -> dict:
    return RunLoop(cfg, run_dir, device, resume, init_model, progress, report, backend).run()


# -- `specmcts run --ray` --------------------------------------------------------------------------------------


def format_distributed_summary(s: dict) -> str:
    """The run's one-line summary, with the Ray part appended."""
    r = s.get("ray") or {}
    by_worker = ", ".join(f"{w} {n}" for w, n in r.get("games_by_worker", {}).items())
    return (format_run_summary(s) + f" | ray: {r.get('workers', 0)} workers on {r.get('nodes', 0)} node(s), "
            f"{r.get('restarts', 0)} restarts, games by worker: {by_worker}")


def run_distributed(cfg: Config, run_dir: str | Path, address: str | None = None, device: str = "cpu",
                    resume: bool = False, init_model: str | None = None, progress: bool = False,
                    report: Callable[[str], None] = say) -> dict:
    """``specmcts run --ray``: connect to (or start) a Ray cluster and run the loop with Ray self-play workers.

    ``address``: ``local`` (a new cluster on this machine), ``auto`` (the running one), ``host:port`` or
    ``ray://host:10001``; ``None`` takes ``cfg.ray.address``. A Ray already initialised in this process (a
    test, a notebook) is used as it is and left running."""
    ray = import_ray()
    validate_ray_config(cfg)
    address = address or cfg.ray.address
    cfg = dataclasses.replace(cfg, ray=dataclasses.replace(cfg.ray, address=address))
    started_here = False
    if not ray.is_initialized():
        import logging

        context = ray.init(address=address, logging_level=logging.WARNING)
        started_here = True
        resources = ray.cluster_resources()
        dashboard = getattr(context, "dashboard_url", None)
        report(f"ray: {'started a local cluster' if address == 'local' else 'connected to ' + address} "
               f"({resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs, {len(ray.nodes())} node(s))"
               + (f"; dashboard http://{dashboard}" if dashboard else ""))
    try:
        summary = RunLoop(cfg, run_dir, device, resume, init_model, progress, report, backend="ray").run()
        r = summary["ray"]
        report(f"ray: {r['workers']} workers on {r['nodes']} node(s), {r['restarts']} restarts, games by worker "
               + ", ".join(f"{w} {n}" for w, n in r["games_by_worker"].items()))
        return summary
    finally:
        if started_here:
            ray.shutdown()
