"""Threads benchmark: what this machine's CPU threads settings cost, beside other busy programs.

KataGo's ``benchmark`` is the model: it measures, then prints the setting to use. Each setting runs as its
own process (OpenMP reads its environment once, at start), the same job each time:

- ``genmove``: ``specmcts gtp`` answers two genmoves (the shipped net, ``--visits``); the engine's own
  search seconds per move;
- ``selfplay``: ``specmcts selfplay --config go9 --games 1 --sims 16`` cut at ``--moves`` moves; its sims/s.

Settings: ``defaults`` (what a user gets today), ``OMP_NUM_THREADS=1`` (everything single-threaded: the
reference of the goal "defaults within 1.5x of it"), ``old defaults`` (torch's and numba's own: one thread
per core each, spinning waits: what the project did before the thread plan), and, to recommend,
``torch T x numba N`` for T, N in 1 and all cores. ``--hogs H`` starts H busy torch processes (matmuls, their
own default threads) for the whole run, as a laptop with a browser and a build would be.

    specmcts bench threads                 # 2 hogs, all settings (a few minutes on 2 cores)
    specmcts bench threads --hogs 0 --json        # an idle machine, machine-readable
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from specmcts.bench.run import json_summary

HOG = """
import time, torch
a = torch.randn(256, 256)
end = time.monotonic() + {seconds}
while time.monotonic() < end:
    a = torch.tanh(a @ a)
"""

GENMOVE_TIME = re.compile(r"genmove [BW]: \S+.* (\d+\.\d+)s cache")


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def settings(n: int) -> list[tuple[str, dict, list[str]]]:
    """(name, environment, --set overrides) of every setting measured."""
    rows = [("defaults", {}, []),
            ("OMP_NUM_THREADS=1", {"OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}, []),
            ("old defaults", {"OMP_WAIT_POLICY": "ACTIVE"},
             [f"evaluator.torch_threads={n}", f"search.threads={n}"])]
    for t in sorted({1, n}):
        for b in sorted({1, n}):
            rows.append((f"torch {t} x numba {b}", {}, [f"evaluator.torch_threads={t}", f"search.threads={b}"]))
    return rows


def environment(env: dict) -> dict:
    """This process's environment without its thread settings, with ``env``'s: what each setting runs in."""
    base = {k: v for k, v in os.environ.items()
            if k not in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OMP_WAIT_POLICY", "KMP_BLOCKTIME")}
    return dict(base, **env)


def run(cmd: list[str], env: dict, stdin: str | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, input=stdin, env=environment(env), capture_output=True, text=True, timeout=timeout)


def genmove_ms(env: dict, overrides: list[str], visits: int) -> float:
    """Mean search time of two genmoves, in ms, as the engine measured it."""
    sets = [x for o in overrides for x in ("--set", o)]
    p = run([sys.executable, "-m", "specmcts", "gtp", "--board", "9", "--visits", str(visits), *sets], env,
            stdin="genmove b\ngenmove w\nquit\n")
    times = [float(t) for t in GENMOVE_TIME.findall(p.stderr)]
    if p.returncode != 0 or len(times) != 2:
        raise RuntimeError(f"gtp failed (rc {p.returncode}): {p.stderr.strip().splitlines()[-1:]}")
    return 1000 * sum(times) / len(times)


def selfplay_sims_per_s(env: dict, overrides: list[str], moves: int, out: Path) -> float:
    sets = [x for o in [f"selfplay.max_moves={moves}", *overrides] for x in ("--set", o)]
    summary = json_summary([sys.executable, "-m", "specmcts", "selfplay", "--config", "go9", "--games", "1",
                            "--sims", "16", "--out", str(out), "--json", *sets], "bench threads: selfplay",
                           env=environment(env), timeout=900)
    return float(summary["sims_per_s"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hogs", type=int, default=2, help="busy torch processes running beside (default 2)")
    ap.add_argument("--visits", type=int, default=200, help="genmove visits (default 200)")
    ap.add_argument("--moves", type=int, default=30, help="self-play moves of the one game (default 30)")
    ap.add_argument("--only", nargs="*", help="setting names to run (default: all)")
    ap.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    args = ap.parse_args(argv)
    n = cores()
    rows = [r for r in settings(n) if not args.only or r[0] in args.only]
    # compile the kernels and warm the disk cache first, alone, so no setting pays for it
    print(f"threads: warming up (numba compiles on a first run), then {len(rows)} settings x 2 jobs "
          f"beside {args.hogs} busy processes", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        genmove_ms({}, [], 8)
        selfplay_sims_per_s({}, [], 4, Path(tmp) / "warm")
        hogs = [subprocess.Popen([sys.executable, "-c", HOG.format(seconds=3600)]) for _ in range(args.hogs)]
        results = []
        try:
            time.sleep(1.0 if hogs else 0.0)
            for i, (name, env, overrides) in enumerate(rows):
                g = genmove_ms(env, overrides, args.visits)
                s = selfplay_sims_per_s(env, overrides, args.moves, Path(tmp) / f"s{i}")
                results.append({"setting": name, "env": env, "set": overrides, "genmove_ms": g, "selfplay_sims_per_s": s})
                print(f"threads: [{i + 1}/{len(rows)}] {name}: genmove {g:.0f} ms, selfplay {s:.0f} sims/s",
                      file=sys.stderr, flush=True)
        finally:
            for h in hogs:
                h.kill()
    ref = next((r for r in results if r["setting"] == "OMP_NUM_THREADS=1"), None)
    for r in results:
        r["genmove_vs_one_thread"] = r["genmove_ms"] / ref["genmove_ms"] if ref else None
        r["selfplay_vs_one_thread"] = ref["selfplay_sims_per_s"] / r["selfplay_sims_per_s"] if ref else None
    tuned = [r for r in results if r["setting"].startswith("torch ")]
    best = min(tuned, key=lambda r: r["genmove_ms"] / tuned[0]["genmove_ms"]
               + tuned[0]["selfplay_sims_per_s"] / r["selfplay_sims_per_s"]) if tuned else None
    machine = {"cores": n, "hogs": args.hogs, "visits": args.visits, "moves": args.moves,
               "load_before": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    if args.json:
        print(json.dumps({"machine": machine, "results": results, "recommended": best and best["set"]}))
        return 0
    print(f"threads benchmark: {n} cores, {args.hogs} busy torch processes beside, genmove at {args.visits} visits "
          f"(shipped 9x9 net), selfplay go9 preset at 16 sims for {args.moves} moves")
    print()
    print(f"{'setting':24} {'genmove ms':>11} {'x 1 thread':>11} {'selfplay sims/s':>16} {'x 1 thread':>11}")
    for r in results:
        gx = f"{r['genmove_vs_one_thread']:.2f}" if ref else "-"
        sx = f"{r['selfplay_vs_one_thread']:.2f}" if ref else "-"
        print(f"{r['setting']:24} {r['genmove_ms']:11.0f} {gx:>11} {r['selfplay_sims_per_s']:16.0f} {sx:>11}")
    print()
    print("x 1 thread: time relative to OMP_NUM_THREADS=1 (1.00 = as fast; higher = slower)")
    if best:
        print("fastest here: " + " ".join(f"--set {o}" for o in best["set"]))
    print(f"threads: {len(results)} settings measured")
    return 0


if __name__ == "__main__":
    sys.exit(main())
