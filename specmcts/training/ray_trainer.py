"""``ray.trainer: actor``: the run's trainer and replay buffer in a Ray actor of their own (their own GPU), on
the driver's node (or anywhere with ``ray.shared_storage``); weights are still published by checkpoint. The
driver's ``RunLoop`` (``specmcts.training.loop``) drives it through ``RemoteTrainer`` one call per step.
"""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Callable

from specmcts.config import Config
from specmcts.stopping import say
from specmcts.threads import TRAIN
from specmcts.threads import configure as configure_threads
from specmcts.training.distributed import NAMESPACE, death_reason, import_ray, last_line


class _Scalars:
    """A TensorBoard writer's ``add_scalar`` that keeps the points for the driver to write."""

    def __init__(self):
        self.points: list[tuple[str, float, int]] = []

    def add_scalar(self, tag: str, value, step: int) -> None:
        self.points.append((tag, float(value), int(step)))

    def take(self) -> list[tuple[str, float, int]]:
        points, self.points = self.points, []
        return points


class TrainerHost:
    """``ray.trainer: actor``: the run's ``Trainer`` and ``ReplayBuffer`` in a Ray actor. It reads the shards
    and writes the checkpoints in the run directory (so it runs on the driver's node unless the storage is
    shared); the driver's ``RunLoop`` drives it through ``RemoteTrainer`` one call per step, and writes the
    TensorBoard points it returns."""

    def __init__(self, cfg: Config, run_dir: str, device: str, resume: bool, init_model: str | None, threads: int):
        from specmcts.training.replay import make_replay
        from specmcts.training.trainer import Trainer

        self.cpu_started = time.process_time()
        configure_threads(cfg, TRAIN, cores=max(1, threads))
        run = Path(run_dir)
        self.notes: list[str] = []
        self.buffer = make_replay(cfg, run / "data", seed=cfg.seed, report=self.notes.append)
        self.buffer.refresh()
        self.scalars = _Scalars()
        self.meta: dict = {}
        if resume:
            self.trainer, meta = Trainer.resume(cfg, run, self.buffer, device, writer=self.scalars,
                                                report=self.notes.append)
            self.meta = {"run": meta.get("run") or {}}
        else:
            self.trainer = Trainer.create(cfg, run, self.buffer, device, init_model=init_model, writer=self.scalars,
                                          report=self.notes.append)

    def state(self) -> dict:
        import ray

        t = self.trainer
        notes, self.notes = self.notes, []
        return {"step": t.step, "samples_trained": t.samples_trained, "model_id": t.model_id,
                "last_checkpoint": str(t.last_checkpoint) if t.last_checkpoint else None,
                "train_seconds": t.train_seconds, "total_samples": self.buffer.total_samples,
                "buffer_stats": self.buffer.stats(), "scalars": self.scalars.take(), "notes": notes,
                "node_id": ray.get_runtime_context().get_node_id(), "host": socket.gethostname(),
                "pid": os.getpid(), "device": str(t.device), "cpu_s": time.process_time() - self.cpu_started}

    def resume_meta(self) -> dict:
        return self.meta

    def refresh(self) -> dict:
        self.buffer.refresh()
        return self.state()

    def train_step(self):
        return self.trainer.train_step(), self.state()

    def flush_log(self):
        return self.trainer.flush_log(), self.state()

    def save(self, extra: dict | None = None):
        return str(self.trainer.save(extra)), self.state()

    def weights(self) -> tuple[dict, object, str]:
        net = self.trainer.net
        return {k: v.detach().cpu() for k, v in net.state_dict().items()}, net.net_cfg, net.model_id


