"""Trainer: loss, optimizer, LR schedule, AMP, NaN guard, checkpoints, TensorBoard.

Loss of a batch (AlphaZero, plus KataGo's auxiliary targets): ``policy cross-entropy(target, softmax(logits))``
averaged over the samples whose policy is trained on (``policy_weight``: playout cap randomization's fast
searches are not), ``+ value_weight * MSE(value, outcome)`` over all samples, and with kata heads ``+
ownership_weight * mean per-point binary cross-entropy of the final ownership + score_weight *
Huber(score / N, final margin / N)`` over the samples that have those targets (``aux_weight``); plus
``weight_decay * sum(w^2)`` over conv/linear weights with SGD (AdamW decays the same weights in the
optimizer instead). BatchNorm parameters and biases are never decayed.

Checkpoints live in ``<run>/models/model_<step:08d>.pt`` (``specmcts.engine.network.save_model``: atomic, with a
model id naming the step and the weights) and hold everything a resumed trainer needs to continue exactly
as if it had not stopped: weights, optimizer state, step, the replay sampler's generator, torch's RNG and
the AMP scaler. ``models/model_00000000.pt`` is the untrained net the run started from (Elo reference).

NaN guard: a step whose loss or gradient norm is not finite is not applied; the trainer raises
``TrainingDiverged`` naming the step and the last good checkpoint, which stays on disk untouched.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from specmcts.atomic import atomic_write_bytes, remove_stale_temporaries
from specmcts.config import Config, TrainConfig, validate
from specmcts.engine.network import CheckpointError, PolicyValueNet, build_net, load_model, read_checkpoint, save_model
from specmcts.engine.evaluator import cpu_bf16_native
from specmcts.training.replay import ReplayBuffer, make_replay
from specmcts.stopping import GracefulStop, RunLock, say
from specmcts.threads import TRAIN
from specmcts.threads import configure as configure_threads

CHECKPOINT_GLOB = "model_*.pt"
SELFPLAY_POINTER = "selfplay.json"  # which checkpoint self-play should use (written atomically)


class TrainingDiverged(RuntimeError):
    """The loss or the gradients became NaN/inf; the message names the step and the last good checkpoint."""



# -- schedule and optimizer -----------------------------------------------------------------------------------


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate for optimizer step ``step`` (0-based)."""
    lr = cfg.lr
    if cfg.lr_schedule == "cosine" and cfg.lr_total_steps > 0:
        progress = min(1.0, step / cfg.lr_total_steps)
        lr = cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1.0 + math.cos(math.pi * progress))
    elif cfg.lr_schedule == "step" and cfg.lr_decay_every > 0:
        lr = cfg.lr * cfg.lr_decay_factor ** (step // cfg.lr_decay_every)
    if cfg.lr_warmup_steps > 0 and step < cfg.lr_warmup_steps:
        lr *= (step + 1) / cfg.lr_warmup_steps
    return lr


def _decayed(name: str, param: torch.nn.Parameter) -> bool:
    return param.ndim > 1  # conv and linear weights; not BatchNorm scales/shifts, not biases


def build_optimizer(net: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    decay = [p for n, p in net.named_parameters() if _decayed(n, p)]
    rest = [p for n, p in net.named_parameters() if not _decayed(n, p)]
    if cfg.optimizer == "adamw":
        groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=cfg.lr)
    # SGD: the L2 term is part of the loss (logged), so the optimizer itself does not decay.
    return torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)


# -- checkpoints ----------------------------------------------------------------------------------------------


