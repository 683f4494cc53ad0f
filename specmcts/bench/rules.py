"""Rules-engine throughput: random-play moves per second on one core, ours vs OpenSpiel's C++ Go.

Workload (ours, ``native.board.random_games``): from the empty board, each move is a uniformly random legal
move that does not fill one of the mover's own eyes, a pass when there is none; positional superko on; the
game ends at two consecutive passes or after 2*N*N moves. The kernel plays whole games without returning to
Python, so this measures the rules code (legality, captures, Zobrist/superko bookkeeping, the feature ring).

OpenSpiel (when ``pyspiel`` imports), on the same board sizes with its defaults (komi 7.5, max_game_length
2*N*N), uniform random over ``legal_actions()`` (which includes pass and eye-filling moves, so its games have
a different length profile: compare moves/s, not games/s). Its API enumerates every legal action each
move, while ours tests points of a shuffled empty list until one is legal; part of the gap is that choice:

- ``openspiel C++ loop``: ``pyspiel.evaluate_bots`` with two ``make_uniform_random_bot`` bots. The whole
  game runs in C++; one Python call per game. This is the fair engine-to-engine comparison.
- ``openspiel pybind``: a Python loop calling ``state.legal_actions()`` / ``state.apply_action()`` each
  move, i.e. what a Python MCTS driving OpenSpiel would pay, pybind11 overhead included.

Everything runs single-threaded (NUMBA_NUM_THREADS=1) and pinned to one core when the OS allows it, after
JIT warm-up (or the numba cache load). Each engine gets several timed repeats; best and median are reported.

    specmcts bench rules                 # 9, 13, 19; about 30 s
    specmcts bench rules --seconds 10 --sizes 9,19 --json
"""
from __future__ import annotations

import os

os.environ.setdefault("NUMBA_NUM_THREADS", "1")  # before numba is imported anywhere

import argparse
import json
import platform
import random
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path


import numpy as np  # noqa: E402

from native import board as kernels  # noqa: E402
from native import layout  # noqa: E402

# Moves per second per core the rules engine must sustain (docs/design.md, "Performance budget": the CPU side of the
# self-play loop has ~16 us per simulation for everything, rules included).
TARGETS = {9: 1_000_000, 19: 400_000}
KOMI = 7.5

OURS = "specmcts (numba)"
OS_CPP = "openspiel C++ loop"
OS_PY = "openspiel pybind"


@dataclass
class Result:
    size: int
    engine: str
    moves_per_s_best: float
    moves_per_s_median: float
    games_per_s_median: float
    mean_game_length: float
    repeats: int
    games: int
    moves: int
    seconds: float
    warmup_s: float
    target_moves_per_s: int | None = None
    meets_target: bool | None = None
    note: str = ""
    per_repeat_moves_per_s: list[float] = field(default_factory=list)


def _summarise(size, engine, samples, warmup_s, note="") -> Result:
    """``samples``: (moves, games, seconds) per repeat."""
    rates = [m / s for m, g, s in samples]
    game_rates = [g / s for m, g, s in samples]
    moves = sum(m for m, _, _ in samples)
    games = sum(g for _, g, _ in samples)
    return Result(
        size=size,
        engine=engine,
        moves_per_s_best=max(rates),
        moves_per_s_median=statistics.median(rates),
        games_per_s_median=statistics.median(game_rates),
        mean_game_length=moves / games,
        repeats=len(samples),
        games=games,
        moves=moves,
        seconds=sum(s for _, _, s in samples),
        warmup_s=warmup_s,
        note=note,
        per_repeat_moves_per_s=[round(r) for r in rates],
    )


# ----------------------------------------------------------------------------------------------
# Engines


