"""Speculation is lossless: the game records at any depth k equal those at k = 0 (docs/design.md, "Speculation").

The evaluator is ``HashEvaluator`` (a function of each input row alone), trees are fresh (no tree reuse),
the seed is fixed. A game's record — moves, visit-count targets, root values, features, result — must
then be bit-identical for k = 1..4 and k = 0, whatever else shares the evaluator batch: several concurrent
games, temperature moves (the pre-drawn uniform applied to partial counts), Dirichlet noise, the NN cache
on or off, and an evaluator batch so small that trees wait their turn.

Latency is counted in evaluator batches, not seconds, so it is deterministic too.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

from specmcts.config import Config
from specmcts.engine.evaluator import HashEvaluator, UniformEvaluator
from specmcts.engine.nncache import NNCache
from specmcts.training.selfplay import SelfPlay
from tests.helpers import pass_loving_evaluator

SIMS = 32
TEMPERATURE_MOVES = 4
SMALL_BATCH = {9: 20, 5: 12}  # room for 2 trees of 8 leaves on 9x9, for 1 on 5x5: the others are skipped


# What the tests vary, by the short names they use, and its setting; BASE is every test's starting point.
SETTINGS = {
    "games": "selfplay.games", "concurrent": "selfplay.concurrent", "max_moves": "selfplay.max_moves",
    "sims": "search.sims", "leaves_per_tree": "search.leaves_per_tree", "threads": "search.threads",
    "root": "search.root", "score_utility": "search.score_utility", "overlap": "search.overlap",
    "parallel_min_trees": "search.parallel_min_trees", "fast_sims": "moves.fast_sims",
    "resign_threshold": "moves.resign_threshold", "no_resign_fraction": "moves.no_resign_fraction",
    "width": "speculation.width", "rows": "speculation.rows", "sure": "speculation.sure",
    "stages": "speculation.stages", "max_batch": "evaluator.max_batch", "seed": "seed",
    "pass_from": "moves.pass_from", "tree_reuse": "search.tree_reuse",
}
BASE = {
    "seed": 1, "selfplay.games": 3, "selfplay.concurrent": 3, "search.sims": SIMS, "evaluator.max_batch": 512,
    "search.leaves_per_tree": 8, "moves.temperature_moves": TEMPERATURE_MOVES, "moves.dirichlet_fraction": 0.25,
    "search.tree_reuse": False, "moves.resign_threshold": -0.95, "moves.resign_consecutive": 2,
    "moves.no_resign_fraction": 0.0, "search.threads": 0, "search.score_utility": 0.0,
}


def config_for(board: int, k: int, **changes) -> Config:
    """``BASE`` at depth ``k`` on ``board``, with ``changes`` by their short names (``SETTINGS``)."""
    settings = {**BASE, **{SETTINGS[name]: value for name, value in changes.items()}}
    return Config().override(f"game.board={board}", f"speculation.k={k}",
                             *(f"{key}={value}" for key, value in settings.items()))


def selfplay(board: int, k: int, *, cache: bool = True, evaluator: str = "hash", **changes):
    """Play the games of ``config_for(board, k, **changes)``; returns (records by game index, summary, the
    SelfPlay). ``threads`` 1: serial batch kernels; 0: parallel over trees when a batch has 16 trees or more.
    Memoised (tests share their k = 0 references); callers must not modify what it returns."""
    return _selfplay(board, k, cache, evaluator, tuple(sorted(changes.items())))


@lru_cache(maxsize=None)
def _selfplay(board: int, k: int, cache: bool, evaluator: str, changes: tuple):
    cfg = config_for(board, k, **dict(changes))
    max_batch = cfg.evaluator.max_batch
    if evaluator == "hash":
        ev = HashEvaluator(board, seed=7, max_batch=max_batch)
    elif evaluator == "pass":
        ev = pass_loving_evaluator(board, max_batch)
    else:
        ev = UniformEvaluator(board, max_batch=max_batch)
    nn_cache = NNCache(1 << 14 if cache else 0, board * board + 1, 2 * board * board + 1)
    runner = SelfPlay(cfg, ev, nn_cache, out=None, tensorboard=False)
    summary = runner.run()
    records = sorted(runner.records, key=lambda r: r.index)
    return records, summary, runner


def assert_same_records(records, reference):
    assert [r.index for r in records] == [r.index for r in reference]
    for rec, ref in zip(records, reference):
        where = f"game {rec.index}"
        assert rec.moves == ref.moves, where
        assert rec.result == ref.result and rec.winner == ref.winner, where
        assert rec.to_play == ref.to_play, where
        assert len(rec.targets) == len(ref.targets) == len(rec.moves), where
        np.testing.assert_array_equal(np.stack(rec.targets), np.stack(ref.targets), err_msg=where)
        assert np.stack(rec.targets).dtype == np.float32
        np.testing.assert_array_equal(np.array(rec.root_values), np.array(ref.root_values), err_msg=where)
        np.testing.assert_array_equal(np.stack(rec.features), np.stack(ref.features), err_msg=where)
        assert rec.policy_weights == ref.policy_weights, where


# ----------------------------------------------------------------------------------------------
# The lossless guarantee


@pytest.mark.parametrize("max_batch", ["large", "small"])
@pytest.mark.parametrize("cache", [True, False], ids=["cache", "no-cache"])
@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("board", [9, 5])
def test_records_at_depth_k_equal_records_at_k0(board, k, cache, max_batch):
    batch = 512 if max_batch == "large" else SMALL_BATCH[board]
    reference, _, _ = selfplay(board, 0, max_batch=batch)
    records, summary, runner = selfplay(board, k, cache=cache, max_batch=batch)
    assert_same_records(records, reference)
    assert summary["speculate"] == k
    assert runner.pipeline.stats.spawned > 0  # speculation did happen


@pytest.mark.parametrize("board", [9, 5])
def test_the_reference_exercises_what_it_should(board):
    """Temperature moves really sample (not all argmax), the games are real, and the small batch makes trees
    wait (more batches than with room for all)."""
    records, summary, runner = selfplay(board, 0)
    assert summary["games"] == 3
    sampled = [rec.moves[m] != int(np.argmax(rec.targets[m]))
               for rec in records for m in range(TEMPERATURE_MOVES)]
    assert any(sampled)
    assert all(len(rec.moves) > TEMPERATURE_MOVES for rec in records)
    _, _, small = selfplay(board, 0, max_batch=SMALL_BATCH[board])
    assert small.steps > runner.steps


@pytest.mark.parametrize("board", [9, 5])
def test_records_do_not_depend_on_batching_cache_or_concurrency(board):
    """The base of the guarantee: a tree's batches are its own, whatever else is in the evaluator call."""
    reference, _, _ = selfplay(board, 0)
    for variant in (dict(max_batch=SMALL_BATCH[board]), dict(cache=False), dict(concurrent=1),
                    dict(concurrent=2, max_batch=SMALL_BATCH[board], cache=False)):
        records, _, _ = selfplay(board, 0, **variant)
        assert_same_records(records, reference)


