"""Replay buffer: symmetries agree with the rules, the window keeps the newest samples, sampling is uniform and
resumable, and a bad shard is reported by name and skipped without stopping anything."""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

from games import GoRules, GoState
from games.symmetry import NUM_SYMMETRIES, apply_symmetry, symmetric_action
from native.board import seed_kernels
from native.features import NUM_PLANES
from specmcts.config import TrainConfig
from specmcts.training.replay import ReplayBuffer, ShardError, augment, read_shard, window_size
from tests.helpers import write_shard

SIZE = 5
ACTIONS = SIZE * SIZE + 1


def cfg(**kw) -> TrainConfig:
    return dataclasses.replace(TrainConfig(), **kw)


# -- symmetries ---------------------------------------------------------------------------------------------


def test_symmetries_are_the_eight_of_the_square():
    grid = np.arange(SIZE * SIZE).reshape(SIZE, SIZE)
    images = {apply_symmetry(grid, s).tobytes() for s in range(NUM_SYMMETRIES)}
    assert len(images) == 8
    for s in range(NUM_SYMMETRIES):  # each one is a bijection of the points with an inverse among them
        moved = apply_symmetry(grid, s)
        assert sorted(moved.ravel()) == list(range(SIZE * SIZE))
        assert any(np.array_equal(apply_symmetry(moved, t), grid) for t in range(NUM_SYMMETRIES))
    assert symmetric_action(SIZE, SIZE * SIZE, 3) == SIZE * SIZE  # pass stays pass


@pytest.mark.parametrize("symmetry", range(NUM_SYMMETRIES))
def test_augmentation_matches_the_game_played_in_the_mirror(symmetry):
    """Planes and policy move together: augmenting (features, one-hot next move) of a real game gives exactly
    the features and move of the same game played with every move mapped through the symmetry."""
    rules = GoRules(SIZE, 7.5)
    seed_kernels(symmetry + 11)
    state = GoState(rules)
    moves = []
    while not state.is_over and len(moves) < 30:
        moves.append(state.play_random())
    mirror = [symmetric_action(SIZE, a, symmetry) for a in moves]
    original, mirrored = GoState(rules), GoState(rules)
    feats, policy, feats_m, policy_m = [], [], [], []
    for a, b in zip(moves, mirror):
        feats.append(original.features(np.uint8))
        feats_m.append(mirrored.features(np.uint8))
        one_hot = np.zeros(ACTIONS, np.float32)
        one_hot[a] = 1
        policy.append(one_hot)
        one_hot = np.zeros(ACTIONS, np.float32)
        one_hot[b] = 1
        policy_m.append(one_hot)
        original.play(a)
        mirrored.play(b)
    got_f, got_p = augment(np.stack(feats), np.stack(policy), np.full(len(moves), symmetry))
    np.testing.assert_array_equal(got_f, np.stack(feats_m))
    np.testing.assert_array_equal(got_p, np.stack(policy_m))
    assert original.winner() == mirrored.winner()


# -- the window ---------------------------------------------------------------------------------------------


def test_window_size_fixed_and_growing():
    fixed = cfg(window_samples=1000)
    assert [window_size(n, fixed) for n in (0, 500, 1000, 5000)] == [0, 500, 1000, 1000]
    growing = cfg(window_samples=1000, window_growth=0.4, window_exponent=0.75)
    sizes = [window_size(n, growing) for n in (1000, 2000, 10_000, 100_000)]
    assert sizes[0] == 1000 and sizes == sorted(sizes) and sizes[-1] < 100_000
    # KataGo's formula: c * (1 + beta * ((n / c)^alpha - 1) / alpha)
    assert sizes[2] == int(1000 * (1 + 0.4 * ((10.0) ** 0.75 - 1) / 0.75))
    assert window_size(100_000, dataclasses.replace(growing, window_max_samples=3000)) == 3000


