"""The GTP engine: protocol, every command, analysis output in the formats GUIs parse, and a real subprocess.

Everything runs on a fresh 2x32 net with a handful of visits; the engine is driven in-process through
``GtpEngine.handle`` except in the subprocess tests, which talk to ``python -m specmcts gtp`` over pipes.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading

import pytest
import torch

from games.go import BLACK, WHITE, GoRules, GoState
from specmcts import __version__, cli
from specmcts.config import load_config
from games.position import setup_state, state_from_text
from games.scoring import parse_score
from specmcts.play.gtp import Clock, EngineOptions, GtpEngine
from specmcts.engine.network import build_net, save_model
from specmcts.sgf import read_sgf, write_sgf

TINY = ["net.blocks=2", "net.channels=32", "net.value_hidden=32", "search.sims=8", "evaluator.device=cpu",
        "evaluator.cache_entries=4096"]
REQUIRED = {"protocol_version", "name", "version", "known_command", "list_commands", "quit", "boardsize",
            "clear_board", "komi", "play", "genmove", "undo", "showboard", "final_score", "final_status_list",
            "time_settings", "time_left", "kgs-time_settings", "loadsgf", "printsgf", "set_free_handicap",
            "place_free_handicap", "fixed_handicap", "reg_genmove", "lz-analyze", "kata-analyze"}
# A settled 9x9 position: black owns A-E, white F-J; the white stone on B5 and the black one on H5 are dead.
WALLS = """
....XO...
....XO...
....XO...
....XO...
.O..XO.X.
....XO...
....XO...
....XO...
....XO...
"""


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Batches of 8 on a 2x32 net: intra-op threads only add synchronisation (and thrash on a busy CI box)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_engine(model="fresh", **options) -> GtpEngine:
    cfg = load_config(None, TINY)
    opts = dict(visits=8, analysis_visits=48, playouts=64, quiet=True)
    opts.update(options)
    return GtpEngine(cfg, model, options=EngineOptions(**opts))


@pytest.fixture
def engine():
    return make_engine()


def ok(engine: GtpEngine, line: str) -> str:
    """The result of a command that must succeed (the text after '= ')."""
    answer = engine.handle(line)
    assert answer.startswith("=") and answer.endswith("\n\n"), (line, answer)
    return answer[1:].split(" ", 1)[1][:-2] if answer[1:].startswith(" ") else answer.split("\n", 1)[1][:-2]


def fails(engine: GtpEngine, line: str) -> str:
    answer = engine.handle(line)
    assert answer.startswith("?") and answer.endswith("\n\n") and answer.count("\n") == 2, (line, answer)
    return answer[1:].strip()


def points(text: str) -> set[str]:
    return set(text.split())


def walls_sgf(path) -> str:
    rows = WALLS.split()
    black = [r * 9 + c for r in range(9) for c in range(9) if rows[r][c] == "X"]
    white = [r * 9 + c for r in range(9) for c in range(9) if rows[r][c] == "O"]
    write_sgf(path, GoRules(9), [], setup_black=black, setup_white=white)
    return str(path)


# -- protocol --------------------------------------------------------------------------------------


def test_protocol_basics(engine):
    assert ok(engine, "protocol_version") == "2"
    assert ok(engine, "name") == "specmcts"
    assert ok(engine, "version") == __version__
    assert REQUIRED <= set(ok(engine, "list_commands").split("\n"))
    assert ok(engine, "known_command lz-analyze") == "true"
    assert ok(engine, "known_command frobnicate") == "false"


def test_ids_are_echoed_and_lines_are_cleaned(engine):
    assert engine.handle("42 name") == "=42 specmcts\n\n"
    assert engine.handle("7 frobnicate") == "?7 unknown command\n\n"
    assert engine.handle("9 play b zz").startswith("?9 syntax error")
    assert engine.handle("") == ""
    assert engine.handle("   \t  ") == ""
    assert engine.handle("# just a comment") == ""
    assert engine.handle("3 name # trailing comment") == "=3 specmcts\n\n"
    assert engine.handle("1 na\x01me\r") == "=1 specmcts\n\n"  # control characters are dropped
    assert engine.handle("\tname") == "= specmcts\n\n"  # a tab is a space
    assert engine.handle("12") == "?12 unknown command\n\n"  # an id alone
    assert engine.handle("NAME") == "? unknown command\n\n"  # command names are case-sensitive


def test_quit_answers_and_stops():
    e = make_engine()
    assert e.handle("5 quit") == "=5\n\n"
    assert e.quit_requested


# -- board, moves ----------------------------------------------------------------------------------


def test_boardsize_9_and_19_and_errors(engine):
    ok(engine, "boardsize 19")
    assert "19 . . ." in ok(engine, "showboard")
    assert re.fullmatch(r"[A-HJ-T]\d{1,2}|pass", ok(engine, "genmove b"))
    ok(engine, "boardsize 9")
    assert engine.size == 9
    for bad in ("boardsize 4", "boardsize 20", "boardsize -9"):
        assert fails(engine, bad) == "unacceptable size"
    for bad in ("boardsize", "boardsize nine", "boardsize 9 9", "boardsize 99999999999999999999999"):
        assert fails(engine, bad).startswith("syntax error")


def test_an_fc_checkpoint_fixes_the_board_size_and_a_kata_one_plays_every_size(tmp_path):
    cfg = load_config(None, TINY + ["net.heads=fc"])
    path = tmp_path / "m9.pt"
    save_model(path, build_net(9, cfg.net))
    e = make_engine(model=str(path))
    assert e.size == 9
    assert fails(e, "boardsize 19") == "unacceptable size"
    ok(e, "boardsize 9")
    assert re.fullmatch(r"[A-HJ]\d|pass", ok(e, "genmove w"))
    kata = tmp_path / "k9.pt"
    save_model(kata, build_net(9, load_config(None, TINY).net))
    e = make_engine(model=str(kata))
    for size in (13, 19, 9):
        ok(e, f"boardsize {size}")
        assert ok(e, "genmove b")
        assert e.source.net(size).board_size == size and e.source.net(size).trained_board == 9


def test_bad_model_is_a_one_line_cli_error(tmp_path, capsys):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    assert cli.main(["gtp", "--model", str(tmp_path / "junk.pt"), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("specmcts gtp: checkpoint")


def test_play_undo_and_illegal_moves(engine):
    ok(engine, "play b e5")
    assert fails(engine, "play w e5") == "illegal move"  # occupied
    assert fails(engine, "play w j10").startswith("syntax error")  # off a 9x9 board
    assert fails(engine, "play w i5").startswith("syntax error")  # GTP has no column I
    assert fails(engine, "play w resign").startswith("syntax error")
    assert fails(engine, "play green e4").startswith("syntax error")
    assert fails(engine, "play w").startswith("syntax error")
    ok(engine, "play W D4")
    ok(engine, "play black pass")
    ok(engine, "play white PASS")  # two passes: GTP leaves the end of the game to the controller
    ok(engine, "play b c3")
    assert engine.state.board()[6, 2] == BLACK
    for _ in range(5):
        ok(engine, "undo")
    assert not engine.state.board().any()
    assert fails(engine, "undo") == "cannot undo"


def test_same_colour_twice_and_undo(engine):
    ok(engine, "play b a1")
    ok(engine, "play b b2")  # white's turn skipped
    assert (engine.state.board() == BLACK).sum() == 2 and engine.state.to_play == WHITE
    ok(engine, "undo")
    assert (engine.state.board() == BLACK).sum() == 1 and engine.state.to_play == WHITE


def test_suicide_and_positional_superko(engine):
    ok(engine, "play b a2")
    ok(engine, "play b b1")
    assert fails(engine, "play w a1") == "illegal move"  # suicide
    # A ko: black captures at C8, white may not retake at once (the position would repeat).
    ok(engine, "clear_board")
    for move in ("b b9", "w c9", "b a8", "w b8", "b b7", "w c7", "b d9", "w d8", "b c8"):
        ok(engine, f"play {move}")
    assert engine.state.board()[1, 1] == 0  # B8 was captured
    assert fails(engine, "play w b8") == "illegal move"


def test_genmove_plays_and_reg_genmove_does_not(engine):
    before = ok(engine, "showboard")
    move = ok(engine, "reg_genmove b")
    assert re.fullmatch(r"[A-HJ]\d|pass", move)
    assert ok(engine, "showboard") == before
    move = ok(engine, "genmove b")
    assert ok(engine, "showboard") != before or move == "pass"
    assert engine.state.to_play == WHITE and len(engine.record.moves) == 1


def test_komi(engine):
    ok(engine, "komi 6.5")
    assert ok(engine, "get_komi") == "6.5"
    ok(engine, "play b e5")
    assert ok(engine, "final_score") == "B+74.5"  # one stone owns the board (area scoring)
    ok(engine, "komi -3")
    assert ok(engine, "final_score") == "B+84"
    for bad in ("komi 0.3", "komi nan", "komi inf", "komi 1e9", "komi seven", "komi"):
        assert fails(engine, bad)
    assert ok(engine, "get_komi") == "-3"


# -- scoring ---------------------------------------------------------------------------------------


def test_final_score_removes_dead_stones(engine, tmp_path):
    ok(engine, f"loadsgf {walls_sgf(tmp_path / 'walls.sgf')}")
    # black 45 (A-E, with H5 removed) - white 36 (F-J, with B5 removed) - 7.5
    assert ok(engine, "final_score") == "B+1.5"
    assert points(ok(engine, "final_status_list dead")) == {"B5", "H5"}
    alive = points(ok(engine, "final_status_list alive"))
    assert {"E1", "E9", "F1", "F9"} <= alive and not alive & {"B5", "H5"}
    assert ok(engine, "final_status_list seki") == ""
    assert fails(engine, "final_status_list zombie").startswith("syntax error")


def test_pass_after_the_opponent_passes_when_the_game_is_won(engine, tmp_path):
    ok(engine, f"loadsgf {walls_sgf(tmp_path / 'walls.sgf')}")
    ok(engine, "play b pass")
    ok(engine, "play w pass")
    assert ok(engine, "genmove b") == "pass"  # B+1.5 with the dead stones removed


def test_resignation_is_configurable():
    e = make_engine(resign_threshold=0.99, resign_consecutive=2)  # a fresh net's winrate is about 0.5
    assert ok(e, "genmove b") != "resign"
    ok(e, "play w e5")
    assert ok(e, "genmove b") == "resign"
    never = make_engine(resign_threshold=0.0)
    for colour in "bwbw":
        assert ok(never, f"genmove {colour}") != "resign"


def test_parse_score():
    assert parse_score("B+3.5") == 3.5 and parse_score("w+12") == -12 and parse_score("0") == 0
    assert parse_score("W+R") is None
    with pytest.raises(ValueError):
        parse_score("black wins")


def test_pondering_warms_the_cache_for_the_predicted_reply():
    cfg = load_config(None, TINY[:-1] + ["evaluator.cache_entries=65536"])
    e = GtpEngine(cfg, options=EngineOptions(visits=16, analysis_visits=48, quiet=True, speculate=2))
    ok(e, "play b e5")
    ok(e, "genmove w")
    line = e.ponder()  # served sessions call this between commands; here no command is waiting
    assert len(line) == 2
    reply = GoState(GoRules(9)).action_to_gtp(line[0])
    stats = e.player().search.stats
    hits, evals = stats.cache_hits, stats.evals
    ok(e, f"play b {reply}")  # the predicted reply: the next search was done while "the opponent thought"
    ok(e, "genmove w")
    assert stats.cache_hits - hits > 2 * (stats.evals - evals)
    assert e.handle("reg_genmove b") and e._ponder_line == []


def test_auto_pondering_goes_as_deep_as_it_is_let():
    """speculate=auto ponders until a command arrives, at most 16 moves ahead (never silently off)."""
    cfg = load_config(None, TINY[:-1] + ["evaluator.cache_entries=65536"])
    e = GtpEngine(cfg, options=EngineOptions(visits=8, quiet=True, speculate="auto"))
    assert e.ponder_depth == 16
    ok(e, "genmove b")
    player = e.player()
    searched = []
    analyze = player.analyze
    player.analyze = lambda *args, **kw: searched.append(1) or analyze(*args, **kw)
    e._interrupted = lambda: len(searched) >= 5  # the opponent's move arrives during the fifth search
    line = e.ponder()
    assert len(line) == 4 and len(searched) == 5


# -- setup positions, handicap, SGF ----------------------------------------------------------------


def test_setup_state_is_move_zero_and_keeps_superko():
    rules = GoRules(9)
    # the ko of test_suicide_and_positional_superko, drawn as setup stones with black to play
    black = [1, 9, 19, 3]  # B9 A8 B7 D9
    white = [2, 10, 20, 12]  # C9 B8 C7 D8
    state = setup_state(rules, black, white, BLACK)
    assert state.move_number == 0 and state.to_play == BLACK and state.captures == (0, 0)
    assert sorted(state.board().reshape(-1).nonzero()[0]) == sorted(black + white)
    state.play(11)  # C8 captures B8
    assert state.board()[1, 1] == 0
    assert not state.is_legal(10)  # retaking would repeat the setup position
    with pytest.raises(ValueError):
        setup_state(rules, [0, 1], [0])  # overlap
    with pytest.raises(ValueError):
        setup_state(rules, [1, 9], [0])  # white A9 has no liberty
    assert setup_state(rules, [], [], WHITE).to_play == WHITE


def test_fixed_handicap(engine):
    ok(engine, "boardsize 19")
    assert points(ok(engine, "fixed_handicap 9")) == {"D4", "K4", "Q4", "D10", "K10", "Q10", "D16", "K16", "Q16"}
    assert engine.state.to_play == WHITE and engine.state.move_number == 0
    assert fails(engine, "fixed_handicap 2") == "board not empty"
    ok(engine, "clear_board")
    assert points(ok(engine, "fixed_handicap 2")) == {"D4", "Q16"}
    ok(engine, "clear_board")
    assert points(ok(engine, "fixed_handicap 6")) == {"D4", "Q16", "D16", "Q4", "D10", "Q10"}
    ok(engine, "boardsize 9")
    assert points(ok(engine, "fixed_handicap 5")) == {"C3", "G3", "C7", "G7", "E5"}
    ok(engine, "clear_board")
    for bad in ("fixed_handicap 1", "fixed_handicap 10", "fixed_handicap x"):
        assert fails(engine, bad)
    ok(engine, "boardsize 5")
    assert fails(engine, "fixed_handicap 2") == "invalid number of stones"  # no fixed placement under 7x7


def test_free_handicap(engine):
    placed = points(ok(engine, "place_free_handicap 4"))
    assert len(placed) == 4 and engine.state.to_play == WHITE
    assert (engine.state.board() == BLACK).sum() == 4
    ok(engine, "clear_board")
    assert fails(engine, "place_free_handicap 1") == "invalid number of stones"
    assert fails(engine, "place_free_handicap 81") == "invalid number of stones"
    for bad in ("set_free_handicap a1", "set_free_handicap a1 a1", "set_free_handicap a1 z9",
                "set_free_handicap a1 pass"):
        assert fails(engine, bad) == "bad vertex list"
    ok(engine, "set_free_handicap a1 b2 c3")
    assert fails(engine, "set_free_handicap d4 e5") == "board not empty"
    assert re.fullmatch(r"[A-HJ]\d|pass", ok(engine, "genmove w"))
    ok(engine, "undo")  # the genmove; the handicap stones are the setup, not moves
    assert fails(engine, "undo") == "cannot undo"
    assert (engine.state.board() == BLACK).sum() == 3


def test_printsgf_and_loadsgf_round_trip(engine, tmp_path):
    ok(engine, "fixed_handicap 2")
    for move in ("w e5", "b d4", "b f6", "w pass"):  # black twice: the SGF gets a white pass in between
        ok(engine, f"play {move}")
    text = ok(engine, "printsgf")
    assert "\n\n" not in text and "RE[" not in text
    game = read_sgf(text, validate=True)
    assert game.setup_black and game.first_player == WHITE and len(game.moves) == 5
    path = tmp_path / "g.sgf"
    ok(engine, f"printsgf {path}")
    board = engine.state.board().copy()
    ok(engine, "boardsize 19")
    ok(engine, f"loadsgf {path}")
    assert engine.size == 9 and (engine.state.board() == board).all()
    ok(engine, f"loadsgf {path} 2")  # the position before move 2: only W E5 played
    assert len(engine.record.moves) == 1
    assert fails(engine, f"loadsgf {tmp_path / 'missing.sgf'}") == "cannot load file"
    assert fails(engine, f"loadsgf {tmp_path}") == "cannot load file"
    (tmp_path / "bad.sgf").write_text("(;GM[1]SZ[9];B[ee];B[ff])")
    assert fails(engine, f"loadsgf {tmp_path / 'bad.sgf'}") == "cannot load file"
    assert fails(engine, f"loadsgf {path} 0").startswith("syntax error")


def test_finished_game_printsgf_has_the_final_score(engine, tmp_path):
    ok(engine, f"loadsgf {walls_sgf(tmp_path / 'walls.sgf')}")
    ok(engine, "play b pass")
    ok(engine, "play w pass")
    assert "RE[B+1.5]" in ok(engine, "printsgf")


# -- time ------------------------------------------------------------------------------------------


def test_time_commands(engine):
    ok(engine, "time_settings 300 30 5")
    assert engine.clock.kind == "canadian"
    ok(engine, "time_left b 12 3")
    ok(engine, "kgs-time_settings byoyomi 600 30 5")
    ok(engine, "kgs-time_settings none")
    ok(engine, "kgs-time_settings absolute 60")
    assert re.fullmatch(r"[A-HJ]\d|pass", ok(engine, "genmove b"))
    for bad in ("time_settings 1 2", "time_settings -1 0 0", "time_settings a b c", "time_left x 1 1",
                "time_left b 1", "kgs-time_settings", "kgs-time_settings canadian 1 2", "kgs-time_settings fast"):
        assert fails(engine, bad).startswith("syntax error"), bad


def test_clock_budgets():
    assert Clock().budget(BLACK, 0, 9) is None
    absolute = Clock("absolute", 100.0)
    early = absolute.budget(BLACK, 0, 9)
    assert 0 < early < 100 / 10
    absolute.left[BLACK] = (10.0, 0)
    assert absolute.budget(BLACK, 40, 9) < early
    canadian = Clock("canadian", 0.0, 30.0, 5)
    canadian.left[WHITE] = (10.0, 5)  # in byo-yomi: 10 s for 5 stones
    assert canadian.budget(WHITE, 50, 9) == pytest.approx(0.9 * 2.0 - 0.2)
    japanese = Clock("byoyomi", 0.0, 5.0, 3)
    assert japanese.budget(BLACK, 0, 19) == pytest.approx(0.9 * 5.0 - 0.2)
    assert Clock("absolute", 0.0).budget(BLACK, 0, 9) > 0  # no time at all: still a positive minimum


# -- analysis ----------------------------------------------------------------------------------------


INFO = re.compile(r"info move (\S+) ((?:\S+ \S+ )*?)pv ((?:\S+ ?)+?)(?= info |$)")


def parse_info_line(line: str) -> list[dict]:
    """What Sabaki and Lizzie do: split on 'info', key/value pairs up to 'pv', the variation after it."""
    entries = []
    for chunk in line.split("info ")[1:]:
        head, _, pv = chunk.strip().partition(" pv ")
        tokens = head.split()
        assert len(tokens) % 2 == 0, chunk
        entry = dict(zip(tokens[::2], tokens[1::2]))
        entry["pv"] = pv.split()
        entries.append(entry)
    return entries


def split_stream(answer: str, tag: str) -> list[str]:
    assert answer.startswith(f"={tag}\n") and answer.endswith("\n\n"), answer
    lines = answer[len(f"={tag}\n"):-2].split("\n") if answer != f"={tag}\n\n" else []
    assert all(lines), answer  # no empty line inside the answer
    return lines


def test_lz_analyze_output_parses_like_lizzie_and_sabaki(engine):
    ok(engine, "play b e5")
    lines = split_stream(engine.handle("5 lz-analyze 1"), "5")
    assert lines and all(line.startswith("info move ") for line in lines)
    entries = parse_info_line(lines[-1])
    assert [int(e["order"]) for e in entries] == list(range(len(entries)))
    visits = [int(e["visits"]) for e in entries]
    assert visits == sorted(visits, reverse=True) and 0 < sum(visits) <= 48
    for e in entries:
        assert re.fullmatch(r"[A-HJ]\d|pass", e["move"]) and e["pv"][0] == e["move"]
        assert 0 <= int(e["winrate"]) <= 10000 and 0 <= int(e["prior"]) <= 10000  # Leela Zero: integers
        assert int(e["lcb"]) <= int(e["winrate"])
    assert engine.state.to_play == WHITE and len(engine.record.moves) == 1  # analysis changes nothing


def test_kata_analyze_format_and_keys(engine):
    lines = split_stream(engine.handle("kata-analyze b interval 1 maxmoves 3 ownership false"), "")
    entries = parse_info_line(lines[-1])
    assert len(entries) == 3
    for e in entries:
        assert "." in e["winrate"] and 0.0 <= float(e["winrate"]) <= 1.0  # KataGo: fractions
        assert 0.0 <= float(e["prior"]) <= 1.0 and -1.0 <= float(e["utility"]) <= 1.0
    many = parse_info_line(split_stream(engine.handle("kata-analyze w minmoves 60 interval 0"), "")[-1])
    assert len(many) >= 60  # unvisited moves by prior fill up to minmoves
    for bad in ("lz-analyze avoid b d4", "kata-analyze allow b", "kata-analyze avoid b z99 1", "kata-analyze interval",
                "kata-analyze frobnicate 3", "lz-analyze x", "kata-analyze ownership maybe", "lz-analyze -5"):
        assert fails(engine, bad).startswith("syntax error"), bad


def test_kata_analyze_reports_score_lead_and_ownership(engine):
    """KataGo's fields as KaTrain-era GUIs read them: scoreLead/scoreMean per move from the score head, and
    `ownership true`: N*N values in [-1, 1] after the last move's pv, the side to move's view."""
    ok(engine, "play b e5")
    line = split_stream(engine.handle("kata-analyze w interval 0 ownership true"), "")[-1]
    infos, _, owned = line.partition(" ownership ")
    entries = parse_info_line(infos)
    assert entries and all({"scoreLead", "scoreMean"} <= set(e) for e in entries)
    values = [float(v) for v in owned.split()]
    assert len(values) == 81 and all(-1.0 <= v <= 1.0 for v in values)
    plain = split_stream(engine.handle("kata-analyze w interval 0 ownership false"), "")[-1]
    assert " ownership " not in plain
    assert " ownership " not in split_stream(engine.handle("lz-analyze w 0"), "")[-1]  # Leela Zero has none


def test_the_clock_bounds_the_search():
    """time_settings / time_left really bound genmove: with one second for the game (or for 25 byo-yomi
    stones) the search stops long before its visit budget, which it spends in full without a clock. (No
    wall-clock number is asserted: 1,500 visits in the ~10 ms such a move gets would take 150,000 visits/s on
    a 2x32 net.)"""
    def visits_of_genmove(e: GtpEngine) -> int:
        ok(e, "genmove b")
        return int(e.player().search.completed([0])[0])  # the tree the move came from

    free = make_engine(visits=None, analysis_visits=1500)
    free.cfg = free.cfg.override("search.sims=1500")
    assert visits_of_genmove(free) >= 1500
    for clock in (["time_settings 0 1 25", "time_left b 1 25"],  # canadian: 1 s for 25 stones
                  ["kgs-time_settings canadian 1 1 25"],  # the same through KGS's command
                  ["time_settings 1 0 0"]):  # absolute: 1 s for the game
        tight = make_engine(visits=None, analysis_visits=1500)
        tight.cfg = tight.cfg.override("search.sims=1500")
        for line in clock:
            ok(tight, line)
        assert visits_of_genmove(tight) < 1500, clock


def test_genmove_analyze_streams_then_plays(engine):
    lines = split_stream(engine.handle("8 lz-genmove_analyze b 1"), "8")
    assert lines[-1].startswith("play ")
    move = lines[-1].split()[1]
    assert all(line.startswith("info move ") for line in lines[:-1])
    assert engine.record.moves and engine.state.to_play == WHITE
    assert move == "pass" or engine.state.board().any()
    kata = split_stream(engine.handle("kata-genmove_analyze w 1"), "")
    assert kata[-1].startswith("play ") and engine.state.to_play == BLACK
    assert fails(engine, "lz-genmove_analyze").startswith("syntax error")
    assert fails(engine, "kata-genmove_analyze purple 1").startswith("syntax error")


def test_gogui_analyze_commands(engine):
    """Each advertised command answers in the format its GoGui kind promises."""
    ok(engine, "play b e5")
    ok(engine, "play w c3")
    commands = [entry.split("/", 2) for entry in ok(engine, "gogui-analyze_commands").split("\n")]
    assert [kind for kind, _, _ in commands] == ["dboard", "plist", "string"]
    for kind, label, command in commands:
        answer = ok(engine, command)
        if kind == "dboard":  # one row of N numbers per board line
            rows = answer.split("\n")
            values = [float(v) for r in rows for v in r.split()]
            assert len(rows) == 9 and len(values) == 81 and all(0.0 <= v <= 1.0 for v in values)
        elif kind == "plist":  # vertices, possibly none
            assert all(re.fullmatch(r"[A-HJ-T]\d{1,2}", v) for v in answer.split()), answer
        else:
            assert re.fullmatch(r"(B|W)\+\d+(\.\d)?|0", answer), answer


# -- a real process ----------------------------------------------------------------------------------


def gtp_process(*extra) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "specmcts", "gtp", "--board", "9", "--device", "cpu", "--seed", "3",
           *[f"--set={s}" for s in TINY if not s.startswith("evaluator.device")], *extra]
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            bufsize=1, env=env)


def test_subprocess_lz_analyze_streams_until_the_next_command():
    proc = gtp_process("--visits", "8")
    watchdog = threading.Timer(300, proc.kill)  # a hang fails the test instead of blocking the suite
    watchdog.start()
    try:
        def send(line):
            proc.stdin.write(line + "\n")
            proc.stdin.flush()

        send("1 play b e5")
        assert proc.stdout.readline() == "=1\n" and proc.stdout.readline() == "\n"
        send("2 lz-analyze 2")
        assert proc.stdout.readline() == "=2\n"
        info = [proc.stdout.readline() for _ in range(3)]  # the engine keeps streaming while we read
        assert all(line.startswith("info move ") for line in info)
        assert parse_info_line(info[-1].strip())
        send("3 name")  # any command stops the analysis: an empty line ends its answer, then the command runs
        line = proc.stdout.readline()
        while line.startswith("info move "):
            line = proc.stdout.readline()
        assert line == "\n"
        assert proc.stdout.readline() == "=3 specmcts\n" and proc.stdout.readline() == "\n"
        send("4 genmove w")
        assert re.fullmatch(r"=4 ([A-HJ]\d|pass)\n", proc.stdout.readline()) and proc.stdout.readline() == "\n"
        send("5 quit")
        assert proc.stdout.readline() == "=5\n" and proc.stdout.readline() == "\n"
        assert proc.wait() == 0
        assert proc.stdout.read() == ""
        err = proc.stderr.read()
        assert "using the embedded net go9.pt" in err  # no --model on 9x9: the net that ships, said on stderr
        assert "Fatal" not in err and "Traceback" not in err
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()


def test_default_net_is_the_one_that_ships_and_fresh_asks_for_an_untrained_one(tmp_path, monkeypatch):
    from specmcts.engine import network
    from specmcts.config import NetConfig
    from specmcts.play.gtp import NetSource

    shipped = network.build_net(9, NetConfig(blocks=1, channels=8, value_hidden=8))
    network.save_model(tmp_path / "go9.pt", shipped)
    monkeypatch.setattr(network, "WEIGHTS_DIR", tmp_path)
    cfg = load_config(None, TINY)
    logs = []
    assert NetSource(cfg, None, log=logs.append).net(9).model_id == shipped.model_id
    assert "embedded net go9.pt" in logs[-1]
    assert NetSource(cfg, "fresh", log=logs.append).net(9).model_id.startswith("fresh-")
    # nothing ships for 7x7: the shipped net plays it (its kata heads play any size), and says so
    seven = NetSource(cfg, None, log=logs.append).net(7)
    assert seven.model_id == shipped.model_id + "@7x7" and seven.board_size == 7
    assert "no net trained for this size ships" in logs[-1] and "go9.pt" in logs[-1]
    fc = network.build_net(9, NetConfig(blocks=1, channels=8, value_hidden=8, heads="fc"))
    network.save_model(tmp_path / "go9.pt", fc)  # a net that plays only its own size: a fresh one elsewhere
    assert NetSource(cfg, None, log=logs.append).net(7).model_id.startswith("fresh-")


def test_one_setup_path_for_sgf_gtp_and_text(engine, tmp_path):
    """The same position with setup stones, from SGF (read_sgf), GTP (loadsgf) and a drawn board
    (GoState.from_text): the same network input and the same NN-cache key, wherever it comes from."""
    import numpy as np

    from native import tree as tree_kernels

    rows = ["..X......", ".XO......", "..X.....O", ".........", "....X....",
            ".........", "......O..", ".........", "........."]
    rules = GoRules(9, engine.rules.komi)
    drawn = state_from_text(rules, "\n".join(rows), to_play=WHITE)
    black = [r * 9 + c for r, row in enumerate(rows) for c, g in enumerate(row) if g == "X"]
    white = [r * 9 + c for r, row in enumerate(rows) for c, g in enumerate(row) if g == "O"]
    path = tmp_path / "setup.sgf"
    path.write_text(write_sgf(None, rules, [], setup_black=black, setup_white=white, first_player=WHITE, result="?",
                              validate=False).replace("RE[?]", ""))
    from_sgf = read_sgf(path).initial_state()
    ok(engine, f"loadsgf {path}")
    from_gtp = engine.state
    for state in (from_sgf, from_gtp):
        assert state.move_number == drawn.move_number == 0 and state.to_play == drawn.to_play == WHITE
        assert np.array_equal(state.features(), drawn.features())
        assert tree_kernels.input_key(state.core, state.hist) == tree_kernels.input_key(drawn.core, drawn.hist)
    assert np.array_equal(from_sgf.board(), drawn.board())


# -- KataGo's and Leela Zero's extensions -----------------------------------------------------------------------


def analysed_moves(engine, command: str) -> set[str]:
    return {e["move"].upper() for e in parse_info_line(split_stream(engine.handle(command), "")[-1])}


def test_kata_analyze_avoid_and_allow(engine):
    """KaTrain and Lizzie send `avoid`/`allow PLAYER VERTICES UNTILDEPTH`: the listed moves are not searched
    (avoid), or only they are (allow), for that player at the root; the other player's lists change nothing."""
    searched = analysed_moves(engine, "kata-analyze b interval 0")
    top = sorted(searched)[:3]
    avoided = analysed_moves(engine, f"kata-analyze b interval 0 avoid b {','.join(top)} 1")
    assert avoided and not avoided & set(top)
    assert analysed_moves(engine, "lz-analyze b 0 allow b c3,g7 1") <= {"C3", "G7"}
    assert analysed_moves(engine, "kata-analyze b interval 0 avoid w c3,g7 1") == searched  # white's list
    assert engine.state.to_play == BLACK and not engine.record.moves


