"""Go rules as Go problems: positions drawn as text, moves as GTP vertices.

Text boards: ``X`` black, ``O`` white, ``.`` empty, first line = top row (GTP row N). ``GoState.from_text``
builds them with setup moves, so the setup positions are part of the superko history.

The last part checks the incremental kernels (chains, pseudo-liberties, atari test, empty list, superko
hashes) against a slow pure-Python reference implementation of the same rules, on random games.
"""
from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from games.go import BLACK, EMPTY, WHITE, GoRules, GoState, IllegalMoveError
from games.position import state_from_text
from native import board as kernels
from native import layout

# ----------------------------------------------------------------------------------------------
# Helpers


def position(text: str, to_play: int = BLACK, komi: float = 7.5, superko: bool = True) -> GoState:
    size = len(text.strip().splitlines())
    return state_from_text(GoRules(size, komi, superko), text, to_play=to_play)


def play(state: GoState, *vertices: str) -> list[int]:
    """Play GTP vertices for alternating sides; returns the stones each move captured."""
    captured = []
    for v in vertices:
        before = sum(state.captures)
        state.play(state.gtp_to_action(v))
        captured.append(sum(state.captures) - before)
    return captured


def legal(state: GoState, vertex: str) -> bool:
    return state.is_legal(state.gtp_to_action(vertex))


def rows(state: GoState) -> list[str]:
    glyph = {EMPTY: ".", BLACK: "X", WHITE: "O"}
    return [" ".join(glyph[int(v)] for v in row) for row in state.board()]


def with_superko(state: GoState, superko: bool) -> GoState:
    """The same game (history included) under the other superko setting."""
    other = state.copy()
    other.core[layout.M_SUPERKO] = int(superko)
    other.rules = GoRules(state.size, state.rules.komi, superko)
    return other


def replay(rules: GoRules, vertices: list[str]) -> GoState:
    state = GoState(rules)
    play(state, *vertices)
    return state


# ----------------------------------------------------------------------------------------------
# Ko

KO = """
. . . . . . .
. . X O . . .
. X . X O . .
. . X O . . .
. . . . . . .
. . . . . . .
. . . . . . .
"""  # the black stone D5 is in atari; its last liberty C5 is surrounded by black


def test_simple_ko_immediate_recapture_is_illegal():
    state = position(KO, to_play=WHITE)
    assert play(state, "C5") == [1]  # white takes the ko
    assert state.liberties(state.gtp_to_action("C5")) == 1
    assert not legal(state, "D5")  # black may not retake at once
    with pytest.raises(IllegalMoveError, match="superko"):
        state.play(state.gtp_to_action("D5"))
    # The refusal is the ko rule, not suicide: without it the retake is a plain capture.
    assert with_superko(state, False).is_legal(state.gtp_to_action("D5"))


def test_ko_retake_is_legal_after_a_threat_exchange():
    state = position(KO, to_play=WHITE)
    play(state, "C5")
    play(state, "G1", "G2")  # black threatens elsewhere, white answers
    assert legal(state, "D5")
    assert play(state, "D5") == [1]
    assert rows(state)[2] == ". X . X O . ."
    assert not legal(state, "C5")  # and now white must find a threat


def test_ko_retake_is_legal_after_a_pass_and_a_move_elsewhere():
    state = position(KO, to_play=WHITE)
    play(state, "C5", "pass")  # black passes instead of threatening
    assert state.is_legal(state.gtp_to_action("pass"))  # white could end the game here
    play(state, "G7")  # white plays elsewhere instead of filling the ko
    assert legal(state, "D5")  # the board differs from every earlier one: the retake is allowed


