"""`specmcts run --ray` on a real two-node Ray cluster on this machine (``ray.cluster_utils.Cluster``: a head
and a second node, one CPU each, separate raylets): one self-play actor lands on each node, the run
completes, and losing a node's worker (its process killed, or the whole node removed) costs that worker's
chunks, not the run.

CI installs the ray extra; without Ray these tests fail and say so."""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from specmcts.config import load_config
from specmcts.training.loop import RunLoop

CONFIG = [
    "seed=5", "game.board=5", "net.blocks=1", "net.channels=16", "net.value_hidden=16", "search.sims=16",
    "search.leaves_per_tree=8", "evaluator.device=cpu", "evaluator.max_batch=128", "evaluator.cache_entries=16384",
    "evaluator.torch_threads=1", "selfplay.concurrent=4", "train.batch_size=32", "train.min_samples=64",
    "train.checkpoint_every=5", "train.log_every=5", "run.mode=generations", "run.generations=3",
    "run.games_per_generation=8", "run.chunk_games=2", "run.workers=2", "run.train_samples_per_sample=2.0",
    "run.minutes=12", "ray.num_cpus_per_worker=1", "ray.address=auto",
]


@pytest.fixture
def two_nodes():
    try:
        import ray
        from ray.cluster_utils import Cluster
    except ImportError:
        pytest.fail("Ray is not installed: pip install -e '.[dev,ray]' (CI installs the ray extra)")
    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    second = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    yield ray, cluster, second
    ray.shutdown()
    cluster.shutdown()


def start_run(tmp_path, messages):
    loop = RunLoop(load_config(None, CONFIG), tmp_path / "run", report=messages.append, backend="ray")
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(loop.run()), daemon=True)
    thread.start()
    return loop, thread, result


def wait_for_games(loop, thread, messages, games: int = 2) -> None:
    deadline = time.monotonic() + 180
    while loop.stats.games_total < games:
        assert thread.is_alive() and time.monotonic() < deadline, messages
        time.sleep(0.05)


def wait_for_workers_on(loop, thread, messages, nodes: set[str]) -> None:
    """Until a worker on each of ``nodes`` has reported in (an actor's process can start well after the other
    worker's first games on a loaded machine)."""
    deadline = time.monotonic() + 180
    while {s.info["node_id"] for s in loop.backend.pool.slots if s.info} != nodes:
        assert thread.is_alive() and time.monotonic() < deadline, messages
        time.sleep(0.05)


def worker_on(loop, node_id: str) -> int:
    slots = loop.backend.pool.slots
    return next(s.index for s in slots if s.info and s.info["node_id"] == node_id)


def test_one_worker_per_node_and_a_killed_worker_process_is_respawned(tmp_path, two_nodes):
    ray, cluster, second = two_nodes
    messages: list[str] = []
    loop, thread, result = start_run(tmp_path, messages)
    wait_for_games(loop, thread, messages)
    wait_for_workers_on(loop, thread, messages, {cluster.head_node.node_id, second.node_id})  # one per node
    slots = loop.backend.pool.slots
    victim = slots[worker_on(loop, second.node_id)]
    os.kill(victim.info["pid"], signal.SIGKILL)  # the worker's process on the second node dies
    thread.join(timeout=300)
    assert not thread.is_alive(), messages
    assert result["stop_reason"] == "generations" and result["games"] == 24, messages
    assert result["ray"]["nodes"] == 2 and result["ray"]["restarts"] == 1, result["ray"]
    # the actors' CPU is in the compute totals (they are not this process's children)
    assert loop.stats.remote_cpu_s > 0 and result["totals"]["cpu_hours"] * 3600 > loop.stats.remote_cpu_s
    assert any(f"worker {victim.index} died" in m for m in messages), messages
    shards = sorted(p.name for p in (tmp_path / "run" / "data").glob("*.npz"))
    assert shards == [f"g{g:05d}-c{c:04d}-0000.npz" for g in range(3) for c in range(4)]


def test_losing_a_node_leaves_its_chunks_to_the_other(tmp_path, two_nodes):
    """The second node is removed mid-run: its worker cannot come back (no node has a free CPU), so the
    surviving worker plays every remaining chunk and the run completes."""
    ray, cluster, second = two_nodes
    messages: list[str] = []
    loop, thread, result = start_run(tmp_path, messages)
    wait_for_games(loop, thread, messages)
    wait_for_workers_on(loop, thread, messages, {cluster.head_node.node_id, second.node_id})
    lost = worker_on(loop, second.node_id)
    cluster.remove_node(second)
    thread.join(timeout=300)
    assert not thread.is_alive(), messages
    assert result["stop_reason"] == "generations" and result["games"] == 24, messages
    assert any(f"worker {lost} died" in m for m in messages), messages
    assert result["ray"]["games_by_worker"][f"w{1 - lost:02d}"] > result["ray"]["games_by_worker"][f"w{lost:02d}"]


def test_the_trainer_as_an_actor_trains_the_same_net(tmp_path, two_nodes):
    """ray.trainer=actor: the trainer and its replay buffer run in a Ray actor, on the driver's node (the run
    directory is there), the self-play actors on both nodes; the generations run ends with the very net and
    checkpoints of the same run with the trainer in the driver (training is seeded and deterministic)."""
    ray, cluster, second = two_nodes
    messages: list[str] = []
    cfg = load_config(None, CONFIG + ["run.generations=2", "ray.trainer=actor", "ray.trainer_cpus=0"])
    loop = RunLoop(cfg, tmp_path / "actor", report=messages.append, backend="ray")
    remote = loop.run()
    assert remote["stop_reason"] == "generations" and remote["ray"]["nodes"] == 2, messages
    assert any("the trainer is an actor" in m for m in messages), messages
    assert loop.trainer.remote_cpu_s > 0  # counted in run.totals like the driver's own CPU
    driver = RunLoop(load_config(None, CONFIG + ["run.generations=2"]), tmp_path / "driver",
                     report=lambda _m: None, backend="ray").run()
    assert (remote["step"], remote["model_id"]) == (driver["step"], driver["model_id"]) and remote["step"] > 0
    assert sorted(p.name for p in (tmp_path / "actor" / "models").glob("model_*.pt")) == \
        sorted(p.name for p in (tmp_path / "driver" / "models").glob("model_*.pt"))
    tags = tb_tags(tmp_path / "actor" / "tb")
    assert {"train/loss", "replay/total_samples", "compute/games"} <= tags  # the actor's points, written here


def tb_tags(directory) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set()
    for events in directory.glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events))
        acc.Reload()
        tags |= set(acc.Tags()["scalars"])
    return tags
