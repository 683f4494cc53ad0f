"""`specmcts run --ray` on a real local Ray cluster (2 CPUs): games from two worker actors, checkpoints, the
single-machine run directory; one worker killed with `ray.kill` mid-run is respawned, its chunk played again,
and the run completes.

CI installs the ray extra (`pip install -e '.[dev,ray]'`); without Ray these tests fail and say so, they are
not skipped. The module itself imports without Ray, and `--ray` without it is one clear line."""
from __future__ import annotations

import json
import sys
import threading
import time

import pytest
import yaml

from specmcts import cli
from specmcts.config import Config, load_config
from tests.helpers import toy_run

RAY_CONFIG = toy_run(
    name="ray5", selfplay={"concurrent": 4},
    # minutes: a safety net only (each test stops on steps or generations; the per-test timeout is 15 minutes),
    # long enough that a slow, loaded CI machine never stops on time instead
    run={"mode": "async", "workers": 2, "chunk_games": 4, "train_samples_per_sample": 2.0, "minutes": 12.0})


@pytest.fixture(scope="module")
def ray_cluster():
    try:
        import ray
    except ImportError:
        pytest.fail("Ray is not installed: pip install -e '.[dev,ray]' (CI installs the ray extra)")
    if ray.is_initialized():
        yield ray
        return
    ray.init(num_cpus=2, include_dashboard=False)
    yield ray
    ray.shutdown()