# Three kos (two on the top edge, one on the bottom edge). Black can take the kos at C9 and H9, white the
# one at B1. Ko points: K1 = B9 / S1 = C9, K2 = G9 / S2 = H9, K3 = B1 / S3 = C1.
TRIPLE_KO = """
X O . O . X O . O
. X O . . . X O .
. . . . . . . . .
. . . . . . . . .
. . . . . . . . .
. . . . . . . . .
. . . . . . . . .
. X O . . . . . .
X . X O . . . . .
"""
TRIPLE_KO_CYCLE = ["C9", "B1", "H9", "B9", "C1"]  # each a ko capture that simple ko allows


def test_triple_ko_cycle_is_forbidden_by_positional_superko():
    state = position(TRIPLE_KO)
    start = rows(state)
    assert play(state, *TRIPLE_KO_CYCLE) == [1] * 5
    # White's sixth ko capture G9 would recreate the starting position. It is not an immediate recapture
    # (black's last capture was at C1), so simple ko allows it, but positional superko does not.
    assert not legal(state, "G9")
    with pytest.raises(IllegalMoveError, match="superko"):
        state.play(state.gtp_to_action("G9"))
    no_superko = with_superko(state, False)
    assert no_superko.is_legal(no_superko.gtp_to_action("G9"))
    assert play(no_superko, "G9") == [1]
    assert rows(no_superko) == start
    assert no_superko.hash == position(TRIPLE_KO).hash
    # The same game played from the start under GoRules(superko=False).
    fresh = position(TRIPLE_KO, superko=False)
    assert fresh.rules == GoRules(9, 7.5, superko=False)
    play(fresh, *TRIPLE_KO_CYCLE)
    assert legal(fresh, "G9")
    play(fresh, "G9", "C9")  # and the cycle can go round again
    assert rows(fresh)[0] == "X . X O . X O . O"


def test_superko_off_also_drops_simple_ko():
    """``GoRules(superko=False)`` keeps only occupancy and suicide checks (documented in GoRules)."""
    state = position(KO, to_play=WHITE, superko=False)
    play(state, "C5")
    assert legal(state, "D5")
    assert play(state, "D5") == [1]


def test_no_board_position_ever_repeats_under_superko():
    """On a crowded 5x5 board uniform random play captures constantly; the board after every stone
    placement must differ from every earlier board (only passes leave the position unchanged)."""
    rules = GoRules(5)
    for seed in range(20):
        rng = random.Random(seed)
        state = GoState(rules)
        seen = {state.hash}
        while not state.is_over:
            points = state.legal_actions()[:-1]
            if len(points) == 0 or rng.random() < 0.02:
                state.play(rules.pass_action)
                continue
            state.play(int(rng.choice(points)))
            assert state.hash not in seen
            seen.add(state.hash)


# ----------------------------------------------------------------------------------------------
# Captures, snapback, suicide

SNAPBACK = """
. . X . . . .
O O X . . . .
X X X . . . .
. . . . . . .
. . . . . . .
. . . . . . .
. . . . . . .
"""


def test_snapback():
    state = position(SNAPBACK)
    assert state.liberties(state.gtp_to_action("A6")) == 2  # the white pair: A7 and B7
    assert play(state, "A7") == [0]  # black throws in: self-atari
    assert state.liberties(state.gtp_to_action("A7")) == 1
    assert play(state, "B7") == [1]  # white captures it...
    assert state.liberties(state.gtp_to_action("B7")) == 1  # ...and is left with one liberty, A7
    assert legal(state, "A7")  # not a ko: black takes three stones back at once
    assert play(state, "A7") == [3]
    assert rows(state)[:3] == ["X . X . . . .", ". . X . . . .", "X X X . . . ."]
    assert state.captures == (3, 1)


def test_single_stone_suicide_is_illegal():
    state = position(
        """
. . . . .
. . . . .
. . . . .
X . . . .
. X . . .
""",
        to_play=WHITE,
    )
    assert not legal(state, "A1")
    with pytest.raises(IllegalMoveError, match="suicide"):
        state.play(state.gtp_to_action("A1"))
    assert legal(state, "B2")


