"""The player layer (`specmcts.engine.player`): one move rule, one resign rule and one source of randomness for
self-play, evaluation and GTP."""
from __future__ import annotations

import numpy as np
import pytest

from games import GoRules, GoState
from specmcts.config import ConfigError, load_config
from specmcts.engine.player import UNIFORM, MoveRule, ResignStreak, draw, rng


def test_move_rule_samples_then_takes_the_most_visited():
    rule = MoveRule(seed=7, temperature=1.0, temperature_moves=4)
    counts = np.array([10, 30, 0, 60], np.int32)
    assert [rule.greedy(m) for m in (0, 3, 4, 50)] == [False, False, True, True]
    assert all(rule.pick(counts, g, m) == 3 for g in range(20) for m in (4, 9))  # after: the most visited
    picks = {rule.pick(counts, g, 0) for g in range(200)}
    assert picks == {0, 1, 3}  # before: drawn in proportion to visits, never an unvisited move
    assert all(rule.pick(counts, g, 2) == rule.pick(counts, g, 2) for g in range(20))  # a pure function
    u = rule.uniform(5, 1)
    assert u == draw(7, 5, 1, UNIFORM) == float(rng(7, 5, 1, UNIFORM).random())  # drawn before the search
    cumulative = np.cumsum(counts) / counts.sum()
    assert rule.pick(counts, 5, 1) == int(np.searchsorted(cumulative, u, side="right"))


def test_zero_temperature_is_greedy_from_the_first_move():
    rule = MoveRule(seed=1, temperature=0.0, temperature_moves=10)
    assert rule.greedy(0) and rule.pick(np.array([1, 5, 5]), 0, 0) == 1  # ties: the lowest action


def test_resign_streak_counts_consecutive_low_values_per_key():
    streak = ResignStreak(-0.9, 3)
    assert [streak.observe("a", v) for v in (-0.95, -0.95, -0.5, -0.95, -0.95)] == [False] * 5  # broken streak
    assert streak.observe("a", -0.99)  # the third in a row
    assert not streak.observe("b", -0.99)  # another game or colour has its own streak
    streak.forget("a")
    assert not streak.observe("a", -0.99)
    never = ResignStreak(-0.9, 0)
    assert not any(never.observe("a", -1.0) for _ in range(10))


def test_every_caller_uses_the_one_rule(tmp_path):
    """Self-play, evaluation and GTP decide with the player layer's objects, configured from the config."""
    from specmcts.play.match import NetSide
    from specmcts.engine.evaluator import HashEvaluator
    from specmcts.training.selfplay import SelfPlayPolicy

    cfg = load_config(None, ["game.board=5", "search.sims=8", "moves.temperature_moves=3", "eval.temperature_moves=2",
                             "moves.resign_consecutive=4", "eval.resign=false"])
    rules = GoRules(5, cfg.game.komi)
    policy = SelfPlayPolicy(cfg, rules)
    assert isinstance(policy.rule, MoveRule) and policy.rule.temperature_moves == 3
    assert isinstance(policy.resign, ResignStreak) and policy.resign.consecutive == 4
    side = NetSide("net", HashEvaluator(5, seed=1), cfg, concurrent=1, seed=3)
    assert isinstance(side.rule, MoveRule) and side.rule.temperature_moves == 2
    assert side.resign.consecutive == 0  # eval.resign=false
    side.new_game(0, 1)
    (action, _note), = side.genmove([(0, GoState(rules))])
    counts = side.search.visit_counts(0)
    assert action == side.rule.pick(counts, 0, 0)


def test_resign_ranges_are_validated():
    with pytest.raises(ConfigError, match="moves.resign_consecutive"):
        load_config(None, ["moves.resign_consecutive=-1"])
    with pytest.raises(ConfigError, match="moves.no_resign_fraction"):
        load_config(None, ["moves.no_resign_fraction=1.5"])
