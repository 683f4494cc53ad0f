"""Tree reuse: the played move's subtree becomes the next search's tree, statistics intact."""
import numpy as np
import pytest

from games.go import GoRules, GoState
from native import tree as kernels
from specmcts.config import Config
from specmcts.engine.evaluator import HashEvaluator
from specmcts.engine.nncache import NNCache
from specmcts.engine.search import Search
from specmcts.training.selfplay import SelfPlay


def make_search(sims=200, trees=2):
    rules = GoRules(9)
    cfg = Config().override(f"search.sims={sims}")
    return rules, Search(rules, cfg.search, HashEvaluator(9, seed=3, max_batch=64), NNCache(0, 82, 163), num_trees=trees)


def test_reused_subtree_keeps_its_statistics():
    rules, search = make_search()
    state = GoState(rules)
    search.reset(0, state)
    search.run([0], 200)
    counts = search.visit_counts(0)
    action = int(np.argmax(counts))
    child = int(search.trees.children[0, kernels.ROOT, action])
    grandchildren = search.trees.children[0, child]
    expected = np.where(grandchildren >= 0, search.trees.visits[0, np.maximum(grandchildren, 0)], 0)

    after = state.copy().play(action)
    assert search.reuse(0, action, 1, after)
    tr = search.trees
    assert tr.visits[1, kernels.ROOT] == tr.visits[0, child]
    assert tr.value_sum[1, kernels.ROOT] == tr.value_sum[0, child]
    np.testing.assert_array_equal(search.visit_counts(1), expected)
    np.testing.assert_array_equal(tr.prior[1, kernels.ROOT], tr.prior[0, child])
    # every copied node's parent link points back to a node whose child it is
    n = tr.node_count[1]
    assert n == tr.visits[0, child]  # one node per simulation through that child
    for node in range(1, n):
        assert tr.children[1, tr.parent[1, node], tr.action[1, node]] == node


def test_reused_search_completes_to_the_same_budget():
    rules, search = make_search()
    state = GoState(rules)
    search.reset(0, state)
    search.run([0], 200)
    action = int(np.argmax(search.visit_counts(0)))
    reused_visits = int(search.trees.visits[0, search.trees.children[0, kernels.ROOT, action]])
    after = state.copy().play(action)
    search.reuse(0, action, 1, after)
    leaves_before = search.stats.leaves
    search.run([1], 200)
    assert search.visit_counts(1).sum() == 200
    assert search.stats.leaves - leaves_before == 200 - (reused_visits - 1)
    assert not search.trees.virtual_loss.any()


def test_unexpanded_child_falls_back_to_a_fresh_tree():
    rules, search = make_search(sims=4)
    state = GoState(rules)
    search.reset(0, state)
    search.run([0], 4)
    counts = search.visit_counts(0)
    unvisited = int(np.flatnonzero((counts == 0) & state.legal_mask())[0])
    assert not search.reuse(0, unvisited, 1, state.copy().play(unvisited))
    assert search.trees.node_count[1] == 1 and search.trees.status[1, kernels.ROOT] == kernels.UNEXPANDED


def test_selfplay_with_tree_reuse_needs_fewer_batches_per_move():
    results = {}
    for reuse in (False, True):
        cfg = Config().override("search.sims=96", f"search.tree_reuse={reuse}", "selfplay.games=2",
                                "selfplay.concurrent=2", "selfplay.max_moves=30")
        sp = SelfPlay(cfg, HashEvaluator(9, seed=1, max_batch=64), NNCache(0, 82, 163), tensorboard=False)
        summary = sp.run()
        for rec in sp.records:
            for target in rec.targets:
                assert abs(float(target.sum()) - 1.0) < 1e-5
        assert not sp.search.trees.virtual_loss.any()
        results[reuse] = summary["mean_move_steps"]
    assert results[True] < results[False]


@pytest.fixture
def reuse_calls(monkeypatch) -> list:
    """What each ``Search.reuse`` call returned (True: a subtree was kept), in order."""
    calls = []
    original = Search.reuse

    def counted(self, *args, **kwargs):
        calls.append(original(self, *args, **kwargs))
        return calls[-1]

    monkeypatch.setattr(Search, "reuse", counted)
    return calls


def test_tree_reuse_with_speculation(reuse_calls):
    """Tree reuse beside a speculation tree: a commit keeps the speculative tree (already fresh), a
    rollback reuses the played move's subtree. Games finish, targets are distributions, no slot leaks,
    and the reuse path really ran. (Records differ from k = 0 here: a reused tree is not a fresh one.)"""
    calls = reuse_calls
    for width, rows in ((1, 0), (2, 8 * 6)):
        calls.clear()
        cfg = Config().override("search.sims=48", "search.tree_reuse=true", "speculation.k=3",
                                f"speculation.width={width}", f"speculation.rows={rows}", "selfplay.games=3",
                                "selfplay.concurrent=3", "selfplay.max_moves=30")
        sp = SelfPlay(cfg, HashEvaluator(9, seed=1, max_batch=256), NNCache(1 << 12, 82, 163), tensorboard=False)
        summary = sp.run()
        assert summary["games"] == 3 and summary["moves"] == 90
        for rec in sp.records:
            replay = GoState(GoRules(9))
            for action, target in zip(rec.moves, rec.targets):
                assert replay.legal_mask()[action] and abs(float(target.sum()) - 1.0) < 1e-5
                replay.play(action)
        assert any(calls), "a rollback should have reused the played move's subtree"
        assert sp.pipeline.stats.committed > 0
        assert len(sp.pipeline.free_slots) == sp.search.num_trees == len(set(sp.pipeline.free_slots))
        assert not sp.search.trees.virtual_loss.any()


def test_a_reused_root_that_may_not_pass_plays_no_pass(reuse_calls):
    """Self-play's early-pass rule with tree reuse: a kept root loses its pass; a subtree whose search had
    visited that pass (the opponent's reply, with this net) starts afresh. No early pass, no pass in a
    target, no wrong sure move; and with a net that does not love the pass, subtrees are still kept."""
    from tests.helpers import pass_loving_evaluator

    calls = reuse_calls
    for k in (0, 2):
        calls.clear()
        cfg = Config().override("search.sims=32", "search.tree_reuse=true", f"speculation.k={k}",
                                "selfplay.games=2", "selfplay.concurrent=2", "selfplay.max_moves=44",
                                "moves.resign_consecutive=0", "moves.fast_sims=0")
        sp = SelfPlay(cfg, pass_loving_evaluator(9, 256), NNCache(1 << 12, 82, 163), tensorboard=False)
        sp.run()
        assert calls, "the reuse path should have run"
        for rec in sp.records:
            assert 81 not in rec.moves[:40]
            for target in rec.targets[:40]:
                assert target[81] == 0.0 and abs(float(target.sum()) - 1.0) < 1e-5
        if k:
            assert sp.pipeline.stats.sure_wrong == 0
    calls.clear()
    cfg = Config().override("search.sims=32", "search.tree_reuse=true", "selfplay.games=1", "selfplay.max_moves=20")
    SelfPlay(cfg, HashEvaluator(9, seed=1, max_batch=64), NNCache(0, 82, 163), tensorboard=False).run()
    assert sum(calls) > 0  # moves before pass_from kept their subtree