def test_multi_stone_suicide_is_illegal():
    state = position(
        """
O . X . .
X X . . .
. . . . .
. . . . .
. . . . .
""",
        to_play=WHITE,
    )
    assert state.liberties(state.gtp_to_action("A5")) == 1
    assert not legal(state, "B5")  # would leave the white pair A5-B5 with no liberty
    with pytest.raises(IllegalMoveError, match="suicide"):
        state.play(state.gtp_to_action("B5"))
    # Black filling the same point is fine (it captures A5).
    black = position(
        """
O . X . .
X X . . .
. . . . .
. . . . .
. . . . .
""",
        to_play=BLACK,
    )
    assert play(black, "B5") == [1]


def test_move_without_liberties_that_captures_is_legal():
    state = position(
        """
. X O . .
X O . . .
. . . . .
. . . . .
. . . . .
""",
        to_play=WHITE,
    )
    # A5 has no empty neighbour, but it takes the last liberty of B5.
    assert legal(state, "A5")
    assert play(state, "A5") == [1]
    assert rows(state)[0] == "O . O . ."
    assert state.liberties(state.gtp_to_action("A5")) == 1


def test_filling_own_last_liberty_is_legal_when_it_captures():
    state = position(
        """
O . X O .
X X O . .
. . . . .
. . . . .
. . . . .
""",
        to_play=WHITE,
    )
    assert state.liberties(state.gtp_to_action("A5")) == 1  # white A5 is in atari
    # B5 fills white's own last liberty, but first it takes the last liberty of C5.
    assert play(state, "B5") == [1]
    assert rows(state)[0] == "O O . O ."
    assert state.liberties(state.gtp_to_action("A5")) == 1
    assert play(state, "C5") == [2]  # black takes two back: not a ko


def test_multi_stone_capture_of_two_chains():
    state = position(
        """
X X . X X
O O O O O
. . . . .
. . . . .
. . . . .
""",
        to_play=WHITE,
    )
    assert state.liberties(state.gtp_to_action("A5")) == 1
    assert state.liberties(state.gtp_to_action("E5")) == 1
    # C5 has no empty neighbour and would be suicide, but it captures both black chains.
    assert play(state, "C5") == [4]
    assert rows(state)[0] == ". . O . ."
    assert state.captures == (0, 4)
    assert state.board()[0].tolist() == [EMPTY, EMPTY, WHITE, EMPTY, EMPTY]
    # The capturing chain: row 4 plus C5; liberties A5 B5 D5 E5 and the whole of row 3.
    assert state.liberties(state.gtp_to_action("C5")) == 9
    assert state.liberties(state.gtp_to_action("A4")) == 9
    # Black may play on the freed points again.
    assert legal(state, "A5") and legal(state, "E5")


def test_capture_restores_liberties_of_surrounding_chains():
    state = position(
        """
. . . . .
. O . . .
O X . . .
. O . . .
. . . . .
""",
        to_play=WHITE,
    )
    b2 = state.gtp_to_action("B2")
    a3 = state.gtp_to_action("A3")
    assert state.liberties(b2) == 3
    assert state.liberties(a3) == 2
    assert play(state, "C3") == [1]
    assert state.liberties(a3) == 3  # B3 is free again
    assert state.liberties(state.gtp_to_action("C3")) == 4
    assert state.liberties(b2) == 4


# ----------------------------------------------------------------------------------------------
# Liberties on the edge and in the corner


@pytest.mark.parametrize(
    "vertex, expected",
    [("A1", 2), ("A9", 2), ("J1", 2), ("J9", 2), ("A5", 3), ("E1", 3), ("J5", 3), ("E9", 3), ("E5", 4)],
)
def test_single_stone_liberties_edge_corner_centre(vertex, expected):
    state = GoState(GoRules(9))
    play(state, vertex)
    assert state.liberties(state.gtp_to_action(vertex)) == expected


