"""One run-loop schedule, several self-play backends (`specmcts.training.backends`): who plays a chunk does not change
what is played, and a dead local worker costs its chunks, not the run. The Ray backend's tests are in
test_distributed.py (they need a Ray cluster)."""
from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

from specmcts.training.backends import Chunk, InProcess
from specmcts.training.local import LocalProcesses
from specmcts.config import Config, load_config
from specmcts.training.loop import RunLoop, make_backend, run_loop
from tests.helpers import toy_run

CONFIG = toy_run(
    name="backends5", seed=11, selfplay={"concurrent": 4},
    run={"mode": "generations", "generations": 2, "games_per_generation": 8, "chunk_games": 2, "workers": 2,
         "train_samples_per_sample": 2.0, "minutes": 12.0})


def config(**sections) -> Config:
    overrides = [f"{section}.{k}={v}" for sections_ in (CONFIG, sections)
                 for section, values in sections_.items() if isinstance(values, dict) for k, v in values.items()]
    return load_config(None, overrides + [f"seed={CONFIG['seed']}"])


def shards(run) -> dict[str, dict]:
    out = {}
    for p in sorted((run / "data").glob("*.npz")):
        with np.load(p) as z:
            out[p.name] = {k: z[k] for k in ("features", "policy", "value", "model_id")}
    return out