class CheckpointStore:
    """``<run>/models``: ``model_<step:08d>.pt`` files and the self-play pointer."""

    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir) / "models"

    def path(self, step: int) -> Path:
        return self.dir / f"model_{int(step):08d}.pt"

    def steps(self) -> list[tuple[int, Path]]:
        """(step, path) of every checkpoint file, oldest first."""
        out = []
        for p in self.dir.glob(CHECKPOINT_GLOB):
            try:
                out.append((int(p.stem.split("_", 1)[1]), p))
            except (IndexError, ValueError):
                continue
        return sorted(out)

    def first(self) -> Path | None:
        found = self.steps()
        return found[0][1] if found else None

    def latest_good(self, report: Callable[[str], None] = say) -> tuple[Path, dict] | None:
        """The newest checkpoint that reads back, with its stored dict; unreadable ones are reported by name
        and passed over (atomic writes make them unlikely, a damaged disk does not)."""
        for _step, path in reversed(self.steps()):
            try:
                return path, read_checkpoint(path)
            except CheckpointError as e:
                report(f"{e}; trying the previous checkpoint")
        return None

    def prune(self, keep: int) -> None:
        """Keep the first checkpoint (the Elo reference), the pointer's target and the ``keep`` newest."""
        if keep <= 0:
            return
        found = self.steps()
        protected = {found[0][1]} if found else set()
        pointer = self.read_pointer()
        if pointer is not None:
            protected.add(self.dir / pointer["path"])
        for _step, path in found[:-keep]:
            if path not in protected:
                try:
                    path.unlink()
                except OSError:
                    pass

    def write_pointer(self, path: Path, model_id: str, step: int) -> None:
        """Point self-play at ``path`` (atomically: a reader sees the old or the new pointer)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        target = self.dir / SELFPLAY_POINTER
        pointer = {"path": Path(path).name, "model_id": model_id, "step": int(step)}
        atomic_write_bytes(target, json.dumps(pointer).encode())

    def read_pointer(self) -> dict | None:
        try:
            with open(self.dir / SELFPLAY_POINTER) as f:
                data = json.load(f)
            return data if isinstance(data, dict) and "path" in data else None
        except (OSError, ValueError):
            return None


# -- the trainer ----------------------------------------------------------------------------------------------


@dataclass
class StepMetrics:
    loss: float
    policy_loss: float
    value_loss: float
    ownership_loss: float
    score_loss: float
    l2: float
    policy_entropy: float
    value_accuracy: float
    grad_norm: float
    lr: float


class Trainer:
    """One network, its optimizer and the replay buffer it samples from.

    Build with ``Trainer.create`` (fresh net, or weights from ``init_model``) or ``Trainer.resume`` (the
    newest good checkpoint of the run, optimizer and RNG included)."""

    def __init__(self, cfg: Config, run_dir: str | Path, net: PolicyValueNet, buffer: ReplayBuffer,
                 device: str = "cpu", writer=None, report: Callable[[str], None] = say):
        validate(cfg)
        self.cfg = cfg
        self.tcfg = cfg.train
        self.run_dir = Path(run_dir)
        self.store = CheckpointStore(self.run_dir)
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.net = net.to(self.device)
        if self.cuda:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.net.train()
        self.buffer = buffer
        self.writer = writer
        self.report = report
        self.optimizer = build_optimizer(self.net, self.tcfg)
        self.amp_dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}[self.tcfg.amp_dtype]
        # autocast on CUDA; on a CPU in bf16 only, and only where the CPU computes bf16 in hardware (1.7-1.9x a
        # step of the 6x48 net on Zen 4; emulated bf16 is slower than float32)
        self.amp = bool(self.tcfg.amp) and (self.cuda or (self.amp_dtype == torch.bfloat16 and cpu_bf16_native()))
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp and self.amp_dtype == torch.float16)
        self.step = 0
        self.samples_trained = 0
        self.last_checkpoint: Path | None = None
        self._log_sums: dict[str, float] = {}
        self._size_sums: dict[str, tuple[float, int]] = {}  # per-size loss of a mixed-size run: (sum, count)
        self._log_count = 0
        self._log_seconds = 0.0
        self.train_seconds = 0.0

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def create(cls, cfg: Config, run_dir: str | Path, buffer: ReplayBuffer, device: str = "cpu",
               init_model: str | None = None, writer=None, report: Callable[[str], None] = say
               ) -> "Trainer":
        """A trainer at step 0: a fresh net seeded by ``cfg.seed``, or the weights of ``init_model``."""
        if init_model:
            net, _meta = load_model(init_model, expect_board=cfg.game.board, expect_net=cfg.net)
        else:
            torch.manual_seed(cfg.seed)
            net = build_net(cfg.game.board, cfg.net)
        return cls(cfg, run_dir, net, buffer, device, writer, report)

    @classmethod
    def resume(cls, cfg: Config, run_dir: str | Path, buffer: ReplayBuffer, device: str = "cpu",
               checkpoint: str | Path | None = None, writer=None,
               report: Callable[[str], None] = say) -> tuple["Trainer", dict]:
        """Continue from ``checkpoint`` (default: the newest good one in the run); returns the trainer and
        the checkpoint's stored dict (for the caller's own state, e.g. the run loop's generation)."""
        store = CheckpointStore(run_dir)
        if checkpoint is None:
            found = store.latest_good(report)
            if found is None:
                raise CheckpointError(f"no checkpoint to resume from in {store.dir}")
            checkpoint = found[0]
        net, meta = load_model(checkpoint, expect_board=cfg.game.board, expect_net=cfg.net)
        trainer = cls(cfg, run_dir, net, buffer, device, writer, report)
        trainer.load_training_state(meta, checkpoint)
        return trainer, meta

    def load_training_state(self, meta: dict, path: str | Path) -> None:
        if "optimizer" not in meta or "step" not in meta:
            raise CheckpointError(f"checkpoint {path} holds weights only (no optimizer state or step) and "
                                  f"cannot be resumed; start a run from it with --model")
        try:
            self.optimizer.load_state_dict(meta["optimizer"])
        except (ValueError, KeyError, RuntimeError) as e:
            raise CheckpointError(f"checkpoint {path}: its optimizer state does not fit train.optimizer="
                                  f"{self.tcfg.optimizer} ({str(e).splitlines()[0][:100]})") from None
        self.step = int(meta["step"])
        self.samples_trained = int(meta.get("samples_trained", self.step * self.tcfg.batch_size))
        rng = meta.get("rng") or {}
        if "torch" in rng:
            torch.set_rng_state(rng["torch"].cpu())
        if "cuda" in rng and self.cuda:
            torch.cuda.set_rng_state(rng["cuda"].cpu(), self.device)
        if "replay" in rng:
            self.buffer.load_state_dict(rng["replay"])
        if meta.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(meta["scaler"])
        self.last_checkpoint = Path(path)

    # -- one step --------------------------------------------------------------------------------
    def _batch(self) -> dict[str, torch.Tensor]:
        batch = self.buffer.sample(self.tcfg.batch_size)
        dev = self.device
        out = {name: torch.from_numpy(np.ascontiguousarray(array)).to(dev, non_blocking=True)
               for name, array in batch._asdict().items()}
        x = out.pop("features").float()
        out["x"] = x.contiguous(memory_format=torch.channels_last) if self.cuda else x
        out["ownership"] = out["ownership"].float()
        return out

    def _l2(self) -> torch.Tensor:
        return sum((p.float() ** 2).sum() for n, p in self.net.named_parameters() if _decayed(n, p))

    def train_step(self) -> StepMetrics:
        """Sample a batch, take one optimizer step; ``TrainingDiverged`` (step not applied) on NaN/inf."""
        started = time.perf_counter()
        t = self.tcfg
        lr = lr_at(self.step, t)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        b = self._batch()
        target_value = b["value"]
        self.net.train()
        aux = self.net.has_aux_heads
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
            out = self.net.heads(b["x"], aux=aux)
        logits = out["policy"].float()
        value = out["value"].float()
        log_p = F.log_softmax(logits, dim=1)
        pw = b["policy_weight"]
        policy_loss = (pw * -(b["policy"] * log_p).sum(dim=1)).sum() / pw.sum().clamp(min=1.0)
        value_loss = F.mse_loss(value, target_value)
        loss = policy_loss + t.value_weight * value_loss
        ownership_loss = score_loss = torch.zeros((), device=self.device)
        if aux:
            aw = b["aux_weight"]
            denom = aw.sum().clamp(min=1.0)
            per_point = F.binary_cross_entropy_with_logits(
                out["ownership_logit"].float(), (1.0 + b["ownership"]) / 2.0, reduction="none")
            ownership_loss = (aw * per_point.mean(dim=(1, 2))).sum() / denom
            size = float(b["x"].shape[-1])
            score_loss = (aw * F.huber_loss(out["score"].float() / size, b["score"] / size, reduction="none")).sum() / denom
            loss = loss + t.ownership_weight * ownership_loss + t.score_weight * score_loss
        l2 = t.weight_decay * self._l2()
        if t.optimizer == "sgd":
            loss = loss + l2
        if not torch.isfinite(loss):
            self._diverged(f"loss is {loss.item()}")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        max_norm = t.grad_clip if t.grad_clip > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.net.parameters(), max_norm)
        if not torch.isfinite(grad_norm) and not self.scaler.is_enabled():
            self._diverged(f"gradient norm is {grad_norm.item()}")
        self.scaler.step(self.optimizer)  # with a float16 scaler, an inf step is skipped and the scale lowered
        self.scaler.update()
        with torch.no_grad():
            p = log_p.exp()
            entropy = -(p * log_p).sum(dim=1).mean()
            decided = target_value != 0
            accuracy = ((value.sign() == target_value.sign()) & decided).sum() / decided.sum().clamp(min=1)
        self.step += 1
        self.samples_trained += t.batch_size
        metrics = StepMetrics(loss=loss.item(), policy_loss=policy_loss.item(), value_loss=value_loss.item(),
                              ownership_loss=ownership_loss.item(), score_loss=score_loss.item(), l2=l2.item(), policy_entropy=entropy.item(), value_accuracy=accuracy.item(),
                              grad_norm=float(grad_norm), lr=lr)
        self.train_seconds += time.perf_counter() - started
        board = getattr(self.buffer, "last_board", None)  # a mixed-size run's batch: its size's loss too
        if board is not None:
            key = f"train/{board}x{board}/loss"
            total, count = self._size_sums.get(key, (0.0, 0))
            self._size_sums[key] = (total + metrics.loss, count + 1)
        self._accumulate(metrics, time.perf_counter() - started)
        return metrics

    def _diverged(self, what: str) -> None:
        last = self.last_checkpoint
        where = f"the last good checkpoint is {last}" if last else "no checkpoint was written"
        raise TrainingDiverged(f"training diverged at step {self.step + 1} ({what}); stopped, {where}")

    # -- logging ---------------------------------------------------------------------------------
    def _accumulate(self, m: StepMetrics, seconds: float) -> None:
        for k, v in m.__dict__.items():
            self._log_sums[k] = self._log_sums.get(k, 0.0) + v
        self._log_count += 1
        self._log_seconds += seconds
        if self.step % self.tcfg.log_every == 0:
            self.flush_log()

    def flush_log(self) -> dict:
        """Write the means since the last flush to TensorBoard at the current step; returns them."""
        if not self._log_count:
            return {}
        means = {k: v / self._log_count for k, v in self._log_sums.items()}
        rate = self._log_count * self.tcfg.batch_size / self._log_seconds if self._log_seconds > 0 else 0.0
        values = {
            "train/loss": means["loss"], "train/policy_loss": means["policy_loss"],
            "train/value_loss": means["value_loss"], "train/l2": means["l2"],
            "train/ownership_loss": means["ownership_loss"], "train/score_loss": means["score_loss"],
            "train/policy_entropy": means["policy_entropy"], "train/value_accuracy": means["value_accuracy"],
            "train/grad_norm": means["grad_norm"], "train/learning_rate": means["lr"],
            "train/samples_per_s": rate,
            "replay/buffer_samples": len(self.buffer), "replay/window": self.buffer.window,
            "replay/total_samples": self.buffer.total_samples,
            "replay/skipped_shards": len(self.buffer.skipped),
        }
        values.update({k: total / count for k, (total, count) in self._size_sums.items() if count})
        for size, st in self.buffer.stats().get("sizes", {}).items():
            values[f"replay/{size}/total_samples"] = st["total_samples"]
            values[f"replay/{size}/buffer_samples"] = st["buffer_samples"]
        if self.writer is not None:
            for k, v in values.items():
                self.writer.add_scalar(k, v, self.step)
        self._log_sums, self._log_count, self._log_seconds = {}, 0, 0.0
        self._size_sums = {}
        return values

    # -- checkpoints -----------------------------------------------------------------------------
    def save(self, extra: dict | None = None) -> Path:
        """Checkpoint the current step atomically; returns its path (and remembers it as the last good one)."""
        rng = {"torch": torch.get_rng_state(), "replay": self.buffer.state_dict()}
        if self.cuda:
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        payload = {
            **(extra or {}),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "samples_trained": self.samples_trained,
            "config": self.cfg.to_dict(),
            "rng": rng,
            "created": time.time(),
        }
        if self.scaler.is_enabled():
            payload["scaler"] = self.scaler.state_dict()
        path = self.store.path(self.step)
        save_model(path, self.net, payload)
        self.last_checkpoint = path
        self.store.prune(self.tcfg.keep_checkpoints)
        return path

    @property
    def model_id(self) -> str:
        return self.net.model_id


