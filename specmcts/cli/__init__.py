"""Command line: ``specmcts selfplay|train|run|eval|gtp|analysis|bench|model``.

Every subcommand is two functions registered in ``COMMANDS``:

- ``add_<name>_arguments(parser)`` declares its flags (shared ones come from ``add_common``),
- ``cmd_<name>(args) -> int`` runs it and returns the exit status.

A ``cmd_<name>`` imports the module that does the work lazily, so ``specmcts --help`` stays fast and never
imports torch.

Exit statuses: 0 success, 1 failure, 2 usage error, 130 interrupted (Ctrl-C).
Flags left at ``None`` mean "take it from the config": defaults < ``--config FILE`` < explicit flags < ``--set``.
``--set KEY=VALUE`` (repeatable) arrives as ``args.overrides``, a list of raw ``"key=value"`` strings.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Callable

from specmcts import __version__
from specmcts.cli.common import (EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, PROG,  # noqa: F401
                                 CommandError, add_common, bounded_int_arg, config_from_args, fraction_arg,
                                 override_arg, positive_float_arg, positive_int_arg, summary_json)
from specmcts.cli.model import add_model_arguments, cmd_model  # noqa: F401
from specmcts.config import MAX_SIMS

# ----------------------------------------------------------------------------------------------
# Subcommands: arguments


def add_selfplay_arguments(p: argparse.ArgumentParser) -> None:
    add_common(p, games=True, sims=True, speculate=True, model=True, out=True,
                games_help="games to play (default: from the config)")
    p.add_argument("--name", metavar="NAME", help="run name: output goes to runs/<NAME>/ (default: go<board>)")
    p.add_argument("--workers", type=positive_int_arg, default=1, metavar="N",
                   help="self-play processes (default 1); with N > 1 they share one evaluator process when "
                        "evaluator.shared says so (auto: with CUDA)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    add_common(p, model=True, out=True,
                model_help="weights to start from (default: a fresh net); with --resume: the checkpoint to "
                           "continue (default: the newest in <run>/models)")
    p.add_argument("--data", metavar="DIR", help="training shards to read (default: <run>/data/)")
    p.add_argument("--steps", type=positive_int_arg, metavar="N",
                   help="train until the optimizer step count reaches N (default: train.steps)")
    p.add_argument("--batch-size", type=positive_int_arg, metavar="N", help="training batch size")
    p.add_argument("--name", metavar="NAME", help="run name (default: go<board>)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the newest checkpoint exactly (weights, optimizer, step, RNG)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    add_common(p, games=True, sims=True, speculate=True, model=True, out=True,
                games_help="self-play games per generation (generations mode)",
                model_help="weights to start the run from, or 'shipped' (the net that ships for the board; default: a fresh net)")
    p.add_argument("--mode", choices=("async", "generations"),
                   help="async: self-play and training concurrently (KataGo); generations: in turns (AlphaZero) "
                        "(default: run.mode)")
    p.add_argument("--generations", type=positive_int_arg, metavar="N",
                   help="self-play -> train -> gate cycles (generations mode; default: until interrupted)")
    p.add_argument("--minutes", type=float, metavar="M", help="stop after M minutes (default: run.minutes, 0 = no limit)")
    p.add_argument("--max-steps", type=positive_int_arg, metavar="N", help="stop at trainer step N")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in <out> from its newest checkpoint")
    p.add_argument("--name", metavar="NAME", help="run name (default: go<board>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="self-play workers as Ray actors (ray.* config; pip install 'specmcts[ray]'): no ADDRESS = "
                        "a new local cluster, 'auto' = the running cluster, or host:port / ray://host:10001")


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    add_common(p, games=True, sims=True, speculate=True, model=True, out=True,
                model_help="checkpoint to evaluate, or 'shipped' (default: the net that ships for the board, "
                           "else the newest in runs/<name>/models)",
                games_help="games in the match (default: eval.games, 40)")
    p.add_argument("--opponent", metavar="WHO", default="gnugo",
                   help="gnugo, random, a checkpoint PATH, 'shipped' (the net that ships for the board), or "
                        "'gtp:<command line>' (default: gnugo)")
    p.add_argument("--gnugo-level", type=int, metavar="L",
                   help="GnuGo strength 0..10 (default: eval.gnugo_level, 1)")
    p.add_argument("--opponent-set", dest="opponent_overrides", action="append", default=[], type=override_arg,
                   metavar="KEY=VALUE", help="a net opponent's own config value, over --set's (repeatable), e.g. "
                                             "--opponent shipped --opponent-set evaluator.cpu_dtype=float32")
    p.add_argument("--name", metavar="NAME", help="run name for the default --model and --out (default: go<board>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_gtp_arguments(p: argparse.ArgumentParser) -> None:
    add_common(p, sims=True, speculate=True, model=True, json=False,
                model_help="checkpoint to play with, 'shipped', or 'fresh' (an untrained net; default: the net "
                           "that ships for the board, else a fresh one)")
    g = p.add_argument_group("engine options")
    g.add_argument("--visits", type=positive_int_arg, metavar="N",
                   help="visits per move (default: search.sims; same as --sims)")
    g.add_argument("--time-per-move", type=positive_float_arg, metavar="S",
                   help="seconds per move at most (GTP time_settings/time_left are honoured too)")
    g.add_argument("--resign-threshold", type=fraction_arg, metavar="W",
                   help="resign when the winrate stays below W for moves.resign_consecutive moves "
                        "(default: from moves.resign_threshold, 0.025; 0 = never resign)")
    g.add_argument("--analysis-visits", type=positive_int_arg, metavar="N", default=20000,
                   help="lz-analyze/kata-analyze stop growing the tree at N visits (default: 20000)")
    g.add_argument("--quiet", action="store_true", help="no log lines on stderr")


def add_analysis_arguments(p: argparse.ArgumentParser) -> None:
    add_common(p, model=True, json=False,
                model_help="checkpoint to analyse with, 'shipped', or 'fresh' (default: the net that ships for "
                           "each board size, else a fresh one)")
    p.add_argument("--slots", type=bounded_int_arg(4096), metavar="N", default=8,
                   help="positions searched at once, in one batch (queries in flight share it; default 8)")
    p.add_argument("--max-visits", type=bounded_int_arg(MAX_SIMS), metavar="N", default=100_000,
                   help="the most visits one position gets, whatever a query asks (default 100000)")


BENCHMARKS = {
    "rules": "random-play moves/s vs OpenSpiel",
    "search": "sims/s and self-play vs the forward pass",
    "speculation": "latency per speculation shape vs k = 0 (--emulate h100: on an emulated GPU)",
    "threads": "the CPU threads settings beside busy programs, and the one to use",
    "throughput": "self-play evals/s with 1 and N processes against the forward ceiling",
    "learning": "two configs trained for the same CPU time, then matched",
    "mctx": "self-play moves/s against mctx + pgx (a peer Python with JAX)",
    "ray_scaling": "self-play over 1, 2, 4, 8 Ray worker actors",
}


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=tuple(BENCHMARKS),
                   help="; ".join(f"{k}: {v}" for k, v in BENCHMARKS.items()) + " (specmcts/bench/<what>.py)")
    p.add_argument("tool_args", nargs=argparse.REMAINDER, metavar="...",
                   help="passed to the benchmark, e.g. specmcts bench speculation --evaluator hash --sims 200")


# ----------------------------------------------------------------------------------------------
# Subcommands: implementations


def cmd_selfplay(args: argparse.Namespace) -> int:
    from pathlib import Path

    from specmcts.training.selfplay import format_summary, run_selfplay

    cfg = config_from_args(args)
    out = Path(args.out) if args.out else Path("runs") / (args.name or f"go{cfg.game.board}")
    if getattr(cfg, "cpu_fallback", False) and not args.json:
        print(f"{PROG} selfplay: no GPU, using the CPU defaults (net {cfg.net.blocks}x{cfg.net.channels}, "
              f"{cfg.search.sims} sims, {cfg.selfplay.games} games); --config configs/go9.yaml for the full preset",
              file=sys.stderr)
    try:
        progress = not (args.quiet or args.json)
        if args.workers > 1:
            from specmcts.training.local import run_selfplay_processes

            summary = run_selfplay_processes(cfg, out, args.model, args.workers, progress)
        else:
            summary = run_selfplay(cfg, out, model_path=args.model, progress=progress)
    except (ValueError, OSError) as err:
        raise CommandError(str(err).splitlines()[0] if str(err) else type(err).__name__) from None
    print(summary_json(summary) if args.json else format_summary(summary))
    reason = summary.get("stop_reason", "done")
    if reason.startswith("failed"):  # selfplay --workers: a worker or the shared evaluator failed
        return 1
    return EXIT_INTERRUPTED if reason == "interrupted" else EXIT_OK


def _run_dir(args: argparse.Namespace, cfg):
    from pathlib import Path

    return Path(args.out) if args.out else Path("runs") / (args.name or f"go{cfg.game.board}")


def _learning_errors():
    """Failures of train/run/eval that deserve one line, not a traceback."""
    from specmcts.config import ConfigError
    from specmcts.play.match import MatchError
    from specmcts.engine.network import CheckpointError
    from specmcts.training.replay import ShardError
    from specmcts.training.trainer import TrainingDiverged

    return (ConfigError, CheckpointError, ShardError, MatchError, TrainingDiverged, ValueError, OSError, RuntimeError)


def _one_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def cmd_train(args: argparse.Namespace) -> int:

    from specmcts.config import resolve_device
    from specmcts.training.trainer import format_train_summary, train_run

    if args.batch_size:
        args.overrides = [f"train.batch_size={args.batch_size}"] + list(args.overrides)
    cfg = config_from_args(args)
    out = _run_dir(args, cfg)
    try:
        summary = train_run(cfg, out, data_dir=args.data, steps=args.steps, resume=args.resume,
                            init_model=args.model, device=resolve_device(cfg.evaluator.device),
                            progress=not (args.quiet or args.json))
    except _learning_errors() as err:
        raise CommandError(_one_line(err)) from None
    print(summary_json(summary) if args.json else format_train_summary(summary))
    return EXIT_INTERRUPTED if summary["stop_reason"] == "interrupted" else EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:

    from specmcts.config import resolve_device
    from specmcts.training.loop import format_run_summary, run_loop

    extra = []
    for flag, key in (("games", "run.games_per_generation"), ("mode", "run.mode"), ("generations", "run.generations"),
                      ("minutes", "run.minutes"), ("max_steps", "run.max_steps")):
        value = getattr(args, flag, None)
        if value is not None:
            extra.append(f"{key}={value}")
    args.overrides = extra + list(args.overrides)
    cfg = config_from_args(args)
    out = _run_dir(args, cfg)
    runner, formatter = run_loop, format_run_summary
    if getattr(args, "ray", None) is not None:  # self-play as Ray actors (specmcts.training.distributed), same run directory
        from functools import partial

        from specmcts.training.loop import format_distributed_summary, run_distributed

        runner, formatter = partial(run_distributed, address=args.ray), format_distributed_summary
    try:
        summary = runner(cfg, out, device=resolve_device(cfg.evaluator.device), resume=args.resume,
                         init_model=args.model, progress=not (args.quiet or args.json))
    except _learning_errors() as err:
        raise CommandError(_one_line(err)) from None
    print(summary_json(summary) if args.json else formatter(summary))
    if summary["stop_reason"] == "self-play failed":
        return EXIT_FAILURE
    return EXIT_INTERRUPTED if summary["stop_reason"] == "interrupted" else EXIT_OK


def cmd_eval(args: argparse.Namespace) -> int:

    from specmcts.config import resolve_device
    from specmcts.play.match import engine_opponent, eval_run, format_eval_summary
    from specmcts.training.trainer import CheckpointStore

    if args.gnugo_level is not None:  # validated with the config (eval.gnugo_level: 0..10)
        args.overrides = [f"eval.gnugo_level={args.gnugo_level}"] + list(args.overrides)
    cfg = config_from_args(args)
    opponent_cfg = None
    if args.opponent_overrides:
        if engine_opponent(args.opponent) is not None:
            raise CommandError(f"--opponent-set sets a net opponent's config (a checkpoint or 'shipped'), not "
                               f"{engine_opponent(args.opponent)}'s", EXIT_USAGE)
        from specmcts.config import ConfigError

        try:
            opponent_cfg = cfg.override(*args.opponent_overrides)
        except ConfigError as err:
            raise CommandError(f"--opponent-set: {err}", EXIT_USAGE) from None
    run = _run_dir(args, cfg)
    from specmcts.engine.network import SHIPPED, embedded_any, embedded_model, resolve_model

    model = args.model
    if model is None:  # the net that ships for the board, else the newest checkpoint of the run, else the
        # shipped net of another size (kata heads play every size; resolve_model says so)
        embedded = embedded_model(cfg.game.board)
        found = CheckpointStore(run).steps()
        if embedded is None and not found and embedded_any(cfg.game.board) is None:
            raise CommandError(f"no --model given, no net ships for {cfg.game.board}x{cfg.game.board} and no "
                               f"checkpoint in {run / 'models'}", EXIT_USAGE)
        model = (str(embedded) if embedded is not None else str(found[-1][1]) if found
                 else resolve_model(SHIPPED, cfg.game.board))
    games = args.games or cfg.eval.games
    from specmcts.stopping import GracefulStop, say

    def stopping() -> None:
        say("eval: stopping after this move, keeping the finished games (again to stop now)")

    try:  # Ctrl-C or SIGTERM: the summary of the finished games (every one has its SGF), exit 130
        with GracefulStop(stopping) as stop:
            summary = eval_run(cfg, model, args.opponent, games, run / "eval",
                               device=resolve_device(cfg.evaluator.device), progress=not (args.quiet or args.json),
                               stop_when=lambda: stop.requested, opponent_cfg=opponent_cfg)
    except _learning_errors() as err:
        raise CommandError(_one_line(err)) from None
    print(summary_json(summary) if args.json else format_eval_summary(summary))
    return EXIT_INTERRUPTED if summary["stop_reason"] == "interrupted" else EXIT_OK


def cmd_gtp(args: argparse.Namespace) -> int:
    from specmcts.play.gtp import EngineOptions, run_gtp
    from specmcts.engine.network import CheckpointError

    cfg = config_from_args(args)
    resign = args.resign_threshold
    if resign is None:
        resign = max(0.0, (cfg.moves.resign_threshold + 1.0) / 2.0)  # a value in [-1, 1] -> a winrate
    options = EngineOptions(
        visits=args.visits or args.sims, seconds=args.time_per_move, analysis_visits=args.analysis_visits,
        resign_threshold=resign, resign_consecutive=cfg.moves.resign_consecutive,
        speculate=cfg.speculation.k, quiet=args.quiet)
    try:
        return run_gtp(cfg, args.model, options)
    except CheckpointError as err:
        raise CommandError(str(err)) from None


def cmd_analysis(args: argparse.Namespace) -> int:
    from specmcts.play.analysis_engine import run_analysis
    from specmcts.engine.network import CheckpointError

    cfg = config_from_args(args)
    try:
        return run_analysis(cfg, args.model, args.slots, args.max_visits)
    except CheckpointError as err:
        raise CommandError(str(err)) from None


def cmd_bench(args: argparse.Namespace) -> int:
    import importlib

    module = importlib.import_module(f"specmcts.bench.{args.what}")  # in the package: works when installed
    return int(module.main(list(args.tool_args)) or EXIT_OK)


# ----------------------------------------------------------------------------------------------
# Registry


@dataclass(frozen=True)
class Command:
    help: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {
    "selfplay": Command(
        "play games with MCTS + the current net; write SGF and training shards",
        "Self-play on many concurrent games. With no arguments beyond --board it uses the board's preset config "
        "and a fresh net when no checkpoint exists, and writes runs/<name>/{sgf,data,tb}/.",
        add_selfplay_arguments, cmd_selfplay),
    "train": Command(
        "train the network on self-play shards",
        "Train the policy/value network on the replay window of training shards; writes checkpoints.",
        add_train_arguments, cmd_train),
    "run": Command(
        "the full loop: self-play -> train -> gate, repeated",
        "Run the AlphaZero loop: self-play, training and gating in one process (or Ray actors).",
        add_run_arguments, cmd_run),
    "eval": Command(
        "play a match against GnuGo, random or another checkpoint; report Elo",
        "Play a match and report the score with a confidence interval and an Elo estimate.",
        add_eval_arguments, cmd_eval),
    "gtp": Command(
        "speak GTP v2 on stdin/stdout (for GUIs and match tools)",
        "GTP v2 engine on stdin/stdout, with lz-analyze / kata-analyze for GUIs.",
        add_gtp_arguments, cmd_gtp),
    "analysis": Command(
        "KataGo's JSON analysis protocol on stdin/stdout (KaTrain's engine)",
        "KataGo-compatible analysis engine: one JSON query per line on stdin, one JSON response per line on "
        "stdout. Use it in KaTrain as a custom engine command (altcommand).",
        add_analysis_arguments, cmd_analysis),
    "bench": Command(
        "measure rules, search, speculation or network throughput",
        "Benchmarks (specmcts.bench): runs one with the arguments that follow.",
        add_bench_arguments, cmd_bench),
    "model": Command(
        "inspect, create, export or grow checkpoints",
        "Checkpoint utilities: describe one, write a fresh net, export weights for inference, or grow a net "
        "deeper/wider so that it plays exactly as before and a run can continue it with more capacity.",
        add_model_arguments, cmd_model),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="AlphaZero-style Go self-play with speculative (inter-decision) parallel MCTS.",
        epilog=f"Run '{PROG} <command> --help' for the flags of one command.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>", title="commands")
    for name, command in COMMANDS.items():
        p = sub.add_parser(name, help=command.help, description=command.description)
        command.add_arguments(p)
        p.set_defaults(_command=name)
    return parser


def main(argv: list[str] | None = None) -> int:
    from specmcts.stopping import quiet_thread_errors

    quiet_thread_errors()
    parser = build_parser()
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as exit_:  # --help, --version, usage errors: return the status instead of exiting
            code = exit_.code
            return code if isinstance(code, int) else (EXIT_OK if code is None else EXIT_USAGE)
        name = getattr(args, "_command", None)
        if name is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        try:
            return int(COMMANDS[name].run(args) or EXIT_OK)
        except CommandError as err:
            print(f"{PROG} {name}: {err}", file=sys.stderr)
            return err.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
