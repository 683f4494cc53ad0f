"""Self-play scaling over Ray worker actors: games/hour with 1, 2, 4, 8 workers on whatever cluster it runs on.

Each row starts that many ``SelfPlayWorker`` actors (``specmcts.training.distributed``) with the cluster's CPUs and GPUs
split evenly between them (``ray.num_cpus_per_worker`` / ``ray.num_gpus_per_worker`` when set), broadcasts one
fresh net through the object store, lets every worker play one warm-up chunk (JIT, CUDA graphs, cache), then
keeps ``ray.chunks_in_flight`` chunks queued per worker for ``--seconds`` and counts finished games. Shards and
SGFs come back through the object store as in a real run; nothing is trained (this measures self-play alone).

A worker's rate is its games over the time to its last finished chunk (a chunk cut off by the end of the window
is not counted, and neither is its time); the row's rate is the sum over workers. ``games/CPU-hour`` divides
by the CPU time the workers' processes used instead: on a machine shared with other jobs, wall-clock rates
drop while this stays put, and a flat column across rows means Ray adds no per-worker overhead.

    specmcts bench ray_scaling --config tiny --workers 1 2 --seconds 60             # CPU, this machine
    specmcts bench ray_scaling --config configs/go9.yaml --workers 1 2 4 8         # GPU node
    specmcts bench ray_scaling --address auto ...                                   # a running cluster
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="tiny", help="config file or preset (default: tiny)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. --set search.sims=64 (repeatable)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8], help="worker counts (default: 1 2 4 8)")
    p.add_argument("--seconds", type=float, default=60.0, help="timed window per row (default: 60)")
    p.add_argument("--chunk-games", type=int, default=0, help="games per chunk (default: run.chunk_games or "
                   "selfplay.concurrent)")
    p.add_argument("--address", default="local", help="Ray address: local (default), auto, host:port")
    p.add_argument("--num-cpus", type=int, default=0, help="local cluster: CPUs Ray may use (default: all)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON lines instead of a table")
    return p.parse_args(argv)


def bench_row(ray, cfg, workers: int, seconds: float, chunk_games: int) -> dict:
    import dataclasses

    import torch

    from specmcts.training.backends import Chunk
    from specmcts.training.distributed import WorkerPool
    from specmcts.engine.network import build_net

    cfg = dataclasses.replace(cfg, ray=dataclasses.replace(cfg.ray, workers=workers))
    torch.manual_seed(cfg.seed)
    net = build_net(cfg.game.board, cfg.net)
    ref = ray.put({"state": {k: v.detach().cpu() for k, v in net.state_dict().items()},
                   "net": dataclasses.asdict(cfg.net)})
    weights = {"model_id": net.model_id, "step": 0, "refs": [ref]}
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        pool = WorkerPool(cfg, Path(tmp), report=lambda m: print(m, file=sys.stderr))
        pool.start()
        try:
            sessions = iter(range(1 << 30))
            for w in range(workers):  # warm-up: one short chunk each
                pool.submit(w, Chunk(f"warm{next(sessions):06d}-w{w:02d}", max(1, min(4, chunk_games)), w), weights)
            while pool.busy():
                pool.wait(1.0)
            start = time.perf_counter()
            end = start + seconds
            games = [0] * workers
            moves = [0] * workers
            evals = [0] * workers
            cpu = [0.0] * workers
            last = [start] * workers
            while time.perf_counter() < end:
                for w in pool.free(cfg.ray.chunks_in_flight):
                    n = next(sessions)
                    pool.submit(w, Chunk(f"{n:08d}-w{w:02d}", chunk_games, 1000 + n), weights)
                done, _lost = pool.wait(min(0.5, max(0.0, end - time.perf_counter())))
                now = time.perf_counter()
                for w, _chunk, result in done:
                    if now <= end:
                        s = result["summary"]
                        games[w] += s["games"]
                        moves[w] += s["moves"]
                        evals[w] += s["evals"]
                        cpu[w] += s["cpu_s"]
                        last[w] = now
        finally:
            cpus, gpus = pool.cpus, pool.gpus
            pool.stop()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    spans = [t - start for t in last]
    rate = sum(3600.0 * g / s for g, s in zip(games, spans) if s > 0)
    return {
        "workers": workers, "num_cpus_per_worker": cpus, "num_gpus_per_worker": gpus,
        "games": sum(games), "seconds": round(seconds, 1), "games_per_hour": rate,
        "moves_per_s": sum(m / s for m, s in zip(moves, spans) if s > 0),
        "evals_per_s": sum(e / s for e, s in zip(evals, spans) if s > 0),
        "mean_game_length": sum(moves) / max(1, sum(games)),
        # games per hour of the workers' own CPU time: what scaling would give on otherwise idle cores
        "games_per_cpu_hour": 3600.0 * sum(games) / sum(cpu) if sum(cpu) > 0 else 0.0,
        "load_avg_1min": round(load, 2),  # of the driver's machine: other processes there skew the row
    }


def main(argv=None) -> int:
    args = parse_args(argv if argv is not None else sys.argv[1:])
    import logging

    import ray

    from specmcts.config import load_config

    cfg = load_config(args.config, args.overrides)
    chunk_games = args.chunk_games or cfg.run.chunk_games or cfg.selfplay.concurrent
    init = {"address": args.address, "logging_level": logging.WARNING}
    if args.address == "local":
        init["include_dashboard"] = False
        if args.num_cpus:
            init["num_cpus"] = args.num_cpus
    ray.init(**init)
    res = ray.cluster_resources()
    device = "GPU" if res.get("GPU", 0) > 0 and cfg.evaluator.device != "cpu" else "CPU"
    print(f"cluster: {res.get('CPU', 0):g} CPUs, {res.get('GPU', 0):g} GPUs, {len(ray.nodes())} node(s); config "
          f"{cfg.name}: {cfg.game.board}x{cfg.game.board}, net {cfg.net.blocks}x{cfg.net.channels}, "
          f"{cfg.search.sims} sims, {chunk_games} games/chunk x {cfg.selfplay.concurrent} concurrent, "
          f"self-play on {device}", file=sys.stderr)
    rows = []
    try:
        for n in args.workers:
            row = bench_row(ray, cfg, n, args.seconds, chunk_games)
            base = rows[0]["games_per_hour"] if rows else 0.0
            row["speedup"] = row["games_per_hour"] / base if base else 1.0
            rows.append(row)
            if args.json:
                print(json.dumps(row, sort_keys=True), flush=True)
            else:
                print(f"  {n} workers: {row['games_per_hour']:.0f} games/h", file=sys.stderr, flush=True)
            time.sleep(1.0)  # the killed actors' resources return to the pool
    finally:
        ray.shutdown()
    if not args.json:
        print("| workers | CPUs / worker | GPU / worker | games | games/hour | moves/s | evals/s | speedup "
              "| games/CPU-hour | load avg |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['workers']} | {r['num_cpus_per_worker']:g} | {r['num_gpus_per_worker']:g} | {r['games']} | "
                  f"{r['games_per_hour']:.0f} | {r['moves_per_s']:.0f} | {r['evals_per_s']:.0f} | "
                  f"{r['speedup']:.2f}x | {r['games_per_cpu_hour']:.0f} | "
                  f"{r['load_avg_1min']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
