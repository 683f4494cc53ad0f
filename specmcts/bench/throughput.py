"""Self-play throughput on one machine: our evaluator's forward ceiling, and self-play with N worker
processes, each with a net of its own or all on one shared evaluator process, measured in one run.

    specmcts bench throughput                                  # CPU, small: the tables in docs/performance.md
    specmcts bench throughput --device cuda --net 9x9-6x64 --workers 1 4 8 16 --seconds 40
    specmcts bench throughput --json                           # one JSON object
    specmcts bench throughput --device cuda --net 19x19-10x128 --ceiling-only

Forward ceiling: evals/s of ``NetEvaluator.evaluate(B)`` on random rows at each batch size B of
``--batches``: eager PyTorch (float32; on a CPU with native bf16 also bf16 autocast, which
``evaluator.cpu_dtype: auto`` takes there for batches of 16 rows and more), and on CUDA also the captured CUDA
graphs (bf16), the same evaluator self-play uses. Self-play: for each worker count and each of ``own`` (every process loads the net) and ``shared`` (one
evaluator process serves all, ``evaluator.shared=on``), ``specmcts.training.local.LocalProcesses`` starts the
processes, every worker plays one warm-up chunk (imports, JIT, CUDA graphs), then chunks of ``--chunk-games``
games stay queued for ``--seconds``. Rates count what finished in that window: games/hour over the time to
the last chunk finished in it; evals/s are network rows per second (the shared evaluator's own counters; a
net of its own: the chunks' counts); rows/forward is the mean batch the network saw; ``of ceiling`` divides
evals/s by the forward ceiling at the nearest measured batch. Nets are fresh (seeded): throughput does not
depend on the weights, only on the game lengths they lead to (the same for every row).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path


import numpy as np  # noqa: E402

NETS = {"9x9-6x64": (9, 6, 64), "19x19-10x128": (19, 10, 128), "9x9-2x32": (9, 2, 32), "19x19-2x32": (19, 2, 32)}


def config_for(args, net: str):
    from specmcts.config import load_config

    board, blocks, channels = NETS[net]
    return load_config(None, [
        f"game.board={board}", f"net.blocks={blocks}", f"net.channels={channels}", f"net.value_hidden={channels}",
        f"search.sims={args.sims}", f"search.leaves_per_tree={args.leaves}", f"selfplay.concurrent={args.concurrent}",
        f"evaluator.device={args.device}", f"evaluator.max_batch={args.concurrent * args.leaves}",
        f"evaluator.cache_entries={args.cache_entries}", f"seed={args.seed}", *args.overrides])


def forward_ceiling(cfg, batches: list[int], device: str) -> list[dict]:
    import torch

    from specmcts.engine.evaluator import NetEvaluator, cpu_bf16_native
    from specmcts.engine.network import build_net

    torch.manual_seed(0)
    net = build_net(cfg.game.board, cfg.net)
    rows = []
    if device.startswith("cuda"):
        modes = [("eager", False, "float32"), ("cuda graph", True, "float32")]
    else:  # float32, and bf16 where the CPU computes it natively (evaluator.cpu_dtype auto takes it there)
        modes = [("eager", False, "float32")] + ([("eager bf16", False, "bfloat16")] if cpu_bf16_native() else [])
    for mode, graphs, cpu_dtype in modes:
        ev = NetEvaluator(net, torch.device(device), max_batch=max(batches), cuda_graphs=graphs, dtype=cfg.evaluator.dtype,
                          cpu_dtype=cpu_dtype)
        ev.inputs[:] = np.random.default_rng(0).integers(0, 2, ev.inputs.shape, dtype=np.uint8)
        for b in batches:
            for _ in range(3):
                ev.evaluate(b)
            reps, t0 = 0, time.perf_counter()
            while reps < 3 or time.perf_counter() - t0 < 0.5:
                ev.evaluate(b)
                reps += 1
            seconds = (time.perf_counter() - t0) / reps
            rows.append({"mode": mode, "batch": b, "ms": 1000 * seconds, "evals_per_s": b / seconds})
        ev.close()
    return rows


def selfplay_row(cfg, workers: int, shared: bool, seconds: float, chunk_games: int, out: Path) -> dict:
    from specmcts.engine.network import FRESH
    from specmcts.training.backends import Chunk, chunk_seed
    from specmcts.training.local import LocalProcesses

    cfg = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, workers=workers))
    backend = LocalProcesses(cfg, out, cfg.evaluator.device, model=FRESH, shared=shared, report=lambda m: None)
    counter = iter(range(1 << 30))

    def chunk(games: int) -> Chunk:
        i = next(counter)
        return Chunk(f"b{workers}{'s' if shared else 'o'}-{i:05d}", games, chunk_seed(cfg.seed, i))

    try:
        backend.start()
        for w in range(workers):  # warm-up: one short chunk each
            backend.submit(w, chunk(2))
        while backend.busy():
            backend.collect(0.5)
        before = backend.channel.counters() if shared else None
        t0 = time.perf_counter()
        deadline = t0 + seconds
        games = evals = forwards = 0
        last = t0
        while time.perf_counter() < deadline:
            for w in backend.free():
                backend.submit(w, chunk(chunk_games))
            done, _lost = backend.collect(0.2)
            now = time.perf_counter()
            for s in done:
                if now <= deadline:
                    games += s["games"]
                    evals += s["evals"]
                    forwards += s.get("forwards", 0)
                    last = now
        after = backend.channel.counters() if shared else None
        window = time.perf_counter() - t0
    finally:
        backend.stop()
    if shared:
        evals = after["forwarded"] - before["forwarded"]
        forwards = after["batches"] - before["batches"]
        rows = after["rows"] - before["rows"]
        hits = (after["cache_hits"] - before["cache_hits"] + after["shared_rows"] - before["shared_rows"]) / max(rows, 1)
        evals_per_s = evals / window
    else:
        hits = None
        evals_per_s = evals / max(last - t0, 1e-9)
    return {"workers": workers, "mode": "shared" if shared else "own", "games": games,
            "games_per_hour": games * 3600 / max(last - t0, 1e-9) if games else 0.0,
            "evals_per_s": evals_per_s, "rows_per_forward": evals / max(forwards, 1),
            "server_hit_rate": hits, "window_s": window}


def nearest(ceiling: list[dict], batch: float) -> dict:
    best = [r for r in ceiling if r["mode"] == ceiling[-1]["mode"]]  # the fastest mode measured (graphs on CUDA, native bf16 on CPU)
    return min(best, key=lambda r: abs(np.log(r["batch"]) - np.log(max(batch, 1.0))))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--net", default=None, choices=sorted(NETS), help="default: 9x9-2x32 on CPU, 9x9-6x64 on CUDA")
    ap.add_argument("--batches", type=int, nargs="+", default=None,
                    help="forward ceiling batch sizes (default: 1..256 on CPU, 1..2048 on CUDA)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--modes", nargs="+", default=["own", "shared"], choices=["own", "shared"])
    ap.add_argument("--seconds", type=float, default=40.0, help="timed window per self-play row")
    ap.add_argument("--sims", type=int, default=64)
    ap.add_argument("--leaves", type=int, default=8)
    ap.add_argument("--concurrent", type=int, default=8, help="games in flight per worker")
    ap.add_argument("--chunk-games", type=int, default=8)
    ap.add_argument("--cache-entries", type=int, default=1 << 16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--ceiling-only", action="store_true", help="the forward ceiling alone, no self-play rows")
    ap.add_argument("--save", metavar="FILE", help="also write the JSON object to FILE")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    args = ap.parse_args(argv)
    if args.ceiling_only:
        args.workers = []
    cuda = args.device.startswith("cuda")
    net = args.net or ("9x9-6x64" if cuda else "9x9-2x32")
    batches = args.batches or ([1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048] if cuda else [1, 8, 32, 64, 128, 256])
    cfg = config_for(args, net)
    import torch

    if not cuda:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // 2))
    started = time.perf_counter()
    ceiling = forward_ceiling(cfg, batches, args.device)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for workers in args.workers:
            for mode in args.modes:
                row = selfplay_row(cfg, workers, mode == "shared", args.seconds, args.chunk_games,
                                   Path(tmp) / f"{workers}-{mode}")
                ref = nearest(ceiling, row["rows_per_forward"])
                row["ceiling_batch"], row["of_ceiling"] = ref["batch"], row["evals_per_s"] / ref["evals_per_s"]
                rows.append(row)
                print(f"\r{len(rows)}/{len(args.workers) * len(args.modes)} self-play rows", end="", file=sys.stderr,
                      flush=True)
    print(file=sys.stderr)
    env = {"device": args.device, "net": net, "cpus": os.cpu_count(), "torch": torch.__version__,
           "sims": args.sims, "leaves": args.leaves, "concurrent": args.concurrent, "seconds": args.seconds,
           "total_s": round(time.perf_counter() - started, 1)}
    result = {"env": env, "ceiling": ceiling, "selfplay": rows}
    if args.save:
        Path(args.save).write_text(json.dumps(result, default=float) + "\n")
    if args.json:
        print(json.dumps(result, default=float))
        return 0
    print(f"Forward ceiling, {net} on {args.device} (random rows)")
    print("| mode | batch | ms/call | evals/s |")
    print("|---|---:|---:|---:|")
    for r in ceiling:
        print(f"| {r['mode']} | {r['batch']} | {r['ms']:.3f} | {r['evals_per_s']:,.0f} |")
    if not rows:
        print(f"\nsummary: {net} on {args.device}: up to {max(r['evals_per_s'] for r in ceiling):,.0f} evals/s "
              f"(forward only); {env['total_s']} s")
        return 0
    print(f"\nSelf-play, {net}, {args.sims} sims, {args.concurrent} games x {args.leaves} leaves per worker, "
          f"{args.seconds:g} s per row")
    print("| workers | evaluator | games/hour | evals/s | rows/forward | of ceiling | server cache+shared |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for r in rows:
        hit = "-" if r["server_hit_rate"] is None else f"{100 * r['server_hit_rate']:.1f} %"
        print(f"| {r['workers']} | {r['mode']} | {r['games_per_hour']:,.0f} | {r['evals_per_s']:,.0f} | "
              f"{r['rows_per_forward']:.1f} | {r['of_ceiling']:.2f} (B={r['ceiling_batch']}) | {hit} |")
    best = max(rows, key=lambda r: r["games_per_hour"])
    print(f"\nsummary: best {best['games_per_hour']:,.0f} games/hour with {best['workers']} workers, "
          f"{best['mode']} evaluator ({best['evals_per_s']:,.0f} evals/s, {best['of_ceiling']:.2f} of the "
          f"ceiling); {env['total_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
