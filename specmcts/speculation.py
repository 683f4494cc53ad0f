"""The inter-decision pipeline: search future moves speculatively while the current one finishes.

Each game owns a chain of *levels*, each a search in its own tree slot: level 0 searches the move the game
is at (the committed position), level ``d`` searches the position reached by the moves predicted at the
levels above it. A move's ``sims`` simulations are cut into ``k + 1`` equal stages; when a level crosses a
stage boundary it predicts its move from the partial visit counts (the same pick rule, and for
temperature moves the same pre-drawn uniform, as the final pick) and (re)starts level ``d + 1`` from the
predicted position if that prediction is new. At most ``k`` levels run beyond level 0.

When level 0 finishes, the caller picks the real move and calls ``advance``: if level 1 was rooted at that
move it becomes level 0 (commit; its tree simply continues), otherwise every speculative level is thrown
away and level 0 restarts at the true position (rollback). NN-cache entries stay valid either way.

Exactness: a tree's batches depend only on the tree (``select_leaves`` takes a tree's batch whole or not
at all, and ``Search.wanted`` depends only on its own counts), noise and uniforms are drawn per
(game, move number), so with a deterministic evaluator a level that is committed has searched exactly
what a fresh search at k = 0 would have: the game records are identical for every k.

The scheduler is a thin layer over ``Search``: it decides which slots step and with which roots; all
per-node work stays in the kernels. Slots are listed level by level, so when the evaluator batch is
full the speculative trees are the ones that wait.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Hashable, Protocol

import numpy as np

from games.go import GoState
from specmcts.search import Search

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
    guess_at = [None] * (k + 2)
    previous = 0
    for stage, guess in stage_predictions:
        for j in range(previous + 1, stage + 1):
            guess_at[j] = guess
        previous = stage
    first = k + 1
    for j in range(k, 0, -1):
        if guess_at[j] is None or guess_at[j] != action:
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


class MovePolicy(Protocol):
    """How a game turns a search into a move; the pipeline uses it for predictions too."""

    def pick(self, game: Hashable, move_number: int, search: Search, slot: int) -> int:
        """The move from the (partial or final) search in ``slot`` at ``move_number``; must be a pure function
        of the tree and (game, move number) so a prediction from the final tree equals the real pick."""

    def root(self, game: Hashable, state: GoState) -> RootSetup:
        """Budget and randomness of a search rooted at ``state``; a pure function of (game, move number),
        however often that position is searched."""


@dataclass
class Level:
    slot: int
    state: GoState  # the root position of this level's search
    via: int  # action predicted at the level above that leads here (-1 at level 0)
    boundaries: list = field(default_factory=list)  # boundaries[j]: simulations at stage boundary j (1..k)
    stage: int = 1  # next stage boundary to cross (1..k)
    prediction: int = -1  # latest prediction of this level's move
    stage_predictions: list = field(default_factory=list)  # (stage, predicted action)


@dataclass
class SpeculationStats:
    k: int = 0
    predictions: np.ndarray = None  # [k + 1] predictions made at stage boundary j (index 1..k)
    correct: np.ndarray = None  # [k + 1] of those, equal to the final move
    phase_predictions: dict = None
    phase_correct: dict = None
    spawned: int = 0  # speculative searches started
    committed: int = 0  # speculative searches that became the real one
    rolled_back: int = 0  # mispredictions that threw speculative searches away
    wasted_sims: int = 0  # simulations done in searches thrown away
    useful_sims: int = 0  # simulations of searches that decided a move
    correct_from: np.ndarray = None  # [k + 2] moves whose predictions were right from stage J on (J = k + 1: never)

    def __post_init__(self):
        self.correct_from = np.zeros(self.k + 2, np.int64)
        self.predictions = np.zeros(self.k + 1, np.int64)
        self.correct = np.zeros(self.k + 1, np.int64)
        self.phase_predictions = {p: 0 for p in PHASES}
        self.phase_correct = {p: 0 for p in PHASES}

    def accuracy_by_stage(self) -> list[float]:
        return [float(self.correct[j] / self.predictions[j]) if self.predictions[j] else float("nan")
                for j in range(1, self.k + 1)]

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
    """Schedules the searches of many games, ``k`` moves deep, over one ``Search``.

    Usage (one process, many games)::

        pipe.start(game, state)                 # a game joins at its current position
        while ...:
            for game in pipe.ready():           # level 0 finished: decide the move
                counts = pipe.visit_counts(game)
                ...
                pipe.advance(game, action, state_after or None)
            pipe.step()                         # one evaluator batch over every level of every game
    """

    def __init__(self, search: Search, k: int, policy: MovePolicy, tree_reuse: bool = False):
        if k < 0:
            raise ValueError("speculation depth k must be >= 0")
        self.search = search
        self.k = k
        self.policy = policy
        # Reusing the played move's subtree keeps more search but breaks exactness across k (a committed
        # speculative tree is fresh, a reused one is not): the lossless guarantee holds with fresh trees.
        self.tree_reuse = tree_reuse
        self.stats = SpeculationStats(k=k)
        self.levels: dict[Hashable, list[Level]] = {}
        self.free_slots: list[int] = list(range(search.num_trees - 1, -1, -1))
        self._order = None  # cached slot order, rebuilt when levels change
        self._slot_next_event = np.zeros(search.num_trees, np.int64)
        self._slot_target = np.zeros(search.num_trees, np.int64)  # each slot's simulation budget

    # -- games -----------------------------------------------------------------------------------
    def start(self, game: Hashable, state: GoState) -> None:
        if game in self.levels:
            raise ValueError(f"game {game!r} is already in the pipeline")
        self.levels[game] = [self._open(game, state, via=-1)]
        self._order = None

    def finish(self, game: Hashable) -> None:
        """Drop a game (finished or abandoned) and everything it had in flight."""
        for level in self.levels.pop(game, []):
            self._close(level, wasted=True)
        self._order = None

    def __len__(self) -> int:
        return len(self.levels)

    def root(self, game: Hashable) -> GoState:
        return self.levels[game][0].state

    def slot(self, game: Hashable) -> int:
        return self.levels[game][0].slot

    def visit_counts(self, game: Hashable) -> np.ndarray:
        return self.search.visit_counts(self.levels[game][0].slot)

    def root_value(self, game: Hashable) -> float:
        return self.search.root_value(self.levels[game][0].slot)

    def ready(self) -> list:
        """Games whose level-0 search has all its simulations."""
        if self._order is None:
            self._rebuild()
        done = np.flatnonzero(self.search.completed(self._heads) >= self._slot_target[self._heads])
        return [self._head_games[i] for i in done]

    def _rebuild(self) -> None:
        """Slot order for the batch (level by level) and the level-0 slots, after the chains changed."""
        depth = max((len(c) for c in self.levels.values()), default=0)
        order = [c[d].slot for d in range(depth) for c in self.levels.values() if d < len(c)]
        self._order = np.array(order, np.int32)
        self._head_games = list(self.levels)
        self._heads = np.array([c[0].slot for c in self.levels.values()], np.int32)
        self._slot_game = {level.slot: game for game, chain in self.levels.items() for level in chain}

    def advance(self, game: Hashable, action: int, state_after: GoState | None) -> bool:
        """Level 0 of ``game`` played ``action``. ``state_after`` is the new position, or None when the
        game ended (then the game leaves the pipeline). Returns True if speculation had predicted it."""
        chain = self.levels[game]
        head = chain[0]
        self._score_predictions(head, action)
        self.stats.useful_sims += int(self.search.completed([head.slot])[0])
        self._order = None
        if state_after is None or state_after.is_over:
            for level in chain:
                self._close(level, wasted=level is not head)
            del self.levels[game]
            return False
        if len(chain) > 1 and chain[1].via == action:
            self.stats.committed += 1
            self._close(head, wasted=False)
            chain.pop(0)
            self._deepen(game, chain)
            return True
        for level in chain[1:]:
            self._close(level, wasted=True)
        if len(chain) > 1:
            self.stats.rolled_back += 1
        if self.tree_reuse:
            # the played move's subtree becomes the new tree (KataGo-style); opened before the old slot is freed
            slot = self.free_slots.pop()
            setup = self.policy.root(game, state_after)
            self.search.reuse(head.slot, action, slot, state_after, setup.noise, setup.noise_fraction)
            fresh = self._level(slot, state_after, -1, setup.sims)
            self._close(head, wasted=False)
            self.levels[game] = [fresh]
            return False
        self._close(head, wasted=False)
        self.levels[game] = [self._open(game, state_after, via=-1)]
        return False

    # -- the batch -------------------------------------------------------------------------------
    def step(self) -> int:
        """One evaluator batch over all levels (level 0 of every game first), then stage boundaries."""
        if self._order is None:
            self._rebuild()
        slots = self._order
        if len(slots) == 0:
            return 0
        want = self.search.wanted(slots, self._slot_target[slots])
        n = self.search.step(slots, want)
        if self.k > 0:
            completed = self.search.completed(slots)
            hit = np.flatnonzero(completed >= self._slot_next_event[slots])
            if len(hit):
                self._stage_boundaries(set(int(s) for s in slots[hit]))
        return n

    # -- internals -------------------------------------------------------------------------------
    def _open(self, game: Hashable, state: GoState, via: int) -> Level:
        slot = self.free_slots.pop()
        setup = self.policy.root(game, state)
        self.search.reset(slot, state, setup.noise, setup.noise_fraction, setup.gumbel,
                          setup.sims if setup.gumbel is not None else 0)
        return self._level(slot, state, via, setup.sims)

    def _level(self, slot: int, state: GoState, via: int, sims: int) -> Level:
        """A level searching ``sims`` simulations in ``slot``: its budget cut into k + 1 equal stages."""
        bounds = [int(np.ceil(sims * j / (self.k + 1))) for j in range(self.k + 1)]
        level = Level(slot=slot, state=state, via=via, boundaries=bounds)
        self._slot_target[slot] = sims
        self._slot_next_event[slot] = bounds[1] if self.k > 0 else np.iinfo(np.int64).max
        return level

    def _close(self, level: Level, wasted: bool) -> None:
        if wasted:
            self.stats.wasted_sims += int(self.search.completed([level.slot])[0])
        self.free_slots.append(level.slot)

    def _stage_boundaries(self, slots: set) -> None:
        """Predictions of the levels in ``slots`` (the slots that just crossed a boundary), game by game,
        shallow levels first (a restart below is seen by the deeper ones)."""
        for game in {self._slot_game[s] for s in slots}:
            chain = self.levels[game]
            d = 0
            while d < len(chain):
                level = chain[d]
                if level.slot in slots:
                    self._cross(game, chain, d)
                d += 1

    def _cross(self, game, chain: list, d: int) -> None:
        level = chain[d]
        done = int(self.search.completed([level.slot])[0])
        crossed = level.stage
        while crossed <= self.k and done >= level.boundaries[crossed]:
            crossed += 1
        if crossed == level.stage:
            return
        stage = crossed - 1  # the latest boundary passed
        level.stage = crossed
        self._slot_next_event[level.slot] = level.boundaries[crossed] if crossed <= self.k else np.iinfo(np.int64).max
        guess = self.policy.pick(game, level.state.move_number, self.search, level.slot)
        level.prediction = guess
        level.stage_predictions.append((stage, guess))
        if d >= self.k:
            return  # deep enough: nothing to spawn below this level
        if len(chain) > d + 1 and chain[d + 1].via == guess:
            return
        if len(chain) > d + 1:  # the guess changed: what was speculated below is wrong
            self.stats.rolled_back += 1
            for deeper in chain[d + 1:]:
                self._close(deeper, wasted=True)
            del chain[d + 1:]
        self._order = None
        self._spawn(game, chain, level, guess)

    def _spawn(self, game, chain: list, level: Level, guess: int) -> None:
        """Start the level below ``level`` (the chain's last) at the position after ``guess``."""
        nxt = level.state.copy()
        nxt.play(guess)
        if nxt.is_over:
            return
        chain.append(self._open(game, nxt, via=guess))
        self.stats.spawned += 1

    def _deepen(self, game, chain: list) -> None:
        """After a commit the chain is one level shorter: the deepest level, if it has passed a stage
        boundary, predicts from its current counts and starts the next level now rather than at its next
        boundary (which may never come)."""
        d = len(chain) - 1
        level = chain[d]
        if d >= self.k or level.stage <= 1:
            return
        self._spawn(game, chain, level, self.policy.pick(game, level.state.move_number, self.search, level.slot))

    def _score_predictions(self, level: Level, action: int) -> None:
        phase = game_phase(level.state.move_number, level.state.size)
        for stage, guess in level.stage_predictions:
            self.stats.predictions[stage] += 1
            self.stats.phase_predictions[phase] += 1
            if guess == action:
                self.stats.correct[stage] += 1
                self.stats.phase_correct[phase] += 1
        if self.k and level.stage_predictions:
            self.stats.correct_from[correct_from_stage(level.stage_predictions, action, self.k)] += 1


def choose_k(evaluator, base_batch: int, k_max: int = 4, tolerance: float = 1.3, repeats: int = 5) -> tuple[int, dict]:
    """``auto`` speculation depth: the deepest k whose batch (``base_batch * (k + 1)`` rows, what k adds
    to the evaluator when every speculative tree runs) costs at most ``tolerance`` times the k = 0 batch,
    measured on this evaluator now. On a GPU batches up to a few hundred rows cost about one, so k comes
    out high; on a CPU cost grows with rows and k comes out 0 (speculation would only slow it down).
    Returns (k, {rows: seconds per batch})."""
    import time

    timings = {}
    inputs = evaluator.inputs
    base_batch = max(1, min(base_batch, evaluator.max_batch))

    def cost(rows: int) -> float:
        evaluator.evaluate(rows)  # warm-up (graph capture, allocator)
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            evaluator.evaluate(rows)
            best = min(best, time.perf_counter() - t0)
        return best

    saved = inputs.copy()
    try:
        base = cost(base_batch)
        timings[base_batch] = base
        chosen = 0
        for k in range(1, k_max + 1):
            rows = base_batch * (k + 1)
            if rows > evaluator.max_batch:
                break
            timings[rows] = cost(rows)
            if timings[rows] > tolerance * base:
                break
            chosen = k
    finally:
        inputs[...] = saved
    return chosen, timings
