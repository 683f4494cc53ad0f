"""GTP v2 engine on stdin/stdout, with the analysis extensions Go GUIs use (Sabaki, Lizzie, GoGui, KGS).

Protocol (GTP v2, https://www.lysator.liu.se/~gunnar/gtp/): one command per line, ``[id] name args``; the
answer is ``=[id] result`` or ``?[id] message``, ended by an empty line. Every input line gets exactly one
answer (empty and comment-only lines get none); nothing but answers is written to stdout: logs go to stderr.
Malformed, out-of-range or illegal input is answered ``? ...`` and the engine keeps going.

Analysis (what GUIs parse):

- ``lz-analyze [colour] [interval] [key value ...]`` (Leela Zero) and ``kata-analyze`` (KataGo): the answer
  ``=[id]`` comes at once, then one line every ``interval`` centiseconds, each ``info move D4 visits 12
  winrate 5123 prior 830 lcb 4800 order 0 pv D4 E5 ...`` repeated for every candidate on that one line
  (KataGo format: the same keys with ``winrate``/``prior``/``lcb`` in [0, 1] and ``utility`` in [-1, 1]).
  The search runs until the next command arrives; an empty line then ends the answer and the command runs.
  Keys: ``interval``, ``minmoves``, ``maxmoves``; ``ownership``/``pvVisits``/... are accepted and ignored.
- ``lz-genmove_analyze`` / ``kata-genmove_analyze``: a ``genmove`` that streams the same lines while it
  thinks and ends with ``play <vertex>``.

Winrates are from the side to move's point of view (what both formats specify). ``lcb`` is a normal
approximation ``winrate - 1.96 * sqrt(winrate * (1 - winrate) / visits)``: the tree does not keep value
variances. No score lead: the net has no score head.

Positions. ``GoState`` has no undo and no setup stones, so the engine keeps the game as data (``GameRecord``:
setup stones, who moves first, the list of ``(colour, action)`` moves) and rebuilds the state by replaying it
(``undo``, ``komi`` changes). GTP lets a colour move twice in a row: the record stores that as is and the
replay inserts a pass for the other colour that does not count towards ending the game. Two passes do not end
a GTP game either: the controller decides, so a later ``play``/``genmove`` continues it. Setup stones
(handicap, SGF ``AB``/``AW``) are placed by ``setup_state``: a position at move 0 with those stones and no
history, like an SGF root with AB/AW. Limit: the rules kernels store at most 2·N² moves per game (moves,
setup passes and inserted passes); past that ``play`` answers ``? illegal move`` and ``genmove`` passes.

Scoring (``final_score``, ``final_status_list``): area scoring after removing dead stones, which are found by
random playouts from the final position (``estimate_status``): a chain that its opponent owns at the end of
most playouts is dead, and so is one the playouts leave in doubt that sits in the opponent's area without two
eyes (uniform random play cannot see that a lone invader in a large open territory is lost). Seki is not
recognised (``final_status_list seki`` is always empty). Good enough for finished games (it agreed with
GnuGo's ``final_score`` on 40 of 40 finished GnuGo-vs-GnuGo 9x9 games, 25 of them with dead stones); a
referee, not a judge of unfinished fights.

Passing and resigning. The move is the most visited one (ties: higher prior), except: after the opponent
passed, the engine passes too when the scored result (dead stones removed) is already a win for it or when no
chain's status is in doubt (the game is over; playing on would only fill the board); and it resigns when its
winrate stayed below ``resign_threshold`` for ``resign_consecutive`` of its moves in a row (0 disables).

Time. ``--visits`` caps each search, ``--time-per-move`` caps its wall time; with ``time_settings`` /
``kgs-time_settings`` and ``time_left`` the engine also spreads its remaining time over the moves it expects
to play. Without any of these a move gets the config's ``search.sims`` visits.

Pondering (``speculate > 0``): after its own ``genmove`` the engine searches the predicted continuation while
the opponent thinks: the position after its move, then the position after the predicted reply, ... ``K``
positions along the line, each for the genmove budget, stopping the moment a command arrives. This only warms
the NN cache (its keys are exact), so when the prediction was right the next ``genmove`` finds most of its
evaluations there; when it was wrong nothing is lost but idle time. Nothing is written to stdout meanwhile.
"""
from __future__ import annotations

import collections
import dataclasses
import math
import os
import re
import sys
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TextIO

import numpy as np

from games.go import (BLACK, EMPTY, WHITE, GoRules, GoState, IllegalMoveError, action_to_gtp, area_score_of,
                      gtp_to_action, result_string)
from native import board as board_kernels
from native import layout
from specmcts.config import AUTO, MAX_SPECULATE
from specmcts.player import ResignStreak

PROTOCOL_VERSION = "2"
ENGINE_NAME = "specmcts"
MAX_KOMI = 1000.0  # the kernels keep komi in half points in an int32; anything this large is a typo anyway
MAX_SGF_BYTES = 4 << 20  # loadsgf refuses bigger files (and anything that is not a regular file)
DEFAULT_INTERVAL_CS = 100  # analysis output period when the command gives none (centiseconds)
DEFAULT_PLAYOUTS = 200  # random playouts behind final_score / final_status_list
DEAD_BELOW = 0.0  # a chain is dead when its mean ownership (own colour +1, opponent -1) is below this
SETTLED_ABOVE = 0.6  # ... and its status is in doubt while |ownership| is below this
LCB_Z = 1.96
LOG_PREFIX = "specmcts gtp:"


class GtpError(Exception):
    """A command that cannot be executed: answered ``? message``, the engine carries on."""


# ----------------------------------------------------------------------------------------------
# Parsing


def parse_colour(token: str) -> int:
    t = token.lower()
    if t in ("b", "black"):
        return BLACK
    if t in ("w", "white"):
        return WHITE
    raise GtpError(f"syntax error (expected a colour b, w, black or white, got {token!r})")


def colour_letter(colour: int) -> str:
    return "B" if colour == BLACK else "W"


def parse_int(token: str, what: str, low: int | None = None, high: int | None = None) -> int:
    if not re.fullmatch(r"[+-]?[0-9]{1,18}", token):
        raise GtpError(f"syntax error ({what} must be an integer, got {token!r})")
    value = int(token)
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"{low if low is not None else '-inf'}..{high if high is not None else 'inf'}"
        raise GtpError(f"syntax error ({what} must be in {bounds}, got {value})")
    return value


def parse_float(token: str, what: str) -> float:
    try:
        value = float(token)
    except ValueError:
        raise GtpError(f"syntax error ({what} must be a number, got {token!r})") from None
    if not math.isfinite(value):
        raise GtpError(f"syntax error ({what} must be finite, got {token!r})")
    return value


