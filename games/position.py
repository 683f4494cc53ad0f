"""Positions that do not start on an empty board or do not alternate: setup stones (handicap, SGF AB/AW, a
drawn position), a colour moving twice (an inserted pass), a game ended by two passes that goes on.

One path for SGF, GTP and tests, so the same position has the same network inputs and NN-cache keys wherever
it comes from: setup stones make a position at move 0 with no history (``setup_state``), like an SGF root
with AB/AW. ``GoState`` has no undo and no setup stones, so a game with either is kept as data
(``GameLine``: setup stones, who moves first, the ``(colour, action)`` moves) and rebuilt by replaying it.
Only this module and ``games.go`` write the state's layout slots.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass, field


from games.go import BLACK, EMPTY, WHITE, GoRules, GoState, IllegalMoveError
from native import layout


def forget_history(state: GoState) -> GoState:
    """Make the current board the start of the game (move 0, no earlier positions, no captures): what an SGF
    root with setup stones is. The network's history planes show empty boards before it, as they do before
    move 0 of any game, which is also what the NN cache key (``native.tree.input_key``) assumes."""
    core = state.core
    h = state.hash
    state.hist[layout.BLOOM_WORDS] = h  # already in the Bloom filter: it was recorded when it arose
    core[layout.M_MOVE_NUMBER] = 0
    core[layout.M_PASSES] = 0
    core[layout.M_GAME_OVER] = 0
    core[layout.M_LAST_MOVE] = -1
    core[layout.M_CAPTURES_BLACK] = 0
    core[layout.M_CAPTURES_WHITE] = 0
    nn = state.size * state.size
    head = int(core[layout.M_PAST_HEAD])
    current = state.past[head * nn:(head + 1) * nn].copy()
    state.past[:] = EMPTY
    state.past[head * nn:(head + 1) * nn] = current
    return state


def setup_state(rules: GoRules, black=(), white=(), to_play: int = BLACK) -> GoState:
    """A position with setup stones (handicap, SGF AB/AW) and ``to_play`` to move, at move 0.

    Stones are placed by alternating moves (passes only where one colour has run out), so a placement
    takes at most 2 * max(#black, #white) moves. If the final position is legal (every chain has a
    liberty), every intermediate one is too: a partial chain either is the whole chain or touches one of its
    unplaced stones, an empty point then. ValueError if the stones overlap, are off the board, or form an
    illegal position."""
    n = rules.size
    black, white = [int(a) for a in black], [int(a) for a in white]
    if set(black) & set(white) or len(set(black)) != len(black) or len(set(white)) != len(white):
        raise ValueError("setup stones overlap")
    if any(not 0 <= a < n * n for a in black + white):
        raise ValueError("setup stone off the board")
    if 2 * max(len(black), len(white)) + 1 >= rules.max_moves:
        raise ValueError("too many setup stones")
    state = GoState(rules)
    todo = {BLACK: collections.deque(black), WHITE: collections.deque(white)}
    while todo[BLACK] or todo[WHITE]:
        stones = todo[state.to_play]
        if stones:
            try:
                state.play(stones.popleft())
            except IllegalMoveError as e:
                raise ValueError(f"setup stones do not form a legal position ({e})") from None
            if sum(state.captures):
                raise ValueError("setup stones do not form a legal position (a chain without liberties)")
        else:
            state.play(rules.pass_action)
            state.core[layout.M_PASSES] = 0
    if state.to_play != to_play:
        state.play(rules.pass_action)
    return forget_history(state)


def reopen(state: GoState) -> GoState:
    """A game ended by two passes goes on (GTP leaves the end of the game to the controller)."""
    if state.is_over and state.resigned == EMPTY and state.move_number < state.rules.max_moves:
        state.core[layout.M_PASSES] = 0
        state.core[layout.M_GAME_OVER] = 0
    return state


def insert_pass(state: GoState) -> GoState:
    """The other colour passes so that the same colour can move again; the pass does not count towards
    ending the game. IllegalMoveError when the game has reached the maximum length."""
    reopen(state)
    state.play(state.rules.pass_action)
    state.core[layout.M_PASSES] = 0
    state.core[layout.M_GAME_OVER] = 0 if state.move_number < state.rules.max_moves else 1
    return state


def to_move(state: GoState, colour: int) -> GoState:
    """``state`` (in place) with ``colour`` to move and not over unless the length limit is reached."""
    reopen(state)
    if state.to_play != colour and not state.is_over:
        insert_pass(state)
    return state


@dataclass
class GameLine:
    """A GTP game as data; ``replay()`` builds its ``GoState``."""

    rules: GoRules
    setup_black: list[int] = field(default_factory=list)
    setup_white: list[int] = field(default_factory=list)
    first_player: int = BLACK
    moves: list[tuple[int, int]] = field(default_factory=list)  # (colour, action)

    def initial_state(self) -> GoState:
        return setup_state(self.rules, self.setup_black, self.setup_white, self.first_player)

    def replay(self) -> GoState:
        state = self.initial_state()
        for colour, action in self.moves:
            apply_move(state, colour, action)
        return state

    def actions(self) -> list[int]:
        """The moves as alternating actions from ``first_player`` (inserted passes written out): for SGF."""
        out, expected = [], self.first_player
        for colour, action in self.moves:
            if colour != expected:
                out.append(self.rules.pass_action)
            out.append(action)
            expected = 3 - colour
        return out


def apply_move(state: GoState, colour: int, action: int) -> None:
    """Play ``colour``'s ``action`` in place (IllegalMoveError leaves ``state`` unusable: apply to a copy)."""
    to_move(state, colour)
    state.play(action)


def state_from_text(rules: GoRules, rows: str, to_play: int = BLACK) -> GoState:
    """A position drawn as text (``X`` black, ``O`` white, ``.`` empty, row 0 at the top) with ``to_play``
    to move, as setup stones (``setup_state``: move 0, no history, as in SGF and GTP); for tests and Go
    problems."""
    grid = [r.split() if " " in r.strip() else list(r.strip()) for r in rows.strip().splitlines()]
    if len(grid) != rules.size or any(len(r) != rules.size for r in grid):
        raise ValueError(f"expected {rules.size} rows of {rules.size} points")
    points = {glyph: [r * rules.size + c for r, row in enumerate(grid) for c, g in enumerate(row) if g == glyph]
              for glyph in "XO"}
    return setup_state(rules, points["X"], points["O"], to_play)
