"""The batch kernels run serially or in parallel over trees; both must give the same trees."""
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