def test_buffer_keeps_the_newest_samples(tmp_path):
    data = tmp_path / "data"
    buf = ReplayBuffer(data, SIZE, cfg(window_samples=250), seed=1)
    for i in range(6):  # 6 shards of 100 samples, two refreshes (the second compacts the storage)
        write_shard(data / f"s{i:02d}.npz", 100, tag=i / 10)
        if i in (2, 5):
            buf.refresh()
    assert buf.total_samples == 600 and len(buf) == 250 and buf.shards_read == 6
    values = buf._value[buf._start:buf._end]
    expected = np.concatenate([(t / 10 + np.arange(100) / 1000.0) for t in range(6)])[-250:].astype(np.float32)
    np.testing.assert_array_equal(values, expected)
    v = buf.sample(4000, augment_symmetries=False).value
    assert v.min() >= expected.min() and set(np.round(v, 4)) <= set(np.round(expected, 4))
    assert buf.model_ids() == ["test"] * 3


def test_growing_window_on_a_fresh_start_loads_only_what_it_needs(tmp_path):
    data = tmp_path / "data"
    for i in range(20):
        write_shard(data / f"s{i:02d}.npz", 50, tag=i / 100)
    c = cfg(window_samples=200, window_growth=0.4)
    buf = ReplayBuffer(data, SIZE, c)
    assert buf.refresh() == 1000
    assert len(buf) == window_size(1000, c) and buf.total_samples == 1000


def test_sampling_is_uniform_over_the_window(tmp_path):
    data = tmp_path / "data"
    write_shard(data / "a.npz", 10, tag=0.1)
    write_shard(data / "b.npz", 30, tag=0.2)
    buf = ReplayBuffer(data, SIZE, cfg(window_samples=1000), seed=7)
    buf.refresh()
    v = buf.sample(40_000, augment_symmetries=False).value
    from_a = np.mean(v < 0.15)
    assert abs(from_a - 0.25) < 0.015  # 10 of 40 samples; the binomial sd is 0.002
    counts = np.unique(np.round(v, 4), return_counts=True)[1]
    assert len(counts) == 40 and counts.min() > 800 and counts.max() < 1200  # expected 1000 each


def test_sampler_state_round_trip(tmp_path):
    data = tmp_path / "data"
    write_shard(data / "a.npz", 64, tag=0.3)
    a = ReplayBuffer(data, SIZE, cfg(), seed=3)
    a.refresh()
    a.sample(16)
    state = a.state_dict()
    b = ReplayBuffer(data, SIZE, cfg(), seed=99)
    b.refresh()
    b.load_state_dict(state)
    for x, y in zip(a.sample(32), b.sample(32)):
        np.testing.assert_array_equal(x, y)


def test_samples_of_real_selfplay_shards(tmp_path):
    """Shards written by self-play load as they are: shapes, dtypes, value from the mover's view."""
    from specmcts.config import load_config
    from specmcts.training.selfplay import run_selfplay

    c = load_config("tiny", ["game.board=5", "search.sims=8", "selfplay.games=4", "selfplay.concurrent=4",
                             "selfplay.shard_games=2", "evaluator.device=cpu"])
    run_selfplay(c, tmp_path)
    buf = ReplayBuffer(tmp_path / "data", 5, c.train, seed=0)
    assert buf.refresh() > 0 and not buf.skipped and buf.shards_read == 2
    f, p, v = buf.sample(64)[:3]
    assert f.dtype == np.uint8 and f.shape == (64, NUM_PLANES, 5, 5) and set(np.unique(f)) <= {0, 1}
    assert p.shape == (64, 26) and np.allclose(p.sum(1), 1.0, atol=1e-5)
    assert set(np.unique(v)) <= {-1.0, 0.0, 1.0}
    assert (f[:, NUM_PLANES - 1] == 1).all()  # the constant plane survives every symmetry


# -- robustness ---------------------------------------------------------------------------------------------


