"""The analytical pipeline model (specmcts/bench/spec_model.py) against limits and against the real pipeline."""
import numpy as np
import pytest

from specmcts.bench.spec_model import j_distribution_from_p, simulate
from specmcts.config import Config
from specmcts.engine.evaluator import HashEvaluator
from specmcts.engine.nncache import NNCache
from specmcts.training.selfplay import SelfPlay
from specmcts.engine.speculation import correct_from_stage


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_perfect_prediction_gives_k_plus_one(k):
    dist = np.zeros(k + 2)
    dist[1] = 1.0
    assert simulate(k, dist, moves=2000)["speedup"] == pytest.approx(k + 1, rel=1e-2)  # a start-up transient over 2000 moves


@pytest.mark.parametrize("k", [1, 3])
def test_never_right_gives_no_speedup(k):
    dist = np.zeros(k + 2)
    dist[k + 1] = 1.0
    assert simulate(k, dist, moves=2000)["speedup"] == pytest.approx(1.0)


def test_speedup_grows_with_accuracy():
    speedups = [simulate(3, j_distribution_from_p([p] * 3), moves=20000)["speedup"] for p in (0.3, 0.6, 0.9)]
    assert speedups[0] < speedups[1] < speedups[2] <= 4.0


def test_j_distribution_sums_to_one():
    dist = j_distribution_from_p([0.5, 0.7, 0.9])
    assert dist[0] == 0 and dist[1:].sum() == pytest.approx(1.0)


def test_correct_from_stage():
    # (stage, guess) pairs; stage 2 was passed together with 3, so it takes the guess made at 3
    assert correct_from_stage([(1, 5), (3, 7), (4, 7)], action=7, k=4) == 2
    assert correct_from_stage([(1, 7), (2, 7)], action=7, k=2) == 1
    assert correct_from_stage([(1, 7), (2, 3)], action=7, k=2) == 3  # never: the last guess was wrong
    assert correct_from_stage([(2, 7)], action=7, k=2) == 1


@pytest.mark.parametrize("k, stages", [(1, 0), (3, 0), (2, 6), (4, 12)])
def test_model_predicts_the_measured_pipeline(k, stages):
    """Measured latency in evaluator batches (deterministic) against the model fed the measured J, for the
    paper's k + 1 stages and for finer ones (speculation.stages)."""
    steps = {}
    stats = None
    for kk in (0, k):
        cfg = Config().override("search.sims=256", f"speculation.k={kk}", f"speculation.stages={stages if kk else 0}",
                                "speculation.sure=false",  # the model knows no sure moves
                                "selfplay.games=1", "selfplay.concurrent=1", "selfplay.max_moves=50")
        sp = SelfPlay(cfg, HashEvaluator(9, seed=5, max_batch=64), NNCache(1 << 14, 82, 163), tensorboard=False)
        steps[kk] = sp.run()["mean_move_steps"]
        stats = sp.pipeline.stats
    assert len(stats.predictions) == (stages or k + 1)
    measured = steps[0] / steps[k]
    dist = np.concatenate([[0.0], stats.correct_from[1:] / stats.correct_from[1:].sum()])
    predicted = simulate(k, dist, moves=50000, stages=stages)["speedup"]
    assert measured > 1.0
    assert predicted == pytest.approx(measured, rel=0.15)


@pytest.mark.parametrize("k, stages", [(1, 4), (3, 8), (4, 16)])
def test_finer_stages_with_perfect_prediction(k, stages):
    """Perfect predictions, S stages, depth k: a level starts one stage after its parent, so k + 1 levels
    overlap and the speedup is at least k + 1; never more than S (one commit per stage)."""
    dist = np.zeros(stages + 1)
    dist[1] = 1.0
    speedup = simulate(k, dist, moves=2000, stages=stages)["speedup"]
    assert k + 1 - 0.05 <= speedup <= stages + 1e-9


@pytest.mark.parametrize("shape", [(3, 1, 4, 4), (4, 2, 8, 12), (8, 2, 9, 27), (16, 3, 17, 51)],
                         ids=lambda s: "k{}-w{}-t{}-s{}".format(*s))
def test_tree_model_replays_the_measured_pipeline(shape):
    """The tree model (specmcts.bench.spec_model.simulate_tree) fed the run's own move traces predicts its batches per
    move: chains and trees, coarse and fine stages."""
    from specmcts.bench.spec_model import simulate_tree

    k, width, trees, stages = shape
    cfg = Config().override("search.sims=256", f"speculation.k={k}", f"speculation.width={width}",
                            f"speculation.rows={trees * 8}", f"speculation.stages={stages}", "selfplay.games=2",
                            "selfplay.concurrent=1", "selfplay.max_moves=40")
    sp = SelfPlay(cfg, HashEvaluator(9, seed=5, max_batch=trees * 8), NNCache(1 << 14, 82, 163), tensorboard=False)
    sp.pipeline.traces = []
    measured = sp.run()["mean_move_steps"]
    traces = sp.pipeline.traces
    assert len(traces) == 80 and sum(t["first"] for t in traces) == 2
    assert all(t["sims"] == 256 and t["seen"] for t in traces)
    model = simulate_tree(traces, k, width, trees, stages, leaves=8, moves=len(traces))
    assert model["batches_per_move"] == pytest.approx(measured, rel=0.1)