@pytest.mark.parametrize("k", [0, 3])
def test_lossless_when_leaves_per_tree_exceeds_the_evaluator_batch(k):
    """leaves_per_tree 8, evaluator batch 6: trees are asked for at most 6 leaves (else they would never fit)."""
    reference, _, _ = selfplay(5, 0, max_batch=6)
    records, summary, _ = selfplay(5, k, max_batch=6)
    assert summary["games"] == 3
    assert_same_records(records, reference)


@pytest.mark.parametrize("k", [2, 4])
def test_lossless_with_parallel_batch_kernels(k):
    """Six games, up to 6 * (k + 1) trees per batch: the batch kernels run in parallel over trees (from 4
    trees in a batch on), and the records still equal a serial k = 0 run."""
    reference, _, ref_runner = selfplay(5, 0, games=6, concurrent=6, threads=1)
    records, _, runner = selfplay(5, k, games=6, concurrent=6, parallel_min_trees=4)
    assert_same_records(records, reference)
    assert ref_runner.search.stats.parallel_steps == 0 and runner.search.stats.parallel_steps > 0


@pytest.mark.parametrize("max_batch", ["large", "small"])
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("board", [9, 5])
def test_lossless_with_gumbel_root_and_playout_cap(board, k, max_batch):
    """Gumbel root (noise drawn per (game, move), sequential halving, the halving's move predicted from the
    partial tree), playout cap randomization (full or fast search drawn per (game, move): levels of one
    chain have different budgets and stage boundaries) and the score utility (the hash evaluator's score,
    through the NN cache) keep records identical to k = 0."""
    batch = 512 if max_batch == "large" else SMALL_BATCH[board]
    opts = dict(root="gumbel", fast_sims=12, max_batch=batch, score_utility=0.3)
    reference, _, _ = selfplay(board, 0, **opts)
    weights = [w for r in reference for w in r.policy_weights]
    assert 0 < sum(weights) < len(weights)  # both kinds of move happen
    for r in reference:  # improved-policy targets: distributions over the legal moves
        np.testing.assert_allclose(np.stack(r.targets).sum(axis=1), 1.0, rtol=1e-5)
    records, _, runner = selfplay(board, k, **opts)
    assert_same_records(records, reference)
    assert runner.pipeline.stats.spawned > 0