def test_bad_shards_are_reported_by_name_and_skipped(tmp_path):
    data = tmp_path / "data"
    good = write_shard(data / "00-good.npz", 20, tag=0.1)
    truncated = data / "01-truncated.npz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (data / "02-garbage.npz").write_bytes(b"not a zip file at all")
    write_shard(data / "03-board9.npz", 5, board=9)
    write_shard(data / "04-nan.npz", 5, policy=np.full((5, ACTIONS), np.nan, np.float32))
    np.savez(data / "05-nofeatures.npz", value=np.zeros(3, np.float32))
    write_shard(data / "06-shapes.npz", 5, policy=np.zeros((5, 7), np.float32))
    (data / "07-in-progress.npz.tmp").write_bytes(b"half")  # a writer's temp file: never read
    messages = []
    buf = ReplayBuffer(data, SIZE, cfg(), report=messages.append)
    assert buf.refresh() == 20
    assert len(buf) == 20
    assert len(messages) == 6 and all(m.count("\n") == 0 for m in messages)
    for name in ("01-truncated", "02-garbage", "03-board9", "04-nan", "05-nofeatures", "06-shapes"):
        assert sum(name in m for m in messages) == 1, (name, messages)
    assert "9x9" in next(m for m in messages if "board9" in m)
    assert set(buf.skipped) == {f"{n}.npz" for n in ("01-truncated", "02-garbage", "03-board9", "04-nan",
                                                     "05-nofeatures", "06-shapes")}
    buf.sample(8)
    # Reported once: a second refresh does not repeat the messages.
    buf.refresh()
    assert len(messages) == 6
    # A shard replaced by a good file (new size/mtime) is tried again and read.
    os.replace(write_shard(tmp_path / "fixed.npz", 10, tag=0.5), truncated)
    assert buf.refresh() == 10 and "01-truncated.npz" not in buf.skipped and len(messages) == 6


def test_read_shard_errors_are_one_line_and_name_the_file(tmp_path):
    bad = tmp_path / "x.npz"
    bad.write_bytes(b"PK\x03\x04broken")
    with pytest.raises(ShardError) as err:
        read_shard(bad, SIZE)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)


def test_empty_or_missing_folder(tmp_path):
    buf = ReplayBuffer(tmp_path / "nothing", SIZE, cfg())
    assert buf.refresh() == 0 and len(buf) == 0
    with pytest.raises(ValueError, match="empty"):
        buf.sample(1)


def v2(n: int, **override) -> dict:
    """The auxiliary arrays of a version-2 shard of ``n`` samples (ownership, score, weights)."""
    arrays = dict(policy_weight=np.ones(n, np.float32), ownership=np.zeros((n, SIZE, SIZE), np.int8),
                  score=np.zeros(n, np.float32), aux_weight=np.ones(n, np.float32), version=np.int32(2))
    arrays.update(override)
    return arrays


def test_bad_auxiliary_targets_are_reported_by_name_and_skipped(tmp_path):
    data = tmp_path / "data"
    write_shard(data / "00-good.npz", 6, tag=0.1, **v2(6))
    write_shard(data / "01-ownership-shape.npz", 6, **v2(6, ownership=np.zeros((6, 9, 9), np.int8)))
    write_shard(data / "02-ownership-range.npz", 6, **v2(6, ownership=np.full((6, SIZE, SIZE), 3, np.int8)))
    write_shard(data / "03-score-nan.npz", 6, **v2(6, score=np.full(6, np.nan, np.float32)))
    write_shard(data / "04-negative-weight.npz", 6, **v2(6, policy_weight=np.full(6, -1.0, np.float32)))
    messages = []
    buf = ReplayBuffer(data, SIZE, cfg(), report=messages.append)
    assert buf.refresh() == 6 and len(messages) == 4 and all("\n" not in m for m in messages)
    for name in ("01-ownership-shape", "02-ownership-range", "03-score-nan", "04-negative-weight"):
        assert sum(name in m for m in messages) == 1, (name, messages)


def test_version_1_shards_train_the_value_but_not_the_auxiliary_heads(tmp_path):
    data = tmp_path / "data"
    write_shard(data / "old.npz", 8, tag=0.2)  # version 1: no auxiliary arrays
    buf = ReplayBuffer(data, SIZE, cfg(), seed=0)
    assert buf.refresh() == 8
    b = buf.sample(16)
    assert (b.policy_weight == 1).all() and (b.aux_weight == 0).all() and (b.ownership == 0).all()


def test_ownership_turns_with_the_board(tmp_path):
    """Augmentation moves ownership with the planes: a sample whose ownership marks its own stones keeps
    marking them under every symmetry."""
    data = tmp_path / "data"
    rng = np.random.default_rng(0)
    feats = rng.integers(0, 2, (40, NUM_PLANES, SIZE, SIZE)).astype(np.uint8)
    write_shard(data / "s.npz", 40, features=feats, **v2(40, ownership=feats[:, 0].astype(np.int8)))
    buf = ReplayBuffer(data, SIZE, cfg(), seed=1)
    buf.refresh()
    b = buf.sample(200)
    assert (b.ownership == b.features[:, 0]).all()
