"""SGF writing/reading: round trips, coordinate convention, GnuGo as an independent reader and scorer,
and one-line errors for corrupt files."""
from __future__ import annotations

import os

import pytest

from games import BLACK, EMPTY, WHITE, GoRules, GoState, IllegalMoveError
from native.board import seed_kernels
from specmcts import __version__
from specmcts.play.gtp_client import GtpClient, find_gnugo, gnugo_command
from specmcts.sgf import SgfError, SgfGame, action_to_sgf, read_sgf, write_sgf


def random_game(rules: GoRules, seed: int) -> tuple[GoState, list[int]]:
    seed_kernels(seed)
    state = GoState(rules)
    moves = []
    while not state.is_over:
        moves.append(state.play_random())
    return state, moves


def stones(state: GoState, colour: int) -> set[str]:
    return {state.action_to_gtp(a) for a in (state.board().ravel() == colour).nonzero()[0]}


@pytest.fixture(scope="module")
def gnugo():
    if find_gnugo() is None:
        pytest.fail("GnuGo is required for the SGF tests (apt-get install -y gnugo); "
                    "it was not found on PATH or in /usr/games")
    engine = GtpClient(gnugo_command(level=1))
    yield engine
    engine.close()


def gnugo_stones(engine: GtpClient, colour: str) -> set[str]:
    return set(engine.send(f"list_stones {colour}").upper().split())


# ----------------------------------------------------------------------------------------------
# Coordinates


def test_coordinates_match_sgf_convention(tmp_path):
    """SGF 'aa' is the top-left point: our action 0 (GTP A9 on 9x9); columns first, then rows."""
    rules = GoRules(9)
    assert action_to_sgf(9, 0) == "aa"
    assert action_to_sgf(9, 8) == "ia"  # top-right, J9
    assert action_to_sgf(9, 72) == "ai"  # bottom-left, A1
    assert action_to_sgf(9, 9 * 2 + 3) == "dc"  # row 2 from the top (GTP 7), column D
    assert action_to_sgf(9, 81) == ""
    moves = [0, 8, 72, 21, 81]
    text = write_sgf(None, rules, moves)
    assert ";B[aa];W[ia];B[ai];W[dc];B[])" in text.replace("\n", "")
    assert read_sgf(text.encode()).moves == moves

    # A hand-written SGF in the old 'tt' pass notation, read independently of our writer.
    game = read_sgf(b"(;GM[1]FF[3]SZ[9]KM[6.5];B[cg];W[tt];B[gc])")
    assert game.moves == [rules.size * 6 + 2, 81, 2 * 9 + 6]
    assert [GoState(rules).action_to_gtp(a) for a in game.moves] == ["C3", "pass", "G7"]
    assert game.rules.komi == 6.5


# ----------------------------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize("size,seeds", [(9, range(6)), (19, range(2))])
def test_round_trip_random_games(tmp_path, size, seeds):
    rules = GoRules(size, komi=7.5)
    for seed in seeds:
        state, moves = random_game(rules, 1000 * size + seed)
        comments = [f"v={i / 100:.2f} visits={i}\nline two; ] [ \\ é" if i % 7 == 0 else None
                    for i in range(len(moves))]
        path = tmp_path / f"sub/g{size}_{seed}.sgf"
        text = write_sgf(path, rules, moves, players=("alpha", "beta"), comments=comments,
                         game_comment="random game", date="2026-01-02", properties={"GN": f"game {seed}"})
        assert path.read_bytes().decode("utf-8") == text
        assert all(p.suffix == ".sgf" for p in path.parent.iterdir())  # no temp files left
        for key in ("FF[4]", "GM[1]", f"SZ[{size}]", "KM[7.5]", "RU[Chinese]", f"RE[{state.result_string()}]",
                    "PB[alpha]", "PW[beta]", f"AP[specmcts:{__version__}]", "DT[2026-01-02]"):
            assert key in text, key

        game = read_sgf(path)
        assert game.rules == rules
        assert game.moves == moves
        assert game.comments == comments
        assert game.result == state.result_string()
        assert game.winner == state.winner()
        assert game.players == ("alpha", "beta")
        assert game.game_comment == "random game"
        assert game.program == f"specmcts:{__version__}"
        assert game.date == "2026-01-02"
        assert game.source == str(path)
        replay = GoState.from_moves(game.rules, game.moves)
        assert replay.hash == state.hash
        assert replay.is_over and replay.result_string() == game.result
        assert (replay.board() == state.board()).all()


