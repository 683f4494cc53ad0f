"""Trainer: schedules, exact resume, NaN guard, checkpoints, TensorBoard scalars, and the `specmcts train` CLI."""
from __future__ import annotations

import dataclasses
import hashlib
import math

import numpy as np
import pytest
import torch

from specmcts import cli
from specmcts.config import Config, ConfigError, TrainConfig, load_config, validate
from specmcts.engine.network import CheckpointError, load_model, read_checkpoint
from specmcts.training.replay import ReplayBuffer
from specmcts.training.trainer import CheckpointStore, Trainer, TrainingDiverged, lr_at, train_run

from tests.helpers import write_shard

SIZE = 5


def tiny_config(*extra: str):
    return load_config("tiny", ["game.board=5", "train.batch_size=16", "train.min_samples=16",
                                "train.checkpoint_every=4", "train.log_every=2", "evaluator.device=cpu",
                                *extra])


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "shards"
    # Targets the net can fit under every symmetry: value = +1 when the mover has a stone on the centre point.
    for i in range(3):
        rng = np.random.default_rng(i)
        feats = rng.integers(0, 2, (64, 18, SIZE, SIZE)).astype(np.uint8)
        value = np.where(feats[:, 0, SIZE // 2, SIZE // 2] == 1, 1.0, -1.0).astype(np.float32)
        policy = np.zeros((64, SIZE * SIZE + 1), np.float32)
        policy[np.arange(64), rng.integers(0, SIZE * SIZE, 64)] = 1.0
        write_shard(d / f"s{i}.npz", 64, features=feats, value=value, policy=policy)
    return d


def sha(path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


# -- schedule -----------------------------------------------------------------------------------------------


def test_learning_rate_schedules():
    c = TrainConfig(lr=0.1)
    assert lr_at(0, c) == lr_at(10_000, c) == 0.1
    cos = dataclasses.replace(c, lr_schedule="cosine", lr_total_steps=100, lr_min=0.001)
    assert lr_at(0, cos) == pytest.approx(0.1) and lr_at(50, cos) == pytest.approx(0.0505)
    assert lr_at(100, cos) == pytest.approx(0.001) == lr_at(500, cos)
    step = dataclasses.replace(c, lr_schedule="step", lr_decay_every=10, lr_decay_factor=0.5)
    assert [lr_at(s, step) for s in (0, 9, 10, 25)] == pytest.approx([0.1, 0.1, 0.05, 0.025])
    warm = dataclasses.replace(c, lr_warmup_steps=4)
    assert [lr_at(s, warm) for s in range(5)] == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1])


def test_bad_train_config_is_rejected():
    with pytest.raises(ConfigError, match="train.optimizer"):
        validate(Config(train=TrainConfig(optimizer="rmsprop")))
    with pytest.raises(ConfigError, match="train.lr_schedule"):
        validate(Config(train=TrainConfig(lr_schedule="linear")))


# -- training -----------------------------------------------------------------------------------------------


def aux_shards(folder, resigned_every: int = 4):
    """Shards with the kata heads' targets: ownership = the mover's stones +1, the opponent's -1 (a local
    target), score = their difference; every ``resigned_every``-th sample has no auxiliary targets (weight 0)
    and every other sample is a fast search (policy weight 0)."""
    for i in range(3):
        rng = np.random.default_rng(10 + i)
        feats = rng.integers(0, 2, (64, 18, SIZE, SIZE)).astype(np.uint8)
        feats[:, 1] &= 1 - feats[:, 0]
        own = feats[:, 0].astype(np.int8) - feats[:, 1].astype(np.int8)
        aux = (np.arange(64) % resigned_every != 0).astype(np.float32)
        policy = np.zeros((64, SIZE * SIZE + 1), np.float32)
        policy[np.arange(64), rng.integers(0, SIZE * SIZE, 64)] = 1.0
        write_shard(folder / f"s{i}.npz", 64, features=feats, policy=policy,
                    value=np.where(own.sum(axis=(1, 2)) > 0, 1.0, -1.0).astype(np.float32),
                    ownership=own * aux[:, None, None].astype(np.int8), score=own.sum(axis=(1, 2)).astype(np.float32) * aux,
                    aux_weight=aux, policy_weight=(np.arange(64) % 2).astype(np.float32), version=np.int32(2))


def test_kata_heads_learn_ownership_and_score(tmp_path):
    """The auxiliary heads train: ownership and score losses fall, and the weights of the targets apply
    (zero-weight samples do not count; a batch of fast searches only has no policy loss)."""
    aux_shards(tmp_path / "shards")
    cfg = tiny_config("train.optimizer=adamw", "train.lr=0.003", "net.heads=kata")
    buf = ReplayBuffer(tmp_path / "shards", SIZE, cfg.train, seed=0)
    buf.refresh()
    b = buf.sample(512)
    assert (b.ownership[b.aux_weight == 0] == 0).all() and set(np.unique(b.policy_weight)) == {0.0, 1.0}
    trainer = Trainer.create(cfg, tmp_path / "run", buf)
    steps = [trainer.train_step() for _ in range(60)]
    own = [m.ownership_loss for m in steps]
    score = [m.score_loss for m in steps]
    assert np.mean(own[-10:]) < 0.7 * np.mean(own[:10])
    assert np.mean(score[-10:]) < 0.7 * np.mean(score[:10])
    assert all(m.policy_loss > 0 for m in steps)
    trainer.train_step()  # step 61: logged at the next flush (log_every is 2)
    values = trainer.flush_log()
    assert "train/ownership_loss" in values and "train/score_loss" in values


def test_fc_heads_have_no_auxiliary_loss(tmp_path):
    aux_shards(tmp_path / "shards")
    cfg = tiny_config("net.heads=fc")
    buf = ReplayBuffer(tmp_path / "shards", SIZE, cfg.train, seed=0)
    buf.refresh()
    m = Trainer.create(cfg, tmp_path / "run", buf).train_step()
    assert m.ownership_loss == 0.0 and m.score_loss == 0.0 and np.isfinite(m.loss)


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_loss_goes_down_on_a_learnable_target(tmp_path, data_dir, optimizer):
    # fc heads see each point: the centre-point value target suits them (kata heads: the test below)
    cfg = tiny_config(f"train.optimizer={optimizer}", "train.lr=0.05" if optimizer == "sgd" else "train.lr=0.003",
                      "net.heads=fc")
    buf = ReplayBuffer(data_dir, SIZE, cfg.train, seed=0)
    buf.refresh()
    trainer = Trainer.create(cfg, tmp_path / "run", buf)
    losses = [trainer.train_step().value_loss for _ in range(60)]
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:10])
    m = trainer.train_step()
    assert 0 <= m.value_accuracy <= 1 and 0 < m.policy_entropy <= math.log(SIZE * SIZE + 1) + 1e-4
    assert m.l2 > 0 and m.lr == cfg.train.lr and trainer.step == 61 and trainer.samples_trained == 61 * 16


