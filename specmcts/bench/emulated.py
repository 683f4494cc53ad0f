"""The speculation benchmark on an emulated device (``specmcts bench speculation --emulate h100``): replays of
the recorded runs on ``specmcts.engine.emulate.EmulatedDevice``, what they measure (wall, device busy, CPU,
idle, what else ran), their table and goals, and the timeline picture."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from specmcts.bench.spec_runs import play, records_equal
from specmcts.config import Config


RECORDS = {}  # net -> RowRecord: every shape of a net records into one, so all shapes see the same outputs


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
        overlap = "".join(f"  {Path(p).stem} with overlap {x['move_ms_overlap']:.2f} ms"
                          for (p, _), x in zip(runs, found) if x and "move_ms_overlap" in x)
        print(f"{r['shape']:>22} {walls} {emus}{overlap}")
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
