"""``specmcts model init|info|export|grow``: make, inspect, strip and grow checkpoints."""
from __future__ import annotations

import argparse
import dataclasses

from specmcts.cli.common import EXIT_OK, EXIT_USAGE, CommandError, add_common, config_from_args, positive_int_arg


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("info", "init", "export", "grow"),
                   help="info: describe a checkpoint; init: write a fresh net; export: weights for inference; "
                        "grow: a deeper/wider net that plays exactly like PATH, to continue a run bigger")
    p.add_argument("path", nargs="?", metavar="PATH", help="checkpoint to read or write")
    p.add_argument("--out", metavar="FILE", help="export: where to write (default: PATH with .export.pt); "
                                                 "grow: where to write (required)")
    p.add_argument("--blocks", type=positive_int_arg, metavar="B", help="grow: residual blocks of the new net")
    p.add_argument("--channels", type=positive_int_arg, metavar="C", help="grow: channels of the new net")
    p.add_argument("--force", action="store_true", help="init, export, grow: replace an existing file")
    add_common(p, json=True)


def cmd_model(args: argparse.Namespace) -> int:
    import json as json_module
    import os
    from pathlib import Path

    from specmcts.engine.network import (SHIPPED, CheckpointError, build_net, count_parameters, load_model, provenance,
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
        if made.get("boards"):
            how += " | games by size: " + ", ".join(f"{size} {b.get('games', 0):,}" for size, b in made["boards"].items())
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

    from specmcts.engine.network import grow_net, load_model, provenance, save_model

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
