"""Memory layout of one Go state: three fixed-size arrays, so cloning is a copy and many states stack.

A state is the tuple ``(core, hist, past)``:

``core``  int32 [core_len(N)]
    ``core[:META_LEN]`` holds scalars (offsets ``M_*`` below); then ``CORE_FIELDS`` arrays of
    ``A = (N + 2) ** 2`` cells each, on the *padded* board (one border ring around the N x N grid,
    point ``p = (row + 1) * (N + 2) + (col + 1)``), so neighbours are ``p +- 1`` and ``p +- (N + 2)``
    without bounds checks.

    - board       EMPTY / BLACK / WHITE / BORDER per point
    - chain_head  the chain's representative point, for every stone
    - chain_next  circular linked list of the stones of a chain
    - libs        pseudo-liberties of the chain (indexed by head): (stone, empty neighbour) pairs
    - lib_sum     sum of the points of those pseudo-liberties
    - lib_sumsq   sum of their squares; a chain is in atari iff libs * sumsq == sum * sum
                  (all its pseudo-liberties are one point), exact and O(1) to maintain
    - chain_size  number of stones (indexed by head)
    - empty_list  the empty points, unordered, first ``core[M_NUM_EMPTY]`` entries valid
    - empty_pos   position of an empty point in empty_list

``hist``  uint64 [hist_len(N)]
    ``hist[:BLOOM_WORDS]`` is a 4096-bit Bloom filter of every position hash seen so far (superko
    pre-check), then ``hist[BLOOM_WORDS + i]`` is the Zobrist hash of the position after move ``i``
    (``i = 0``: the empty board, hash 0). Positional hashes ignore the side to move.

``past``  int8 [HISTORY_PLANES * N * N]
    ring of the last ``HISTORY_PLANES`` boards (row-major, EMPTY/BLACK/WHITE) for the feature
    planes; slot ``core[M_PAST_HEAD]`` holds the current board.
"""

EMPTY = 0
BLACK = 1
WHITE = 2
BORDER = 3

MIN_SIZE = 5
MAX_SIZE = 19
MAX_PADDED = (MAX_SIZE + 2) ** 2

HISTORY_PLANES = 8  # boards kept for the network input (AlphaZero: 8)

# Scalar slots at the start of ``core``.
M_SIZE = 0
M_TO_PLAY = 1
M_MOVE_NUMBER = 2
M_PASSES = 3  # consecutive passes
M_GAME_OVER = 4
M_RESIGNED = 5  # colour that resigned, or EMPTY
M_LAST_MOVE = 6  # action of the last move, -1 at the start
M_NUM_EMPTY = 7
M_CAPTURES_BLACK = 8  # stones captured by black
M_CAPTURES_WHITE = 9
M_PAST_HEAD = 10
M_MAX_MOVES = 11
M_KOMI_X2 = 12  # komi in half points
M_SUPERKO = 13  # 1: positional superko enforced
META_LEN = 16

F_BOARD = 0
F_CHAIN_HEAD = 1
F_CHAIN_NEXT = 2
F_LIBS = 3
F_LIB_SUM = 4
F_LIB_SUMSQ = 5
F_CHAIN_SIZE = 6
F_EMPTY_LIST = 7
F_EMPTY_POS = 8
CORE_FIELDS = 9

BLOOM_WORDS = 64  # 4096 bits


def padded_area(size: int) -> int:
    return (size + 2) ** 2


def core_len(size: int) -> int:
    return META_LEN + CORE_FIELDS * padded_area(size)


def max_moves(size: int) -> int:
    return 2 * size * size


def hist_len(size: int) -> int:
    return BLOOM_WORDS + max_moves(size) + 1


def past_len(size: int) -> int:
    return HISTORY_PLANES * size * size


def num_actions(size: int) -> int:
    """Board points plus pass; resignation is ``resign_action(size)``, outside this range."""
    return size * size + 1


def pass_action(size: int) -> int:
    return size * size


def resign_action(size: int) -> int:
    return size * size + 1
