"""``specmcts analysis``: KataGo's JSON analysis engine protocol on stdin/stdout, the subset KaTrain uses.

One query per input line, a JSON object; one response per output line. A query names a game (``moves``,
``initialStones``, ``initialPlayer``, ``komi``, ``boardXSize``/``boardYSize``, ``rules``) and the turns to analyse
(``analyzeTurns``, default the last); each turn is searched for ``maxVisits`` visits (and at most
``overrideSettings.maxTime`` seconds) and answered with ``moveInfos`` (move, visits, winrate, scoreLead,
scoreMean, prior, order, pv, lcb, utility), ``rootInfo``, and on request ``ownership`` (the net's ownership
head), per-move ``ownership`` and ``policy`` (pass last, -1 where illegal); ``reportDuringSearchEvery`` adds
partial reports (``isDuringSearch: true``). Values are from Black's view unless
``overrideSettings.reportAnalysisWinratesAs`` says ``WHITE`` or ``SIDETOMOVE`` (KaTrain forces ``BLACK``).
``avoidMoves`` removes moves at the root (``untilDepth`` 1, what KaTrain sends). Actions: ``terminate``
(``terminateId``, ``turnNumbers``), ``query_version``, ``clear_cache``.

Bad queries get ``{"id", "error", "field"}``; fields we do not use get a ``warning`` and the query proceeds;
nothing is dropped silently and nothing crashes the engine. At the end of input the queued queries are finished,
then the engine exits (KataGo's behaviour).

All queries in flight share one batched ``Search`` per board size (a tree slot each, ``--slots``), so positions of
several queries go to the network together, through one NN cache: what the batched evaluator is for. Rules:
specmcts plays area scoring with positional superko; other rules are answered with a warning.
"""
from __future__ import annotations

import heapq
import json
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, TextIO

import numpy as np

from games.go import AREA_RULES, BLACK, WHITE, GoRules, GoState, IllegalMoveError, action_to_gtp, gtp_to_action
from games.position import apply_move, reopen, setup_state

PROTOCOL_FIELDS = {  # query keys this engine reads
    "id", "moves", "initialStones", "initialPlayer", "rules", "komi", "boardXSize", "boardYSize", "analyzeTurns",
    "maxVisits", "includeOwnership", "includeMovesOwnership", "includePolicy", "includePVVisits", "avoidMoves",
    "allowMoves",
    "reportDuringSearchEvery", "priority", "priorities", "overrideSettings", "action",
}
PERSPECTIVES = ("BLACK", "WHITE", "SIDETOMOVE")
DEFAULT_VISITS = 500


class QueryError(ValueError):
    def __init__(self, message: str, field_name: str | None = None):
        super().__init__(message)
        self.field = field_name


@dataclass(order=True)
class Job:
    """One turn of one query, queued by priority (higher first), then by arrival."""

    sort_key: tuple
    id: str = field(compare=False)
    turn: int = field(compare=False)
    state: GoState = field(compare=False)
    max_visits: int = field(compare=False)
    max_time: float | None = field(compare=False)
    report_every: float | None = field(compare=False)
    ownership: bool = field(compare=False)
    moves_ownership: bool = field(compare=False)
    policy: bool = field(compare=False)
    pv_visits: bool = field(compare=False)
    perspective: str = field(compare=False)
    avoid: list = field(compare=False)
    slot: int = field(default=-1, compare=False)
    started: float = field(default=0.0, compare=False)
    last_report: float = field(default=0.0, compare=False)
    masked: bool = field(default=False, compare=False)
    terminated: bool = field(default=False, compare=False)


def _player(value, field_name: str) -> int:
    if isinstance(value, str) and value.upper() in ("B", "BLACK"):
        return BLACK
    if isinstance(value, str) and value.upper() in ("W", "WHITE"):
        return WHITE
    raise QueryError(f"expected a player B or W, got {value!r}", field_name)