class RemoteTrainer:
    """What ``RunLoop`` uses of a ``Trainer``, for one that lives in a ``TrainerHost`` actor."""

    def __init__(self, ray, actor, board: int, report: Callable[[str], None]):
        self.ray, self.actor, self.board, self.report = ray, actor, board, report
        self.writer = None  # the driver's TensorBoard writer (set by the run loop)
        self.buffer = RemoteBuffer(self)
        self._state: dict = {}
        self._update(self._call(actor.state))

    def _call(self, method, *args):
        from specmcts.training.trainer import TrainingDiverged

        try:
            return self.ray.get(method.remote(*args))
        except self.ray.exceptions.RayTaskError as e:
            cause = e.as_instanceof_cause()
            if isinstance(cause, TrainingDiverged):
                raise TrainingDiverged(str(cause).splitlines()[-1]) from None
            raise RuntimeError(f"the trainer actor failed: {last_line(str(e))}") from None
        except self.ray.exceptions.RayActorError as e:
            raise RuntimeError(f"the trainer actor died: {death_reason(str(e))}") from None

    def _update(self, state: dict) -> None:
        self._state = state
        for note in state.get("notes", ()):
            self.report(note)
        if self.writer is not None:
            for tag, value, step in state.get("scalars", ()):
                self.writer.add_scalar(tag, value, step)

    # what the run loop reads
    step = property(lambda self: self._state["step"])
    samples_trained = property(lambda self: self._state["samples_trained"])
    model_id = property(lambda self: self._state["model_id"])
    train_seconds = property(lambda self: self._state["train_seconds"])
    remote_cpu_s = property(lambda self: self._state["cpu_s"])  # the actor's process (counted in run.totals)
    where = property(lambda self: {k: self._state[k] for k in ("node_id", "host", "pid", "device")})

    @property
    def last_checkpoint(self) -> Path | None:
        path = self._state["last_checkpoint"]
        return Path(path) if path else None

    def train_step(self):
        metrics, state = self._call(self.actor.train_step)
        self._update(state)
        return metrics

    def flush_log(self) -> dict:
        values, state = self._call(self.actor.flush_log)
        self._update(state)
        return values

    def save(self, extra: dict | None = None) -> Path:
        path, state = self._call(self.actor.save, extra)
        self._update(state)
        return Path(path)

    def close(self) -> None:
        """End the actor (every checkpoint it wrote is on disk)."""
        try:
            self.ray.kill(self.actor, no_restart=True)
        except Exception:  # already gone
            pass

    @property
    def net(self):
        """A copy of the trainer's current net in this process (for gating and Elo matches)."""
        from specmcts.engine.network import build_net

        weights, net_cfg, model_id = self._call(self.actor.weights)
        net = build_net(self.board, net_cfg)
        net.load_state_dict(weights)
        net.model_id = model_id
        return net


class RemoteBuffer:
    """What ``RunLoop`` uses of the ``ReplayBuffer``: the actor's, read through its trainer."""

    def __init__(self, trainer: RemoteTrainer):
        self.trainer = trainer

    def refresh(self) -> None:
        self.trainer._update(self.trainer._call(self.trainer.actor.refresh))

    @property
    def total_samples(self) -> int:
        return self.trainer._state["total_samples"]

    def stats(self) -> dict:
        return dict(self.trainer._state["buffer_stats"])


def remote_trainer(cfg: Config, run_dir: Path, device: str, resume: bool, init_model: str | None,
                   report: Callable[[str], None] = say) -> tuple[RemoteTrainer, dict]:
    """Start the ``TrainerHost`` actor (on the driver's node unless ``ray.shared_storage``) and return its
    handle and, when resuming, the checkpoint's run state."""
    ray = import_ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    r = cfg.ray
    gpus = r.trainer_gpus if r.trainer_gpus >= 0 else (1.0 if str(device).startswith("cuda") else 0.0)
    options = {"num_cpus": r.trainer_cpus, "num_gpus": gpus, "max_restarts": 0, "namespace": NAMESPACE,
               "name": f"{Path(run_dir).resolve().name}-{socket.gethostname()}-{os.getpid()}-trainer"}
    if not r.shared_storage:  # the run directory is on this node
        options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(),
                                                                        soft=False)
    actor = ray.remote(TrainerHost).options(**options).remote(
        cfg, str(Path(run_dir).resolve()), "cuda" if gpus > 0 else "cpu", resume, init_model,
        max(1, int(r.trainer_cpus)))
    trainer = RemoteTrainer(ray, actor, cfg.game.board, report)
    where = trainer.where
    report(f"ray: the trainer is an actor on {where['host']} (node {where['node_id'][:8]}, {where['device']})")
    return trainer, (trainer._call(actor.resume_meta) if resume else {})
