"""Command line: ``specmcts selfplay|train|run|eval|gtp|analysis|bench|model``.

Every subcommand is two functions registered in ``COMMANDS``:

- ``add_<name>_arguments(parser)`` declares its flags (shared ones come from ``_add_common``),
- ``cmd_<name>(args) -> int`` runs it and returns the exit status.

A ``cmd_<name>`` imports the module that does the work lazily, so ``specmcts --help`` stays fast and never
imports torch.

Exit statuses: 0 success, 1 failure, 2 usage error, 130 interrupted (Ctrl-C).
Flags left at ``None`` mean "take it from the config": defaults < ``--config FILE`` < explicit flags < ``--set``.
``--set KEY=VALUE`` (repeatable) arrives as ``args.overrides``, a list of raw ``"key=value"`` strings.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import re
import sys
from dataclasses import dataclass
from typing import Callable

from specmcts import __version__
from specmcts.config import AUTO, MAX_SIMS, MAX_SPECULATE  # config imports only yaml: --help stays light

PROG = "specmcts"
MIN_BOARD = 5  # native.layout.MIN_SIZE / MAX_SIZE, repeated here so --help imports nothing heavy
MAX_BOARD = 19

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CommandError(Exception):
    """A failure the user can act on: printed as one line ``specmcts <cmd>: message``, no traceback."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE):
        super().__init__(message)
        self.exit_code = exit_code


# ----------------------------------------------------------------------------------------------
# Flag types


def _board_size(text: str) -> int:
    try:
        size = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"board size must be an integer, got {text!r}") from None
    if not MIN_BOARD <= size <= MAX_BOARD:
        raise argparse.ArgumentTypeError(f"board size must be {MIN_BOARD}..{MAX_BOARD}, got {size}")
    return size


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _bounded_int(high: int) -> Callable[[str], int]:
    """A positive integer up to ``high`` (a size that allocates in proportion)."""

    def parse(text: str) -> int:
        value = _positive_int(text)
        if value > high:
            raise argparse.ArgumentTypeError(f"expected 1..{high}, got {value}")
        return value

    return parse


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def _finite(value):
    """JSON has no NaN or infinity: such values (a rate with nothing to count) become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def summary_json(summary: dict) -> str:
    """A command's summary as one line of valid JSON (``--json``)."""
    import json

    return json.dumps(_finite(json.loads(json.dumps(summary, default=float))), sort_keys=True)


def _speculate(text: str) -> int | str:
    """``K`` in 0..16, or ``auto``."""
    if text.strip().lower() == AUTO:
        return AUTO
    value = _non_negative_int(text)
    if value > MAX_SPECULATE:
        raise argparse.ArgumentTypeError(f"expected 0..{MAX_SPECULATE} or auto, got {value}")
    return value


_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def _device(text: str) -> str:
    if not _DEVICE_RE.match(text):
        raise argparse.ArgumentTypeError(f"device must be auto, cpu, cuda or cuda:N, got {text!r}")
    return text


def _override(text: str) -> str:
    """``--set section.key=value``; the value is parsed as YAML by the config loader."""
    key, sep, _ = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected key=value (e.g. search.sims=400), got {text!r}")
    return text


# ----------------------------------------------------------------------------------------------
# Shared flags


