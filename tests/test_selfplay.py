"""Self-play end to end on a CPU: the run directory of docs/design.md ("Contracts") and the CLI around it.

A real (fresh, tiny) network plays a few 7x7 games; what lands on disk is read back the way a trainer or a
human would read it: training shards with numpy, SGF with ``specmcts.sgf``, TensorBoard events with
tensorboard's own reader. The shards and the SGF files must tell the same story (same positions, the
outcome from the side to move's view, the played move among the visited ones).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from games.go import BLACK, EMPTY, WHITE, GoRules
from native.features import NUM_PLANES
from specmcts import cli
from specmcts.config import CONFIG_DIR, CPU_FALLBACK, load_config
from specmcts.cli import summary_json
from specmcts.training.selfplay import SelfPlay, format_summary, run_selfplay
from specmcts.sgf import read_sgf

TINY = CONFIG_DIR / "tiny.yaml"
# One torch thread: batches of a few 7x7 rows gain nothing from intra-op threads, and on a busy two-core
# machine the threads' barriers made each forward ~30x slower (seconds per game became minutes).
ONE_THREAD_ENV = {"OMP_NUM_THREADS": "1"}
SUMMARY_KEYS = ("games", "moves", "sims_per_s", "evals_per_s", "cache_hit_rate", "mean_game_length", "wall_s")


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_config(**overrides):
    """configs/tiny.yaml (7x7, 2x32 net), fewer simulations, CPU."""
    settings = {"search.sims": 16, "evaluator.device": "cpu", "selfplay.games": 3, "selfplay.concurrent": 3,
                "selfplay.shard_games": 2, **overrides}
    return load_config(TINY, [f"{key}={value}" for key, value in settings.items()])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Three games into a fresh run directory: two shards (2 games, then the last one at close)."""
    out = tmp_path_factory.mktemp("run")
    cfg = tiny_config()
    started = time.time()
    summary = run_selfplay(cfg, out)
    finished = time.time()
    return {"out": out, "cfg": cfg, "summary": summary, "started": started, "finished": finished}


def load_shards(out: Path) -> list[dict]:
    shards = []
    for path in sorted((out / "data").glob("*.npz")):
        with np.load(path) as data:
            shards.append({name: data[name] for name in data.files})
    return shards


def replay(game) -> list[np.ndarray]:
    """Feature planes of every position of an SGF game before each move, as self-play encodes them."""
    state = game.initial_state()
    planes = []
    for a in game.moves:
        planes.append(state.features(np.uint8))
        state.play(a)
    return planes


def outcome(winner: int, mover: int) -> float:
    return 0.0 if winner == EMPTY else (1.0 if winner == mover else -1.0)


# ----------------------------------------------------------------------------------------------
# The run directory


def test_summary_has_the_promised_keys(run):
    s = run["summary"]
    for name in SUMMARY_KEYS:
        assert name in s, name
    assert s["games"] == 3
    assert s["moves"] > 0 and s["mean_game_length"] == s["moves"] / s["games"]
    assert s["sims_per_s"] > 0 and s["evals_per_s"] > 0 and s["wall_s"] > 0
    assert 0.0 <= s["cache_hit_rate"] <= 1.0
    assert s["sims"] >= s["moves"] * 16  # every move searched its simulations (plus root expansions)
    assert s["device"] == "cpu" and s["model_id"].startswith("fresh-")
    assert s["shards"] == 2
    json.loads(summary_json(s))
    line = format_summary(s)
    assert "\n" not in line and "3 games" in line


def test_shards_have_the_documented_shapes_and_metadata(run):
    out, s = run["out"], run["summary"]
    assert not list((out / "data").glob("*.tmp"))  # written to a temp name and renamed
    shards = load_shards(out)
    assert len(shards) == 2
    size = 7
    total = 0
    for shard in shards:
        features, policy, value = shard["features"], shard["policy"], shard["value"]
        n = features.shape[0]
        total += n
        assert features.dtype == np.uint8 and features.shape == (n, NUM_PLANES, size, size)
        assert set(np.unique(features)) <= {0, 1}
        assert policy.dtype == np.float32 and policy.shape == (n, size * size + 1)
        assert (policy >= 0).all()
        np.testing.assert_allclose(policy.sum(axis=1), 1.0, atol=1e-5)
        assert value.dtype == np.float32 and value.shape == (n,)
        assert set(np.unique(value)) <= {-1.0, 0.0, 1.0}
        assert int(shard["board_size"]) == size
        assert float(shard["komi"]) == 7.5
        assert "area" in str(shard["rules"])
        assert str(shard["model_id"]) == s["model_id"]
        assert run["started"] <= float(shard["created"]) <= run["finished"]
        assert shard["move_number"].shape == (n,) and shard["move_number"][0] == 0
    assert total == s["moves"]  # one sample per decision (a resignation included)


