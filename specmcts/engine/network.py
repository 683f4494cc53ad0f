"""Policy/value network: an AlphaZero/KataGo-style residual tower, and its checkpoint format.

Shapes (``N`` the board size, ``A = N * N + 1`` actions: the points row-major, then pass):

    input    float [B, NUM_PLANES, N, N]   planes of ``native.features`` (0/1 values)
    policy   float [B, A]                  logits over all actions, unmasked (illegal moves included)
    value    float [B]                     tanh, from the side to move's point of view

Architecture (``NetConfig``): 3x3 conv stem, ``blocks`` residual blocks (two 3x3 convs, BatchNorm, ReLU,
skip connection), ``channels`` wide. Two sets of heads (``net.heads``):

- ``kata`` (default; KataGo's, fully convolutional, so one net evaluates any board size 5..19): every
  ``gpool_every``-th block adds *global pooling bias* (mean, size-scaled mean and max of ``gpool_channels``
  channels, through a linear layer, added as a per-channel bias after its first conv). Policy: a 1x1 conv,
  pooled-feature bias, then a 1x1 conv to one logit per point; the pass logit from the pooled features.
  Value: 1x1 conv, global pooling, MLP of ``value_hidden`` to (value, score). Ownership: a 1x1 conv to one
  plane. Training also sees the auxiliary outputs (``PolicyValueNet.heads``): ``ownership`` [B, N, N]
  (tanh: +1 the side to move owns the point at the end) and ``score`` [B] (final margin for the side to
  move, in points); search uses policy and value only.
- ``fc`` (AlphaZero's, what checkpoints made before ``heads`` existed hold): policy head 1x1 conv -> BN ->
  ReLU -> FC to ``A`` logits; value head 1x1 conv -> BN -> ReLU -> FC ``value_hidden`` -> ReLU -> FC 1 ->
  tanh. No auxiliary heads.

Presets in use: 2x32 (CPU/CI), 6x64 and 10x128 (9x9), 10x128 and 20x256 (19x19).

Checkpoint: ``torch.save`` of a dict ``{model: state_dict, board_size, num_planes, net:
NetConfig as dict, model_id, format}`` plus whatever the caller adds (``optimizer``, ``step``, ``config``),
written to a temp file and renamed so that a reader never sees half a checkpoint.
"""
from __future__ import annotations

import dataclasses
import hashlib
import numbers
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from native.features import NUM_PLANES
from specmcts.stopping import say
from native.layout import MAX_SIZE, MIN_SIZE
from specmcts.atomic import atomic_open
from specmcts.config import Config, ConfigError, NetConfig, validate

CHECKPOINT_FORMAT = 1
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"  # the nets that ship inside the package
SHIPPED = "shipped"  # --model shipped: the embedded net of the board size
FRESH = "fresh"  # --model fresh: a new, untrained net seeded by the config's seed
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


def global_pool(x: torch.Tensor) -> torch.Tensor:
    """KataGo's global pooling: [B, C, N, N] -> [B, 3C] (mean, mean scaled by the board size, max)."""
    area = x.shape[-1] * x.shape[-2]
    mean = x.mean(dim=(2, 3))
    scaled = mean * ((area ** 0.5 - 14.0) / 10.0)
    return torch.cat([mean, scaled, x.amax(dim=(2, 3))], dim=1)


