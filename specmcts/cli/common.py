"""What every ``specmcts`` subcommand shares: exit statuses, ``CommandError``, flag types, the common flags
and ``config_from_args`` (defaults < ``--config`` < flags < ``--set``)."""
from __future__ import annotations

import argparse
import dataclasses
import math
import re
import sys
from typing import Callable

from specmcts.config import AUTO, MAX_SPECULATE  # config imports only yaml: --help stays light

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


def number_arg(kind: type, ok: Callable, what: str) -> Callable[[str], int | float]:
    """A flag type: ``kind(text)`` (``int`` or ``float``) for which ``ok(value)`` holds, else argparse's one-line
    error ``expected WHAT, got TEXT``."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


board_size_arg = number_arg(int, lambda v: MIN_BOARD <= v <= MAX_BOARD, f"a board size {MIN_BOARD}..{MAX_BOARD}")
positive_int_arg = number_arg(int, lambda v: v >= 1, "a positive integer")
non_negative_int_arg = number_arg(int, lambda v: v >= 0, "an integer >= 0")
positive_float_arg = number_arg(float, lambda v: 0 < v < math.inf, "a positive number")
fraction_arg = number_arg(float, lambda v: 0 <= v < 1, "a number in [0, 1)")


def bounded_int_arg(high: int) -> Callable[[str], int]:
    """A positive integer up to ``high`` (a size that allocates in proportion)."""
    return number_arg(int, lambda v: 1 <= v <= high, f"1..{high}")


def json_finite(value):
    """JSON has no NaN or infinity: such values (a rate with nothing to count) become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_finite(v) for v in value]
    return value


def summary_json(summary: dict) -> str:
    """A command's summary as one line of valid JSON (``--json``)."""
    import json

    return json.dumps(json_finite(json.loads(json.dumps(summary, default=float))), sort_keys=True)


def speculate_arg(text: str) -> int | str:
    """``K`` in 0..16, or ``auto``."""
    if text.strip().lower() == AUTO:
        return AUTO
    value = non_negative_int_arg(text)
    if value > MAX_SPECULATE:
        raise argparse.ArgumentTypeError(f"expected 0..{MAX_SPECULATE} or auto, got {value}")
    return value


_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def device_arg(text: str) -> str:
    if not _DEVICE_RE.match(text):
        raise argparse.ArgumentTypeError(f"device must be auto, cpu, cuda or cuda:N, got {text!r}")
    return text


def override_arg(text: str) -> str:
    """``--set section.key=value``; the value is parsed as YAML by the config loader."""
    key, sep, _ = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected key=value (e.g. search.sims=400), got {text!r}")
    return text


# ----------------------------------------------------------------------------------------------
# Shared flags


def add_common(
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
    """The flags every subcommand that makes sense of them takes (docs/design.md, "Contracts")."""
    g = parser.add_argument_group("common options")
    if board:
        g.add_argument("--board", type=board_size_arg, metavar="N",
                       help=f"board size {MIN_BOARD}..{MAX_BOARD} (default: from the config; 9)")
    if games:
        g.add_argument("--games", type=positive_int_arg, metavar="N", help=games_help)
    if sims:
        g.add_argument("--sims", type=positive_int_arg, metavar="N", help="MCTS simulations per move")
    if speculate:
        g.add_argument("--speculate", type=speculate_arg, metavar="K|auto",
                       help="speculative look-ahead depth: search up to K (0..16) moves ahead of the committed "
                            "one (0 = off; records are identical to K=0; trees: --set speculation.width=W "
                            "speculation.rows=R; auto = the depth and width whose rows the evaluator takes at "
                            "(almost) no extra cost per batch, measured at start)")
    if device:
        g.add_argument("--device", type=device_arg, metavar="auto|cpu|cuda",
                       help="where the network runs (default: auto = cuda if available, else cpu)")
    if model:
        g.add_argument("--model", metavar="PATH", help=model_help)
    if out:
        g.add_argument("--out", metavar="DIR", help="output directory (default: runs/<name>/)")
    g.add_argument("--config", metavar="FILE",
                   help="YAML config (default: the preset for the board size, e.g. configs/go9.yaml)")
    g.add_argument("--seed", type=int, metavar="S", help="random seed (default: from the config)")
    g.add_argument("--set", dest="overrides", action="append", default=[], type=override_arg,
                   metavar="KEY=VALUE", help="override one config value, e.g. --set search.sims=400 (repeatable)")
    if json:
        g.add_argument("--json", action="store_true", help="print the final summary as one JSON object")


# ----------------------------------------------------------------------------------------------
# The config of a command


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
                      ("speculate", "speculation.k"), ("device", "evaluator.device"), ("seed", "seed")):
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
        from specmcts.engine.network import CheckpointError, net_config_of, read_checkpoint, resolve_model

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