def open_writer(run_dir: Path, purge_step: int | None = None):
    """A TensorBoard writer on ``<run>/tb``; ``purge_step`` hides points at or after it that an earlier,
    killed session wrote (so a resumed run does not draw two curves)."""
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(Path(run_dir) / "tb"), purge_step=purge_step)


# -- `specmcts train` ----------------------------------------------------------------------------------------


def train_run(cfg: Config, run_dir: str | Path, data_dir: str | Path | None = None, steps: int | None = None,
              resume: bool = False, init_model: str | None = None, device: str = "cpu", progress: bool = False,
              report: Callable[[str], None] = say) -> dict:
    """Train on the replay window of ``data_dir`` (default ``<run>/data``) until the trainer reaches step
    ``steps`` (default ``cfg.train.steps``); checkpoint every ``train.checkpoint_every`` steps and at the end.

    Fresh start (``resume`` False) refuses a run that already has checkpoints; ``resume`` continues from the
    newest good one (or ``init_model``) with its optimizer, step and RNG."""
    run_dir = Path(run_dir)
    validate(cfg)
    if data_dir is not None and not Path(data_dir).is_dir():
        raise ValueError(f"--data {data_dir}: no such directory (the data/ folder of a self-play run)")
    configure_threads(cfg, TRAIN)
    with RunLock(run_dir, "train"):  # one writer of checkpoints per run directory (specmcts run takes it too)
        return _train(cfg, run_dir, data_dir, steps, resume, init_model, device, progress, report)


