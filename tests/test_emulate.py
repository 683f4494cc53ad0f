"""The emulated device (specmcts/engine/emulate.py): the H100 table ships with the package, a replay on the emulated
device plays exactly the games its recording played (at k = 0, at speculation shapes, with two lanes), and a
row the recording never saw is an error, never a silent miss. No wall-clock thresholds: holds are checked
against the table's time only in their order (a hold ends no sooner than the table says)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import tomllib
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch

from specmcts.config import Config, NetConfig
from specmcts.engine.emulate import (DATA_DIR, EmulatedDevice, ForwardCost, MissingRowError, RecordingEvaluator, RowRecord,
                              forward_cost, forward_table)
from specmcts.engine.evaluator import NetEvaluator
from specmcts.engine.network import build_net
from specmcts.engine.nncache import NNCache
from specmcts.training.selfplay import SelfPlay

BOARD = 9
LEAVES = 4
SHAPES = {"k0": (0, 1, 1, 0), "chain2": (2, 1, 3, 0), "tree": (3, 2, 4, 6)}  # k, width, trees, stages


def test_the_h100_table_ships_with_the_package():
    table = forward_table("h100")
    assert Path(DATA_DIR).parent == Path(__import__("specmcts").__file__).parent  # inside the package
    assert table["measured"] == "2026-11-22" and "H100" in table["what"]
    nets = {(r["board"], r["blocks"], r["ch"]) for r in table["rows"] if r["dtype"] == "bf16" and r["mode"] == "cudagraph"}
    assert {(9, 6, 64), (19, 20, 256)} <= nets
    data = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
    assert "data/*.json" in data["tool"]["setuptools"]["package-data"]["specmcts"]  # an installed package has it
    with pytest.raises(ValueError, match="no forward table for device 'tpu'.*h100"):
        forward_table("tpu")


def test_forward_cost_takes_the_nearest_net_and_says_so():
    cost = forward_cost(9, 6, 48)  # the shipped net: the table has 6x64 and 10x128 on 9x9
    assert (cost.board, cost.blocks, cost.channels) == (9, 6, 64)
    assert "no 9x9 6x48" in cost.note and "6x64" in cost.note
    assert forward_cost(9, 6, 64).note == ""
    assert (forward_cost(19, 20, 256).blocks, forward_cost(19, 20, 256).channels) == (20, 256)
    assert forward_cost(19, 2, 32).blocks == 10  # the smaller 19x19 net
    assert cost.ms_at(8) == pytest.approx(0.2215) and cost.ms_at(0) == 0.0
    between = cost.ms_at(np.array([8, 16, 32]))
    assert between[0] <= between[1] <= between[2]  # interpolated in log(rows)
    assert cost.ms_at(4096) == pytest.approx(2 * cost.ms_at(2048))  # saturated: proportional to rows


@lru_cache(maxsize=None)
def _net():
    torch.manual_seed(3)
    return build_net(BOARD, NetConfig(blocks=1, channels=16, value_hidden=16))


def _config(shape: str, overlap: bool = False, seed: int = 5) -> Config:
    k, width, trees, stages = SHAPES[shape]
    return Config().override(
        f"seed={seed}", f"game.board={BOARD}", "search.sims=24", f"search.leaves_per_tree={LEAVES}",
        f"speculation.k={k}", f"speculation.width={width}", f"speculation.rows={trees * LEAVES}",
        f"speculation.stages={stages}", "search.tree_reuse=false", "moves.temperature_moves=3",
        f"search.overlap={overlap}", "selfplay.games=1", "selfplay.concurrent=1", "selfplay.max_moves=10")


def _play(cfg: Config, evaluator, timeline: bool = False):
    sp = SelfPlay(cfg, evaluator, NNCache.for_board(1 << 12, BOARD), out=None, tensorboard=False)
    if timeline:
        sp.search.timeline, sp.pipeline.events = [], []
    sp.run()
    return sp, sorted(sp.records, key=lambda r: r.index)


def assert_same_records(records, reference):
    assert len(records) == len(reference) > 0
    for rec, ref in zip(records, reference):
        assert rec.moves == ref.moves and rec.result == ref.result
        np.testing.assert_array_equal(np.stack(rec.targets), np.stack(ref.targets))
        np.testing.assert_array_equal(np.array(rec.root_values), np.array(ref.root_values))
        np.testing.assert_array_equal(np.stack(rec.features), np.stack(ref.features))


@lru_cache(maxsize=None)
def _recorded(shape: str, overlap: bool = False):
    """(recorder, records) of ``shape``'s recording pass (with ``search.overlap`` as given: it evaluates other
    positions); every shape records into one record."""
    record = _recorded_record()
    recorder = RecordingEvaluator(NetEvaluator(_net(), "cpu", max_batch=4 * LEAVES), record)
    _sp, records = _play(_config(shape, overlap), recorder)
    return recorder, records


@lru_cache(maxsize=None)
def _recorded_record():
    return RowRecord(BOARD * BOARD + 1)


@pytest.mark.parametrize("shape,overlap", [("k0", False), ("chain2", False), ("tree", False), ("tree", True)])
def test_a_replay_on_the_emulated_device_plays_the_recorded_games(shape, overlap):
    recorder, recorded = _recorded(shape, overlap)
    _k0_recorder, k0_records = _recorded("k0")
    assert_same_records(recorded, k0_records)  # one record: every shape's recording is k = 0's games
    device = EmulatedDevice.replaying(recorder, forward_cost(BOARD, 1, 16))
    sp, replayed = _play(_config(shape, overlap), device, timeline=True)
    assert_same_records(replayed, recorded)
    log = device.log.batches
    assert len(log) == int(sp.search.stats.batch_rows[1:].sum()) > 0  # one hold per forward pass
    for lane, asked, start, end, rows, hold in log:
        # (a launched batch's end is start + hold: 1 ns for the rounding of that sum)
        assert asked <= start and end - start >= hold - 1e-9 and hold == pytest.approx(device.cost.seconds(rows))
    spans = sorted((start, end) for _l, _a, start, end, _r, _h in log)
    assert all(b[0] >= a[1] for a, b in zip(spans, spans[1:]))  # one device: one batch at a time
    assert {lane for lane, *_ in log} == ({0, 1} if overlap and shape != "k0" else {0})
    if overlap:  # launched, not run in a thread: the search selected while the device computed
        selects = [(a, b) for what, _lane, a, b in sp.search.timeline if what == "select"]
        assert any(start < a and b < end for a, b in selects for _l, _a, start, end, _r, _h in log)
    # end = start + hold on a launch: end - start can round below hold by an ulp of the clock (as above)
    assert device.log.busy_s() >= device.log.table_s() - 1e-9 * len(log) > 0
    kinds = {kind for _t, kind, _g, _m in sp.pipeline.events}
    assert len(sp.pipeline.events) == len(replayed[0].moves) - 1  # the last move ends the game
    assert kinds == ({"rollback"} if shape == "k0" else kinds) and ("commit" in kinds or shape == "k0")
    assert {what for what, *_ in sp.search.timeline} == {"step", "select", "backup"}


def test_a_row_missing_from_the_record_raises():
    recorder, _ = _recorded("k0")
    device = EmulatedDevice.replaying(recorder, forward_cost(BOARD, 1, 16))
    seen = np.frombuffer(next(iter(recorder.record.rows)), np.uint8).reshape(device.inputs.shape[1:])
    device.inputs[:2] = seen
    device.evaluate(1)  # a recorded row is answered
    device.inputs[1, 0, 4, 4] = 7  # no position has this plane value: never recorded
    with pytest.raises(MissingRowError, match="row 1 of a batch of 2 is not in the record"):
        device.evaluate(2)
    empty = EmulatedDevice(RowRecord(BOARD * BOARD + 1), forward_cost(BOARD, 1, 16), BOARD, 8)
    with pytest.raises(MissingRowError):
        empty.evaluate(1)
    # another game than the one recorded asks for positions the record lacks
    with pytest.raises(MissingRowError):
        _play(_config("k0", seed=99), EmulatedDevice.replaying(recorder, forward_cost(BOARD, 1, 16)))


def test_the_recorder_answers_a_row_it_has_seen_from_its_record():
    net = build_net(BOARD, NetConfig(blocks=1, channels=16, value_hidden=16))
    recorder = RecordingEvaluator(NetEvaluator(net, "cpu", max_batch=4))
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 2, size=(3,) + recorder.inputs.shape[1:], dtype=np.uint8)
    recorder.inputs[:2] = rows[:2]
    first = [a.copy() for a in recorder.forward(2)]
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.5)  # the net now answers differently
    recorder.inputs[:2] = rows[[1, 2]]
    policy, value, score = recorder.forward(2)
    np.testing.assert_array_equal(policy[0], first[0][1])  # row 1 seen before: the recorded answer
    np.testing.assert_array_equal(value[0], first[1][1])
    np.testing.assert_array_equal(score[0], first[2][1])
    assert not np.array_equal(policy[1], first[0][1]) and len(recorder.record) == 3


def test_a_launched_batch_computes_while_the_caller_goes_on():
    """As on a CUDA stream: ``launch`` returns at once, ``result()`` waits for the batch's end; a batch
    launched while another is on the device starts when that one ends (one device, launches in order)."""
    cost = ForwardCost("h100", BOARD, 1, 16, "bf16", "cudagraph", "", np.array([1.0, 2.0]), np.array([20.0, 20.0]))
    record = RowRecord(BOARD * BOARD + 1)
    first = EmulatedDevice(record, cost, BOARD, 4)
    second = first.twin()
    record.keep([first.inputs[0].tobytes()], np.full((1, BOARD * BOARD + 1), 0.5, np.float32),
                np.full(1, 0.25, np.float32), np.zeros(1, np.float32))
    assert first.launches and second.launches
    a, b = first.launch(1), second.launch(1)
    assert not first.log.batches  # neither was held yet: launching queues, result() waits
    assert b.start == pytest.approx(a.end) and a.end - a.start == pytest.approx(0.020)
    out = b.result()
    assert time.perf_counter() >= b.end and out.value[0] == 0.25 and out.policy.shape == (1, BOARD * BOARD + 1)
    assert a.result().value[0] == 0.25 and len(first.log.batches) == 2
    with pytest.raises(MissingRowError):
        first.inputs[0, 0, 0, 0] = 9
        first.launch(1).result()


@pytest.mark.parametrize("wait", ["spin", "sleep"])
def test_a_hold_lets_other_threads_run(wait):
    slow = ForwardCost("h100", BOARD, 1, 16, "bf16", "cudagraph", "", np.array([1.0, 2.0]), np.array([30.0, 30.0]))
    record = RowRecord(BOARD * BOARD + 1)
    device = EmulatedDevice(record, slow, BOARD, 4, wait=wait)
    record.keep([device.inputs[0].tobytes()], np.zeros((1, BOARD * BOARD + 1), np.float32), np.zeros(1, np.float32),
                np.zeros(1, np.float32))
    ticks, stop = [0], threading.Event()

    def spin():
        while not stop.is_set():
            ticks[0] += 1

    other = threading.Thread(target=spin)
    other.start()
    try:
        before = ticks[0]
        device.evaluate(1)
        during = ticks[0] - before
    finally:
        stop.set()
        other.join()
    assert during > 0  # the GIL was released while the batch was held
    _lane, _asked, start, end, _rows, hold = device.log.batches[0]
    assert end - start >= hold == pytest.approx(0.030)


def test_a_device_with_two_lanes_waits_asleep():
    """auto: one lane spins (CUDA's default where cores are spare), two lanes (search.overlap) sleep so the
    waiting lane leaves the core to the selecting one."""
    recorder, _ = _recorded("k0")
    device = EmulatedDevice.replaying(recorder, forward_cost(BOARD, 1, 16))
    assert device.log.lanes == 1
    twin = device.twin()
    assert twin.log is device.log and twin.lane == 1 and device.log.lanes == 2 and twin.record is device.record
    with pytest.raises(ValueError, match="wait must be"):
        EmulatedDevice.replaying(recorder, forward_cost(BOARD, 1, 16), wait="poll")


def test_the_speculation_benchmark_measures_throughput_on_the_emulated_device(tmp_path):
    """``specmcts bench speculation --emulate h100 --throughput G``: every row recorded, then replayed on the
    emulated device; the replays play the recorded games, with and without ``search.overlap`` (two batches
    in flight), every row's games equal k = 0's, and ``auto`` is the plan ``--speculate auto`` makes from
    the device's table. ``--set`` applies to every run (here: the batch kernels on two threads, parallel over
    trees from two trees on)."""
    out = tmp_path / "rows.json"
    # a process of its own, as a user runs it: the benchmark pins its numba threads when it is imported
    subprocess.run([sys.executable, "-m", "specmcts", "bench", "speculation", "--nets", "5x5-2x32", "--sims", "16",
                    "--max-moves", "4", "--k", "0", "1", "--cache", "on", "--emulate", "h100", "--throughput", "2",
                    "--overlap", "both", "--repeats", "1", "--set", "search.threads=2", "--set",
                    "search.parallel_min_trees=2", "--json", str(out)],
                   check=True, capture_output=True, timeout=600, env=dict(os.environ, NUMBA_NUM_THREADS="2"))
    result = json.loads(out.read_text())
    assert result["settings"] == ["search.threads=2", "search.parallel_min_trees=2"]  # --set: every run, and said
    rows = result["throughput"]
    assert [(r["k"], r["overlap"]) for r in rows][:4] == [("0", False), ("0", True), ("1", False), ("1", True)]
    assert rows[-1]["k"].startswith("auto=") and rows[-1]["overlap"]
    assert all(r["replays_identical"] and r["identical_to_k0"] for r in rows)
    assert all(r["device"].startswith("H100") or "h100" in r["device"].lower() for r in rows)


def test_the_speculation_benchmark_refuses_more_threads_than_numba_has():
    """The benchmark pins numba to one thread unless NUMBA_NUM_THREADS says otherwise: ``--set search.threads=2``
    beyond it is a usage error that says what to do, not a setting silently capped to one thread."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_NUM_THREADS"}
    done = subprocess.run([sys.executable, "-m", "specmcts", "bench", "speculation", "--nets", "5x5-2x32", "--sims", "8",
                           "--k", "0", "--set", "search.threads=2"], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 2 and "NUMBA_NUM_THREADS=2" in done.stderr.strip().splitlines()[-1]


def test_a_benchmark_plays_a_kata_net_on_another_board():
    """``--model PATH@N``: the speculation benchmark plays a kata-heads net on N x N, and the emulated
    device's table is looked up for that board (the shipped 9x9 net on 19x19: the 19x19 row stands in)."""
    from specmcts.bench.spec_runs import batch_cost, board_of, checkpoint_spec, label, make_evaluator

    assert checkpoint_spec("runs/a@b/net.pt@19") == ("runs/a@b/net.pt", 19)
    assert checkpoint_spec("shipped") == ("shipped", None)
    assert board_of("shipped") == 9 and board_of("shipped@19") == 19 and label("shipped@19") == "shipped@19"
    assert make_evaluator("net", "shipped@13", "cpu", 8, 0).board_size == 13
    assert batch_cost("shipped@19").board == 19