def _add_common(
    parser: argparse.ArgumentParser,
    *,
    board=True,
    games=False,
    sims=False,
    speculate=False,
    device=True,
    model=False,
    out=False,
    json=True,
    model_help="checkpoint to load (default: latest in the run directory, else a fresh net)",
    games_help="number of games",
) -> None:
    """The flags DESIGN.md promises on every subcommand that makes sense of them."""
    g = parser.add_argument_group("common options")
    if board:
        g.add_argument("--board", type=_board_size, metavar="N",
                       help=f"board size {MIN_BOARD}..{MAX_BOARD} (default: from the config; 9)")
    if games:
        g.add_argument("--games", type=_positive_int, metavar="N", help=games_help)
    if sims:
        g.add_argument("--sims", type=_positive_int, metavar="N", help="MCTS simulations per move")
    if speculate:
        g.add_argument("--speculate", type=_speculate, metavar="K|auto",
                       help="speculative look-ahead depth: search up to K (0..16) moves ahead of the committed "
                            "one (0 = off; records are identical to K=0; trees: --set search.spec_width=W "
                            "search.spec_rows=R; auto = the depth and width whose rows the evaluator takes at "
                            "(almost) no extra cost per batch, measured at start)")
    if device:
        g.add_argument("--device", type=_device, metavar="auto|cpu|cuda",
                       help="where the network runs (default: auto = cuda if available, else cpu)")
    if model:
        g.add_argument("--model", metavar="PATH", help=model_help)
    if out:
        g.add_argument("--out", metavar="DIR", help="output directory (default: runs/<name>/)")
    g.add_argument("--config", metavar="FILE",
                   help="YAML config (default: the preset for the board size, e.g. configs/go9.yaml)")
    g.add_argument("--seed", type=int, metavar="S", help="random seed (default: from the config)")
    g.add_argument("--set", dest="overrides", action="append", default=[], type=_override,
                   metavar="KEY=VALUE", help="override one config value, e.g. --set search.sims=400 (repeatable)")
    if json:
        g.add_argument("--json", action="store_true", help="print the final summary as one JSON object")


# ----------------------------------------------------------------------------------------------
# Subcommands: arguments


