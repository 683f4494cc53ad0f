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
  Keys: ``interval``, ``minmoves``, ``maxmoves``, ``ownership true`` (KataGo style: the net's ownership head,
  N*N values after the last move, side to move's view); ``pvVisits``/... are accepted and ignored. KataGo style
  also reports each move's ``scoreLead``/``scoreMean`` (the search's mean final score) when the net has a score
  head.
- ``lz-genmove_analyze`` / ``kata-genmove_analyze``: a ``genmove`` that streams the same lines while it
  thinks and ends with ``play <vertex>``.

Winrates are from the side to move's point of view (what both formats specify). ``lcb`` is a normal
approximation ``winrate - 1.96 * sqrt(winrate * (1 - winrate) / visits)``: the tree does not keep value
variances.

Positions (``games.position``). ``GoState`` has no undo and no setup stones, so the engine keeps the game as data (``GameLine``:
setup stones, who moves first, the list of ``(colour, action)`` moves) and rebuilds the state by replaying it
(``undo``, ``komi`` changes). GTP lets a colour move twice in a row: the record stores that as is and the
replay inserts a pass for the other colour that does not count towards ending the game. Two passes do not end
a GTP game either: the controller decides, so a later ``play``/``genmove`` continues it. Setup stones
(handicap, SGF ``AB``/``AW``) are placed by ``setup_state``: a position at move 0 with those stones and no
history, like an SGF root with AB/AW. Limit: the rules kernels store at most 2·N² moves per game (moves,
setup passes and inserted passes); past that ``play`` answers ``? illegal move`` and ``genmove`` passes.

Scoring (``final_score``, ``final_status_list``; ``specmcts.engine.player.final_status``, ``games.scoring``): area
scoring after removing dead stones, found from an ownership estimate of the final position: the mean of a
trained net's ownership head and random playouts (the playouts alone for an untrained net or one without the
head). A chain its opponent mostly owns is dead, and so is one left in doubt that sits in the opponent's area
without two eyes. Seki is not recognised (``final_status_list seki`` is always empty). Good enough for
finished games (it agreed with GnuGo's ``final_score`` on 395 of 404 finished 9x9 games, 77 of them with dead
stones; ``tools/scoring_agreement.py``); a referee, not a judge of unfinished fights.

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

The package, by concern: ``protocol`` (parsing, answers, the reader thread), ``engine`` (the game and every
command), ``clock`` (time controls), ``analysis`` (the lines GUIs parse), ``nets`` (which network plays).
"""
from specmcts.play.gtp.clock import Clock
from specmcts.play.gtp.engine import EngineOptions, GtpEngine, run_gtp
from specmcts.play.gtp.nets import FRESH, NetSource
from specmcts.play.gtp.protocol import GtpError

__all__ = ["Clock", "EngineOptions", "FRESH", "GtpEngine", "GtpError", "NetSource", "run_gtp"]