@pytest.mark.parametrize("k", [1, 3])
def test_lossless_with_score_utility_at_a_puct_root(k):
    reference, _, _ = selfplay(9, 0, score_utility=0.3)
    records, _, runner = selfplay(9, k, score_utility=0.3)
    assert_same_records(records, reference)
    plain, _, _ = selfplay(9, 0)
    assert any(r.moves != p.moves for r, p in zip(reference, plain))  # the utility changed the games


def test_lossless_with_resignations():
    """Games that resign end in the middle of speculation; no-resign games still track who would have."""
    resign = dict(games=4, concurrent=4, resign_threshold=-0.05, no_resign_fraction=0.3)
    reference, summary0, _ = selfplay(9, 0, **resign)
    assert sum(r.result.endswith("+R") for r in reference) >= 2  # the resign path is exercised
    assert any(r.no_resign and r.would_resign for r in reference)
    for k in (1, 3):
        records, summary, _ = selfplay(9, k, **resign)
        assert_same_records(records, reference)
        assert summary["resign_rate"] == summary0["resign_rate"]
        assert summary["false_resign_rate"] == summary0["false_resign_rate"]


@pytest.mark.parametrize("root", ["puct", "gumbel"])
def test_lossless_when_roots_may_not_pass(root):
    """Self-play's early-pass rule acts on each root between its expansion and its first simulation, at any
    depth alike. A net that wants nothing but the pass, so that the rule decides the early moves."""
    early = dict(root=root, max_moves=48, fast_sims=8, games=2, concurrent=2)
    reference, _, _ = selfplay(9, 0, evaluator="pass", **early)
    moves = [m for r in reference for m in r.moves]
    assert 81 not in [m for r in reference for m in r.moves[:40]] and 81 in moves  # the rule acted, then let go
    for k, width, rows in ((1, 1, 0), (4, 1, 0), (3, 2, 48)):
        records, _, _ = selfplay(9, k, evaluator="pass", width=width, rows=rows, **early)
        assert_same_records(records, reference)


# ----------------------------------------------------------------------------------------------
# Speculation trees, deep chains and sure moves


@pytest.mark.parametrize("max_batch", ["large", "small"])
@pytest.mark.parametrize("shape", [(1, 2, 3, 0), (2, 2, 4, 0), (3, 3, 6, 0), (4, 2, 8, 0), (8, 1, 9, 0),
                                   (16, 1, 17, 0), (16, 3, 10, 0), (2, 1, 3, 8), (4, 2, 8, 16)],
                         ids=lambda s: f"k{s[0]}-w{s[1]}-t{s[2]}-s{s[3]}")
@pytest.mark.parametrize("board", [9, 5])
def test_records_at_any_tree_shape_equal_records_at_k0(board, shape, max_batch):
    """Depth k, width w, t searches per game, s stages: wide, deep, budget-starved and finely staged trees
    all play the k = 0 games."""
    k, width, trees, stages = shape
    batch = 512 if max_batch == "large" else SMALL_BATCH[board]
    reference, _, _ = selfplay(board, 0, max_batch=batch)
    records, summary, runner = selfplay(board, k, max_batch=batch, width=width, rows=trees * 8, stages=stages)
    assert_same_records(records, reference)
    stats = runner.pipeline.stats
    assert runner.pipeline.trees == trees and runner.pipeline.stages == (stages or k + 1)
    assert len(stats.predictions) == runner.pipeline.stages
    assert stats.spawned > 0 and stats.sure_wrong == 0 and stats.sure_moves <= summary["moves"]
    assert 1 <= stats.widest <= width and 1 <= stats.deepest <= k
    if width > 1 and trees > k + 1:
        assert stats.widest > 1  # a level did speculate on several moves


