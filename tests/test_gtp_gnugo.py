"""Real opponents: ``specmcts gtp`` (a subprocess, a fresh 2x32 net, 16 visits) plays GnuGo level 1 over GTP.

Two full 9x9 games, one with each colour, driven by ``specmcts.play.engine_match`` to the end (two passes, the length
limit or a resignation); for every game that is scored, both engines' ``final_score`` answers must agree.
Every game is written as SGF and reads back with the agreed result.

A fresh net loses those games by the whole board, which makes agreeing easy; so GnuGo also plays itself
without ``--capture-all-dead`` (games end with dead stones on the board) and our ``final_score`` must match
GnuGo's on each of those final positions.

Not optional: CI installs GnuGo, so a missing binary is a failure, not a skip.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from specmcts.play.gtp_client import find_gnugo
from specmcts.play.gtp_client import gnugo_spec, specmcts_spec
from specmcts.play.engine_match import format_table, play_engines, summary
from specmcts.sgf import read_sgf

TINY = ("--device", "cpu", "--set", "net.blocks=2", "--set", "net.channels=32", "--set", "net.value_hidden=32",
        "--set", "evaluator.cache_entries=16384", "--analysis-visits", "64")


@pytest.fixture(scope="module")
def one_thread_env():
    """One torch thread in the engine subprocess: batches of 8 on a tiny net, two cores shared with GnuGo."""
    saved = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    yield
    if saved is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = saved


def test_two_games_against_gnugo_both_colours(tmp_path, one_thread_env):
    if find_gnugo() is None:
        pytest.fail("gnugo is required and was not found on PATH or in /usr/games (apt-get install -y gnugo)",
                    pytrace=False)
    ours = specmcts_spec(visits=16, board=9, model="fresh", seed=0, extra=TINY)
    games = play_engines(ours, gnugo_spec(level=1), games=2, size=9, komi=7.5, out=tmp_path)
    table = format_table(games)
    assert len(games) == 2, table
    assert (games[0].black, games[0].white) == ("specmcts", "gnugo-l1")
    assert (games[1].black, games[1].white) == ("gnugo-l1", "specmcts")
    for game in games:
        assert game.end in ("passes", "length limit", "resignation"), (table, game.note)
        assert game.moves and game.result, table
        if game.end != "resignation":
            assert set(game.scores) == {"specmcts", "gnugo-l1"}, table
            assert game.agreed, table  # both engines' final_score give the same result
            assert len({s.upper().rstrip("0").rstrip(".") for s in game.scores.values()}) == 1, table
        record = read_sgf(game.sgf, validate=False)
        assert record.result == game.result and record.players == (game.black, game.white)
        assert len(record.moves) == len(game.moves)
    s = summary(games, "specmcts")
    assert s["errors"] == 0 and s["games"] == 2 and s["wins"] + s["losses"] + s["draws"] == 2
    assert (tmp_path / "specmcts.log").read_text().count("genmove") >= 1  # our engine logged to its stderr


def test_our_final_score_agrees_with_gnugo_on_positions_with_dead_stones(tmp_path):
    """GnuGo plays itself without --capture-all-dead, so games end with dead stones on the board; our
    final_score (dead stones found by playouts) must match GnuGo's on every finished game."""
    if find_gnugo() is None:
        pytest.fail("gnugo is required and was not found on PATH or in /usr/games (apt-get install -y gnugo)",
                    pytrace=False)
    import torch

    from specmcts.config import load_config
    from games.scoring import parse_score
    from specmcts.play.gtp import EngineOptions, GtpEngine
    from specmcts.play.gtp_client import EngineSpec

    def gnugo(name, seed):
        spec = gnugo_spec(level=1, seed=seed)
        return EngineSpec(name, tuple(x for x in spec.command if x != "--capture-all-dead"), spec.setup)

    games = play_engines(gnugo("gnugo-a", 1), gnugo("gnugo-b", 2), games=6, size=9, out=tmp_path)
    referee = GtpEngine(load_config(None, ["net.blocks=1", "net.channels=8", "evaluator.device=cpu",
                                           "evaluator.cache_entries=1024"]),
                        options=EngineOptions(visits=1, analysis_visits=8, quiet=True))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with_dead = 0
        for game in games:
            assert game.end == "passes" and game.agreed, format_table(games)
            assert referee.handle(f"loadsgf {game.sgf}").startswith("=")
            ours = referee.handle("final_score").split()[1]
            assert parse_score(ours) == parse_score(game.result), (game.index, ours, game.result)
            with_dead += referee.handle("final_status_list dead").strip() != "="
    finally:
        torch.set_num_threads(threads)
    assert with_dead >= 2  # the test is about dead stones: most of these games end with some


