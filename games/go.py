"""Go for Python callers: ``GoRules`` (data) and ``GoState`` (a thin facade over ``native.board``).

Hot loops never go through this class: search and self-play call the kernels on the arrays directly.
This facade is for tests, the gymnasium env, SGF, GTP and humans.

Actions: ``a = row * N + col`` with row 0 the top row (GTP row N), ``N * N`` = pass, ``N * N + 1`` = resign.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from native import board as kernels
from native import features as native_features
from native import layout

BLACK = layout.BLACK
WHITE = layout.WHITE
EMPTY = layout.EMPTY
GTP_COLUMNS = "ABCDEFGHJKLMNOPQRST"  # GTP skips I


class IllegalMoveError(ValueError):
    """A move the rules forbid (occupied point, suicide, superko, game over, off the board)."""


# Names of rule sets (KataGo's) that score by area, as specmcts does: the GTP engine and the analysis engine
# accept them (both play positional superko and no suicide).
AREA_RULES = frozenset({"tromp-taylor", "chinese", "chinese-ogs", "chinese-kgs", "aga", "new-zealand",
                        "stone-scoring", "bga"})

@dataclass(frozen=True)
class GoRules:
    """Rules are data passed around, never global flags (KataGo's ``Rules``)."""

    size: int = 9
    komi: float = 7.5
    superko: bool = True  # positional superko; False leaves only suicide and occupancy checks

    def __post_init__(self):
        if not layout.MIN_SIZE <= self.size <= layout.MAX_SIZE:
            raise ValueError(f"board size must be {layout.MIN_SIZE}..{layout.MAX_SIZE}, got {self.size}")
        if round(self.komi * 2) != self.komi * 2:
            raise ValueError(f"komi must be a multiple of 0.5, got {self.komi}")

    @property
    def num_actions(self) -> int:
        return layout.num_actions(self.size)

    @property
    def pass_action(self) -> int:
        return layout.pass_action(self.size)

    @property
    def resign_action(self) -> int:
        return layout.resign_action(self.size)

    @property
    def max_moves(self) -> int:
        return layout.max_moves(self.size)


def colour_name(colour: int) -> str:
    return {BLACK: "B", WHITE: "W", EMPTY: "0"}[colour]


class GoState:
    """A Go position with its history. Cloning copies three small fixed-size arrays."""

    __slots__ = ("rules", "core", "hist", "past")

    def __init__(self, rules: GoRules | None = None, *, _arrays=None):
        self.rules = rules or GoRules()
        if _arrays is not None:
            self.core, self.hist, self.past = _arrays
            return
        size = self.rules.size
        self.core = np.zeros(layout.core_len(size), np.int32)
        self.hist = np.zeros(layout.hist_len(size), np.uint64)
        self.past = np.zeros(layout.past_len(size), np.int8)
        kernels.init_state(self.core, self.hist, self.past, size, round(self.rules.komi * 2), int(self.rules.superko))

    # -- copying -------------------------------------------------------------------------------
    def copy(self) -> "GoState":
        other = GoState(self.rules, _arrays=(np.empty_like(self.core), np.zeros_like(self.hist), np.empty_like(self.past)))
        kernels.copy_state(self.core, self.hist, self.past, other.core, other.hist, other.past)
        return other

    @property
    def history_words(self) -> int:
        """Words of ``hist`` in use: the superko Bloom filter and one hash per position so far."""
        return layout.BLOOM_WORDS + self.move_number + 1

    # -- scalars -------------------------------------------------------------------------------
    @property
    def size(self) -> int:
        return self.rules.size

    @property
    def to_play(self) -> int:
        return int(self.core[layout.M_TO_PLAY])

    @property
    def move_number(self) -> int:
        return int(self.core[layout.M_MOVE_NUMBER])

    @property
    def consecutive_passes(self) -> int:
        return int(self.core[layout.M_PASSES])

    @property
    def last_move(self) -> int:
        return int(self.core[layout.M_LAST_MOVE])

    @property
    def is_over(self) -> bool:
        return bool(self.core[layout.M_GAME_OVER])

    @property
    def resigned(self) -> int:
        """Colour that resigned, or EMPTY."""
        return int(self.core[layout.M_RESIGNED])

    @property
    def captures(self) -> tuple[int, int]:
        """Stones captured by (black, white)."""
        return int(self.core[layout.M_CAPTURES_BLACK]), int(self.core[layout.M_CAPTURES_WHITE])

    @property
    def hash(self) -> int:
        """Zobrist hash of the board (positional: the side to move is not part of it)."""
        return int(kernels.current_hash(self.core, self.hist))

    # -- board ---------------------------------------------------------------------------------
    def board(self) -> np.ndarray:
        """[N, N] int8 array of EMPTY/BLACK/WHITE, row 0 at the top."""
        n = self.size
        area = (n + 2) ** 2
        start = layout.META_LEN + layout.F_BOARD * area
        padded = self.core[start:start + area].reshape(n + 2, n + 2)
        return padded[1:-1, 1:-1].astype(np.int8)

    def liberties(self, action: int) -> int:
        """Liberties of the chain on a board point (0 for an empty point)."""
        point = self._point(action)
        area = (self.size + 2) ** 2
        if self.core[layout.META_LEN + layout.F_BOARD * area + point] == EMPTY:
            return 0
        head = self.core[layout.META_LEN + layout.F_CHAIN_HEAD * area + point]
        return int(kernels.chain_liberties(self.core, head))

    def _point(self, action: int) -> int:
        if not 0 <= action < self.size * self.size:
            raise IllegalMoveError(f"action {action} is not a point of a {self.size}x{self.size} board")
        return int(kernels.action_to_point(self.size, action))

    # -- moves ---------------------------------------------------------------------------------
    def is_legal(self, action: int) -> bool:
        return bool(kernels.is_legal(self.core, self.hist, int(action)))

    def legal_mask(self) -> np.ndarray:
        """Bool [N*N + 1]: board points then pass (resignation is always allowed while the game runs)."""
        out = np.zeros(self.rules.num_actions, np.bool_)
        kernels.legal_mask(self.core, self.hist, out)
        return out

    def legal_actions(self) -> np.ndarray:
        return np.flatnonzero(self.legal_mask())

    def play(self, action: int) -> "GoState":
        """Play in place (returns self); raises IllegalMoveError."""
        action = int(action)
        if not self.is_legal(action):
            raise IllegalMoveError(self._why_illegal(action))
        kernels.play(self.core, self.hist, self.past, action)
        return self

    def _why_illegal(self, action: int) -> str:
        if self.is_over:
            return "the game is over"
        if not 0 <= action <= self.rules.resign_action:
            return f"action {action} is outside 0..{self.rules.resign_action}"
        where = self.action_to_gtp(action)
        if self.board().flat[action] != EMPTY:
            return f"{where} is occupied"
        # The kernels read the superko flag from the state arrays, not from ``rules``: clear it on a copy.
        probe = self.copy()
        probe.core[layout.M_SUPERKO] = 0
        if not probe.is_legal(action):
            return f"{where} is suicide"
        return f"{where} repeats an earlier position (superko)"

    def play_random(self) -> int:
        """Play a random legal move that does not fill the mover's own eye (pass if none); returns it."""
        action = int(kernels.random_move(self.core, self.hist))
        kernels.play(self.core, self.hist, self.past, action)
        return action

    # -- result --------------------------------------------------------------------------------
    def area_score(self) -> tuple[int, int]:
        """Tromp-Taylor area (black, white) of the board as it stands, before komi."""
        black, white = kernels.area_score(self.core)
        return int(black), int(white)

    def ownership(self) -> np.ndarray:
        """Tromp-Taylor ownership of the board as it stands: int8 [N, N], +1 black's, -1 white's, 0 neutral."""
        out = np.zeros(self.size * self.size, np.int8)
        kernels.area_ownership(self.core, out)
        return out.reshape(self.size, self.size)

    def score(self) -> float:
        """Black's area minus white's area minus komi."""
        return kernels.score_x2(self.core) / 2.0

    def winner(self) -> int:
        """BLACK, WHITE or EMPTY (draw): by resignation, else by area score as it stands."""
        return int(kernels.winner(self.core))

    def result_for(self, colour: int) -> int:
        """+1 if ``colour`` wins, -1 if it loses, 0 for a draw."""
        w = self.winner()
        return 0 if w == EMPTY else (1 if w == colour else -1)

    def result_for_to_play(self) -> int:
        """The outcome from the point of view of the side to move."""
        return self.result_for(self.to_play)

    def result_string(self) -> str:
        """SGF/GTP style: 'B+3.5', 'W+R', '0' for a draw."""
        w = self.winner()
        if w == EMPTY:
            return "0"
        if self.resigned != EMPTY:
            return f"{colour_name(w)}+R"
        return result_string(self.score())

    # -- network input -------------------------------------------------------------------------
    def features(self, dtype=np.float32) -> np.ndarray:
        out = np.zeros((native_features.NUM_PLANES, self.size, self.size), dtype)
        native_features.encode(self.core, self.past, out)
        return out

    # -- coordinates ---------------------------------------------------------------------------
    def action_to_gtp(self, action: int) -> str:
        return action_to_gtp(self.size, action)

    def gtp_to_action(self, vertex: str) -> int:
        return gtp_to_action(self.size, vertex)

    # -- text ----------------------------------------------------------------------------------
    def __str__(self) -> str:
        n = self.size
        cols = GTP_COLUMNS[:n]
        lines = ["   " + " ".join(cols)]
        glyph = {EMPTY: ".", BLACK: "X", WHITE: "O"}
        b = self.board()
        for r in range(n):
            lines.append(f"{n - r:2d} " + " ".join(glyph[int(v)] for v in b[r]) + f" {n - r:2d}")
        lines.append("   " + " ".join(cols))
        bc, wc = self.captures
        lines.append(f"{colour_name(self.to_play)} to play, move {self.move_number}, captures B {bc} W {wc}")
        return "\n".join(lines)

    __repr__ = __str__

    @classmethod
    def from_moves(cls, rules: GoRules, moves) -> "GoState":
        state = cls(rules)
        for a in moves:
            state.play(a)
        return state


def area_score_of(rules: GoRules, board: np.ndarray) -> tuple[int, int]:
    """Tromp-Taylor area (black, white) of any [N, N] board, e.g. one whose dead stones were removed: the
    native count (``GoState.area_score``) on a scratch state holding ``board``."""
    state = GoState(rules)
    n = rules.size
    area = (n + 2) ** 2
    start = layout.META_LEN + layout.F_BOARD * area
    state.core[start:start + area].reshape(n + 2, n + 2)[1:-1, 1:-1] = board
    return state.area_score()


def result_string(score: float) -> str:
    """A score (black minus white minus komi) as SGF and GTP write it: 'B+3.5', 'W+12', '0'."""
    return "0" if score == 0 else f"{'B' if score > 0 else 'W'}+{abs(score):g}"


def action_to_gtp(size: int, action: int) -> str:
    if action == size * size:
        return "pass"
    if action == size * size + 1:
        return "resign"
    if not 0 <= action < size * size:
        raise ValueError(f"action {action} is not a move on a {size}x{size} board")
    row, col = divmod(action, size)
    return f"{GTP_COLUMNS[col]}{size - row}"


def gtp_to_action(size: int, vertex: str) -> int:
    """'D4' / 'pass' / 'resign' (any case) to an action; ValueError if it is not a vertex of this board."""
    v = vertex.strip().upper()
    if v == "PASS":
        return size * size
    if v == "RESIGN":
        return size * size + 1
    if len(v) < 2 or v[0] not in GTP_COLUMNS[:size] or not v[1:].isdigit():
        raise ValueError(f"invalid vertex {vertex!r} for a {size}x{size} board")
    col = GTP_COLUMNS.index(v[0])
    number = int(v[1:])
    if not 1 <= number <= size:
        raise ValueError(f"invalid vertex {vertex!r} for a {size}x{size} board")
    return (size - number) * size + col