def test_resignation_is_a_result_not_a_move():
    rules = GoRules(9)
    moves = [40, 41, 42]
    # White (to move after three moves) resigns.
    text = write_sgf(None, rules, moves + [rules.resign_action], comments=[None, None, "good", "resigns"])
    assert "RE[B+R]" in text
    game = read_sgf(text.encode())
    assert game.moves == moves and game.result == "B+R" and game.resigned
    assert game.comments[-1] == "good\n\nresigns"
    state = game.to_state()
    assert state.is_over and state.winner() == BLACK and state.result_string() == "B+R"
    assert game.to_state(resign=False).is_over is False
    # The same without validation (result derived from the move count).
    assert "RE[B+R]" in write_sgf(None, rules, moves + [rules.resign_action], validate=False)
    assert "RE[W+R]" in write_sgf(None, rules, moves[:2] + [rules.resign_action], validate=False)


def test_unfinished_game_has_no_result_and_explicit_result_wins():
    rules = GoRules(9)
    assert "RE[" not in write_sgf(None, rules, [40, 41])
    assert "RE[W+T]" in write_sgf(None, rules, [40, 41], result="W+T")
    assert read_sgf(write_sgf(None, rules, [40, 41]).encode()).result is None


def test_draw_and_noko_rules_round_trip():
    rules = GoRules(9, komi=0.0, superko=False)
    text = write_sgf(None, rules, [81, 81])  # empty board, no komi: a draw
    assert "RE[0]" in text and "RU[NOKO]" in text and "KM[0]" in text
    game = read_sgf(text.encode())
    assert game.rules == rules and game.winner == EMPTY


def test_write_rejects_illegal_moves():
    rules = GoRules(9)
    with pytest.raises(IllegalMoveError, match="move 2"):
        write_sgf(None, rules, [40, 40])
    with pytest.raises(ValueError, match="resign may only be the last"):
        write_sgf(None, rules, [rules.resign_action, 40])


def test_setup_stones_round_trip_and_handicap():
    rules = GoRules(9, komi=0.5)
    hand = [2 * 9 + 6, 6 * 9 + 2]  # G7, C3
    text = write_sgf(None, rules, [40, 81, 81], setup_black=hand, first_player=WHITE)
    assert "HA[2]" in text and "PL[W]" in text
    game = read_sgf(text.encode())
    assert game.setup_black == sorted(hand) and game.setup_white == []
    assert game.first_player == WHITE and game.handicap == 2
    state = game.to_state()
    assert stones(state, BLACK) == {"G7", "C3"} and stones(state, WHITE) == {"E5"}
    assert state.is_over and game.result == state.result_string()

    # A hand-written handicap game with a compressed point list (AB[cc:dd] is a 2x2 block).
    ext = read_sgf(b"(;FF[4]GM[1]SZ[9]HA[4]AB[cc:dd]AW[gg];W[ee];B[ff])")
    start = ext.initial_state()
    assert stones(start, BLACK) == {"C7", "D7", "C6", "D6"} and stones(start, WHITE) == {"G3"}
    assert start.to_play == WHITE and ext.first_player == WHITE
    assert [start.action_to_gtp(a) for a in ext.moves] == ["E5", "F4"]


# ----------------------------------------------------------------------------------------------
# GnuGo as an independent reader and scorer


