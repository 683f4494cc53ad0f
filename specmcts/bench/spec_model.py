"""Analytical model of the speculation pipeline: expected latency speedup for look-ahead depth k.

Time is counted in *stages* (a move's search is k + 1 stages of sims / (k + 1) simulations). Every live
search advances one stage per stage of time (on a GPU a batch of several trees costs about what one
costs; ``--batch-cost`` adds a linear penalty per extra tree for machines where it does not).

A move's predictions are summarised by J, the first stage boundary from which every prediction equals the
final move (J = k + 1: never). The model is the finite-state Markov chain of the pipeline that
``specmcts/engine/speculation.py`` implements:

- a level at depth d crossing boundary j predicts; if j >= J its child is (re)started on the right move,
  else on a wrong one (only when d + 1 <= k);
- when level 0 finishes, a right child becomes level 0 with the progress it has (commit), and the new
  deepest level, if past a boundary, spawns its child at once; otherwise everything restarts (rollback).

J is drawn independently per move from its measured distribution ``P(J = j)``; the chain's stationary
mean time between commits is computed by simulation of the chain (seeded, many moves), and the speedup is
(k + 1) / that. ``--p`` takes per-stage accuracies p_j instead, with J built assuming each boundary's
prediction is right independently (J = smallest j with all of p_j..p_k right).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass

import numpy as np

from specmcts.engine.speculation import KEEP, plan_tree, walk


@dataclass
class _Level:
    progress: int  # stages done
    j: int  # first boundary from which its predictions are right
    right: bool  # rooted at the move that will really be played
    child_right_from_here: bool = False


def j_distribution_from_p(p: list[float]) -> np.ndarray:
    """P(J = j), j = 1..k+1, when each boundary j is right independently with probability p[j-1]."""
    k = len(p)
    dist = np.zeros(k + 2)
    for j in range(1, k + 2):
        tail = np.prod(p[j - 1:]) if j <= k else 1.0  # boundaries j..k all right
        before = (1.0 - p[j - 2]) if j >= 2 else 1.0  # boundary j-1 wrong (or j == 1)
        dist[j] = tail * before if j <= k else (1.0 - p[k - 1]) if k else 1.0
    dist[1:] /= dist[1:].sum()
    return dist


def simulate(k: int, j_dist: np.ndarray, moves: int = 100_000, seed: int = 0, batch_cost: float = 0.0,
             stages: int = 0) -> dict:
    """Mean time per move (in stages of one tree) of the pipeline, and the speedup over k = 0. A search is
    ``stages`` stages (default k + 1) with boundaries 1..stages - 1; ``j_dist`` is P(J = j), j = 1..stages."""
    if k == 0:
        return {"k": 0, "stages_per_move": 1.0, "time_per_move": 1.0, "speedup": 1.0}
    s_count = stages or k + 1
    final_boundary = s_count - 1
    rng = np.random.default_rng(seed)
    probs = np.asarray(j_dist[1:s_count + 1], float)
    probs = probs / probs.sum()
    draws = rng.choice(np.arange(1, s_count + 1), size=moves * (k + 2) + 16, p=probs)
    cursor = 0

    def new_level(right: bool) -> _Level:
        nonlocal cursor, draws
        if cursor == len(draws):  # restarts at every boundary can outrun the first batch of draws
            draws = rng.choice(np.arange(1, s_count + 1), size=len(draws), p=probs)
            cursor = 0
        j = int(draws[cursor])
        cursor += 1
        return _Level(progress=0, j=j, right=right)

    chain = [new_level(True)]
    time = 0.0
    commits = 0
    while commits < moves:
        # one stage of time: every level advances one stage
        time += 1.0 + batch_cost * (len(chain) - 1)
        for level in chain:
            if level.progress < s_count:
                level.progress += 1
        # boundaries crossed (in depth order, so a restart below is seen by deeper levels)
        d = 0
        while d < len(chain):
            level = chain[d]
            b = level.progress
            if 1 <= b <= final_boundary and d < k:
                right = level.right and b >= level.j
                if len(chain) > d + 1:
                    if chain[d + 1].right != right or not right:
                        del chain[d + 1:]
                        chain.append(new_level(right))
                else:
                    chain.append(new_level(right))
            d += 1
        # commits (possibly several in a row when the committed level had finished already)
        while chain[0].progress >= s_count:
            commits += 1
            if len(chain) > 1 and chain[1].right:
                chain.pop(0)
                last = chain[-1]
                d = len(chain) - 1
                if d < k and last.progress >= 1:
                    chain.append(new_level(last.right and last.progress >= last.j))
            else:
                chain = [new_level(True)]
            if commits >= moves:
                break
    per_move = time / moves
    return {"k": k, "stages": s_count, "time_per_move": per_move / s_count, "stages_per_move": per_move,
            "speedup": s_count / per_move}


@dataclass(eq=False)
class _Search:
    """One search of the tree model: replays a move's trace (the real one on the real path)."""

    trace: dict
    move: int  # index into the traces of the real path (-1 off it)
    parent: "_Search | None" = None
    depth: int = 0
    via: int = -1  # the parent's action that leads here
    batches: int = 0
    next_b: int = 1
    odds: float = 1.0
    path: float = 1.0
    decided: bool = False
    candidates: list = None
    children: dict = None

    def __post_init__(self):
        self.candidates, self.children = [], {}
        self.at = {stage: (actions, odds) for stage, actions, odds, _ in self.trace["seen"]}

    def done(self, leaves: int) -> int:
        """Simulations done: the root's own evaluation takes the first batch, then ``leaves`` per batch."""
        return max(0, min(self.trace["sims"], (self.batches - 1) * leaves))


