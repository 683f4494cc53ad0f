"""Policy/value network: an AlphaZero/KataGo-style residual tower, and its checkpoint format.

Shapes (``N`` the board size, ``A = N * N + 1`` actions: the points row-major, then pass):

    input    float [B, NUM_PLANES, N, N]   planes of ``native.features`` (0/1 values)
    policy   float [B, A]                  logits over all actions, unmasked (illegal moves included)
    value    float [B]                     tanh, from the side to move's point of view

Architecture (``NetConfig``): 3x3 conv stem, ``blocks`` residual blocks (two 3x3 convs, BatchNorm, ReLU,
skip connection), ``channels`` wide; policy head 1x1 conv -> BN -> ReLU -> FC to ``A`` logits; value head
1x1 conv -> BN -> ReLU -> FC ``value_hidden`` -> ReLU -> FC 1 -> tanh. Presets in use: 2x32 (CPU/CI),
6x64 and 10x128 (9x9), 10x128 and 20x256 (19x19).

Checkpoint (DESIGN.md section 5): ``torch.save`` of a dict ``{model: state_dict, board_size, num_planes, net:
NetConfig as dict, model_id, format}`` plus whatever the caller adds (``optimizer``, ``step``, ``config``),
written to a temp file and renamed so that a reader never sees half a checkpoint.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from native.features import NUM_PLANES
from specmcts.config import NetConfig
from specmcts.atomic import atomic_open

CHECKPOINT_FORMAT = 1
_RESERVED_KEYS = ("model", "board_size", "num_planes", "net", "model_id", "format")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, truncated, or for another board or architecture.

    The message is one line and names the file."""


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(x + y)


class PolicyValueNet(nn.Module):
    """``forward(x [B, C, N, N]) -> (policy_logits [B, N*N+1], value [B])``; works in channels_last too."""

    def __init__(self, board_size: int, net_cfg: NetConfig | None = None, num_planes: int = NUM_PLANES):
        super().__init__()
        cfg = net_cfg or NetConfig()
        if cfg.blocks < 0 or min(cfg.channels, cfg.policy_channels, cfg.value_channels, cfg.value_hidden) < 1:
            raise ValueError(f"invalid network config {cfg}")
        self.board_size = board_size
        self.num_planes = num_planes
        self.num_actions = board_size * board_size + 1
        self.net_cfg = dataclasses.replace(cfg)
        area = board_size * board_size
        ch = cfg.channels

        self.stem = nn.Sequential(nn.Conv2d(num_planes, ch, 3, padding=1, bias=False), nn.BatchNorm2d(ch), nn.ReLU())
        self.tower = nn.Sequential(*(ResidualBlock(ch) for _ in range(cfg.blocks)))

        self.policy_conv = nn.Sequential(
            nn.Conv2d(ch, cfg.policy_channels, 1, bias=False), nn.BatchNorm2d(cfg.policy_channels), nn.ReLU())
        self.policy_fc = nn.Linear(cfg.policy_channels * area, self.num_actions)

        self.value_conv = nn.Sequential(
            nn.Conv2d(ch, cfg.value_channels, 1, bias=False), nn.BatchNorm2d(cfg.value_channels), nn.ReLU())
        self.value_fc1 = nn.Linear(cfg.value_channels * area, cfg.value_hidden)
        self.value_fc2 = nn.Linear(cfg.value_hidden, 1)

        self.model_id = f"{arch_name(board_size, cfg)}-init"

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        trunk = self.tower(self.stem(x))
        # reshape, not view: in channels_last the head outputs are not NCHW-contiguous; the FC layers
        # expect the NCHW (plane-major) order whatever the memory format.
        p = self.policy_conv(trunk).reshape(x.shape[0], -1)
        policy_logits = self.policy_fc(p)
        v = self.value_conv(trunk).reshape(x.shape[0], -1)
        value = torch.tanh(self.value_fc2(torch.relu(self.value_fc1(v)))).squeeze(-1)
        return policy_logits, value


def arch_name(board_size: int, net_cfg: NetConfig) -> str:
    """Short name of an architecture, e.g. ``9x9-b6c64``."""
    return f"{board_size}x{board_size}-b{net_cfg.blocks}c{net_cfg.channels}"


def build_net(board_size: int, net_cfg: NetConfig | None = None, num_planes: int = NUM_PLANES) -> PolicyValueNet:
    """A freshly initialised net; its ``model_id`` names the architecture and a digest of the weights."""
    net = PolicyValueNet(board_size, net_cfg, num_planes)
    net.model_id = make_model_id(net)
    return net


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def weights_digest(net: nn.Module, length: int = 8) -> str:
    """Hex digest of the exact weights (parameters and BatchNorm statistics) in state_dict order."""
    h = hashlib.sha1()
    for name, tensor in net.state_dict().items():
        h.update(name.encode())
        t = tensor.detach().cpu().contiguous().reshape(-1)  # 1-D: num_batches_tracked is a 0-d tensor
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:length]