def write_config(tmp_path, **sections) -> str:
    data = json.loads(json.dumps(RAY_CONFIG))
    for section, values in sections.items():
        data[section].update(values)
    path = tmp_path / "ray5.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_ray_lead_pause_waits_for_min_samples(tmp_path, capsys, ray_cluster):
    """run.max_lead_samples below train.min_samples: self-play must not pause before the trainer can start
    (the rule the local loop had and the Ray loop lacked: it waited until the time budget ran out)."""
    run = tmp_path / "run"
    config = write_config(tmp_path, run={"max_steps": 10, "max_lead_samples": 16})
    assert cli.main(["run", "--config", config, "--out", str(run), "--ray", "--quiet", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["stop_reason"] == "max steps" and summary["step"] == 10


def test_ray_run_games_from_two_workers_and_checkpoints(tmp_path, capsys, ray_cluster):
    """`specmcts run --ray`: the single-machine layout, shards named by worker from both actors, checkpoints."""
    run = tmp_path / "run"
    config = write_config(tmp_path, run={"max_steps": 30})
    assert cli.main(["run", "--config", config, "--out", str(run), "--ray", "--quiet", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["stop_reason"] == "max steps" and summary["step"] == 30
    shards = sorted(p.name for p in (run / "data").glob("*.npz"))
    workers = {name.split("-")[1] for name in shards}  # <ms>-w<worker>-0000.npz
    assert workers == {"w00", "w01"}, shards
    assert set(summary["ray"]["games_by_worker"]) == {"w00", "w01"}
    assert all(n > 0 for n in summary["ray"]["games_by_worker"].values()), summary["ray"]
    assert summary["games"] == sum(summary["ray"]["games_by_worker"].values()) == len(list((run / "sgf").glob("*.sgf")))
    models = run / "models"
    assert (models / "model_00000000.pt").is_file() and (models / "model_00000030.pt").is_file()
    pointer = json.loads((models / "selfplay.json").read_text())
    assert pointer["step"] == 30 and summary["ray"]["broadcasts"] >= 2
    assert list((run / "tb").glob("events.out.tfevents.*")) and (run / "config.yaml").is_file()
    assert not list((run / "data").glob("*.tmp"))
    assert summary["ray"]["restarts"] == 0 and summary["ray"]["num_cpus_per_worker"] == 1.0


def held_by(loop, worker: int) -> list:
    """The chunks ``worker`` holds in flight, read from another thread (``list`` copies the dict at once)."""
    return [chunk for w, _inc, chunk in list(loop.backend.pool.pending.values()) if w == worker and chunk is not None]


def test_killed_worker_is_respawned_and_its_chunk_replayed(tmp_path, ray_cluster):
    """Generations mode: `ray.kill` one worker mid-run; it comes back, the chunk it held is played again (by
    name and seed), and the run ends normally with the very shards and net of the single-machine run. Workers
    write into the run directory themselves here (ray.shared_storage), the other path of the shards."""
    import numpy as np

    from specmcts.training.loop import RunLoop, run_loop

    cfg = load_config(write_config(tmp_path, run={"mode": "generations", "generations": 2, "games_per_generation": 8,
                                                  "chunk_games": 2}), ["ray.shared_storage=true"])
    run = tmp_path / "run"
    messages: list[str] = []
    loop = RunLoop(cfg, run, report=messages.append, backend="ray")
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(loop.run()), daemon=True)
    thread.start()
    try:
        # Mid-run: a chunk is on disk and worker 0 holds one in flight (under load, worker 0's actor may start
        # after worker 1 has played the first chunks: killed before it holds one, it would lose none).
        deadline = time.monotonic() + 300  # the workers' first chunk compiles the kernels if numba has no cache
        while loop.stats.games_total < 2 or not held_by(loop, 0):
            assert thread.is_alive() and time.monotonic() < deadline, messages
            time.sleep(0.05)
        ray_cluster.kill(loop.backend.handle(0))
        thread.join(timeout=300)
        assert not thread.is_alive(), "the run did not finish after a worker was killed"
    finally:
        if thread.is_alive():  # a failed test stops its run: left driving Ray, it would outlive the cluster
            loop.request_stop()
            thread.join(timeout=120)
    assert result["stop_reason"] == "generations", messages
    assert result["ray"]["restarts"] == 1 and any("worker 0 died" in m for m in messages), messages
    assert result["ray"]["chunks_lost"] >= 1, result["ray"]  # ... and played again: all chunks are there
    shards = sorted(p.name for p in (run / "data").glob("*.npz"))
    assert shards == [f"g{g:05d}-c{c:04d}-0000.npz" for g in range(2) for c in range(4)]
    assert result["games"] == 16 and result["generation"] == 2 and result["ray"]["storage"] == "shared"
    assert not list(run.glob(".shared-storage-*"))  # the driver's marker is gone with the workers
    assert (run / "models" / f"model_{result['step']:08d}.pt").is_file()
    # Chunks are named and seeded by (generation, index), so who plays them does not matter.
    local = run_loop(load_config(write_config(tmp_path, run={"mode": "generations", "generations": 2,
                                                             "games_per_generation": 8, "chunk_games": 2})),
                     tmp_path / "local")
    assert (local["step"], local["model_id"]) == (result["step"], result["model_id"])
    for name in shards:
        with np.load(run / "data" / name) as a, np.load(tmp_path / "local" / "data" / name) as b:
            assert all(np.array_equal(a[k], b[k]) for k in ("features", "policy", "value", "model_id")), name


def test_without_ray_the_module_imports_and_the_flag_says_what_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    from specmcts.training import distributed

    with pytest.raises(distributed.RayUnavailable, match=r"specmcts\[ray\]"):
        distributed.import_ray()
    config = write_config(tmp_path)
    assert cli.main(["run", "--config", config, "--out", str(tmp_path / "run"), "--ray", "--quiet"]) == 1
    assert "pip install 'specmcts[ray]'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_ray_flag_and_resources():
    from specmcts.training.distributed import worker_resources

    parser = cli.build_parser()
    assert parser.parse_args(["run"]).ray is None
    assert parser.parse_args(["run", "--ray"]).ray == "local"
    assert parser.parse_args(["run", "--ray", "auto"]).ray == "auto"
    cfg = Config()
    one_gpu_box = [{"CPU": 16.0, "GPU": 1.0}]
    assert worker_resources(cfg, one_gpu_box, 1) == (16.0, 1.0)
    assert worker_resources(cfg, one_gpu_box, 8) == (2.0, 0.125)
    assert worker_resources(cfg, [{"CPU": 2.0}], 4) == (0.5, 0.0)
    # shares fit on one node and one GPU: 3 nodes x 16 CPUs, 4 actors -> 8 CPUs (not 12); 2 GPUs, 3 actors -> 1/2
    assert worker_resources(cfg, [{"CPU": 16.0}] * 3, 4) == (8.0, 0.0)
    assert worker_resources(cfg, [{"CPU": 16.0, "GPU": 2.0}, {"CPU": 4.0}], 3) == (5.0, 0.5)
    cfg = cfg.override("evaluator.device=cpu")
    assert worker_resources(cfg, [{"CPU": 16.0, "GPU": 4.0}], 2) == (8.0, 0.0)
    cfg = cfg.override("ray.num_cpus_per_worker=3", "ray.num_gpus_per_worker=0.5")
    assert worker_resources(cfg, [{"CPU": 16.0, "GPU": 4.0}], 2) == (3.0, 0.5)
