"""Dead stones and the final score of a finished game, for referees (GTP ``final_score`` and
``final_status_list``, match judging): area scoring after removing dead stones, which are found from an
ownership estimate of the final position: random playouts by default, or any other estimate such as a net's
ownership head (``estimate_status(..., own=)``; the GTP engine averages both, ``specmcts.engine.player.final_status``).

A chain that its opponent owns at the end of most playouts is dead, and so is one the playouts leave in doubt
that sits in the opponent's area without two eyes (uniform random play cannot see that a lone invader in a
large open territory is lost). Seki is not recognised. Good enough for finished games (the playouts alone
agreed with GnuGo's ``final_score`` on 394 of 404 finished 9x9 games, 77 of them with dead stones;
``tools/scoring_agreement.py``); a referee, not a judge of unfinished fights. The Tromp-Taylor count itself
is the native kernel's (``games.go.area_score_of``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from games.go import BLACK, EMPTY, WHITE, GoState, area_score_of, result_string
from games.position import forget_history, reopen
from native import board as board_kernels

DEFAULT_PLAYOUTS = 200  # random playouts behind final_score / final_status_list
DEAD_BELOW = 0.0  # a chain is dead when its mean ownership (own colour +1, opponent -1) is below this
SETTLED_ABOVE = 0.6  # ... and its status is in doubt while |ownership| is below this


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


def estimate_status(state: GoState, playouts: int = DEFAULT_PLAYOUTS, own: np.ndarray | None = None) -> Status:
    """Dead and alive chains of ``state``'s board, and the area score once the dead ones are removed.

    A chain is dead when its opponent owns its points at the end of most random playouts. Uniform random
    play cannot see that a lone stone inside a large open territory is lost (both sides fill the territory
    at the same rate there, so the invader lives about half the time), so a chain the playouts leave in
    doubt is also dead when it sits in the opponent's area without two eyes (``_lost_inside``).

    ``own`` replaces the playouts with another ownership estimate ([N, N], +1 black .. -1 white), such as a
    net's ownership head."""
    board = state.board()
    own = ownership(state, playouts) if own is None else np.asarray(own, np.float64).reshape(board.shape)
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
# Judging a finished match game: the engines' final_score answers and our count


FINAL_SCORE, TROMP_TAYLOR = "final_score", "tromp-taylor"


def read_final_score(answer: str | None) -> float | None:
    """An engine's ``final_score`` answer as Black's margin; None when it is not a score (no answer,
    ``W+R``, an error text)."""
    try:
        return None if answer is None else parse_score(answer)
    except ValueError:
        return None


@dataclass(frozen=True)
class Judgement:
    """How a finished game (two passes or the length limit) was scored."""

    result: str  # the result that counts: 'B+3.5', 'W+12', '0'
    winner: int  # BLACK, WHITE or EMPTY (draw)
    judge: str  # FINAL_SCORE (the engines' answer) or TROMP_TAYLOR (our count of the board as it stands)
    tromp_taylor: str  # our count, always
    scores: dict  # engine name -> its final_score answer (None: it gave none)
    disagree: bool  # the final_score that counts and the Tromp-Taylor count name different winners

    def comment_lines(self) -> list[str]:
        """The two judgements, for an SGF comment."""
        lines = [f"final_score by {name}: {answer if answer is not None else '(no answer)'}"
                 for name, answer in self.scores.items()]
        lines.append(f"Tromp-Taylor count (board as it stands): {self.tromp_taylor}")
        if self.disagree:
            lines.append(f"final_score and the Tromp-Taylor count disagree on the winner; the result is {self.result} "
                         "by final_score")
        else:
            lines.append(f"result {self.result} by {self.judge}")
        return lines


def judge_game(state: GoState, scores: dict[str, str | None]) -> Judgement:
    """Judge a game that ended by passes or by the length limit: by the engines' ``final_score`` answers
    (``scores``: engine name -> answer) when there is at least one, all are readable scores and all agree;
    otherwise by our Tromp-Taylor count of the board as it stands (no dead stones removed)."""
    ours, our_winner = state.result_string(), state.winner()
    values = [read_final_score(answer) for answer in scores.values()]
    if values and None not in values and max(values) - min(values) < 1e-6:
        v = values[0]
        winner = EMPTY if v == 0 else (BLACK if v > 0 else WHITE)
        result = result_string(v)
        return Judgement(result, winner, FINAL_SCORE, ours, dict(scores), winner != our_winner)
    return Judgement(ours, our_winner, TROMP_TAYLOR, ours, dict(scores), False)