@pytest.mark.parametrize("shape", [(2, 1, 3), (3, 2, 6)], ids=["chain-k2", "tree-3:2:6"])
def test_19x19_selfplay_speculates_losslessly(shape):
    """19x19 end to end at toy size: two games of 24 moves, 16 simulations per move."""
    k, width, trees = shape
    opts = dict(games=2, concurrent=2, sims=16, max_moves=24)
    reference, summary0, _ = selfplay(19, 0, **opts)
    assert summary0["moves"] == 48
    records, summary, runner = selfplay(19, k, width=width, rows=8 * trees, **opts)
    assert_same_records(records, reference)
    assert runner.pipeline.stats.spawned > 0 and summary["mean_move_steps"] < summary0["mean_move_steps"]


@pytest.mark.parametrize("k, width", [(3, 3), (8, 2)])
def test_trees_are_lossless_with_gumbel_playout_cap_and_resignations(k, width):
    opts = dict(root="gumbel", fast_sims=12, score_utility=0.3, games=4, concurrent=4, resign_threshold=-0.05,
                no_resign_fraction=0.3)
    reference, _, _ = selfplay(9, 0, **opts)
    records, _, runner = selfplay(9, k, width=width, rows=8 * 2 * (k + 1), **opts)
    assert_same_records(records, reference)
    assert runner.pipeline.stats.widest > 1


def test_trees_never_run_more_searches_than_the_budget(monkeypatch):
    """After every batch each game runs at most ``trees`` searches, at most ``width`` children per level,
    none deeper than k, every child one of its parent's candidates; the slots are all accounted for."""
    from specmcts.engine.speculation import Pipeline, walk

    seen = {"max": 0}
    original = Pipeline.step

    def checked(self):
        n = original(self)
        used = 0
        for game in self.heads:
            levels = self.live(game)
            used += len(levels)
            assert len(levels) <= self.trees
            seen["max"] = max(seen["max"], len(levels))
            for level in levels:
                assert level.depth <= self.k and len(level.children) <= self.width
                for action, child in level.children.items():
                    assert child.parent is level and child.via == action and child.depth == level.depth + 1
                    assert action in dict(level.candidates)
                assert walk(level)[0] is level
        assert used + len(self.free_slots) == self.search.num_trees
        assert len(set(self.free_slots)) == len(self.free_slots)
        return n

    monkeypatch.setattr(Pipeline, "step", checked)
    changes = {"games": 2, "concurrent": 2, "seed": 3, "width": 3, "rows": 8 * 5}
    _selfplay.__wrapped__(9, 4, True, "hash", tuple(sorted(changes.items())))  # not memoised: checked afresh
    assert seen["max"] == 5  # the budget was used in full


def test_sure_moves_are_never_wrong_and_spawn_early():
    """With greedy moves (no temperature) most searches settle before their end; a sure move is the move
    played, and its successor starts then, so sure predictions cut batches per move further."""
    base, _, _ = selfplay(9, 0, games=1, concurrent=1, sims=64)
    on, s_on, r_on = selfplay(9, 2, games=1, concurrent=1, sims=64, sure=True)
    off, s_off, r_off = selfplay(9, 2, games=1, concurrent=1, sims=64, sure=False)
    assert_same_records(on, base)
    assert_same_records(off, base)
    stats = r_on.pipeline.stats
    assert stats.sure > 0 and stats.sure_wrong == 0 and stats.sure_sims_left > 0
    assert 0 < s_on["sure_moves"] == stats.sure_moves <= s_on["moves"]  # played moves, not every sure search
    assert r_off.pipeline.stats.sure == 0
    assert s_on["mean_move_steps"] <= s_off["mean_move_steps"]


def test_calibration_learns_what_becomes_the_move():
    from specmcts.engine.speculation import PRIOR_ODDS, Calibration

    cal = Calibration(stages=8)  # boundaries 1..7 fall in progress quarters 0, 1, 1, 2, 2, 3, 3
    shares = np.array([0.6, 0.3, 0.05])
    before = cal.odds("middle", 1, shares)
    np.testing.assert_allclose(before, [PRIOR_ODDS[0, 3], PRIOR_ODDS[1, 2], PRIOR_ODDS[2, 0]])
    for _ in range(50):
        cal.record("middle", 1, np.array([7, 8, 9]), shares, played=8)  # the runner-up always wins
    after = cal.odds("middle", 1, shares)
    assert after[1] > 0.9 and after[0] < 0.1 and after[2] < 0.01
    np.testing.assert_allclose(cal.odds("opening", 1, shares), before)  # phases are apart
    np.testing.assert_allclose(cal.odds("middle", 7, shares), before)  # and so are late stages
    np.testing.assert_allclose(cal.odds("middle", 1, np.array([0.3, 0.6])), PRIOR_ODDS[[0, 1], [2, 3]])  # ranks