def test_chain_liberties_count_shared_points_once():
    state = position(
        """
X X X . .
X . X . .
. . . . .
. . . . .
. . . . .
""",
    )
    # Stones A5 B5 C5 A4 C4 form one chain; B4 is adjacent to four of them but counts once.
    for v in ("A5", "B5", "C5", "A4", "C4"):
        assert state.liberties(state.gtp_to_action(v)) == 5  # D5 B4 D4 A3 C3
    assert state.liberties(state.gtp_to_action("B4")) == 0  # empty point
    play(state, "pass", "A3")  # white reduces the chain
    assert state.liberties(state.gtp_to_action("A5")) == 4
    assert state.liberties(state.gtp_to_action("A3")) == 2  # on the edge, next to black: A2 and B3


def test_liberties_rejects_off_board_actions():
    state = GoState(GoRules(5))
    with pytest.raises(IllegalMoveError):
        state.liberties(25)


# ----------------------------------------------------------------------------------------------
# End of the game: passes, move limit, resignation


def test_two_passes_end_the_game():
    rules = GoRules(9)
    state = GoState(rules)
    play(state, "E5", "pass")
    assert not state.is_over and state.consecutive_passes == 1
    play(state, "D4")  # a move in between resets the count
    assert state.consecutive_passes == 0
    play(state, "pass")
    assert not state.is_over
    play(state, "pass")
    assert state.is_over and state.consecutive_passes == 2
    assert not state.legal_mask().any()
    assert not state.is_legal(rules.pass_action) and not state.is_legal(rules.resign_action)
    with pytest.raises(IllegalMoveError, match="over"):
        state.play(rules.pass_action)
    # Scored as it stands: black E5 and D4 own the board (white has no stones), minus komi.
    assert state.area_score() == (81, 0)
    assert state.result_string() == "B+73.5"


def test_max_length_ends_the_game():
    rules = GoRules(5)
    state = GoState(rules)
    rng = random.Random(3)
    while not state.is_over:
        points = state.legal_actions()[:-1]
        # Never two passes in a row: pass only when no board move is legal.
        state.play(int(rng.choice(points)) if len(points) else rules.pass_action)
    assert state.move_number == rules.max_moves == 50
    assert state.consecutive_passes < 2
    assert not state.legal_mask().any()
    black, white = state.area_score()
    assert state.score() == black - white - 7.5
    assert state.winner() == (BLACK if state.score() > 0 else WHITE)


def test_first_passes_do_not_end_the_game_early_after_setup():
    state = position(KO, to_play=WHITE)  # the setup used passes
    assert state.consecutive_passes == 0 and not state.is_over
    play(state, "pass")
    assert not state.is_over


@pytest.mark.parametrize("resigner, result", [(BLACK, "W+R"), (WHITE, "B+R")])
def test_resignation(resigner, result):
    rules = GoRules(9)
    state = GoState(rules)
    play(state, "E5")
    if resigner == BLACK:
        play(state, "pass")
    assert state.to_play == resigner
    assert state.score() == 81 - 7.5  # black owns the board as it stands...
    assert state.is_legal(rules.resign_action)
    assert len(state.legal_mask()) == rules.num_actions == rules.resign_action  # the mask excludes resign
    state.play(rules.resign_action)  # ...but a resignation decides, whoever resigns
    assert state.is_over
    assert state.resigned == resigner
    assert state.winner() == 3 - resigner
    assert state.result_for(resigner) == -1 and state.result_for(3 - resigner) == 1
    assert state.result_string() == result
    assert not state.legal_mask().any()


# ----------------------------------------------------------------------------------------------
# Tromp-Taylor area scoring

FINAL_WITH_DAME = """
. X . O .
X X . O .
. X . O O
X X . O .
. X . O .
"""  # black 7 stones + 3 eyes, white 6 stones + 4 points, column C is dame


