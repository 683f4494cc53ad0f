"""SGF records of games: a thin layer over sgfmill.

``write_sgf(path, rules, moves, ...)`` writes FF[4] GM[1] SZ KM RU RE PB PW AP DT, one node per move, each
move optionally carrying a comment (the search summary); a pass is an empty move (``B[]``), resignation is
not a move but ``RE[B+R]``. Files are written atomically (temporary file in the same folder, then rename).

``read_sgf(path_or_bytes)`` returns an ``SgfGame``: rules, moves as actions, result, comments, players and
setup stones (AB/AW, handicap). Anything that is not a readable Go game raises ``SgfError`` (a
``ValueError``) with a one-line message that names the file.

Coordinates. Our actions are ``a = row * N + col`` with row 0 the *top* row. In SGF text a point is two
letters, column then row, both counted from the top-left (``aa`` = top-left = action 0). sgfmill's
interpreted (row, col) pairs have row 0 at the *bottom* (GTP convention), so ``_to_sgfmill`` /
``_from_sgfmill`` flip the row.

Rules. Scoring is always area (Tromp-Taylor, which for finished games is Chinese counting). RU is written
as ``Chinese`` for our default rules (positional superko, suicide illegal) and as ``NOKO`` for
``GoRules(superko=False)`` (no ko rule at all, only occupancy and suicide: a testing setting). On reading, any
RU is accepted and kept verbatim in ``SgfGame.ruleset``; only ``NOKO`` turns superko off.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from sgfmill import sgf as sgfmill_sgf

from games.go import BLACK, EMPTY, WHITE, GoRules, GoState, IllegalMoveError
from games.position import setup_state
from native import layout
from specmcts.atomic import atomic_write_bytes

RULESET_DEFAULT = "Chinese"
RULESET_NOKO = "NOKO"


class SgfError(ValueError):
    """A file or byte string that is not a readable Go game record; the message is one line naming it."""

    def __init__(self, source: str, reason: str):
        self.source = source
        self.reason = " ".join(str(reason).split()) or "invalid SGF"
        super().__init__(f"{source}: {self.reason}")


# ----------------------------------------------------------------------------------------------
# Coordinates


def _to_sgfmill(size: int, action: int) -> tuple[int, int]:
    """Our board action -> sgfmill (row, col), row 0 at the bottom."""
    row, col = divmod(int(action), size)
    return size - 1 - row, col


def _from_sgfmill(size: int, point: tuple[int, int]) -> int:
    """sgfmill (row, col), row 0 at the bottom -> our action."""
    row, col = point
    return (size - 1 - row) * size + col


def action_to_sgf(size: int, action: int) -> str:
    """Action -> SGF point text: ``'aa'`` is the top-left point, ``''`` is a pass."""
    if action == size * size:
        return ""
    if not 0 <= action < size * size:
        raise ValueError(f"action {action} is not a move on a {size}x{size} board")
    row, col = divmod(int(action), size)
    return chr(ord("a") + col) + chr(ord("a") + row)


# ----------------------------------------------------------------------------------------------
# The record


@dataclass
class SgfGame:
    """A game as read from SGF, in our conventions.

    ``moves`` are actions (board points and passes, never resign) of the main line, alternating colours
    starting with ``first_player``. ``comments[i]`` is the comment of move ``i`` (or None); the root comment
    is ``game_comment``. ``setup_black``/``setup_white`` are actions of AB/AW stones on the root node.
    """

    rules: GoRules
    moves: list[int] = field(default_factory=list)
    result: str | None = None
    comments: list[str | None] = field(default_factory=list)
    players: tuple[str | None, str | None] = (None, None)
    game_comment: str | None = None
    setup_black: list[int] = field(default_factory=list)
    setup_white: list[int] = field(default_factory=list)
    handicap: int | None = None
    first_player: int = BLACK
    ruleset: str | None = None
    date: str | None = None
    program: str | None = None
    source: str = "<bytes>"

    @property
    def winner(self) -> int | None:
        """BLACK, WHITE, EMPTY (draw) from RE, or None when there is no result or it is not a win/draw."""
        if not self.result:
            return None
        r = self.result.strip().upper()
        if r in ("0", "DRAW", "JIGO"):
            return EMPTY
        if r.startswith("B+"):
            return BLACK
        if r.startswith("W+"):
            return WHITE
        return None

    @property
    def resigned(self) -> bool:
        return bool(self.result) and self.result.strip().upper()[1:] in ("+R", "+RESIGN")

    def initial_state(self) -> GoState:
        """The position before the first move: the setup stones (if any) with ``first_player`` to move, at
        move 0 with no history (``games.position.setup_state``, as GTP's ``loadsgf`` builds it)."""
        try:
            return setup_state(self.rules, self.setup_black, self.setup_white, self.first_player)
        except (IllegalMoveError, ValueError) as e:
            raise SgfError(self.source, f"setup stones do not form a legal position: {e}") from None

    def to_state(self, upto: int | None = None, resign: bool = True) -> GoState:
        """Replay the first ``upto`` moves (all by default). With ``resign`` and a result ``X+R`` where the
        loser is to move after the last move, the resignation is applied too, so ``winner()`` agrees with RE."""
        state = self.initial_state()
        moves = self.moves if upto is None else self.moves[:upto]
        for i, a in enumerate(moves):
            try:
                state.play(a)
            except IllegalMoveError as e:
                raise SgfError(self.source, f"move {i + 1} is illegal: {e}") from None
        if resign and upto is None and self.resigned and not state.is_over:
            loser = WHITE if self.winner == BLACK else BLACK
            if state.to_play == loser:
                state.play(self.rules.resign_action)
        return state


# ----------------------------------------------------------------------------------------------
# Writing


def _program_name() -> str:
    from specmcts import __version__

    return f"specmcts:{__version__}"


def _comment_for(comments, i: int) -> str | None:
    if comments is None:
        return None
    if isinstance(comments, Mapping):
        return comments.get(i)
    return comments[i] if i < len(comments) else None


def write_sgf(
    path: str | os.PathLike | None,
    rules: GoRules,
    moves: Sequence[int],
    result: str | None = None,
    players: tuple[str | None, str | None] = ("specmcts", "specmcts"),
    comments: Sequence[str | None] | Mapping[int, str] | None = None,
    *,
    game_comment: str | None = None,
    date: datetime.date | str | None = None,
    program: str | None = None,
    setup_black: Sequence[int] = (),
    setup_white: Sequence[int] = (),
    first_player: int = BLACK,
    properties: Mapping[str, str] | None = None,
    validate: bool = True,
) -> str:
    """Write one game as SGF and return its text; with ``path`` None nothing is written.

    ``moves`` are actions (board points, pass ``N*N``, and optionally a final resign ``N*N+1``, which
    becomes ``RE[X+R]`` rather than a node). ``comments`` is a list aligned with ``moves`` (None entries
    allowed) or a dict ``{move_index: text}``; a comment on a final resign goes to the last node.
    ``result`` None: with ``validate`` (replay the moves, IllegalMoveError on an illegal one) the result of
    a finished game is computed (``GoState.result_string()``), an unfinished game gets no RE. ``date``
    defaults to today, ``program`` to ``specmcts:<version>``. ``properties`` adds raw root properties
    (``{"GN": "...", "EV": "..."}``).
    """
    size = rules.size
    moves = [int(a) for a in moves]
    resign_index = None
    if moves and moves[-1] == rules.resign_action:
        resign_index = len(moves) - 1
        moves = moves[:-1]
    if any(not 0 <= a <= rules.pass_action for a in moves):
        bad = next(a for a in moves if not 0 <= a <= rules.pass_action)
        raise ValueError(f"action {bad} is not a move on a {size}x{size} board (resign may only be the last move)")

    if validate or (result is None and resign_index is None):
        state = SgfGame(rules, setup_black=list(setup_black), setup_white=list(setup_white),
                        first_player=first_player, source="<write_sgf>").initial_state()
        for i, a in enumerate(moves):
            try:
                state.play(a)
            except IllegalMoveError as e:
                raise IllegalMoveError(f"move {i + 1} ({state.action_to_gtp(a)}) is illegal: {e}") from None
        if resign_index is not None:
            state.play(rules.resign_action)
        if result is None and state.is_over:
            result = state.result_string()
    elif result is None and resign_index is not None:
        # The side to move resigned: it is the colour of move number len(moves) (0-based) in alternation.
        loser = first_player if len(moves) % 2 == 0 else 3 - first_player
        result = ("W" if loser == BLACK else "B") + "+R"

    game = sgfmill_sgf.Sgf_game(size=size, encoding="UTF-8")
    root = game.get_root()
    root.set("KM", float(rules.komi))
    root.set("RU", RULESET_DEFAULT if rules.superko else RULESET_NOKO)
    if result is not None:
        root.set("RE", str(result))
    black_name, white_name = players
    if black_name is not None:
        root.set("PB", black_name)
    if white_name is not None:
        root.set("PW", white_name)
    app, _, version = (program if program is not None else _program_name()).partition(":")
    root.set("AP", (app, version))
    if date is None:
        date = datetime.date.today()
    root.set("DT", date.strftime("%Y-%m-%d") if isinstance(date, datetime.date) else str(date))
    if setup_black or setup_white:
        root.set_setup_stones([_to_sgfmill(size, a) for a in setup_black], [_to_sgfmill(size, a) for a in setup_white])
        if setup_black and not setup_white and len(setup_black) >= 2 and first_player == WHITE:
            root.set("HA", len(setup_black))
    if first_player == WHITE:
        root.set("PL", "w")
    if game_comment:
        root.set("C", game_comment)
    for ident, value in (properties or {}).items():
        root.set(ident, value)

    colour = "b" if first_player == BLACK else "w"
    node = root
    for i, a in enumerate(moves):
        node = node.new_child()
        if a == rules.pass_action:
            node.set_raw(colour.upper(), b"")  # FF[4] pass (sgfmill would write 'tt')
        else:
            node.set_move(colour, _to_sgfmill(size, a))
        text = _comment_for(comments, i)
        if text:
            node.set("C", text)
        colour = "w" if colour == "b" else "b"
    if resign_index is not None:
        text = _comment_for(comments, resign_index)
        if text:
            node.add_comment_text(text)

    data = game.serialise()
    if path is not None:
        atomic_write_bytes(path, data)
    return data.decode("utf-8")


# ----------------------------------------------------------------------------------------------
# Reading


def _get(node, ident):
    try:
        return node.get(ident)
    except KeyError:
        return None


def _program_from(ap) -> str | None:
    if ap is None:
        return None
    app, version = ap
    return f"{app}:{version}" if version else app


def read_sgf(source: str | os.PathLike | bytes | bytearray, validate: bool = True) -> SgfGame:
    """Read the main line of the first game in an SGF file (path), byte string, or str starting with ``(``.

    Raises ``SgfError`` (a ValueError; one line naming the file) for anything that is not a readable Go
    game: unreadable file, SGF syntax error, GM other than 1, board size outside 5..19, bad KM, moves off
    the board, two moves of one colour in a row, AB/AW after the root, or (with ``validate``) an illegal move.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        name, data, encoding = "<bytes>", bytes(source), None
    elif isinstance(source, str) and source.lstrip().startswith("("):  # SGF text, e.g. from write_sgf(None, ...)
        name, data, encoding = "<string>", source.encode("utf-8"), "UTF-8"
    else:
        name, encoding = os.fspath(source), None
        try:
            data = Path(name).read_bytes()
        except OSError as e:
            raise SgfError(name, f"cannot read: {e.strerror or e}") from None
    try:
        return _parse(name, data, validate, encoding)
    except SgfError:
        raise
    except (ValueError, KeyError, IndexError, TypeError, UnicodeError) as e:
        raise SgfError(name, f"malformed SGF: {e or type(e).__name__}") from None


def _parse(name: str, data: bytes, validate: bool, encoding: str | None) -> SgfGame:
    try:
        game = sgfmill_sgf.Sgf_game.from_bytes(data, override_encoding=encoding)
    except ValueError as e:
        raise SgfError(name, f"not SGF: {e}") from None
    root = game.get_root()
    gm = _get(root, "GM")
    if gm is not None and gm != 1:
        raise SgfError(name, f"not a Go game (GM[{gm}])")
    size = game.get_size()
    if not layout.MIN_SIZE <= size <= layout.MAX_SIZE:
        raise SgfError(name, f"board size {size} is not supported ({layout.MIN_SIZE}..{layout.MAX_SIZE})")
    try:
        komi = float(game.get_komi())
    except ValueError:
        raise SgfError(name, f"bad komi KM[{root.get_raw('KM').decode('latin-1')}]") from None
    ruleset = _get(root, "RU")
    superko = not (ruleset is not None and ruleset.strip().upper() == RULESET_NOKO)
    try:
        rules = GoRules(size=size, komi=komi, superko=superko)
    except ValueError as e:
        raise SgfError(name, str(e)) from None

    black_stones, white_stones, empty_stones = root.get_setup_stones()
    if empty_stones:
        raise SgfError(name, "AE (remove stones) on the root node is not supported")
    record = SgfGame(
        rules=rules,
        result=_get(root, "RE"),
        players=(game.get_player_name("b"), game.get_player_name("w")),
        game_comment=_get(root, "C"),
        setup_black=sorted(_from_sgfmill(size, p) for p in black_stones),
        setup_white=sorted(_from_sgfmill(size, p) for p in white_stones),
        handicap=game.get_handicap(),
        ruleset=ruleset,
        date=_get(root, "DT"),
        program=_program_from(_get(root, "AP")),
        source=name,
    )
    if root.get_raw_move()[0] is not None:
        raise SgfError(name, "a move on the root node is not supported")

    expected = None
    for i, node in enumerate(game.get_main_sequence()[1:]):
        if node.has_setup_stones():
            raise SgfError(name, f"setup stones (AB/AW/AE) after the root, at node {i + 1}, are not supported")
        colour, raw = node.get_raw_move()
        if colour is None:
            if _get(node, "C"):  # a comment-only node: attach it to the previous move
                if record.comments:
                    prev = record.comments[-1]
                    record.comments[-1] = f"{prev}\n\n{node.get('C')}" if prev else node.get("C")
                else:
                    record.game_comment = node.get("C")
            continue
        try:
            _, point = node.get_move()
        except ValueError:
            raise SgfError(name, f"move {len(record.moves) + 1} has bad coordinates {raw!r}") from None
        c = BLACK if colour == "b" else WHITE
        if expected is None:
            record.first_player = c
        elif c != expected:
            raise SgfError(name, f"move {len(record.moves) + 1} is the second {'black' if c == BLACK else 'white'} move in a row")
        expected = 3 - c
        record.moves.append(rules.pass_action if point is None else _from_sgfmill(size, point))
        record.comments.append(_get(node, "C"))
    if expected is None:  # no moves: PL says who starts
        pl = _get(root, "PL")
        record.first_player = WHITE if pl == "w" else BLACK
    if validate:
        record.to_state(resign=False)  # raises SgfError naming the illegal move
    return record


__all__ = ["SgfError", "SgfGame", "read_sgf", "write_sgf", "action_to_sgf"]