def parse_vertex(size: int, token: str) -> int:
    """A board point or pass (GTP ``resign`` is not a move one can ``play``)."""
    try:
        action = gtp_to_action(size, token)
    except ValueError:
        raise GtpError(f"syntax error (invalid vertex {token!r} for a {size}x{size} board)") from None
    if action > size * size:
        raise GtpError(f"syntax error ({token!r} is not a move)")
    return action


def clean_line(raw: str) -> str:
    """GTP preprocessing: drop control characters but HT and LF, HT becomes a space, drop comments, trim."""
    text = "".join(" " if ch == "\t" else ch for ch in raw if ch == "\t" or ch == "\n" or not _is_control(ch))
    return text.split("#", 1)[0].strip()


def _is_control(ch: str) -> bool:
    o = ord(ch)
    return o < 32 or o == 127


def split_command(line: str) -> tuple[str | None, str, list[str]]:
    """``(id or None, command name, arguments)`` of a cleaned, non-empty line; the id is the leading
    unsigned integer, if any (an id alone leaves the name empty)."""
    tokens = line.split()
    ident = None
    if tokens and tokens[0].isdigit() and tokens[0].isascii():
        ident = tokens.pop(0)
    if not tokens:
        return ident, "", []
    return ident, tokens[0], tokens[1:]


# ----------------------------------------------------------------------------------------------
# Positions: setup stones, inserted passes, finished games that go on


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
class GameRecord:
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


# ----------------------------------------------------------------------------------------------
# Dead stones and the final score


def chains(board: np.ndarray) -> list[tuple[int, list[int]]]:
    """``(colour, [actions])`` of every chain on an [N, N] board."""
    n = board.shape[0]
    flat = board.reshape(-1)
    seen = np.zeros(n * n, bool)
    out = []
    for start in range(n * n):
        colour = int(flat[start])
        if colour == EMPTY or seen[start]:
            continue
        seen[start] = True
        stack, stones = [start], []
        while stack:
            a = stack.pop()
            stones.append(a)
            for b in _neighbours(n, a):
                if not seen[b] and flat[b] == colour:
                    seen[b] = True
                    stack.append(b)
        out.append((colour, sorted(stones)))
    return out


def _owners(board: np.ndarray) -> np.ndarray:
    """+1 black, -1 white, 0 neither, per point of a board at the end of a random playout (where every empty
    point left is a one-point eye or a point both sides share, so its neighbours decide)."""
    p = np.pad(board, 1)
    neighbours = (p[:-2, 1:-1], p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:])
    black_adj = np.zeros(board.shape, bool)
    white_adj = np.zeros(board.shape, bool)
    for nb in neighbours:
        black_adj |= nb == BLACK
        white_adj |= nb == WHITE
    out = np.where(black_adj & ~white_adj, 1.0, np.where(white_adj & ~black_adj, -1.0, 0.0))
    out[board == BLACK] = 1.0
    out[board == WHITE] = -1.0
    return out


def ownership(state: GoState, playouts: int = DEFAULT_PLAYOUTS, seed: int | None = None) -> np.ndarray:
    """Mean owner of every point ([N, N], +1 black .. -1 white) over random playouts (uniform legal moves
    that do not fill one's own eye) from ``state``'s board to the end. Deterministic for a position."""
    base = forget_history(reopen(state.copy()))  # full move budget for the playouts
    seed = state.hash % (2 ** 31) if seed is None else seed
    board_kernels.seed_kernels(seed)
    core, hist, past = np.empty_like(base.core), np.zeros_like(base.hist), np.empty_like(base.past)
    moves = np.empty(base.rules.max_moves + 2, np.int32)
    probe = GoState(base.rules, _arrays=(core, hist, past))
    total = np.zeros((state.size, state.size))
    for _ in range(max(1, playouts)):
        board_kernels.copy_state(base.core, base.hist, base.past, core, hist, past)
        board_kernels.play_random_game(core, hist, past, moves)
        total += _owners(probe.board())
    return total / max(1, playouts)


@dataclass
class Status:
    """Life and death at the end of a game, from ``estimate_status``."""

    dead: list[list[int]]  # chains (actions) judged dead
    alive: list[list[int]]
    doubtful: int  # chains whose status is unclear (|mean ownership| < SETTLED_ABOVE)
    black_area: int  # Tromp-Taylor area after removing the dead chains
    white_area: int
    komi: float

    @property
    def score(self) -> float:
        """Black minus white minus komi."""
        return self.black_area - self.white_area - self.komi

    def result(self) -> str:
        return result_string(self.score)


def estimate_status(state: GoState, playouts: int = DEFAULT_PLAYOUTS) -> Status:
    """Dead and alive chains of ``state``'s board, and the area score once the dead ones are removed.

    A chain is dead when its opponent owns its points at the end of most random playouts. Uniform random
    play cannot see that a lone stone inside a large open territory is lost (both sides fill the territory
    at the same rate there, so the invader lives about half the time), so a chain the playouts leave in
    doubt is also dead when it sits in the opponent's area without two eyes (``_lost_inside``)."""
    board = state.board()
    own = ownership(state, playouts)
    dead, alive, doubtful = [], [], 0
    cleaned = board.copy()
    for colour, stones in chains(board):
        sign = 1.0 if colour == BLACK else -1.0
        mean = sign * float(own.reshape(-1)[stones].mean())
        lost = mean < DEAD_BELOW or (mean < SETTLED_ABOVE and _lost_inside(board, own, stones, colour))
        (dead if lost else alive).append(stones)
        doubtful += not lost and mean < SETTLED_ABOVE
        if lost:
            cleaned.reshape(-1)[stones] = EMPTY
    black, white = area_score_of(state.rules, cleaned)
    return Status(dead, alive, doubtful, black, white, state.rules.komi)


BIG_EYE = 7  # an enclosed empty area this large holds two eyes whatever the opponent does