def _vertex(size: int, value, field_name: str) -> int:
    try:
        action = gtp_to_action(size, str(value))
    except ValueError:
        raise QueryError(f"not a move on a {size}x{size} board: {str(value)[:40]!r}", field_name) from None
    if action == size * size + 1:
        raise QueryError("resign is not a move", field_name)
    return action


def _bool(query: dict, key: str) -> bool:
    value = query.get(key, False)
    if not isinstance(value, bool):
        raise QueryError(f"expected true or false, got {value!r}", key)
    return value


def _number(value, key: str, low: float, high: float, integer: bool = False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(value, float)
                                                                          and not math.isfinite(value)):
        raise QueryError(f"expected a number, got {value!r}", key)
    if integer and value != int(value):
        raise QueryError(f"expected an integer, got {value!r}", key)
    if not low <= value <= high:
        raise QueryError(f"must be in [{low:g}, {high:g}], got {value!r}", key)
    return int(value) if integer else float(value)


def parse_query(query: dict, seq: int, default_komi: float, max_visits_cap: int,
                supports: Callable[[int], bool]) -> tuple[list[Job], list[tuple[str, str]]]:
    """The jobs (one per analysed turn) of an analysis query, and its warnings ``(field, message)``."""
    warnings = [(k, "this field is not used by specmcts") for k in query if k not in PROTOCOL_FIELDS]
    for key in ("boardXSize", "boardYSize", "moves"):
        if key not in query:
            raise QueryError(f"'{key}' is required", key)
    x = _number(query["boardXSize"], "boardXSize", 2, 99, integer=True)
    y = _number(query["boardYSize"], "boardYSize", 2, 99, integer=True)
    if x != y:
        raise QueryError(f"only square boards are supported, got {x}x{y}", "boardYSize")
    if not supports(x):
        raise QueryError(f"board size {x} is not supported by the loaded net", "boardXSize")
    rules_spec = query.get("rules", "tromp-taylor")
    name = rules_spec.lower() if isinstance(rules_spec, str) else None
    if name not in AREA_RULES:
        warnings.append(("rules", f"specmcts plays area scoring with positional superko; {json.dumps(rules_spec)[:60]} "
                                  f"is analysed under those rules"))
    komi = _number(query.get("komi", default_komi), "komi", -150, 150)
    if komi * 2 != int(komi * 2):
        raise QueryError(f"komi must be an integer or half-integer, got {komi}", "komi")
    rules = GoRules(x, komi)
    settings = query.get("overrideSettings", {}) or {}
    if not isinstance(settings, dict):
        raise QueryError("expected an object", "overrideSettings")
    perspective = str(settings.get("reportAnalysisWinratesAs", "BLACK")).upper()
    if perspective not in PERSPECTIVES:
        raise QueryError(f"reportAnalysisWinratesAs must be one of {', '.join(PERSPECTIVES)}", "overrideSettings")
    max_time = settings.get("maxTime")
    if max_time is not None:
        max_time = _number(max_time, "overrideSettings", 0.0, 1e9) or None
    for key in settings:
        if key not in ("reportAnalysisWinratesAs", "maxTime", "wideRootNoise"):
            warnings.append(("overrideSettings", f"{key} is not used by specmcts"))
    visits = _number(query.get("maxVisits", DEFAULT_VISITS), "maxVisits", 1, 1e12, integer=True)
    visits = min(visits, max_visits_cap)
    every = query.get("reportDuringSearchEvery")
    if every is not None:
        every = _number(every, "reportDuringSearchEvery", 1e-6, 1e9)

    # the game: setup stones, then the moves, the state at every turn asked for
    stones = query.get("initialStones", []) or []
    if not isinstance(stones, list):
        raise QueryError("expected a list of [player, move]", "initialStones")
    black, white = [], []
    for item in stones:
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise QueryError("expected [player, move] pairs", "initialStones")
        (black if _player(item[0], "initialStones") == BLACK else white).append(_vertex(x, item[1], "initialStones"))
    moves = query["moves"]
    if not isinstance(moves, list) or any(not isinstance(m, (list, tuple)) or len(m) != 2 for m in moves):
        raise QueryError("expected a list of [player, move] pairs", "moves")
    played = [(_player(p, "moves"), _vertex(x, v, "moves")) for p, v in moves]
    first = _player(query["initialPlayer"], "initialPlayer") if "initialPlayer" in query else (
        played[0][0] if played else BLACK)
    turns = query.get("analyzeTurns", [len(played)])
    if not isinstance(turns, list) or not turns or any(isinstance(t, bool) or not isinstance(t, int) for t in turns):
        raise QueryError("expected a non-empty list of turn numbers", "analyzeTurns")
    if any(not 0 <= t <= len(played) for t in turns):
        raise QueryError(f"turn numbers must be in 0..{len(played)}", "analyzeTurns")
    priorities = query.get("priorities")
    if priorities is not None and (not isinstance(priorities, list) or len(priorities) != len(turns)):
        raise QueryError("must be a list as long as analyzeTurns", "priorities")
    priority = _number(query.get("priority", 0), "priority", -1e18, 1e18, integer=True)
    try:
        state = setup_state(rules, black, white, first)
    except ValueError as e:
        raise QueryError(f"initial stones: {e}", "initialStones") from None
    states = {0: state.copy()}
    for i, (colour, action) in enumerate(played):
        try:
            apply_move(state, colour, action)
        except IllegalMoveError as e:
            raise QueryError(f"illegal move {i + 1} ({'B' if colour == BLACK else 'W'} "
                             f"{action_to_gtp(x, action)}): {e}", "moves") from None
        states[i + 1] = state.copy()

    avoid = _avoid(query.get("avoidMoves"), x, warnings) + _avoid(query.get("allowMoves"), x, warnings, allow=True)
    jobs = []
    for k, turn in enumerate(turns):
        at = reopen(states[turn].copy())  # a game two passes ended is analysed as it stands
        p = priority if priorities is None else _number(priorities[k], "priorities", -1e18, 1e18, integer=True)
        jobs.append(Job((-p, seq, k), str(query["id"]), turn, at, visits, max_time, every,
                        _bool(query, "includeOwnership"), _bool(query, "includeMovesOwnership"),
                        _bool(query, "includePolicy"), _bool(query, "includePVVisits"), perspective,
                        [a for colour, a in avoid if colour == at.to_play]))
    return jobs, warnings


