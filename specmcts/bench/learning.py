"""Learning efficiency A/B: two configs trained for the same CPU time, three seeds each, every final net
played against one fixed reference net; prints Elo with 95 % intervals.

    specmcts bench learning --minutes 15 --seeds 1 2 3 --reference checkpoints/reference9.pt
    specmcts bench learning --minutes 1 --seeds 1 --eval-games 4 --reference REF   # a quick look
    specmcts bench learning --minutes 15                   # train only (evaluate later with --reference)

Configs (both on ``configs/go9cpu.yaml``'s run settings: generations mode, one core, the same window):

- ``baseline``: the CPU defaults before KataGo-style heads: a 2x32 net with fully connected heads, PUCT root with
  Dirichlet noise, 64 simulations every move, visit-count policy targets;
- ``efficient``: ``configs/go9cpu.yaml`` as it is: a KataGo-style 3x32 net (global pooling, ownership and
  score heads), Gumbel root search with improved-policy targets, playout cap randomization (40/10 sims).

Each (config, seed) is one ``specmcts run`` process pinned to one numba and one torch thread that stops after
M minutes of its own CPU time (``run.cpu_minutes``: equal CPU time whatever else loads the machine),
``--jobs`` at a time. Finished runs are reused when the tool is run again (delete the folder to redo). The runs go
under ``--out`` (default ``runs/bench_learning``); the summary is printed as a table and, with ``--json``,
as one JSON object. Compute (CPU-hours, games) comes from each final checkpoint's metadata.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from specmcts.bench.run import json_summary
from specmcts.config import preset_path

CONFIG = preset_path("go9cpu")  # package data: works from an installed package too
CONFIGS = {
    "baseline": ["net.blocks=2", "net.channels=32", "net.value_hidden=32", "net.heads=fc", "net.gpool_every=0",
                 "search.root=puct", "moves.fast_sims=0", "search.sims=64", "search.leaves_per_tree=8"],
    "efficient": [],
}


def _env() -> dict:
    env = dict(os.environ)
    env.update(NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PATH"] = env.get("PATH", "") + ":/usr/games"
    return env


def _specmcts(*args: str) -> list[str]:
    return [sys.executable, "-m", "specmcts", *args]


def train(name: str, seed: int, minutes: float, out: Path) -> dict:
    run_dir = out / f"{name}-s{seed}"
    if (run_dir / "summary.json").is_file():  # done in an earlier invocation: reuse
        return json.loads((run_dir / "summary.json").read_text())
    cmd = _specmcts("run", "--config", str(CONFIG), "--out", str(run_dir), "--seed", str(seed),
                    "--set", f"run.cpu_minutes={minutes}", "--quiet", "--json", "--set", "run.eval_every=0",
                    *[a for o in CONFIGS[name] for a in ("--set", o)])
    started = time.perf_counter()
    summary = json_summary(cmd, f"bench learning: {name} seed {seed}", env=_env())
    summary["bench_wall_s"] = time.perf_counter() - started
    (run_dir / "summary.json").write_text(json.dumps(summary, default=float))
    return summary


def evaluate(model: str, reference: str, games: int, sims: int, out: Path, seed: int) -> dict:
    cmd = _specmcts("eval", "--model", model, "--opponent", reference, "--games", str(games), "--seed", str(seed),
                    "--out", str(out), "--json", "--quiet", "--config", str(CONFIG), "--set", f"eval.sims={sims}")
    return json_summary(cmd, f"bench learning: eval of {model}", env=_env())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=15.0, help="CPU minutes of training per (config, seed)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=["baseline", "efficient"])
    p.add_argument("--reference", help="the fixed reference net every final net plays (a checkpoint; "
                                        "without it: train only)")
    p.add_argument("--eval-games", type=int, default=40)
    p.add_argument("--eval-sims", type=int, default=64)
    p.add_argument("--jobs", type=int, default=1, help="runs at a time (one core each)")
    p.add_argument("--out", default=str(Path("runs") / "bench_learning"))
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(name, seed) for seed in args.seeds for name in args.configs]
    from tqdm import tqdm

    bar = tqdm(total=(2 if args.reference else 1) * len(jobs), unit="task", file=sys.stderr, disable=args.json)
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {job: pool.submit(train, *job, args.minutes, out) for job in jobs}
        trained = {}
        for job, f in futures.items():
            trained[job] = f.result()
            bar.update(1)
        if not args.reference:
            bar.close()
            for (name, seed), t in trained.items():
                print(f"bench_learning: {name} seed {seed}: {t['games']} games, {t['step']} steps, "
                      f"{(t.get('totals') or {}).get('cpu_hours', 0):.2f} CPU-hours -> {t['checkpoint']}")
            print(f"bench_learning: trained {len(jobs)} runs; evaluate with --reference CHECKPOINT")
            return 0
        evals = {}
        for job in jobs:  # matches one at a time: each plays both colours, SGFs under the run
            name, seed = job
            run_dir = out / f"{name}-s{seed}"
            evals[job] = evaluate(trained[job]["checkpoint"], args.reference, args.eval_games, args.eval_sims,
                                  run_dir / "eval", seed)
            bar.update(1)
    bar.close()
    rows = []
    for name, seed in jobs:
        t, e = trained[(name, seed)], evals[(name, seed)]
        totals = t.get("totals") or {}
        rows.append({"config": name, "seed": seed, "steps": t["step"], "games": t["games"],
                     "cpu_hours": totals.get("cpu_hours"), "score": e["score"], "elo": e["elo"],
                     "elo_low": e["elo_low"], "elo_high": e["elo_high"], "games_played": e["games"]})
    wins = [next(r for r in rows if r["config"] == "efficient" and r["seed"] == s)["score"]
            > next(r for r in rows if r["config"] == "baseline" and r["seed"] == s)["score"]
            for s in args.seeds] if set(args.configs) == {"baseline", "efficient"} else []
    result = {"minutes": args.minutes, "reference": args.reference, "rows": rows,
              "efficient_beats_baseline": f"{sum(wins)}/{len(wins)} seeds" if wins else None}
    if args.json:
        print(json.dumps(result, default=float))
        return 0
    def elo(x):
        return "inf" if x is None else f"{x:+.0f}"

    print("| config | seed | CPU-hours | games | steps | score vs reference | Elo [95 %] |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['config']} | {r['seed']} | {r['cpu_hours'] or 0:.2f} | {r['games']} | {r['steps']} | "
              f"{100 * r['score']:.1f} % of {r['games_played']} | {elo(r['elo'])} [{elo(r['elo_low'])}, {elo(r['elo_high'])}] |")
    line = f"bench_learning: {len(jobs)} runs of {args.minutes:g} min vs {args.reference}"
    if wins:
        line += f"; efficient beats baseline in {sum(wins)}/{len(wins)} seeds"
    print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