def test_kata_rules_area_accepted_territory_refused(engine):
    rules = json.loads(ok(engine, "kata-get-rules"))
    assert rules["scoring"] == "AREA" and rules["ko"] == "POSITIONAL" and rules["suicide"] is False
    for area in ("chinese", "tromp-taylor", '{"scoring":"AREA","ko":"SIMPLE"}'):
        ok(engine, f"kata-set-rules {area}")
    assert json.loads(ok(engine, "kata-get-rules"))["ko"] == "SIMPLE" and not engine.rules.superko
    for territory in ("japanese", "korean", '{"scoring":"TERRITORY"}'):
        assert "territory" in fails(engine, f"kata-set-rules {territory}")
    assert "unknown rules" in fails(engine, "kata-set-rules frobnicate")
    assert "suicide" in fails(engine, 'kata-set-rules {"scoring":"AREA","suicide":true}')


def test_kata_params_and_lz_setoption(engine):
    assert ok(engine, "kata-list-params").split() == ["maxVisits", "numSearchThreads"]
    ok(engine, "kata-set-param maxVisits 5")
    assert ok(engine, "kata-get-param maxVisits") == "5" and engine.options.visits == 5
    ok(engine, "kata-set-param numSearchThreads 1")
    assert ok(engine, "kata-get-param numSearchThreads") == "1"
    assert "KataGo parameter" in fails(engine, "kata-set-param playoutDoublingAdvantage 1.5")
    assert "unknown parameter" in fails(engine, "kata-get-param frobnicate")
    ok(engine, "lz-setoption name visits value 7")
    assert engine.options.visits == 7
    ok(engine, "lz-setoption name maximum memory use (MiB) value 2048")  # Lizzie sends it: nothing to change
    assert "unknown option" in fails(engine, "lz-setoption name frobnicate value 1")


def test_kata_raw_nn_reports_the_net_from_whites_view(engine):
    ok(engine, "play b e5")
    text = ok(engine, "kata-raw-nn 0")
    tokens = text.split()
    assert tokens[:2] == ["symmetry", "0"]
    win, loss = float(tokens[tokens.index("whiteWin") + 1]), float(tokens[tokens.index("whiteLoss") + 1])
    assert win + loss == pytest.approx(1.0, abs=1e-5)
    at = tokens.index("policy") + 1
    policy = tokens[at:at + 81]
    assert policy[4 * 9 + 4] == "NAN"  # E5 is occupied
    total = sum(float(p) for p in policy if p != "NAN") + float(tokens[tokens.index("policyPass") + 1])
    assert total == pytest.approx(1.0, abs=1e-4)
    every = ok(engine, "kata-raw-nn all").split()
    assert [int(every[i + 1]) for i, t in enumerate(every) if t == "symmetry"] == list(range(8))
    assert "symmetry" in fails(engine, "kata-raw-nn 9")