def test_shards_and_sgf_tell_the_same_games(run):
    out, cfg = run["out"], run["cfg"]
    games = [read_sgf(path) for path in sorted((out / "sgf").glob("*.sgf"))]
    assert len(games) == 3
    # Split the shards into games (move numbers restart at 0) and match each with its SGF by the positions.
    segments = []
    for shard in load_shards(out):
        starts = list(np.flatnonzero(shard["move_number"] == 0)) + [len(shard["value"])]
        for a, b in zip(starts[:-1], starts[1:]):
            segments.append({name: shard[name][a:b] for name in ("features", "policy", "value", "move_number")})
    assert len(segments) == 3
    unmatched = list(range(3))
    for game in games:
        assert game.rules == GoRules(7, 7.5, True)
        planes = replay(game)
        final = game.to_state()
        assert final.result_string() == game.result  # the game replays to its recorded result
        match = [i for i in unmatched
                 if len(segments[i]["value"]) == len(game.moves) + int(game.resigned)
                 and np.array_equal(segments[i]["features"][:len(planes)], np.stack(planes))]
        assert len(match) == 1, "no shard segment holds this game's positions"
        unmatched.remove(match[0])
        seg = segments[match[0]]
        np.testing.assert_array_equal(seg["move_number"], np.arange(len(seg["value"])))
        movers = [BLACK if i % 2 == 0 else WHITE for i in range(len(seg["value"]))]
        np.testing.assert_array_equal(seg["value"], [outcome(game.winner, m) for m in movers])
        for i, a in enumerate(game.moves):  # the played move was searched (temperature picks visited moves)
            assert seg["policy"][i, a] > 0
        if not game.resigned:  # two passes (or the move limit) ended it
            assert final.is_over or len(game.moves) == (cfg.selfplay.max_moves or final.rules.max_moves)


