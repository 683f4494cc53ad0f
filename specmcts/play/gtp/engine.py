"""The GTP engine: the game, every command, the search behind ``genmove`` and analysis, pondering.

Read ``specmcts/play/gtp/__init__.py`` first for what the engine does; this file is the commands."""
from __future__ import annotations

import dataclasses
import sys
import traceback
from dataclasses import dataclass
from typing import Callable, TextIO

import numpy as np

from games.go import BLACK, GoRules, GoState, IllegalMoveError, action_to_gtp
from games.position import GameLine, apply_move, to_move
from games.scoring import DEFAULT_PLAYOUTS
from specmcts.config import AUTO, MAX_SPECULATE
from specmcts.play.gtp import kata
from specmcts.play.gtp.analyze import AnalyzeCommands
from specmcts.play.gtp.clock import Clock
from specmcts.play.gtp.nets import NetSource
from specmcts.play.gtp.setup_commands import SetupCommands
from specmcts.play.gtp.protocol import (MAX_LINE, PROTOCOL_VERSION, GtpError, LineQueue, TooLong, answer, arity, clean_line,
                                   colour_letter, one_line, parse_colour, parse_float, parse_int, parse_vertex,
                                   split_command)
from specmcts.engine.player import ResignStreak, final_status

ENGINE_NAME = "specmcts"
MAX_KOMI = 1000.0  # the kernels keep komi in half points in an int32; anything this large is a typo anyway
LOG_PREFIX = "specmcts gtp:"
_STREAMING = frozenset({"lz-analyze", "kata-analyze", "lz-genmove_analyze", "kata-genmove_analyze"})


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




