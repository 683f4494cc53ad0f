"""Go rules kernels over the fixed-size state arrays described in ``native/layout.py``.

Chains are kept incrementally (KataGo/Pachi style): a circular list of stones per chain, a head per
stone, and pseudo-liberty counters per chain, so a move costs O(size of the chains it touches), never a
flood fill of the board. Positional superko uses the Zobrist hash of every earlier position, behind a
Bloom filter so the common case is one bit test.

Actions: ``a = row * N + col`` (row 0 is the top row, GTP row N), ``N * N`` = pass, ``N * N + 1`` = resign.
"""
import numpy as np
from numba import njit

from .arrays import copy_into
from .layout import (
    BLACK,
    BLOOM_WORDS,
    BORDER,
    EMPTY,
    F_BOARD,
    F_CHAIN_HEAD,
    F_CHAIN_NEXT,
    F_CHAIN_SIZE,
    F_EMPTY_LIST,
    F_EMPTY_POS,
    F_LIB_SUM,
    F_LIB_SUMSQ,
    F_LIBS,
    HISTORY_PLANES,
    M_CAPTURES_BLACK,
    M_CAPTURES_WHITE,
    M_GAME_OVER,
    M_KOMI_X2,
    M_LAST_MOVE,
    M_MAX_MOVES,
    M_MOVE_NUMBER,
    M_NUM_EMPTY,
    M_PASSES,
    M_PAST_HEAD,
    M_RESIGNED,
    M_SIZE,
    M_SUPERKO,
    M_TO_PLAY,
    META_LEN,
    WHITE,
)
from .zobrist import ZOBRIST

BLOOM_SHIFT = np.uint64(52)  # top 12 bits of a hash index the 4096-bit filter
BLOOM_MASK = np.uint64(4095)
U64_ONE = np.uint64(1)
U64_63 = np.uint64(63)


# ----------------------------------------------------------------------------------------------
# Offsets and coordinates


@njit(cache=True)
def field(core, f):
    """Offset of per-point field ``f`` inside ``core``."""
    width = core[M_SIZE] + 2
    return META_LEN + f * width * width