def _lost_inside(board: np.ndarray, own: np.ndarray, stones: list[int], colour: int) -> bool:
    """True if the chain's enclosure (the points reachable from it without crossing an opponent stone) covers
    at most half the board, is mostly the opponent's by ``own``, and holds fewer than two eyes (empty areas no
    opponent stone touches) for ``colour``."""
    n = board.shape[0]
    flat, owner = board.reshape(-1), own.reshape(-1)
    opponent = 3 - colour
    sign = 1.0 if opponent == BLACK else -1.0
    enclosure = np.zeros(n * n, bool)
    enclosure[stones] = True
    stack = list(stones)
    while stack:
        a = stack.pop()
        for b in _neighbours(n, a):
            if not enclosure[b] and flat[b] != opponent:
                enclosure[b] = True
                stack.append(b)
    empties = np.flatnonzero(enclosure & (flat == EMPTY))
    if len(empties) == 0 or enclosure.sum() > n * n // 2 or sign * owner[empties].mean() <= 0:
        return False  # no area around it, an open board (no one's area yet), or not the opponent's
    eyes, seen = 0, np.zeros(n * n, bool)
    for start in empties:
        if seen[start]:
            continue
        seen[start] = True
        region, touches_opponent, stack = 0, False, [int(start)]
        while stack:
            a = stack.pop()
            region += 1
            for b in _neighbours(n, a):
                if flat[b] == opponent:
                    touches_opponent = True
                elif flat[b] == EMPTY and not seen[b]:
                    seen[b] = True
                    stack.append(b)
        if not touches_opponent:
            eyes += 2 if region >= BIG_EYE else 1
    return eyes < 2


def _neighbours(n: int, a: int):
    r, c = divmod(a, n)
    if r > 0:
        yield a - n
    if r < n - 1:
        yield a + n
    if c > 0:
        yield a - 1
    if c < n - 1:
        yield a + 1


def parse_score(text: str) -> float | None:
    """``'B+3.5'`` -> 3.5, ``'W+R'`` -> None (not a score), ``'0'`` -> 0.0; ValueError if unreadable."""
    t = text.strip().upper()
    if t in ("0", "DRAW", "JIGO", "B+0", "W+0"):
        return 0.0
    m = re.fullmatch(r"([BW])\+(\d+(?:\.\d*)?)", t)
    if m:
        v = float(m.group(2))
        return v if m.group(1) == "B" else -v
    if re.fullmatch(r"[BW]\+(R|RESIGN|T|TIME|F|FORFEIT)", t):
        return None
    raise ValueError(f"not a GTP score: {text!r}")


# ----------------------------------------------------------------------------------------------
# Time


@dataclass
class Clock:
    """GTP time settings: ``kind`` none | absolute | canadian | byoyomi (KGS Japanese byo-yomi)."""

    kind: str = "none"
    main: float = 0.0
    byo_time: float = 0.0
    byo_stones: int = 0  # canadian: stones per period; byoyomi: periods
    left: dict = field(default_factory=dict)  # colour -> (seconds, stones) from time_left
    margin: float = 0.2  # seconds kept back per move for the controller's latency

    def budget(self, colour: int, move_number: int, size: int) -> float | None:
        """Seconds to spend on this move, or None without a limit."""
        if self.kind == "none":
            return None
        seconds, stones = self.left.get(colour, (self.main, 0 if self.main > 0 else self.byo_stones))
        if stones > 0 or (self.main <= 0 and seconds <= 0):  # in byo-yomi
            if self.kind == "canadian":
                per_move = (seconds if seconds > 0 else self.byo_time) / max(stones, 1)
            elif self.kind == "byoyomi":
                per_move = seconds if seconds > 0 else self.byo_time
            else:
                per_move = seconds / 30.0
        else:
            # Expect about 0.6 * N^2 moves in a game, half of them ours, and keep a floor of N^2 / 12.
            moves_left = max(size * size / 12.0, (0.6 * size * size - move_number) / 2.0)
            per_move = seconds / moves_left
            if self.kind == "canadian" and self.byo_stones > 0:
                per_move = max(per_move, min(seconds, self.byo_time / self.byo_stones))
            elif self.kind == "byoyomi":
                per_move = max(per_move, min(seconds, self.byo_time))
        return max(0.01, 0.9 * per_move - self.margin)


# ----------------------------------------------------------------------------------------------
# Analysis output


def format_info(analysis, state: GoState, style: str, min_moves: int = 0, max_moves: int = 0,
                pv: Callable[[int], list[int]] | None = None) -> str:
    """One analysis line (``info move ... info move ...``) in Leela Zero (``lz``) or KataGo (``kata``) style;
    empty when nothing has been searched yet (an empty line would end the GTP answer). ``pv(action)`` gives
    a move's principal variation where ``analysis.pvs`` has none."""
    size = state.size
    ranked = analysis.ranked()
    if min_moves > len(ranked):  # unvisited moves by prior, as KataGo's minmoves does
        extra = [int(a) for a in np.argsort(-analysis.prior, kind="stable")
                 if analysis.prior[a] >= 0 and analysis.counts[a] == 0]
        ranked = ranked + extra[:min_moves - len(ranked)]
    if max_moves > 0:
        ranked = ranked[:max_moves]
    parts = []
    root_winrate = analysis.winrate
    for order, a in enumerate(ranked):
        visits = int(analysis.counts[a])
        q = float(analysis.q[a]) if visits > 0 and np.isfinite(analysis.q[a]) else analysis.root_value
        winrate = min(1.0, max(0.0, (q + 1.0) / 2.0)) if visits > 0 else root_winrate
        lcb = max(0.0, winrate - LCB_Z * math.sqrt(winrate * (1.0 - winrate) / max(visits, 1)))
        prior = max(0.0, float(analysis.prior[a]))
        line = analysis.pvs.get(a) or (pv(a) if pv is not None else [a])
        variation = " ".join(action_to_gtp(size, x) for x in line)
        move = action_to_gtp(size, a)
        if style == "kata":
            parts.append(f"info move {move} visits {visits} utility {2 * winrate - 1:.6f} winrate {winrate:.6f} "
                         f"prior {prior:.6f} lcb {lcb:.6f} order {order} pv {variation}")
        else:
            parts.append(f"info move {move} visits {visits} winrate {round(winrate * 10000)} "
                         f"prior {round(prior * 10000)} lcb {round(lcb * 10000)} order {order} pv {variation}")
    return " ".join(parts)


# ----------------------------------------------------------------------------------------------
# Input: a reader thread, so that a search can stop when the next command arrives


class LineQueue:
    """Lines of a binary stream read by a daemon thread; ``None`` marks the end of input.

    A stream with a file descriptor is read with ``os.read``: a daemon thread blocked there holds no Python
    lock, so the interpreter can exit after ``quit`` while the thread still waits for input (blocked in a
    ``BufferedReader`` it would hold the buffer's lock and make the interpreter abort at shutdown)."""

    def __init__(self, stream):
        self._lines: collections.deque = collections.deque()
        self._ready = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), name="gtp-stdin", daemon=True)
        self._thread.start()

    def _put(self, line) -> None:
        with self._ready:
            self._lines.append(line)
            self._ready.notify_all()

    @staticmethod
    def _chunks(stream):
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):
            fd = None
        if fd is None:
            yield from stream
            return
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return
            yield chunk

    def _read(self, stream) -> None:
        pending = b""
        try:
            for chunk in self._chunks(stream):
                if isinstance(chunk, str):
                    chunk = chunk.encode("utf-8", "surrogateescape")
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    self._put(line.decode("utf-8", "replace") + "\n")
        except (OSError, ValueError):
            pass
        finally:
            if pending:
                self._put(pending.decode("utf-8", "replace"))
            self._put(None)

    def pending(self) -> bool:
        return bool(self._lines)

    def wait(self, timeout: float | None = None) -> bool:
        with self._ready:
            return self._ready.wait_for(lambda: bool(self._lines), timeout)

    def get(self) -> str | None:
        with self._ready:
            self._ready.wait_for(lambda: bool(self._lines))
            line = self._lines[0]
            if line is not None:  # the end-of-input mark stays for every later caller
                self._lines.popleft()
            return line