def add_selfplay_arguments(p: argparse.ArgumentParser) -> None:
    _add_common(p, games=True, sims=True, speculate=True, model=True, out=True,
                games_help="games to play (default: from the config)")
    p.add_argument("--name", metavar="NAME", help="run name: output goes to runs/<NAME>/ (default: go<board>)")
    p.add_argument("--workers", type=_positive_int, default=1, metavar="N",
                   help="self-play processes (default 1); with N > 1 they share one evaluator process when "
                        "evaluator.shared says so (auto: with CUDA)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    _add_common(p, model=True, out=True,
                model_help="weights to start from (default: a fresh net); with --resume: the checkpoint to "
                           "continue (default: the newest in <run>/models)")
    p.add_argument("--data", metavar="DIR", help="training shards to read (default: <run>/data/)")
    p.add_argument("--steps", type=_positive_int, metavar="N",
                   help="train until the optimizer step count reaches N (default: train.steps)")
    p.add_argument("--batch-size", type=_positive_int, metavar="N", help="training batch size")
    p.add_argument("--name", metavar="NAME", help="run name (default: go<board>)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the newest checkpoint exactly (weights, optimizer, step, RNG)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    _add_common(p, games=True, sims=True, speculate=True, model=True, out=True,
                games_help="self-play games per generation (generations mode)",
                model_help="weights to start the run from, or 'shipped' (the net that ships for the board; default: a fresh net)")
    p.add_argument("--mode", choices=("async", "generations"),
                   help="async: self-play and training concurrently (KataGo); generations: in turns (AlphaZero) "
                        "(default: run.mode)")
    p.add_argument("--generations", type=_positive_int, metavar="N",
                   help="self-play -> train -> gate cycles (generations mode; default: until interrupted)")
    p.add_argument("--minutes", type=float, metavar="M", help="stop after M minutes (default: run.minutes, 0 = no limit)")
    p.add_argument("--max-steps", type=_positive_int, metavar="N", help="stop at trainer step N")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in <out> from its newest checkpoint")
    p.add_argument("--name", metavar="NAME", help="run name (default: go<board>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="self-play workers as Ray actors (ray.* config; pip install 'specmcts[ray]'): no ADDRESS = "
                        "a new local cluster, 'auto' = the running cluster, or host:port / ray://host:10001")


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    _add_common(p, games=True, sims=True, speculate=True, model=True, out=True,
                model_help="checkpoint to evaluate, or 'shipped' (default: the net that ships for the board, "
                           "else the newest in runs/<name>/models)",
                games_help="games in the match (default: eval.games, 40)")
    p.add_argument("--opponent", metavar="WHO", default="gnugo",
                   help="gnugo, random, a checkpoint PATH, 'shipped' (the net that ships for the board), or "
                        "'gtp:<command line>' (default: gnugo)")
    p.add_argument("--gnugo-level", type=int, metavar="L",
                   help="GnuGo strength 0..10 (default: eval.gnugo_level, 1)")
    p.add_argument("--name", metavar="NAME", help="run name for the default --model and --out (default: go<board>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_gtp_arguments(p: argparse.ArgumentParser) -> None:
    def _positive_float(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
        if not 0 < value < float("inf"):
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
        return value

    def _fraction(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
        if not 0 <= value < 1:
            raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
        return value

    _add_common(p, sims=True, speculate=True, model=True, json=False,
                model_help="checkpoint to play with, 'shipped', or 'fresh' (an untrained net; default: the net "
                           "that ships for the board, else a fresh one)")
    g = p.add_argument_group("engine options")
    g.add_argument("--visits", type=_positive_int, metavar="N",
                   help="visits per move (default: search.sims; same as --sims)")
    g.add_argument("--time-per-move", type=_positive_float, metavar="S",
                   help="seconds per move at most (GTP time_settings/time_left are honoured too)")
    g.add_argument("--resign-threshold", type=_fraction, metavar="W",
                   help="resign when the winrate stays below W for search.resign_consecutive moves "
                        "(default: from search.resign_threshold, 0.025; 0 = never resign)")
    g.add_argument("--analysis-visits", type=_positive_int, metavar="N", default=20000,
                   help="lz-analyze/kata-analyze stop growing the tree at N visits (default: 20000)")
    g.add_argument("--quiet", action="store_true", help="no log lines on stderr")


def add_analysis_arguments(p: argparse.ArgumentParser) -> None:
    _add_common(p, model=True, json=False,
                model_help="checkpoint to analyse with, 'shipped', or 'fresh' (default: the net that ships for "
                           "each board size, else a fresh one)")
    p.add_argument("--slots", type=_bounded_int(4096), metavar="N", default=8,
                   help="positions searched at once, in one batch (queries in flight share it; default 8)")
    p.add_argument("--max-visits", type=_bounded_int(MAX_SIMS), metavar="N", default=100_000,
                   help="the most visits one position gets, whatever a query asks (default 100000)")


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=("rules", "search", "speculation", "threads"),
                   help="rules: random-play moves/s vs OpenSpiel; search: sims/s and self-play vs forward; "
                        "speculation: latency per k vs the analytical model; threads: the CPU threads settings beside "
                        "busy programs, and the one to use (tools/bench_<what>.py)")
    p.add_argument("tool_args", nargs=argparse.REMAINDER, metavar="...",
                   help="passed to the tool, e.g. specmcts bench speculation --evaluator hash --sims 200")


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("info", "init", "export", "grow"),
                   help="info: describe a checkpoint; init: write a fresh net; export: weights for inference; "
                        "grow: a deeper/wider net that plays exactly like PATH, to continue a run bigger")
    p.add_argument("path", nargs="?", metavar="PATH", help="checkpoint to read or write")
    p.add_argument("--out", metavar="FILE", help="export: where to write (default: PATH with .export.pt); "
                                                 "grow: where to write (required)")
    p.add_argument("--blocks", type=_positive_int, metavar="B", help="grow: residual blocks of the new net")
    p.add_argument("--channels", type=_positive_int, metavar="C", help="grow: channels of the new net")
    p.add_argument("--force", action="store_true", help="init, export, grow: replace an existing file")
    _add_common(p, json=True)


# ----------------------------------------------------------------------------------------------
# Subcommands: implementations


FRESH_SEED_COMMANDS = ("selfplay", "run")  # a fresh seed unless --seed, --set seed= or the config gives one


def _seed_given(source, overrides) -> bool:
    if any(o.partition("=")[0].strip() == "seed" for o in overrides):
        return True
    if source is None:
        return False
    import yaml

    from specmcts.config import ConfigError, find_config

    try:
        data = yaml.safe_load(find_config(source).read_text())
    except (ConfigError, OSError, UnicodeDecodeError, yaml.YAMLError):
        return False  # load_config says what is wrong with it
    return isinstance(data, dict) and "seed" in data


def _saved_run_config(args: argparse.Namespace):
    """``run --resume`` without ``--config``: the run directory's config.yaml, if it has one."""
    from pathlib import Path

    if args.command != "run" or not getattr(args, "resume", False) or args.config is not None:
        return None
    run = Path(args.out) if args.out else Path("runs") / (args.name or f"go{getattr(args, 'board', None) or 9}")
    saved = run / "config.yaml"
    return saved if saved.is_file() else None


def config_from_args(args: argparse.Namespace):
    """Defaults < ``--config`` (else the board's preset) < explicit flags < ``--set``; on a CPU with no
    ``--config`` the CPU fallback (small net, few simulations) sits under the flags."""
    from specmcts.config import CPU_FALLBACK, ConfigError, load_config, preset_for_board, resolve_device

    board = getattr(args, "board", None)
    source = args.config or preset_for_board(board or 9)
    saved = _saved_run_config(args)
    if saved is not None:  # run --resume: the run's own config, under the flags given now
        source = saved
    flags = []
    for flag, key in (("board", "game.board"), ("games", "selfplay.games"), ("sims", "search.sims"),
                      ("speculate", "search.speculate"), ("device", "evaluator.device"), ("seed", "seed")):
        value = getattr(args, flag, None)
        if value is not None:
            flags.append(f"{key}={value}")
    if args.command in FRESH_SEED_COMMANDS and args.seed is None and not _seed_given(source, args.overrides):
        import secrets

        args.seed = secrets.randbelow(1 << 31)  # new games every time; the summary says how to repeat them
        flags.append(f"seed={args.seed}")
    try:
        cfg = load_config(source, flags + list(args.overrides))
        if args.config is None and saved is None and resolve_device(cfg.evaluator.device) == "cpu":
            cfg = dataclasses.replace(load_config(source, CPU_FALLBACK + flags + list(args.overrides)),
                                      cpu_fallback=True)
    except ConfigError as err:
        raise CommandError(str(err), EXIT_USAGE) from None
    if getattr(args, "model", None) and args.command != "model":
        # `--model shipped` is the embedded net of the board; a run, self-play or training from a checkpoint
        # takes that checkpoint's architecture (whatever the config's net says)
        from specmcts.network import CheckpointError, net_config_of, read_checkpoint, resolve_model

        try:
            args.model = resolve_model(args.model, cfg.game.board)
            if args.command in ("run", "train", "selfplay") and not getattr(args, "resume", False):
                net = net_config_of(read_checkpoint(args.model)["net"])
                if args.config and (net.blocks, net.channels) != (cfg.net.blocks, cfg.net.channels):
                    grow = (f"; `specmcts model grow {args.model} --blocks {cfg.net.blocks} --channels "
                            f"{cfg.net.channels} --out BIG` makes the config's size from it"
                            if cfg.net.blocks >= net.blocks and cfg.net.channels >= net.channels else "")
                    print(f"{PROG} {args.command}: --model is a {net.blocks}x{net.channels} net and {args.config} "
                          f"asks for {cfg.net.blocks}x{cfg.net.channels}: the checkpoint's net is used{grow}",
                          file=sys.stderr)
                cfg = dataclasses.replace(cfg, net=net)
        except CheckpointError as err:
            raise CommandError(str(err)) from None
    return cfg


def cmd_selfplay(args: argparse.Namespace) -> int:
    from pathlib import Path

    from specmcts.selfplay import format_summary, run_selfplay

    cfg = config_from_args(args)
    out = Path(args.out) if args.out else Path("runs") / (args.name or f"go{cfg.game.board}")
    if getattr(cfg, "cpu_fallback", False) and not args.json:
        print(f"{PROG} selfplay: no GPU, using the CPU defaults (net {cfg.net.blocks}x{cfg.net.channels}, "
              f"{cfg.search.sims} sims, {cfg.selfplay.games} games); --config configs/go9.yaml for the full preset",
              file=sys.stderr)
    try:
        progress = not (args.quiet or args.json)
        if args.workers > 1:
            from specmcts.backends import run_selfplay_processes

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
    from specmcts.evaluate import MatchError
    from specmcts.network import CheckpointError
    from specmcts.replay import ShardError
    from specmcts.train import TrainingDiverged

    return (ConfigError, CheckpointError, ShardError, MatchError, TrainingDiverged, ValueError, OSError, RuntimeError)


def _one_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def cmd_train(args: argparse.Namespace) -> int:

    from specmcts.config import resolve_device
    from specmcts.train import format_train_summary, train_run

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
    from specmcts.loop import format_run_summary, run_loop

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
    if getattr(args, "ray", None) is not None:  # self-play as Ray actors (specmcts.distributed), same run directory
        from functools import partial

        from specmcts.loop import format_distributed_summary, run_distributed

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
    from specmcts.evaluate import eval_run, format_eval_summary
    from specmcts.train import CheckpointStore

    if args.gnugo_level is not None:  # validated with the config (eval.gnugo_level: 0..10)
        args.overrides = [f"eval.gnugo_level={args.gnugo_level}"] + list(args.overrides)
    cfg = config_from_args(args)
    run = _run_dir(args, cfg)
    from specmcts.network import SHIPPED, embedded_any, embedded_model, resolve_model

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
                               stop_when=lambda: stop.requested)
    except _learning_errors() as err:
        raise CommandError(_one_line(err)) from None
    print(summary_json(summary) if args.json else format_eval_summary(summary))
    return EXIT_INTERRUPTED if summary["stop_reason"] == "interrupted" else EXIT_OK