@njit(cache=True)
def action_to_point(size, action):
    return (action // size + 1) * (size + 2) + action % size + 1


@njit(cache=True)
def point_to_action(size, point):
    width = size + 2
    return (point // width - 1) * size + point % width - 1


@njit(cache=True)
def current_hash(core, hist):
    return hist[BLOOM_WORDS + core[M_MOVE_NUMBER]]


# ----------------------------------------------------------------------------------------------
# Construction


@njit(cache=True)
def init_state(core, hist, past, size, komi_x2, superko):
    """Empty board of ``size``; ``core``/``hist``/``past`` must have the lengths ``layout`` gives."""
    core[:] = 0
    hist[:] = 0
    past[:] = 0
    width = size + 2
    area = width * width
    core[M_SIZE] = size
    core[M_TO_PLAY] = BLACK
    core[M_LAST_MOVE] = -1
    core[M_MAX_MOVES] = 2 * size * size
    core[M_KOMI_X2] = komi_x2
    core[M_SUPERKO] = superko
    ob = META_LEN + F_BOARD * area
    oe = META_LEN + F_EMPTY_LIST * area
    oi = META_LEN + F_EMPTY_POS * area
    for p in range(area):
        core[ob + p] = BORDER
    n = 0
    for r in range(size):
        for c in range(size):
            p = (r + 1) * width + c + 1
            core[ob + p] = EMPTY
            core[oe + n] = p
            core[oi + p] = n
            n += 1
    core[M_NUM_EMPTY] = n
    _bloom_add(hist, np.uint64(0))


@njit(cache=True)
def copy_state(src_core, src_hist, src_past, dst_core, dst_hist, dst_past):
    """Clone a state; only the hash history that exists is copied."""
    copy_into(dst_core, src_core, src_core.shape[0])
    copy_into(dst_hist, src_hist, BLOOM_WORDS + src_core[M_MOVE_NUMBER] + 1)
    copy_into(dst_past, src_past, src_past.shape[0])


# ----------------------------------------------------------------------------------------------
# Superko bookkeeping


@njit(cache=True)
def _bloom_add(hist, h):
    bit = (h >> BLOOM_SHIFT) & BLOOM_MASK
    word = np.int64(bit >> np.uint64(6))
    hist[word] |= U64_ONE << (bit & U64_63)


@njit(cache=True)
def position_seen(core, hist, h):
    """True if the board with hash ``h`` occurred earlier in the game (any side to move)."""
    bit = (h >> BLOOM_SHIFT) & BLOOM_MASK
    word = np.int64(bit >> np.uint64(6))
    if (hist[word] >> (bit & U64_63)) & U64_ONE == np.uint64(0):
        return False
    for i in range(core[M_MOVE_NUMBER] + 1):
        if hist[BLOOM_WORDS + i] == h:
            return True
    return False


# ----------------------------------------------------------------------------------------------
# Chain helpers


@njit(cache=True)
def in_atari(core, head):
    """Exactly one real liberty: every pseudo-liberty is the same point."""
    width = core[M_SIZE] + 2
    area = width * width
    libs = np.int64(core[META_LEN + F_LIBS * area + head])
    s = np.int64(core[META_LEN + F_LIB_SUM * area + head])
    q = np.int64(core[META_LEN + F_LIB_SUMSQ * area + head])
    return libs > 0 and libs * q == s * s


@njit(cache=True)
def chain_liberties(core, head):
    """Number of distinct liberties of a chain (a walk over its stones; not for hot paths)."""
    width = core[M_SIZE] + 2
    area = width * width
    ob = META_LEN + F_BOARD * area
    on = META_LEN + F_CHAIN_NEXT * area
    seen = np.zeros(area, dtype=np.bool_)
    count = 0
    s = head
    while True:
        for n in (s - 1, s + 1, s - width, s + width):
            if core[ob + n] == EMPTY and not seen[n]:
                seen[n] = True
                count += 1
        s = core[on + s]
        if s == head:
            break
    return count


@njit(cache=True)
def _add_lib(core, area, head, point):
    core[META_LEN + F_LIBS * area + head] += 1
    core[META_LEN + F_LIB_SUM * area + head] += point
    core[META_LEN + F_LIB_SUMSQ * area + head] += point * point


@njit(cache=True)
def _remove_lib(core, area, head, point):
    core[META_LEN + F_LIBS * area + head] -= 1
    core[META_LEN + F_LIB_SUM * area + head] -= point
    core[META_LEN + F_LIB_SUMSQ * area + head] -= point * point


@njit(cache=True)
def _empty_remove(core, area, point):
    oe = META_LEN + F_EMPTY_LIST * area
    oi = META_LEN + F_EMPTY_POS * area
    last = core[M_NUM_EMPTY] - 1
    i = core[oi + point]
    moved = core[oe + last]
    core[oe + i] = moved
    core[oi + moved] = i
    core[M_NUM_EMPTY] = last


@njit(cache=True)
def _empty_add(core, area, point):
    n = core[M_NUM_EMPTY]
    core[META_LEN + F_EMPTY_LIST * area + n] = point
    core[META_LEN + F_EMPTY_POS * area + point] = n
    core[M_NUM_EMPTY] = n + 1


@njit(cache=True)
def _merge(core, area, a, b):
    """Merge chain ``b`` into chain ``a`` (heads); the larger chain keeps its head. Returns the head."""
    oh = META_LEN + F_CHAIN_HEAD * area
    on = META_LEN + F_CHAIN_NEXT * area
    oz = META_LEN + F_CHAIN_SIZE * area
    if core[oz + a] < core[oz + b]:
        a, b = b, a
    s = b
    while True:
        core[oh + s] = a
        s = core[on + s]
        if s == b:
            break
    na = core[on + a]
    core[on + a] = core[on + b]
    core[on + b] = na
    for f in (F_LIBS, F_LIB_SUM, F_LIB_SUMSQ, F_CHAIN_SIZE):
        o = META_LEN + f * area
        core[o + a] += core[o + b]
    return a


@njit(cache=True)
def _capture(core, area, width, head, h, board):
    """Remove the chain at ``head`` (the opponent of the side to move), on the padded board and on ``board``
    (the new position's slot of the past-boards ring, row-major); returns the updated hash."""
    ob = META_LEN + F_BOARD * area
    oh = META_LEN + F_CHAIN_HEAD * area
    on = META_LEN + F_CHAIN_NEXT * area
    victim = core[ob + head]
    s = head
    while True:
        core[ob + s] = EMPTY
        board[(s // width - 1) * (width - 2) + s % width - 1] = EMPTY
        _empty_add(core, area, s)
        h ^= ZOBRIST[victim, s]
        for n in (s - 1, s + 1, s - width, s + width):
            v = core[ob + n]
            if v != EMPTY and v != BORDER and v != victim:
                _add_lib(core, area, core[oh + n], s)
        s = core[on + s]
        if s == head:
            break
    return h


# ----------------------------------------------------------------------------------------------
# Legality


@njit(cache=True)
def _captured_hash(core, area, head):
    on = META_LEN + F_CHAIN_NEXT * area
    colour = core[META_LEN + F_BOARD * area + head]
    h = np.uint64(0)
    s = head
    while True:
        h ^= ZOBRIST[colour, s]
        s = core[on + s]
        if s == head:
            break
    return h


@njit(cache=True)
def is_legal_point(core, hist, point):
    """May the side to move place a stone on padded ``point``? (occupancy, suicide, superko)"""
    width = core[M_SIZE] + 2
    area = width * width
    ob = META_LEN + F_BOARD * area
    oh = META_LEN + F_CHAIN_HEAD * area
    if core[ob + point] != EMPTY:
        return False
    colour = core[M_TO_PLAY]
    opp = 3 - colour
    breathes = False
    c0 = -1
    c1 = -1
    c2 = -1
    c3 = -1
    for n in (point - 1, point + 1, point - width, point + width):
        v = core[ob + n]
        if v == EMPTY:
            breathes = True
        elif v == colour:
            if not in_atari(core, core[oh + n]):
                breathes = True
        elif v == opp:
            head = core[oh + n]
            if in_atari(core, head):
                breathes = True
                if head != c0 and head != c1 and head != c2:
                    if c0 < 0:
                        c0 = head
                    elif c1 < 0:
                        c1 = head
                    elif c2 < 0:
                        c2 = head
                    else:
                        c3 = head
    if not breathes:
        return False  # suicide
    if core[M_SUPERKO] == 0:
        return True
    h = current_hash(core, hist) ^ ZOBRIST[colour, point]
    for head in (c0, c1, c2, c3):
        if head >= 0:
            h ^= _captured_hash(core, area, head)
    return not position_seen(core, hist, h)


@njit(cache=True)
def is_legal(core, hist, action):
    size = core[M_SIZE]
    if core[M_GAME_OVER] != 0 or action < 0 or action > size * size + 1:
        return False
    if action >= size * size:
        return True  # pass and resign
    return is_legal_point(core, hist, action_to_point(size, action))


@njit(cache=True)
def legal_mask(core, hist, out):
    """``out[a]`` for every board action and pass (length ``N * N + 1``); all False once the game is over."""
    size = core[M_SIZE]
    width = size + 2
    over = core[M_GAME_OVER] != 0
    for r in range(size):
        for c in range(size):
            out[r * size + c] = (not over) and is_legal_point(core, hist, (r + 1) * width + c + 1)
    out[size * size] = not over


@njit(cache=True)
def is_eye(core, point, colour):
    """A point whose neighbours are all ``colour`` and that is not a false eye (diagonal rule)."""
    width = core[M_SIZE] + 2
    area = width * width
    ob = META_LEN + F_BOARD * area
    for n in (point - 1, point + 1, point - width, point + width):
        v = core[ob + n]
        if v != colour and v != BORDER:
            return False
    opp = 3 - colour
    bad = 0
    edge = 0
    for n in (point - width - 1, point - width + 1, point + width - 1, point + width + 1):
        v = core[ob + n]
        if v == opp:
            bad += 1
        elif v == BORDER:
            edge = 1
    return bad + edge < 2

@njit(cache=True)
def searchable_points(core, hist, fill_eyes, out):
    """For every board point (action ``row * N + col``), 1 in ``out[action]`` if a search may play there and
    0 if not: legal (empty, not suicide, no positional superko repeat) and, unless ``fill_eyes``, not one
    of the mover's own true eyes (``is_eye``). The same answer as ``is_legal_point`` and ``is_eye`` point by
    point (tests/test_rules.py checks every point of random positions), in one pass with the offsets and the
    position's hash taken once: a search expanding a node asks this of every point. ``is_legal_point``'s
    logic is written out here on purpose: calling it (or a helper both share) per point measured 1.2-1.4 us
    per 9x9 board against 0.7 us for this loop. Returns how many points may be played."""
    size = core[M_SIZE]
    width = size + 2
    area = width * width
    ob = META_LEN + F_BOARD * area
    oh = META_LEN + F_CHAIN_HEAD * area
    ol = META_LEN + F_LIBS * area
    osum = META_LEN + F_LIB_SUM * area
    osq = META_LEN + F_LIB_SUMSQ * area
    colour = core[M_TO_PLAY]
    opp = 3 - colour
    superko = core[M_SUPERKO] != 0
    h0 = current_hash(core, hist)
    count = 0
    for row in range(size):
        for col in range(size):
            a = row * size + col
            point = (row + 1) * width + col + 1
            out[a] = 0
            if core[ob + point] != EMPTY:
                continue
            breathes = False
            surrounded = True  # every neighbour the mover's or the edge: an eye candidate
            c0 = -1
            c1 = -1
            c2 = -1
            c3 = -1
            for n in (point - 1, point + 1, point - width, point + width):
                v = core[ob + n]
                if v == EMPTY:
                    breathes = True
                    surrounded = False
                elif v == colour or v == opp:
                    head = core[oh + n]
                    libs = np.int64(core[ol + head])
                    s = np.int64(core[osum + head])
                    atari = libs > 0 and libs * np.int64(core[osq + head]) == s * s
                    if v == colour:
                        if not atari:
                            breathes = True
                    else:
                        surrounded = False
                        if atari:
                            breathes = True
                            if head != c0 and head != c1 and head != c2:
                                if c0 < 0:
                                    c0 = head
                                elif c1 < 0:
                                    c1 = head
                                elif c2 < 0:
                                    c2 = head
                                else:
                                    c3 = head
            if not breathes:
                continue  # suicide
            if surrounded and not fill_eyes and is_eye(core, point, colour):
                continue
            if superko:
                h = h0 ^ ZOBRIST[colour, point]
                for head in (c0, c1, c2, c3):
                    if head >= 0:
                        h ^= _captured_hash(core, area, head)
                if position_seen(core, hist, h):
                    continue
            out[a] = 1
            count += 1
    return count


# ----------------------------------------------------------------------------------------------
# Playing moves


@njit(cache=True)
def _next_board(core, past):
    """Advance the past-boards ring: its next slot becomes the current board, a copy of the previous one that
    the move then edits (its stone, its captures), which is far cheaper than rewriting the board from the
    padded one. Returns that slot."""
    nn = core[M_SIZE] * core[M_SIZE]
    old = core[M_PAST_HEAD]
    head = (old + 1) % HISTORY_PLANES
    core[M_PAST_HEAD] = head
    board = past[head * nn:(head + 1) * nn]
    copy_into(board, past[old * nn:(old + 1) * nn], nn)
    return board


@njit(cache=True)
def _record(core, hist, h):
    """Append the new position to the history and hand the move over (the past-boards ring was advanced by
    ``_next_board``)."""
    n = core[M_MOVE_NUMBER] + 1
    core[M_MOVE_NUMBER] = n
    hist[BLOOM_WORDS + n] = h
    _bloom_add(hist, h)
    core[M_TO_PLAY] = 3 - core[M_TO_PLAY]
    if n >= core[M_MAX_MOVES]:
        core[M_GAME_OVER] = 1


@njit(cache=True)
def play_point(core, hist, past, point):
    """Place a stone of the side to move on ``point``; the move must be legal. Returns stones captured."""
    width = core[M_SIZE] + 2
    area = width * width
    ob = META_LEN + F_BOARD * area
    oh = META_LEN + F_CHAIN_HEAD * area
    on = META_LEN + F_CHAIN_NEXT * area
    oz = META_LEN + F_CHAIN_SIZE * area
    colour = core[M_TO_PLAY]
    opp = 3 - colour
    h = current_hash(core, hist) ^ ZOBRIST[colour, point]
    board = _next_board(core, past)
    board[(point // width - 1) * (width - 2) + point % width - 1] = colour

    _empty_remove(core, area, point)
    core[ob + point] = colour
    core[oh + point] = point
    core[on + point] = point
    core[oz + point] = 1
    core[META_LEN + F_LIBS * area + point] = 0
    core[META_LEN + F_LIB_SUM * area + point] = 0
    core[META_LEN + F_LIB_SUMSQ * area + point] = 0

    for n in (point - 1, point + 1, point - width, point + width):
        v = core[ob + n]
        if v == EMPTY:
            _add_lib(core, area, point, n)
        elif v == colour or v == opp:
            _remove_lib(core, area, core[oh + n], point)

    head = point
    for n in (point - 1, point + 1, point - width, point + width):
        if core[ob + n] == colour:
            other = core[oh + n]
            if other != head:
                head = _merge(core, area, head, other)

    captured = 0
    ol = META_LEN + F_LIBS * area
    for n in (point - 1, point + 1, point - width, point + width):
        if core[ob + n] == opp:
            victim = core[oh + n]
            if core[ol + victim] == 0:
                captured += core[oz + victim]
                h = _capture(core, area, width, victim, h, board)
    if colour == BLACK:
        core[M_CAPTURES_BLACK] += captured
    else:
        core[M_CAPTURES_WHITE] += captured

    core[M_PASSES] = 0
    core[M_LAST_MOVE] = point_to_action(core[M_SIZE], point)
    _record(core, hist, h)
    return captured


@njit(cache=True)
def play(core, hist, past, action):
    """Play ``action`` (board point, pass or resign) for the side to move; the caller checks legality."""
    size = core[M_SIZE]
    if action < size * size:
        play_point(core, hist, past, action_to_point(size, action))
    elif action == size * size:
        passes = core[M_PASSES] + 1
        core[M_LAST_MOVE] = action
        _next_board(core, past)
        _record(core, hist, current_hash(core, hist))
        core[M_PASSES] = passes
        if passes >= 2:
            core[M_GAME_OVER] = 1
    else:
        core[M_RESIGNED] = core[M_TO_PLAY]
        core[M_LAST_MOVE] = action
        core[M_GAME_OVER] = 1


# ----------------------------------------------------------------------------------------------
# Scoring


@njit(cache=True)
def area_ownership(core, out):
    """Tromp-Taylor ownership of every point into ``out`` (int8 [N * N], action order): BLACK's points +1,
    WHITE's -1, neutral 0. A stone is its colour's; an empty region belongs to a colour only if it reaches
    that colour alone. Returns (black points, white points)."""
    size = core[M_SIZE]
    width = size + 2
    area = width * width
    ob = META_LEN + F_BOARD * area
    black = 0
    white = 0
    owner = np.zeros(area, dtype=np.int8)
    seen = np.zeros(area, dtype=np.bool_)
    stack = np.empty(area, dtype=np.int32)
    members = np.empty(area, dtype=np.int32)
    for p in range(area):
        v = core[ob + p]
        if v == BLACK:
            owner[p] = 1
        elif v == WHITE:
            owner[p] = -1
        elif v == EMPTY and not seen[p]:
            seen[p] = True
            stack[0] = p
            top = 1
            region = 0
            touches = 0  # bit 1: black, bit 2: white
            while top > 0:
                top -= 1
                q = stack[top]
                members[region] = q
                region += 1
                for n in (q - 1, q + 1, q - width, q + width):
                    w = core[ob + n]
                    if w == EMPTY:
                        if not seen[n]:
                            seen[n] = True
                            stack[top] = n
                            top += 1
                    elif w == BLACK:
                        touches |= 1
                    elif w == WHITE:
                        touches |= 2
            if touches == 1 or touches == 2:
                mark = 1 if touches == 1 else -1
                for i in range(region):
                    owner[members[i]] = mark
    for a in range(size * size):
        o = owner[(a // size + 1) * width + a % size + 1]
        out[a] = o
        if o > 0:
            black += 1
        elif o < 0:
            white += 1
    return black, white


@njit(cache=True)
def area_score(core):
    """Tromp-Taylor area: (black points, white points) (``area_ownership``, counted)."""
    size = core[M_SIZE]
    return area_ownership(core, np.empty(size * size, dtype=np.int8))


@njit(cache=True)
def score_x2(core):
    """Black's area minus white's area minus komi, in half points (komi may be fractional)."""
    black, white = area_score(core)
    return 2 * (black - white) - core[M_KOMI_X2]


@njit(cache=True)
def winner(core):
    """BLACK, WHITE or EMPTY (a draw) for a finished or resigned game, scored as it stands."""
    resigned = core[M_RESIGNED]
    if resigned != EMPTY:
        return 3 - resigned
    return winner_of_score(score_x2(core))


@njit(cache=True)
def winner_of_score(s_x2):
    """BLACK, WHITE or EMPTY (a draw) for black's margin ``s_x2`` in half points (``score_x2``)."""
    if s_x2 > 0:
        return BLACK
    if s_x2 < 0:
        return WHITE
    return EMPTY


# ----------------------------------------------------------------------------------------------
# Random play (reference games, tests and the rules benchmark)


@njit(cache=True)
def random_move(core, hist):
    """A uniformly random legal move that does not fill one of the mover's own eyes; pass if none.

    Shuffles the empty-point list in place (its order carries no meaning) while it searches.
    """
    size = core[M_SIZE]
    width = size + 2
    area = width * width
    oe = META_LEN + F_EMPTY_LIST * area
    oi = META_LEN + F_EMPTY_POS * area
    colour = core[M_TO_PLAY]
    n = core[M_NUM_EMPTY]
    for i in range(n):
        j = i + np.random.randint(n - i)
        pi = core[oe + i]
        pj = core[oe + j]
        core[oe + i] = pj
        core[oe + j] = pi
        core[oi + pj] = i
        core[oi + pi] = j
        if not is_eye(core, pj, colour) and is_legal_point(core, hist, pj):
            return point_to_action(size, pj)
    return size * size


@njit(cache=True)
def seed_kernels(seed):
    """Seed numba's own RNG stream (used by ``random_move``)."""
    np.random.seed(seed)


@njit(cache=True)
def play_random_game(core, hist, past, moves_out):
    """Play random moves until the game ends; writes the actions to ``moves_out``, returns their count."""
    n = 0
    while core[M_GAME_OVER] == 0:
        a = random_move(core, hist)
        moves_out[n] = a
        n += 1
        play(core, hist, past, a)
    return n


@njit(cache=True)
def random_games(core, hist, past, scratch_core, scratch_hist, scratch_past, games):
    """Play ``games`` random games from the given start state; returns total moves (benchmark kernel)."""
    total = 0
    for _ in range(games):
        copy_state(core, hist, past, scratch_core, scratch_hist, scratch_past)
        while scratch_core[M_GAME_OVER] == 0:
            play(scratch_core, scratch_hist, scratch_past, random_move(scratch_core, scratch_hist))
            total += 1
    return total