def _searched_trees(count=12, sims=64, size=5):
    """A search whose trees hold partial searches of different sizes (some with no simulation yet)."""
    from games.go import GoRules, GoState
    from specmcts.config import SearchConfig
    from specmcts.engine.search import Search

    rules = GoRules(size)
    search = Search(rules, SearchConfig(sims=sims, leaves_per_tree=4), HashEvaluator(size, seed=3, max_batch=64),
                    NNCache(1 << 10, rules.num_actions, rules.max_moves), num_trees=count)
    rng = np.random.default_rng(5)
    for t in range(count):
        state = GoState(rules)
        for _ in range(t % 7):
            state.play_random()
        search.reset(t, state)
        search.run(np.array([t]), int(rng.integers(0, sims)))
    return search, rng


def test_ranked_root_actions_equal_a_stable_sort_of_the_visit_counts():
    """The pipeline ranks a partial search's candidates natively: the pick first, then the visited actions by
    visits, the lowest action on ties (what a stable argsort of the counts gives), shares of all visits."""
    search, rng = _searched_trees()
    for t in range(search.num_trees):
        counts = search.visit_counts(t)
        for first in [int(np.argmax(counts)), int(rng.integers(0, search.num_actions)), 0]:
            for others in (0, 1, 3, 7):
                order = np.argsort(-counts, kind="stable")
                order = order[(counts[order] > 0) & (order != first)][:others]
                want = np.concatenate([[first], order]).astype(np.int64)
                actions, shares = search.ranked(t, first, others)
                assert actions.dtype == np.int64 and shares.dtype == np.float64
                np.testing.assert_array_equal(actions, want)
                np.testing.assert_array_equal(shares, counts[want] / max(int(counts.sum()), 1))


def test_stage_events_equal_the_checks_they_replace():
    """After a batch the pipeline asks, in one native call, which searches crossed a stage boundary and
    which greedy moves are decided; the same answers as the root counts taken one by one."""
    search, rng = _searched_trees()
    n = search.num_trees
    found = np.zeros(2, int)
    for _ in range(20):
        slots = rng.permutation(n)[:int(rng.integers(0, n + 1))].astype(np.int32)
        watch = rng.permutation(n)[:int(rng.integers(0, n + 1))].astype(np.int32)
        next_event = rng.integers(0, 70, n).astype(np.int64)
        targets = rng.integers(0, 90, n).astype(np.int64)
        crossed, sure, best, left = search.stage_events(slots, next_event, watch, targets)
        done = search.completed(slots)
        np.testing.assert_array_equal(crossed, slots[done >= next_event[slots]])
        counts = np.zeros((len(watch), search.num_actions), np.int64)
        for i, t in enumerate(watch):
            counts[i] = search.visit_counts(t)
        lead_best = counts.argmax(1)  # the lowest action on ties
        ordered = np.sort(counts, 1)
        lead = ordered[:, -1] - ordered[:, -2]
        lead_left = targets[watch] - search.completed(watch)
        want = np.flatnonzero(lead > lead_left)
        np.testing.assert_array_equal(sure, want)
        np.testing.assert_array_equal(best, lead_best[want])
        np.testing.assert_array_equal(left, lead_left[want])
        found += [len(crossed), len(sure)]
    assert found.all()  # both kinds of event happened


# ----------------------------------------------------------------------------------------------
# Statistics