def start_and_wait_for_games(loop: RunLoop, messages: list[str], games: int = 2) -> tuple[threading.Thread, dict]:
    """Run ``loop`` in a thread until ``games`` games are on disk (mid-run); returns the thread and the dict
    its summary will land in."""
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(loop.run()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 180  # the workers' first chunk compiles the kernels if numba has no cache
    while loop.stats.games_total < games:
        assert thread.is_alive() and time.monotonic() < deadline, messages
        time.sleep(0.05)
    return thread, result


def test_make_backend_by_mode_and_name(tmp_path):
    assert isinstance(make_backend("auto", config(), tmp_path, "cpu", print), InProcess)
    assert isinstance(make_backend("auto", config(run={"mode": "async"}), tmp_path, "cpu", print), LocalProcesses)
    assert isinstance(make_backend("processes", config(), tmp_path, "cpu", print), LocalProcesses)
    with pytest.raises(ValueError, match="unknown self-play backend"):
        make_backend("gpu-farm", config(), tmp_path, "cpu", print)


def test_generations_on_local_processes_equal_in_process(tmp_path):
    """The same schedule on two backends: the very shards (named and seeded by generation and chunk) and the
    very net, whether this process or two worker processes play the chunks."""
    here = run_loop(config(), tmp_path / "here", report=lambda _m: None)
    there = run_loop(config(), tmp_path / "there", backend="processes", report=lambda _m: None)
    assert here["stop_reason"] == there["stop_reason"] == "generations"
    assert (here["step"], here["model_id"]) == (there["step"], there["model_id"])
    assert there["processes"]["workers"] == 2 and there["processes"]["chunks_lost"] == 0
    assert sum(there["processes"]["games_by_worker"].values()) == there["games"] == 16
    assert "processes" not in here and "in-process" not in here  # the in-process backend has nothing to add
    a, b = shards(tmp_path / "here"), shards(tmp_path / "there")
    assert list(a) == [f"g{g:05d}-c{c:04d}-0000.npz" for g in range(2) for c in range(4)] == list(b)
    for name in a:
        assert all(np.array_equal(a[name][k], b[name][k]) for k in a[name]), name


def test_a_killed_local_worker_costs_its_chunks_not_the_run(tmp_path):
    """Generations on two local processes; one is killed (-9) mid-generation: its chunks are lost, played
    again by the other (same name, same seed), and the run ends as the undisturbed one does."""
    messages: list[str] = []
    loop = RunLoop(config(), tmp_path / "run", report=messages.append, backend="processes")
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(loop.run()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 180
    while loop.stats.games_total < 2:  # a chunk is on disk, the rest of the first generation is not
        assert thread.is_alive() and time.monotonic() < deadline, messages
        time.sleep(0.05)
    victim = loop.backend.procs[0]
    os.kill(victim.pid, signal.SIGKILL)
    thread.join(timeout=240)
    assert not thread.is_alive(), "the run did not finish after a worker was killed"
    assert result["stop_reason"] == "generations", messages
    assert result["games"] >= 16 and result["generation"] == 2
    alone = run_loop(config(), tmp_path / "alone", report=lambda _m: None)
    assert (alone["step"], alone["model_id"]) == (result["step"], result["model_id"])
    assert list(shards(tmp_path / "run")) == list(shards(tmp_path / "alone"))


def test_every_worker_gone_stops_the_run_with_its_reason(tmp_path):
    """Async on one local process, killed: the run stops (it does not wait out its time budget) and says why."""
    messages: list[str] = []
    loop = RunLoop(config(run={"mode": "async", "workers": 1}), tmp_path / "run", report=messages.append)
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(loop.run()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while loop.backend is None or not loop.backend.procs:
        assert thread.is_alive() and time.monotonic() < deadline, messages
        time.sleep(0.05)
    os.kill(loop.backend.procs[0].pid, signal.SIGKILL)
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert result["stop_reason"] == "self-play workers exited", messages
    assert any("every self-play worker exited" in m for m in messages), messages


def test_in_process_backend_plays_what_it_is_given(tmp_path):
    """The interface in miniature: free slot, submit, collect returns the summary, lost is empty."""
    from specmcts.training.trainer import CheckpointStore, Trainer
    from specmcts.training.replay import ReplayBuffer

    cfg = config()
    for sub in ("data", "sgf", "models"):
        (tmp_path / sub).mkdir()
    trainer = Trainer.create(cfg, tmp_path, ReplayBuffer(tmp_path / "data", 5, cfg.train), "cpu", report=lambda _m: None)
    path = trainer.save({})
    store = CheckpointStore(tmp_path)
    store.write_pointer(path, trainer.model_id, 0)

    class Loop:
        pass

    loop = Loop()
    loop.store = store
    backend = InProcess(cfg, tmp_path, "cpu")
    backend.start(loop)
    assert backend.free() == [0] and not backend.busy()
    backend.submit(0, Chunk("x00001-w00", 2, 5))
    assert backend.free() == [] and backend.busy()
    done, lost = backend.collect(0.0)
    assert [d["games"] for d in done] == [2] and lost == [] and not backend.busy()
    assert (tmp_path / "data" / "x00001-w00-0000.npz").is_file()
    assert backend.stop() == []


# -- one evaluator process for all the workers -----------------------------------------------------------------


def test_generations_with_one_shared_evaluator_process(tmp_path):
    """Two workers and one evaluator process (evaluator.shared=on): the run plays the same named chunks as
    in-process; the evaluator process served them (its NN cache answered the repeated positions) and
    followed the net the run published after the first generation."""
    summary = run_loop(config(evaluator={"shared": "on"}), tmp_path / "shared", backend="processes",
                       report=lambda _m: None)
    assert summary["stop_reason"] == "generations" and summary["games"] == 16
    info = summary["processes"]
    assert info["shared_evaluator"] and info["chunks_lost"] == 0
    served = info["evaluator"]
    assert served["requests"] > 0 and served["rows"] == served["forwarded"] + served["cache_hits"] + served["shared_rows"]
    assert served["cache_hits"] > 0 and served["batches"] <= served["requests"]
    made = shards(tmp_path / "shared")
    assert list(made) == [f"g{g:05d}-c{c:04d}-0000.npz" for g in range(2) for c in range(4)]
    ids = {str(made[name]["model_id"]) for name in made if name.startswith("g00001")}
    first = {str(made[name]["model_id"]) for name in made if name.startswith("g00000")}
    assert ids.isdisjoint(first)  # generation 1 was played by the net trained after generation 0


def test_the_shared_evaluator_dying_stops_the_run_and_keeps_what_finished(tmp_path):
    """kill -9 of the evaluator process: the workers cannot go on, the run stops at once with a one-line
    reason, and every chunk finished before is on disk."""
    messages: list[str] = []
    cfg = config(evaluator={"shared": "on"}, run={"generations": 50, "minutes": 5.0})
    loop = RunLoop(cfg, tmp_path / "run", report=messages.append, backend="processes")
    thread, result = start_and_wait_for_games(loop, messages)
    finished = loop.stats.games_total
    os.kill(loop.backend.server.pid, signal.SIGKILL)
    thread.join(timeout=120)
    assert not thread.is_alive(), "the run did not stop after its evaluator was killed"
    assert result["stop_reason"] == "shared evaluator failed", messages
    assert any("shared evaluator process exited" in m and "on disk" in m for m in messages), messages
    assert result["games"] >= finished and len(shards(tmp_path / "run")) * 2 >= finished


def test_a_killed_worker_on_the_shared_evaluator_costs_only_its_chunks(tmp_path):
    """kill -9 of one of two workers on one shared evaluator (its request may be in flight): the evaluator
    and the other worker go on, the lost chunks are played again, and every named chunk ends on disk."""
    messages: list[str] = []
    loop = RunLoop(config(evaluator={"shared": "on"}), tmp_path / "run", report=messages.append, backend="processes")
    thread, result = start_and_wait_for_games(loop, messages)
    os.kill(loop.backend.procs[0].pid, signal.SIGKILL)
    thread.join(timeout=240)
    assert not thread.is_alive(), "the run did not finish after a worker was killed"
    assert result["stop_reason"] == "generations" and result["games"] >= 16, messages
    assert result["processes"]["shared_evaluator"] and result["processes"]["evaluator"]["requests"] > 0
    assert list(shards(tmp_path / "run")) == [f"g{g:05d}-c{c:04d}-0000.npz" for g in range(2) for c in range(4)]


def test_a_writer_that_dies_mid_message_blocks_neither_the_driver_nor_the_others():
    """Each process writes to the driver through a pipe of its own (local.Inbox): a process killed in the
    middle of a message leaves a frame that never ends. The driver reads it as that pipe's end, and the
    other processes' messages still arrive (a shared multiprocessing.Queue's write lock, held by the killed
    writer, used to block them all: a run with a killed worker could hang)."""
    import multiprocessing
    import queue
    import struct

    from specmcts.training.local import Inbox

    inbox = Inbox(multiprocessing.get_context("spawn"))
    dying, alive = inbox.outbox(), inbox.outbox()
    os.write(dying.conn.fileno(), struct.pack("!i", 1000) + b"half a message")  # a frame cut short
    dying.conn.close()  # its process is gone
    alive.put(("chunk", 1, "s", {"games": 2}))
    got = [inbox.get(timeout=5.0) for _ in range(1)]
    assert got == [("chunk", 1, "s", {"games": 2})]
    with pytest.raises(queue.Empty):
        inbox.get(timeout=0.5)
    assert len(inbox.readers) == 1  # the dead writer's pipe is dropped, the live one kept


def test_a_chunk_plays_the_same_whatever_its_process_played_before(tmp_path):
    """Which chunks a worker plays is timing's choice, so a chunk must not depend on them: an evaluation left in
    the NN cache by an earlier chunk came from another batch, and a CPU net's rows depend in their last bits on
    the batch they are in. Here an evaluator whose rows depend on the batch's size: chunk b after chunk a in one
    process plays what chunk b alone does."""
    from specmcts.engine.evaluator import HashEvaluator
    from specmcts.engine.nncache import NNCache
    from specmcts.training.backends import play_chunk

    class BatchDependent(HashEvaluator):
        def _forward(self, n: int) -> None:
            super()._forward(n)
            self._value[:n] = 0.8 * self._value[:n] + 0.2 * np.float32(np.sin(n))

    cfg = config()

    def fresh():
        return BatchDependent(5, seed=3, max_batch=cfg.evaluator.max_batch), NNCache.for_board(cfg.evaluator.cache_entries, 5)

    evaluator, cache = fresh()
    play_chunk(cfg, tmp_path / "after", evaluator, cache, "a", 2, 101)
    play_chunk(cfg, tmp_path / "after", evaluator, cache, "b", 2, 202)
    play_chunk(cfg, tmp_path / "alone", *fresh(), "b", 2, 202)
    after, alone = shards(tmp_path / "after"), shards(tmp_path / "alone")
    assert all(np.array_equal(after["b-0000.npz"][k], alone["b-0000.npz"][k]) for k in alone["b-0000.npz"])