def bench_ours(size: int, seconds: float, repeats: int, seed: int) -> Result:
    core = np.zeros(layout.core_len(size), np.int32)
    hist = np.zeros(layout.hist_len(size), np.uint64)
    past = np.zeros(layout.past_len(size), np.int8)
    kernels.init_state(core, hist, past, size, round(KOMI * 2), 1)
    scratch = (np.empty_like(core), np.zeros_like(hist), np.empty_like(past))

    t = time.perf_counter()
    kernels.seed_kernels(seed)
    kernels.random_games(core, hist, past, *scratch, 1)  # JIT compile or cache load
    warmup_s = time.perf_counter() - t

    # Calibrate: how many games fill one repeat (one kernel call per repeat, no Python in between).
    games = 1
    while True:
        t = time.perf_counter()
        kernels.random_games(core, hist, past, *scratch, games)
        dt = time.perf_counter() - t
        if dt >= 0.05:
            break
        games *= 2
    per_repeat = max(1, round(games / dt * seconds / repeats))

    samples = []
    for _ in range(repeats):
        t = time.perf_counter()
        moves = kernels.random_games(core, hist, past, *scratch, per_repeat)
        samples.append((int(moves), per_repeat, time.perf_counter() - t))
    return _summarise(size, OURS, samples, warmup_s)


def _openspiel_timed(run_game, seconds, repeats):
    samples = []
    for _ in range(repeats):
        moves = games = 0
        t = time.perf_counter()
        deadline = t + seconds / repeats
        while True:
            moves += run_game()
            games += 1
            now = time.perf_counter()
            if now >= deadline:
                break
        samples.append((moves, games, now - t))
    return samples


def bench_openspiel_cpp(pyspiel, size: int, seconds: float, repeats: int, seed: int) -> Result:
    game = pyspiel.load_game("go", {"board_size": size, "komi": KOMI})
    bots = [pyspiel.make_uniform_random_bot(0, seed), pyspiel.make_uniform_random_bot(1, seed + 1)]
    counter = iter(range(1 << 62))

    def run_game():
        state = game.new_initial_state()
        pyspiel.evaluate_bots(state, bots, next(counter))  # plays the game to the end, in place, in C++
        return state.move_number()

    t = time.perf_counter()
    for _ in range(3):
        run_game()
    warmup_s = time.perf_counter() - t
    return _summarise(size, OS_CPP, _openspiel_timed(run_game, seconds, repeats), warmup_s,
                      note="whole game in C++ (evaluate_bots + uniform random bots); 1 Python call per game")


def bench_openspiel_pybind(pyspiel, size: int, seconds: float, repeats: int, seed: int) -> Result:
    game = pyspiel.load_game("go", {"board_size": size, "komi": KOMI})
    rng = random.Random(seed)

    def run_game():
        state = game.new_initial_state()
        n = 0
        while not state.is_terminal():
            legal = state.legal_actions()
            state.apply_action(legal[rng.randrange(len(legal))])
            n += 1
        return n

    t = time.perf_counter()
    for _ in range(3):
        run_game()
    warmup_s = time.perf_counter() - t
    return _summarise(size, OS_PY, _openspiel_timed(run_game, seconds, repeats), warmup_s,
                      note="Python loop over legal_actions()/apply_action(): includes pybind11 overhead per move")


# ----------------------------------------------------------------------------------------------
# Environment


