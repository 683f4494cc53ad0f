"""The batch kernels run serially or in parallel over trees; both must give the same trees."""
import json
import os
import subprocess
import sys

import numba
import numpy as np

from games.go import GoRules, GoState
from native import board as board_kernels
from specmcts.config import SearchConfig
from specmcts.engine.evaluator import HashEvaluator
from specmcts.engine.nncache import NNCache
from specmcts.engine.search import Search


def roots(count, size=9, seed=7):
    board_kernels.seed_kernels(seed)
    out = []
    for i in range(count):
        s = GoState(GoRules(size))
        for _ in range(5 + i % 20):
            s.play_random()
        out.append(s)
    return out


def run(threads, positions, sims=96):
    rules = positions[0].rules
    cfg = SearchConfig(sims=sims, leaves_per_tree=8, threads=threads, parallel_min_trees=4)
    search = Search(rules, cfg, HashEvaluator(rules.size, seed=2, max_batch=200), NNCache(1 << 12, 82, 163),
                    num_trees=len(positions))
    for t, p in enumerate(positions):
        search.reset(t, p)
    search.run(np.arange(len(positions)), sims)
    return search


def test_parallel_and_serial_kernels_build_identical_trees():
    assert numba.config.NUMBA_NUM_THREADS >= 2, "needs numba with 2 or more threads (a machine with 2+ cores)"
    positions = roots(32)
    serial, parallel = run(1, positions), run(2, positions)
    assert serial.stats.parallel_steps == 0 and parallel.stats.parallel_steps == parallel.stats.steps > 0
    tr_s, tr_p = serial.trees, parallel.trees
    np.testing.assert_array_equal(tr_s.node_count, tr_p.node_count)
    for name in ("visits", "value_sum", "parent", "action", "status", "children", "prior"):
        np.testing.assert_array_equal(getattr(tr_s, name), getattr(tr_p, name), err_msg=name)
    assert not tr_p.virtual_loss.any()
    assert serial.stats.leaves == parallel.stats.leaves


class Dispatched:
    """``native.calls.Compiled``'s interface, calling through numba's dispatcher (types checked every call)."""

    def __init__(self, compiled):
        self.kernel = compiled.kernel

    def call(self, key, *args):
        return self.kernel(*args)


def test_kernels_called_without_dispatch_build_the_trees_the_dispatcher_builds():
    """The search calls its batch kernels' compiled versions directly (``native.calls``), and those it calls
    per move or stage (visit counts, stage events, the Gumbel root's pick and target): the same trees and answers
    as calls through numba's dispatcher, one compiled version per key, found once."""
    positions = roots(6)
    direct = run(1, positions)
    assert all(len(c._entry) <= 2 for c in (*direct._prepare.values(), *direct._complete.values()))
    assert len(direct._prepare[False]._entry) == 1 and len(direct._wanted._entry) == 1
    rules = positions[0].rules
    cfg = SearchConfig(sims=96, leaves_per_tree=8, threads=1, parallel_min_trees=4)
    dispatched = Search(rules, cfg, HashEvaluator(rules.size, seed=2, max_batch=200), NNCache(1 << 12, 82, 163),
                        num_trees=len(positions))
    dispatched._prepare = {k: Dispatched(v) for k, v in dispatched._prepare.items()}
    dispatched._complete = {k: Dispatched(v) for k, v in dispatched._complete.items()}
    dispatched._wanted = Dispatched(dispatched._wanted)
    dispatched._tree_calls = {k: Dispatched(v) for k, v in dispatched._tree_calls.items()}
    for t, p in enumerate(positions):
        dispatched.reset(t, p)
    dispatched.run(np.arange(len(positions)), 96)
    for name in ("node_count", "visits", "value_sum", "parent", "action", "status", "children", "prior"):
        np.testing.assert_array_equal(getattr(direct.trees, name), getattr(dispatched.trees, name), err_msg=name)
    assert direct.stats.leaves == dispatched.stats.leaves > 0
    for t in range(len(positions)):
        np.testing.assert_array_equal(direct.visit_counts(t), dispatched.visit_counts(t))
        slots, events = np.array([t], np.int32), np.zeros(len(positions), np.int64)
        np.testing.assert_array_equal(np.concatenate(direct.stage_events(slots, events, slots, events)),
                                      np.concatenate(dispatched.stage_events(slots, events, slots, events)))
        assert direct.gumbel_action(t) == dispatched.gumbel_action(t)
        np.testing.assert_array_equal(direct.improved_policy(t), dispatched.improved_policy(t))


def test_the_batch_cost_benchmark_runs_the_trees_over_threads():
    """``specmcts bench search --batch-cost --threads 2``: the same batches over two numba threads, each point
    with how many threads worked on average (a ratio of CPU times; its value is a measurement, not checked).
    In a process of its own: the benchmark pins numba's thread count when it loads."""
    env = dict(os.environ, NUMBA_NUM_THREADS="2")
    done = subprocess.run([sys.executable, "-m", "specmcts", "bench", "search", "--sizes", "5", "--sims", "16",
                           "--trees", "4", "--repeats", "1", "--batch-cost", "--threads", "2", "--json"],
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    (result,) = json.loads(done.stdout)["batch_cost"]
    assert result["threads"] == 2 and len(result["points"]) > 1
    assert all(p["busy_threads"] > 0 and p["leaves_per_batch"] > 0 for p in result["points"])


def test_the_batch_cost_benchmark_refuses_more_threads_than_numba_has():
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_NUM_THREADS"}
    done = subprocess.run([sys.executable, "-m", "specmcts", "bench", "search", "--sizes", "5", "--batch-cost",
                           "--threads", "2"], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 2 and "NUMBA_NUM_THREADS=2" in done.stderr.strip().splitlines()[-1]
