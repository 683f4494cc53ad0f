"""The inter-decision pipeline: search future moves speculatively while the current one finishes.

Each game owns a *speculation tree* of levels, each a search in its own tree slot: level 0 searches the
move the game is at (the committed position), a level at depth ``d`` searches the position reached by
moves guessed at the levels above it. A move's ``sims`` simulations are cut into ``stages`` equal stages
(``k + 1`` by default, the paper's); when a level crosses a stage boundary it predicts its move from the
partial visit counts (the same pick rule, and for temperature moves the same pre-drawn uniform, as the
final pick) and ranks its candidates: the prediction, then the other moves by visits. Levels at depth
``< k`` propose children for their ``width`` best candidates; each game runs at most ``trees`` searches
at once, and they go to the positions most likely to be reached (the product of calibrated odds along the
path), so the tree is deep where predictions are sure and wide where they are not. Width 1 is the paper's
chain. A greedy move whose lead cannot be caught with the simulations left is *sure*: its child gets odds 1
and never rolls back.

When level 0 finishes, the caller picks the real move and calls ``advance``: the child rooted at that move
becomes level 0 (commit; its tree simply continues, and so does everything speculated below it), its
siblings are thrown away; without such a child level 0 restarts at the true position (rollback). NN-cache
entries stay valid either way.

Exactness: a tree's batches depend only on the tree (``select_leaves`` takes a tree's batch whole or not
at all, and ``Search.wanted`` depends only on its own counts), noise and uniforms are drawn per
(game, move number), so with a deterministic evaluator a level that is committed has searched exactly
what a fresh search at k = 0 would have: the game records are identical for every depth, width, budget
and stage count. The odds only decide which searches run, never what a search does.

The scheduler is a thin layer over ``Search``: it decides which slots step and with which roots; all
per-node work stays in the kernels. Every level 0 comes first in a batch, then the likeliest speculation,
so when the evaluator batch is full the least likely trees are the ones that wait.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Hashable, Protocol

import numpy as np

from games.go import GoState
from specmcts.engine.search import Search

PHASES = ("opening", "middle", "end")


def game_phase(move_number: int, size: int) -> str:
    """Opening before N*N/4 moves (20 on 9x9), end from N*N moves on (81 on 9x9), middle between."""
    if move_number < size * size // 4:
        return "opening"
    if move_number < size * size:
        return "middle"
    return "end"


def correct_from_stage(stage_predictions: list, action: int, k: int) -> int:
    """The first stage J from which every prediction of a move was the final ``action`` (k + 1: never).

    ``stage_predictions`` holds (stage, guess) in order; a boundary passed in the same batch as a later one
    has no entry of its own and takes the later guess. This is the quantity the analytical model needs:
    the speculative child rooted at the right move lives from stage J on."""
    return right_from_stage([(stage, guess == action) for stage, guess in stage_predictions], k)


def right_from_stage(stage_right: list, k: int) -> int:
    """The first stage J from which every boundary was right (k + 1: never), from (stage, right) pairs in
    order; a boundary without an entry (passed in the same batch as a later one) takes the later entry."""
    right_at = [None] * (k + 2)
    previous = 0
    for stage, right in stage_right:
        for j in range(previous + 1, stage + 1):
            right_at[j] = right
        previous = stage
    first = k + 1
    for j in range(k, 0, -1):
        if not right_at[j]:
            break
        first = j
    return first


@dataclass
class RootSetup:
    """How a search of one move starts: its simulation budget and its root randomness."""

    sims: int
    noise: np.ndarray | None = None  # Dirichlet noise [A] mixed into the root priors (PUCT root)
    noise_fraction: float = 0.0
    gumbel: np.ndarray | None = None  # Gumbel noise [A]: given, the root is a Gumbel root halving over ``sims``
    no_pass: bool = False  # the root may not pass while it has another move (self-play's early moves)


class MovePolicy(Protocol):
    """How a game turns a search into a move; the pipeline uses it for predictions too."""

    def pick(self, game: Hashable, move_number: int, search: Search, slot: int) -> int:
        """The move from the (partial or final) search in ``slot`` at ``move_number``; must be a pure function
        of the tree and (game, move number) so a prediction from the final tree equals the real pick."""

    def root(self, game: Hashable, state: GoState) -> RootSetup:
        """Budget and randomness of a search rooted at ``state``; a pure function of (game, move number),
        however often that position is searched."""

    def greedy(self, game: Hashable, move_number: int) -> bool:
        """Whether the move is the most visited root action (lowest on ties): then a lead larger than the
        simulations left decides it before the search ends (a sure prediction)."""


RANKS = 4  # candidates per boundary the calibration tells apart (rank 0: the policy's pick; then by visits)
SHARE_EDGES = np.array([0.1, 0.25, 0.5, 0.75])  # visit-share buckets of the calibration
PROGRESS_BUCKETS = 4  # stage boundaries pooled by how far the search is (quarters of its simulations)
# Prior odds [rank, share bucket], measured on 9x9 with a trained 3x32 net (800 sims, 16 stages): the
# policy's pick becomes the move 0.65-0.95 of the time whatever its share; the runner-up 0.1-0.3; the rest
# rarely. Each cell then learns from the moves played.
PRIOR_ODDS = np.array([[0.60, 0.70, 0.75, 0.85, 0.95],
                       [0.03, 0.10, 0.30, 0.30, 0.30],
                       [0.01, 0.03, 0.05, 0.05, 0.05],
                       [0.01, 0.02, 0.03, 0.03, 0.03]])
PRIOR_WEIGHT = 4.0  # the prior counts as this many observed moves
KEEP = 2.0  # a running search keeps its slot against a new one unless that one is this much likelier


class Calibration:
    """How often a candidate seen at a stage boundary became the move actually played, learned online.

    A candidate is described by the game phase, how far its search was (the stage boundary, pooled into
    ``PROGRESS_BUCKETS``), its rank among the candidates (0: what the move policy picks from the partial
    counts, then by visits) and its share of the visits so far (bucketed by ``SHARE_EDGES``). Each cell
    starts from ``PRIOR_ODDS`` with weight ``PRIOR_WEIGHT`` and counts every move that is played. The odds
    decide which speculative searches run (the budget goes to the likeliest), never what a search does, so
    they cannot touch exactness."""

    def __init__(self, stages: int):
        self.stages = stages
        shape = (len(PHASES), PROGRESS_BUCKETS, RANKS, len(SHARE_EDGES) + 1)
        self.hits = np.zeros(shape)
        self.seen = np.zeros(shape)

    def _cells(self, phase: str, stage: int, shares: np.ndarray) -> tuple:
        ranks = np.minimum(np.arange(len(shares)), RANKS - 1)
        buckets = np.searchsorted(SHARE_EDGES, shares, side="right")
        progress = min(PROGRESS_BUCKETS - 1, PROGRESS_BUCKETS * stage // self.stages)
        return PHASES.index(phase), progress, ranks, buckets

    def odds(self, phase: str, stage: int, shares: np.ndarray) -> np.ndarray:
        """P(move = candidate) for candidates ranked 0, 1, ... with these visit shares."""
        cells = self._cells(phase, stage, shares)
        prior = PRIOR_ODDS[cells[2], cells[3]]
        return (self.hits[cells] + PRIOR_WEIGHT * prior) / (self.seen[cells] + PRIOR_WEIGHT)

    def record(self, phase: str, stage: int, actions: np.ndarray, shares: np.ndarray, played: int) -> None:
        cells = self._cells(phase, stage, shares)
        np.add.at(self.seen, cells, 1.0)
        np.add.at(self.hits, cells, (actions == played).astype(float))


@dataclass(eq=False)
class Level:
    """One search of the speculation tree: the committed move (depth 0) or a guess below it."""

    slot: int
    state: GoState  # the root position of this level's search
    via: int  # the parent's action that leads here (-1 at depth 0)
    parent: "Level | None" = None
    depth: int = 0
    boundaries: list = field(default_factory=list)  # boundaries[j]: simulations at stage boundary j
    stage: int = 1  # next stage boundary to cross (1..boundaries)
    stage_predictions: list = field(default_factory=list)  # (stage, predicted action)
    seen: list = field(default_factory=list)  # (stage, ranked candidate actions, their visit shares, sims done)
    candidates: list = field(default_factory=list)  # [(action, odds)]: moves a child may start from
    children: dict = field(default_factory=dict)  # action -> Level
    odds: float = 1.0  # P(the parent plays ``via``), as far as the parent's search tells
    path: float = 1.0  # P(this position is reached): the product of the odds above it
    greedy: bool = False  # the move is the most visited one: a big enough lead decides it early
    decided: int = -1  # the move, once no simulation left can change it (sure), else -1
    decided_at: int = -1  # simulations done when it was decided


def walk(level: Level) -> list[Level]:
    """``level`` and everything speculated below it, parents before children."""
    out, todo = [], [level]
    while todo:
        lv = todo.pop()
        out.append(lv)
        todo.extend(reversed(list(lv.children.values())))
    return out


def plan_tree(levels: list, k: int, trees: int, keep: float = KEEP) -> tuple[set, list]:
    """The budget rule of the speculation tree, over ``levels`` (``walk`` order, the head first; anything with
    ``parent``, ``depth``, ``odds``, ``path``, ``candidates`` and ``children``): refresh each level's path odds,
    then keep or start the ``trees - 1`` likeliest searches below the head. A running level scores ``keep``
    times its path odds (near-ties do not churn); a new child needs a kept parent and one of its ``width``
    candidates. Returns (ids of the levels kept, the head's included; [(parent, action, odds)] to start).
    Shared by ``Pipeline`` and the tree model (``specmcts.bench.spec_model.simulate_tree``)."""
    for level in levels[1:]:
        level.path = level.parent.path * level.odds
    options = []  # (-score, depth, kind, index); kind 0: a running level, 1: a new child
    proposals = []
    for i, level in enumerate(levels):
        if i and level.odds > 0:
            options.append((-level.path * keep, level.depth, 0, i))
        if level.depth < k:
            for action, odds in level.candidates:
                if action not in level.children:
                    options.append((-level.path * odds, level.depth + 1, 1, len(proposals)))
                    proposals.append((level, action, odds))
    options.sort()
    kept, start, room = {id(levels[0])}, [], trees - 1
    for _, _, kind, i in options:
        if room <= 0:
            break
        parent = levels[i].parent if kind == 0 else proposals[i][0]
        if id(parent) not in kept:
            continue
        if kind == 0:
            kept.add(id(levels[i]))
        else:
            start.append(proposals[i])
        room -= 1
    return kept, start


@dataclass
class SpeculationStats:
    boundaries: int = 0  # stage boundaries per search, 1..boundaries (k at the default k + 1 stages)
    predictions: np.ndarray = None  # [boundaries + 1] predictions made at stage boundary j (index 1..boundaries)
    correct: np.ndarray = None  # [boundaries + 1] of those, equal to the final move
    phase_predictions: dict = None
    phase_correct: dict = None
    spawned: int = 0  # speculative searches started
    committed: int = 0  # speculative searches that became the real one
    rolled_back: int = 0  # speculative subtrees thrown away (a misprediction, or the budget went elsewhere)
    wasted_sims: int = 0  # simulations done in searches thrown away
    useful_sims: int = 0  # simulations of searches that decided a move
    correct_from: np.ndarray = None  # [boundaries + 2] moves whose predictions were right from stage J on
    #                                  (J = boundaries + 1: never)
    within_from: np.ndarray = None  # [RANKS + 1, boundaries + 2] [w, J]: moves among the top w candidates from J on
    sure: int = 0  # searches whose move was decided before their last simulation (the lead could not be caught)
    sure_sims_left: int = 0  # simulations those searches still had to do when their move was decided
    sure_wrong: int = 0  # sure moves that were not played (a resignation aside): must stay 0
    sure_moves: int = 0  # moves played whose search had been sure before its end
    widest: int = 0  # most children one level had at once
    deepest: int = 0  # deepest level started

    def __post_init__(self):
        b = self.boundaries
        self.correct_from = np.zeros(b + 2, np.int64)
        self.within_from = np.zeros((RANKS + 1, b + 2), np.int64)
        self.predictions = np.zeros(b + 1, np.int64)
        self.correct = np.zeros(b + 1, np.int64)
        self.phase_predictions = {p: 0 for p in PHASES}
        self.phase_correct = {p: 0 for p in PHASES}

    def accuracy_by_stage(self) -> list[float]:
        return [float(self.correct[j] / self.predictions[j]) if self.predictions[j] else float("nan")
                for j in range(1, self.boundaries + 1)]

    def accuracy_by_phase(self) -> dict[str, float]:
        return {p: (self.phase_correct[p] / self.phase_predictions[p]) if self.phase_predictions[p] else float("nan")
                for p in PHASES}

    def accuracy(self) -> float:
        n = int(self.predictions.sum())
        return float(self.correct.sum() / n) if n else float("nan")

    def waste_fraction(self) -> float:
        total = self.wasted_sims + self.useful_sims
        return self.wasted_sims / total if total else 0.0


class Pipeline:
    """Schedules the searches of many games, up to ``k`` moves deep, over one ``Search``.

    Each game owns a *speculation tree* of levels. Level 0 searches the committed position; a level at
    depth ``d < k`` that has crossed a stage boundary (or whose move is already sure) proposes children for
    its ``width`` best candidates, each a search of the position after that move. ``trees`` bounds the
    searches a game runs at once (the row budget divided by the leaves per tree): they go to the likeliest
    positions, the product of the calibrated odds along the path, so the tree grows deep where the searches
    are sure and wide where they are not. ``width`` 1 is the paper's chain.

    Usage (one process, many games)::

        pipe.start(game, state)                 # a game joins at its current position
        while ...:
            for game in pipe.ready():           # level 0 finished: decide the move
                counts = pipe.visit_counts(game)
                ...
                pipe.advance(game, action, state_after or None)
            pipe.step()                         # one evaluator batch over every level of every game
    """

    def __init__(self, search: Search, k: int, policy: MovePolicy, tree_reuse: bool = False, width: int = 1,
                 trees: int = 0, sure: bool = True, stages: int = 0):
        if k < 0:
            raise ValueError("speculation depth k must be >= 0")
        if width < 1:
            raise ValueError("speculation width must be >= 1")
        self.search = search
        self.k = k
        self.policy = policy
        self.width = width
        self.trees = max(1, trees or k + 1)  # searches per game at once, level 0 included
        self.sure = sure and k > 0
        # Reusing the played move's subtree keeps more search but breaks exactness across k (a committed
        # speculative tree is fresh, a reused one is not): the lossless guarantee holds with fresh trees.
        self.tree_reuse = tree_reuse
        # a search's simulations are cut into `stages` equal stages (default k + 1, the paper's); each
        # boundary between two is a prediction, and a place where the tree below may change
        self.stages = max(2, stages or k + 1) if k > 0 else 1
        self.boundaries = self.stages - 1
        self.stats = SpeculationStats(boundaries=self.boundaries)
        self.calibration = Calibration(self.stages)
        self.heads: dict[Hashable, Level] = {}
        self.traces: list | None = None  # a list: every move played leaves its trace (specmcts/bench/spec_model.py)
        # a list: every move played leaves (perf_counter seconds, "commit" | "rollback", game, move number):
        # commit, a speculated child became the search; rollback, nothing speculated the move, it starts afresh
        self.events: list | None = None
        self.free_slots: list[int] = list(range(search.num_trees - 1, -1, -1))
        self._order = None  # cached slot order, rebuilt when levels change
        self._slot_next_event = np.zeros(search.num_trees, np.int64)
        self._slot_target = np.zeros(search.num_trees, np.int64)  # each slot's simulation budget
        # search.overlap: two batches in flight, over disjoint trees, in alternating lanes: each step starts
        # the batch of the trees not in flight, then completes the other one (and the stage boundaries, the
        # moves decided meanwhile), so the CPU works while the device computes
        self.overlap = len(search.lanes) > 1
        self._inflight = None  # the batch started by the last step (overlap)
        self._flying = np.zeros(search.num_trees, np.bool_)  # its slots
        self._lane = 0

    # -- games -----------------------------------------------------------------------------------
    def start(self, game: Hashable, state: GoState) -> None:
        if game in self.heads:
            raise ValueError(f"game {game!r} is already in the pipeline")
        self.heads[game] = self._open(game, state, via=-1, parent=None)
        self._order = None

    def finish(self, game: Hashable) -> None:
        """Drop a game (finished or abandoned) and everything it had in flight."""
        head = self.heads.pop(game, None)
        if head is not None:
            for level in walk(head):
                self._close(level, wasted=True)
        self._order = None

    def __len__(self) -> int:
        return len(self.heads)

    def root(self, game: Hashable) -> GoState:
        return self.heads[game].state

    def slot(self, game: Hashable) -> int:
        return self.heads[game].slot

    def visit_counts(self, game: Hashable) -> np.ndarray:
        return self.search.visit_counts(self.heads[game].slot)

    def root_value(self, game: Hashable) -> float:
        return self.search.root_value(self.heads[game].slot)

    def live(self, game: Hashable) -> list[Level]:
        """The searches ``game`` runs now, level 0 first."""
        return walk(self.heads[game])

    def ready(self) -> list:
        """Games whose level-0 search has all its simulations."""
        if self._order is None:
            self._rebuild()
        return [self._head_games[i] for i in self.search.reached(self._head_slots, self._slot_target)]

    def _rebuild(self) -> None:
        """Slot order for the batch (every level 0 first, then the likeliest speculation), after changes."""
        self._head_games = list(self.heads)
        self._head_slots = np.array([h.slot for h in self.heads.values()], np.int32)
        self._slot_level = {}
        below = []
        for game, head in self.heads.items():
            for level in walk(head):
                self._slot_level[level.slot] = (game, level)
                if level is not head:
                    below.append(level)
        below.sort(key=lambda lv: (-lv.path, lv.depth))
        self._order = np.concatenate([self._head_slots, np.array([lv.slot for lv in below], np.int32)])
        watch = [s for s, (_, lv) in self._slot_level.items() if lv.greedy and lv.decided < 0] if self.sure else []
        self._watch = np.array(watch, np.int32)

    def advance(self, game: Hashable, action: int, state_after: GoState | None) -> bool:
        """Level 0 of ``game`` played ``action``. ``state_after`` is the new position, or None when the
        game ended (then the game leaves the pipeline). Returns True if speculation had searched it."""
        head = self.heads[game]
        if self.events is not None and state_after is not None and not state_after.is_over:
            self.events.append((time.perf_counter(), "commit" if action in head.children else "rollback", game,
                                head.state.move_number))
        self._score_predictions(head, action)
        self.stats.useful_sims += self.search.completed(head.slot)
        self._order = None
        if state_after is None or state_after.is_over:
            for level in walk(head):
                self._close(level, wasted=level is not head)
            del self.heads[game]
            return False
        child = head.children.pop(action, None)
        for other in head.children.values():
            self.stats.rolled_back += 1
            for level in walk(other):
                self._close(level, wasted=True)
        head.children.clear()
        if child is not None:
            self.stats.committed += 1
            self._close(head, wasted=False)
            child.parent, child.odds, child.path = None, 1.0, 1.0
            for level in walk(child):
                level.depth -= 1
            self.heads[game] = child
            self._refresh_leaves(game, child)
            self._plan(game)
            return True
        if self.tree_reuse:
            # the played move's subtree becomes the new tree (KataGo-style); opened before the old slot is freed
            slot = self.free_slots.pop()
            setup = self.policy.root(game, state_after)
            self.search.reuse(head.slot, action, slot, state_after, setup.noise, setup.noise_fraction, setup.no_pass)
            fresh = self._level(game, slot, state_after, -1, None, setup.sims)
            self._close(head, wasted=False)
            self.heads[game] = fresh
            return False
        self._close(head, wasted=False)
        self.heads[game] = self._open(game, state_after, via=-1, parent=None)
        return False

    # -- the batch -------------------------------------------------------------------------------
    def step(self) -> int:
        """One evaluator batch over all levels (level 0 of every game first), then stage boundaries and
        sure moves, then each touched game's speculation tree is planned again."""
        if self._order is None:
            self._rebuild()
        slots = self._order
        if self.overlap:
            n, slots = self._step_overlapped(slots)
        else:
            if len(slots) == 0:
                return 0
            want = self.search.wanted(slots, self._slot_target[slots])
            n = self.search.step(slots, want)
        if self.k == 0 or len(slots) == 0:
            return n
        touched = set()
        watch = self._watch
        if self._inflight is not None and len(watch):  # a search in flight: its counts are about to change
            watch = watch[~self._flying[watch]]
        crossed, sure, best, left = self.search.stage_events(slots, self._slot_next_event, watch, self._slot_target)
        for s in crossed.tolist():
            game, level = self._slot_level[s]
            if self._cross(game, level):
                touched.add(game)
        for i, b, lf in zip(sure.tolist(), best.tolist(), left.tolist()):
            game, level = self._slot_level[int(watch[i])]
            self._decide(level, b, lf)
            touched.add(game)
        for game in touched:
            self._plan(game)
        return n

    def _step_overlapped(self, order: np.ndarray) -> tuple[int, np.ndarray]:
        """Start the batch of the trees (in ``order``) not in flight, then complete the batch in flight.
        With nothing in flight only the first half of them starts, so that two batches alternate. Each tree's
        own batches are the same as without overlap (the same leaves asked at the same counts): records are
        unchanged. Returns (leaves completed, the trees now idle: their stage boundaries are checked)."""
        began = time.perf_counter()
        free = order if self._inflight is None else order[~self._flying[order]]
        started = None
        if len(free):
            want = self.search.wanted(free, self._slot_target[free])
            ask = want > 0
            free, want = free[ask], want[ask]
            if self._inflight is None and len(free) >= 2:
                half = (len(free) + 1) // 2
                free, want = free[:half], want[:half]
            if len(free):
                if self._inflight is not None:
                    self.search.stats.overlapped_steps += 1
                started = self.search.start(self._lane, free, want)
                self._lane ^= 1
        n = self._drain()
        if started is None:
            idle = order
        else:
            self._inflight = started
            self._flying[started.slots] = True
            idle = order[~self._flying[order]]
        if self.search.timeline is not None:
            self.search.timeline.append(("step", -1, began, time.perf_counter()))
        return n, idle

    def _drain(self) -> int:
        """Complete the batch in flight, if any (overlap); returns its leaves."""
        batch, self._inflight = self._inflight, None
        if batch is None:
            return 0
        self._flying[batch.slots] = False
        return self.search.finish(batch)

    def _drain_if(self, levels) -> None:
        """Complete the batch in flight first if one of ``levels`` is in it: before a level closes (its slot may
        be reset and reused). A level in flight may otherwise be read meanwhile: its counts are those of its
        completed simulations."""
        if self._inflight is not None and any(self._flying[level.slot] for level in levels):
            self._drain()

    # -- internals -------------------------------------------------------------------------------
    def _open(self, game: Hashable, state: GoState, via: int, parent: Level | None) -> Level:
        slot = self.free_slots.pop()
        setup = self.policy.root(game, state)
        self.search.reset(slot, state, setup.noise, setup.noise_fraction, setup.gumbel,
                          setup.sims if setup.gumbel is not None else 0, no_pass=setup.no_pass)
        return self._level(game, slot, state, via, parent, setup.sims)

    def _level(self, game, slot: int, state: GoState, via: int, parent: Level | None, sims: int) -> Level:
        """A level searching ``sims`` simulations in ``slot``: its budget cut into ``stages`` equal stages."""
        bounds = [int(np.ceil(sims * j / self.stages)) for j in range(self.stages)]
        level = Level(slot=slot, state=state, via=via, parent=parent, boundaries=bounds,
                      depth=0 if parent is None else parent.depth + 1,
                      greedy=self.k > 0 and self.policy.greedy(game, state.move_number))
        self._slot_target[slot] = sims
        self._slot_next_event[slot] = bounds[1] if self.k > 0 else np.iinfo(np.int64).max
        return level

    def _close(self, level: Level, wasted: bool) -> None:
        self._drain_if((level,))
        if wasted:
            self.stats.wasted_sims += self.search.completed(level.slot)
        self.free_slots.append(level.slot)

    def _cross(self, game, level: Level) -> bool:
        """``level`` reached its next stage boundary (or several): predict, and rank its candidates."""
        done = self.search.completed(level.slot)
        crossed = level.stage
        while crossed <= self.boundaries and done >= level.boundaries[crossed]:
            crossed += 1
        if crossed == level.stage:
            return False
        stage = crossed - 1  # the latest boundary passed
        level.stage = crossed
        self._slot_next_event[level.slot] = level.boundaries[crossed] if crossed <= self.boundaries else np.iinfo(np.int64).max
        guess = self.policy.pick(game, level.state.move_number, self.search, level.slot)
        level.stage_predictions.append((stage, guess))
        actions, shares = self._ranked(level, guess)
        level.seen.append((stage, actions, shares, done))
        if level.decided < 0:
            self._candidates(level, stage, actions, shares)
        return True

    def _ranked(self, level: Level, guess: int) -> tuple[np.ndarray, np.ndarray]:
        """The policy's pick, then the other visited moves by visits: actions and visit shares."""
        return self.search.ranked(level.slot, guess, max(RANKS, self.width) - 1)

    def _candidates(self, level: Level, stage: int, actions: np.ndarray, shares: np.ndarray) -> None:
        phase = game_phase(level.state.move_number, level.state.size)
        odds = self.calibration.odds(phase, stage, shares)
        level.candidates = list(zip(actions[:self.width].tolist(), odds[:self.width].tolist()))
        current = dict(level.candidates)
        for action, child in level.children.items():
            child.odds = current.get(action, 0.0)

    def _decide(self, level: Level, action: int, left: int) -> None:
        """No simulation left can change ``level``'s move: its child there is sure, the others go."""
        level.decided = action
        level.decided_at = int(self._slot_target[level.slot]) - left
        level.candidates = [(action, 1.0)]
        for a, child in level.children.items():
            child.odds = 1.0 if a == action else 0.0
        self.stats.sure += 1
        self.stats.sure_sims_left += left
        self._order = None

    def _refresh_leaves(self, game, head: Level) -> None:
        """After a commit every level is one shallower: a leaf that has passed a boundary ranks its
        candidates from its current counts now, rather than at its next boundary (which may never come)."""
        for level in walk(head):
            if not level.children and level.depth < self.k and level.stage > 1 and level.decided < 0:
                guess = self.policy.pick(game, level.state.move_number, self.search, level.slot)
                actions, shares = self._ranked(level, guess)
                self._candidates(level, level.stage - 1, actions, shares)

    def _plan(self, game) -> None:
        """Give the game's search budget to its likeliest positions: keep or start the levels with the
        highest path odds (a running level gets ``KEEP`` times its odds, so that near-ties do not churn),
        a child only below a kept parent and only for one of the parent's ``width`` candidates."""
        head = self.heads[game]
        levels = walk(head)
        keep, start = plan_tree(levels, self.k, self.trees)
        changed = bool(start)
        for level in levels[1:]:
            if id(level) in keep:
                continue
            changed = True
            if id(level.parent) in keep:
                del level.parent.children[level.via]
                self.stats.rolled_back += 1
            self._close(level, wasted=True)
        for parent, action, odds in start:
            self._spawn(game, parent, action, odds)
        if changed:
            self._order = None

    def _spawn(self, game, parent: Level, action: int, odds: float) -> None:
        """Start the level below ``parent`` at the position after ``action``."""
        nxt = parent.state.copy()
        nxt.play(action)
        if nxt.is_over:
            return
        child = self._open(game, nxt, via=action, parent=parent)
        child.odds, child.path = odds, parent.path * odds
        parent.children[action] = child
        self.stats.spawned += 1
        self.stats.widest = max(self.stats.widest, len(parent.children))
        self.stats.deepest = max(self.stats.deepest, child.depth)

    def _trace(self, level: Level, phase: str, action: int) -> None:
        """Record the move's trace with the odds the calibration gave its candidates before this move."""
        odds = [self.calibration.odds(phase, stage, shares) for stage, _, shares, _ in level.seen]
        self.traces.append(trace_of(level.seen, odds, action, self._slot_target[level.slot], level.decided_at,
                                    level.state.move_number == 0))

    def _score_predictions(self, level: Level, action: int) -> None:
        phase = game_phase(level.state.move_number, level.state.size)
        for stage, guess in level.stage_predictions:
            self.stats.predictions[stage] += 1
            self.stats.phase_predictions[phase] += 1
            if guess == action:
                self.stats.correct[stage] += 1
                self.stats.phase_correct[phase] += 1
        if self.traces is not None:
            self._trace(level, phase, action)
        for stage, actions, shares, _ in level.seen:
            self.calibration.record(phase, stage, actions, shares, action)
        if level.decided >= 0:
            self.stats.sure_moves += 1
            if level.decided != action and action != level.state.rules.resign_action:
                self.stats.sure_wrong += 1
        if self.k and level.stage_predictions:
            self.stats.correct_from[correct_from_stage(level.stage_predictions, action, self.boundaries)] += 1
            for w in range(1, RANKS + 1):
                j = right_from_stage([(stage, action in actions[:w]) for stage, actions, _, _ in level.seen],
                                     self.boundaries)
                self.stats.within_from[w, j] += 1


def trace_of(level_seen: list, odds: list, action: int, sims: int, decided_at: int, first: bool) -> dict:
    """A move's trace: at each boundary its ranked candidates with their odds and the simulations done,
    the move played, the search's budget, when it became sure (-1: never) and whether it is a game's first
    move; what the tree model (``specmcts/bench/spec_model.py``) replays."""
    return {"seen": [(int(stage), [int(a) for a in actions], [float(o) for o in o_], int(done))
                     for (stage, actions, _, done), o_ in zip(level_seen, odds)],
            "final": int(action), "sims": int(sims), "sure_at": int(decided_at), "first": bool(first)}