@pytest.mark.parametrize(
    "komi, score, result, winner",
    [(7.5, -7.5, "W+7.5", WHITE), (0, 0.0, "0", EMPTY), (0.5, -0.5, "W+0.5", WHITE), (-2, 2.0, "B+2", BLACK)],
)
def test_area_score_with_dame_and_komi(komi, score, result, winner):
    state = position(FINAL_WITH_DAME, komi=komi)
    assert state.area_score() == (10, 10)
    assert state.score() == score
    assert state.result_string() == result
    assert state.winner() == winner


def test_integer_komi_draw_and_side_to_move_view():
    board = """
X X X . O
X X X . O
X X X . O
X X X . O
X X X . O
"""
    draw = position(board, komi=10)
    assert draw.area_score() == (15, 5)  # the dame column counts for nobody
    assert draw.winner() == EMPTY and draw.result_string() == "0"
    assert draw.result_for_to_play() == 0 and draw.result_for(BLACK) == 0
    won = position(board, komi=7.5, to_play=BLACK)
    assert won.result_string() == "B+2.5"
    assert won.result_for_to_play() == 1
    play(won, "pass")
    assert won.to_play == WHITE and won.result_for_to_play() == -1
    lost = position(board, komi=12.5, to_play=WHITE)
    assert lost.result_string() == "W+2.5" and lost.result_for_to_play() == 1


def test_territory_touching_both_colours_is_neutral():
    state = GoState(GoRules(9))
    play(state, "E5", "E6")
    assert state.area_score() == (1, 1)  # the one big empty region reaches both colours
    assert state.result_string() == "W+7.5"
    assert GoState(GoRules(9, komi=7.5)).result_string() == "W+7.5"  # empty board: komi alone


def test_dead_stones_count_as_they_stand():
    """Tromp-Taylor: no dead-stone removal; a hopeless white stone still keeps the open area neutral."""
    state = position(
        """
. X . . .
X X . . .
. . . O .
. . . . .
. . . . .
""",
        komi=0,
    )
    # A5 is black's eye; the rest of the empty board reaches both colours.
    assert state.area_score() == (4, 1)
    assert state.result_string() == "B+3"


# ----------------------------------------------------------------------------------------------
# Legal mask, copies and hashes


def _random_positions(size: int, seed: int, count: int):
    rules = GoRules(size)
    state = GoState(rules)
    rng = random.Random(seed)
    for _ in range(count):
        if state.is_over:
            break
        yield state
        acts = state.legal_actions()
        points = acts[:-1]
        state.play(int(rng.choice(points)) if len(points) and rng.random() > 0.03 else rules.pass_action)


@pytest.mark.parametrize("size", [5, 9, 13, 19])
def test_legal_mask_matches_is_legal(size):
    for state in _random_positions(size, seed=size, count=120):
        mask = state.legal_mask()
        assert mask.shape == (size * size + 1,)
        assert mask.tolist() == [state.is_legal(a) for a in range(size * size + 1)]
        assert mask[-1]  # pass is always legal while the game runs
        assert state.is_legal(size * size + 1)  # so is resignation, outside the mask
        assert not state.is_legal(-1) and not state.is_legal(size * size + 2)


