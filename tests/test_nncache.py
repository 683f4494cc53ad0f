"""NN cache: exact round trip (cached == fresh), bounded memory, counters by move number, input hashing."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from games.go import GoRules, GoState
from native.features import encode
from native.tree import input_key
from specmcts.config import NetConfig
from specmcts.engine.evaluator import HashEvaluator, NetEvaluator
from specmcts.engine.network import build_net
from specmcts.engine.nncache import NNCache, round_capacity

A9 = 82


def game_positions(size: int, moves: int, seed: int = 0) -> list[GoState]:
    rng = np.random.default_rng(seed)
    state = GoState(GoRules(size))
    out = [state.copy()]
    for _ in range(moves):
        state.play(int(rng.choice(state.legal_actions())))
        out.append(state.copy())
    return out


def outputs(n: int, num_actions: int = A9):
    return np.zeros((n, num_actions), np.float32), np.zeros(n, np.float32), np.zeros(n, np.bool_)


def state_keys(states) -> np.ndarray:
    """The NN-cache keys the search gives these positions."""
    return np.array([input_key(s.core, s.hist) for s in states], np.uint64)


def test_capacity_rounds_down_to_a_power_of_two():
    assert [round_capacity(c) for c in (0, -5, 1, 2, 3, 1000, 1024, 1 << 20)] == [0, 0, 1, 2, 2, 512, 1024, 1 << 20]
    cache = NNCache(1000, A9, 162)
    assert cache.capacity == 512 and cache.enabled
    assert cache.nbytes == 512 * (8 + 4 * A9 + 4 + 4) + 2 * 162 * 8  # key, policy, value, score


def test_cached_equals_fresh_evaluation_through_the_net():
    """The speculation guarantee: what the cache returns is bit for bit what the evaluator returned."""
    states = game_positions(9, 20, seed=1)
    ev = NetEvaluator(build_net(9, NetConfig(blocks=2, channels=32)), max_batch=32)
    for i, s in enumerate(states):
        encode(s.core, s.past, ev.inputs[i])
    n = len(states)
    keys = state_keys(states)
    fresh_policy, fresh_value, fresh_score = (a.copy() for a in ev.forward(n))
    assert np.abs(fresh_score).max() > 0  # a kata net: the score head answers

    cache = NNCache(1 << 16, ev.num_actions, 162)  # sparse: direct-mapped slots collide
    cache.insert(keys, fresh_policy, fresh_value, fresh_score)
    policy, value, hit = outputs(n)
    score = np.zeros(n, np.float32)
    moves = np.array([s.move_number for s in states])
    assert cache.lookup(keys, moves, policy, value, hit, out_score=score) == n
    assert hit.all()
    assert policy.tobytes() == fresh_policy.tobytes() and value.tobytes() == fresh_value.tobytes()
    assert score.tobytes() == fresh_score.tobytes()
    assert cache.hit_rate == 1.0 and cache.hits == n and cache.misses == 0


def test_cached_equals_fresh_for_the_hash_evaluator_in_another_batch():
    states = game_positions(9, 30, seed=2)
    ev = HashEvaluator(9, max_batch=64)
    for i, s in enumerate(states):
        encode(s.core, s.past, ev.inputs[i])
    keys = state_keys(states)
    cache = NNCache(1 << 16, A9, 162)
    cache.insert(keys, *ev.evaluate(len(states)))
    # a later batch holds the same positions in another order, with others in between
    order = np.random.default_rng(0).permutation(len(states))[:10]
    for j, i in enumerate(order):
        encode(states[i].core, states[i].past, ev.inputs[2 * j])
        ev.inputs[2 * j + 1] = 0
    fresh_policy, fresh_value = ev.evaluate(20)
    policy, value, hit = outputs(10)
    assert cache.lookup(keys[order], np.zeros(10, np.int64), policy, value, hit) == 10
    assert policy.tobytes() == fresh_policy[::2].tobytes() and value.tobytes() == fresh_value[::2].tobytes()


def test_misses_leave_rows_alone_and_are_counted_by_move_number():
    cache = NNCache(64, A9, max_moves=5)
    rng = np.random.default_rng(0)
    stored = rng.random((2, A9), dtype=np.float32)
    cache.insert(np.array([11, 22], np.uint64), stored, np.array([0.5, -0.5], np.float32))

    keys = np.array([11, 33, 22, 44, 55], np.uint64)
    moves = np.array([0, 0, 3, 7, -1])  # 7 clips to the last counter, -1 to the first
    policy, value, hit = outputs(5)
    policy[:] = -1.0
    value[:] = 9.0
    assert cache.lookup(keys, moves, policy, value, hit) == 2
    assert hit.tolist() == [True, False, True, False, False]
    assert np.array_equal(policy[[0, 2]], stored) and value[[0, 2]].tolist() == [0.5, -0.5]
    assert np.all(policy[[1, 3, 4]] == -1.0) and np.all(value[[1, 3, 4]] == 9.0)
    assert cache.hits_by_move.tolist() == [1, 0, 0, 1, 0]
    assert cache.misses_by_move.tolist() == [2, 0, 0, 0, 1]
    assert cache.hit_rate == pytest.approx(0.4)
    rates = cache.hit_rate_by_move()
    assert rates[0] == pytest.approx(1 / 3) and np.isnan(rates[1]) and rates[3] == 1.0

    cache.reset_stats()
    assert cache.hits == cache.misses == 0 and cache.hit_rate == 0.0
    assert cache.lookup(keys[:1], moves[:1], policy, value, hit) == 1  # entries survive reset_stats
    cache.clear()
    assert cache.lookup(keys[:1], moves[:1], policy, value, hit) == 0 and len(cache) == 0


def test_capacity_bound_and_overwrite_on_collision():
    cache = NNCache(8, A9, 10)
    keys = np.arange(1, 201, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    rng = np.random.default_rng(1)
    policy_rows = rng.random((200, A9), dtype=np.float32)
    values = rng.random(200, dtype=np.float32)
    policy, value, hit = outputs(1)
    for i in range(200):
        cache.insert(keys[i:i + 1], policy_rows[i:i + 1], values[i:i + 1])
        # the entry just written always wins its slot
        assert cache.lookup(keys[i:i + 1], [0], policy, value, hit) == 1
        assert np.array_equal(policy[0], policy_rows[i]) and value[0] == values[i]
        assert len(cache) <= 8
    assert cache.keys.shape == (8,) and cache.policy.shape == (8, A9)

    policy, value, hit = outputs(200)
    found = cache.lookup(keys, np.zeros(200, np.int64), policy, value, hit)
    assert found == len(cache) <= 8
    # whatever survived is exactly what was inserted under that key
    assert np.array_equal(policy[hit], policy_rows[hit]) and np.array_equal(value[hit], values[hit])


def test_key_zero_is_a_real_key():
    cache = NNCache(16, A9, 10)
    cache.insert(np.array([0], np.uint64), np.full((1, A9), 0.5, np.float32), np.array([0.25], np.float32))
    policy, value, hit = outputs(1)
    assert cache.lookup(np.array([0], np.uint64), [0], policy, value, hit) == 1 and value[0] == 0.25
    # 0 marks an empty slot, so the real key 0 is stored as 1 (sharing its entry with the real key 1)
    assert len(cache) == 1 and cache.keys[cache.keys != 0].tolist() == [1]
    assert cache.lookup(np.array([1], np.uint64), [0], policy, value, hit) == 1 and value[0] == 0.25


def test_disabled_cache_has_the_same_interface():
    cache = NNCache(0, A9, 10)
    assert not cache.enabled and cache.capacity == 0 and len(cache) == 0
    keys = np.array([1, 2, 3], np.uint64)
    cache.insert(keys, np.ones((3, A9), np.float32), np.ones(3, np.float32))
    policy, value, hit = outputs(3)
    hit[:] = True
    assert cache.lookup(keys, [0, 1, 1], policy, value, hit) == 0
    assert not hit.any() and np.all(policy == 0)
    assert cache.misses_by_move.tolist()[:2] == [1, 2] and cache.hit_rate == 0.0
    cache.clear()
    assert cache.nbytes == 2 * 10 * 8


def test_lookup_checks_shapes():
    cache = NNCache(16, A9, 10)
    policy, value, hit = outputs(2)
    with pytest.raises(ValueError):
        cache.lookup(np.arange(3, dtype=np.uint64), [0, 0, 0], policy, value, hit)
    with pytest.raises(ValueError):
        cache.lookup(np.arange(2, dtype=np.uint64), [0, 0], np.zeros((2, 362), np.float32), value, hit)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 40)), min_size=1, max_size=60),
       st.sampled_from([0, 1, 4, 32]))
def test_never_returns_another_keys_entry(ops, capacity):
    """Against a dict of everything inserted: a hit is always the latest value inserted for that key."""
    cache = NNCache(capacity, 3, 4)
    truth = {}
    policy, value, hit = outputs(1, 3)
    for step, (is_insert, k) in enumerate(ops):
        key = np.array([k * 0x2545F4914F6CDD1D % 2**64], np.uint64)
        if is_insert:
            row = np.full((1, 3), step, np.float32)
            cache.insert(key, row, np.array([step], np.float32))
            truth[k] = step
        elif cache.lookup(key, [0], policy, value, hit):
            assert k in truth and value[0] == truth[k] and np.all(policy[0] == truth[k])
        if capacity == 0:
            assert not hit[0]
    assert len(cache) <= capacity


# -- input hashing ------------------------------------------------------------------------------------------
