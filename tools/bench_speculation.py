"""Speculation benchmark: self-play latency per k, measured next to the analytical model's prediction.

Latency mode (the point of speculation): one game at a time, ``--sims`` per move, for each k the per-move
and per-game latency, in wall time and in evaluator batches (the noise-free unit the model predicts),
the prediction accuracy per stage, the records' agreement with k = 0, and the NN cache hit rate (overall
and in the middle game). Variants: NN cache on/off, leaves per tree per batch (intra-decision batches).

Throughput mode (``--throughput G``): G concurrent games, evals/s and moves/s per k, i.e. what speculation
costs when the GPU is already busy, and what ``--speculate auto`` picks.

    python tools/bench_speculation.py --device cuda --nets 9x9-6x64 9x9-10x128 19x19-10x128 --leaves 8 16
    python tools/bench_speculation.py --evaluator hash --sims 200 --max-moves 40    # CPU, any machine
    python tools/bench_speculation.py --model shipped --cache on --k 4 8 16 --tree 8:2:17 8:3:17  # chains vs trees
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from spec_model import simulate, simulate_tree  # noqa: E402
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
    from specmcts.network import read_checkpoint, resolve_model

    return int(read_checkpoint(resolve_model(net_name, 9))["board_size"])


def make_evaluator(kind: str, net_name: str, device: str, max_batch: int, seed: int):
    """A random net of a preset (NETS), or a trained one (a checkpoint path, or 'shipped')."""
    import torch

    from specmcts.evaluator import HashEvaluator, NetEvaluator, UniformEvaluator
    from specmcts.network import build_net, load_model, resolve_model

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
    from specmcts.nncache import NNCache

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


def play(cfg: Config, evaluator, cache_entries: int):
    from specmcts.selfplay import SelfPlay

    size = cfg.game.board
    cache = fresh_cache(cache_entries, size)
    sp = SelfPlay(cfg, evaluator, cache, out=None, tensorboard=False)
    sp.pipeline.traces = []  # the move traces the tree model replays
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
    from specmcts.network import read_checkpoint, resolve_model

    data = read_checkpoint(resolve_model(net_name, 9))
    return int(data["board_size"]), int(data["net"]["blocks"]), int(data["net"]["channels"])


def batch_cost(net_name: str, device: str = "h100"):
    """The measured forward time per batch size of the device's table (``specmcts.emulate.forward_cost``: the
    package's H100 table, bf16 CUDA graphs) for the table's net nearest to ours; its ``note`` says when the
    table's net stands in for another."""
    from specmcts.emulate import forward_cost

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


def latency_rows(args, net_name: str, leaves: int, cache_entries: int, shapes: list[dict]) -> list[dict]:
    size = board_of(net_name)
    cost = batch_cost(net_name)
    rows = []
    base = None
    max_trees = max(s["trees"] for s in shapes)
    for shape in shapes:
        k = shape["k"]
        cfg = Config().override(
            f"seed={args.seed}", f"game.board={size}", f"search.sims={args.sims}", f"search.leaves_per_tree={leaves}",
            f"search.speculate={k}", f"search.spec_width={shape['width']}",
            f"search.spec_rows={shape['trees'] * leaves}", f"search.spec_sure={shape.get('sure', True)}",
            f"search.spec_stages={shape['stages'] if k > 0 else 0}", f"selfplay.games={args.games}",
            "selfplay.concurrent=1", f"selfplay.max_moves={args.max_moves}")
        ev = make_evaluator(args.evaluator, net_name, args.device, max_batch=leaves * max_trees, seed=args.seed)
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
        print(f"  {label(net_name)} L={leaves} cache={'on' if cache_entries else 'off'} {r['shape']}: "
              f"{r['move_batches']:.2f} batches/move (replay model {replay:.2f}; {r['speedup_batches']:.2f}x, "
              f"J model {predicted:.2f}x), "
              f"{r['rows_per_batch']:.0f} rows/batch, {r['move_ms']:.1f} ms/move wall, modelled GPU "
              f"{r['model_latency_ms']:.2f} ms/move, agreement {agree:.3f}", file=sys.stderr, flush=True)
    return rows


def print_latency(rows: list[dict], args) -> None:
    cost = batch_cost(args.nets[0])
    print(f"\nLatency: one game at a time, {args.sims} sims/move, evaluator {args.evaluator} on {args.device}"
          f"{f', first {args.max_moves} moves' if args.max_moves else ''}. Speedups are vs k=0 in the same run.")
    print("replay: batches per move of the tree model (tools/spec_model.simulate_tree) replaying this run's move "
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
    size = board_of(net_name)
    rows = []
    base = None
    for k in [k for k in args.k if k <= 4] + ["auto"]:
        cfg = Config().override(
            f"seed={args.seed}", f"game.board={size}", f"search.sims={args.sims}",
            f"search.leaves_per_tree={args.leaves[0]}", f"search.speculate={k}",  # an int, or "auto"
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
    args = ap.parse_args(argv)
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
    # compile every kernel (and capture CUDA graphs) before anything is timed
    warm = Config().override(f"game.board={board_of(args.nets[0])}", "search.sims=32", "search.speculate=1",
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
    if args.json:
        Path(args.json).write_text(json.dumps({"latency": rows, "throughput": through}, default=float, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