# ----------------------------------------------------------------------------------------------
# Networks: one per board size


FRESH = "fresh"  # --model fresh: play with an untrained net, seeded by the config's seed


class NetSource:
    """Where nets come from: a checkpoint (one board size), else an embedded default for the size if one
    ships in ``specmcts/weights/go<N>.pt`` (not with ``--model fresh``), else a fresh net seeded by the
    config's seed."""

    def __init__(self, cfg, model_path: str | None = None, log: Callable[[str], None] = lambda message: None):
        self.cfg = cfg
        self.log = log
        self._loaded = None
        self._fixed_size = None
        self._fresh = model_path == FRESH  # --model fresh: an untrained net even where one ships
        if model_path and not self._fresh:
            from specmcts.network import load_model

            self._loaded, _meta = load_model(model_path, device="cpu")
            self._fixed_size = self._loaded.board_size
            log(f"model {model_path} ({self._loaded.model_id}), {self._fixed_size}x{self._fixed_size}")

    @property
    def fixed_size(self) -> int | None:
        return self._fixed_size

    def supports(self, size: int) -> bool:
        return layout.MIN_SIZE <= size <= layout.MAX_SIZE and (self._fixed_size is None or size == self._fixed_size)

    def net(self, size: int):
        if self._loaded is not None:
            return self._loaded
        from specmcts.network import build_net, embedded_model, load_model, make_model_id

        embedded = None if self._fresh else embedded_model(size)
        if embedded is not None:
            net, _ = load_model(embedded, device="cpu", expect_board=size)
            self.log(f"no --model: using the embedded net {embedded.name} ({net.model_id})")
            return net
        import torch

        torch.manual_seed(self.cfg.seed)
        net = build_net(size, self.cfg.net)
        net.model_id = "fresh-" + make_model_id(net)
        self.log(f"no --model and no embedded net for {size}x{size}: playing with a fresh, untrained "
                 f"{self.cfg.net.blocks}x{self.cfg.net.channels} net ({net.model_id})")
        return net


# ----------------------------------------------------------------------------------------------
# The engine


@dataclass
class EngineOptions:
    visits: int | None = None  # cap per genmove; None: the config's search.sims unless time decides
    seconds: float | None = None  # --time-per-move
    analysis_visits: int = 20000  # tree capacity: an analysis stops growing there (and waits)
    resign_threshold: float = 0.025  # winrate; 0 disables resigning
    resign_consecutive: int = 3
    speculate: int | str = 0  # pondering depth after our genmove (0: off; auto: as deep as the time allows)
    playouts: int = DEFAULT_PLAYOUTS
    quiet: bool = False


FIXED_HANDICAP = {  # GTP v2 section 4.1.1, as (column, row) of the star points: D4 Q16 D16 Q4 K10 D10 Q10 K4 K16
    2: ("lo-lo", "hi-hi"),
    3: ("lo-lo", "hi-hi", "lo-hi"),
    4: ("lo-lo", "hi-hi", "lo-hi", "hi-lo"),
    5: ("lo-lo", "hi-hi", "lo-hi", "hi-lo", "mid-mid"),
    6: ("lo-lo", "hi-hi", "lo-hi", "hi-lo", "lo-mid", "hi-mid"),
    7: ("lo-lo", "hi-hi", "lo-hi", "hi-lo", "lo-mid", "hi-mid", "mid-mid"),
    8: ("lo-lo", "hi-hi", "lo-hi", "hi-lo", "lo-mid", "hi-mid", "mid-lo", "mid-hi"),
    9: ("lo-lo", "hi-hi", "lo-hi", "hi-lo", "lo-mid", "hi-mid", "mid-lo", "mid-hi", "mid-mid"),
}