def test_gnugo_loads_our_sgf_and_agrees_on_stones_and_score(tmp_path, gnugo):
    compared = 0
    with_dead = 0
    games = 0
    for size, komi, seeds in ((9, 7.5, range(16)), (9, 7.0, range(16, 20)), (13, 5.5, range(20, 22)),
                              (19, 7.5, range(22, 24))):
        rules = GoRules(size, komi=komi)
        for seed in seeds:
            state, moves = random_game(rules, seed)
            path = tmp_path / f"g{seed}.sgf"
            write_sgf(path, rules, moves, comments=["x"] * len(moves))
            games += 1
            to_move = gnugo.send(f"loadsgf {path}")
            assert to_move == ("black" if state.to_play == BLACK else "white")
            assert float(gnugo.send("get_komi")) == komi
            assert gnugo_stones(gnugo, "black") == stones(state, BLACK), f"seed {seed}: black stones differ"
            assert gnugo_stones(gnugo, "white") == stones(state, WHITE), f"seed {seed}: white stones differ"
            if state.consecutive_passes < 2:
                continue  # ended by the length limit: not played out, GnuGo would judge dead stones
            if gnugo.send("final_status_list dead").strip():
                with_dead += 1
                continue
            score = gnugo.send("final_score")
            ours = state.result_string()
            if score == "0" or ours == "0":
                assert score == ours, f"seed {seed}: gnugo {score} vs ours {ours}"
            else:
                assert score[:2] == ours[:2] and float(score[2:]) == float(ours[2:]), \
                    f"seed {seed}: gnugo {score} vs ours {ours}"
            compared += 1
    assert with_dead <= games // 5, f"GnuGo saw dead stones in {with_dead}/{games} played-out games"
    assert compared >= games * 2 // 3, f"only {compared}/{games} scores compared"


def test_gnugo_loads_setup_stones(tmp_path, gnugo):
    rules = GoRules(9, komi=0.5)
    path = tmp_path / "handicap.sgf"
    write_sgf(path, rules, [40, 30], setup_black=[2 * 9 + 6, 6 * 9 + 2], first_player=WHITE)
    assert gnugo.send(f"loadsgf {path}") == "white"
    assert gnugo_stones(gnugo, "black") == {"G7", "C3", "D6"}
    assert gnugo_stones(gnugo, "white") == {"E5"}


# ----------------------------------------------------------------------------------------------
# Errors


CORRUPT = {
    "garbage.sgf": (b"\x00\x01 this is not sgf", "not SGF"),
    "empty.sgf": (b"", "not SGF"),
    "truncated.sgf": (b"(;FF[4]GM[1]SZ[9];B[ee];W[", "not SGF"),
    "chess.sgf": (b"(;FF[4]GM[3]SZ[8];B[aa])", "not a Go game"),
    "big.sgf": (b"(;FF[4]GM[1]SZ[25];B[aa])", "board size 25"),
    "tiny.sgf": (b"(;FF[4]GM[1]SZ[3];B[aa])", "board size 3"),
    "offboard.sgf": (b"(;FF[4]GM[1]SZ[9];B[ee];W[zz])", "move 2 has bad coordinates"),
    "occupied.sgf": (b"(;FF[4]GM[1]SZ[9];B[ee];W[ee])", "move 2 is illegal"),
    "twice.sgf": (b"(;FF[4]GM[1]SZ[9];B[ee];B[ff])", "second black move"),
    "komi.sgf": (b"(;FF[4]GM[1]SZ[9]KM[seven];B[ee])", "bad komi"),
    "badsize.sgf": (b"(;FF[4]GM[1]SZ[nine];B[ee])", "SZ"),
    "midsetup.sgf": (b"(;FF[4]GM[1]SZ[9];B[ee];AW[aa])", "setup stones"),
}


@pytest.mark.parametrize("name", sorted(CORRUPT))
def test_corrupt_files_give_one_line_error(tmp_path, name):
    data, fragment = CORRUPT[name]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(SgfError) as info:
        read_sgf(path)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "\n" not in message
    assert message.startswith(f"{path}: "), message
    assert fragment in message, message
    with pytest.raises(SgfError, match=r"^<bytes>: "):
        read_sgf(data)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.sgf"
    with pytest.raises(SgfError, match=f"^{path}: cannot read"):
        read_sgf(path)
    with pytest.raises(SgfError):
        read_sgf(str(path))


def test_atomic_write_replaces_and_cleans_up(tmp_path):
    rules = GoRules(9)
    path = tmp_path / "g.sgf"
    write_sgf(path, rules, [40])
    write_sgf(path, rules, [40, 41])
    assert read_sgf(path).moves == [40, 41]
    assert os.listdir(tmp_path) == ["g.sgf"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    text = write_sgf(None, rules, [40, 41], comments=["é"])
    game = read_sgf(text)  # SGF text as str
    assert isinstance(game, SgfGame) and game.moves == [40, 41] and game.comments[0] == "é"
    assert game.source == "<string>"