def test_resume_continues_exactly(tmp_path, data_dir):
    """Train 12 steps in one go, or 8 then resume to 12 (optimizer, step and sampler restored): same weights."""
    cfg = tiny_config("train.checkpoint_every=4")
    straight = train_run(cfg, tmp_path / "a", data_dir=data_dir, steps=12)
    first = train_run(cfg, tmp_path / "b", data_dir=data_dir, steps=8)
    assert first["step"] == 8
    resumed = train_run(cfg, tmp_path / "b", data_dir=data_dir, steps=12, resume=True)
    assert straight["step"] == resumed["step"] == 12 and resumed["steps"] == 4
    a = read_checkpoint(tmp_path / "a" / "models" / "model_00000012.pt")
    b = read_checkpoint(tmp_path / "b" / "models" / "model_00000012.pt")
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert a["model_id"] == b["model_id"] and "-s12-" in a["model_id"]
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])
    assert a["rng"]["replay"] == b["rng"]["replay"]
    steps = [s for s, _ in CheckpointStore(tmp_path / "a").steps()]
    assert steps == [0, 4, 8, 12]


def test_nan_guard_stops_and_keeps_the_last_good_checkpoint(tmp_path, data_dir):
    cfg = tiny_config()
    buf = ReplayBuffer(data_dir, SIZE, cfg.train, seed=0)
    buf.refresh()
    trainer = Trainer.create(cfg, tmp_path / "run", buf)
    for _ in range(4):
        trainer.train_step()
    good = trainer.save()
    digest = sha(good)
    with torch.no_grad():
        trainer.net.value_fc2.weight.fill_(float("nan"))
    with pytest.raises(TrainingDiverged) as err:
        trainer.train_step()
    message = str(err.value)
    assert "step 5" in message and str(good) in message and "\n" not in message
    assert trainer.step == 4  # the bad step was not counted ...
    assert sha(good) == digest and [s for s, _ in trainer.store.steps()] == [4]  # ... nor checkpointed
    net, meta = load_model(good)
    assert all(torch.isfinite(p).all() for p in net.parameters()) and meta["step"] == 4