@pytest.mark.parametrize("size", [5, 9, 13, 19])
@pytest.mark.parametrize("fill_eyes", [False, True])
def test_searchable_points_match_the_rules_point_by_point(size, fill_eyes):
    """The search's one-pass legality (``board.searchable_points``) is ``is_legal_point`` and, unless
    ``fill_eyes``, not ``is_eye`` at every point (captures, suicide, ko and superko included)."""
    width = size + 2
    for state in _random_positions(size, seed=size + 7, count=120):
        out = np.zeros(size * size, np.float32)
        count = kernels.searchable_points(state.core, state.hist, fill_eyes, out)
        mover = state.to_play
        expected = []
        for a in range(size * size):
            point = (a // size + 1) * width + a % size + 1
            expected.append(bool(kernels.is_legal_point(state.core, state.hist, point))
                            and (fill_eyes or not kernels.is_eye(state.core, point, mover)))
        assert (out == 1).tolist() == expected and count == sum(expected)


def test_copy_is_independent():
    state = replay(GoRules(9), ["E5", "E6", "D5", "D6"])
    snapshot = (state.board().copy(), state.hash, state.move_number, state.to_play, state.hist.copy())
    clone = state.copy()
    play(clone, "C5", "C6", "pass", "pass")
    assert clone.is_over and not state.is_over
    assert (state.board() == snapshot[0]).all()
    assert state.hash == snapshot[1] and state.move_number == snapshot[2] and state.to_play == snapshot[3]
    assert (state.hist == snapshot[4]).all()
    play(state, "F5")  # and the other way round
    assert clone.board()[4, 5] == EMPTY


def test_clone_then_play_gives_the_same_hash():
    rules = GoRules(9)
    state = GoState(rules)
    rng = random.Random(11)
    for _ in range(150):
        if state.is_over:
            break
        a = int(rng.choice(state.legal_actions()))
        clone = state.copy()
        clone.play(a)
        state.play(a)
        assert clone.hash == state.hash
        assert (clone.board() == state.board()).all()
        assert (clone.core == state.core).all()
        assert (clone.features() == state.features()).all()


def test_hash_is_positional():
    rules = GoRules(9)
    a = replay(rules, ["E5", "D4", "C3", "F6"])
    b = replay(rules, ["C3", "F6", "E5", "D4"])
    assert a.hash == b.hash
    c = replay(rules, ["E5", "D4", "C3", "pass"])  # one stone fewer
    assert c.hash != a.hash
    d = replay(rules, ["E5", "D4", "C3", "F6", "pass"])  # same board, other side to move
    assert d.hash == a.hash
    assert GoState(rules).hash == 0


def test_illegal_move_messages():
    state = position(KO, to_play=WHITE)
    with pytest.raises(IllegalMoveError, match="occupied"):
        state.play(state.gtp_to_action("C6"))
    with pytest.raises(IllegalMoveError, match="outside"):
        state.play(999)


# ----------------------------------------------------------------------------------------------
# Reference implementation: flood fills, board tuples for superko. Slow and obviously right.


class ReferenceGo:
    def __init__(self, size: int, komi: float = 7.5, superko: bool = True):
        self.n = size
        self.komi = komi
        self.superko = superko
        self.board = [EMPTY] * (size * size)
        self.to_play = BLACK
        self.passes = 0
        self.moves = 0
        self.over = False
        self.captures = {BLACK: 0, WHITE: 0}
        self.seen = {tuple(self.board)}
        self.nbrs = []
        for a in range(size * size):
            r, c = divmod(a, size)
            self.nbrs.append(
                [rr * size + cc for rr, cc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)) if 0 <= rr < size and 0 <= cc < size]
            )

    def chain(self, board, a):
        colour = board[a]
        stones, libs, todo = {a}, set(), [a]
        while todo:
            p = todo.pop()
            for q in self.nbrs[p]:
                if board[q] == EMPTY:
                    libs.add(q)
                elif board[q] == colour and q not in stones:
                    stones.add(q)
                    todo.append(q)
        return stones, libs

    def after(self, a):
        """(board, captured) after the side to move plays on ``a``, or None for suicide."""
        board = list(self.board)
        colour, opp = self.to_play, 3 - self.to_play
        board[a] = colour
        captured = 0
        for q in self.nbrs[a]:
            if board[q] == opp:
                stones, libs = self.chain(board, q)
                if not libs:
                    for s in stones:
                        board[s] = EMPTY
                    captured += len(stones)
        if not self.chain(board, a)[1]:
            return None
        return board, captured

    def is_legal(self, a):
        if self.over:
            return False
        if a == self.n * self.n:
            return True
        if self.board[a] != EMPTY:
            return False
        res = self.after(a)
        if res is None:
            return False
        return not (self.superko and tuple(res[0]) in self.seen)

    def legal_set(self):
        return {a for a in range(self.n * self.n + 1) if self.is_legal(a)}

    def play(self, a):
        assert self.is_legal(a)
        if a == self.n * self.n:
            self.passes += 1
        else:
            self.board, captured = self.after(a)
            self.captures[self.to_play] += captured
            self.passes = 0
        self.seen.add(tuple(self.board))
        self.moves += 1
        self.to_play = 3 - self.to_play
        if self.passes >= 2 or self.moves >= 2 * self.n * self.n:
            self.over = True

    def area(self):
        black = self.board.count(BLACK)
        white = self.board.count(WHITE)
        seen = set()
        for a in range(self.n * self.n):
            if self.board[a] != EMPTY or a in seen:
                continue
            region, touches, todo = {a}, set(), [a]
            while todo:
                p = todo.pop()
                for q in self.nbrs[p]:
                    if self.board[q] == EMPTY:
                        if q not in region:
                            region.add(q)
                            todo.append(q)
                    else:
                        touches.add(self.board[q])
            seen |= region
            if touches == {BLACK}:
                black += len(region)
            elif touches == {WHITE}:
                white += len(region)
        return black, white