def _avoid(spec, size: int, warnings: list, allow: bool = False) -> list[tuple[int, int]]:
    """``avoidMoves`` (or ``allowMoves``: every move but those) as (player, action) pairs prohibited at the
    root."""
    key = "allowMoves" if allow else "avoidMoves"
    if spec is None:
        return []
    if not isinstance(spec, list):
        raise QueryError("expected a list of {player, moves, untilDepth}", key)
    out = []
    for item in spec:
        if not isinstance(item, dict) or not {"player", "moves", "untilDepth"} <= set(item):
            raise QueryError("each entry needs player, moves and untilDepth", key)
        colour = _player(item["player"], key)
        depth = _number(item["untilDepth"], key, 1, 1e9, integer=True)
        if depth > 1:
            warnings.append((key, "untilDepth > 1 is applied at the root only"))
        if not isinstance(item["moves"], list):
            raise QueryError("moves must be a list", key)
        moves = {_vertex(size, m, key) for m in item["moves"]}
        if allow:
            moves = set(range(size * size + 1)) - moves
        out += [(colour, a) for a in sorted(moves)]
    return out


class Board:
    """The search, evaluator, cache and net for one board size, shared by every query of that size."""

    def __init__(self, cfg, size: int, net, slots: int, capacity: int):
        import dataclasses

        from specmcts.engine.evaluator import make_evaluator
        from specmcts.engine.nncache import NNCache
        from specmcts.engine.search import Search, node_budget

        leaves = max(1, cfg.search.leaves_per_tree)
        cfg = dataclasses.replace(cfg, evaluator=dataclasses.replace(cfg.evaluator, max_batch=slots * leaves))
        self.net = net
        self.evaluator = make_evaluator(cfg, size, net)
        self.cache = NNCache.for_board(min(cfg.evaluator.cache_entries, 1 << 20), size)
        self.rules = GoRules(size)
        self.search = Search(self.rules, cfg.search, self.evaluator, self.cache, num_trees=slots,
                             max_nodes=node_budget(capacity, leaves))
        self.free = list(range(slots))[::-1]
        self.active: dict[int, Job] = {}
        self.queue: list[Job] = []

    def ownership(self, states: list[GoState]) -> np.ndarray | None:
        """The net's ownership head for ``states`` ([n, N*N], each from its side to move's view), or None
        for a net without one."""
        from specmcts.engine.player import net_ownership

        return net_ownership(self.net, states)