def test_tensorboard_scalars(tmp_path, data_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train_run(tiny_config(), tmp_path / "run", data_dir=data_dir, steps=6)
    acc = EventAccumulator(str(tmp_path / "run" / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for tag in ("train/loss", "train/policy_loss", "train/value_loss", "train/l2", "train/policy_entropy",
                "train/value_accuracy", "train/learning_rate", "train/samples_per_s", "replay/buffer_samples",
                "replay/total_samples"):
        assert tag in tags, tag
    assert [e.step for e in acc.Scalars("train/loss")] == [2, 4, 6]
    assert acc.Scalars("replay/buffer_samples")[-1].value == 192


# -- checkpoints and the CLI --------------------------------------------------------------------------------


def test_cli_train_resume_and_errors(tmp_path, data_dir, capsys):
    import json

    out = tmp_path / "run"
    args = ["train", "--config", "tiny", "--board", "5", "--device", "cpu", "--out", str(out),
            "--data", str(data_dir), "--batch-size", "16", "--set", "train.min_samples=16",
            "--set", "train.checkpoint_every=5", "--quiet"]
    assert cli.main(args + ["--steps", "5", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["step"] == 5 and summary["checkpoint"].endswith("model_00000005.pt")
    # A second fresh start into the same run is refused with one line.
    assert cli.main(args + ["--steps", "10"]) == 1
    err = capsys.readouterr().err
    assert "--resume" in err and err.count("\n") == 1 and "Traceback" not in err
    # A damaged newest checkpoint is reported by name; training resumes from the one before.
    newest = out / "models" / "model_00000005.pt"
    newest.write_bytes(newest.read_bytes()[:100])
    assert cli.main(args + ["--steps", "10", "--resume"]) == 0
    captured = capsys.readouterr()
    assert "model_00000005.pt" in captured.err and "unreadable" in captured.err and "Traceback" not in captured.err
    assert "to step 10" in captured.out and "10 steps to step 10" in captured.out
    # No shards: one line, no traceback.
    assert cli.main(["train", "--config", "tiny", "--board", "5", "--device", "cpu", "--out",
                     str(tmp_path / "empty"), "--steps", "3", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "samples" in err and err.count("\n") == 1
    # A checkpoint of another board (its kata heads play any size), on shards of that other board: the shards
    # do not fit 7x7, and the one line says so (not "play more games").
    assert cli.main(["train", "--config", "tiny", "--board", "7", "--device", "cpu", "--out",
                     str(tmp_path / "other"), "--data", str(data_dir), "--model", str(out / "models" / "model_00000000.pt"),
                     "--steps", "3", "--quiet"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert "holds 0 7x7 samples" in err[-1] and "the run is 7x7" in err[-1] and "play more" not in err[-1]
    assert not any("Traceback" in line for line in err)


def test_weights_only_checkpoint_cannot_be_resumed(tmp_path, data_dir):
    from specmcts.engine.network import build_net, save_model

    cfg = tiny_config()
    store = CheckpointStore(tmp_path / "run")
    save_model(store.path(3), build_net(SIZE, cfg.net))
    buf = ReplayBuffer(data_dir, SIZE, cfg.train)
    with pytest.raises(CheckpointError, match="weights only"):
        Trainer.resume(cfg, tmp_path / "run", buf)


def test_prune_keeps_first_pointer_and_newest(tmp_path, data_dir):
    cfg = tiny_config("train.keep_checkpoints=2", "train.checkpoint_every=2")
    train_run(cfg, tmp_path / "run", data_dir=data_dir, steps=12)
    store = CheckpointStore(tmp_path / "run")
    assert [s for s, _ in store.steps()] == [0, 10, 12]


@pytest.mark.parametrize("native", [True, False])
def test_bf16_training_on_a_cpu_that_has_it(tmp_path, data_dir, monkeypatch, native):
    """train.amp on a CPU: bf16 autocast where the CPU computes bf16 in hardware (never float16, never
    emulated); it learns, resumes, and its first loss is float32's within bf16's precision."""
    from specmcts.training import trainer as trainer_module

    monkeypatch.setattr(trainer_module, "cpu_bf16_native", lambda: native)
    cfg = tiny_config("net.heads=fc", "train.lr=0.05")
    buf = ReplayBuffer(data_dir, SIZE, cfg.train, seed=0)
    buf.refresh()
    trainer = Trainer.create(cfg, tmp_path / "bf16", buf)
    assert trainer.amp == native
    for off in ("train.amp=false", "train.amp_dtype=float16"):
        assert not Trainer.create(tiny_config(off), tmp_path / off, buf).amp
    reference = Trainer.create(cfg, tmp_path / "f32", ReplayBuffer(data_dir, SIZE, cfg.train, seed=0))
    reference.buffer.refresh()
    reference.amp = False
    first, first_f32 = trainer.train_step().loss, reference.train_step().loss
    assert abs(first - first_f32) < 0.02 * abs(first_f32)
    losses = [trainer.train_step().value_loss for _ in range(60)]
    assert all(math.isfinite(x) for x in losses) and np.mean(losses[-10:]) < 0.7 * np.mean(losses[:10])
    trainer.save()
    resumed, _ = Trainer.resume(cfg, tmp_path / "bf16", buf)
    assert resumed.step == 61 and resumed.amp == native


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (AMP path)")
def test_amp_training_on_cuda(tmp_path, data_dir):
    for dtype in ("bfloat16", "float16"):
        cfg = tiny_config(f"train.amp_dtype={dtype}")
        buf = ReplayBuffer(data_dir, SIZE, cfg.train, seed=0)
        buf.refresh()
        trainer = Trainer.create(cfg, tmp_path / dtype, buf, device="cuda")
        assert trainer.amp
        losses = [trainer.train_step().loss for _ in range(40)]
        assert all(math.isfinite(x) for x in losses) and np.mean(losses[-5:]) < np.mean(losses[:5])
        path = trainer.save()
        resumed, _ = Trainer.resume(cfg, tmp_path / dtype, buf, device="cuda")
        assert resumed.step == 40 and path.exists()


@pytest.mark.slow
@pytest.mark.parametrize("moment", [1, 2, 3])
def test_kill_9_of_train_then_resume(tmp_path, data_dir, capsys, moment):
    """`kill -9` of `specmcts train` while it writes checkpoints: every checkpoint left is whole (written to a
    temporary file, then renamed), and `--resume` continues from the newest."""
    import json
    import os
    import random
    import signal
    import subprocess
    import sys
    import time

    from specmcts.engine.network import read_checkpoint

    out = tmp_path / "run"
    models = out / "models"
    args = ["train", "--config", "tiny", "--board", "5", "--device", "cpu", "--out", str(out),
            "--data", str(data_dir), "--batch-size", "16", "--set", "train.min_samples=16",
            "--set", "train.checkpoint_every=2", "--set", "train.keep_checkpoints=0", "--quiet"]
    proc = subprocess.Popen([sys.executable, "-m", "specmcts", *args, "--steps", "100000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    deadline = time.monotonic() + 300
    rng = random.Random(moment)  # seeded moments: after 2..8 checkpoints, then up to half a second more
    wanted = rng.randint(2, 8)
    while len(list(models.glob("model_*.pt"))) < wanted:
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        assert time.monotonic() < deadline, "train wrote no checkpoints"
        time.sleep(0.05)
    time.sleep(rng.uniform(0.0, 0.5))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    left = sorted(models.glob("model_*.pt"))
    steps = [read_checkpoint(p)["step"] for p in left]  # every one whole
    newest = max(steps)
    assert cli.main(args + ["--steps", str(newest + 4), "--resume", "--json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["step"] == newest + 4 and summary["steps"] == 4  # continued from the newest checkpoint
    assert not list(models.glob(".*.tmp")) and not list(models.glob("*.tmp"))


def test_run_elo_reference_names_a_checkpoint_or_the_shipped_net(tmp_path, capsys, monkeypatch):
    from specmcts.training.evaluation import elo_reference
    from specmcts.engine.network import embedded_model

    assert elo_reference(load_config("go9cpu")) is None  # unset: the run's first checkpoint
    shipped = load_config("go9cpu", ["run.elo_reference=shipped"])
    assert elo_reference(shipped) == embedded_model(9)
    # no net trained on 5x5 ships: the 9x9 one, whose kata heads play every size, says so and plays
    assert elo_reference(tiny_config("run.elo_reference=shipped")) == embedded_model(9)
    assert "no net trained for 5x5 ships; playing the 9x9 net go9.pt" in capsys.readouterr().err
    from specmcts.engine import network

    monkeypatch.setattr(network, "WEIGHTS_DIR", tmp_path)  # a package without weights
    with pytest.raises(ConfigError, match="run.elo_reference shipped: no net ships for 5x5"):
        elo_reference(tiny_config("run.elo_reference=shipped"))
    with pytest.raises(ConfigError, match="no such checkpoint"):
        elo_reference(tiny_config(f"run.elo_reference={tmp_path / 'missing.pt'}"))
    # the run refuses it in one line, before any game is played
    assert cli.main(["run", "--board", "5", "--out", str(tmp_path / "run"),
                     "--set", "run.elo_reference=shipped"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "run.elo_reference shipped: no net ships for 5x5" in err
    assert not (tmp_path / "run" / "data").exists() or not any((tmp_path / "run" / "data").iterdir())