@pytest.mark.parametrize("sure", [True, False], ids=["sure", "no-sure"])
@pytest.mark.parametrize("max_batch", ["large", "small"])
@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("board", [9, 5])
def test_speculation_statistics_are_consistent(board, k, max_batch, sure):
    batch = 512 if max_batch == "large" else SMALL_BATCH[board]
    records, summary, runner = selfplay(board, k, max_batch=batch, sure=sure)
    stats = runner.pipeline.stats
    moves = sum(len(r.moves) for r in records)
    games = len(records)
    assert summary["moves"] == moves

    assert stats.predictions.shape == stats.correct.shape == (k + 1,)
    assert stats.predictions[0] == 0  # stages are 1..k
    assert (stats.correct <= stats.predictions).all()
    # Every move's search crosses the last boundary (ceil(k * sims / (k + 1)) < sims) and predicts there;
    # an earlier boundary passed in the same batch as a later one has no prediction of its own.
    assert stats.predictions[k] == moves
    assert (stats.predictions[1:] >= 1).all() and (stats.predictions[1:] <= moves).all()
    assert sum(stats.phase_predictions.values()) == stats.predictions.sum()
    assert sum(stats.phase_correct.values()) == stats.correct.sum()
    for accuracy in [stats.accuracy(), *stats.accuracy_by_stage()]:
        assert 0.0 <= accuracy <= 1.0
    for phase, accuracy in stats.accuracy_by_phase().items():
        assert np.isnan(accuracy) == (stats.phase_predictions[phase] == 0)
        assert np.isnan(accuracy) or 0.0 <= accuracy <= 1.0
    assert summary["prediction_accuracy"] == stats.accuracy()
    assert summary["prediction_accuracy_by_stage"] == stats.accuracy_by_stage()
    # correct_from[J]: moves whose predictions were right from stage J on (k + 1: the last one was wrong)
    assert stats.correct_from.sum() == moves
    assert stats.correct_from[1:k + 1].sum() == stats.correct[k]
    # within_from[w, J]: among the top w from J on; w = 1 is correct_from, a wider top is reached no later
    np.testing.assert_array_equal(stats.within_from[1], stats.correct_from)
    assert (stats.within_from[1:].sum(axis=1) == moves).all()
    cumulative = np.cumsum(stats.within_from[1:], axis=1)
    assert (np.diff(cumulative, axis=0) >= 0).all()

    # Every spawned search is committed or thrown away (each rollback throws away at least one).
    assert 0 < stats.committed <= moves - games
    assert stats.committed + stats.rolled_back <= stats.spawned
    # A chain commits a level whose parent predicted the move at its last boundary, or whose parent's
    # move became sure after that boundary (the sure child replaced a wrong guess).
    assert stats.committed <= stats.correct[k] + stats.sure
    assert (stats.sure > 0) == sure
    assert stats.widest == 1 and 1 <= stats.deepest <= k  # a chain: one child per level, at most k deep
    # Searches that decided a move did exactly `sims` simulations; thrown-away ones are the waste.
    assert stats.useful_sims == moves * SIMS
    assert stats.wasted_sims >= 0
    assert 0.0 <= stats.waste_fraction() < 1.0
    assert summary["wasted_sims_fraction"] == stats.waste_fraction()


@pytest.mark.parametrize("k", [1, 3])
def test_every_stage_predicts_once_per_move_with_one_leaf_per_batch(k):
    """With one leaf per batch no boundary is ever jumped over: each stage predicts every move once."""
    records, _, runner = selfplay(5, k, leaves_per_tree=1, games=2, concurrent=2)
    moves = sum(len(r.moves) for r in records)
    np.testing.assert_array_equal(runner.pipeline.stats.predictions[1:], moves)
    reference, _, _ = selfplay(5, 0, leaves_per_tree=1, games=2, concurrent=2)
    assert_same_records(records, reference)


def test_no_speculation_statistics_at_k0():
    _, summary, runner = selfplay(9, 0)
    stats = runner.pipeline.stats
    assert stats.spawned == stats.committed == stats.rolled_back == stats.wasted_sims == 0
    assert summary["prediction_accuracy"] is None
    assert summary["wasted_sims_fraction"] == 0.0


# ----------------------------------------------------------------------------------------------
# Latency in batches