def cmd_gtp(args: argparse.Namespace) -> int:
    from specmcts.gtp import EngineOptions, run_gtp
    from specmcts.network import CheckpointError

    cfg = config_from_args(args)
    resign = args.resign_threshold
    if resign is None:
        resign = max(0.0, (cfg.search.resign_threshold + 1.0) / 2.0)  # a value in [-1, 1] -> a winrate
    options = EngineOptions(
        visits=args.visits or args.sims, seconds=args.time_per_move, analysis_visits=args.analysis_visits,
        resign_threshold=resign, resign_consecutive=cfg.search.resign_consecutive,
        speculate=cfg.search.speculate, quiet=args.quiet)
    try:
        return run_gtp(cfg, args.model, options)
    except CheckpointError as err:
        raise CommandError(str(err)) from None


def cmd_analysis(args: argparse.Namespace) -> int:
    from specmcts.analysis import run_analysis
    from specmcts.network import CheckpointError

    cfg = config_from_args(args)
    try:
        return run_analysis(cfg, args.model, args.slots, args.max_visits)
    except CheckpointError as err:
        raise CommandError(str(err)) from None


def cmd_bench(args: argparse.Namespace) -> int:
    import importlib.util
    from pathlib import Path

    tool = Path(__file__).resolve().parent.parent / "tools" / f"bench_{args.what}.py"
    if not tool.is_file():
        raise CommandError(f"{tool} not found: the benchmarks live in tools/ of a source checkout")
    sys.path.insert(0, str(tool.parent))
    spec = importlib.util.spec_from_file_location(f"bench_{args.what}", tool)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses in the tool look their module up there
    spec.loader.exec_module(module)
    return int(module.main(list(args.tool_args)) or EXIT_OK)