def check_kernel_invariants(state: GoState, ref: ReferenceGo):
    """The incrementally kept arrays agree with what a flood fill of the board says."""
    n = state.size
    width = n + 2
    area = width * width
    core = state.core

    def fld(f):
        return core[layout.META_LEN + f * area : layout.META_LEN + (f + 1) * area]

    board, head, nxt = fld(layout.F_BOARD), fld(layout.F_CHAIN_HEAD), fld(layout.F_CHAIN_NEXT)
    libs, lsum, lsq, csize = fld(layout.F_LIBS), fld(layout.F_LIB_SUM), fld(layout.F_LIB_SUMSQ), fld(layout.F_CHAIN_SIZE)

    def pad(a):
        return (a // n + 1) * width + a % n + 1

    assert [int(board[pad(a)]) for a in range(n * n)] == ref.board
    done = set()
    for a in range(n * n):
        if ref.board[a] == EMPTY or a in done:
            continue
        stones, real_libs = ref.chain(ref.board, a)
        done |= stones
        padded = {pad(s) for s in stones}
        heads = {int(head[p]) for p in padded}
        assert len(heads) == 1, f"chain at {state.action_to_gtp(a)} has several heads"
        h = heads.pop()
        assert h in padded
        # The circular list visits exactly the chain's stones.
        walk, p = [], h
        while True:
            walk.append(p)
            p = int(nxt[p])
            if p == h or len(walk) > len(stones):
                break
        assert sorted(walk) == sorted(padded)
        assert csize[h] == len(stones)
        pseudo = [pad(q) for s in stones for q in ref.nbrs[s] if ref.board[q] == EMPTY]
        assert libs[h] == len(pseudo)
        assert lsum[h] == sum(pseudo)
        assert lsq[h] == sum(p * p for p in pseudo)
        assert kernels.in_atari(core, h) == (len(real_libs) == 1)
        assert state.liberties(a) == len(real_libs)
    empties = {pad(a) for a in range(n * n) if ref.board[a] == EMPTY}
    count = int(core[layout.M_NUM_EMPTY])
    listed = fld(layout.F_EMPTY_LIST)[:count]
    assert set(int(p) for p in listed) == empties and count == len(empties)
    pos = fld(layout.F_EMPTY_POS)
    assert all(int(listed[pos[p]]) == p for p in empties)


def assert_same(state: GoState, ref: ReferenceGo):
    assert state.board().flatten().tolist() == ref.board
    assert state.to_play == ref.to_play
    assert state.move_number == ref.moves
    assert state.is_over == ref.over
    assert state.consecutive_passes == ref.passes
    assert state.captures == (ref.captures[BLACK], ref.captures[WHITE])


def assert_planes(state: GoState, boards: list[list[int]]):
    """The network's planes of ``state`` against the boards of the game so far (``boards[-1]`` the current
    one): the mover's stones now and 1..7 moves ago, the opponent's, black to move, ones; empty boards before
    the first move."""
    n, own = state.size, state.to_play
    planes = state.features()
    for t in range(layout.HISTORY_PLANES):
        past = boards[-1 - t] if t < len(boards) else [EMPTY] * (n * n)
        assert planes[t].flatten().tolist() == [float(v == own) for v in past], f"plane {t}"
        assert planes[layout.HISTORY_PLANES + t].flatten().tolist() == [float(v == 3 - own) for v in past]
    assert (planes[-2] == float(own == BLACK)).all() and (planes[-1] == 1.0).all()


@settings(max_examples=150)
@given(size=st.integers(5, 9), superko=st.booleans(), data=st.data())
def test_incremental_state_matches_reference(size, superko, data):
    rules = GoRules(size, 7.5, superko)
    state = GoState(rules)
    ref = ReferenceGo(size, 7.5, superko)
    boards = [list(ref.board)]
    length = data.draw(st.integers(0, rules.max_moves), label="length")
    for _ in range(length):
        mask = state.legal_mask()
        assert set(np.flatnonzero(mask).tolist()) == ref.legal_set()
        points = np.flatnonzero(mask[:-1])
        choice = data.draw(st.integers(0, 2**20), label="choice")
        a = rules.pass_action if choice % 32 == 0 or len(points) == 0 else int(points[(choice // 32) % len(points)])
        state.play(a)
        ref.play(a)
        boards.append(list(ref.board))
        assert_same(state, ref)
        check_kernel_invariants(state, ref)
        assert_planes(state, boards)
        if state.is_over:
            break
    assert state.area_score() == ref.area()


@pytest.mark.parametrize("size, seed", [(9, 1), (9, 2), (9, 3), (13, 4), (19, 5)])
def test_random_playouts_match_reference(size, seed):
    """Full games of the kernels' own random player (no eye filling), checked move by move."""
    kernels.seed_kernels(seed)
    state = GoState(GoRules(size))
    ref = ReferenceGo(size)
    boards = [list(ref.board)]
    check_legal = size <= 9
    while not state.is_over:
        if check_legal:
            assert set(state.legal_actions().tolist()) == ref.legal_set()
        a = state.play_random()
        assert ref.is_legal(a)
        ref.play(a)
        boards.append(list(ref.board))
        assert_same(state, ref)
        assert_planes(state, boards)
        if check_legal or state.move_number % 50 == 0:
            check_kernel_invariants(state, ref)
    check_kernel_invariants(state, ref)
    assert state.area_score() == ref.area()


def test_area_of_any_board_is_the_native_count():
    """``area_score_of`` (GTP's scoring after dead stones are removed) counts a board exactly as the game's
    own Tromp-Taylor score does, with stones taken off as well."""
    from games.go import area_score_of, result_string

    rng = np.random.default_rng(5)
    for size in (5, 9, 19):
        rules = GoRules(size)
        state = GoState(rules)
        for _ in range(size * size):
            state.play_random()
            if state.is_over:
                break
            board = state.board()
            assert area_score_of(rules, board) == state.area_score()
        cleaned = state.board()
        cleaned[rng.random(cleaned.shape) < 0.3] = 0  # some stones removed ("dead")
        black, white = area_score_of(rules, cleaned)
        assert 0 <= black + white <= size * size and black >= int((cleaned == 1).sum())
    assert [result_string(s) for s in (3.5, -12.0, 0.0)] == ["B+3.5", "W+12", "0"]
