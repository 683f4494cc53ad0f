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

from specmcts.bench.spec_model import simulate, simulate_tree  # noqa: E402
from specmcts.config import Config, NetConfig  # noqa: E402

NETS = {
    "9x9-6x64": (9, 6, 64), "9x9-10x128": (9, 10, 128), "19x19-10x128": (19, 10, 128),
    "19x19-20x256": (19, 20, 256), "9x9-2x32": (9, 2, 32), "5x5-2x32": (5, 2, 32), "19x19-2x32": (19, 2, 32),
}


def label(net_name: str) -> str:
    """How a net is shown in the tables: the preset name, or a checkpoint's file name."""
    return net_name if net_name in NETS else Path(net_name).stem


def board_of(net_name: str) -> int:
    """The board of a preset name (NETS) or of a checkpoint (a path or 'shipped')."""
    if net_name in NETS:
        return NETS[net_name][0]
    from specmcts.engine.network import read_checkpoint, resolve_model

    return int(read_checkpoint(resolve_model(net_name, 9))["board_size"])


def make_evaluator(kind: str, net_name: str, device: str, max_batch: int, seed: int):
    """A random net of a preset (NETS), or a trained one (a checkpoint path, or 'shipped')."""
    import torch

    from specmcts.engine.evaluator import HashEvaluator, NetEvaluator, UniformEvaluator
    from specmcts.engine.network import build_net, load_model, resolve_model

    size = board_of(net_name)
    if kind == "hash":
        return HashEvaluator(size, seed=seed, max_batch=max_batch)
    if kind == "uniform":
        return UniformEvaluator(size, max_batch=max_batch)
    if net_name not in NETS:
        net, _meta = load_model(resolve_model(net_name, size))
        return NetEvaluator(net, device, max_batch=max_batch)
    _, blocks, channels = NETS[net_name]
    torch.manual_seed(seed)
    net = build_net(size, NetConfig(blocks=blocks, channels=channels, value_hidden=channels))
    return NetEvaluator(net, device, max_batch=max_batch)


_CACHES = {}


def fresh_cache(entries: int, size: int):
    """An empty NN cache, one allocation per (entries, board) reused across runs: a new 1M-entry cache
    pays its page faults in the first run's timings (several ms per move), which would favour later rows."""
    from specmcts.engine.nncache import NNCache

    key = (entries, size)
    if key not in _CACHES:
        cache = NNCache.for_board(entries, size)
        for arr in vars(cache).values():
            if isinstance(arr, np.ndarray):
                arr.fill(0)  # touch every page now (clear() below sets the keys)
        _CACHES[key] = cache
    cache = _CACHES[key]
    cache.clear()
    cache.reset_stats()
    return cache