def cmd_model(args: argparse.Namespace) -> int:
    import json as json_module
    import os
    from pathlib import Path

    from specmcts.network import (SHIPPED, CheckpointError, build_net, count_parameters, load_model, provenance,
                                  resolve_model, save_model)

    if not args.path:
        raise CommandError(f"model {args.action}: give the checkpoint PATH", EXIT_USAGE)
    try:
        if args.action != "init" and args.path == SHIPPED:  # `model info shipped`: the embedded 9x9 net
            args.path = resolve_model(SHIPPED, 9)
        if args.action == "init":
            import torch

            _may_write("init", Path(args.path), args.force)
            cfg = config_from_args(args)
            torch.manual_seed(cfg.seed)
            net = build_net(cfg.game.board, cfg.net)
            save_model(args.path, net, {"step": 0, "config": cfg.to_dict()})
        elif args.action == "export":
            net, meta = load_model(args.path)
            out = args.out or str(args.path).removesuffix(".pt") + ".export.pt"
            _may_write("export", Path(out), args.force)
            # weights, architecture and provenance only: no optimizer state, what GTP and self-play need
            # (small to ship); the config and compute totals say how it was made (`model info`)
            save_model(out, net, {"model_id": meta["model_id"], "step": meta.get("step"),
                                  "config": meta.get("config") or {}, "run": {"totals": provenance(meta)}})
            args.path = out
        elif args.action == "grow":
            args.path = _grow(args)
        net, meta = load_model(args.path)
    except CheckpointError as err:
        raise CommandError(str(err)) from None
    made = provenance(meta)
    info = {"path": str(args.path), "model_id": meta["model_id"], "board_size": meta["board_size"],
            "net": meta["net"], "parameters": count_parameters(net), "step": meta.get("step"),
            "bytes": os.path.getsize(args.path), "provenance": made}
    if args.json:
        print(json_module.dumps(info, default=str, sort_keys=True))
    else:
        net_cfg = meta["net"]
        how = ""
        if "cpu_hours" in made:
            how = (f" | trained {made['cpu_hours']:.2f} CPU-hours, {made.get('games', 0):,} self-play games, "
                   f"{made.get('sessions', 1)} session(s)")
        if made.get("config"):
            search = ", ".join(f"{k} {v}" for k, v in (made.get("search") or {}).items())
            how += f" | config {made['config']} ({search})"
        print(f"{info['path']}: {info['model_id']}, {info['board_size']}x{info['board_size']}, "
              f"{net_cfg['blocks']} blocks x {net_cfg['channels']} channels ({net_cfg.get('heads', 'fc')} heads), "
              f"{info['parameters']:,} parameters, step {info['step']}, {info['bytes'] / 1e6:.2f} MB{how}")
    return EXIT_OK