def test_tensorboard_events_can_be_read_back(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run["out"] / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for tag in ("game/length", "selfplay/sims_per_s", "selfplay/evals_per_s", "selfplay/cache_hit_rate",
                "selfplay/mean_game_length"):
        assert tag in tags, (tag, sorted(tags))
    families: dict = {}  # one step axis per family: a tag's points sit at steps of its family's fullest series
    for tag in tags:
        families.setdefault(tag.split("/")[0], []).append({e.step for e in acc.Scalars(tag)})
    for family, series in families.items():
        fullest = max(series, key=len)
        assert all(steps <= fullest for steps in series), (family, series)
    lengths = acc.Scalars("game/length")
    assert [e.step for e in lengths] == [1, 2, 3]  # one point per finished game
    assert sum(e.value for e in lengths) == run["summary"]["moves"]
    last = acc.Scalars("selfplay/mean_game_length")[-1]
    assert last.value == pytest.approx(run["summary"]["mean_game_length"])


# ----------------------------------------------------------------------------------------------
# Resignation


def play_tiny(tmp_path, **overrides) -> tuple[SelfPlay, dict]:
    from specmcts.engine.evaluator import make_evaluator
    from specmcts.engine.network import build_net
    from specmcts.engine.nncache import NNCache

    cfg = tiny_config(**{"search.sims": 8, "selfplay.games": 2, "selfplay.concurrent": 2, **overrides})
    torch.manual_seed(cfg.seed)
    net = build_net(7, cfg.net)
    evaluator = make_evaluator(cfg, 7, net, device="cpu")
    cache = NNCache(cfg.evaluator.cache_entries, 50, 99)
    runner = SelfPlay(cfg, evaluator, cache, out=tmp_path, tensorboard=False)
    return runner, runner.run()


@pytest.mark.parametrize("slow", ["first step", "every step"])
def test_the_time_the_games_will_take_is_estimated_after_the_first_batch(tmp_path, capsys, monkeypatch, slow):
    """A first run compiles the kernels in its first batch (up to a minute): the estimate of the games'
    duration leaves that batch out, so a quick run never says it will take hours (a fresh clone's first
    command said 32.6 hours), and a slow one still does."""
    from specmcts.engine.evaluator import make_evaluator
    from specmcts.engine.network import build_net
    from specmcts.engine.nncache import NNCache
    from specmcts.training import selfplay as selfplay_module

    monkeypatch.setattr(selfplay_module, "ETA_AFTER_S", 0.3)
    cfg = tiny_config(**{"search.sims": 8, "selfplay.games": 200 if slow == "first step" else 10**6,
                         "selfplay.concurrent": 2})
    evaluator = make_evaluator(cfg, 7, build_net(7, cfg.net), device="cpu")
    runner = SelfPlay(cfg, evaluator, NNCache(cfg.evaluator.cache_entries, 50, 99), out=None, progress=True,
                      tensorboard=False)
    runner.report_every = 0.05
    step, started = runner.pipeline.step, time.perf_counter()

    def compile_then_run():
        if runner.steps == 0 or slow == "every step":
            time.sleep(1.0 if runner.steps == 0 else 0.01)  # the first batch's compile; a slow device after it
        step()

    monkeypatch.setattr(runner.pipeline, "step", compile_then_run)
    runner.stop_when = lambda: time.perf_counter() - started > 3.0
    runner.run()
    said = "will take about" in capsys.readouterr().err
    assert said == (slow == "every step")


def test_games_resign_below_the_threshold(tmp_path):
    runner, summary = play_tiny(tmp_path, **{"moves.resign_threshold": 0.99, "moves.no_resign_fraction": 0.0})
    assert summary["resign_rate"] == 1.0
    consecutive = runner.cfg.moves.resign_consecutive
    for rec in runner.records:
        assert rec.result in ("B+R", "W+R")
        assert rec.moves[-1] == runner.rules.resign_action
        loser = BLACK if rec.result == "W+R" else WHITE
        assert rec.to_play[-1] == loser  # the side to move resigned
        # ... after `consecutive` of its own moves below the threshold, the resignation included
        own_values = [v for v, c in zip(rec.root_values, rec.to_play) if c == loser][-consecutive:]
        assert len(own_values) == consecutive and max(own_values) < 0.99
    for path in (tmp_path / "sgf").glob("*.sgf"):
        game = read_sgf(path)
        assert game.resigned and game.result in ("B+R", "W+R")
        state = game.to_state()
        assert state.is_over and state.result_string() == game.result
    (shard,) = load_shards(tmp_path)
    assert set(np.unique(shard["value"])) == {-1.0, 1.0}


@pytest.mark.parametrize("root", ["puct", "gumbel"])
def test_self_play_roots_do_not_pass_early(root):
    """A run fell into two-move games: Black passed at once, White passed back, komi won, and its net learned
    that. With a net that wants nothing but the pass, self-play's roots do not pass before
    ``moves.pass_from`` (default half the board's points) while they have another move; with the rule off
    (0) the games end after two passes, which is what the rule prevents."""
    from specmcts.config import Config, pass_from
    from specmcts.engine.nncache import NNCache
    from tests.helpers import pass_loving_evaluator

    def play(first_pass):
        cfg = Config().override("game.board=9", "seed=3", "selfplay.games=2", "selfplay.concurrent=2",
                                "search.sims=16", "search.leaves_per_tree=4", f"search.root={root}",
                                "moves.fast_sims=4", "moves.resign_consecutive=0", "selfplay.max_moves=60",
                                f"moves.pass_from={first_pass}")
        runner = SelfPlay(cfg, pass_loving_evaluator(9), NNCache(1 << 12, 82, 163), out=None, tensorboard=False)
        runner.run()
        return cfg, runner.records

    cfg, records = play(-1)
    assert pass_from(cfg.moves, 9) == 40
    pass_action = 81
    for rec in records:
        assert len(rec.moves) > 40
        assert pass_action not in rec.moves[:40], rec.moves
        assert pass_action in rec.moves[40:]  # from move 40 on it may pass, and this net does
        for target in rec.targets[:40]:
            assert target[pass_action] == 0.0  # nor does the pass get a policy target
    _, collapsed = play(0)
    assert all(rec.moves == [pass_action, pass_action] for rec in collapsed)


def test_no_resign_games_play_on_and_count_false_resignations(tmp_path):
    runner, summary = play_tiny(tmp_path, **{"moves.resign_threshold": 0.99, "moves.no_resign_fraction": 1.0,
                                             "selfplay.max_moves": 30})
    assert summary["resign_rate"] == 0.0
    for rec in runner.records:
        assert rec.no_resign
        assert runner.rules.resign_action not in rec.moves
        assert not rec.result.endswith("+R")
        assert rec.would_resign in (BLACK, WHITE)  # at 0.99 everybody would have resigned
    wrong = [rec.winner == rec.would_resign for rec in runner.records]
    assert summary["false_resign_rate"] == sum(wrong) / len(wrong)
    for path in (tmp_path / "sgf").glob("*.sgf"):
        game = read_sgf(path)
        assert not game.resigned
        assert game.to_state().result_string() == game.result  # scored as it stands at the move limit


def test_seeded_selfplay_is_reproducible_on_cpu(tmp_path):
    first, _ = play_tiny(tmp_path / "a", **{"selfplay.max_moves": 40})
    second, _ = play_tiny(tmp_path / "b", **{"selfplay.max_moves": 40})
    for a, b in zip(first.records, second.records, strict=True):
        assert a.index == b.index and a.moves == b.moves and a.result == b.result
        np.testing.assert_array_equal(np.stack(a.targets), np.stack(b.targets))


# ----------------------------------------------------------------------------------------------
# Command line


def test_cli_selfplay_json_subprocess(tmp_path):
    out = tmp_path / "cli-run"
    proc = subprocess.run(
        [sys.executable, "-m", "specmcts", "selfplay", "--config", str(TINY), "--games", "2", "--out", str(out),
         "--device", "cpu", "--json"],
        capture_output=True, text=True, timeout=300, env={**os.environ, **ONE_THREAD_ENV},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)  # one JSON object and nothing else on stdout
    assert isinstance(summary, dict)
    assert summary["games"] == 2
    for name in SUMMARY_KEYS:
        assert name in summary
    assert len(list((out / "sgf").glob("*.sgf"))) == 2
    assert list((out / "data").glob("*.npz"))
    assert (out / "tb").is_dir()


def parse(*argv: str):
    return cli.build_parser().parse_args(["selfplay", *argv])


def test_board_9_without_config_on_a_cpu_applies_the_cpu_fallback(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    defaults = load_config("go9")
    fallback = load_config("go9", CPU_FALLBACK)
    cfg = cli.config_from_args(parse("--board", "9"))
    assert cfg.cpu_fallback
    assert cfg.game.board == 9
    assert (cfg.net.blocks, cfg.net.channels) == (fallback.net.blocks, fallback.net.channels)
    assert (cfg.net.blocks, cfg.net.channels) != (defaults.net.blocks, defaults.net.channels)
    assert cfg.search.sims == fallback.search.sims < defaults.search.sims
    assert cfg.selfplay.games == fallback.selfplay.games
    # the rest of the go9 preset stays
    assert cfg.moves.temperature_moves == defaults.moves.temperature_moves
    assert cfg.game.komi == defaults.game.komi


def test_flags_and_overrides_sit_above_the_cpu_fallback(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = cli.config_from_args(parse("--board", "9", "--sims", "100", "--set", "selfplay.games=3"))
    assert cfg.cpu_fallback and cfg.search.sims == 100 and cfg.selfplay.games == 3
    assert cli.config_from_args(parse("--board", "9", "--device", "cpu")).cpu_fallback


def test_explicit_config_never_falls_back(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = cli.config_from_args(parse("--config", str(CONFIG_DIR / "go9.yaml"), "--board", "9"))
    assert not cfg.cpu_fallback
    assert cfg.search.sims == load_config("go9").search.sims


def test_json_summaries_are_valid_json():
    """A rate with nothing to count (a stage that never predicted) is NaN in Python and null in --json."""
    text = summary_json({"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": float("nan"), "e": 2}})
    assert text == '{"a": null, "b": [1.0, null], "c": {"d": null, "e": 2}}'
