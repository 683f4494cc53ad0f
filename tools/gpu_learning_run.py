#!/usr/bin/env python3
"""GPU learning run: the CPU config (configs/go9cpu.yaml: same net, same search) trained by `specmcts run`
(async, several self-play workers on the GPU) for 10 minutes, then matches against GnuGo and the CPU-trained net.

    python tools/gpu_learning_run.py                       # 10 min run + 40 games vs GnuGo 1 and 10 and the shipped net
    python tools/gpu_learning_run.py --config configs/go9.yaml --minutes 25 --out runs/gpu9-6x64   # the 6x64 preset
    python tools/gpu_learning_run.py --smoke               # a 1-minute 5x5 rehearsal on any machine (CPU ok)

What it reports (and writes to ``<out>/gpu_report.json``):

- the Elo curve: ``elo/vs_first`` (and ``elo/vs_gnugo_l1``) logged by the run every ``--eval-every`` steps,
- throughput: self-play games/hour and samples/s, trainer samples/s, steps,
- the final net against GnuGo level 1 and level 10 and against ``--reference`` (default: the shipped net, the
  CPU-trained one): score, Elo with its 95 % interval,
- the checkpoint size (must stay under 10 MB: weights + optimizer state of a 6x64 net are about 3.5 MB).

Self-play runs in ``--workers`` processes sharing the GPU with the trainer; each plays ``--concurrent`` games at
once (one batched search, CUDA graphs). TensorBoard: ``tensorboard --logdir <out>/tb``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from specmcts.bench.run import json_summary  # noqa: E402

MAX_CHECKPOINT_BYTES = 10 * 1024 * 1024

# What changes on a GPU machine, whatever the config: where and how wide the evaluator runs and how self-play
# and training share the machine. The net, the search and the learning settings are the config's.
GPU_OVERRIDES = [
    "evaluator.device=auto", "evaluator.max_batch=512", "evaluator.cuda_graphs=true", "evaluator.torch_threads=0",
    "search.threads=0", "selfplay.concurrent=64", "run.mode=async", "run.max_lead_samples=200000",
    "train.log_every=50", "eval.concurrent=64",
]

SMOKE_OVERRIDES = [
    "game.board=5", "net.blocks=1", "net.channels=16", "net.value_hidden=16", "search.sims=16",
    "selfplay.concurrent=8", "run.chunk_games=8", "train.batch_size=32", "train.min_samples=64",
    "train.window_samples=5000", "train.window_growth=0", "train.window_max_samples=0",
    "train.checkpoint_every=10", "train.log_every=5", "train.lr_warmup_steps=0", "eval.sims=16",
    "eval.concurrent=8", "evaluator.device=cpu", "evaluator.max_batch=128", "evaluator.cache_entries=16384",
]


def specmcts(*args: str, log: Path) -> dict:
    """Run a specmcts subcommand with --json; stderr (progress, notes) goes to ``log``; returns the summary."""
    cmd = [sys.executable, "-m", "specmcts", *args, "--json", "--quiet"]
    shown = [a for i, a in enumerate(args) if a != "--set" and (i == 0 or args[i - 1] != "--set")]
    print(f"$ specmcts {' '.join(shown)} (+ {args.count('--set')} --set overrides; log: {log})", flush=True)
    try:
        with open(log, "a") as err:
            return json_summary(cmd, f"gpu_learning_run: {args[0]}", stderr=err, cwd=ROOT)
    except SystemExit as failed:
        sys.exit(f"{failed}\n" + "\n".join(log.read_text().strip().splitlines()[-5:]))


def read_curve(tb_dir: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})
    acc.Reload()
    if tag not in acc.Tags()["scalars"]:
        return []
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/gpu9", help="run directory (default: runs/gpu9; replaced unless --resume)")
    p.add_argument("--config", default=str(ROOT / "configs" / "go9cpu.yaml"),
                   help="the config to train (default: configs/go9cpu.yaml, the shipped net's)")
    p.add_argument("--reference", default="shipped",
                   help="a net to play at the end, e.g. the CPU-trained one (default: shipped; 'none': skip)")
    p.add_argument("--minutes", type=float, default=10.0, help="length of the learning run (default: 10)")
    p.add_argument("--workers", type=int, default=0, help="self-play processes (default: cores / 2, at most 8)")
    p.add_argument("--games", type=int, default=40, help="games per match against each GnuGo level (default: 40)")
    p.add_argument("--levels", type=int, nargs="+", default=[1, 10], help="GnuGo levels (default: 1 10)")
    p.add_argument("--eval-every", type=int, default=2000, help="trainer steps between Elo points (default: 2000)")
    p.add_argument("--eval-games", type=int, default=40, help="games per Elo point vs the first net (default: 40)")
    p.add_argument("--gnugo-games", type=int, default=20,
                   help="games per Elo point vs GnuGo level 1 during the run (0: off; default: 20)")
    p.add_argument("--speculate", type=int, default=0, help="self-play speculation depth (default: 0)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--smoke", action="store_true", help="1-minute 5x5 rehearsal of the whole script (CPU is fine)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="extra config override, passed to specmcts (repeatable)")
    args = p.parse_args()

    out = (ROOT / args.out) if not Path(args.out).is_absolute() else Path(args.out)
    minutes = 1.0 if args.smoke and args.minutes == 10.0 else args.minutes
    workers = args.workers or max(1, min(8, (os.cpu_count() or 2) // 2))
    overrides = list(GPU_OVERRIDES) + (SMOKE_OVERRIDES if args.smoke else [])
    overrides += [f"run.workers={1 if args.smoke else workers}", f"run.eval_every={10 if args.smoke else args.eval_every}",
                  f"run.eval_games={4 if args.smoke else args.eval_games}",
                  f"run.eval_gnugo_games={2 if args.smoke else args.gnugo_games}", "eval.gnugo_level=1",
                  f"speculation.k={args.speculate}"]
    overrides += args.overrides
    sets = [x for o in overrides for x in ("--set", o)]
    games = 4 if args.smoke else args.games

    if out.exists() and not args.resume:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "gpu_learning_run.log"
    if not args.smoke:
        import torch

        if not torch.cuda.is_available():
            print("gpu_learning_run: no CUDA GPU visible; this will run on the CPU (use --smoke for a rehearsal)",
                  file=sys.stderr)

    t0 = time.perf_counter()
    run = specmcts("run", "--config", args.config, "--out", str(out),
                   "--minutes", str(minutes), *(["--resume"] if args.resume else []), *sets, log=log)
    run_wall = time.perf_counter() - t0
    checkpoint = Path(run["checkpoint"])
    size = checkpoint.stat().st_size
    first = sorted((out / "models").glob("model_*.pt"))[0]

    matches = {}
    for level in args.levels:
        m = specmcts("eval", "--config", args.config, "--model", str(checkpoint),
                     "--opponent", "gnugo", "--gnugo-level", str(level), "--games", str(games), "--out", str(out),
                     *sets, log=log)
        matches[f"gnugo_l{level}"] = m
    vs_first = specmcts("eval", "--config", args.config, "--model", str(checkpoint),
                        "--opponent", str(first), "--games", str(games), "--out", str(out), *sets, log=log)
    if args.reference != "none" and not args.smoke:
        from specmcts.engine.network import CheckpointError, resolve_model

        try:
            reference = resolve_model(args.reference, 9)
        except CheckpointError as e:
            print(f"gpu_learning_run: no match against the reference ({e})", file=sys.stderr)
        else:
            matches["reference"] = specmcts("eval", "--config", args.config, "--model", str(checkpoint),
                                            "--opponent", reference, "--games", str(games), "--out", str(out),
                                            *sets, log=log)

    elo_curve = read_curve(out / "tb", "elo/vs_first")
    gnugo_curve = read_curve(out / "tb", "elo/vs_gnugo_l1")
    loss_curve = read_curve(out / "tb", "train/loss")
    report = {
        "minutes": minutes, "run_wall_s": round(run_wall, 1), "device": "smoke" if args.smoke else "gpu",
        "steps": run["step"], "games": run["games"], "games_per_hour": run["games_per_hour"],
        "selfplay_samples": run["selfplay_samples"],
        "selfplay_samples_per_s": run["selfplay_samples"] / run["wall_s"] if run["wall_s"] else 0.0,
        "train_samples_per_s": run["train_samples_per_s"],
        "checkpoint": str(checkpoint), "checkpoint_bytes": size, "checkpoint_under_10MB": size < MAX_CHECKPOINT_BYTES,
        "elo_curve_vs_first": elo_curve, "elo_curve_vs_gnugo_l1": gnugo_curve,
        "loss_first_last": [loss_curve[0][1], loss_curve[-1][1]] if loss_curve else None,
        "final_vs_first": vs_first, "final_vs_gnugo": matches,
    }
    (out / "gpu_report.json").write_text(json.dumps(report, indent=2, default=float))

    print(f"\nrun: {run['step']} steps, {run['games']} games in {run_wall / 60:.1f} min | "
          f"{report['games_per_hour']:.0f} games/h, {report['selfplay_samples_per_s']:.0f} self-play samples/s, "
          f"{report['train_samples_per_s']:.0f} train samples/s")
    print(f"checkpoint: {checkpoint.name}, {size / 1e6:.2f} MB ({'<' if report['checkpoint_under_10MB'] else '>='} 10 MB)")
    print("Elo vs the first net: " + ", ".join(f"{s}: {e:+.0f}" for s, e in elo_curve))
    if gnugo_curve:
        print("Elo vs GnuGo level 1: " + ", ".join(f"{s}: {e:+.0f}" for s, e in gnugo_curve))
    for name, m in {"first net": vs_first, **{k.replace('_l', ' level '): v for k, v in matches.items()}}.items():
        high = "+inf" if m["elo_high"] is None else f"{m['elo_high']:+.0f}"
        low = "-inf" if m["elo_low"] is None else f"{m['elo_low']:+.0f}"
        print(f"final vs {name}: {m['wins']}-{m['losses']} ({100 * m['score']:.0f}%), Elo {m['elo']:+.0f} "
              f"[{low}, {high}] over {m['games']} games")
    print(f"report: {out / 'gpu_report.json'}; TensorBoard: tensorboard --logdir {out / 'tb'}")
    return 0 if report["checkpoint_under_10MB"] else 1


if __name__ == "__main__":
    sys.exit(main())