class GtpEngine(SetupCommands, AnalyzeCommands):
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
        self.record = GameLine(GoRules(size, cfg.game.komi, cfg.game.superko))
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
            "kata-get-rules": self.cmd_kata_get_rules,
            "kata-set-rules": self.cmd_kata_set_rules,
            "kata-get-param": self.cmd_kata_get_param,
            "kata-set-param": self.cmd_kata_set_param,
            "kata-list-params": lambda args: " ".join(kata.PARAMS),
            "kata-raw-nn": self.cmd_kata_raw_nn,
            "lz-setoption": self.cmd_lz_setoption,
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
            from specmcts.engine.evaluator import make_evaluator
            from specmcts.engine.nncache import NNCache
            from specmcts.engine.player import MCTSPlayer

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

    def _set_record(self, record: GameLine) -> None:
        state = record.replay()  # raises before anything changes
        self.record, self.state = record, state
        self._ponder_line = []

    # -- the loop ----------------------------------------------------------------------------------
    def execute(self, raw: str) -> bool:
        """Answer one input line on ``out``; False once ``quit`` was answered."""
        if isinstance(raw, TooLong) or len(raw) > MAX_LINE:
            ident = split_command(clean_line(raw[:64]) or "x")[0] or ""
            self._write(f"?{ident} command too long ({getattr(raw, 'length', len(raw))} bytes, at most {MAX_LINE})\n\n")
            return not self.quit_requested
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
            self._write(f"?{tag} {one_line(str(e))}\n\n")
        except Exception as e:  # a bug must not kill the engine: answer, log, carry on
            self.log(f"internal error in {name!r}: {type(e).__name__}: {e}")
            self.log(" | ".join(traceback.format_exc().splitlines()))
            self._write(f"?{tag} internal error: {one_line(f'{type(e).__name__}: {e}')}\n\n")
        else:
            if result is not None:  # streaming commands answered themselves
                self._write(answer(tag, result))
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
        arity(args, 1)
        return "true" if args[0] in self.commands else "false"

    def cmd_list_commands(self, args):
        return "\n".join(self.commands)

    def cmd_quit(self, args):
        self.quit_requested = True
        return ""

    def cmd_boardsize(self, args):
        arity(args, 1)
        size = parse_int(args[0], "board size")
        if not self.source.supports(size):
            raise GtpError("unacceptable size")
        self._set_record(GameLine(GoRules(size, self.rules.komi, self.rules.superko)))
        return ""

    def cmd_clear_board(self, args):
        arity(args, 0)
        self._set_record(GameLine(self.rules))
        self._resign = ResignStreak(-1.0, 0)  # per colour; thresholds from the options when asked
        self.clock.left.clear()
        return ""

    def cmd_komi(self, args):
        arity(args, 1)
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

    # -- KataGo's and Leela Zero's extensions (specmcts.play.gtp.kata) -------------------------------------------
    def cmd_kata_get_rules(self, args):
        return kata.rules_json(self.rules)

    def cmd_kata_set_rules(self, args):
        if not args:
            raise GtpError("syntax error (expected a rules name or JSON object)")
        self._set_record(dataclasses.replace(self.record, rules=kata.parse_rules(" ".join(args), self.rules)))
        return ""

    def cmd_kata_get_param(self, args):
        arity(args, 1)
        kata.check_param(args[0])
        if args[0] == "maxVisits":
            return str(self.options.visits or self.cfg.search.sims)
        return str(self.player().search.threads)

    def cmd_kata_set_param(self, args):
        arity(args, 2)
        kata.check_param(args[0])
        if args[0] == "maxVisits":
            self.options.visits = parse_int(args[1], "maxVisits", 1, self.options.analysis_visits)
        else:
            self.player().search.threads = parse_int(args[1], "numSearchThreads", 1, 1024)
        return ""

    def cmd_kata_raw_nn(self, args):
        return kata.raw_nn(self.source.net(self.size), self.state, kata.parse_symmetry(args))

    def cmd_lz_setoption(self, args):
        name, value = kata.lz_option(args)
        if name in kata.LZ_VISITS:
            self.options.visits = parse_int(value, name, 1, self.options.analysis_visits)
        elif name not in kata.LZ_NOTHING_TO_CHANGE:
            raise GtpError(f"unknown option {name!r}")
        return ""

    def cmd_play(self, args):
        arity(args, 2)
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
        arity(args, 0)
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
        return self._final_status(self.state).result()

    def _final_status(self, state: GoState):
        return final_status(self.source.net(state.size), state, self.options.playouts)

    def cmd_final_status_list(self, args):
        arity(args, 1)
        which = args[0].lower()
        if which not in ("alive", "dead", "seki"):
            raise GtpError("syntax error (expected alive, dead or seki)")
        if which == "seki":
            return ""
        status = self._final_status(self.state)
        groups = status.dead if which == "dead" else status.alive
        return "\n".join(" ".join(action_to_gtp(self.size, a) for a in stones) for stones in groups)

    # -- time --------------------------------------------------------------------------------------
    def cmd_time_settings(self, args):
        arity(args, 3)
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
            arity(rest, 0)
            self.clock = Clock()
        elif kind == "absolute":
            arity(rest, 1)
            self.clock = Clock("absolute", parse_int(rest[0], "main time", 0))
        elif kind in ("byoyomi", "canadian"):
            arity(rest, 3)
            main = parse_int(rest[0], "main time", 0)
            byo = parse_int(rest[1], "byo-yomi time", 0)
            count = parse_int(rest[2], "byo-yomi periods" if kind == "byoyomi" else "byo-yomi stones", 0)
            self.clock = Clock(kind, main, byo, count) if byo > 0 and count > 0 else Clock("absolute", main)
        else:
            raise GtpError("syntax error (expected none, absolute, byoyomi or canadian)")
        return ""

    def cmd_time_left(self, args):
        arity(args, 3)
        colour = parse_colour(args[0])
        seconds = parse_int(args[1], "time", 0)
        stones = parse_int(args[2], "stones", 0)
        self.clock.left[colour] = (float(seconds), stones)
        return ""

    # -- SGF ---------------------------------------------------------------------------------------
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
        arity(args, 1)
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
            status = self._final_status(state)
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


def run_gtp(cfg, model_path: str | None, options: EngineOptions) -> int:
    """Serve GTP on this process's stdin/stdout. stdout carries GTP only: anything else that a library might
    print goes to stderr for the duration."""
    from specmcts.threads import SEARCH, configure

    threads = configure(cfg, SEARCH)
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
        engine.log(threads.describe())
        engine.player()  # build the net now: the first genmove should not pay for it
        return engine.serve(sys.stdin.buffer, gtp_out)
    finally:
        sys.stdout = saved
