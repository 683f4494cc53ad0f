"""Mixed-size training (``game.boards``): one net learns several board sizes at once, as KataGo's does. The
mechanics at toy size (5x5 and 7x7): the config, how self-play splits its games, the replay buffer drawing each
size by its share (one size per batch), and a whole run whose shards, checkpoints and TensorBoard points are
per size."""
from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest
import yaml

from specmcts.config import Config, ConfigError, TrainConfig, load_config
from specmcts.training.loop import run_loop
from specmcts.training.schedule import BoardSchedule, generation_games
from specmcts.engine.network import build_net, on_board, provenance, read_checkpoint
from specmcts.training.replay import MixedReplay, ReplayBuffer, make_replay

from tests.helpers import toy_run, write_shard

RUN = toy_run(
    name="mixed57", game={"board": 5, "boards": "[5,7]", "shares": "[1,3]"},
    search={"sims": 12, "leaves_per_tree": 4}, evaluator={"cache_entries": 4096}, selfplay={"concurrent": 4},
    train={"batch_size": 16, "min_samples": 32, "checkpoint_every": 4, "log_every": 2},
    run={"mode": "generations", "generations": 2, "games_per_generation": 8, "chunk_games": 2,
         "train_samples_per_sample": 0.5, "eval_every": 1, "eval_games": 2, "minutes": 10.0},
    eval={"sims": 4, "concurrent": 2, "opening_plies": 1})


def config(*extra: str) -> Config:
    overrides = [f"{section}.{k}={v}" for section, values in RUN.items() if isinstance(values, dict)
                 for k, v in values.items()]
    return load_config(None, overrides + [f"seed={RUN['seed']}", *extra])


# -- the config ----------------------------------------------------------------------------------------------


def test_boards_and_shares_are_validated_and_written_as_plain_lists():
    cfg = config()
    assert cfg.game.sizes() == (5, 7) and cfg.game.mixed
    assert cfg.game.size_shares() == {5: 0.25, 7: 0.75}
    games = cfg.game.game_shares()  # a 7x7 game gives about 49/25 as many samples as a 5x5 one
    assert games[5] / games[7] == pytest.approx((0.25 / 25) / (0.75 / 49))
    assert cfg.at_board(7).game.board == 7 and cfg.at_board(5) is cfg
    assert yaml.safe_load(yaml.safe_dump(cfg.to_dict()))["game"]["boards"] == [5, 7]  # a run's config.yaml
    single = load_config(None, ["game.board=9"])
    assert single.game.sizes() == (9,) and not single.game.mixed
    for bad, message in [(["game.boards=[5,5]"], "twice"), (["game.boards=[7,9]"], "must be one of game.boards"),
                         (["game.boards=[5,7]", "game.shares=[1]"], "1 values for 2"),
                         (["game.boards=[5,7]", "game.shares=[1,0]"], "> 0"),
                         (["game.shares=[1]"], "needs game.boards"), (["game.boards=[5,30]"], "5..19"),
                         (["game.boards=[5,x]"], r"game.boards\[1\]: expected an integer"),
                         (["game.boards=[5,7]", "net.heads=fc"], "kata"),
                         (["game.boards=[5,7]", "evaluator.shared=on"], "evaluator.shared=off"),
                         (["game.boards=[5,7]", "run.eval_boards=[9]"], "does not play")]:
        with pytest.raises(ConfigError, match=message):
            load_config(None, ["game.board=5", *bad])


def test_self_play_games_follow_the_shares_exactly_over_generations():
    cfg = config("game.boards=[5,7,9]", "game.shares=[1,2,3]", "run.games_per_generation=10")
    shares = cfg.game.game_shares()
    total: Counter = Counter()
    for g in range(50):
        per_size = generation_games(cfg, g)
        assert abs(sum(per_size.values()) - 10) <= 2
        total.update(per_size)
    for b, w in shares.items():  # the carried fractions: exact to one game over the run
        assert abs(total[b] - 500 * w) <= 1
    schedule = BoardSchedule(shares)
    picks = Counter(schedule.next() for _ in range(600))
    for b, w in shares.items():
        assert abs(picks[b] - 600 * w) <= 1
    assert generation_games(load_config(None, ["run.games_per_generation=7"]), 3) == {9: 7}


def test_weights_play_another_size_as_another_net():
    net = build_net(5)
    seven = on_board(net, 7)
    assert seven.board_size == 7 and seven.model_id == net.model_id + "@7x7" and on_board(net, 5) is net
    assert on_board(seven, 5).model_id == net.model_id  # back on its own size: its own id
    x = np.zeros((1, seven.num_planes, 7, 7), np.float32)
    import torch

    policy, _value = seven(torch.from_numpy(x))
    assert policy.shape == (1, 50)


# -- the replay buffer ---------------------------------------------------------------------------------------