def simulate_tree(traces: list[dict], k: int, width: int, trees: int, stages: int, leaves: int,
                  moves: int = 20_000, seed: int = 0, keep: float = KEEP) -> dict:
    """The speculation tree (``specmcts/engine/speculation.py``) replayed on recorded move traces, in evaluator
    batches of one game. The real path replays the traces in order (a trace with ``first`` starts a new
    game); a search off the real path borrows a random trace, so it ranks and spends the budget like a
    real one, and everything below it is wrong. Each batch every live search gets ``leaves`` simulations;
    stage boundaries, the calibrated odds of the candidates, sure moves, the budget of ``trees`` searches
    with at most ``width`` children each, the keep bonus, commits and rollbacks follow the pipeline.
    What it leaves out: collisions, the NN cache, batches too small for every search. Returns mean batches
    per move and the speedup over one search per move (its batches)."""
    rng = np.random.default_rng(seed)
    n = len(traces)

    def bound(node: _Search, j: int) -> int:
        return int(np.ceil(node.trace["sims"] * j / stages))

    def real(move: int, parent=None) -> _Search:
        return _Search(traces[move % n], move, parent, 0 if parent is None else parent.depth + 1)

    def candidates_at(node: _Search, stage: int) -> None:
        if node.decided:
            return
        entry = node.at.get(stage)
        if entry is None:  # a boundary the real search passed together with a later one: take the nearest
            later = [s for s in node.at if s >= stage] or list(node.at)
            if not later:
                return
            entry = node.at[min(later, key=lambda s: (abs(s - stage), -s))]
        actions, odds = entry
        node.candidates = list(zip(actions[:width], odds[:width]))
        current = dict(node.candidates)
        for action, child in node.children.items():
            child.odds = current.get(action, 0.0)

    def spawn(parent: _Search, action: int, odds: float) -> None:
        right = parent.move >= 0 and action == parent.trace["final"]
        if right:
            if traces[(parent.move + 1) % n].get("first"):
                return  # the game ended with that move
            child = real(parent.move + 1, parent)
        else:
            child = _Search(traces[int(rng.integers(n))], -1, parent, parent.depth + 1)
        child.odds, child.path, child.via = odds, parent.path * odds, action
        parent.children[action] = child

    def plan(head: _Search) -> None:
        levels = walk(head)
        kept, start = plan_tree(levels, k, trees, keep)
        for lv in levels[1:]:
            if id(lv) not in kept and id(lv.parent) in kept:
                del lv.parent.children[lv.via]
        for parent, action, odds in start:
            spawn(parent, action, odds)

    head = real(0)
    batches, commits, move = 0, 0, 0
    while commits < moves:
        while head.done(leaves) >= head.trace["sims"]:
            commits += 1
            move = head.move + 1
            child = head.children.get(head.trace["final"])
            if child is not None and child.move == move:
                child.parent, child.odds, child.path = None, 1.0, 1.0
                for lv in walk(child):
                    lv.depth -= 1
                head = child
                for lv in walk(head):  # leaves past a boundary rank their candidates now (see _refresh_leaves)
                    if not lv.children and lv.depth < k and lv.next_b > 1:
                        candidates_at(lv, lv.next_b - 1)
                plan(head)
            else:
                head = real(move)
            if commits >= moves:
                break
        batches += 1
        touched = False
        for lv in walk(head):
            lv.batches += 1
            done = lv.done(leaves)
            crossed = lv.next_b
            while crossed <= stages - 1 and done >= bound(lv, crossed):
                crossed += 1
            if crossed > lv.next_b:
                lv.next_b = crossed
                candidates_at(lv, crossed - 1)
                touched = True
            sure = lv.trace["sure_at"]
            if not lv.decided and 0 <= sure <= done and done < lv.trace["sims"]:
                final = lv.trace["final"]
                lv.candidates = [(final, 1.0)]
                for action, child in lv.children.items():
                    child.odds = 1.0 if action == final else 0.0
                lv.decided = touched = True
        if touched:
            plan(head)
    per_move = batches / moves
    single = float(np.mean([1 + int(np.ceil(t["sims"] / leaves)) for t in traces]))
    return {"k": k, "width": width, "trees": trees, "stages": stages, "batches_per_move": per_move,
            "speedup": single / per_move}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--k", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    ap.add_argument("--p", type=float, nargs="+", help="per-stage accuracy p_1..p_k (one list used for every k)")
    ap.add_argument("--j-dist", type=str, help='JSON {k: [P(J=1), ..., P(J=k+1)]} as measured by bench_speculation')
    ap.add_argument("--moves", type=int, default=100_000)
    ap.add_argument("--batch-cost", type=float, default=0.0, help="extra cost per additional tree in a batch")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rows = []
    measured = json.loads(args.j_dist) if args.j_dist else {}
    for k in args.k:
        if k == 0:
            rows.append(simulate(0, np.ones(2)))
            continue
        if str(k) in measured:
            dist = np.concatenate([[0.0], np.asarray(measured[str(k)], float)])
        elif args.p:
            p = (list(args.p) + [args.p[-1]] * k)[:k]
            dist = j_distribution_from_p(p)
        else:
            print(f"k={k}: give --p or --j-dist", file=sys.stderr)
            return 2
        rows.append(simulate(k, dist, args.moves, batch_cost=args.batch_cost))
    if args.json:
        print(json.dumps(rows))
    else:
        print(f"{'k':>3} {'stages/move':>12} {'predicted speedup':>18}")
        for r in rows:
            print(f"{r['k']:>3} {r['stages_per_move']:>12.3f} {r['speedup']:>18.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
