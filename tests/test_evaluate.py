"""Matches and Elo: the interval math, colours alternate, SGF of every game, GTP opponents (GnuGo, a broken
engine), gating, and the `specmcts eval` command."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from games import BLACK, WHITE, GoRules
from specmcts import cli
from specmcts.config import load_config
from specmcts.play.elo import elo_from_score, estimate, score_from_elo, wilson_interval
from specmcts.play.match import GTPSide, NetSide, RandomSide, Side, gate, net_side, opponent_side, play_match
from specmcts.engine.network import build_net, save_model
from specmcts.sgf import read_sgf
from tests.helpers import stub_engine

SIZE = 5
RULES = GoRules(SIZE, 7.5)


def tiny_config(*extra: str):
    return load_config("tiny", ["game.board=5", "search.sims=8", "evaluator.device=cpu", *extra])


class FirstPoint(Side):
    """Plays the lowest legal point (pass when there is none)."""

    def __init__(self, name: str):
        self.name = name

    def genmove(self, requests):
        out = []
        for _g, state in requests:
            legal = state.legal_actions()
            points = [a for a in legal if a < SIZE * SIZE]
            out.append((int(points[0]) if points else SIZE * SIZE, None))
        return out


class Passer(Side):
    def __init__(self, name: str = "passer"):
        self.name = name
        self.observed = []

    def genmove(self, requests):
        return [(SIZE * SIZE, "pass") for _ in requests]

    def observe(self, game, colour, action):
        self.observed.append((game, colour, action))


# -- Elo ------------------------------------------------------------------------------------------------------


def test_elo_of_a_score():
    assert elo_from_score(0.5) == 0
    assert elo_from_score(0.75) == pytest.approx(190.85, abs=0.01)
    assert elo_from_score(0.25) == pytest.approx(-elo_from_score(0.75))
    assert score_from_elo(elo_from_score(0.9)) == pytest.approx(0.9)
    assert math.isinf(elo_from_score(1.0)) and math.isinf(elo_from_score(0.0))


def test_elo_interval():
    e = estimate(30, 0, 10)
    assert e.score == 0.75 and e.elo == pytest.approx(190.85, abs=0.01)
    assert e.low < e.elo < e.high
    # Wilson 95 % interval of 30/40: [0.598, 0.858]
    low, high = wilson_interval(0.75, 40)
    assert (low, high) == pytest.approx((0.5980, 0.8579), abs=1e-3)
    assert e.low == pytest.approx(elo_from_score(low)) and e.high == pytest.approx(elo_from_score(high))
    even = estimate(20, 0, 20)
    assert even.elo == 0 and even.low == pytest.approx(-even.high)
    assert estimate(10, 20, 10).elo == 0 and estimate(10, 20, 10).high < even.high  # draws narrow it
    shutout = estimate(40, 0, 0)
    assert math.isfinite(shutout.elo) and shutout.elo > 500 and shutout.high == math.inf and shutout.low > 300
    assert shutout.as_dict()["elo_high"] is None  # JSON has no infinity
    assert "+inf" in str(shutout) and "40-0" in str(shutout)
    more = estimate(400, 0, 0)
    assert more.low > shutout.low  # more games, tighter bound


def test_gate():
    assert gate(0.55, 0.55) and gate(0.8, 0.55) and not gate(0.54, 0.55)


# -- matches --------------------------------------------------------------------------------------------------


def test_colours_alternate_and_every_game_has_an_sgf(tmp_path):
    a, b = FirstPoint("filler"), Passer()
    result = play_match(RULES, a, b, games=6, concurrent=4, sgf_dir=tmp_path, prefix="m")
    assert [g.index for g in result.games] == list(range(6))
    assert [g.a_colour for g in result.games] == [BLACK, WHITE] * 3
    assert result.wins == 6 and result.score == 1.0  # filling the board beats passing, with either colour
    files = sorted(tmp_path.glob("m-*.sgf"))
    assert len(files) == 6
    for g, path in zip(result.games, files):
        sgf = read_sgf(path)  # validates every move
        assert sgf.players == ((g.black, g.white))
        assert sgf.result == g.result and sgf.winner == g.winner
        assert len(sgf.moves) == g.moves
    assert result.summary()["a_black_score"] == 1.0 == result.summary()["a_white_score"]
    assert b.observed and all(action < SIZE * SIZE + 1 for _, _, action in b.observed)


def test_a_stopped_match_keeps_the_finished_games_and_starts_no_more(tmp_path):
    """stop_when (a Ctrl-C in `specmcts eval`) is checked before each side's moves: the match returns the games
    finished by then, each with its SGF, and abandons the ones in flight (no SGF, not counted)."""
    finished = []
    result = play_match(RULES, FirstPoint("filler"), Passer(), games=50, concurrent=4, sgf_dir=tmp_path, prefix="m",
                        on_game=finished.append, stop_when=lambda: len(finished) >= 3)
    assert result.stopped and 3 <= len(result.games) < 50
    assert [g.index for g in result.games] == [g.index for g in sorted(finished, key=lambda g: g.index)]
    assert sorted(tmp_path.glob("m-*.sgf")) == sorted(Path(g.sgf) for g in result.games)
    assert result.summary()["games"] == len(result.games)
    whole = play_match(RULES, FirstPoint("filler"), Passer(), games=2, concurrent=2, stop_when=lambda: False)
    assert not whole.stopped and len(whole.games) == 2


def test_net_match_is_reproducible_and_counts_resignations(tmp_path):
    cfg = tiny_config("eval.temperature_moves=4")
    net_a = build_net(SIZE, cfg.net)
    results = []
    for _ in range(2):
        a = net_side("net", net_a, cfg, concurrent=4, seed=5)
        b = RandomSide(seed=3)
        results.append(play_match(RULES, a, b, games=4, concurrent=4))
    assert [g.result for g in results[0].games] == [g.result for g in results[1].games]
    assert [g.moves for g in results[0].games] == [g.moves for g in results[1].games]
    s = results[0].summary()
    assert s["games"] == 4 and s["wins"] + s["losses"] + s["draws"] == 4 and "resignations" in s


FORFEITING_ENGINE = stub_engine("A1")


def test_an_illegal_gtp_move_forfeits_the_game(tmp_path):
    engine = tmp_path / "engine.py"
    engine.write_text(FORFEITING_ENGINE)
    b = GTPSide("stubborn", [sys.executable, str(engine)], RULES, concurrent=2)
    try:
        result = play_match(RULES, FirstPoint("filler"), b, games=2, concurrent=2, sgf_dir=tmp_path)
    finally:
        b.close()
    # Game 0: filler (Black) takes A5 first... the engine answers A1 every time, illegal once it is occupied.
    assert {g.result for g in result.games} == {"B+F", "W+F"}
    assert result.wins == 2
    sgf = read_sgf(sorted(tmp_path.glob("*.sgf"))[0])
    assert "forfeits" in (sgf.game_comment or "")


def test_match_against_gnugo(tmp_path, gnugo):
    cfg = tiny_config()
    a = net_side("net", build_net(SIZE, cfg.net), cfg, concurrent=2)
    from specmcts.play.match import opponent_side

    b = opponent_side("gnugo", cfg, concurrent=2, gnugo_level=0)
    try:
        result = play_match(RULES, a, b, games=2, concurrent=2, sgf_dir=tmp_path)
    finally:
        a.close()
        b.close()
    assert b.name == "gnugo-l0" and len(result.games) == 2
    assert {result.games[0].black, result.games[1].white} == {"net"}
    for path in tmp_path.glob("*.sgf"):
        read_sgf(path)


# -- the command ----------------------------------------------------------------------------------------------


def test_cli_eval(tmp_path, capsys, monkeypatch):
    cfg = tiny_config()
    a = tmp_path / "a.pt"
    save_model(a, build_net(SIZE, cfg.net))
    common = ["--config", "tiny", "--board", "5", "--sims", "8", "--device", "cpu", "--quiet",
              "--out", str(tmp_path / "run")]
    assert cli.main(["eval", "--model", str(a), "--opponent", "random", "--games", "4", "--json", *common]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["games"] == 4 and s["b"] == "random" and s["sims"] == 8 and "elo_low" in s
    assert len(list((tmp_path / "run" / "eval" / "sgf").glob("*.sgf"))) == 4
    # Checkpoint vs checkpoint, the one-line summary.
    assert cli.main(["eval", "--model", str(a), "--opponent", str(a), "--games", "2", *common]) == 0
    line = capsys.readouterr().out
    assert line.startswith("eval: a vs a'") and line.count("\n") == 1 and "Elo" in line
    # A broken checkpoint: one line naming it.
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"nonsense")
    assert cli.main(["eval", "--model", str(bad), "--opponent", "random", "--games", "2", *common]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and err.count("\n") == 1 and "Traceback" not in err
    assert cli.main(["eval", "--model", str(a), "--opponent", str(tmp_path / "missing.pt"), "--games", "2", *common]) == 1
    assert "missing.pt" in capsys.readouterr().err
    # 'shipped' names the embedded net as an opponent too, as it does for --model; in a package without a
    # net that plays 5x5, one line
    from specmcts.engine import network

    monkeypatch.setattr(network, "WEIGHTS_DIR", tmp_path / "no-weights")
    assert cli.main(["eval", "--model", str(a), "--opponent", "shipped", "--games", "2", *common]) == 1
    err = capsys.readouterr().err
    assert "no net ships for 5x5" in err and err.count("\n") == 1


def test_a_net_opponent_has_settings_of_its_own(tmp_path, capsys, monkeypatch):
    """--opponent-set: the same net at other settings (another dtype, more visits) as the opponent; the
    match's own settings stay the candidate's, and the summary says what differs."""
    from specmcts.play import match

    cfg = tiny_config()
    a = tmp_path / "a.pt"
    save_model(a, build_net(SIZE, cfg.net))
    built = []
    real = match.net_side
    monkeypatch.setattr(match, "net_side", lambda *args, **kw: built.append(real(*args, **kw)) or built[-1])
    common = ["--config", "tiny", "--board", "5", "--sims", "8", "--device", "cpu", "--quiet", "--games", "2",
              "--out", str(tmp_path / "run"), "--model", str(a), "--set", "evaluator.cpu_dtype=bfloat16"]
    assert cli.main(["eval", "--opponent", str(a), "--opponent-set", "evaluator.cpu_dtype=float32",
                     "--opponent-set", "search.sims=4", "--json", *common]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["opponent_settings"] == {"search.sims": 4, "evaluator.cpu_dtype": "float32"} and s["sims"] == 8
    mine, theirs = built  # the sides as they played
    assert (mine.evaluator.cpu_mode, mine.sims) == ("bfloat16", 8)
    assert (theirs.evaluator.cpu_mode, theirs.sims) == ("float32", 4)
    assert cli.main(["eval", "--opponent", str(a), "--opponent-set", "search.sims=4", *common]) == 0
    assert "vs a' (search.sims=4):" in capsys.readouterr().out
    # only a net has a config; a bad value is a usage error naming the flag and the key
    for opponent, value, words in (("random", "search.sims=4", "a net opponent's config"),
                                   (str(a), "evaluator.cpu_dtype=int8", "--opponent-set: evaluator.cpu_dtype")):
        assert cli.main(["eval", "--opponent", opponent, "--opponent-set", value, *common]) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1


def test_the_shipped_net_as_opponent():
    cfg = load_config("go9cpu")
    side = opponent_side("shipped", cfg, concurrent=1)
    try:
        # specmcts/weights/go9.pt (not a file named 'shipped'), and the match calls it what it is
        from specmcts.engine.network import embedded_model, load_model

        embedded, _ = load_model(embedded_model(9))
        assert isinstance(side, NetSide) and side.name == "shipped"
        assert side.evaluator.model_id == embedded.model_id
    finally:
        side.close()


def test_every_game_of_a_match_is_distinct_and_openings_are_played_with_colours_swapped(tmp_path, capsys, gnugo):
    """Honest strength: per-game seeds on both sides (GnuGo reseeded each game) and a random opening per pair
    of games, played once with each colour; the summary counts distinct games and names the opening."""
    import json

    from specmcts import cli
    from specmcts.config import NetConfig
    from specmcts.engine.network import build_net, save_model
    from specmcts.sgf import read_sgf

    model = tmp_path / "net.pt"
    save_model(model, build_net(5, NetConfig(blocks=1, channels=8, value_hidden=8)), {"step": 0})
    assert cli.main(["eval", "--board", "5", "--model", str(model), "--opponent", "gnugo", "--games", "6",
                     "--out", str(tmp_path), "--seed", "3", "--set", "eval.sims=4", "--set", "eval.temperature_moves=1",
                     "--quiet", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["distinct_games"] == 6 and summary["duplicate_games"] == 0
    assert "2 random plies per pair" in summary["opening"]
    records = [read_sgf(p) for p in sorted((tmp_path / "eval" / "sgf").glob("*.sgf"))]
    openings = [tuple(r.moves[:2]) for r in records]
    assert openings[0] == openings[1] and openings[2] == openings[3] and openings[0] != openings[2]