def _may_write(action: str, target, force: bool) -> None:
    """``model init|export|grow`` write a checkpoint file: never over a directory, over an existing file only
    with ``--force``, and never into the models/ of a run that a live ``run`` or ``train`` holds."""
    from specmcts.stopping import RunLock

    if target.is_dir():
        raise CommandError(f"model {action}: {target} is a directory; give the checkpoint's file name")
    if target.exists() and not force:
        raise CommandError(f"model {action}: {target} exists; it is kept (--force to replace it)")
    if target.parent.name == "models" and (busy := RunLock.held(target.parent.parent)):
        raise CommandError(f"model {action}: {busy}; write elsewhere, or stop it first")


def _grow(args: argparse.Namespace) -> str:
    """``model grow``: write the grown net (same play, more capacity) with its source's provenance; the path."""
    from pathlib import Path

    from specmcts.network import grow_net, load_model, provenance, save_model

    if not args.out:
        raise CommandError("model grow: give --out FILE for the grown net (PATH is kept)", EXIT_USAGE)
    if not (args.blocks or args.channels):
        raise CommandError("model grow: give --blocks and/or --channels of the new net", EXIT_USAGE)
    _may_write("grow", Path(args.out), args.force)
    net, meta = load_model(args.path)
    target = dataclasses.replace(net.net_cfg, blocks=args.blocks or net.net_cfg.blocks,
                                 channels=args.channels or net.net_cfg.channels)
    try:
        grown = grow_net(net, target, seed=0 if args.seed is None else args.seed)
    except ValueError as err:
        raise CommandError(f"model grow: {err}", EXIT_USAGE) from None
    config = dict(meta.get("config") or {})
    if config:
        config["net"] = dataclasses.asdict(grown.net_cfg)
    # the compute that made the source made this net too (it plays the same): run totals carry over
    save_model(args.out, grown, {"step": meta.get("step"), "config": config, "run": {"totals": provenance(meta)},
                                 "grown_from": {"model_id": meta["model_id"], "net": meta["net"]}})
    return args.out


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
        "Benchmarks: runs tools/bench_<what>.py of the source checkout with the arguments that follow.",
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