class AnalysisEngine:
    """Reads queries (``handle``), searches (``step``), writes responses to ``out``; ``serve`` is the loop."""

    def __init__(self, cfg, model_path: str | None = None, slots: int = 8, capacity: int = 100_000,
                 out: TextIO | None = None, log: TextIO | None = None):
        from specmcts.play.gtp.nets import NetSource

        self.cfg = cfg
        self.slots = max(1, slots)
        self.capacity = max(1, capacity)
        self.out = out if out is not None else sys.stdout
        self.log_stream = log if log is not None else sys.stderr
        self.source = NetSource(cfg, model_path, log=self.log)
        self.boards: dict[int, Board] = {}
        self.seq = 0

    def log(self, message: str) -> None:
        print(f"specmcts analysis: {message}", file=self.log_stream, flush=True)

    def write(self, obj: dict) -> None:
        self.out.write(json.dumps(obj, separators=(",", ":"), allow_nan=False) + "\n")
        self.out.flush()

    def board(self, size: int) -> Board:
        if size not in self.boards:
            self.boards[size] = Board(self.cfg, size, self.source.net(size), self.slots, self.capacity)
        return self.boards[size]

    def warm_up(self, size: int) -> None:
        """Build the net and compile the search kernels for ``size`` now, so that the first query's time
        (``maxTime``) is spent searching."""
        b = self.board(size)
        b.search.reset(0, GoState(b.rules))
        b.search.run(np.zeros(1, np.int32), 2)
        b.search.reset(0, GoState(b.rules))

    def busy(self) -> bool:
        return any(b.active or b.queue for b in self.boards.values())

    # -- queries -------------------------------------------------------------------------------------------
    def handle(self, line: str) -> None:
        """One input line: a query, an action, or garbage (answered with an error)."""
        text = line.strip()
        if not text:
            return
        try:
            query = json.loads(text)
        except json.JSONDecodeError as e:
            self.write({"error": f"could not parse the query as JSON: {e.msg} (column {e.colno})"})
            return
        except ValueError as e:  # a number of more than 4,300 digits (Python's limit on int conversion)
            self.write({"error": f"could not parse the query as JSON: {str(e).split(':')[0]}"})
            return
        if not isinstance(query, dict):
            self.write({"error": "a query must be a JSON object"})
            return
        if "id" not in query or not isinstance(query["id"], (str, int)):
            self.write({"error": "'id' is required (a string)", "field": "id"})
            return
        query_id = str(query["id"])
        action = query.get("action")
        try:
            if action is not None:
                self._action(query, query_id, action)
                return
            self.seq += 1
            jobs, warnings = parse_query(query, self.seq, self.cfg.game.komi, self.capacity, self.source.supports)
        except QueryError as e:
            out = {"id": query_id, "error": str(e)}
            if e.field:
                out["field"] = e.field
            self.write(out)
            return
        for key, message in warnings:
            self.write({"id": query_id, "warning": message, "field": key})
        board = self.board(jobs[0].state.size)
        for job in jobs:
            heapq.heappush(board.queue, job)

    def _action(self, query: dict, query_id: str, action) -> None:
        if action == "query_version":
            from specmcts import __version__

            self.write({**query, "version": __version__, "git_hash": "<omitted>"})
        elif action == "clear_cache":
            for b in self.boards.values():
                b.cache.clear()
            self.write(query)
        elif action == "terminate":
            target = query.get("terminateId")
            if target is None:
                raise QueryError("'terminateId' is required", "terminateId")
            turns = query.get("turnNumbers")
            if turns is not None and not isinstance(turns, list):
                raise QueryError("expected a list of turn numbers", "turnNumbers")
            self.write(query)
            self.terminate(str(target), turns)
        else:
            raise QueryError(f"unknown action {str(action)[:40]!r}", "action")

    def terminate(self, target: str, turns: list | None = None) -> None:
        """Stop the queries with id ``target`` (those turns only, if given): queued ones are answered
        ``noResults``, running ones with what they found so far."""
        def hit(job: Job) -> bool:
            return job.id == target and (turns is None or job.turn in turns)

        for b in self.boards.values():
            for job in [j for j in b.queue if hit(j)]:
                self.write({"id": job.id, "isDuringSearch": False, "noResults": True, "turnNumber": job.turn})
            b.queue = [j for j in b.queue if not hit(j)]
            heapq.heapify(b.queue)
            for job in b.active.values():
                if hit(job):
                    job.terminated = True

    # -- search --------------------------------------------------------------------------------------------
    def step(self) -> None:
        """One batch for every board size with work: start queued turns in free slots, search, report."""
        for b in self.boards.values():
            while b.free and b.queue:
                job = heapq.heappop(b.queue)
                job.slot = b.free.pop()
                job.started = job.last_report = time.perf_counter()
                b.search.reset(job.slot, job.state)
                b.active[job.slot] = job
            if not b.active:
                continue
            slots = np.array(sorted(b.active), np.int32)
            targets = np.array([b.active[s].max_visits for s in slots])
            want = b.search.wanted(slots, targets)
            want[b.search.full(slots)] = 0
            if want.any():
                b.search.step(slots, want)
            now = time.perf_counter()
            for s, w in zip(slots, want):
                job = b.active[int(s)]
                if not job.masked and b.search.root_expanded(int(s)):
                    self._mask(b, job)
                done = (w == 0 or job.terminated
                        or (job.max_time is not None and now - job.started >= job.max_time)
                        or b.search.completed(int(s)) >= job.max_visits)
                if done:
                    self.write(self.response(b, job, during=False))
                    del b.active[int(s)]
                    b.free.append(int(s))
                elif job.report_every is not None and now - job.last_report >= job.report_every:
                    job.last_report = now
                    self.write(self.response(b, job, during=True))

    def _mask(self, b: Board, job: Job) -> None:
        """``avoidMoves`` at the root: those moves become illegal there (unless that leaves none)."""
        job.masked = True
        if job.avoid:
            b.search.restrict_root(job.slot, job.avoid)

    # -- responses -----------------------------------------------------------------------------------------
    def response(self, b: Board, job: Job, during: bool) -> dict:
        from specmcts.engine.player import analysis_of, winrate_lcb

        state = job.state
        size = state.size
        a = analysis_of(b.search, job.slot, job.started, pv_moves=b.rules.num_actions)
        # the report's view: +1 keeps the side to move's numbers, -1 turns them to the other side's
        sign = 1.0
        if job.perspective == "BLACK" and state.to_play == WHITE or job.perspective == "WHITE" and state.to_play == BLACK:
            sign = -1.0

        def view(winrate: float, score: float) -> tuple[float, float]:
            return (winrate if sign > 0 else 1.0 - winrate), sign * score

        infos = []
        ranked = a.ranked()
        for order, action in enumerate(ranked):
            n = int(a.counts[action])
            q = float(a.q[action]) if np.isfinite(a.q[action]) else a.root_value
            s = float(a.score[action]) if np.isfinite(a.score[action]) else a.root_score
            winrate, lead = view((q + 1.0) / 2.0, s)
            pv = a.pvs.get(action) or [action]
            info = {"move": action_to_gtp(size, action), "visits": n, "winrate": winrate, "scoreLead": lead,
                    "scoreMean": lead, "scoreSelfplay": lead, "prior": max(0.0, float(a.prior[action])),
                    "utility": 2.0 * winrate - 1.0, "lcb": winrate_lcb(winrate, n), "order": order,
                    "pv": [action_to_gtp(size, x) for x in pv]}
            if job.pv_visits:
                info["pvVisits"] = b.search.pv_visits(job.slot, pv)
            infos.append(info)
        root_winrate, root_lead = view(a.winrate, a.root_score)
        raw_winrate, raw_lead = view(a.raw_winrate, a.raw_score)
        out = {"id": job.id, "isDuringSearch": during, "turnNumber": job.turn, "moveInfos": infos,
               "rootInfo": {"winrate": root_winrate, "scoreLead": root_lead, "scoreSelfplay": root_lead,
                            "rawWinrate": raw_winrate, "rawLead": raw_lead, "rawScoreSelfplay": raw_lead,
                            "utility": 2.0 * root_winrate - 1.0, "visits": a.sims,
                            "lcb": winrate_lcb(root_winrate, max(a.sims, 1)),
                            "thisHash": f"{state.hash:016X}", "currentPlayer": "B" if state.to_play == BLACK else "W"}}
        if job.ownership or job.moves_ownership:
            children = []
            for action in ranked if job.moves_ownership else []:
                child = state.copy()
                child.play(action)
                children.append(child)
            owned = b.ownership([state] + children)
            if owned is not None:
                if job.ownership:
                    out["ownership"] = [round(float(v), 6) for v in sign * owned[0]]
                for info, row in zip(infos, owned[1:]):  # after the move: the other side moves there
                    info["ownership"] = [round(float(v), 6) for v in -sign * row]
        if job.policy:
            out["policy"] = [float(p) if p >= 0 else -1.0 for p in a.prior]
        return out

    # -- the loop ------------------------------------------------------------------------------------------
    def serve(self, stdin=None) -> int:
        """Answer queries until the end of input, then finish what is queued."""
        from specmcts.play.gtp.protocol import LineQueue

        lines = LineQueue(stdin if stdin is not None else sys.stdin.buffer)
        ended = False
        while True:
            while not ended and (lines.pending() or not self.busy()):
                line = lines.get()
                if line is None:
                    ended = True
                    break
                self.handle(line)
            if not self.busy():
                if ended:
                    return 0
                continue
            self.step()


def run_analysis(cfg, model_path: str | None, slots: int, capacity: int) -> int:
    """``specmcts analysis`` on this process's stdin/stdout; anything a library prints goes to stderr."""
    from specmcts.stopping import die_with_parent

    from specmcts.threads import SEARCH, configure

    die_with_parent()  # KaTrain starts us through a shell and terminates the shell: do not outlive it
    configure(cfg, SEARCH)
    out = sys.stdout
    saved, sys.stdout = sys.stdout, sys.stderr
    try:
        engine = AnalysisEngine(cfg, model_path, slots=slots, capacity=capacity, out=out)
        engine.warm_up(cfg.game.board)
        engine.log(f"ready: {slots} positions at once, at most {capacity} visits each; one JSON query per line")
        return engine.serve(sys.stdin.buffer)
    finally:
        sys.stdout = saved