class GlobalPoolBlock(nn.Module):
    """A residual block whose first conv gets a per-channel bias computed from pooled features."""

    def __init__(self, channels: int, pool_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.pool_conv = nn.Conv2d(channels, pool_channels, 3, padding=1, bias=False)
        self.pool_bn = nn.BatchNorm2d(pool_channels)
        self.pool_fc = nn.Linear(3 * pool_channels, channels, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = global_pool(torch.relu(self.pool_bn(self.pool_conv(x))))
        y = self.conv1(x) + self.pool_fc(g)[:, :, None, None]
        y = torch.relu(self.bn1(y))
        y = self.bn2(self.conv2(y))
        return torch.relu(x + y)


class PolicyValueNet(nn.Module):
    """``forward(x [B, C, N, N]) -> (policy_logits [B, N*N+1], value [B])`` (what search needs);
    ``heads(x)`` adds the auxiliary outputs for training. Works in channels_last too."""

    def __init__(self, board_size: int, net_cfg: NetConfig | None = None, num_planes: int = NUM_PLANES):
        super().__init__()
        cfg = net_cfg or NetConfig()
        if cfg.blocks < 0 or min(cfg.channels, cfg.policy_channels, cfg.value_channels, cfg.value_hidden) < 1:
            raise ValueError(f"invalid network config {cfg}")
        if cfg.heads not in ("kata", "fc"):
            raise ValueError(f"invalid network heads {cfg.heads!r} (kata or fc)")
        self.board_size = board_size
        self.num_planes = num_planes
        self.num_actions = board_size * board_size + 1
        self.net_cfg = dataclasses.replace(cfg)
        self.kata = cfg.heads == "kata"
        area = board_size * board_size
        ch = cfg.channels

        self.stem = nn.Sequential(nn.Conv2d(num_planes, ch, 3, padding=1, bias=False), nn.BatchNorm2d(ch), nn.ReLU())
        if self.kata:
            pool_ch = cfg.gpool_channels or max(1, ch // 4)
            every = cfg.gpool_every
            self.tower = nn.Sequential(*(
                GlobalPoolBlock(ch, pool_ch) if every and i % every == every - 1 else ResidualBlock(ch)
                for i in range(cfg.blocks)))
            hc = cfg.head_channels or max(1, ch // 2)
            self.policy_conv = nn.Conv2d(ch, hc, 1, bias=False)
            self.policy_pool_conv = nn.Sequential(nn.Conv2d(ch, hc, 1, bias=False), nn.BatchNorm2d(hc), nn.ReLU())
            self.policy_pool_fc = nn.Linear(3 * hc, hc, bias=False)
            self.policy_bn = nn.BatchNorm2d(hc)
            self.policy_out = nn.Conv2d(hc, 1, 1)
            self.pass_fc = nn.Linear(3 * hc, 1)
            self.value_conv = nn.Sequential(nn.Conv2d(ch, hc, 1, bias=False), nn.BatchNorm2d(hc), nn.ReLU())
            self.value_fc1 = nn.Linear(3 * hc, cfg.value_hidden)
            self.value_fc2 = nn.Linear(cfg.value_hidden, 2)  # value (before tanh), score / N
            self.ownership_out = nn.Conv2d(hc, 1, 1)
        else:
            self.tower = nn.Sequential(*(ResidualBlock(ch) for _ in range(cfg.blocks)))
            self.policy_conv = nn.Sequential(
                nn.Conv2d(ch, cfg.policy_channels, 1, bias=False), nn.BatchNorm2d(cfg.policy_channels), nn.ReLU())
            self.policy_fc = nn.Linear(cfg.policy_channels * area, self.num_actions)
            self.value_conv = nn.Sequential(
                nn.Conv2d(ch, cfg.value_channels, 1, bias=False), nn.BatchNorm2d(cfg.value_channels), nn.ReLU())
            self.value_fc1 = nn.Linear(cfg.value_channels * area, cfg.value_hidden)
            self.value_fc2 = nn.Linear(cfg.value_hidden, 1)

        self.model_id = f"{arch_name(board_size, cfg)}-init"
        self.trained_steps = 0  # the checkpoint's ``step`` (load_model); 0 for a fresh net
        self.trained_board = board_size  # the board its checkpoint was trained on (load_model)

    @property
    def has_aux_heads(self) -> bool:
        return self.kata

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.heads(x, aux=False)
        return out["policy"], out["value"]

    def evaluate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """What search asks of the net (``specmcts.engine.evaluator``): policy logits, value and score (zeros
        without kata heads); the ownership plane is not computed."""
        out = self.heads(x, aux="score")
        score = out["score"] if "score" in out else torch.zeros_like(out["value"])
        return out["policy"], out["value"], score

    def heads(self, x: torch.Tensor, aux: bool | str = True) -> dict[str, torch.Tensor]:
        """All outputs: ``policy`` logits [B, A], ``value`` [B] (tanh) and, with kata heads and ``aux``,
        ``ownership_logit`` [B, N, N] (ownership = tanh(logit / 2), i.e. P(own) = sigmoid(logit)) and
        ``score`` [B] (points, side to move); ``aux="score"``: the score without the ownership."""
        b = x.shape[0]
        trunk = self.tower(self.stem(x))
        if not self.kata:
            # reshape, not view: in channels_last the head outputs are not NCHW-contiguous; the FC layers
            # expect the NCHW (plane-major) order whatever the memory format.
            p = self.policy_conv(trunk).reshape(b, -1)
            v = self.value_conv(trunk).reshape(b, -1)
            value = torch.tanh(self.value_fc2(torch.relu(self.value_fc1(v)))).squeeze(-1)
            return {"policy": self.policy_fc(p), "value": value}
        g = global_pool(self.policy_pool_conv(trunk))
        p = torch.relu(self.policy_bn(self.policy_conv(trunk) + self.policy_pool_fc(g)[:, :, None, None]))
        points = self.policy_out(p).reshape(b, -1)
        policy = torch.cat([points, self.pass_fc(g)], dim=1)
        v = self.value_conv(trunk)
        vs = self.value_fc2(torch.relu(self.value_fc1(global_pool(v))))
        out = {"policy": policy, "value": torch.tanh(vs[:, 0])}
        if aux:
            out["score"] = vs[:, 1] * x.shape[-1]
        if aux is True:
            out["ownership_logit"] = self.ownership_out(v)[:, 0]
        return out


def arch_name(board_size: int, net_cfg: NetConfig) -> str:
    """Short name of an architecture, e.g. ``9x9-b6c64`` (kata heads) or ``9x9-b6c64-fc``."""
    suffix = "" if net_cfg.heads == "kata" else f"-{net_cfg.heads}"
    return f"{board_size}x{board_size}-b{net_cfg.blocks}c{net_cfg.channels}{suffix}"


# What a checkpoint's architecture record means by a key it does not have: it was written before the key
# existed, so the architecture is the one of that time (fully connected heads, no global pooling).
LEGACY_NET = {"heads": "fc", "gpool_every": 0, "head_channels": 0, "gpool_channels": 0}


def net_config_of(record: dict) -> NetConfig:
    """The ``NetConfig`` of a checkpoint's ``net`` record; keys added since it was written take their
    legacy values (``LEGACY_NET``), so older checkpoints load as what they are."""
    return NetConfig(**{**LEGACY_NET, **record})


def embedded_model(board_size: int) -> Path | None:
    """The net that ships for this board size (``specmcts/weights/go<N>.pt``), or None."""
    path = WEIGHTS_DIR / f"go{board_size}.pt"
    return path if path.is_file() else None


def embedded_any(board_size: int) -> tuple[Path, int] | None:
    """The shipped net that plays ``board_size``: its own (``go<N>.pt``), else one with kata heads made for
    another size (they play every size; the nearest size's), as ``(path, size it ships for)``; None if none."""
    own = embedded_model(board_size)
    if own is not None:
        return own, board_size
    others = []
    for path in WEIGHTS_DIR.glob("go*.pt"):
        size = path.stem[2:]
        if size.isdigit() and (read_checkpoint(path).get("net") or {}).get("heads", "fc") == "kata":
            others.append((abs(int(size) - board_size), -int(size), path))
    if not others:
        return None
    _, size, path = min(others)
    return path, -size


def model_label(path: str | os.PathLike, board_size: int) -> str:
    """How a match names a net: ``shipped`` for the net that ships for (or plays) the board, else the file's
    stem."""
    embedded = embedded_any(board_size)
    if embedded is not None and Path(path).resolve() == embedded[0].resolve():
        return SHIPPED
    return Path(path).stem


def resolve_model(spec: str | None, board_size: int, flag: str = "--model") -> str | None:
    """A ``--model`` (or ``flag``) argument as a path: ``shipped`` is the embedded net of ``board_size``
    (CheckpointError if none ships), anything else is returned as given."""
    if spec != SHIPPED:
        return spec
    found = embedded_any(board_size)
    if found is None:
        raise CheckpointError(f"{flag} shipped: no net ships for {board_size}x{board_size} "
                              f"(the package has: {', '.join(p.name for p in sorted(WEIGHTS_DIR.glob('go*.pt'))) or 'none'})")
    path, size = found
    if size != board_size:
        say(f"{flag} shipped: no net trained for {board_size}x{board_size} ships; playing the {size}x{size} net "
            f"{path.name}, whose kata heads play every size (it was not trained on this one)")
    return str(path)


def provenance(meta: dict) -> dict:
    """How a checkpoint was made, from its metadata: step, the compute of every session that trained it
    (``run.totals``: CPU-hours, games, samples, and per board size of a mixed-size run) and the config's name
    and search."""
    totals = (meta.get("run") or {}).get("totals") or meta.get("totals") or {}
    config = meta.get("config") or {}
    out = {"step": meta.get("step"),
           **{k: totals[k] for k in ("cpu_hours", "games", "samples", "sessions", "boards") if k in totals}}
    if config:
        search = {**(config.get("search") or {}), **(config.get("moves") or {})}  # configs before and after
        # the move rule left ``search`` (specmcts.config.MOVED_KEYS)
        out["config"] = config.get("name")
        out["search"] = {k: search.get(k) for k in ("root", "sims", "fast_sims", "full_search_fraction") if k in search}
    return out


def build_net(board_size: int, net_cfg: NetConfig | None = None, num_planes: int = NUM_PLANES) -> PolicyValueNet:
    """A freshly initialised net; its ``model_id`` names the architecture and a digest of the weights."""
    net = PolicyValueNet(board_size, net_cfg, num_planes)
    net.model_id = make_model_id(net)
    return net


# Layers whose input is ``global_pool`` of some channels: three thirds (mean, scaled mean, max) of that width.
_POOLED_INPUT = ("pool_fc.weight", "pass_fc.weight", "value_fc1.weight")


def _resolved(cfg: NetConfig) -> dict[str, int]:
    """The widths a kata net really has (``0`` in the config means a default derived from ``channels``)."""
    return {"blocks": cfg.blocks, "channels": cfg.channels, "value_hidden": cfg.value_hidden,
            "head": cfg.head_channels or max(1, cfg.channels // 2),
            "pool": cfg.gpool_channels or max(1, cfg.channels // 4)}


def grow_net(net: PolicyValueNet, target: NetConfig, seed: int = 0) -> PolicyValueNet:
    """A deeper and/or wider net that computes exactly what ``net`` computes (Net2Net-style, kata heads):
    a bigger run starts from the strength of a small one instead of from nothing. ``target`` has the same
    heads and global pooling pattern, and no width smaller than ``net``'s.

    - Wider: every old weight is copied; a new channel gets a fresh (seeded) random input side, and its
      weights *into* the old channels are zero, so the old channels see nothing new until training moves
      those zeros (their gradients are not zero: the new channels carry signal). Head, pooling and value
      widths grow the same way.
    - Deeper: blocks ``len(old)..blocks-1`` are appended with their last BatchNorm's scale and shift at zero,
      i.e. the identity on the (non-negative) residual stream; their other weights are fresh.

    The result is in eval mode with ``trained_steps`` and ``model_id`` to be set by the caller (``save_model``).
    Raises ValueError (one line) for fc heads, another pooling pattern or a smaller width."""
    old = net.net_cfg
    if old.heads != "kata" or target.heads != "kata":
        raise ValueError("only nets with kata heads can grow (fc heads are fully connected over the board)")
    if target.gpool_every != old.gpool_every:
        raise ValueError(f"a grown net keeps the global pooling pattern: gpool_every {old.gpool_every}, "
                         f"asked for {target.gpool_every}")
    new_cfg = dataclasses.replace(old, blocks=target.blocks, channels=target.channels,
                                  value_hidden=target.value_hidden, head_channels=target.head_channels,
                                  gpool_channels=target.gpool_channels)
    widths_old, widths_new = _resolved(old), _resolved(new_cfg)
    smaller = [f"{k} {widths_old[k]} -> {widths_new[k]}" for k in widths_old if widths_new[k] < widths_old[k]]
    if smaller:
        raise ValueError(f"a net grows, it does not shrink: {', '.join(smaller)}")
    torch.manual_seed(seed)
    grown = PolicyValueNet(net.board_size, new_cfg, net.num_planes)
    state = grown.state_dict()
    old_state = net.state_dict()
    with torch.no_grad():
        for name, new in state.items():
            if name not in old_state:  # an appended block: identity through its last BatchNorm
                if name.endswith("bn2.weight") or name.endswith("bn2.bias"):
                    new.zero_()
                continue
            src = old_state[name].to(new.dtype)
            if src.dim() == 0:
                new.copy_(src)
                continue
            out_old = src.shape[0]
            if src.dim() == 1:  # BatchNorm scale/shift/statistics, biases: the old channels keep theirs
                new[:out_old] = src
                continue
            in_old, in_new = src.shape[1], new.shape[1]
            if name.endswith(_POOLED_INPUT):  # old feature j of third t sits at t * width + j
                third_old, third_new = in_old // 3, in_new // 3
                cols = torch.cat([torch.arange(third_old) + t * third_new for t in range(3)])
            else:
                cols = torch.arange(in_old)
            new[:out_old] = 0  # old outputs ignore the new inputs ...
            new[:out_old, cols] = src  # ... and keep their old weights
    grown.load_state_dict(state)
    grown.trained_steps = net.trained_steps
    return grown.eval()


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
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path}: a directory, not a checkpoint file (a run's checkpoints are "
                              f"{path}/models/model_<step>.pt)")
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
    board = data["board_size"]
    if isinstance(board, bool) or not isinstance(board, numbers.Integral) or not MIN_SIZE <= board <= MAX_SIZE:
        raise CheckpointError(f"checkpoint {path}: board_size {board!r} is not a board size {MIN_SIZE}..{MAX_SIZE}")
    try:
        net_cfg = net_config_of(data["net"])
        validate(dataclasses.replace(Config(), net=net_cfg))  # the ranges of net.* (one place: config.validate)
    except (TypeError, ValueError, ConfigError) as e:
        why = str(e) if isinstance(e, ConfigError) else _first_line(e)
        raise CheckpointError(f"checkpoint {path} has an unusable architecture record ({why})") from None
    return data


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu", expect_board: int | None = None,
               expect_net: NetConfig | None = None) -> tuple[PolicyValueNet, dict[str, Any]]:
    """Rebuild the net a checkpoint describes and load its weights; returns ``(net in eval mode, meta)``.

    ``meta`` is the stored dict without the weights (``model_id``, ``board_size``: the size it was trained on,
    ``net``, and the caller's extras such as ``step``, ``optimizer``, ``config``). A net with KataGo-style heads
    (fully convolutional: no weight depends on the board) is built for ``expect_board`` whatever size it was
    trained on (``net.board_size`` is the size it plays, ``meta["board_size"]`` the size it learnt on). Raises
    ``CheckpointError`` with a one-line message if the file is unreadable, or if it is an fc-heads net for
    another board size than ``expect_board``, another architecture than ``expect_net``, another number of
    input planes than this build, or its weights do not fit its own architecture."""
    data = read_checkpoint(path, device)
    trained = int(data["board_size"])
    board = trained if expect_board is None else int(expect_board)
    planes = int(data.get("num_planes", NUM_PLANES))
    if planes != NUM_PLANES:
        raise CheckpointError(f"checkpoint {path} takes {planes} input planes, this build makes {NUM_PLANES}")
    try:
        net_cfg = net_config_of(data["net"])
    except TypeError as e:
        raise CheckpointError(f"checkpoint {path} has an unknown architecture record ({_first_line(e)})") from None
    if board != trained and net_cfg.heads != "kata":
        raise CheckpointError(f"checkpoint {path} is for {trained}x{trained}, asked for {board}x{board} (its fc "
                              f"heads fit one board size; a net with kata heads plays any)")
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
    bad = next((name for name, t in data["model"].items()
                if torch.is_tensor(t) and t.is_floating_point() and not bool(torch.isfinite(t).all())), None)
    if bad is not None:
        raise CheckpointError(f"checkpoint {path} has non-finite weights (NaN or inf in {bad}): it can neither "
                              f"play nor train")
    net.eval()
    bad = broken_output(net)
    if bad is not None:
        raise CheckpointError(f"checkpoint {path}: its weights are finite but its {bad} output is not (NaN or inf "
                              f"on a test position): it can neither play nor train")
    net.to(device)
    meta = {k: v for k, v in data.items() if k != "model"}
    net.model_id = board_model_id(str(meta.get("model_id") or make_model_id(net, meta.get("step"))), board, trained)
    net.trained_steps = int(meta.get("step") or 0)
    net.trained_board = trained
    return net, meta


def load_fixed_net(cfg, model: str, board: int | None = None) -> PolicyValueNet:
    """A net that does not change (``selfplay``, GTP): a checkpoint path, or ``fresh``: a new net of
    ``cfg.net`` (a ``specmcts.config.Config``) seeded by ``cfg.seed``; for ``board`` (default
    ``cfg.game.board``), on CPU."""
    board = board or cfg.game.board
    if model != FRESH:
        net, _meta = load_model(model, expect_board=board)
        return net
    torch.manual_seed(cfg.seed)
    net = build_net(board, cfg.net)
    net.model_id = "fresh-" + make_model_id(net)
    return net


def board_model_id(model_id: str, board: int, trained: int) -> str:
    """The model id of a net's weights playing ``board``: the weights' id, with ``@NxN`` when that is not the
    size they were recorded for (another evaluator; an NN cache entry of one never answers the other)."""
    base = model_id.split("@")[0]
    return base if board == trained else f"{base}@{board}x{board}"


def on_board(net: PolicyValueNet, board: int) -> PolicyValueNet:
    """The same weights playing ``board`` (a new module on the same device, in eval mode; ``net`` itself when
    it already plays that size). Only nets with kata heads play another size than they were built for."""
    if board == net.board_size:
        return net
    if not net.kata:
        raise CheckpointError(f"a net with fc heads plays only {net.board_size}x{net.board_size}, not "
                              f"{board}x{board} (a net with kata heads plays any size)")
    other = PolicyValueNet(board, net.net_cfg, net.num_planes)
    other.load_state_dict(net.state_dict())
    other.to(next(net.parameters()).device).eval()
    other.trained_steps = net.trained_steps
    other.trained_board = net.trained_board
    other.model_id = board_model_id(net.model_id, board, net.trained_board)
    return other


def broken_output(net: PolicyValueNet) -> str | None:
    """The name of an output that is NaN or inf on a fixed test batch (finite weights can overflow: every
    weight x 1e30), else None. Runs on the net's device, in eval mode."""
    size = net.board_size
    g = torch.Generator().manual_seed(0)
    probe = (torch.rand(2, net.num_planes, size, size, generator=g) < 0.3).float()
    device = next(net.parameters()).device
    with torch.inference_mode():
        out = net.heads(probe.to(device))
    return next((name for name, t in out.items() if not bool(torch.isfinite(t).all())), None)


def _describe(cfg: NetConfig) -> str:
    if cfg.heads == "kata":
        return (f"{cfg.blocks} blocks x {cfg.channels} channels (kata heads {cfg.head_channels or cfg.channels // 2}, "
                f"value {cfg.value_hidden}, global pooling every {cfg.gpool_every})")
    return (f"{cfg.blocks} blocks x {cfg.channels} channels (fc heads: policy {cfg.policy_channels}, value "
            f"{cfg.value_channels}/{cfg.value_hidden})")