DEAD_STONES_GAME = Path(__file__).parent / "data" / "gnugo_self_7.sgf"


def test_final_score_uses_the_trained_nets_ownership_head():
    """A finished GnuGo-vs-GnuGo position (tests/data/gnugo_self_7.sgf) where random playouts alone misjudge
    a chain: the shipped net's ownership head, averaged with the playouts, finds GnuGo's dead stones and
    score (GnuGo asked live); an untrained net's head is not used, so it answers what the playouts say."""
    if find_gnugo() is None:
        pytest.fail("gnugo is required and was not found on PATH or in /usr/games (apt-get install -y gnugo)",
                    pytrace=False)
    from games.scoring import estimate_status, parse_score
    from specmcts.config import load_config
    from specmcts.play.gtp import EngineOptions, GtpEngine
    from specmcts.play.gtp_client import GtpClient, gnugo_command

    gnugo = GtpClient(gnugo_command(level=10, chinese_rules=True))
    try:
        gnugo.send(f"loadsgf {DEAD_STONES_GAME}")
        gnugo_score = gnugo.send("final_score")
        gnugo_dead = set(gnugo.send("final_status_list dead").upper().split())
    finally:
        gnugo.close()
    assert gnugo_dead  # the position is about dead stones

    def answers(engine):
        assert engine.handle(f"loadsgf {DEAD_STONES_GAME}").startswith("=")
        score = engine.handle("final_score").split()[1]
        dead = set(engine.handle("final_status_list dead")[1:].split())
        return score, dead

    shipped = GtpEngine(load_config(None, ["evaluator.device=cpu"]), options=EngineOptions(quiet=True))
    assert shipped.source.net(9).trained_steps > 0
    score, dead = answers(shipped)
    assert (parse_score(score), dead) == (parse_score(gnugo_score), gnugo_dead)

    playouts_only = estimate_status(read_sgf(DEAD_STONES_GAME).to_state()).result()
    assert parse_score(playouts_only) != parse_score(gnugo_score)  # why this position is in the test
    fresh = GtpEngine(load_config(None, ["net.blocks=1", "net.channels=8", "evaluator.device=cpu"]),
                      model_path="fresh", options=EngineOptions(quiet=True))
    assert answers(fresh)[0] == playouts_only


def test_ctrl_c_of_the_gtp_match_tool_keeps_the_finished_games(tmp_path):
    """`tools/gtp_vs_gnugo.py` stopped by a terminal's Ctrl-C (SIGINT to its whole process group, engines
    included): the finished games are printed and kept as SGF, exit 130; no engine error."""
    import json
    import subprocess
    import sys

    from tests.helpers import ctrl_c_when

    assert find_gnugo() is not None, "GnuGo is needed (apt-get install -y gnugo; CI installs it)"
    out = tmp_path / "m"
    tool = Path(__file__).resolve().parent.parent / "tools" / "gtp_vs_gnugo.py"
    proc = subprocess.Popen([sys.executable, str(tool), "--board", "5", "--visits", "4", "--games", "2000",
                             "--out", str(out), "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), start_new_session=True)
    stdout, stderr = ctrl_c_when(proc, lambda: len(list(out.glob("*.sgf"))) >= 2, "gtp_vs_gnugo.py")
    assert proc.returncode == 130, stderr
    result = json.loads(stdout)
    games = result["games"]
    assert result["summary"]["stop_reason"] == "interrupted" and result["summary"]["errors"] == 0, result["summary"]
    assert len(games) == len(list(out.glob("*.sgf"))) >= 2
    assert all(read_sgf(p).result for p in out.glob("*.sgf"))
