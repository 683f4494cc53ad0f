"""The GTP commands that set a game up: ``loadsgf`` and ``printsgf``, and the handicap commands
(``fixed_handicap``, ``place_free_handicap``, ``set_free_handicap``), as a part of ``GtpEngine``
(``specmcts.play.gtp.engine``), whose state they use (``record``, ``rules``, ``source``, ``log``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from games.go import BLACK, WHITE, IllegalMoveError, action_to_gtp
from games.position import GameLine, setup_state
from specmcts.play.gtp.protocol import GtpError, arity, parse_int, parse_vertex

MAX_SGF_BYTES = 4 << 20  # loadsgf refuses bigger files (and anything that is not a regular file)
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


class SetupCommands:
    """loadsgf, printsgf and the handicap commands of ``GtpEngine``."""

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
        record = GameLine(game.rules, list(game.setup_black), list(game.setup_white), game.first_player,
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
        result = self._final_status(self.state).result() if ended else "?"
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
        record = GameLine(self.rules, sorted(points), [], WHITE)
        try:
            self._set_record(record)
        except ValueError as e:
            raise GtpError(f"bad vertex list ({e})") from None
        return " ".join(action_to_gtp(self.size, a) for a in sorted(points))

    def _max_handicap(self) -> int:
        # setup_state needs 2 * stones moves of the 2 * N^2 the kernels store: keep most of them for the game
        return self.size * self.size // 4

    def cmd_fixed_handicap(self, args):
        arity(args, 1)
        stones = parse_int(args[0], "number of stones")
        self._require_empty()
        return self._place_handicap(fixed_handicap_points(self.size, stones))

    def cmd_place_free_handicap(self, args):
        arity(args, 1)
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