def fixed_handicap_points(size: int, stones: int) -> list[int]:
    """GTP's fixed handicap placement; GtpError where the spec defines none (boards under 7x7, more than 4
    stones on even or 7x7 boards, more than 9 stones)."""
    odd = size % 2 == 1
    limit = 0 if size < 7 else (4 if size == 7 or not odd else 9)
    if not 2 <= stones <= limit:
        raise GtpError("invalid number of stones")
    edge = 3 if size < 13 else 4
    coord = {"lo": edge - 1, "mid": size // 2, "hi": size - edge}
    points = []
    for name in FIXED_HANDICAP[stones]:
        col_name, row_name = name.split("-")
        col, row_from_bottom = coord[col_name], coord[row_name]
        points.append((size - 1 - row_from_bottom) * size + col)
    return points


class GtpEngine:
    """The GTP engine. ``execute(line)`` answers one line on ``out``; ``handle(line)`` returns the answer as
    a string (tests); ``serve(stdin, stdout)`` is the main loop with a reader thread."""

    def __init__(self, cfg, model_path: str | None = None, options: EngineOptions | None = None,
                 out: TextIO | None = None, log: TextIO | None = None):
        self.cfg = cfg
        self.options = options or EngineOptions()
        self.out = out if out is not None else sys.stdout
        self.log_stream = log if log is not None else sys.stderr
        self.source = NetSource(cfg, model_path, log=self.log)  # CheckpointError for a bad --model
        self.input: LineQueue | None = None
        self.quit_requested = False
        self.clock = Clock()
        self._players: dict[int, object] = {}
        self._resign = ResignStreak(-1.0, 0)  # per colour; thresholds from the options when asked
        self._ponder_line: list[int] = []  # the continuation pondered after our last genmove
        self._ponder_due = False  # set by a genmove that played: ponder if no command is waiting
        size = self.source.fixed_size or cfg.game.board
        self.record = GameRecord(GoRules(size, cfg.game.komi, cfg.game.superko))
        self.state = self.record.replay()
        self.commands: dict[str, Callable[[list[str]], str | None]] = {
            "protocol_version": self.cmd_protocol_version,
            "name": self.cmd_name,
            "version": self.cmd_version,
            "known_command": self.cmd_known_command,
            "list_commands": self.cmd_list_commands,
            "quit": self.cmd_quit,
            "boardsize": self.cmd_boardsize,
            "clear_board": self.cmd_clear_board,
            "komi": self.cmd_komi,
            "get_komi": self.cmd_get_komi,
            "play": self.cmd_play,
            "genmove": self.cmd_genmove,
            "reg_genmove": self.cmd_reg_genmove,
            "undo": self.cmd_undo,
            "showboard": self.cmd_showboard,
            "final_score": self.cmd_final_score,
            "final_status_list": self.cmd_final_status_list,
            "time_settings": self.cmd_time_settings,
            "kgs-time_settings": self.cmd_kgs_time_settings,
            "time_left": self.cmd_time_left,
            "loadsgf": self.cmd_loadsgf,
            "printsgf": self.cmd_printsgf,
            "fixed_handicap": self.cmd_fixed_handicap,
            "place_free_handicap": self.cmd_place_free_handicap,
            "set_free_handicap": self.cmd_set_free_handicap,
            "lz-analyze": self.cmd_lz_analyze,
            "kata-analyze": self.cmd_kata_analyze,
            "lz-genmove_analyze": self.cmd_lz_genmove_analyze,
            "kata-genmove_analyze": self.cmd_kata_genmove_analyze,
            "gogui-analyze_commands": self.cmd_gogui_analyze_commands,
            "specmcts-policy": self.cmd_policy,
        }

    # -- plumbing --------------------------------------------------------------------------------
    def log(self, message: str) -> None:
        # One line per message, never starting with '=', '?' or 'info' and without ' -> ': Lizzie reads the
        # engine's stderr merged into stdout and parses such lines.
        if not self.options.quiet:
            text = " ".join(str(message).split()).replace("->", "to")
            print(f"{LOG_PREFIX} {text}", file=self.log_stream, flush=True)

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def _interrupted(self) -> bool:
        return self.input is not None and self.input.pending()

    @property
    def rules(self) -> GoRules:
        return self.record.rules

    @property
    def size(self) -> int:
        return self.record.rules.size

    @property
    def ponder_depth(self) -> int:
        """Moves to ponder ahead: the option, or with ``auto`` as many as the opponent's time allows (the
        pondering stops at the next command) up to ``MAX_SPECULATE``."""
        return MAX_SPECULATE if self.options.speculate == AUTO else int(self.options.speculate)

    def player(self):
        """The MCTS player for the current board size (built on first use)."""
        size = self.size
        if size not in self._players:
            from specmcts.evaluator import make_evaluator
            from specmcts.nncache import NNCache
            from specmcts.player import MCTSPlayer

            cfg = dataclasses.replace(self.cfg, evaluator=dataclasses.replace(
                self.cfg.evaluator, max_batch=max(1, self.cfg.search.leaves_per_tree)))
            evaluator = make_evaluator(cfg, size, self.source.net(size))
            cache = NNCache.for_board(min(self.cfg.evaluator.cache_entries, 1 << 18), size)
            capacity = max(self.options.analysis_visits, self.options.visits or 0, self.cfg.search.sims)
            self._players = {size: MCTSPlayer(GoRules(size, self.rules.komi, self.rules.superko), cfg, evaluator,
                                              cache, sims=capacity)}
            self.log(f"{size}x{size}: {evaluator!r}")
        return self._players[size]

    def _tree_pv(self, action: int) -> list[int]:
        """``action`` and the most visited line below it in the tree just searched. ``MCTSPlayer`` keeps the
        variations of its ten most visited moves, while GUIs may ask for any move of ``Analysis.ranked()``."""
        return self.player().principal_variation(action)

    def _set_record(self, record: GameRecord) -> None:
        state = record.replay()  # raises before anything changes
        self.record, self.state = record, state
        self._ponder_line = []

    # -- the loop ----------------------------------------------------------------------------------
    def execute(self, raw: str) -> bool:
        """Answer one input line on ``out``; False once ``quit`` was answered."""
        line = clean_line(raw)
        if not line:
            return not self.quit_requested
        self._ponder_due = False
        ident, name, args = split_command(line)
        tag = ident or ""
        handler = self.commands.get(name)
        try:
            if handler is None:
                raise GtpError("unknown command")
            result = handler(args) if name not in _STREAMING else handler(args, tag)
        except GtpError as e:
            self._write(f"?{tag} {_one_line(str(e))}\n\n")
        except Exception as e:  # a bug must not kill the engine: answer, log, carry on
            self.log(f"internal error in {name!r}: {type(e).__name__}: {e}")
            self.log(" | ".join(traceback.format_exc().splitlines()))
            self._write(f"?{tag} internal error: {_one_line(f'{type(e).__name__}: {e}')}\n\n")
        else:
            if result is not None:  # streaming commands answered themselves
                self._write(_answer(tag, result))
        return not self.quit_requested

    def handle(self, raw: str) -> str:
        """The answer to one line as a string ('' for lines that get none). For tests and embedding."""
        import io

        saved, self.out = self.out, io.StringIO()
        try:
            self.execute(raw)
            return self.out.getvalue()
        finally:
            self.out = saved

    def serve(self, stdin=None, stdout: TextIO | None = None) -> int:
        """Answer commands until ``quit`` or the end of input; ponders between commands when asked to."""
        stdin = stdin if stdin is not None else sys.stdin.buffer
        if stdout is not None:
            self.out = stdout
        self.input = LineQueue(stdin)
        try:
            while True:
                raw = self.input.get()
                if raw is None:
                    break
                if not self.execute(raw):
                    break
                if self._ponder_due and self.ponder_depth > 0 and not self.input.pending():
                    self.ponder()
        finally:
            self.input = None
        return 0

    # -- standard commands -------------------------------------------------------------------------
    def cmd_protocol_version(self, args):
        return PROTOCOL_VERSION

    def cmd_name(self, args):
        return ENGINE_NAME

    def cmd_version(self, args):
        from specmcts import __version__

        return __version__

    def cmd_known_command(self, args):
        _arity(args, 1)
        return "true" if args[0] in self.commands else "false"

    def cmd_list_commands(self, args):
        return "\n".join(self.commands)

    def cmd_quit(self, args):
        self.quit_requested = True
        return ""

    def cmd_boardsize(self, args):
        _arity(args, 1)
        size = parse_int(args[0], "board size")
        if not self.source.supports(size):
            raise GtpError("unacceptable size")
        self._set_record(GameRecord(GoRules(size, self.rules.komi, self.rules.superko)))
        return ""

    def cmd_clear_board(self, args):
        _arity(args, 0)
        self._set_record(GameRecord(self.rules))
        self._resign = ResignStreak(-1.0, 0)  # per colour; thresholds from the options when asked
        self.clock.left.clear()
        return ""

    def cmd_komi(self, args):
        _arity(args, 1)
        komi = parse_float(args[0], "komi")
        if abs(komi) > MAX_KOMI:
            raise GtpError(f"komi out of range (|komi| <= {MAX_KOMI:g})")
        if round(komi * 2) != komi * 2:
            raise GtpError("komi must be a multiple of 0.5 (area scoring)")
        rules = GoRules(self.size, komi, self.rules.superko)
        self._set_record(dataclasses.replace(self.record, rules=rules))
        return ""

    def cmd_get_komi(self, args):
        return f"{self.rules.komi:g}"

    def cmd_play(self, args):
        _arity(args, 2)
        colour = parse_colour(args[0])
        action = parse_vertex(self.size, args[1])
        probe = self.state.copy()
        try:
            apply_move(probe, colour, action)
        except IllegalMoveError as e:
            self.log(f"play {args[0]} {args[1]}: {e}")
            raise GtpError("illegal move") from None
        self._note_opponent_move(action)
        self.record.moves.append((colour, action))
        self.state = probe
        return ""

    def cmd_undo(self, args):
        _arity(args, 0)
        if not self.record.moves:
            raise GtpError("cannot undo")
        record = dataclasses.replace(self.record, moves=self.record.moves[:-1])
        self._set_record(record)
        return ""

    def cmd_showboard(self, args):
        return "\n" + str(self.state)

    def cmd_genmove(self, args):
        return self._genmove(args, play=True)

    def cmd_reg_genmove(self, args):
        return self._genmove(args, play=False)

    def cmd_final_score(self, args):
        return estimate_status(self.state, self.options.playouts).result()

    def cmd_final_status_list(self, args):
        _arity(args, 1)
        which = args[0].lower()
        if which not in ("alive", "dead", "seki"):
            raise GtpError("syntax error (expected alive, dead or seki)")
        if which == "seki":
            return ""
        status = estimate_status(self.state, self.options.playouts)
        groups = status.dead if which == "dead" else status.alive
        return "\n".join(" ".join(action_to_gtp(self.size, a) for a in stones) for stones in groups)

    # -- time --------------------------------------------------------------------------------------
    def cmd_time_settings(self, args):
        _arity(args, 3)
        main = parse_int(args[0], "main time", 0)
        byo = parse_int(args[1], "byo-yomi time", 0)
        stones = parse_int(args[2], "byo-yomi stones", 0)
        if byo > 0 and stones == 0:
            self.clock = Clock()  # GTP: byo-yomi time without stones means no time limit
        elif byo == 0:
            self.clock = Clock("absolute", main)
        else:
            self.clock = Clock("canadian", main, byo, stones)
        return ""

    def cmd_kgs_time_settings(self, args):
        if not args:
            raise GtpError("syntax error (expected none, absolute, byoyomi or canadian)")
        kind, rest = args[0].lower(), args[1:]
        if kind == "none":
            _arity(rest, 0)
            self.clock = Clock()
        elif kind == "absolute":
            _arity(rest, 1)
            self.clock = Clock("absolute", parse_int(rest[0], "main time", 0))
        elif kind in ("byoyomi", "canadian"):
            _arity(rest, 3)
            main = parse_int(rest[0], "main time", 0)
            byo = parse_int(rest[1], "byo-yomi time", 0)
            count = parse_int(rest[2], "byo-yomi periods" if kind == "byoyomi" else "byo-yomi stones", 0)
            self.clock = Clock(kind, main, byo, count) if byo > 0 and count > 0 else Clock("absolute", main)
        else:
            raise GtpError("syntax error (expected none, absolute, byoyomi or canadian)")
        return ""

    def cmd_time_left(self, args):
        _arity(args, 3)
        colour = parse_colour(args[0])
        seconds = parse_int(args[1], "time", 0)
        stones = parse_int(args[2], "stones", 0)
        self.clock.left[colour] = (float(seconds), stones)
        return ""

    # -- SGF ---------------------------------------------------------------------------------------
    def cmd_loadsgf(self, args):
        if not 1 <= len(args) <= 2:
            raise GtpError("syntax error (loadsgf FILE [MOVE_NUMBER])")
        from specmcts.sgf import SgfError, read_sgf

        upto = parse_int(args[1], "move number", 1) if len(args) == 2 else None
        path = Path(args[0])
        try:
            if not path.is_file() or path.stat().st_size > MAX_SGF_BYTES:
                raise GtpError("cannot load file")
            game = read_sgf(path)
        except (SgfError, OSError, ValueError) as e:
            self.log(f"loadsgf {args[0]}: {e}")
            raise GtpError("cannot load file") from None
        if not self.source.supports(game.rules.size):
            raise GtpError("unacceptable size")
        moves = game.moves if upto is None else game.moves[:upto - 1]
        colours = [game.first_player if i % 2 == 0 else 3 - game.first_player for i in range(len(moves))]
        record = GameRecord(game.rules, list(game.setup_black), list(game.setup_white), game.first_player,
                            list(zip(colours, moves)))
        try:
            self._set_record(record)
        except (IllegalMoveError, ValueError) as e:
            self.log(f"loadsgf {args[0]}: {e}")
            raise GtpError("cannot load file") from None
        return ""

    def sgf_text(self) -> str:
        """The game as SGF. RE only when it ended by two passes (our final_score then); the record is not
        replayed (``write_sgf`` would: a GTP game may go on after two passes, which SGF replay refuses)."""
        from specmcts.sgf import write_sgf

        r = self.record
        ended = len(r.moves) >= 2 and all(a == r.rules.pass_action for _, a in r.moves[-2:])
        result = estimate_status(self.state, self.options.playouts).result() if ended else "?"
        text = write_sgf(None, r.rules, r.actions(), result=result, players=(None, None), setup_black=r.setup_black,
                         setup_white=r.setup_white, first_player=r.first_player, validate=False)
        return text.replace("RE[?]", "")

    def cmd_printsgf(self, args):
        if len(args) > 1:
            raise GtpError("syntax error (printsgf [FILE])")
        if args:
            try:
                Path(args[0]).write_text(self.sgf_text(), encoding="utf-8")
            except OSError as e:
                self.log(f"printsgf {args[0]}: {e}")
                raise GtpError("cannot write file") from None
            return ""
        return "\n".join(line for line in self.sgf_text().splitlines() if line.strip())

    # -- handicap ----------------------------------------------------------------------------------
    def _require_empty(self):
        if self.record.moves or self.record.setup_black or self.record.setup_white:
            raise GtpError("board not empty")

    def _place_handicap(self, points: list[int]) -> str:
        record = GameRecord(self.rules, sorted(points), [], WHITE)
        try:
            self._set_record(record)
        except ValueError as e:
            raise GtpError(f"bad vertex list ({e})") from None
        return " ".join(action_to_gtp(self.size, a) for a in sorted(points))

    def _max_handicap(self) -> int:
        # setup_state needs 2 * stones moves of the 2 * N^2 the kernels store: keep most of them for the game
        return self.size * self.size // 4

    def cmd_fixed_handicap(self, args):
        _arity(args, 1)
        stones = parse_int(args[0], "number of stones")
        self._require_empty()
        return self._place_handicap(fixed_handicap_points(self.size, stones))

    def cmd_place_free_handicap(self, args):
        _arity(args, 1)
        stones = parse_int(args[0], "number of stones")
        self._require_empty()
        if not 2 <= stones <= self._max_handicap():
            raise GtpError("invalid number of stones")
        points: list[int] = []
        for k in range(min(stones, 9), 1, -1):  # as much of the fixed pattern as this board has
            try:
                points = fixed_handicap_points(self.size, k)
                break
            except GtpError:
                continue
        if len(points) < stones:  # beyond the fixed pattern: the points the net likes best for black
            prior = self._prior(setup_state(self.rules, points, [], BLACK))
            for a in np.argsort(-prior[:self.size * self.size], kind="stable"):
                if len(points) == stones:
                    break
                if int(a) not in points:
                    points.append(int(a))
        return self._place_handicap(points)

    def cmd_set_free_handicap(self, args):
        self._require_empty()
        if not 2 <= len(args) <= self._max_handicap():
            raise GtpError("bad vertex list")
        try:
            points = [parse_vertex(self.size, v) for v in args]
        except GtpError:
            raise GtpError("bad vertex list") from None
        if len(set(points)) != len(points) or self.rules.pass_action in points:
            raise GtpError("bad vertex list")
        self._place_handicap(points)
        return ""

    # -- search ------------------------------------------------------------------------------------
    def _budget(self, colour: int) -> tuple[int, float | None]:
        """(visits, seconds) for one move."""
        o = self.options
        seconds = self.clock.budget(colour, self.state.move_number, self.size)
        if o.seconds is not None:
            seconds = o.seconds if seconds is None else min(seconds, o.seconds)
        if o.visits is not None:
            visits = o.visits
        elif seconds is not None:
            visits = max(self.options.analysis_visits, self.cfg.search.sims)
        else:
            visits = self.cfg.search.sims
        return visits, seconds

    def _prior(self, state: GoState) -> np.ndarray:
        """The network's root prior for ``state`` (-1 on illegal moves)."""
        return self.player().analyze(state, sims=1).prior

    def _genmove(self, args, play: bool, on_info: Callable | None = None, every: float = 1.0) -> str:
        _arity(args, 1)
        colour = parse_colour(args[0])
        state = to_move(self.state.copy(), colour)
        if state.is_over:  # only the length limit ends a GTP game
            self.log(f"genmove {colour_letter(colour)}: the game has reached {state.move_number} moves, passing")
            return "pass"
        visits, seconds = self._budget(colour)
        player = self.player()
        hits0 = player.search.stats.cache_hits
        evals0 = player.search.stats.evals
        analysis = player.analyze(state, sims=visits, seconds=seconds, callback=on_info,
                                  every=every if on_info else 0.1)
        opponent_passed = bool(self.record.moves) and self.record.moves[-1] == (3 - colour, self.rules.pass_action)
        action, why = self._choose(state, analysis, opponent_passed)
        resign = False
        if play and action != self.rules.pass_action and self._should_resign(colour, analysis):
            resign = True
        stats = player.search.stats
        looked = stats.cache_hits - hits0 + stats.evals - evals0
        self.log(f"{'genmove' if play else 'reg_genmove'} {colour_letter(colour)}: "
                 f"{'resign' if resign else action_to_gtp(self.size, action)}{why} visits {analysis.sims} "
                 f"winrate {100 * analysis.winrate:.1f}% {analysis.seconds:.2f}s "
                 f"cache {stats.cache_hits - hits0}/{looked} "
                 f"pv {' '.join(action_to_gtp(self.size, a) for a in self._tree_pv(action)[:8])}")
        if resign:
            return "resign"
        if play:
            apply_move(self.state, colour, action)
            self.record.moves.append((colour, action))
            self._ponder_line = []
            self._ponder_due = True
        return action_to_gtp(self.size, action)

    def _choose(self, state: GoState, analysis, opponent_passed: bool) -> tuple[int, str]:
        """The move to play and a note on why when it is not simply the most visited one."""
        ranked = analysis.ranked()
        pass_action = self.rules.pass_action
        action = ranked[0] if ranked else pass_action
        if action != pass_action and opponent_passed and state.is_legal(pass_action):
            status = estimate_status(state, self.options.playouts)
            mine = status.score if state.to_play == BLACK else -status.score
            if mine > 0:
                return pass_action, f" (instead of {action_to_gtp(self.size, action)}: opponent passed and " \
                                    f"{status.result()} wins)"
            if status.doubtful == 0:
                return pass_action, f" (instead of {action_to_gtp(self.size, action)}: opponent passed, " \
                                    f"nothing left to decide, {status.result()})"
        return action, ""

    def _should_resign(self, colour: int, analysis) -> bool:
        o = self.options  # a winrate threshold, the player layer's rule on the root value
        self._resign.threshold = 2.0 * o.resign_threshold - 1.0
        self._resign.consecutive = max(1, o.resign_consecutive) if o.resign_threshold > 0 else 0
        return self._resign.observe(colour, analysis.root_value)

    def _note_opponent_move(self, action: int) -> None:
        if self._ponder_line:
            hit = self._ponder_line[0] == action
            self.log(f"ponder: predicted {action_to_gtp(self.size, self._ponder_line[0])}, "
                     f"got {action_to_gtp(self.size, action)} ({'hit' if hit else 'miss'})")
        self._ponder_line = []

    # -- pondering -------------------------------------------------------------------------------
    def ponder(self) -> list[int]:
        """Search ahead along the predicted line until a command arrives (see the module docstring)."""
        state = self.state.copy()
        visits, seconds = self._budget(state.to_play)
        line: list[int] = []
        player = self.player()
        for _ in range(self.ponder_depth):
            if state.is_over or self._interrupted():
                break
            analysis = player.analyze(state, sims=visits, seconds=seconds, stop=self._interrupted)
            ranked = analysis.ranked()
            if not ranked:
                break
            line.append(ranked[0])
            apply_move(state, state.to_play, ranked[0])
        self._ponder_line = line
        if line:
            self.log(f"ponder: {' '.join(action_to_gtp(self.size, a) for a in line)}")
        return line

    # -- analysis ----------------------------------------------------------------------------------
    def _analysis_args(self, args: list[str]) -> tuple[int, float, int, int]:
        """(colour, interval seconds, minmoves, maxmoves) of ``[colour] [interval] [key value ...]``."""
        colour = self.state.to_play
        interval_cs = DEFAULT_INTERVAL_CS
        min_moves = max_moves = 0
        rest = list(args)
        if rest and rest[0].lower() in ("b", "w", "black", "white"):
            colour = parse_colour(rest.pop(0))
        if rest and re.fullmatch(r"\d+", rest[0]):
            interval_cs = parse_int(rest.pop(0), "interval", 0, 360000)
        while rest:
            key = rest.pop(0)
            if key in ("avoid", "allow"):
                raise GtpError(f"syntax error ({key} is not supported)")
            if not rest:
                raise GtpError(f"syntax error (missing value after {key!r})")
            value = rest.pop(0)
            if key == "interval":
                interval_cs = parse_int(value, "interval", 0, 360000)
            elif key == "minmoves":
                min_moves = parse_int(value, "minmoves", 0, 1000)
            elif key == "maxmoves":
                max_moves = parse_int(value, "maxmoves", 0, 1000)
            elif key in ("ownership", "ownershipStdev", "movesOwnership", "movesOwnershipStdev", "pvVisits",
                         "pvEdgeVisits", "rootInfo", "includePolicy"):
                if value.lower() not in ("true", "false"):
                    raise GtpError(f"syntax error ({key} takes true or false)")
            else:
                raise GtpError(f"syntax error (unknown analysis key {key!r})")
        return colour, interval_cs / 100.0, min_moves, max_moves

    def _analyze(self, args, tag: str, style: str) -> None:
        colour, interval, min_moves, max_moves = self._analysis_args(args)
        state = to_move(self.state.copy(), colour)
        self._write(f"={tag}\n")

        def emit(analysis):
            text = format_info(analysis, state, style, min_moves, max_moves, self._tree_pv)
            if text:
                self._write(text + "\n")

        try:
            if not state.is_over:
                player = self.player()
                # ``every`` 0 would print on every step: interval 0 means "only when the search stops".
                analysis = player.analyze(state, sims=player.search.max_nodes, stop=self._interrupted,
                                          callback=emit if interval > 0 else None, every=interval or 1e9)
                if interval <= 0:
                    emit(analysis)
            if self.input is not None:  # tree full (or game over): hold the answer open until told
                self.input.wait()
        except Exception as e:  # the answer has begun: log, and end it cleanly
            self.log(f"analysis failed: {type(e).__name__}: {e}")
        self._write("\n")

    def _genmove_analyze(self, args, tag: str, style: str) -> None:
        if not args:
            raise GtpError("syntax error (expected a colour)")
        colour_arg, rest = args[0], args[1:]
        state_for_info = to_move(self.state.copy(), parse_colour(colour_arg))
        _, interval, min_moves, max_moves = self._analysis_args(rest)
        self._write(f"={tag}\n")

        def emit(analysis):
            text = format_info(analysis, state_for_info, style, min_moves, max_moves, self._tree_pv)
            if text:
                self._write(text + "\n")

        try:
            move = self._genmove([colour_arg], play=True, on_info=emit if interval > 0 else None,
                                 every=interval or 1e9)
        except Exception as e:  # the answer has begun: log, and end it without a move
            self.log(f"genmove_analyze failed: {type(e).__name__}: {e}")
            self._write("\n")
            return
        self._write(f"play {move}\n\n")

    def cmd_lz_analyze(self, args, tag):
        self._analyze(args, tag, "lz")

    def cmd_kata_analyze(self, args, tag):
        self._analyze(args, tag, "kata")

    def cmd_lz_genmove_analyze(self, args, tag):
        self._genmove_analyze(args, tag, "lz")

    def cmd_kata_genmove_analyze(self, args, tag):
        self._genmove_analyze(args, tag, "kata")

    # -- GoGui -------------------------------------------------------------------------------------
    def cmd_gogui_analyze_commands(self, args):
        return "\n".join([
            "dboard/Network policy/specmcts-policy",
            "plist/Dead stones/final_status_list dead",
            "string/Final score/final_score",
        ])

    def cmd_policy(self, args):
        """The network's prior for the side to move, one board row per line (GoGui ``dboard``)."""
        _arity(args, 0)
        state = reopen(self.state.copy())
        if state.is_over:
            raise GtpError("the game is over")
        prior = np.maximum(self._prior(state)[:self.size * self.size], 0.0).reshape(self.size, self.size)
        return "\n".join(" ".join(f"{p:.4f}" for p in row) for row in prior)


_STREAMING = frozenset({"lz-analyze", "kata-analyze", "lz-genmove_analyze", "kata-genmove_analyze"})


def _arity(args: list[str], n: int) -> None:
    if len(args) != n:
        raise GtpError(f"syntax error (expected {n} argument{'s' if n != 1 else ''}, got {len(args)})")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _answer(tag: str, result: str) -> str:
    """``=id result`` + empty line; multi-line results keep their lines, never an empty one inside."""
    lines = [line.rstrip() for line in result.split("\n")]
    head, body = lines[0], [line for line in lines[1:] if line.strip()]
    first = f"={tag} {head}" if head else f"={tag}"
    return "\n".join([first] + body) + "\n\n"


# ----------------------------------------------------------------------------------------------
# Entry point used by ``specmcts gtp``


def run_gtp(cfg, model_path: str | None, options: EngineOptions) -> int:
    """Serve GTP on this process's stdin/stdout. stdout carries GTP only: anything else that a library might
    print goes to stderr for the duration."""
    gtp_out = sys.stdout
    saved = sys.stdout
    sys.stdout = sys.stderr
    try:
        engine = GtpEngine(cfg, model_path, options=options, out=gtp_out, log=sys.stderr)
        engine.log(f"ready: {engine.size}x{engine.size}, komi {engine.rules.komi:g}, "
                   + (f"{options.visits} visits" if options.visits else f"{cfg.search.sims} visits (config)")
                   + (f", {options.seconds:g} s per move" if options.seconds else "")
                   + (f", pondering {options.speculate} deep" if options.speculate not in (0, AUTO) else
                      f", pondering until interrupted, up to {MAX_SPECULATE} deep" if options.speculate == AUTO else ""))
        engine.player()  # build the net now: the first genmove should not pay for it
        return engine.serve(sys.stdin.buffer, gtp_out)
    finally:
        sys.stdout = saved