def _train(cfg: Config, run_dir: Path, data_dir, steps, resume: bool, init_model, device: str, progress: bool,
           report: Callable[[str], None]) -> dict:
    store = CheckpointStore(run_dir)
    store.dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(store.dir)
    buffer = make_replay(cfg, data_dir or run_dir / "data", seed=cfg.seed, report=report)
    buffer.refresh()
    target = int(steps or cfg.train.steps)
    if resume:
        trainer, _meta = Trainer.resume(cfg, run_dir, buffer, device, checkpoint=init_model, report=report)
    else:
        if store.steps():
            raise CheckpointError(f"{store.dir} already holds checkpoints (newest step {store.steps()[-1][0]}): "
                                  f"pass --resume to continue, or --out for a new run")
        trainer = Trainer.create(cfg, run_dir, buffer, device, init_model=init_model, report=report)
    if len(buffer) < max(1, cfg.train.min_samples):
        size = "/".join(f"{b}x{b}" for b in cfg.game.sizes())
        why = (f"{len(buffer.skipped)} shard(s) skipped, e.g. {next(iter(buffer.skipped.values()))}"
               if buffer.skipped else "play more self-play games first")
        raise ValueError(f"{buffer.data_dir} holds {len(buffer)} {size} samples, training needs "
                         f"train.min_samples={cfg.train.min_samples} ({why})")
    writer = open_writer(run_dir, purge_step=trainer.step if resume else None)
    trainer.writer = writer
    if trainer.step == 0 and not store.steps():
        trainer.save()
    start_step = trainer.step
    started = time.perf_counter()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=max(0, target - trainer.step), unit="step", dynamic_ncols=True, leave=False)
    last: StepMetrics | None = None

    def stopping() -> None:
        (bar.write if bar is not None else report)("train: stopping after this step, keeping it (again to stop now)")

    try:
        with GracefulStop(stopping) as stop:  # Ctrl-C: finish the step in hand, checkpoint, report
            while trainer.step < target and not stop.requested:
                last = trainer.train_step()
                if trainer.step % cfg.train.checkpoint_every == 0:
                    trainer.save()
                if bar is not None:
                    bar.update(1)
                    if trainer.step % 10 == 0:
                        bar.set_postfix(loss=f"{last.loss:.3f}", refresh=False)
            trainer.flush_log()
            if trainer.last_checkpoint is None or trainer.last_checkpoint != store.path(trainer.step):
                trainer.save()
    finally:
        if bar is not None:
            bar.close()
        writer.flush()
        writer.close()
    wall = time.perf_counter() - started
    steps_done = trainer.step - start_step
    return {
        "steps": steps_done,
        "step": trainer.step,
        "loss": last.loss if last else None,
        "policy_loss": last.policy_loss if last else None,
        "value_loss": last.value_loss if last else None,
        "samples_per_s": steps_done * cfg.train.batch_size / trainer.train_seconds if trainer.train_seconds else 0.0,
        "wall_s": round(wall, 3),
        "checkpoint": str(trainer.last_checkpoint),
        "model_id": trainer.model_id,
        "stop_reason": "interrupted" if stop.requested else "done",
        **buffer.stats(),
    }


def format_train_summary(s: dict) -> str:
    loss = f"loss {s['loss']:.4f} (policy {s['policy_loss']:.4f}, value {s['value_loss']:.4f})" if s["loss"] is not None \
        else "no step taken"
    return (f"train: {s['steps']} steps to step {s['step']} in {s['wall_s']:.1f} s | {loss} | "
            f"{s['samples_per_s']:.0f} samples/s | window {s['buffer_samples']} of {s['total_samples']} samples "
            f"({s['shards']} shards, {s['skipped_shards']} skipped) | "
            + ("stopped: interrupted | " if s.get("stop_reason") == "interrupted" else "") + f"{s['checkpoint']}")
