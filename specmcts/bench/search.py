"""Search benchmarks.

CPU: simulations per second per core with a constant evaluator (uniform policy, value 0), i.e. the cost of
select + rules + feature encoding + expand/backup alone, from mid-game roots, NN cache off.

Net: self-play NN evals/s (``SelfPlay``, many concurrent games, NN cache off) against the pure forward-pass
throughput of the same net at the same batch size, measured in the same run, and where the self-play time
goes. Meant for the GPU machine (``--device cuda``); runs on a CPU too (small nets, for the script's sake).

    specmcts bench search                      # CPU table
    specmcts bench search --net --device cuda  # + GPU self-play vs forward
    specmcts bench search --sizes 9 --model shipped --concurrent 16 --net-sims 100   # a trained net
    specmcts bench search --sizes 9 --batch-cost   # CPU per batch: fixed + per-leaf microseconds
    NUMBA_NUM_THREADS=2 specmcts bench search --sizes 9 --batch-cost --threads 2   # trees over two threads
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from games.go import GoRules, GoState  # noqa: E402
from native import board as board_kernels  # noqa: E402
from specmcts.bench import too_many_threads  # noqa: E402
from specmcts.config import Config, NetConfig  # noqa: E402

# (trees, leaves per tree) of the batch-cost points: from one leaf to 128 leaves a batch
BATCH_SHAPES = [(1, 1), (1, 8), (4, 8), (8, 8), (16, 8), (64, 2)]

NETS = {  # name: (board, blocks, channels)
    "9x9-6x64": (9, 6, 64),
    "9x9-10x128": (9, 10, 128),
    "19x19-10x128": (19, 10, 128),
    "19x19-20x256": (19, 20, 256),
    "9x9-2x32": (9, 2, 32),
    "19x19-2x32": (19, 2, 32),
}


def pin_one_core(count: int = 1):
    """Pin to one core (the CPU table is per core), or the first ``count``; returns the cores to restore
    (``unpin``)."""
    if hasattr(os, "sched_setaffinity"):
        cores = os.sched_getaffinity(0)
        try:
            os.sched_setaffinity(0, set(sorted(cores)[:count]))
        except OSError:
            pass
        return cores
    return None


def unpin(cores) -> None:
    if cores is not None:
        try:
            os.sched_setaffinity(0, cores)
        except OSError:
            pass


def midgame_roots(size: int, count: int, seed: int = 0) -> list[GoState]:
    """Positions a quarter of the way into random games (what a search mostly sees)."""
    board_kernels.seed_kernels(seed)
    roots = []
    while len(roots) < count:
        s = GoState(GoRules(size))
        for _ in range(size * size // 4):
            s.play_random()
            if s.is_over:
                break
        if not s.is_over:
            roots.append(s)
    return roots


def bench_cpu(size: int, sims: int, trees: int, leaves: int, repeats: int) -> dict:
    from specmcts.engine.evaluator import UniformEvaluator
    from specmcts.engine.nncache import NNCache
    from specmcts.engine.search import Search

    rules = GoRules(size)
    cfg = Config().override(f"search.sims={sims}", f"search.leaves_per_tree={leaves}", "search.threads=1")  # per core
    ev = UniformEvaluator(size, max_batch=trees * leaves)
    search = Search(rules, cfg.search, ev, NNCache(0, rules.num_actions, rules.max_moves), num_trees=trees)
    roots = midgame_roots(size, trees)
    slots = np.arange(trees, dtype=np.int32)

    def once():
        for t, r in enumerate(roots):
            search.reset(t, r)
        before = search.stats.leaves
        t0 = time.perf_counter()
        search.run(slots, sims)
        return (search.stats.leaves - before) / (time.perf_counter() - t0)

    once()  # JIT warm-up
    rates = [once() for _ in range(repeats)]
    sec = search.stats.seconds
    total = sum(sec.values())
    return {"size": size, "sims_per_s": max(rates), "median": float(np.median(rates)),
            "profile": {k: v / total for k, v in sec.items()}}


def batch_cost(size: int, sims: int, shapes: list[tuple[int, int]], repeats: int, cache_entries: int = 1 << 16,
               threads: int = 1) -> dict:
    """The search's CPU cost per batch as a line, ``fixed + per_leaf * leaves``: batches of every shape
    (trees x leaves per tree) searched to ``sims`` simulations from mid-game roots with a deterministic hash
    evaluator and the NN cache on; a batch's CPU time is its wall time less the evaluator's (the device's
    share). Each shape's median batch is a point; the line through them is a Theil-Sen fit.

    ``threads`` > 1 runs the trees of every batch of two or more trees over that many numba threads
    (``search.threads``, ``parallel_min_trees`` 2); ``busy_threads`` is the process's CPU time over the wall
    time of those batches (the evaluator's hash included in both): how many threads worked on average."""
    from specmcts.engine.evaluator import HashEvaluator
    from specmcts.engine.nncache import NNCache
    from specmcts.engine.search import Search

    rules = GoRules(size)
    points = []
    for trees, leaves in shapes:
        cfg = Config().override(f"search.sims={sims}", f"search.leaves_per_tree={leaves}",
                                f"search.threads={threads}", "search.parallel_min_trees=2")
        cpu, done, busy = [], [], [0.0, 0.0]
        for rep in range(repeats):
            search = Search(rules, cfg.search, HashEvaluator(size, max_batch=trees * leaves),
                            NNCache.for_board(cache_entries, size), num_trees=trees)
            for t, r in enumerate(midgame_roots(size, trees, seed=rep)):
                search.reset(t, r)
            slots = np.arange(trees, dtype=np.int32)
            stats, clock = search.stats, time.perf_counter
            while (want := search.wanted(slots, sims)).any():
                forward, leaves_before = stats.seconds["forward"], stats.leaves
                t0, c0 = clock(), time.process_time()
                search.step(slots, want)
                forward = stats.seconds["forward"] - forward
                cpu.append(clock() - t0 - forward)
                # threads at work: the process's CPU time over the wall time of the step, both with the
                # evaluator's (one thread, a hash: microseconds). Taking the forward's wall time out of the CPU
                # time instead went negative on a loaded machine, where the forward's wall time includes waits
                busy[0] += time.process_time() - c0
                busy[1] += clock() - t0
                done.append(stats.leaves - leaves_before)
            search.close()
        cpu_us, done = 1e6 * np.array(cpu), np.array(done)
        points.append({"trees": trees, "leaves_per_tree": leaves, "batches": len(cpu_us),
                       "leaves_per_batch": float(np.median(done)), "cpu_us_per_batch": float(np.median(cpu_us)),
                       "cpu_us_per_leaf": float(cpu_us.sum() / max(done.sum(), 1)),
                       "busy_threads": busy[0] / busy[1] if busy[1] > 0 else float("nan")})
    x = np.array([p["leaves_per_batch"] for p in points])
    y = np.array([p["cpu_us_per_batch"] for p in points])
    # Theil-Sen: the median of the slopes between every two points of different sizes, and the median
    # intercept under it; one shape slowed by another program moves it little (least squares, a lot)
    slopes = [(y[j] - y[i]) / (x[j] - x[i]) for i in range(len(x)) for j in range(i + 1, len(x)) if x[j] != x[i]]
    per_leaf = float(np.median(slopes)) if slopes else float("nan")
    fixed = float(np.median(y - per_leaf * x)) if slopes else float("nan")
    return {"size": size, "sims": sims, "threads": threads, "points": points, "us_per_leaf": float(per_leaf),
            "us_per_batch": float(fixed)}


def bench_net(name: str, device: str, concurrent: int, sims: int, leaves: int, max_moves: int,
              overlap: bool = False) -> dict:
    import torch

    from specmcts.engine.evaluator import make_evaluator
    from specmcts.engine.network import build_net
    from specmcts.engine.nncache import NNCache
    from specmcts.training.selfplay import SelfPlay

    cfg = Config()
    if name in NETS:
        size, blocks, channels = NETS[name]
        cfg = dataclasses.replace(cfg, net=NetConfig(blocks=blocks, channels=channels, value_hidden=channels))
        torch.manual_seed(0)
        net = build_net(size, cfg.net)
    else:  # a trained net: a checkpoint, or 'shipped'
        from specmcts.engine.network import load_model, resolve_model

        net, meta = load_model(resolve_model(name, 9))
        size = int(meta["board_size"])
        name = Path(name).stem
    batch = concurrent * leaves
    cfg = cfg.override(f"game.board={size}", f"search.sims={sims}", f"search.leaves_per_tree={leaves}",
                       f"selfplay.games={concurrent}", f"selfplay.concurrent={concurrent}",
                       f"selfplay.max_moves={max_moves}", f"evaluator.device={device}", f"evaluator.max_batch={batch}",
                       f"search.overlap={overlap}")
    ev = make_evaluator(cfg, size, net)
    # pure forward throughput at the self-play batch size, same evaluator, same run
    ev.inputs[:batch] = np.random.default_rng(0).integers(0, 2, ev.inputs[:batch].shape, dtype=np.uint8)
    for _ in range(5):
        ev.evaluate(batch)
    reps = 50 if device == "cuda" else 5
    t0 = time.perf_counter()
    for _ in range(reps):
        ev.evaluate(batch)
    forward = batch * reps / (time.perf_counter() - t0)
    # self-play, cache off so every leaf is a network row
    sp = SelfPlay(cfg, ev, NNCache.for_board(0, size), out=None, tensorboard=False)
    summary = sp.run()
    st = sp.search.stats
    sec = st.seconds
    wall = summary["wall_s"]
    rows_per_batch = st.evals / max(st.steps, 1)
    sp.search.close()
    return {"net": name, "device": device, "overlap": overlap, "batch": batch, "forward_evals_per_s": forward,
            "selfplay_evals_per_s": summary["evals_per_s"], "ratio": summary["evals_per_s"] / forward,
            "mean_rows_per_batch": rows_per_batch, "wall_s": wall,
            "profile": {**{k: v / wall for k, v in sec.items()}, "other": 1 - sum(sec.values()) / wall}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[9, 19])
    ap.add_argument("--sims", type=int, default=800)
    ap.add_argument("--trees", type=int, default=64)
    ap.add_argument("--leaves", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--net", nargs="*", default=None, help=f"self-play vs forward for these nets ({', '.join(NETS)})")
    ap.add_argument("--model", nargs="+", default=[], metavar="PATH",
                    help="self-play vs forward for trained nets instead: checkpoints, or 'shipped'")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--concurrent", type=int, default=64)
    ap.add_argument("--net-sims", type=int, default=200)
    ap.add_argument("--max-moves", type=int, default=20, help="moves per game in the net benchmark")
    ap.add_argument("--overlap", choices=("off", "on", "both"), default="off",
                    help="search.overlap in the net rows: two batches in flight per search (default off)")
    ap.add_argument("--batch-cost", action="store_true",
                    help="the CPU cost of a batch as fixed + per-leaf microseconds (targets 50 and 2 on 9x9)")
    ap.add_argument("--threads", type=int, default=1,
                    help="--batch-cost: numba threads over the trees of a batch (pins as many cores; needs "
                         "NUMBA_NUM_THREADS at least this)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if why := too_many_threads(args.threads):
        ap.error(f"--threads {why}")
    if args.model:
        args.net = list(args.model)

    results = {"cpu": [], "net": [], "batch_cost": []}
    cores = None
    if args.device == "cpu":
        cores = pin_one_core(args.threads)
        import torch

        torch.set_num_threads(1)
    for size in args.sizes:
        results["cpu"].append(bench_cpu(size, args.sims, args.trees, args.leaves, args.repeats))
        if args.batch_cost:
            results["batch_cost"].append(batch_cost(size, args.sims, BATCH_SHAPES, args.repeats, threads=args.threads))
    if args.net is not None:
        unpin(cores)  # self-play: one search thread, one torch thread (two with --overlap: the forward's)
        names = args.net or (["9x9-6x64", "19x19-10x128"] if args.device == "cuda" else ["9x9-2x32"])
        overlaps = {"off": [False], "on": [True], "both": [False, True]}[args.overlap]
        for name in names:
            for overlap in overlaps:
                results["net"].append(bench_net(name, args.device, args.concurrent, args.net_sims, args.leaves,
                                                args.max_moves, overlap))
    if args.json:
        print(json.dumps(results, default=float))
        return 0
    print("CPU search, constant evaluator, one core, NN cache off "
          f"({args.trees} trees x {args.sims} sims, {args.leaves} leaves/tree/batch, mid-game roots)")
    print(f"{'board':>6} {'sims/s best':>12} {'median':>10} {'target':>8}   profile (share of search time)")
    for r in results["cpu"]:
        target = "50,000" if r["size"] == 9 else "-"
        prof = " ".join(f"{k} {100 * v:.0f}%" for k, v in r["profile"].items())
        print(f"{r['size']:>4}x{r['size']:<1} {r['sims_per_s']:>12,.0f} {r['median']:>10,.0f} {target:>8}   {prof}")
    if results["net"]:
        print(f"\nSelf-play NN evals/s vs pure forward at the same batch ({args.concurrent} games x {args.leaves} leaves), "
              "same run, NN cache off; target ratio >= 0.70")
        print(f"{'net':>14} {'device':>6} {'overlap':>7} {'batch':>5} {'forward/s':>11} {'selfplay/s':>11} "
              f"{'ratio':>6} {'rows/batch':>10}   where self-play time goes")
        for r in results["net"]:
            prof = " ".join(f"{k} {100 * v:.0f}%" for k, v in r["profile"].items())
            print(f"{r['net']:>14} {r['device']:>6} {'on' if r['overlap'] else 'off':>7} {r['batch']:>5} "
                  f"{r['forward_evals_per_s']:>11,.0f} "
                  f"{r['selfplay_evals_per_s']:>11,.0f} {r['ratio']:>6.2f} {r['mean_rows_per_batch']:>10.1f}   {prof}")
    for r in results["batch_cost"]:
        threads = "one thread" if r["threads"] == 1 else f"{r['threads']} threads over the trees"
        print(f"\nCPU per batch on {r['size']}x{r['size']}, {threads} ({r['sims']} sims per tree from mid-game "
              "roots, hash evaluator, NN cache on; the evaluator's time left out; busy: threads working on average)")
        print(f"{'trees':>5} {'leaves':>6} {'batches':>7} {'leaves/batch':>12} {'us/batch':>9} {'us/leaf':>8} {'busy':>5}")
        for p in r["points"]:
            print(f"{p['trees']:>5} {p['leaves_per_tree']:>6} {p['batches']:>7} {p['leaves_per_batch']:>12.1f} "
                  f"{p['cpu_us_per_batch']:>9.1f} {p['cpu_us_per_leaf']:>8.2f} {p['busy_threads']:>5.2f}")
        print(f"fit: {r['us_per_batch']:.1f} us per batch + {r['us_per_leaf']:.2f} us per leaf "
              "(targets on 9x9: 50 and 2)")
    best9 = next((r["sims_per_s"] for r in results["cpu"] if r["size"] == 9), None)
    if best9 is not None:
        print(f"\nsummary: 9x9 {best9:,.0f} sims/s/core with a constant evaluator (target 50,000)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