def make_model_id(net: PolicyValueNet, step: int | None = None) -> str:
    """``<arch>-<digest>`` or ``<arch>-s<step>-<digest>``, e.g. ``9x9-b6c64-s12000-3fa2c1d9``."""
    step_part = f"-s{step}" if step is not None else ""
    return f"{arch_name(net.board_size, net.net_cfg)}{step_part}-{weights_digest(net)}"


def save_model(path: str | os.PathLike, net: PolicyValueNet, extra: dict[str, Any] | None = None) -> str:
    """Write a checkpoint atomically (temp file in the same folder, then ``os.replace``); returns the model id.

    ``extra`` holds plain data to store alongside (``optimizer`` state_dict, ``step``, ``config`` dict, ...:
    tensors, Python numbers, strings, lists, dicts; the loader refuses pickled objects of other types);
    a ``model_id`` in it is used as is, otherwise one is made from the architecture, ``step`` and weights.
    ``net.model_id`` is set to the id written."""
    extra = dict(extra or {})
    clash = [k for k in _RESERVED_KEYS if k in extra and k != "model_id"]
    if clash:
        raise ValueError(f"save_model: extra must not contain {', '.join(clash)}")
    model_id = extra.pop("model_id", None) or make_model_id(net, extra.get("step"))
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    payload = {
        **extra,
        "format": CHECKPOINT_FORMAT,
        "model": state,
        "board_size": net.board_size,
        "num_planes": net.num_planes,
        "net": dataclasses.asdict(net.net_cfg),
        "model_id": model_id,
    }
    with atomic_open(path) as f:
        torch.save(payload, f)
    net.model_id = model_id
    return model_id


def _first_line(e: BaseException) -> str:
    """``Type: first sentence of the message`` (torch's messages run to several sentences and lines)."""
    lines = str(e).strip().splitlines()
    if not lines:
        return type(e).__name__
    sentence = lines[0].split(". ")[0].rstrip(".")
    return f"{type(e).__name__}: {sentence[:160]}"


def read_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint dict as stored, with its structure checked; ``CheckpointError`` if unusable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    try:
        # weights_only: a checkpoint is data (tensors, numbers, strings, dicts); never run pickled code.
        data = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # torch raises RuntimeError, EOFError, UnpicklingError, zipfile errors, ...
        raise CheckpointError(f"checkpoint {path} is unreadable or truncated ({_first_line(e)})") from None
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict) or "board_size" not in data:
        raise CheckpointError(f"checkpoint {path} is not a specmcts checkpoint (no model weights or board size)")
    if not isinstance(data.get("net"), dict):
        raise CheckpointError(f"checkpoint {path} does not record its network architecture")
    return data


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu", expect_board: int | None = None,
               expect_net: NetConfig | None = None) -> tuple[PolicyValueNet, dict[str, Any]]:
    """Rebuild the net a checkpoint describes and load its weights; returns ``(net in eval mode, meta)``.

    ``meta`` is the stored dict without the weights (``model_id``, ``board_size``, ``net``, and the caller's
    extras such as ``step``, ``optimizer``, ``config``). Raises ``CheckpointError`` with a one-line message if
    the file is unreadable, or if it is for another board size than ``expect_board``, another architecture than
    ``expect_net``, another number of input planes than this build, or its weights do not fit its own
    architecture."""
    data = read_checkpoint(path, device)
    board = int(data["board_size"])
    if expect_board is not None and board != expect_board:
        raise CheckpointError(f"checkpoint {path} is for {board}x{board}, asked for {expect_board}x{expect_board}")
    planes = int(data.get("num_planes", NUM_PLANES))
    if planes != NUM_PLANES:
        raise CheckpointError(f"checkpoint {path} takes {planes} input planes, this build makes {NUM_PLANES}")
    try:
        net_cfg = NetConfig(**data["net"])
    except TypeError as e:
        raise CheckpointError(f"checkpoint {path} has an unknown architecture record ({_first_line(e)})") from None
    if expect_net is not None and dataclasses.asdict(expect_net) != dataclasses.asdict(net_cfg):
        raise CheckpointError(
            f"checkpoint {path} is a {_describe(net_cfg)} net, asked for {_describe(expect_net)}")
    net = PolicyValueNet(board, net_cfg, planes)
    detail = ""
    try:
        result = net.load_state_dict(data["model"], strict=False)
        problems = list(result.missing_keys) + list(result.unexpected_keys)
        if problems:
            detail = f"{len(problems)} missing or unexpected tensors, e.g. {problems[0]}"
    except RuntimeError as e:  # shape mismatches raise even with strict=False
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        detail = lines[1].split(" from checkpoint")[0] if len(lines) > 1 else _first_line(e)
    if detail:
        raise CheckpointError(
            f"checkpoint {path}: weights do not fit its {_describe(net_cfg)} architecture ({detail})")
    net.to(device).eval()
    meta = {k: v for k, v in data.items() if k != "model"}
    net.model_id = str(meta.get("model_id") or make_model_id(net, meta.get("step")))
    return net, meta


def _describe(cfg: NetConfig) -> str:
    return (f"{cfg.blocks} blocks x {cfg.channels} channels (policy {cfg.policy_channels}, value "
            f"{cfg.value_channels}/{cfg.value_hidden})")
