"""Matches against GnuGo: it is started as ``gtp_match.gnugo_spec`` starts it (Chinese rules, positional
superko, ``--capture-all-dead``), and every finished game is judged by GnuGo's ``final_score`` (dead stones
removed) as well as by our Tromp-Taylor count of the board as it stands; the match uses GnuGo's answer and
reports where the two name different winners (per game, in the summary, in the SGF, in `specmcts eval`).

Real GnuGo, no mocks; a missing binary fails (the ``gnugo`` fixture of conftest.py)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from games import BLACK, WHITE, GoRules
from games.go import GoState, gtp_to_action
from specmcts import cli
from specmcts.config import load_config
from specmcts.play.match import GTPSide, Side, opponent_side, play_match
from specmcts.play.gtp_client import GtpClient
from specmcts.play.gtp_client import gnugo_spec
from specmcts.engine.network import build_net, save_model
from specmcts.sgf import read_sgf

from tests.helpers import stub_engine

needs_gnugo = pytest.mark.usefixtures("gnugo")

# 7x7, komi 7.5. Black walls off columns A-E, White F-G; White's B2 is left in atari inside Black's area and
# both pass. GnuGo removes B2: Black 35, White 14, B+13.5. Tromp-Taylor as the board stands: B2 touches all
# of Black's empty points, so they are no one's: Black 10 stones, White 8 stones + the G column, W+12.5.
RULES7 = GoRules(7, 7.5)
BLACK_MOVES = ["E1", "E2", "E3", "E4", "E5", "E6", "E7", "A2", "B3", "C2", "pass"]
WHITE_MOVES = ["F1", "F2", "F3", "F4", "F5", "F6", "F7", "B2", "pass", "pass"]
GNUGO_SAYS, TROMP_TAYLOR_SAYS = "B+13.5", "W+12.5"


class Script(Side):
    """Plays a fixed list of GTP vertices, one per own move."""

    def __init__(self, name: str, moves: list[str]):
        self.name, self.moves = name, moves

    def genmove(self, requests):
        return [(gtp_to_action(7, self.moves[state.move_number // 2]), None) for _g, state in requests]


class ScriptedGnuGo(GTPSide):
    """A real GnuGo process that is told every move (its own come from a script): only its judgement counts."""

    def __init__(self, name: str, moves: list[str], rules: GoRules, **kw):
        super().__init__(name, list(gnugo_spec(level=0).command), rules, concurrent=1, **kw)
        self.moves = moves

    def genmove(self, requests):
        out = []
        for g, state in requests:
            move = self.moves[state.move_number // 2]
            colour = "b" if state.to_play == BLACK else "w"
            self.engines[self._slot[g]].send(f"play {colour} {move}")
            out.append((gtp_to_action(7, move), None))
        return out


def tiny_config(*extra: str):
    return load_config("tiny", ["game.board=5", "search.sims=8", "evaluator.device=cpu", *extra])


@needs_gnugo
def test_gnugo_opponent_is_started_like_gtp_match():
    cfg = tiny_config()
    b = opponent_side("gnugo", cfg, concurrent=1, gnugo_level=0)
    try:
        assert b.command == list(gnugo_spec(level=0).command) and b.setup == gnugo_spec(level=0).setup
        for flag in ("--capture-all-dead", "--chinese-rules", "--positional-superko"):
            assert flag in b.command
        assert b.command[b.command.index("--level") + 1] == "0"
        b.new_game(0, WHITE)  # the process really runs with those flags
        cmdline = Path(f"/proc/{b.engines[0].proc.pid}/cmdline").read_bytes().split(b"\0")
        assert b"--capture-all-dead" in cmdline and b"--positional-superko" in cmdline
    finally:
        b.close()


@needs_gnugo
def test_judge_game_prefers_gnugo_final_score_over_tromp_taylor():
    """The judge alone: a real GnuGo loaded with the position by `play` commands, a dead stone on the board."""
    from games.scoring import judge_game

    state = GoState(RULES7)
    with GtpClient(list(gnugo_spec(level=0).command)) as gnugo:
        for cmd in ("boardsize 7", "clear_board", "komi 7.5"):
            gnugo.send(cmd)
        for b, w in zip(BLACK_MOVES, WHITE_MOVES):
            for colour, move in (("b", b), ("w", w)):
                state.play(gtp_to_action(7, move))
                gnugo.send(f"play {colour} {move}")
        state.play(RULES7.pass_action)
        assert state.is_over and state.result_string() == TROMP_TAYLOR_SAYS
        j = judge_game(state, {"gnugo": gnugo.send("final_score")})
    assert (j.result, j.judge, j.tromp_taylor, j.disagree) == (GNUGO_SAYS, "final_score", TROMP_TAYLOR_SAYS, True)
    assert j.winner == BLACK
    # Unreadable or missing answers: our count; engines that disagree with each other: our count.
    for scores in ({"x": "? unknown command"}, {"x": "W+R"}, {}, {"x": "B+13.5", "y": "W+2"}):
        j = judge_game(state, scores)
        assert (j.result, j.judge, j.disagree) == (TROMP_TAYLOR_SAYS, "tromp-taylor", False), scores
    assert judge_game(state, {"x": "b+12.5"}).result == "B+12.5"
    assert judge_game(state, {"x": "0"}).winner == 0


@needs_gnugo
def test_a_game_with_a_dead_stone_is_scored_by_gnugo_and_the_disagreement_reported(tmp_path):
    black = Script("script", BLACK_MOVES)
    white = ScriptedGnuGo("gnugo-judge", WHITE_MOVES, RULES7)
    try:
        result = play_match(RULES7, black, white, games=1, concurrent=1, sgf_dir=tmp_path, prefix="dead")
    finally:
        white.close()
    (g,) = result.games
    assert (g.result, g.winner) == (GNUGO_SAYS, BLACK)  # not the Tromp-Taylor W+12.5: the bug credited White
    assert g.judge == "final_score" and g.tromp_taylor == TROMP_TAYLOR_SAYS and g.disagreement
    assert g.final_score == {"gnugo-judge": GNUGO_SAYS}
    assert result.wins == 1
    s = result.summary()
    assert (s["judge_disagreements"], s["judged_by_final_score"], s["judged_by_tromp_taylor"]) == (1, 1, 0)
    assert s["judge"] == "final_score"
    sgf = read_sgf(tmp_path / "dead-0000.sgf")
    assert sgf.result == GNUGO_SAYS
    assert f"final_score by gnugo-judge: {GNUGO_SAYS}" in sgf.game_comment
    assert f"Tromp-Taylor count (board as it stands): {TROMP_TAYLOR_SAYS}" in sgf.game_comment
    assert "disagree" in sgf.game_comment

    # The same game without a GTP side (net-vs-net matches): our count, as before, and nothing to disagree with.
    result = play_match(RULES7, Script("b", BLACK_MOVES), Script("w", WHITE_MOVES), games=1, concurrent=1)
    (g,) = result.games
    assert (g.result, g.winner, g.judge, g.disagreement) == (TROMP_TAYLOR_SAYS, WHITE, "tromp-taylor", False)
    s = result.summary()
    assert (s["judge_disagreements"], s["judged_by_final_score"], s["judge"]) == (0, 0, "tromp-taylor")


PASSING_ENGINE = stub_engine("pass", final_score_error=True)


def test_an_engine_without_final_score_is_scored_by_our_count(tmp_path):
    engine = tmp_path / "engine.py"
    engine.write_text(PASSING_ENGINE)
    b = GTPSide("passer", [sys.executable, str(engine)], GoRules(5, 7.5), concurrent=1)

    class Filler(Side):
        name = "filler"

        def genmove(self, requests):
            return [(int(next((a for a in s.legal_actions() if a < 25), 25)), None) for _g, s in requests]

    try:
        result = play_match(GoRules(5, 7.5), Filler(), b, games=1, concurrent=1)
    finally:
        b.close()
    (g,) = result.games
    assert g.judge == "tromp-taylor" and g.final_score == {"passer": None} and not g.disagreement
    assert g.result == g.tromp_taylor and g.winner == BLACK


@needs_gnugo
def test_cli_eval_against_gnugo_reports_the_judges(tmp_path, capsys):
    cfg = tiny_config()
    model = tmp_path / "net.pt"
    save_model(model, build_net(5, cfg.net))
    common = ["--config", "tiny", "--board", "5", "--sims", "8", "--device", "cpu", "--quiet",
              "--out", str(tmp_path / "run"), "--model", str(model), "--opponent", "gnugo", "--gnugo-level", "0",
              "--games", "2"]
    assert cli.main(["eval", "--json", *common]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["b"] == "gnugo-l0" and s["games"] == 2
    for key in ("judge", "judge_disagreements", "judged_by_final_score", "judged_by_tromp_taylor"):
        assert key in s, key
    assert s["judged_by_final_score"] + s["judged_by_tromp_taylor"] + s["resignations"] == 2
    assert s["judged_by_tromp_taylor"] == 0  # GnuGo always answers final_score
    for path in (tmp_path / "run" / "eval" / "sgf").glob("*.sgf"):
        record = read_sgf(path)
        if not record.resigned:
            assert "final_score by gnugo-l0:" in record.game_comment and "Tromp-Taylor" in record.game_comment
    assert cli.main(["eval", *common]) == 0
    line = capsys.readouterr().out
    assert line.startswith("eval: net vs gnugo-l0") and line.count("\n") == 1
    assert "final_score" in line and "disagree" in line


def test_cli_eval_against_any_gtp_engine(tmp_path, capsys, gnugo):
    """``--opponent gtp:<command line>``: any GTP engine (here GnuGo started by hand, without the referee's
    flags) plays the match; the opponent is named by its command, and the games are judged and saved."""
    cfg = tiny_config()
    model = tmp_path / "net.pt"
    save_model(model, build_net(5, cfg.net))
    common = ["--config", "tiny", "--board", "5", "--sims", "8", "--device", "cpu", "--quiet",
              "--out", str(tmp_path / "run"), "--model", str(model), "--games", "2"]
    assert cli.main(["eval", "--json", *common, "--opponent", f"gtp:{gnugo} --mode gtp --level 0"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["games"] == 2 and s["a"] == "net" and "gnugo" in s["b"]
    assert s["wins"] + s["losses"] + s["draws"] == 2
    assert len(list((tmp_path / "run" / "eval" / "sgf").glob("*.sgf"))) == 2
    # a command that is not a GTP engine fails with one line, not a hang or a traceback
    assert cli.main(["eval", *common, "--opponent", "gtp:false"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("specmcts eval:"), err
