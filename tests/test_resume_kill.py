"""`kill -9` of `specmcts run` (async: a self-play process beside the trainer) at a random moment, then
`--resume`: no checkpoint and no finished shard is lost, no self-play worker survives its parent, and the resumed
run continues from the newest checkpoint. On the way: self-play switches to new checkpoints without a restart."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from specmcts.engine.network import read_checkpoint
from specmcts.training.replay import read_shard
from tests.helpers import toy_run, wait_for

KILL_CONFIG = toy_run(
    name="kill5", seed=3,
    run={"mode": "async", "workers": 1, "chunk_games": 8, "train_samples_per_sample": 2.0, "minutes": 8.0})


def listing(folder: Path, pattern: str) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in folder.glob(pattern)}


def start_run(run: Path, config: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "specmcts", "run", "--config", str(config), "--out", str(run),
                             "--quiet", "--json", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def children(pid: int) -> set[int]:
    try:
        return {int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    except OSError:
        return set()


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"





@pytest.mark.slow
@pytest.mark.parametrize("moment", [20261123, 7])
def test_kill_9_then_resume(tmp_path, moment):
    config = tmp_path / "kill5.yaml"
    config.write_text(yaml.safe_dump(KILL_CONFIG))
    run = tmp_path / "run"
    models, data = run / "models", run / "data"

    proc = start_run(run, config)

    def model_ids() -> set[str]:
        return {read_shard(p, 5).model_id for p in sorted(data.glob("*.npz"))}

    # Self-play picks up new checkpoints without a restart: shards come from more than one net.
    wait_for(proc, lambda: len(listing(models, "model_*.pt")) >= 3 and len(model_ids()) >= 2,
             "two checkpoints after the first and shards played by two different nets")
    time.sleep(random.Random(moment).uniform(0.0, 2.0))  # a random moment, the same one every run
    before_shards, before_models = listing(data, "*.npz"), listing(models, "model_*.pt")
    workers = children(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    at_kill = listing(data, "*") | listing(run / "sgf", "*")
    proc.stdout.close()
    proc.stderr.close()

    # The self-play worker died with its parent: it neither lingers nor finishes its chunk into the run.
    assert workers, "the async run should have a self-play worker process"
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in workers), "a self-play worker outlived the killed run"
    time.sleep(1.0)
    assert listing(data, "*") | listing(run / "sgf", "*") == at_kill, "files appeared after the kill"

    # Nothing finished before the kill was lost or damaged.
    after_shards, after_models = listing(data, "*.npz"), listing(models, "model_*.pt")
    assert before_shards.items() <= after_shards.items() and before_models.items() <= after_models.items()
    for name in after_models:
        read_checkpoint(models / name)
    samples = sum(len(read_shard(data / name, 5)) for name in after_shards)
    newest = max(int(name[6:14]) for name in after_models)

    resumed = start_run(run, config, "--resume", "--max-steps", str(newest + 10))
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-2000:]
    assert "Traceback" not in err
    assert f"resuming {run} at step {newest}" in err
    summary = json.loads(out)
    assert summary["stop_reason"] == "max steps" and summary["step"] == newest + 10
    assert summary["skipped_shards"] == 0 and summary["total_samples"] >= samples
    final_models = listing(models, "model_*.pt")
    assert after_models.keys() <= final_models.keys() and f"model_{newest + 10:08d}.pt" in final_models
    assert not list(models.glob(".*.tmp")) and not list(data.glob("*.tmp"))  # leftovers of the kill cleaned up
    pointer = json.loads((models / "selfplay.json").read_text())
    assert (models / pointer["path"]).exists()


@pytest.mark.slow
def test_lock_refuses_a_second_run_and_signals_stop_gracefully(tmp_path):
    """While a run holds its directory a second run there is refused with one line. SIGTERM stops a run after
    its current chunk or step: its summary with stop reason 'interrupted', a final checkpoint, exit 130 (the
    CLI's status for an interrupted command). SIGINT twice stops it at once: exit 130, no summary, no
    traceback, every checkpoint still readable."""
    config = tmp_path / "kill5.yaml"
    config.write_text(yaml.safe_dump(KILL_CONFIG))
    run = tmp_path / "run"
    models = run / "models"

    first = start_run(run, config)
    wait_for(first, lambda: len(listing(models, "model_*.pt")) >= 2, "two checkpoints")
    second = start_run(run, config, "--resume")
    out, err = second.communicate(timeout=120)
    assert second.returncode == 1 and out == ""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "in use by another specmcts run" in lines[0], err

    first.send_signal(signal.SIGTERM)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "stopping after the current chunk or step" in err
    summary = json.loads(out)
    assert summary["stop_reason"] == "interrupted"
    assert f"model_{summary['step']:08d}.pt" in listing(models, "model_*.pt")

    third = start_run(run, config, "--resume")
    newest = summary["step"]
    wait_for(third, lambda: max(int(p.name[6:14]) for p in models.glob("model_*.pt")) > newest,
             "a checkpoint after the resume")
    third.send_signal(signal.SIGINT)
    time.sleep(0.2)
    third.send_signal(signal.SIGINT)
    out, err = third.communicate(timeout=120)
    assert third.returncode == 130 and out == "", err[-2000:]
    assert "Traceback" not in err and err.strip().endswith("specmcts: interrupted")
    for path in models.glob("model_*.pt"):
        read_checkpoint(path)
    assert not list(models.glob(".*.tmp"))


@pytest.mark.slow
@pytest.mark.parametrize("purpose", ["elo", "gating"])
def test_sigint_during_an_evaluation_match_stops_at_its_next_move(tmp_path, purpose):
    """Ctrl-C while the run plays an Elo or gating match (5,000 games here) stops the match at its next move,
    as `specmcts eval` stops: a part of a match is not a measurement, so no Elo point is written and no net is
    adopted; the summary says 'interrupted', exit 130, the checkpoint is kept."""
    config = tmp_path / "kill5.yaml"
    config.write_text(yaml.safe_dump(KILL_CONFIG))
    run = tmp_path / "run"
    sets = {"elo": ["run.eval_every=1", "run.eval_games=5000", "run.eval_gnugo_games=0"],
            "gating": ["run.gating_games=5000"]}[purpose]
    proc = start_run(run, config, "--mode", "generations", "--set", "run.games_per_generation=8",
                     *[arg for s in sets for arg in ("--set", s)])
    sgf = run / "eval" / purpose
    wait_for(proc, lambda: len(list(sgf.glob("*.sgf"))) >= 2, f"two {purpose} games")
    assert proc.poll() is None, f"the {purpose} match finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    summary = json.loads(out)
    assert summary["stop_reason"] == "interrupted" and "Traceback" not in err
    assert summary["elo"] == {} and not (run / "eval" / "elo.jsonl").exists()
    assert summary["gating"] == {"accepted": 0, "rejected": 0}
    if purpose == "gating":  # the first net plays on (without gating a trained net is adopted at once)
        assert json.loads((run / "models" / "selfplay.json").read_text())["path"] == "model_00000000.pt"
    assert f"model_{summary['step']:08d}.pt" in listing(run / "models", "model_*.pt")
    assert "interrupted" in err.lower() and purpose in err.lower()
