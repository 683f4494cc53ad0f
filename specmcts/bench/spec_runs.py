"""What the speculation benchmark's runs share (``specmcts bench speculation``): the nets it measures, an
evaluator and a fresh NN cache for each, one self-play run, and the shapes it names."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from specmcts.config import Config, NetConfig


NETS = {
    "9x9-6x64": (9, 6, 64), "9x9-10x128": (9, 10, 128), "19x19-10x128": (19, 10, 128),
    "19x19-20x256": (19, 20, 256), "9x9-2x32": (9, 2, 32), "5x5-2x32": (5, 2, 32), "19x19-2x32": (19, 2, 32),
}


def checkpoint_spec(net_name: str) -> tuple[str, int | None]:
    """A checkpoint argument, ``PATH`` or ``PATH@N`` (a net with kata heads played on N x N; the same
    weights play every size): the path (or 'shipped') and N, or None for the size it was trained on."""
    path, at, board = net_name.rpartition("@")
    if at and board.isdigit():
        return path, int(board)
    return net_name, None


def label(net_name: str) -> str:
    """How a net is shown in the tables: the preset name, or a checkpoint's file name (with ``@N``)."""
    if net_name in NETS:
        return net_name
    path, board = checkpoint_spec(net_name)
    return Path(path).stem + (f"@{board}" if board else "")


def board_of(net_name: str) -> int:
    """The board of a preset name (NETS) or of a checkpoint (a path or 'shipped', ``@N`` for another size)."""
    return net_shape(net_name)[0]


def make_evaluator(kind: str, net_name: str, device: str, max_batch: int, seed: int):
    """A random net of a preset (NETS), or a trained one (a checkpoint path, or 'shipped')."""
    import torch

    from specmcts.engine.evaluator import HashEvaluator, NetEvaluator, UniformEvaluator
    from specmcts.engine.network import build_net, load_model, resolve_model

    size = board_of(net_name)
    if kind == "hash":
        return HashEvaluator(size, seed=seed, max_batch=max_batch)
    if kind == "uniform":
        return UniformEvaluator(size, max_batch=max_batch)
    if net_name not in NETS:
        net, _meta = load_model(resolve_model(checkpoint_spec(net_name)[0], size), expect_board=size)
        return NetEvaluator(net, device, max_batch=max_batch)
    _, blocks, channels = NETS[net_name]
    torch.manual_seed(seed)
    net = build_net(size, NetConfig(blocks=blocks, channels=channels, value_hidden=channels))
    return NetEvaluator(net, device, max_batch=max_batch)


_CACHES = {}


def fresh_cache(entries: int, size: int):
    """An empty NN cache, one allocation per (entries, board) reused across runs: a new 1M-entry cache
    pays its page faults in the first run's timings (several ms per move), which would favour later rows."""
    from specmcts.engine.nncache import NNCache

    key = (entries, size)
    if key not in _CACHES:
        cache = NNCache.for_board(entries, size)
        for arr in vars(cache).values():
            if isinstance(arr, np.ndarray):
                arr.fill(0)  # touch every page now (clear() below sets the keys)
        _CACHES[key] = cache
    cache = _CACHES[key]
    cache.clear()
    cache.reset_stats()
    return cache


def play(cfg: Config, evaluator, cache_entries: int, timeline: bool = False):
    from specmcts.training.selfplay import SelfPlay

    size = cfg.game.board
    cache = fresh_cache(cache_entries, size)
    sp = SelfPlay(cfg, evaluator, cache, out=None, tensorboard=False)
    sp.pipeline.traces = []  # the move traces the tree model replays
    if timeline:  # what the timeline picture draws: the search's CPU work per lane, commits and rollbacks
        sp.search.timeline = []
        sp.pipeline.events = []
    summary = sp.run()
    middle = [m for m in range(size * size // 4, size * size)]
    hits = cache.hits_by_move[middle].sum() if cache.enabled else 0
    total = hits + (cache.misses_by_move[middle].sum() if cache.enabled else 0)
    summary["cache_hit_rate_middle"] = float(hits / total) if total else 0.0
    return sp, summary


def net_shape(net_name: str) -> tuple[int, int, int]:
    """(board, blocks, channels) of a preset name (NETS) or of a checkpoint (a path or 'shipped', ``@N``:
    played on N x N)."""
    if net_name in NETS:
        return NETS[net_name]
    from specmcts.engine.network import read_checkpoint, resolve_model

    path, board = checkpoint_spec(net_name)
    data = read_checkpoint(resolve_model(path, board or 9))
    return board or int(data["board_size"]), int(data["net"]["blocks"]), int(data["net"]["channels"])


def batch_cost(net_name: str, device: str = "h100"):
    """The measured forward time per batch size of the device's table (``specmcts.engine.emulate.forward_cost``: the
    package's H100 table, bf16 CUDA graphs) for the table's net nearest to ours; its ``note`` says when the
    table's net stands in for another."""
    from specmcts.engine.emulate import forward_cost

    return forward_cost(*net_shape(net_name), device=device)


def parse_shape(text: str) -> dict:
    """``K`` (a chain K deep) or ``K:W:T[:S]`` (a tree: depth K, width W, T searches per game, searches cut
    into S stages, default K + 1)."""
    try:
        parts = [int(x) for x in text.split(":")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        return {"k": parts[0], "width": 1, "trees": parts[0] + 1, "stages": parts[0] + 1}
    if len(parts) not in (3, 4):
        raise argparse.ArgumentTypeError(f"shape is K or K:W:T[:S], got {text!r}")
    return {"k": parts[0], "width": parts[1], "trees": parts[2], "stages": parts[3] if len(parts) == 4 else parts[0] + 1}


def shape_label(shape: dict) -> str:
    if shape["width"] == 1 and shape["trees"] == shape["k"] + 1:
        base = f"chain k={shape['k']}"
    else:
        base = f"tree {shape['k']}:{shape['width']}:{shape['trees']}"
    if shape["stages"] != shape["k"] + 1:
        base += f" S={shape['stages']}"
    return base + ("" if shape.get("sure", True) else " nosure")


def records_equal(a: list, b: list) -> bool:
    """Two runs' game records are the same: moves, search targets, root values, features, results."""
    if len(a) != len(b):
        return False
    for ra, rb in zip(a, b):
        if (ra.moves != rb.moves or ra.result != rb.result or ra.policy_weights != rb.policy_weights
                or len(ra.targets) != len(rb.targets)):
            return False
        if not all(np.array_equal(x, y) for x, y in zip(ra.targets, rb.targets)):
            return False
        if not (np.array_equal(np.array(ra.root_values), np.array(rb.root_values))
                and all(np.array_equal(x, y) for x, y in zip(ra.features, rb.features))):
            return False
    return True