def test_each_batch_is_one_size_drawn_by_its_share(tmp_path):
    data = tmp_path / "data"
    write_shard(data / "a-0000.npz", 300, tag=0.1, board=5)
    write_shard(data / "b-0000.npz", 200, tag=0.2, board=7)
    train = dataclasses.replace(TrainConfig(), window_samples=10_000, augment=False)
    replay = MixedReplay(data, {5: 0.25, 7: 0.75}, train, seed=3)
    assert replay.refresh() == 500 and len(replay) == 500 and replay.total_samples == 500
    assert replay.skipped == {}  # each size's buffer ignores the other's shards: nothing is "skipped"
    sizes = Counter()
    for _ in range(400):
        batch = replay.sample(8)
        size = batch.features.shape[-1]
        assert size == replay.last_board and batch.policy.shape == (8, size * size + 1)
        sizes[size] += 1
    assert 0.65 < sizes[7] / 400 < 0.85  # 0.75 expected
    state = replay.state_dict()
    again = MixedReplay(data, {5: 0.25, 7: 0.75}, train, seed=99)
    again.refresh()
    again.load_state_dict(state)  # a resumed trainer draws what an uninterrupted one would have drawn
    for _ in range(5):
        a, b = replay.sample(4), again.sample(4)
        assert np.array_equal(a.features, b.features) and np.array_equal(a.value, b.value)
    assert replay.stats()["sizes"]["7x7"]["total_samples"] == 200


def test_a_size_without_samples_is_not_drawn_and_a_single_size_run_still_reports_strays(tmp_path):
    data = tmp_path / "data"
    write_shard(data / "a-0000.npz", 50, tag=0.1, board=7)
    replay = MixedReplay(data, {5: 0.9, 7: 0.1}, TrainConfig(), seed=0)
    replay.refresh()
    assert {replay.sample(2).features.shape[-1] for _ in range(20)} == {7}
    messages: list[str] = []
    single = ReplayBuffer(data, 5, TrainConfig(), report=messages.append)
    single.refresh()
    assert len(single) == 0 and "is for 7x7, the run is 5x5" in messages[0]
    assert isinstance(make_replay(config(), data), MixedReplay)
    assert isinstance(make_replay(load_config(None, ["game.board=5"]), data), ReplayBuffer)


# -- a whole run ---------------------------------------------------------------------------------------------


def tb_scalars(run_dir) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [e.value for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def shard_sizes(run_dir) -> dict[str, int]:
    out = {}
    for p in sorted((run_dir / "data").glob("*.npz")):
        with np.load(p) as z:
            out[p.name] = int(z["board_size"])
            assert z["features"].shape[-1] == out[p.name]
    return out


def test_a_mixed_run_plays_trains_and_measures_each_size_and_resumes(tmp_path):
    run = tmp_path / "run"
    messages: list[str] = []
    first = run_loop(config(), run, report=messages.append)
    assert first["stop_reason"] == "generations", messages
    per_gen = [generation_games(config(), g) for g in range(2)]
    expected = {}
    for g, per_size in enumerate(per_gen):  # chunks of 2 games, size after size, named by generation and index
        chunks = [b for b, games in per_size.items() for _ in range(0, games, 2)]
        expected.update({f"g{g:05d}-c{c:04d}-b{b:02d}-0000.npz": b for c, b in enumerate(chunks)})
    assert shard_sizes(run) == expected and set(expected.values()) == {5, 7}
    assert sum(sum(p.values()) for p in per_gen) == first["games"]
    sizes = shard_sizes(run)
    totals = read_checkpoint(first["checkpoint"])["run"]["totals"]
    boards = totals["boards"]
    assert boards["5x5"]["games"] + boards["7x7"]["games"] == totals["games"] == first["games"]
    assert boards["7x7"]["games"] == sum(p[7] for p in per_gen) and boards["7x7"]["selfplay_cpu_hours"] > 0
    assert provenance(read_checkpoint(first["checkpoint"]))["boards"] == boards  # what `model export` keeps
    tb = tb_scalars(run)
    for tag in ("train/5x5/loss", "train/7x7/loss", "replay/7x7/total_samples", "selfplay/5x5/games_total",
                "selfplay/5x5/mean_game_length", "selfplay/7x7/mean_game_length",
                "elo/5x5/vs_first", "elo/7x7/vs_first", "train/loss"):
        assert tag in tb, (tag, sorted(tb))
    assert "elo/vs_first" not in tb  # one family per size
    assert all(0 < v <= 7 * 7 * 3 for b in (5, 7) for v in tb[f"selfplay/{b}x{b}/mean_game_length"])
    assert set(first["elo"]) == {"5x5", "7x7"} and first["sizes"]["7x7"]["total_samples"] > 0
    assert {p.name.split("-vs-")[0] for p in (run / "eval" / "elo").glob("*.sgf")} >= {"5x5", "7x7"}
    # a third generation, resumed: what is on disk is kept, the totals carry on
    more = run_loop(config("run.generations=3"), run, resume=True, report=messages.append)
    assert more["generation"] == 3 and more["games"] == sum(generation_games(config(), 2).values())
    again = read_checkpoint(more["checkpoint"])["run"]["totals"]["boards"]
    assert again["7x7"]["games"] == boards["7x7"]["games"] + generation_games(config(), 2)[7]
    assert len(shard_sizes(run)) > len(sizes)


def test_local_processes_play_the_same_mixed_generations(tmp_path):
    """Chunks carry their size through worker processes: the very shards an in-process run writes."""
    cfg = config("run.generations=1", "run.eval_every=0", "run.workers=2")
    here = run_loop(cfg, tmp_path / "here", report=lambda _m: None)
    there = run_loop(cfg, tmp_path / "there", backend="processes", report=lambda _m: None)
    assert (here["step"], here["model_id"]) == (there["step"], there["model_id"])
    a, b = shard_sizes(tmp_path / "here"), shard_sizes(tmp_path / "there")
    assert a == b and set(a.values()) == {5, 7}
