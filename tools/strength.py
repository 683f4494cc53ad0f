"""Measured strength of a net on a board size: matches against GnuGo and the untrained net, and the learning
curve.

    python tools/strength.py                                   # the shipped 9x9 net: the docs/strength.md table
    python tools/strength.py --board 13 --games 40             # the net that plays 13x13 (kata heads: any size)
    python tools/strength.py --model runs/go9cpu/models/model_00012000.pt --visits 200 --levels 1 --games 10
    python tools/strength.py --curve-only --runs runs/go9cpu   # the learning-curve PNG only

Matches (``specmcts.play.match``, the code behind ``specmcts eval``): the net at each of ``--visits`` against
GnuGo 3.8 at each of ``--levels`` and against an untrained net of the same architecture (seeded, made here),
``--games`` games each, on ``--board`` (default: the size the net was trained on), Chinese (area) rules, komi
7.5. Every game is distinct: each pair of games starts from its own random opening (``eval.opening_plies``
legal moves from the seed and the pair's number), played once with each colour; the net samples its first
moves (``eval.temperature_moves``) with a seed per game, and GnuGo gets ``set_random_seed`` per game. The
report counts the distinct games (by their moves) and any duplicates, and names the opening method. GnuGo runs
with ``--capture-all-dead`` and positional superko, so games are played out, and each finished game is judged
by GnuGo's ``final_score`` (dead stones removed) and by our Tromp-Taylor count; disagreements are counted.
Every game is kept as SGF under ``--out``. Score with its Wilson 95 % interval, and Elo (``specmcts.play.elo``).

Learning curve: read back from the TensorBoard logs of the run directories given (``elo/vs_first`` and
``elo/vs_gnugo_l<L>`` against ``compute/cpu_hours`` and ``compute/games`` of the same trainer step; the compute counts every session of
the run, so continued runs line up) and drawn with matplotlib into ``--png``.

Prints a markdown table and a one-line summary; ``--json`` for one JSON object. Writes the same JSON to
``<out>/strength.json``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def untrained_like(model: str, out: Path, seed: int = 0) -> Path:
    """An untrained net of ``model``'s architecture and board (seeded), written to ``out``."""
    import torch

    from specmcts.engine.network import build_net, net_config_of, read_checkpoint, save_model

    meta = read_checkpoint(model)
    torch.manual_seed(seed)
    net = build_net(int(meta["board_size"]), net_config_of(meta["net"]))
    path = out / "untrained.pt"
    save_model(path, net, {"step": 0})
    return path


def match(model: str, opponent: str, visits: int, games: int, out: Path, level: int | None, seed: int,
          progress: bool, stop_when=None, board: int = 0) -> dict:
    from specmcts.config import load_config
    from specmcts.play.match import eval_run
    from specmcts.engine.network import net_config_of, read_checkpoint

    meta = read_checkpoint(model)
    board = board or int(meta["board_size"])
    cfg = load_config(None, [f"game.board={board}", "game.komi=7.5", f"eval.sims={visits}", f"seed={seed}",
                             "evaluator.device=cpu", "evaluator.torch_threads=1", "search.threads=1",
                             f"eval.concurrent={min(games, 64)}", "eval.resign=true"])
    cfg = dataclasses.replace(cfg, net=net_config_of(meta["net"]))
    return eval_run(cfg, model, opponent, games, out, gnugo_level=level, progress=progress, stop_when=stop_when)


