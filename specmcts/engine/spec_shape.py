"""The shape of speculation: how many searches a game runs at once (``speculation_trees``), and what
``--speculate auto`` chooses from the evaluator's measured cost per batch (``plan_speculation``,
``measured_cost``). The speculation itself is ``specmcts.engine.speculation``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from specmcts.config import MAX_SPEC_STAGES, MAX_SPECULATE


def speculation_trees(cfg, k: int) -> int:
    """Searches one game (``cfg``: a ``Config``) runs at once at depth ``k``: ``speculation.rows`` divided by
    the leaves per tree, or a chain's k + 1 when no row budget is given."""
    if cfg.speculation.rows > 0:
        return max(1, cfg.speculation.rows // max(1, cfg.search.leaves_per_tree))
    return k + 1


LATENCY_TOLERANCE = 1.3  # one game: a batch may cost this much more than k = 0's for the rows speculation adds
THROUGHPUT_TOLERANCE = 1.05  # many games: at most 5 % more per batch, so moves/s never drops more than that
AUTO_TREES = (2, 3, 4, 6, 9, 12, 17)  # budgets tried, in searches per game
AUTO_STAGES_PER_LEVEL = 3  # finer stages than the paper's k + 1: a level's child starts sooner, and the tree
#                            reacts sooner to a changed prediction (measured: 9x9, k = 16, 17 -> 49 stages,
#                            17.3 -> 16.3 batches per move)


@dataclass
class SpeculationPlan:
    """What ``--speculate auto`` chose, and the measured batch costs it chose from."""

    k: int
    width: int
    trees: int
    stages: int
    timings: dict  # rows -> seconds per evaluator call
    tolerance: float


def plan_speculation(cost, leaves: int, concurrent: int, max_batch: int) -> SpeculationPlan:
    """``auto``: the largest budget of searches per game whose batch (k = 0's rows times that budget) costs at
    most ``tolerance`` times k = 0's batch on the evaluator's cost curve ``cost(rows) -> seconds``.

    One game (latency mode) may pay ``LATENCY_TOLERANCE`` per batch for the rows, since it saves batches;
    many games (throughput mode) ``THROUGHPUT_TOLERANCE``: speculation never adds level-0 batches (those go
    first in every batch), so moves/s falls by at most what a batch costs more. Depth is the budget's chain
    depth (deep where predictions are sure); budgets of 6 searches and more branch 2 wide where they are not;
    a search is cut into ``AUTO_STAGES_PER_LEVEL`` stages per level of depth.
    On a GPU a few hundred rows cost about one; on a CPU cost grows with rows and the plan is k = 0."""
    base_rows = max(1, min(concurrent * leaves, max_batch))
    tolerance = LATENCY_TOLERANCE if concurrent <= 1 else THROUGHPUT_TOLERANCE
    base = cost(base_rows)
    timings = {base_rows: base}
    trees = 1
    for m in AUTO_TREES:
        rows = base_rows * m
        if rows > max_batch:
            break
        timings[rows] = cost(rows)
        if timings[rows] > tolerance * base:
            break
        trees = m
    k = min(MAX_SPECULATE, trees - 1)
    stages = min(MAX_SPEC_STAGES, AUTO_STAGES_PER_LEVEL * (k + 1)) if k else 0
    return SpeculationPlan(k=k, width=2 if trees >= 6 else 1, trees=trees, stages=stages, timings=timings,
                           tolerance=tolerance)


def measured_cost(evaluator, repeats: int = 5):
    """``cost(rows)``: the best of ``repeats`` timed forward passes of ``rows`` rows on ``evaluator`` (after
    one warm-up, which also captures a CUDA graph); the evaluator's input rows are restored afterwards."""
    def cost(rows: int) -> float:
        saved = evaluator.inputs[:rows].copy()
        try:
            evaluator.evaluate(rows)
            best = float("inf")
            for _ in range(repeats):
                t0 = time.perf_counter()
                evaluator.evaluate(rows)
                best = min(best, time.perf_counter() - t0)
        finally:
            evaluator.inputs[:rows] = saved
        return best

    return cost
