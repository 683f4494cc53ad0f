"""Analysis in the formats GUIs parse: Leela Zero's ``lz-analyze`` and KataGo's ``kata-analyze`` lines, and the
commands that stream them.

Winrates are from the side to move's point of view (what both formats specify). ``lcb`` is a normal
approximation ``winrate - 1.96 * sqrt(winrate * (1 - winrate) / visits)``: the tree does not keep value
variances."""
from __future__ import annotations

import re
from typing import Callable

import numpy as np

from games.go import GoState, action_to_gtp
from games.position import reopen, to_move
from specmcts.engine.player import winrate_lcb
from specmcts.play.gtp import kata
from specmcts.play.gtp.protocol import GtpError, arity, parse_colour, parse_int

LCB_Z = 1.96
DEFAULT_INTERVAL_CS = 100  # analysis output period when the command gives none (centiseconds)


def format_info(analysis, state: GoState, style: str, min_moves: int = 0, max_moves: int = 0,
                pv: Callable[[int], list[int]] | None = None, ownership=None) -> str:
    """One analysis line (``info move ... info move ...``) in Leela Zero (``lz``) or KataGo (``kata``) style;
    empty when nothing has been searched yet (an empty line would end the GTP answer). ``pv(action)`` gives
    a move's principal variation where ``analysis.pvs`` has none. KataGo style adds each move's ``scoreLead``
    and ``scoreMean`` (the search's mean final score, side to move) when the net has a score head, and
    ``ownership`` (N*N values, side to move, row-major from the top left) at the end when given."""
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
        lcb = max(0.0, winrate_lcb(winrate, visits, LCB_Z))
        prior = max(0.0, float(analysis.prior[a]))
        line = analysis.pvs.get(a) or (pv(a) if pv is not None else [a])
        variation = " ".join(action_to_gtp(size, x) for x in line)
        move = action_to_gtp(size, a)
        if style == "kata":
            score = ""
            if analysis.score is not None:
                s = float(analysis.score[a]) if visits > 0 and np.isfinite(analysis.score[a]) else analysis.root_score
                score = f" scoreLead {s:.6f} scoreMean {s:.6f}"
            parts.append(f"info move {move} visits {visits} utility {2 * winrate - 1:.6f} winrate {winrate:.6f}"
                         f"{score} prior {prior:.6f} lcb {lcb:.6f} order {order} pv {variation}")
        else:
            parts.append(f"info move {move} visits {visits} winrate {round(winrate * 10000)} "
                         f"prior {round(prior * 10000)} lcb {round(lcb * 10000)} order {order} pv {variation}")
    if parts and style == "kata" and ownership is not None:
        parts.append("ownership " + " ".join(f"{v:.6f}" for v in ownership))
    return " ".join(parts)


class AnalyzeCommands:
    """``lz-analyze``, ``kata-analyze`` and their ``genmove_analyze`` forms, GoGui's analysis commands and
    ``policy``: the analysis commands of ``GtpEngine`` (``specmcts.play.gtp.engine``), whose search and state
    they use."""

    def _analysis_args(self, args: list[str]) -> tuple[int, float, int, int, bool, list]:
        """(colour, interval seconds, minmoves, maxmoves, ownership, actions forbidden at the root) of
        ``[colour] [interval] [key value ...]``."""
        colour = self.state.to_play
        interval_cs = DEFAULT_INTERVAL_CS
        min_moves = max_moves = 0
        ownership = False
        forbidden: list = []
        rest = list(args)
        if rest and rest[0].lower() in ("b", "w", "black", "white"):
            colour = parse_colour(rest.pop(0))
        if rest and re.fullmatch(r"\d+", rest[0]):
            interval_cs = parse_int(rest.pop(0), "interval", 0, 360000)
        while rest:
            key = rest.pop(0)
            if key in ("avoid", "allow"):
                forbidden += list(kata.take_avoid_allow(key, rest, self.size, colour))
                continue
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
                if key == "ownership":
                    ownership = value.lower() == "true"
            else:
                raise GtpError(f"syntax error (unknown analysis key {key!r})")
        return colour, interval_cs / 100.0, min_moves, max_moves, ownership, forbidden

    def _emitter(self, state: GoState, style: str, min_moves: int, max_moves: int, want_ownership: bool):
        """The function that writes one analysis line of ``state`` (with the net's ownership for
        ``kata-analyze ... ownership true``, side to move's view)."""
        ownership = None
        if want_ownership and style == "kata" and not state.is_over:
            from specmcts.engine.player import net_ownership

            owned = net_ownership(self.source.net(state.size), [state])
            if owned is None:
                self.log("ownership: this net has no ownership head (fc heads)")
            else:
                ownership = owned[0]

        def emit(analysis):
            text = format_info(analysis, state, style, min_moves, max_moves, self._tree_pv, ownership)
            if text:
                self._write(text + "\n")

        return emit

    def _analyze(self, args, tag: str, style: str) -> None:
        colour, interval, min_moves, max_moves, want_ownership, forbidden = self._analysis_args(args)
        state = to_move(self.state.copy(), colour)
        self._write(f"={tag}\n")
        emit = self._emitter(state, style, min_moves, max_moves, want_ownership)

        try:
            if not state.is_over:
                player = self.player()
                # ``every`` 0 would print on every step: interval 0 means "only when the search stops".
                analysis = player.analyze(state, sims=player.search.max_nodes, stop=self._interrupted,
                                          callback=emit if interval > 0 else None, every=interval or 1e9,
                                          forbidden=forbidden)
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
        _, interval, min_moves, max_moves, want_ownership, _ = self._analysis_args(rest)
        self._write(f"={tag}\n")
        emit = self._emitter(state_for_info, style, min_moves, max_moves, want_ownership)

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
        arity(args, 0)
        state = reopen(self.state.copy())
        if state.is_over:
            raise GtpError("the game is over")
        prior = np.maximum(self._prior(state)[:self.size * self.size], 0.0).reshape(self.size, self.size)
        return "\n".join(" ".join(f"{p:.4f}" for p in row) for row in prior)