def learning_curve(runs: list[Path], png: Path) -> dict:
    """Elo vs CPU-hours and vs games from the runs' TensorBoard logs (every ``elo/vs_*`` tag: the first net,
    GnuGo at a level), drawn into ``png``: one line per tag, and per config where the runs have several
    (e.g. the small net's run and the bigger net's, side by side)."""
    import yaml
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    points = []
    for run in runs:
        recorded = run / "config.yaml"
        config = (yaml.safe_load(recorded.read_text()) or {}).get("name", "?") if recorded.is_file() else "?"
        acc = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0})
        acc.Reload()
        tags = acc.Tags()["scalars"]
        if "compute/cpu_hours" not in tags:
            continue
        hours = {e.step: e.value for e in acc.Scalars("compute/cpu_hours")}
        games = {e.step: e.value for e in acc.Scalars("compute/games")}
        # elo/vs_* (a run of one size) and elo/<N>x<N>/vs_* (a mixed-size run: one line per size)
        for tag in sorted(t for t in tags if t.startswith("elo/") and t.split("/")[-1].startswith("vs_")):
            for e in acc.Scalars(tag):
                # the compute logged at the last self-play point at or before the Elo point's step
                before = [s for s in hours if s <= e.step]
                if before:
                    s = max(before)
                    size = tag.split("/")[1] + " " if tag.count("/") == 2 else ""
                    points.append({"run": run.name, "config": config,
                                   "opponent": size + tag.split("/")[-1].removeprefix("vs_"),
                                   "step": e.step,
                                   "elo": e.value, "cpu_hours": hours[s], "games": games.get(s, 0.0)})
    points.sort(key=lambda p: (p["opponent"], p["cpu_hours"]))
    if points:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        configs = sorted({p["config"] for p in points})
        fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
        for config, opponent in sorted({(p["config"], p["opponent"]) for p in points}):
            series = [p for p in points if p["opponent"] == opponent and p["config"] == config]
            size, _, versus = opponent.rpartition(" ")
            label = {"first": "vs the run's first net"}.get(versus, f"vs {versus.replace('_l', ' level ')}")
            label = f"{size}: {label}" if size else label
            if len(configs) > 1:
                label = f"{config}: {label}"
            for ax, key in ((axes[0], "cpu_hours"), (axes[1], "games")):
                ax.plot([p[key] for p in series], [p["elo"] for p in series], marker="o", label=label)
        axes[0].set_xlabel("CPU-hours (all sessions)")
        axes[1].set_xlabel("self-play games (all sessions)")
        axes[0].set_ylabel("Elo (20-game matches, 64 visits)")
        for ax in axes:
            ax.grid(alpha=0.3)
        axes[1].legend()
        fig.suptitle(f"Learning curve (specmcts run, {', '.join(f'configs/{c}.yaml' for c in configs)})")
        fig.tight_layout()
        png.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(png, dpi=100)
        plt.close(fig)
    return {"png": str(png) if points else None, "points": points}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="shipped", help="checkpoint, or 'shipped' (the net that ships for --board)")
    p.add_argument("--board", type=int, default=0, help="board size (default: the net's own; 9 for shipped)")
    p.add_argument("--visits", type=int, nargs="+", default=[200, 800])
    p.add_argument("--levels", type=int, nargs="*", default=[1, 10], help="GnuGo levels to play")
    p.add_argument("--games", type=int, default=40)
    p.add_argument("--no-untrained", action="store_true", help="skip the match against the untrained net")
    p.add_argument("--runs", type=Path, nargs="*", default=[], help="run directories for the learning curve")
    p.add_argument("--png", type=Path, default=ROOT / "docs" / "learning_curve.png")
    p.add_argument("--curve-only", action="store_true")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "strength")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    from specmcts.play.elo import estimate
    from specmcts.engine.network import CheckpointError, read_checkpoint, resolve_model
    from specmcts.stopping import GracefulStop, say

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    result: dict = {"model": None, "matches": [], "curve": None}
    if not args.curve_only:
        try:
            model = resolve_model(args.model, args.board or 9)
        except CheckpointError as e:
            raise SystemExit(f"strength: {e}")
        result["model"] = model
        result["board"] = args.board or int(read_checkpoint(model)["board_size"])
        opponents = [(f"gnugo-l{level}", "gnugo", level) for level in args.levels]
        if not args.no_untrained:
            opponents.append(("untrained", str(untrained_like(model, out, args.seed)), None))
        def stopping() -> None:
            say("strength: stopping after this move, keeping the finished games (again to stop now)")

        with GracefulStop(stopping) as stop:  # Ctrl-C/SIGTERM: the table of what was played, exit 130
            for visits in args.visits:
                for name, spec, level in opponents:
                    if stop.requested:
                        break
                    started = time.perf_counter()
                    s = match(model, spec, visits, args.games, out / f"b{result['board']}-v{visits}-{name}", level,
                              args.seed, progress=not args.json, stop_when=lambda: stop.requested,
                              board=result["board"])
                    s.update(opponent=name, visits=visits, seconds=time.perf_counter() - started)
                    result["matches"].append(s)
                    if not args.json:
                        est = estimate(s["wins"], s["draws"], s["losses"])
                        print(f"strength: {visits} visits vs {name}: {est}", file=sys.stderr)
        result["stop_reason"] = "interrupted" if stop.requested else "done"
    if args.runs and result.get("stop_reason") != "interrupted":
        result["curve"] = learning_curve(args.runs, args.png)
    (out / "strength.json").write_text(json.dumps(result, default=float, indent=1))
    status = 130 if result.get("stop_reason") == "interrupted" else 0
    if args.json:
        print(json.dumps(result, default=float))
        return status
    if result["matches"]:
        from specmcts.play.elo import format_elo, wilson_interval

        board = result["board"]
        print(f"{board}x{board}, {result['matches'][0].get('opening', '?')}")
        print("| visits | opponent | games | distinct | W-L-D | score [Wilson 95 %] | Elo [95 %] | "
              "judged by final_score | disagreements |")
        print("|---|---|---|---|---|---|---|---|---|")
        for s in result["matches"]:
            est = estimate(s["wins"], s["draws"], s["losses"])
            low, high = wilson_interval(s["score"], s["games"])
            s["score_low"], s["score_high"] = low, high
            judged = s.get("judged_by_final_score", 0)
            scored = judged + s.get("judged_by_tromp_taylor", 0)
            distinct = s.get("distinct_games", s["games"])
            dup = s["games"] - distinct
            print(f"| {s['visits']} | {s['opponent']} | {s['games']} | {distinct}{f' ({dup} repeated)' if dup else ''} | "
                  f"{s['wins']}-{s['losses']}-{s['draws']} | {100 * s['score']:.1f} % [{100 * low:.0f}, "
                  f"{100 * high:.0f}] | {format_elo(est.elo)} [{format_elo(est.low)}, {format_elo(est.high)}] | "
                  f"{judged}/{scored} | {s.get('judge_disagreements', 0)} |")
    curve = result["curve"]
    distinct = sum(s.get("distinct_games", s["games"]) for s in result["matches"])
    played = sum(s["games"] for s in result["matches"])
    line = f"strength: {len(result['matches'])} matches of {args.games} games ({distinct} of {played} distinct)"
    if curve:
        line += f"; learning curve {len(curve['points'])} points -> {curve['png']}"
    if status:
        line += "; stopped: interrupted (finished games kept; the last match is partial)"
    print(line)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