def pin_to_one_core(core: int | None) -> int | None:
    """Pin this process to one CPU (the first one allowed, unless ``core`` is given); None if unsupported."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    chosen = core if core is not None else allowed[0]
    try:
        os.sched_setaffinity(0, {chosen})
    except OSError:
        return None
    return chosen


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def import_openspiel():
    try:
        import pyspiel
    except ImportError:
        return None
    return pyspiel


# ----------------------------------------------------------------------------------------------
# Report


def _fmt(x: float, digits: int = 0) -> str:
    return f"{x:,.{digits}f}"


def print_table(env: dict, results: list[Result], ratios: dict) -> None:
    print(f"rules benchmark: random play, single thread, pinned core {env['pinned_core']}, {env['cpu']}")
    print(f"python {env['python']}, numba {env['numba']}, openspiel {env['openspiel'] or env['openspiel_status']}")
    print()
    header = ("size", "engine", "moves/s best", "moves/s median", "games/s", "mean len", "target", "")
    rows = []
    for r in results:
        target = f">= {_fmt(r.target_moves_per_s)}" if r.target_moves_per_s else "-"
        verdict = "" if r.meets_target is None else ("OK" if r.meets_target else "BELOW TARGET")
        rows.append((f"{r.size}x{r.size}", r.engine, _fmt(r.moves_per_s_best), _fmt(r.moves_per_s_median),
                     _fmt(r.games_per_s_median, 1), _fmt(r.mean_game_length, 1), target, verdict))
    widths = [max(len(str(row[i])) for row in rows + [header]) for i in range(len(header))]
    right = {2, 3, 4, 5}
    for row in [header] + rows:
        print("  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                        for i, (c, w) in enumerate(zip(row, widths))).rstrip())
    if ratios:
        print()
        print("ours / OpenSpiel (best moves/s):")
        for size, by_engine in ratios.items():
            parts = [f"{ratio:.2f}x vs {engine}" for engine, ratio in by_engine.items()]
            print(f"  {size}x{size}: " + ", ".join(parts))
    print()
    print("notes:")
    print("  ours: random legal non-eye-filling moves, pass only when none, positional superko,")
    print("        ends at two passes or 2*N*N moves (native.board.random_games, whole games in one numba call)")
    if env["openspiel"]:
        print("  openspiel: uniform over legal_actions() incl. pass and eye-filling moves, max_game_length 2*N*N;")
        print("        game lengths differ from ours, so compare moves/s, not games/s")
        print("        per move OpenSpiel enumerates every legal action (its API); ours stops at the first legal")
        print("        point of a random shuffle of the empty points: part of the gap is that algorithmic choice")
        print(f"  {OS_CPP}: evaluate_bots with uniform random bots, the game loop is C++ (fair engine comparison)")
        print(f"  {OS_PY}: Python loop per move, INCLUDES pybind11 call overhead (what a Python driver pays)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="9,13,19", help="comma-separated board sizes (default: 9,13,19)")
    ap.add_argument("--seconds", type=float, default=30.0,
                    help="total timed budget, split evenly over sizes x engines (default: 30)")
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats per engine and size (default: 5)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--core", type=int, default=None, help="CPU to pin to (default: the first allowed one)")
    ap.add_argument("--no-openspiel", action="store_true", help="skip OpenSpiel even if pyspiel imports")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = ap.parse_args(argv)

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    for s in sizes:
        if not layout.MIN_SIZE <= s <= layout.MAX_SIZE:
            ap.error(f"board size must be {layout.MIN_SIZE}..{layout.MAX_SIZE}, got {s}")
    if args.repeats < 1 or args.seconds <= 0:
        ap.error("--repeats must be >= 1 and --seconds > 0")

    pinned = pin_to_one_core(args.core)
    pyspiel = None if args.no_openspiel else import_openspiel()
    engines = [OURS] + ([OS_CPP, OS_PY] if pyspiel is not None else [])
    slice_s = args.seconds / (len(sizes) * len(engines))

    import numba

    env = {
        "cpu": cpu_name(),
        "pinned_core": pinned,
        "numba_num_threads": os.environ.get("NUMBA_NUM_THREADS"),
        "python": platform.python_version(),
        "numba": numba.__version__,
        "openspiel": getattr(pyspiel, "__version__", "installed") if pyspiel is not None else None,
        "openspiel_status": "used" if pyspiel is not None else ("skipped" if args.no_openspiel else "not installed"),
        "seconds_per_measurement": slice_s,
        "repeats": args.repeats,
        "seed": args.seed,
    }

    results: list[Result] = []
    for size in sizes:
        ours = bench_ours(size, slice_s, args.repeats, args.seed)
        ours.target_moves_per_s = TARGETS.get(size)
        if ours.target_moves_per_s:
            ours.meets_target = ours.moves_per_s_best >= ours.target_moves_per_s
        results.append(ours)
        if pyspiel is not None:
            results.append(bench_openspiel_cpp(pyspiel, size, slice_s, args.repeats, args.seed))
            results.append(bench_openspiel_pybind(pyspiel, size, slice_s, args.repeats, args.seed))

    ratios: dict[int, dict[str, float]] = {}
    for size in sizes:
        ours = next(r for r in results if r.size == size and r.engine == OURS)
        for r in results:
            if r.size == size and r.engine != OURS:
                ratios.setdefault(size, {})[r.engine] = ours.moves_per_s_best / r.moves_per_s_best

    if args.json:
        print(json.dumps({"env": env, "results": [asdict(r) for r in results],
                          "ratio_ours_over_openspiel": {str(k): v for k, v in ratios.items()},
                          "targets_moves_per_s": {str(k): v for k, v in TARGETS.items()}}, indent=2))
    else:
        print_table(env, results, ratios)
    return 0


if __name__ == "__main__":
    sys.exit(main())
