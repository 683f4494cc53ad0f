"""Speculation benchmark: self-play latency per k, measured next to the analytical model's prediction.

Latency mode (the point of speculation): one game at a time, ``--sims`` per move, for each k the per-move
and per-game latency, in wall time and in evaluator batches (the noise-free unit the model predicts),
the prediction accuracy per stage, the records' agreement with k = 0, and the NN cache hit rate (overall
and in the middle game). Variants: NN cache on/off, leaves per tree per batch (intra-decision batches).

Throughput mode (``--throughput G``): G concurrent games, evals/s and moves/s per k, i.e. what speculation
costs when the GPU is already busy, and what ``--speculate auto`` picks.

Emulated device (``--emulate h100``): each latency run plays twice. The first pass records every row's
outputs from the real net (``specmcts.engine.emulate.RecordingEvaluator``); the second replays the same games on
``EmulatedDevice``, which answers from the record and holds each batch for the H100's measured time at its
rows, the GIL released. Each row gains the measured wall ms per move on that device (``emulated_ms``) and its
split per move: device busy, CPU (the search thread not waiting), device idle; ``--overlap`` replays with
``search.overlap`` (two batches in flight), ``--timeline PNG`` draws k = 0 beside the fastest shape.

    specmcts bench speculation --device cuda --nets 9x9-6x64 9x9-10x128 19x19-10x128 --leaves 8 16
    specmcts bench speculation --evaluator hash --sims 200 --max-moves 40    # CPU, any machine
    specmcts bench speculation --model shipped --cache on --k 4 8 16 --tree 8:2:17 8:3:17  # chains vs trees
    specmcts bench speculation --model shipped --cache on --max-moves 30 --k 0 8 16 --tree 16:2:17:51 \
        --emulate h100 --timeline docs/img/emulated_h100_timeline.png           # wall ms on an emulated H100
    specmcts bench speculation --compare real.json emulated.json        # a GPU's run beside the emulation
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from specmcts.bench import too_many_threads  # noqa: E402
from specmcts.bench.emulated import (RECORDS, MachineShare, compare, draw_timeline, emulated_runs,  # noqa: E402
                                     emulated_summary, print_emulated)
from specmcts.bench.spec_model import simulate, simulate_tree  # noqa: E402
from specmcts.bench.spec_runs import (NETS, batch_cost, board_of, label, make_evaluator, parse_shape,  # noqa: E402
                                      play, records_equal, shape_label)
from specmcts.cli.common import override_arg  # noqa: E402
from specmcts.config import Config  # noqa: E402


def latency_rows(args, net_name: str, leaves: int, cache_entries: int, shapes: list[dict]) -> list[dict]:
    size = board_of(net_name)
    cost = batch_cost(net_name)
    rows, todo = [], []
    base = None
    max_trees = max(s["trees"] for s in shapes)
    for shape in shapes:
        k = shape["k"]
        cfg = Config().override(
            f"seed={args.seed}", f"game.board={size}", f"search.sims={args.sims}", f"search.leaves_per_tree={leaves}",
            f"speculation.k={k}", f"speculation.width={shape['width']}",
            f"speculation.rows={shape['trees'] * leaves}", f"speculation.sure={shape.get('sure', True)}",
            f"speculation.stages={shape['stages'] if k > 0 else 0}", f"selfplay.games={args.games}",
            "selfplay.concurrent=1", f"selfplay.max_moves={args.max_moves}", *args.overrides)
        ev = make_evaluator(args.evaluator, net_name, args.device, max_batch=leaves * max_trees, seed=args.seed)
        if args.emulate:  # the first pass records every row's outputs (and answers a row seen before from them)
            from specmcts.engine.emulate import RecordingEvaluator, RowRecord

            ev = RecordingEvaluator(ev, RECORDS.setdefault(net_name, RowRecord(size * size + 1)))
            ev.emulate_cost = batch_cost(net_name, args.emulate)
        sp, s = play(cfg, ev, cache_entries)
        if args.emulate and args.overlap != "off" and k > 0:
            # search.overlap checks stage boundaries at other counts, so its speculation evaluates other
            # positions: its replays need a recording of their own (into the same record)
            play(cfg.override("search.overlap=true"), ev, cache_entries)
        recs = sorted(sp.records, key=lambda r: r.index)
        if base is None:
            base = (recs, s)
        b_recs, b_s = base
        pairs = [(a, b) for ra, rb in zip(recs, b_recs) for a, b in zip(ra.moves, rb.moves)]
        agree = sum(a == b for a, b in pairs) / max(len(pairs), 1)
        identical = same_games(recs, b_recs)
        stats = sp.pipeline.stats
        # The chain model fed J, the first stage from which the prediction stayed right; for a tree, J of
        # "among the top `width` candidates": the tree's speedup if its budget held every such branch (a bound).
        within = stats.within_from[min(shape["width"], len(stats.within_from) - 1)]
        if k > 0 and within[1:].sum():
            dist = np.concatenate([[0.0], within[1:] / within[1:].sum()])
            predicted = simulate(k, dist, 50_000, seed=args.seed, stages=shape["stages"])["speedup"]
        else:
            dist, predicted = None, 1.0
        replay = (simulate_tree(sp.pipeline.traces, k, shape["width"], shape["trees"], shape["stages"], leaves,
                                moves=len(sp.pipeline.traces), seed=args.seed)["batches_per_move"]
                  if k > 0 and sp.pipeline.traces else float(s["mean_move_steps"]))
        st = sp.search.stats
        moves = max(s["moves"], 1)
        hist = st.batch_rows
        gpu_ms = float((hist * cost.ms_at(np.arange(len(hist)))).sum()) / moves
        # wall time outside the forward passes: select, cache, encode, backup, scheduling (one thread; give
        # the benchmark a core of its own, other processes' time would count)
        cpu_ms = s["mean_move_ms"] - 1000 * st.seconds["forward"] / moves
        rows.append({
            "net": label(net_name), "leaves": leaves, "cache": bool(cache_entries), "shape": shape_label(shape),
            "k": k, "width": shape["width"], "trees": shape["trees"], "stages": shape["stages"],
            "sure": shape.get("sure", True),
            "move_ms": s["mean_move_ms"], "move_batches": s["mean_move_steps"], "game_s": s["mean_game_s"],
            "rows_per_batch": float((hist * np.arange(len(hist))).sum() / max(hist.sum(), 1)),
            "speedup_wall": b_s["mean_move_ms"] / s["mean_move_ms"] if s["mean_move_ms"] else float("nan"),
            "speedup_batches": b_s["mean_move_steps"] / s["mean_move_steps"] if s["mean_move_steps"] else float("nan"),
            "predicted_speedup": predicted, "model_batches": replay,
            "model_gpu_forward_ms": gpu_ms, "cpu_ms": cpu_ms, "model_latency_ms": gpu_ms + cpu_ms,
            "accuracy_by_stage": s["prediction_accuracy_by_stage"], "accuracy": s["prediction_accuracy"],
            "accuracy_by_phase": s["prediction_accuracy_by_phase"],
            "wasted": s["wasted_sims_fraction"], "cache_hit": s["cache_hit_rate"],
            "cache_hit_middle": s["cache_hit_rate_middle"], "agreement": agree, "identical": identical,
            "moves": s["moves"], "correct_from": None if dist is None else stats.correct_from.tolist(),
            "within_from": stats.within_from.tolist(),
            "sure_fraction": stats.sure_moves / moves, "committed": stats.committed, "spawned": stats.spawned,
            "widest": stats.widest, "deepest": stats.deepest,
        })
        r = rows[-1]
        if not args.emulate and args.overlap != "off" and k > 0:
            # on a real device: the same shape with two batches in flight (a GPU launches, CPU nets compute
            # in the forward thread), its wall time beside the row's own; its games must be k = 0's
            sp_o, s_o = play(cfg.override("search.overlap=true"), ev, cache_entries)
            r["move_ms_overlap"] = s_o["mean_move_ms"]
            r["identical_overlap"] = same_games(sorted(sp_o.records, key=lambda x: x.index), b_recs)
        if args.emulate:
            todo.append((r, cfg, ev, cache_entries, recs, (label(net_name), leaves, bool(cache_entries), r["shape"])))
        print(f"  {label(net_name)} L={leaves} cache={'on' if cache_entries else 'off'} {r['shape']}: "
              f"{r['move_batches']:.2f} batches/move (replay model {replay:.2f}; {r['speedup_batches']:.2f}x, "
              f"J model {predicted:.2f}x), "
              f"{r['rows_per_batch']:.0f} rows/batch, {r['move_ms']:.1f} ms/move wall, modelled GPU "
              f"{r['model_latency_ms']:.2f} ms/move, agreement {agree:.3f}", file=sys.stderr, flush=True)
    if todo:
        emulated_runs(args, todo)
    return rows


def same_games(recs: list, base: list) -> bool:
    """A run's games are the base run's: moves and search targets (not ``records_equal``'s values and
    features: a CPU net's rows differ in their last bits between batch shapes, which speculation changes)."""
    return all(ra.moves == rb.moves and all(np.array_equal(x, y) for x, y in zip(ra.targets, rb.targets))
               for ra, rb in zip(recs, base))


def print_latency(rows: list[dict], args) -> None:
    cost = batch_cost(args.nets[0])
    print(f"\nLatency: one game at a time, {args.sims} sims/move, evaluator {args.evaluator} on {args.device}"
          f"{f', first {args.max_moves} moves' if args.max_moves else ''}. Speedups are vs k=0 in the same run.")
    print("replay: batches per move of the tree model (specmcts.bench.spec_model.simulate_tree) replaying this run's move "
          "traces. J model: the chain model fed the measured J (chains: a prediction; trees: J of 'among the top "
          "width candidates', the speedup were every such branch within the budget, a bound).")
    if cost.note:
        print(f"Note: {cost.note}.")
    print(f"Modelled GPU ms/move (GPU ms*) = sum over batches of {cost.label} (a model) at that batch's rows + this "
          f"machine's time per move outside the forward passes (CPU ms: select, cache, encode, backup and "
          f"scheduling, one thread). wall ms: this CPU's own latency, forward included.")
    head = (f"{'net':>10} {'L':>3} {'cache':>5} {'shape':>18} {'batches':>8} {'replay':>7} {'speedup':>8} {'J model':>7} {'rows':>5} "
            f"{'wall ms':>7} {'CPU ms':>7} {'GPU ms*':>8} {'acc 1st/mid/last':>17} {'open/mid/end':>15} {'sure':>5} {'waste':>6} "
            f"{'hit':>4} {'mid':>4} {'agree':>6}")
    print(head)
    for r in rows:
        acc = r["accuracy_by_stage"]
        acc_s = "/".join(f"{a:.2f}" for a in (acc[0], acc[len(acc) // 2], acc[-1])) if acc else "-"
        ph = r["accuracy_by_phase"]
        ph_s = "/".join("-" if v is None or v != v else f"{v:.2f}" for v in ph.values()) if ph else "-"
        model = "-" if r["predicted_speedup"] != r["predicted_speedup"] else f"{r['predicted_speedup']:.2f}x"
        print(f"{r['net']:>10} {r['leaves']:>3} {'on' if r['cache'] else 'off':>5} {r['shape']:>18} "
              f"{r['move_batches']:>8.2f} {r['model_batches']:>7.2f} {r['speedup_batches']:>7.2f}x {model:>7} {r['rows_per_batch']:>5.0f} "
              f"{r['move_ms']:>7.1f} {r['cpu_ms']:>7.1f} {r['model_latency_ms']:>8.2f} {acc_s:>17} {ph_s:>15} "
              f"{100 * r['sure_fraction']:>4.0f}% {100 * r['wasted']:>5.1f}% {100 * r['cache_hit']:>3.0f}% "
              f"{100 * r['cache_hit_middle']:>3.0f}% {r['agreement']:>6.3f}")


def throughput_rows(args, net_name: str) -> list[dict]:
    """``--throughput G``: G games at once, moves/s per k and for ``auto``. With ``--emulate`` each run is
    recorded, then replayed on the emulated device (best of up to two replays), and ``auto`` is the plan
    ``--speculate auto`` makes from the device's table (the cost curve it would measure on that device)."""
    size = board_of(net_name)
    leaves = args.leaves[0]
    mb = min(args.throughput * leaves * 5, 4096)
    runs: list = [k for k in args.k if k <= 4] + ["auto"]
    cost = batch_cost(net_name, args.emulate) if args.emulate else None
    rows = []
    base = None
    for k in runs:
        shape = [f"speculation.k={k}"]  # an int, or "auto"
        name = str(k)
        if k == "auto" and cost is not None:
            from specmcts.engine.spec_shape import plan_speculation

            plan = plan_speculation(cost.seconds, leaves, args.throughput, mb)
            shape = [f"speculation.k={plan.k}", f"speculation.width={plan.width}",
                     f"speculation.rows={plan.trees * leaves}", f"speculation.stages={plan.stages}"]
            name = f"auto={plan.k}" + (f":{plan.width}:{plan.trees}" if plan.k else "")
        cfg = Config().override(
            f"seed={args.seed}", f"game.board={size}", f"search.sims={args.sims}",
            f"search.leaves_per_tree={leaves}", *shape, f"selfplay.games={args.throughput}",
            f"selfplay.concurrent={args.throughput}", f"selfplay.max_moves={args.max_moves}", *args.overrides)
        ev = make_evaluator(args.evaluator, net_name, args.device, max_batch=mb, seed=args.seed)
        if cost is not None:
            from specmcts.engine.emulate import EmulatedDevice, RecordingEvaluator, RowRecord

            # one record per net, as for the latency rows: every k answers a row with the same outputs (a
            # net on a CPU can differ in the last bits between batch sizes), so the records can be compared
            recorder = RecordingEvaluator(ev, RECORDS.setdefault(net_name, RowRecord(size * size + 1)))
            recorded, _ = play(cfg, recorder, 1 << 20)
            recorded = sorted(recorded.records, key=lambda r: r.index)
            if args.overlap != "off":  # its own recording: see latency_rows
                play(cfg.override("search.overlap=true"), recorder, 1 << 20)
            # each replay with search.overlap off and/or on (--overlap): the device's batches while the CPU
            # selects the next ones, under throughput load
            results = []
            for overlap in {"off": [False], "on": [True], "both": [False, True]}[args.overlap]:
                best, identical = None, True
                for _ in range(min(args.repeats, 2)):
                    device = EmulatedDevice.replaying(recorder, cost, wait=args.wait)
                    sp, s = play(cfg.override(f"search.overlap={overlap}"), device, 1 << 20)
                    device.close()
                    identical = identical and records_equal(sorted(sp.records, key=lambda r: r.index), recorded)
                    if best is None or s["wall_s"] < best[1]["wall_s"]:
                        best = (sp, s)
                results.append((overlap, *best, identical))
        else:
            sp, s = play(cfg, ev, 1 << 20)
            results = [(False, sp, s, None)]
        for overlap, sp, s, identical in results:
            if k == "auto" and cost is None:
                name = f"auto={sp.k}"
            records = sorted(sp.records, key=lambda r: r.index)
            if base is None:
                base, base_records = s, records
            rows.append({"net": label(net_name), "k": name, "overlap": overlap, "evals_per_s": s["evals_per_s"],
                         "moves_per_s": s["moves"] / s["wall_s"], "move_ms": s["mean_move_ms"],
                         "relative_moves_per_s": (s["moves"] / s["wall_s"]) / (base["moves"] / base["wall_s"]),
                         "device": cost.label if cost is not None else args.device, "replays_identical": identical,
                         "identical_to_k0": records_equal(records, base_records)})
            print(f"  throughput {label(net_name)} k={name}{', overlap' if overlap else ''}"
                  f"{' (emulated ' + args.emulate + ')' if cost else ''}: {s['evals_per_s']:.0f} evals/s, "
                  f"{rows[-1]['moves_per_s']:.1f} moves/s", file=sys.stderr, flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nets", nargs="+", default=["9x9-2x32"],
                    help=f"random nets of these presets ({', '.join(sorted(NETS))})")
    ap.add_argument("--model", nargs="+", default=[], metavar="PATH",
                    help="trained nets instead: checkpoints, or 'shipped' (the embedded 9x9 net); PATH@N plays a "
                         "net with kata heads on N x N (e.g. shipped@19)")
    ap.add_argument("--evaluator", choices=("net", "hash", "uniform"), default="net")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--sims", type=int, default=800)
    ap.add_argument("--games", type=int, default=1, help="games per shape (played one at a time)")
    ap.add_argument("--max-moves", type=int, default=0, help="cap on moves per game (0: the rules' limit)")
    ap.add_argument("--k", type=int, nargs="*", default=[0, 1, 2, 3, 4, 5], help="chains of these depths")
    ap.add_argument("--tree", type=parse_shape, nargs="*", default=[], metavar="K:W:T",
                    help="speculation trees: depth K, width W, T searches per game (the row budget / leaves)")
    ap.add_argument("--sure", choices=("on", "off", "both"), default="on",
                    help="sure predictions (a lead the simulations left cannot catch); both: each shape twice")
    ap.add_argument("--leaves", type=int, nargs="+", default=[8])
    ap.add_argument("--cache", choices=("on", "off", "both"), default="both")
    ap.add_argument("--throughput", type=int, default=0, help="also measure G concurrent games")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", dest="overrides", action="append", default=[], type=override_arg, metavar="KEY=VALUE",
                    help="a config override for every run (e.g. search.threads=2 search.parallel_min_trees=2)")
    ap.add_argument("--json", metavar="FILE", help="also write all rows as JSON")
    ap.add_argument("--emulate", metavar="DEVICE", choices=("h100",),
                    help="also replay every run on an emulated DEVICE (its measured forward table, "
                         "specmcts/engine/emulate.py) and add its wall ms per move and their split to each row")
    ap.add_argument("--overlap", choices=("off", "on", "both"), default="off",
                    help="search.overlap in the emulated replays, latency and throughput rows (two batches in "
                         "flight: two lanes)")
    ap.add_argument("--wait", choices=("auto", "spin", "sleep"), default="auto",
                    help="how a thread waits out the emulated device (specmcts.engine.emulate.EmulatedDevice): auto spins "
                         "with one lane, as CUDA does with cores to spare, and sleeps with two")
    ap.add_argument("--repeats", type=int, default=3,
                    help="emulated replays per run; the fastest is reported (each must equal the recording)")
    ap.add_argument("--timeline", metavar="PNG", help="with --emulate: draw k=0 beside the fastest shape (and the fewest batches)")
    ap.add_argument("--timeline-moves", default="11:14", metavar="A:B",
                    help="the moves the timeline shows, A to B (1 is the game's first move; A >= 2; default 11:14)")
    ap.add_argument("--note", default="", help="what else ran on the machine meanwhile (printed with the results, "
                    "beside the share of this benchmark's cores that other programs used)")
    ap.add_argument("--compare", nargs="+", metavar="JSON", help="only compare the rows of these --json files")
    args = ap.parse_args(argv)
    if args.compare:
        return compare(args.compare)
    try:
        first, last = (int(x) for x in args.timeline_moves.split(":"))
        if not 2 <= first <= last:
            raise ValueError
    except ValueError:
        ap.error(f"--timeline-moves is A:B with 2 <= A <= B, got {args.timeline_moves!r}")
    if args.timeline and args.max_moves and last > args.max_moves:
        ap.error(f"--timeline-moves {args.timeline_moves}: the games stop after {args.max_moves} moves")
    args.timeline_moves = (first - 1, last - 1)  # move numbers (0: the first move)
    try:
        threads = Config().override(*args.overrides).search.threads
    except ValueError as err:
        ap.error(f"--set: {err}")
    if threads > 1 and (why := too_many_threads(threads)):  # 0: the plan's share
        ap.error(f"search.threads={why}")
    if args.timeline and not args.emulate:
        ap.error("--timeline draws the emulated device: add --emulate h100")
    if args.emulate and args.evaluator != "net":
        ap.error("--emulate replays a net's outputs: --evaluator net")
    if args.model:
        args.nets = list(args.model)
    bad = [n for n in args.nets if n not in NETS and not args.model]
    if bad:
        ap.error(f"unknown net {bad[0]} (presets: {', '.join(sorted(NETS))}; trained nets: --model PATH)")
    if 0 not in args.k:
        args.k = [0] + args.k
    sure = {"on": [True], "off": [False], "both": [True, False]}[args.sure]
    shapes = [parse_shape("0")]
    for shape in [parse_shape(str(k)) for k in args.k if k > 0] + list(args.tree):
        shapes += [{**shape, "sure": on} for on in sure]
    caches = {"on": [1 << 20], "off": [0], "both": [1 << 20, 0]}[args.cache]
    started = time.perf_counter()
    share = MachineShare()
    # compile every kernel (and capture CUDA graphs) before anything is timed
    warm = Config().override(f"game.board={board_of(args.nets[0])}", "search.sims=32", "speculation.k=1",
                             "selfplay.games=1", "selfplay.concurrent=1", "selfplay.max_moves=6")
    play(warm, make_evaluator(args.evaluator, args.nets[0], args.device, 64, args.seed), max(caches))
    rows = []
    for net_name in args.nets:
        for leaves in args.leaves:
            for cache in caches:
                rows += latency_rows(args, net_name, leaves, cache, shapes)
    through = []
    if args.throughput:
        for net_name in args.nets:
            through += throughput_rows(args, net_name)

    print_latency(rows, args)
    if args.emulate:
        print_emulated(rows, args)
    if through:
        print(f"\nThroughput: {args.throughput} concurrent games"
              f"{f' on the emulated {args.emulate} (replays; auto: the plan from its table)' if args.emulate else ''}")
        print(f"{'net':>13} {'k':>12} {'overlap':>8} {'evals/s':>10} {'moves/s':>9} {'vs k=0':>7} {'= k=0':>6} "
              f"{'replays':>8}")
        for r in through:
            same = "-" if r["replays_identical"] is None else ("same" if r["replays_identical"] else "DIFFER")
            print(f"{r['net']:>13} {str(r['k']):>12} {'on' if r['overlap'] else 'off':>8} {r['evals_per_s']:>10,.0f} "
                  f"{r['moves_per_s']:>9.1f} {r['relative_moves_per_s']:>6.2f}x "
                  f"{'yes' if r['identical_to_k0'] else 'NO':>6} {same:>8}")
    best = max(rows, key=lambda r: r["speedup_batches"])
    chains = [r for r in rows if r["shape"].startswith("chain") and r["k"] > 0 and r["sure"]]
    trees = [r for r in rows if r["shape"].startswith("tree") and r["sure"]]
    versus = ""
    if chains and trees:
        bc = max(chains, key=lambda r: r["speedup_batches"])
        bt = max(trees, key=lambda r: r["speedup_batches"])
        versus = (f"; best tree {bt['shape']} {bt['speedup_batches']:.2f}x vs best chain {bc['shape']} "
                  f"{bc['speedup_batches']:.2f}x ({bt['speedup_batches'] / bc['speedup_batches']:.2f}x)")
    all_identical = all(r["identical"] for r in rows)
    worst = max(rows, key=lambda r: abs(r["model_batches"] / r["move_batches"] - 1))
    print(f"\nsummary: best {best['speedup_batches']:.2f}x fewer batches per move than k=0 at {best['shape']} "
          f"({best['net']}, L={best['leaves']}, cache {'on' if best['cache'] else 'off'}), modelled GPU "
          f"{best['model_latency_ms']:.2f} ms/move{versus}; replay model within "
          f"{100 * abs(worst['model_batches'] / worst['move_batches'] - 1):.1f}% of every row; "
          f"records identical to k=0: {all_identical}; "
          f"{time.perf_counter() - started:.0f} s")
    if args.emulate:
        print(emulated_summary(rows))
        if args.timeline:
            draw_timeline(args.timeline, rows, args)
    if args.overrides:
        print(f"settings in every run: {' '.join(args.overrides)}")
    print(share.note(args.note))
    if args.json:
        Path(args.json).write_text(json.dumps({"latency": rows, "throughput": through, "settings": args.overrides},
                                              default=float, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