@pytest.mark.parametrize("evaluator", ["hash", "uniform"])
@pytest.mark.parametrize("k", [1, 2, 4])
def test_speculation_cuts_batches_per_move_for_a_single_game(evaluator, k):
    """One game, room in every batch for all its levels. Level 0's search runs exactly as at k = 0 (same
    batches, never crowded out), so no move can take more batches than at k = 0; a committed speculative
    search has done at least one batch before its move starts, so each commit saves at least one."""
    reference, summary0, _ = selfplay(9, 0, games=1, concurrent=1, evaluator=evaluator)
    records, summary, runner = selfplay(9, k, games=1, concurrent=1, evaluator=evaluator)
    assert_same_records(records, reference)
    steps0 = np.array(reference[0].move_steps)
    steps = np.array(records[0].move_steps)
    assert (steps <= steps0).all()
    committed = runner.pipeline.stats.committed
    assert committed > 0
    assert steps0.sum() - steps.sum() >= committed
    assert summary["mean_move_steps"] < summary0["mean_move_steps"]


# ----------------------------------------------------------------------------------------------
# --speculate auto


def test_auto_plan_follows_the_batch_cost_curve():
    from specmcts.engine.spec_shape import plan_speculation

    flat = plan_speculation(lambda rows: 1.0, leaves=8, concurrent=1, max_batch=512)  # a GPU: rows are free
    assert (flat.k, flat.width, flat.trees, flat.stages) == (16, 2, 17, 51)
    assert flat.tolerance == pytest.approx(1.3)
    linear = plan_speculation(lambda rows: float(rows), leaves=8, concurrent=1, max_batch=512)  # a CPU
    assert (linear.k, linear.width, linear.trees, linear.stages) == (0, 1, 1, 0)
    capped = plan_speculation(lambda rows: 1.0, leaves=8, concurrent=1, max_batch=40)  # 5 trees fit at most
    assert (capped.k, capped.trees, capped.stages) == (3, 4, 12)
    # 64 games: batches of 512 rows; 1024 rows cost 4 % more (within the 5 % of throughput mode), 1536 20 %
    curve = {512: 1.0, 1024: 1.04, 1536: 1.2}
    busy = plan_speculation(lambda rows: curve.get(rows, 9.0), leaves=8, concurrent=64, max_batch=4096)
    assert (busy.k, busy.width, busy.trees) == (1, 1, 2)
    assert busy.tolerance == pytest.approx(1.05) and busy.timings == {512: 1.0, 1024: 1.04, 1536: 1.2}


def test_auto_speculation_measures_the_evaluator_and_stays_lossless():
    """On a real (CPU) evaluator: whatever the measured curve says, the plan is a valid shape, the summary
    says it was chosen automatically, and the games equal k = 0's."""
    reference, _, _ = selfplay(9, 0, games=2, concurrent=2)
    records, summary, runner = selfplay(9, "auto", games=2, concurrent=2)
    assert_same_records(records, reference)
    plan = runner.auto
    assert summary["speculation_auto"] and summary["speculate"] == plan.k == runner.pipeline.k
    assert 0 <= plan.k <= 16 and plan.trees == runner.pipeline.trees and plan.k < plan.trees
    assert runner.pipeline.stages == (plan.stages if plan.k else 1)
    assert all(t > 0 for t in plan.timings.values())


# ----------------------------------------------------------------------------------------------
# Two batches in flight per search (search.overlap)


@pytest.mark.parametrize("max_batch", ["large", "small"])
@pytest.mark.parametrize("k", [0, 2])
@pytest.mark.parametrize("board", [9, 5])
def test_overlapped_batches_record_what_one_batch_records(board, k, max_batch):
    """search.overlap: half the trees are evaluated (in a thread, on a twin evaluator) while the other half
    selects; the records equal the k = 0 records without overlap, with and without speculation, with room in
    a batch for every tree or for few (trees skipped a step)."""
    batch = 512 if max_batch == "large" else SMALL_BATCH[board]
    reference, _, _ = selfplay(board, 0, max_batch=batch)
    records, summary, runner = selfplay(board, k, max_batch=batch, overlap=True, games=3, concurrent=3)
    assert_same_records(records, reference)
    assert runner.search.stats.overlapped_steps > 0 and summary["forwards"] > 0


@pytest.mark.parametrize("width,trees,sure", [(2, 5, True), (2, 7, False), (1, 4, True)])
def test_overlapped_speculation_trees_record_what_k0_records(width, trees, sure):
    """In self-play, search.overlap keeps two batches in flight over disjoint trees (each step starts the
    idle trees' batch, then completes the other): the stage boundaries, predictions, commits, rollbacks and
    sure moves then happen at other counts, and the records still equal k = 0's without overlap."""
    reference, _, _ = selfplay(9, 0)
    records, _, runner = selfplay(9, 3, width=width, rows=8 * trees, stages=4, sure=sure, overlap=True)
    assert_same_records(records, reference)
    stats = runner.pipeline.stats
    assert runner.search.stats.overlapped_steps > 0 and stats.committed > 0 and stats.spawned > stats.committed