def play(cfg: Config, evaluator, cache_entries: int, timeline: bool = False):
    from specmcts.training.selfplay import SelfPlay

    size = cfg.game.board
    cache = fresh_cache(cache_entries, size)
    sp = SelfPlay(cfg, evaluator, cache, out=None, tensorboard=False)
    sp.pipeline.traces = []  # the move traces the tree model replays
    if timeline:  # what the timeline picture draws: the search's CPU work per lane, commits and rollbacks
        sp.search.timeline = []
        sp.pipeline.events = []
    summary = sp.run()
    middle = [m for m in range(size * size // 4, size * size)]
    hits = cache.hits_by_move[middle].sum() if cache.enabled else 0
    total = hits + (cache.misses_by_move[middle].sum() if cache.enabled else 0)
    summary["cache_hit_rate_middle"] = float(hits / total) if total else 0.0
    return sp, summary


def net_shape(net_name: str) -> tuple[int, int, int]:
    """(board, blocks, channels) of a preset name (NETS) or of a checkpoint (a path or 'shipped')."""
    if net_name in NETS:
        return NETS[net_name]
    from specmcts.engine.network import read_checkpoint, resolve_model

    data = read_checkpoint(resolve_model(net_name, 9))
    return int(data["board_size"]), int(data["net"]["blocks"]), int(data["net"]["channels"])


def batch_cost(net_name: str, device: str = "h100"):
    """The measured forward time per batch size of the device's table (``specmcts.engine.emulate.forward_cost``: the
    package's H100 table, bf16 CUDA graphs) for the table's net nearest to ours; its ``note`` says when the
    table's net stands in for another."""
    from specmcts.engine.emulate import forward_cost

    return forward_cost(*net_shape(net_name), device=device)


def parse_shape(text: str) -> dict:
    """``K`` (a chain K deep) or ``K:W:T[:S]`` (a tree: depth K, width W, T searches per game, searches cut
    into S stages, default K + 1)."""
    try:
        parts = [int(x) for x in text.split(":")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        return {"k": parts[0], "width": 1, "trees": parts[0] + 1, "stages": parts[0] + 1}
    if len(parts) not in (3, 4):
        raise argparse.ArgumentTypeError(f"shape is K or K:W:T[:S], got {text!r}")
    return {"k": parts[0], "width": parts[1], "trees": parts[2], "stages": parts[3] if len(parts) == 4 else parts[0] + 1}


def shape_label(shape: dict) -> str:
    if shape["width"] == 1 and shape["trees"] == shape["k"] + 1:
        base = f"chain k={shape['k']}"
    else:
        base = f"tree {shape['k']}:{shape['width']}:{shape['trees']}"
    if shape["stages"] != shape["k"] + 1:
        base += f" S={shape['stages']}"
    return base + ("" if shape.get("sure", True) else " nosure")


def records_equal(a: list, b: list) -> bool:
    """Two runs' game records are the same: moves, search targets, root values, features, results."""
    if len(a) != len(b):
        return False
    for ra, rb in zip(a, b):
        if (ra.moves != rb.moves or ra.result != rb.result or ra.policy_weights != rb.policy_weights
                or len(ra.targets) != len(rb.targets)):
            return False
        if not all(np.array_equal(x, y) for x, y in zip(ra.targets, rb.targets)):
            return False
        if not (np.array_equal(np.array(ra.root_values), np.array(rb.root_values))
                and all(np.array_equal(x, y) for x, y in zip(ra.features, rb.features))):
            return False
    return True


_RECORDS = {}  # net -> RowRecord: every shape of a net records into one, so all shapes see the same outputs
TIMELINES = {}  # (net, leaves, cache, shape, overlap) -> what an emulated run's timeline picture needs


def run_queue_wait_s() -> float:
    """Seconds this thread has spent runnable but not running, waiting for a core another program (or thread)
    held: the kernel's schedstat (Linux; 0 elsewhere)."""
    try:
        return int(Path("/proc/thread-self/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def replay_once(args, cfg: Config, recorder, cache_entries: int, overlap: bool) -> dict:
    """One replay of a recorded run on the emulated device: its wall time per move and the split, per move:
    device busy (the batches' holds; table: the table's own time, the rest the holds' overshoot), CPU (the
    search thread's time not waiting for the device), device idle (wall minus busy), and what other programs
    took meanwhile (their share of the cores; the search thread's run-queue wait)."""
    from specmcts.engine.emulate import EmulatedDevice

    device = EmulatedDevice.replaying(recorder, recorder.emulate_cost, wait=args.wait)
    share, queued = MachineShare(), run_queue_wait_s()
    sp, s = play(cfg.override(f"search.overlap={overlap}"), device, cache_entries, timeline=True)
    queued = run_queue_wait_s() - queued
    others = share.fraction()
    device.close()
    moves = max(s["moves"], 1)
    log = device.log.batches
    wall = s["mean_move_ms"]
    busy = 1000 * device.log.busy_s() / moves
    table = 1000 * device.log.table_s() / moves
    waited = 1000 * sp.search.stats.seconds["forward"] / moves
    spent = {what: 0.0 for what in ("select", "backup")}
    for what, _lane, a, b in sp.search.timeline:
        if what in spent:
            spent[what] += b - a
    steps = sorted((a, b) for what, _lane, a, b in sp.search.timeline if what == "step")
    between = sum(max(0.0, c - b) for (_a, b), (c, _d) in zip(steps, steps[1:]))  # the pipeline, the moves
    return {
        "overlap": overlap, "emulated_ms": wall, "emulated_busy_ms": busy, "emulated_table_ms": table,
        "emulated_cpu_ms": wall - waited, "emulated_idle_ms": wall - busy, "emulated_overshoot_ms": busy - table,
        "emulated_forwards": len(log) / moves, "emulated_batches": s["mean_move_steps"],
        "emulated_select_ms": 1000 * spent["select"] / moves, "emulated_backup_ms": 1000 * spent["backup"] / moves,
        "emulated_between_ms": 1000 * between / moves,
        "emulated_others": others, "emulated_queued_ms": 1000 * queued / moves,
        "emulated_unqueued_ms": wall - 1000 * queued / moves,
        "records": sorted(sp.records, key=lambda r: r.index),
        "timeline": {"batches": list(log), "cpu": list(sp.search.timeline), "events": list(sp.pipeline.events),
                     "k": cfg.speculation.k},
    }


def emulated_runs(args, todo: list) -> None:
    """The second pass of ``--emulate``: every recorded run replayed ``--repeats`` times per ``--overlap``
    setting, round by round over all the runs (a burst of other programs' load then meets every shape alike),
    keeping each one's fastest replay. ``todo``: (row, cfg, recorder, cache entries, recorded records, key)."""
    overlaps = {"off": [False], "on": [True], "both": [False, True]}[args.overlap]
    best, walls, identical = {}, {}, {}
    for round_ in range(args.repeats):
        for i, (r, cfg, recorder, cache_entries, recorded, _key) in enumerate(todo):
            for overlap in overlaps:
                run = replay_once(args, cfg, recorder, cache_entries, overlap)
                same = records_equal(run.pop("records"), recorded)
                identical[i, overlap] = identical.get((i, overlap), True) and same
                walls.setdefault((i, overlap), []).append(run["emulated_ms"])
                if (i, overlap) not in best or run["emulated_ms"] < best[i, overlap]["emulated_ms"]:
                    best[i, overlap] = run
                print(f"    replay {round_ + 1}/{args.repeats} {r['shape']}, overlap {'on' if overlap else 'off'}: "
                      f"{run['emulated_ms']:.2f} ms/move (device busy {run['emulated_busy_ms']:.2f}, table "
                      f"{run['emulated_table_ms']:.2f}; CPU {run['emulated_cpu_ms']:.2f}; idle "
                      f"{run['emulated_idle_ms']:.2f}; waiting for the core {run['emulated_queued_ms']:.2f}; other "
                      f"programs {100 * run['emulated_others']:.0f}% of the cores), records "
                      f"{'identical' if same else 'DIFFERENT'}", file=sys.stderr, flush=True)
    for i, (r, cfg, recorder, _c, _recorded, key) in enumerate(todo):
        runs = []
        for overlap in overlaps:
            run = best[i, overlap]
            TIMELINES[key + (overlap,)] = run.pop("timeline")
            runs.append({**run, "emulated_identical": identical[i, overlap], "emulated_repeats_ms": walls[i, overlap]})
        r.update(runs[0])
        r["emulated_runs"] = runs
        r["emulated_device"] = recorder.emulate_cost.label
        r["emulated_note"] = recorder.emulate_cost.note


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
            "selfplay.concurrent=1", f"selfplay.max_moves={args.max_moves}")
        ev = make_evaluator(args.evaluator, net_name, args.device, max_batch=leaves * max_trees, seed=args.seed)
        if args.emulate:  # the first pass records every row's outputs (and answers a row seen before from them)
            from specmcts.engine.emulate import RecordingEvaluator, RowRecord

            ev = RecordingEvaluator(ev, _RECORDS.setdefault(net_name, RowRecord(size * size + 1)))
            ev.emulate_cost = batch_cost(net_name, args.emulate)
        sp, s = play(cfg, ev, cache_entries)
        recs = sorted(sp.records, key=lambda r: r.index)
        if base is None:
            base = (recs, s)
        b_recs, b_s = base
        pairs = [(a, b) for ra, rb in zip(recs, b_recs) for a, b in zip(ra.moves, rb.moves)]
        agree = sum(a == b for a, b in pairs) / max(len(pairs), 1)
        identical = all(ra.moves == rb.moves and all(np.array_equal(x, y) for x, y in zip(ra.targets, rb.targets))
                        for ra, rb in zip(recs, b_recs))
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


def _emulated_base(rows: list[dict], r: dict, run: dict) -> dict | None:
    """The k = 0 run of ``r``'s net, leaves and cache at ``run``'s overlap setting."""
    for b in rows:
        if (b["k"] == 0 and b["net"] == r["net"] and b["leaves"] == r["leaves"] and b["cache"] == r["cache"]):
            return next((x for x in b["emulated_runs"] if x["overlap"] == run["overlap"]), None)
    return None


def print_emulated(rows: list[dict], args) -> None:
    r0 = rows[0]
    print(f"\nEmulated {args.emulate.upper()}: one game at a time, {args.sims} sims/move"
          f"{f', first {args.max_moves} moves' if args.max_moves else ''}, the same games replayed on the "
          f"emulated device: each batch answered with the outputs the real net gave it in the first pass and held "
          f"for {r0['emulated_device']} at its rows, the GIL released (specmcts/engine/emulate.py).")
    if r0["emulated_note"]:
        print(f"Note: {r0['emulated_note']}.")
    print("wall: measured ms per move on the emulated device. busy: the device's holds per move (table: the "
          "table's own time; busy - table: the holds' overshoot, a sleep that ended late or a core another program "
          "held). CPU: the search thread's time not waiting for the device. idle: wall - busy, the device waiting "
          "for the CPU. x k=0: k=0's wall / this wall, same run. identical: every replay equals the recording.")
    print(f"{'net':>10} {'L':>3} {'cache':>5} {'shape':>18} {'overlap':>7} {'batches':>8} {'fwd':>6} {'wall ms':>8} "
          f"{'busy':>6} {'table':>6} {'CPU':>6} {'idle':>6} {'wall/busy':>9} {'x k=0':>6} {'queued':>6} "
          f"{'wall-q':>7} {'x k=0':>6} {'select':>6} {'backup':>6} {'between':>7} {'identical':>9} {'others':>6}")
    print(f"(the fastest of {args.repeats} replays per row, replayed round by round over all rows; fwd: evaluator calls per move, batches: steps per move, a "
          f"step the NN cache answers whole makes no call; others: the share of this benchmark's cores other "
          f"programs used during that replay; queued: the search thread's time per move runnable but waiting for "
          f"the core (the kernel's run-queue wait: what other programs took from it), wall-q: wall less that, with "
          f"its own x k=0; select, backup: the search's CPU per move, select + cache lookup + encode and cache insert "
          f"+ backup, all lanes; between: the time between batches, the pipeline's planning and the moves played)")
    for r in rows:
        for run in r["emulated_runs"]:
            base = _emulated_base(rows, r, run)
            ratio = base["emulated_ms"] / run["emulated_ms"] if base and run["emulated_ms"] else float("nan")
            ratio_q = (base["emulated_unqueued_ms"] / run["emulated_unqueued_ms"]
                       if base and run["emulated_unqueued_ms"] > 0 else float("nan"))
            print(f"{r['net']:>10} {r['leaves']:>3} {'on' if r['cache'] else 'off':>5} {r['shape']:>18} "
                  f"{'on' if run['overlap'] else 'off':>7} {run['emulated_batches']:>8.2f} "
                  f"{run['emulated_forwards']:>6.2f} {run['emulated_ms']:>8.2f} {run['emulated_busy_ms']:>6.2f} "
                  f"{run['emulated_table_ms']:>6.2f} {run['emulated_cpu_ms']:>6.2f} {run['emulated_idle_ms']:>6.2f} "
                  f"{run['emulated_ms'] / run['emulated_busy_ms']:>9.2f} {ratio:>5.2f}x "
                  f"{run['emulated_queued_ms']:>6.2f} {run['emulated_unqueued_ms']:>7.2f} {ratio_q:>5.2f}x "
                  f"{run['emulated_select_ms']:>6.2f} {run['emulated_backup_ms']:>6.2f} {run['emulated_between_ms']:>7.2f} "
                  f"{str(run['emulated_identical']):>9} {100 * run['emulated_others']:>5.0f}%")
            run["emulated_speedup"] = ratio
            run["emulated_unqueued_speedup"] = ratio_q


def emulated_summary(rows: list[dict]) -> str:
    return "\n".join(_emulated_goals(rows, key) for key in ("emulated_ms", "emulated_unqueued_ms"))


def _emulated_goals(rows: list[dict], key: str) -> str:
    """Goals: the best shape >= 5x lower wall ms per move than k = 0 and <= 8 ms; k = 0 within 1.2x of its own
    device time; records identical (the replay to its recording, every shape's recording to k = 0's)."""
    runs = [(r, run) for r in rows for run in r["emulated_runs"]]
    k0 = [(r, run) for r, run in runs if r["k"] == 0]
    best_r, best = min(runs, key=lambda x: x[1][key])
    base = _emulated_base(rows, best_r, best)
    # k = 0 against its own device time: the table's time (the holds as the device would take them)
    k0_ratio = min(run[key] / run["emulated_table_ms"] for _r, run in k0)
    speedup = base[key] / best[key]
    identical = all(run["emulated_identical"] for _r, run in runs) and all(r["identical"] for r in rows)
    what = "wall" if key == "emulated_ms" else "wall less the run-queue wait"
    return (f"emulated ({what}): best {best_r['shape']} (overlap {'on' if best['overlap'] else 'off'}) "
            f"{best[key]:.2f} ms/move, {speedup:.2f}x lower than k=0's {base[key]:.2f} "
            f"(goal >= 5x: {'met' if speedup >= 5 else 'not met'}; <= 8 ms: "
            f"{'met' if best[key] <= 8 else 'not met'}); k=0 / its device time {k0_ratio:.2f} "
            f"(goal <= 1.2: {'met' if k0_ratio <= 1.2 else 'not met'}); records identical: {identical}")


def draw_timeline(path: str, rows: list[dict], args) -> None:
    """k = 0 beside the fastest shape on the emulated device (and the shape with the fewest batches per move,
    where that is another), the same moves of the same game: the device's
    batches (by lane), the CPU work of each lane (select + encode, backup), the scheduling between batches,
    and each move's decision (commit: a speculated search became the real one; rollback: it starts afresh)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r0 = rows[0]
    runs = [(r, run) for r in rows for run in r["emulated_runs"] if (r["net"], r["leaves"], r["cache"]) ==
            (r0["net"], r0["leaves"], r0["cache"])]
    best_r, best = min(runs, key=lambda x: x[1]["emulated_ms"])
    k0_r, k0 = next((r, run) for r, run in runs if r["k"] == 0 and run["overlap"] == best["overlap"])
    few_r, few = min(((r, run) for r, run in runs if run["overlap"] == best["overlap"]),
                     key=lambda x: (x[1]["emulated_batches"], x[1]["emulated_ms"]))
    shown = [(k0_r, k0), (best_r, best)] + ([(few_r, few)] if few_r is not best_r and few_r is not k0_r else [])
    first, last = args.timeline_moves
    panels = []
    for r, run in shown:
        data = TIMELINES[(r["net"], r["leaves"], r["cache"], r["shape"], run["overlap"])]
        decided = {m: t for t, _kind, _g, m in data["events"]}
        if first - 1 not in decided or last not in decided:
            raise SystemExit(f"--timeline-moves {first + 1}:{last + 1}: the games have moves 2..{max(decided) + 1}")
        panels.append((r, run, data, decided[first - 1], decided[last]))
    span = max(t1 - t0 for *_x, t0, t1 in panels) * 1000
    fig, axes = plt.subplots(len(panels), 1, figsize=(13, 1.2 + 2.6 * len(panels)), sharex=True)
    colours = {"device0": "#1f77b4", "device1": "#6baed6", "select": "#ff7f0e", "backup": "#2ca02c",
               "sched": "#9467bd"}
    titles = ["", "the fastest shape: ", "the fewest batches per move: "]
    for ax, title, (r, run, data, t0, t1) in zip(axes, titles, panels):
        lanes = sorted({lane for _w, lane, _a, _b in data["cpu"] if lane >= 0})
        names = ["device"] + [f"CPU lane {lane}" for lane in lanes] + ["scheduling"]
        y = {name: len(names) - 1 - i for i, name in enumerate(names)}

        def bars(intervals, row, colour, lo=t0, hi=t1):
            xs = [((a - lo) * 1000, (b - a) * 1000) for a, b in intervals if b >= lo and a <= hi]
            ax.broken_barh(xs, (y[row] - 0.38, 0.76), facecolors=colour, linewidth=0)

        for lane in (0, 1):
            bars([(a, b) for ln, _ask, a, b, _n, _h in data["batches"] if ln == lane], "device",
                 colours[f"device{lane}"])
        for lane in lanes:
            for what in ("select", "backup"):
                bars([(a, b) for w, ln, a, b in data["cpu"] if w == what and ln == lane], f"CPU lane {lane}",
                     colours[what])
        steps = sorted((a, b) for w, _ln, a, b in data["cpu"] if w == "step")
        bars([(b, c) for (_a, b), (c, _d) in zip(steps, steps[1:])], "scheduling", colours["sched"])
        shown = [(t, kind, m) for t, kind, _g, m in data["events"] if first <= m <= last]
        for i, (t, kind, m) in enumerate(shown):
            colour = "#2ca02c" if kind == "commit" else ("#d62728" if data["k"] else "#555555")
            ax.axvline((t - t0) * 1000, color=colour, linewidth=1.4)
            close = i and (t - shown[i - 1][0]) * 1000 < 0.08 * span  # labels of close moves go one above another
            ax.text((t - t0) * 1000, len(names) - 0.45 + (0.3 * (i % 3) if close else 0.0),
                    f" {m + 1}" + (f" {kind}" if data["k"] else ""), color=colour, fontsize=8, va="bottom")
        moves = last - first + 1
        ax.set_yticks(list(y.values()), list(y.keys()))
        ax.set_ylim(-0.6, len(names) + 1.0)
        ax.set_title(f"{title}{r['shape']}{', search.overlap on' if run['overlap'] else ''}: moves {first + 1}-{last + 1} "
                     f"in {(t1 - t0) * 1000:.1f} ms ({(t1 - t0) * 1000 / moves:.1f} ms/move here; "
                     f"{run['emulated_ms']:.1f} ms/move over the run: device busy {run['emulated_busy_ms']:.1f}, "
                     f"idle {run['emulated_idle_ms']:.1f})", fontsize=10, loc="left")
        ax.set_xlim(0, span * 1.01)
    axes[-1].set_xlabel("ms")
    from matplotlib.patches import Patch

    handles = [Patch(color=colours["device0"], label="device busy (lane 0)"),
               Patch(color=colours["device1"], label="device busy (lane 1)"),
               Patch(color=colours["select"], label="CPU: select, cache, encode"),
               Patch(color=colours["backup"], label="CPU: backup"),
               Patch(color=colours["sched"], label="CPU: scheduling between batches"),
               Patch(color="#555555", label="move played (k=0)"),
               Patch(color="#2ca02c", label="move played: commit"), Patch(color="#d62728", label="move played: rollback")]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle(f"{r0['net']}, {args.sims} sims, {r0['leaves']} leaves per tree, one game, on the emulated "
                 f"{args.emulate.upper()} ({r0['emulated_device']})", fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    fig.savefig(path, dpi=110)
    print(f"timeline: {path}", file=sys.stderr)


def compare(paths: list[str]) -> int:
    """Wall ms per move of the same shapes from several --json files (a real GPU's run beside an emulated one)."""
    missing = [p for p in paths if not Path(p).is_file()]
    for p in missing:
        print(f"compare: {p}: no such file (its run failed?)")
    runs = [(p, json.loads(Path(p).read_text())["latency"]) for p in paths if p not in missing]
    if not runs:
        return 1
    print("wall ms: the run's own wall time per move (on its --device); emulated ms: its replay on the emulated "
          "device, where it has one")
    print(f"{'shape':>22} " + " ".join(f"{Path(p).stem + ' wall ms':>26}" for p, _ in runs)
          + " " + " ".join(f"{Path(p).stem + ' emulated ms':>30}" for p, _ in runs))
    for r in runs[0][1]:
        key = (r["net"], r["leaves"], r["cache"], r["shape"])
        found = [next((x for x in rows if (x["net"], x["leaves"], x["cache"], x["shape"]) == key), None)
                 for _p, rows in runs]
        walls = " ".join(f"{x['move_ms'] if x else float('nan'):>26.2f}" for x in found)
        emus = " ".join(f"{x.get('emulated_ms', float('nan')) if x else float('nan'):>30.2f}" for x in found)
        print(f"{r['shape']:>22} {walls} {emus}")
    return 0


def _cores_busy_s(cores: list[int]) -> float | None:
    """CPU seconds the kernel counts busy on ``cores`` since boot (Linux), or None."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    hz = os.sysconf("SC_CLK_TCK")
    busy = 0
    for line in lines:
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cores:
            user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[:7])
            busy += user + nice + system + irq + softirq
    return busy / hz


class MachineShare:
    """What else ran on this benchmark's cores while it ran: their busy time minus this process's own."""

    def __init__(self):
        self.cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        self.wall, self.busy, self.mine = time.perf_counter(), _cores_busy_s(self.cores), self._mine()

    @staticmethod
    def _mine() -> float:
        t = os.times()
        return t.user + t.system

    def fraction(self) -> float:
        """The share of this benchmark's cores that other programs used since this was made (nan if unknown)."""
        busy = _cores_busy_s(self.cores)
        if busy is None or self.busy is None or not self.cores:
            return float("nan")
        wall = time.perf_counter() - self.wall
        return max(0.0, (busy - self.busy) - (self._mine() - self.mine)) / max(wall * len(self.cores), 1e-9)

    def note(self, note: str) -> str:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        out = f"ran on cores {self.cores} of {os.cpu_count()}, load average {load:.2f} at the end"
        busy = _cores_busy_s(self.cores)
        if busy is not None and self.busy is not None and self.cores:
            wall = time.perf_counter() - self.wall
            others = max(0.0, (busy - self.busy) - (self._mine() - self.mine))
            out += (f"; other programs used {100 * others / (wall * len(self.cores)):.0f}% of those cores meanwhile "
                    f"({others:.0f} of {wall * len(self.cores):.0f} core-seconds)")
        return out + (f"; meanwhile, elsewhere: {note}" if note else "")


def throughput_rows(args, net_name: str) -> list[dict]:
    size = board_of(net_name)
    rows = []
    base = None
    for k in [k for k in args.k if k <= 4] + ["auto"]:
        cfg = Config().override(
            f"seed={args.seed}", f"game.board={size}", f"search.sims={args.sims}",
            f"search.leaves_per_tree={args.leaves[0]}", f"speculation.k={k}",  # an int, or "auto"
            f"selfplay.games={args.throughput}", f"selfplay.concurrent={args.throughput}",
            f"selfplay.max_moves={args.max_moves}")
        mb = args.throughput * args.leaves[0] * 5
        ev = make_evaluator(args.evaluator, net_name, args.device, max_batch=min(mb, 4096), seed=args.seed)
        sp, s = play(cfg, ev, 1 << 20)
        if base is None:
            base = s
        rows.append({"net": label(net_name), "k": k if k != "auto" else f"auto={sp.k}", "evals_per_s": s["evals_per_s"],
                     "moves_per_s": s["moves"] / s["wall_s"], "move_ms": s["mean_move_ms"],
                     "relative_moves_per_s": (s["moves"] / s["wall_s"]) / (base["moves"] / base["wall_s"])})
        print(f"  throughput {label(net_name)} k={rows[-1]['k']}: {s['evals_per_s']:.0f} evals/s, "
              f"{rows[-1]['moves_per_s']:.1f} moves/s", file=sys.stderr, flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nets", nargs="+", default=["9x9-2x32"],
                    help=f"random nets of these presets ({', '.join(sorted(NETS))})")
    ap.add_argument("--model", nargs="+", default=[], metavar="PATH",
                    help="trained nets instead: checkpoints, or 'shipped' (the embedded 9x9 net)")
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
    ap.add_argument("--json", metavar="FILE", help="also write all rows as JSON")
    ap.add_argument("--emulate", metavar="DEVICE", choices=("h100",),
                    help="also replay every run on an emulated DEVICE (its measured forward table, "
                         "specmcts/engine/emulate.py) and add its wall ms per move and their split to each row")
    ap.add_argument("--overlap", choices=("off", "on", "both"), default="off",
                    help="search.overlap in the emulated replays (two batches in flight: two lanes)")
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
        print(f"\nThroughput: {args.throughput} concurrent games")
        print(f"{'net':>13} {'k':>8} {'evals/s':>10} {'moves/s':>9} {'vs k=0':>7}")
        for r in through:
            print(f"{r['net']:>13} {str(r['k']):>8} {r['evals_per_s']:>10,.0f} {r['moves_per_s']:>9.1f} "
                  f"{r['relative_moves_per_s']:>6.2f}x")
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
    print(share.note(args.note))
    if args.json:
        Path(args.json).write_text(json.dumps({"latency": rows, "throughput": through}, default=float, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