def test_overlap_keeps_two_batches_in_flight_over_disjoint_trees():
    """Each overlapped step starts a batch over trees not in flight, then completes the one in flight: at most
    two batches in flight, never sharing a tree, in alternating lanes; nothing in flight once the games end."""
    from specmcts.engine.search import Search

    start, finish = Search.start, Search.finish
    in_flight, lanes, most = [], [], [0]

    def spy_start(search, lane, slots, wanted):
        busy = set().union(*in_flight) if in_flight else set()
        assert not busy & set(np.asarray(slots).tolist())  # disjoint trees
        batch = start(search, lane, slots, wanted)
        in_flight.append(set(batch.slots.tolist()))
        lanes.append(lane)
        most[0] = max(most[0], len(in_flight))
        return batch

    def spy_finish(search, batch):
        in_flight.remove(set(batch.slots.tolist()))
        return finish(search, batch)

    cfg = config_for(9, 2, overlap=True, games=2, concurrent=2, rows=8 * 3)
    runner = SelfPlay(cfg, HashEvaluator(9, seed=7, max_batch=cfg.evaluator.max_batch), NNCache.for_board(1 << 14, 9),
                      out=None, tensorboard=False)
    Search.start, Search.finish = spy_start, spy_finish
    try:
        runner.run()
    finally:
        Search.start, Search.finish = start, finish
    assert len(lanes) > 10 and not in_flight and runner.pipeline._inflight is None
    assert most[0] == 2 and all(a != b for a, b in zip(lanes, lanes[1:]))  # two at once, lanes alternating
    assert runner.search.stats.overlapped_steps > len(lanes) // 2


# ----------------------------------------------------------------------------------------------
# One evaluator process for many self-play processes


def _play_on_shared_evaluator(handle, board: int, k: int, answers) -> None:
    """A self-play process on the shared evaluator: its own NN cache disabled (the server's is the cache)."""
    evaluator = handle.connect()
    runner = SelfPlay(config_for(board, k), evaluator, NNCache(0, board * board + 1, 2 * board * board + 1),
                      out=None, tensorboard=False)
    runner.run()
    answers.put((k, [(r.index, r.moves, r.result, np.stack(r.targets), np.array(r.root_values),
                      np.stack(r.features)) for r in sorted(runner.records, key=lambda r: r.index)]))
    evaluator.close()


def test_self_play_processes_on_one_shared_evaluator_are_lossless():
    """Two self-play processes (k = 2 and k = 3) on one shared evaluator at once: their batches are merged,
    rows they both ask for are evaluated once, later ones come from the server's cache; each process's
    records still equal the k = 0 records of a process with its own evaluator."""
    import multiprocessing

    from specmcts.engine.shared_evaluator import SharedEvaluatorServer

    reference, _, _ = selfplay(9, 0)
    ctx = multiprocessing.get_context("spawn")
    server = SharedEvaluatorServer(HashEvaluator(9, seed=7, max_batch=1024), clients=2, rows=512,
                                   mp_context=ctx, cache=NNCache(1 << 14, 82, 163))
    answers = ctx.Queue()
    with server:
        procs = [ctx.Process(target=_play_on_shared_evaluator, args=(server.handle(i), 9, k, answers), daemon=True)
                 for i, k in enumerate((2, 3))]
        for p in procs:
            p.start()
        got = dict(answers.get(timeout=300) for _ in procs)
        for p in procs:
            p.join(timeout=30)
    counters = server.counters()
    assert counters["cache_hits"] + counters["shared_rows"] > 0  # the processes did share evaluations
    for k, records in got.items():
        assert [r[0] for r in records] == [r.index for r in reference], k
        for (index, moves, result, targets, root_values, features), ref in zip(records, reference):
            where = f"k={k} game {index}"
            assert moves == ref.moves and result == ref.result, where
            np.testing.assert_array_equal(targets, np.stack(ref.targets), err_msg=where)
            np.testing.assert_array_equal(root_values, np.array(ref.root_values), err_msg=where)
            np.testing.assert_array_equal(features, np.stack(ref.features), err_msg=where)
