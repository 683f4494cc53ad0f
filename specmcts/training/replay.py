"""Replay buffer: the newest self-play samples of a run directory, sampled uniformly, with board symmetries.

Shards are the ``data/*.npz`` files self-play writes: ``features`` uint8/float16
[n, C, N, N], ``policy`` float32 [n, N*N+1], ``value`` float32 [n], and since shard version 2
``policy_weight`` float32 [n] (0: a fast search of playout cap randomization, policy not trained on),
``ownership`` int8 [n, N, N] and ``score`` float32 [n] (final Tromp-Taylor ownership and margin from the
side to move) with ``aux_weight`` float32 [n] (0: no such targets, e.g. a resigned game). Version 1 shards
load with policy weight 1 and aux weight 0. Shard names sort chronologically (every writer stamps them with
a time or a sequence number), so "newest" means "last by name".

Window (KataGo's growing window): after ``n`` samples have been produced in total, training draws from the
newest ``window_size(n)`` of them::

    n <= c:   all n
    n >  c:   c * (1 + beta * ((n / c) ** alpha - 1) / alpha)      (c = window_samples, beta = window_growth)

capped at ``window_max_samples``; ``beta = 0`` is a fixed window of ``c`` samples.

Robustness: a shard that cannot be read or does not fit (truncated, corrupt, another board size, bad shapes,
non-finite targets) is reported once, by name, in one line, and skipped; it is tried again if its size or
modification time changes. ``*.tmp`` files (a writer's work in progress) are never read.

Storage: one contiguous array per field, samples of the window in ``[start, end)``; new shards are appended
at ``end`` and the window start moves forward; the arrays are compacted when the dead prefix is larger than
the live window, so appending costs amortised O(1) per sample.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from games.symmetry import NUM_SYMMETRIES, apply_symmetry
from native.features import NUM_PLANES
from specmcts.config import TrainConfig
from specmcts.stopping import say


class ShardError(ValueError):
    """A shard that cannot be used; the message is one line and names the file."""



# -- symmetries ---------------------------------------------------------------------------------------------


def augment(features: np.ndarray, policy: np.ndarray, symmetries: np.ndarray, *grids: np.ndarray
            ) -> tuple[np.ndarray, ...]:
    """Apply ``symmetries[i]`` to sample ``i`` of ``features`` [B, C, N, N], ``policy`` [B, N*N+1] (pass
    stays last) and any further board ``grids`` [B, N, N] (ownership). Returns new arrays, in that order."""
    size = features.shape[-1]
    area = size * size
    out_f = np.empty_like(features)
    out_p = np.empty_like(policy)
    out_g = [np.empty_like(g) for g in grids]
    out_p[:, area:] = policy[:, area:]
    for s in range(NUM_SYMMETRIES):
        rows = np.flatnonzero(symmetries == s)
        if len(rows) == 0:
            continue
        out_f[rows] = apply_symmetry(features[rows], s)
        grid = policy[rows, :area].reshape(len(rows), size, size)
        out_p[rows, :area] = apply_symmetry(grid, s).reshape(len(rows), area)
        for g, out in zip(grids, out_g):
            out[rows] = apply_symmetry(g[rows], s)
    return (out_f, out_p, *out_g)


class Batch(NamedTuple):
    """A training batch (``ReplayBuffer.sample``)."""

    features: np.ndarray  # uint8 [B, C, N, N]
    policy: np.ndarray  # float32 [B, A]
    value: np.ndarray  # float32 [B]
    policy_weight: np.ndarray  # float32 [B]
    ownership: np.ndarray  # int8 [B, N, N]
    score: np.ndarray  # float32 [B]
    aux_weight: np.ndarray  # float32 [B]


# -- shards -------------------------------------------------------------------------------------------------


@dataclass
class Shard:
    path: Path
    features: np.ndarray  # uint8 [n, C, N, N]
    policy: np.ndarray  # float32 [n, A]
    value: np.ndarray  # float32 [n]
    model_id: str
    policy_weight: np.ndarray = None  # float32 [n]
    ownership: np.ndarray = None  # int8 [n, N, N]
    score: np.ndarray = None  # float32 [n]
    aux_weight: np.ndarray = None  # float32 [n]

    def __len__(self) -> int:
        return len(self.value)


def _describe_error(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:120]}" if text else type(e).__name__


def _open(path: Path):
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ShardError(f"shard {path} is unreadable or truncated ({_describe_error(e)})") from None


def shard_info(path: Path) -> tuple[int, int | None]:
    """``(samples, board size)`` of a shard, reading only its ``value`` and ``board_size`` arrays (the size is
    None in shards that predate the tag); ``ShardError`` if unreadable."""
    try:
        with _open(path) as data:
            if "value" not in data.files:
                raise ShardError(f"shard {path} has no 'value' array (not a training shard)")
            value = data["value"]
            board = int(data["board_size"]) if "board_size" in data.files else None
    except ShardError:
        raise
    except Exception as e:  # zlib.error, BadZipFile and ValueError from a damaged member
        raise ShardError(f"shard {path} is unreadable or truncated ({_describe_error(e)})") from None
    if value.ndim != 1:
        raise ShardError(f"shard {path}: value has shape {value.shape}, expected [n]")
    return int(value.shape[0]), board


def read_shard(path: str | Path, board_size: int) -> Shard:
    """Load and check a whole shard; ``ShardError`` (one line, naming the file) if it cannot be used."""
    path = Path(path)
    n_actions = board_size * board_size + 1
    try:
        with _open(path) as data:
            missing = [k for k in ("features", "policy", "value") if k not in data.files]
            if missing:
                raise ShardError(f"shard {path} lacks {', '.join(missing)} (not a training shard)")
            if "board_size" in data.files and int(data["board_size"]) != board_size:
                raise ShardError(f"shard {path} is for {int(data['board_size'])}x{int(data['board_size'])}, "
                                 f"the run is {board_size}x{board_size}")
            features = data["features"]
            policy = data["policy"]
            value = data["value"]
            model_id = str(data["model_id"]) if "model_id" in data.files else "?"
            n = value.shape[0] if value.ndim == 1 else -1
            aux = "ownership" in data.files
            policy_weight = data["policy_weight"] if "policy_weight" in data.files else np.ones(max(n, 0), np.float32)
            ownership = data["ownership"] if aux else np.zeros((max(n, 0), board_size, board_size), np.int8)
            score = data["score"] if aux else np.zeros(max(n, 0), np.float32)
            aux_weight = data["aux_weight"] if aux else np.zeros(max(n, 0), np.float32)
    except ShardError:
        raise
    except Exception as e:  # a damaged zip member surfaces only when it is read
        raise ShardError(f"shard {path} is unreadable or truncated ({_describe_error(e)})") from None
    expect_f = (n, NUM_PLANES, board_size, board_size)
    if n < 0 or features.shape != expect_f or policy.shape != (n, n_actions):
        raise ShardError(f"shard {path} has shapes features {features.shape}, policy {policy.shape}, value "
                         f"{value.shape}; expected {expect_f}, ({n}, {n_actions}), (n,)")
    if (policy_weight.shape != (n,) or ownership.shape != (n, board_size, board_size) or score.shape != (n,)
            or aux_weight.shape != (n,)):
        raise ShardError(f"shard {path} has auxiliary targets of shapes policy_weight {policy_weight.shape}, "
                         f"ownership {ownership.shape}, score {score.shape}, aux_weight {aux_weight.shape} for "
                         f"{n} samples")
    policy_weight = policy_weight.astype(np.float32, copy=False)
    score = score.astype(np.float32, copy=False)
    aux_weight = aux_weight.astype(np.float32, copy=False)
    if not (np.isfinite(policy_weight).all() and np.isfinite(score).all() and np.isfinite(aux_weight).all()):
        raise ShardError(f"shard {path} holds non-finite auxiliary targets or weights")
    if n and (np.abs(ownership).max() > 1 or min(policy_weight.min(), aux_weight.min()) < 0.0):
        raise ShardError(f"shard {path} holds targets out of range (ownership outside [-1, 1] or a negative weight)")
    ownership = ownership.astype(np.int8, copy=False)
    if features.dtype != np.uint8:
        if features.dtype.kind not in "fiub":
            raise ShardError(f"shard {path}: features of type {features.dtype}")
        features = features.astype(np.uint8)
    policy = policy.astype(np.float32, copy=False)
    value = value.astype(np.float32, copy=False)
    if not (np.isfinite(policy).all() and np.isfinite(value).all()):
        raise ShardError(f"shard {path} holds non-finite policy or value targets")
    if n and (np.abs(value).max() > 1.0 or policy.min() < 0.0):
        raise ShardError(f"shard {path} holds targets out of range (value outside [-1, 1] or negative policy)")
    return Shard(path, features, policy, value, model_id, policy_weight, ownership, score, aux_weight)


def shard_paths(data_dir: str | Path) -> list[Path]:
    """The finished shards of a folder, oldest first (by name)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        return []
    return sorted(p for p in data_dir.glob("*.npz") if p.is_file())


def window_size(total_samples: int, cfg: TrainConfig) -> int:
    """Samples trained on after ``total_samples`` have been produced (see the module docstring)."""
    c = max(1, int(cfg.window_samples))
    n = int(total_samples)
    if n <= c:
        return n
    if cfg.window_growth <= 0:
        return c
    alpha = cfg.window_exponent
    size = int(c * (1.0 + cfg.window_growth * ((n / c) ** alpha - 1.0) / alpha))
    if cfg.window_max_samples > 0:
        size = min(size, int(cfg.window_max_samples))
    return max(1, min(size, n))


# -- the buffer ---------------------------------------------------------------------------------------------


class ReplayBuffer:
    """The replay window of ``data_dir``. ``refresh()`` picks up new shards; ``sample(b)`` draws a batch.

    ``total_samples`` counts every good sample ever seen in the folder (the window's ``n``); ``len(buffer)``
    is the window. The sampling generator is seeded by ``seed`` and saved with ``state_dict()``, so a
    resumed trainer draws the batches an uninterrupted one would have drawn."""

    def __init__(self, data_dir: str | Path, board_size: int, cfg: TrainConfig, seed: int = 0,
                 report: Callable[[str], None] | None = None, other_sizes: str = "report"):
        self.data_dir = Path(data_dir)
        self.board_size = int(board_size)
        # A shard of another board size: "report" it (skipped, once) or "ignore" it (a mixed-size run's
        # folder holds every size; each size's buffer takes its own and counts no other)
        self.other_sizes = other_sizes
        self.cfg = cfg
        self.report = report or say
        self.rng = np.random.default_rng([int(seed), 0x5EED])
        self.total_samples = 0
        self.shards_read = 0
        self.skipped: dict[str, str] = {}  # shard name -> reason (reported once)
        self._bad_stamp: dict[str, tuple[int, int]] = {}  # name -> (size, mtime_ns) when it failed
        self._seen: set[str] = set()
        self._model_ids: list[tuple[int, str]] = []  # (end index, model id) per shard in storage
        area = self.board_size * self.board_size
        self._features = np.zeros((0, NUM_PLANES, self.board_size, self.board_size), np.uint8)
        self._policy = np.zeros((0, area + 1), np.float32)
        self._value = np.zeros(0, np.float32)
        self._policy_weight = np.zeros(0, np.float32)
        self._ownership = np.zeros((0, self.board_size, self.board_size), np.int8)
        self._score = np.zeros(0, np.float32)
        self._aux_weight = np.zeros(0, np.float32)
        self._start = 0
        self._end = 0

    # -- loading ---------------------------------------------------------------------------------
    # the stored arrays, one per Shard field (``_x`` holds ``Shard.x``)
    _FIELDS = ("_features", "_policy", "_value", "_policy_weight", "_ownership", "_score", "_aux_weight")

    def __len__(self) -> int:
        return self._end - self._start

    @property
    def window(self) -> int:
        return window_size(self.total_samples, self.cfg)

    def _skip(self, path: Path, reason: str) -> None:
        try:
            st = path.stat()
            self._bad_stamp[path.name] = (st.st_size, st.st_mtime_ns)
        except OSError:
            self._bad_stamp[path.name] = (-1, -1)
        if path.name not in self.skipped:
            self.report(f"replay: skipping {reason}")
        self.skipped[path.name] = reason

    def _new_paths(self) -> list[Path]:
        fresh = []
        for p in shard_paths(self.data_dir):
            if p.name in self._seen:
                continue
            if p.name in self._bad_stamp:
                try:
                    st = p.stat()
                    if (st.st_size, st.st_mtime_ns) == self._bad_stamp[p.name]:
                        continue  # unchanged since it failed
                except OSError:
                    continue
            fresh.append(p)
        return fresh

    def refresh(self) -> int:
        """Read the shards written since the last call; returns the number of new samples."""
        fresh = self._new_paths()
        if not fresh:
            return 0
        # Count first: the window depends on the total, and shards older than the window need not be loaded.
        counts = {}
        for p in fresh:
            try:
                n, board = shard_info(p)
            except ShardError as e:
                self._skip(p, str(e))
                continue
            if self.other_sizes == "ignore" and board is not None and board != self.board_size:
                self._seen.add(p.name)  # another size's: never this buffer's
                continue
            counts[p.name] = n
        good = [p for p in fresh if p.name in counts]
        total_after = self.total_samples + sum(counts.values())
        window = window_size(total_after, self.cfg)
        # Load newest first until the window is covered; older new shards only count.
        loaded: list[Shard] = []
        covered = 0
        for p in reversed(good):
            if covered >= window:
                break
            try:
                shard = read_shard(p, self.board_size)
            except ShardError as e:
                self._skip(p, str(e))
                counts.pop(p.name)
                continue
            loaded.append(shard)
            covered += len(shard)
        added = sum(counts.values())
        for p in good:
            if p.name in counts:
                self._seen.add(p.name)
                self.skipped.pop(p.name, None)
                self._bad_stamp.pop(p.name, None)
        self.total_samples += added
        self.shards_read += len(counts)
        self._append(list(reversed(loaded)))
        self._trim()
        return added

    def _append(self, shards: list[Shard]) -> None:
        n_new = sum(len(s) for s in shards)
        if n_new == 0:
            return
        live = self._end - self._start
        capacity = len(self._value)
        if self._end + n_new > capacity:
            if self._start > 0:  # compact: move the live window to the front
                for name in self._FIELDS:
                    array = getattr(self, name)
                    array[:live] = array[self._start:self._end]
                self._model_ids = [(end - self._start, mid) for end, mid in self._model_ids if end > self._start]
                self._start, self._end = 0, live
            if live + n_new > capacity:
                new_cap = max(2 * capacity, live + n_new, 1024)
                limit = self._capacity_limit()
                if limit:
                    new_cap = max(min(new_cap, limit), live + n_new)
                for name in self._FIELDS:
                    setattr(self, name, _grow(getattr(self, name), new_cap, live))
        for s in shards:
            k = len(s)
            for name in self._FIELDS:
                getattr(self, name)[self._end:self._end + k] = getattr(s, name[1:])
            self._end += k
            self._model_ids.append((self._end, s.model_id))

    def _capacity_limit(self) -> int:
        """Storage needed at most: twice the largest window (amortised compaction), when it is bounded."""
        cfg = self.cfg
        if cfg.window_growth <= 0:
            return 2 * max(1, cfg.window_samples)
        return 2 * cfg.window_max_samples if cfg.window_max_samples > 0 else 0

    def _trim(self) -> None:
        self._start = max(self._start, self._end - self.window)
        self._model_ids = [(end, mid) for end, mid in self._model_ids if end > self._start]

    def model_ids(self) -> list[str]:
        """Model ids of the nets that played the samples in the window, oldest first."""
        return [mid for _, mid in self._model_ids]

    # -- sampling --------------------------------------------------------------------------------
    def sample(self, batch_size: int, augment_symmetries: bool | None = None) -> Batch:
        """``batch_size`` samples drawn uniformly (with replacement) from the window (a ``Batch``), each
        under a random board symmetry when ``augment`` (default: ``cfg.augment``)."""
        if len(self) == 0:
            raise ValueError(f"replay buffer of {self.data_dir} is empty")
        idx = self.rng.integers(self._start, self._end, size=int(batch_size))
        features = self._features[idx]
        policy = self._policy[idx]
        ownership = self._ownership[idx]
        if self.cfg.augment if augment_symmetries is None else augment_symmetries:
            symmetries = self.rng.integers(0, NUM_SYMMETRIES, size=len(idx))
            features, policy, ownership = augment(features, policy, symmetries, ownership)
        return Batch(features, policy, self._value[idx], self._policy_weight[idx], ownership, self._score[idx],
                     self._aux_weight[idx])

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]

    def stats(self) -> dict:
        return {"buffer_samples": len(self), "window": self.window, "total_samples": self.total_samples,
                "shards": self.shards_read, "skipped_shards": len(self.skipped)}


class MixedReplay:
    """A mixed-size run's replay (``game.boards``): one ``ReplayBuffer`` per size over the run's one ``data/``
    folder (shards carry their size), each with its own window, and batches of one size each, the size drawn
    by its share of the samples (``game.shares``) among the sizes that have samples. The same interface as
    ``ReplayBuffer``; ``total_samples`` and ``len`` are summed over the sizes."""

    def __init__(self, data_dir: str | Path, shares: dict[int, float], cfg: TrainConfig, seed: int = 0,
                 report: Callable[[str], None] | None = None):
        self.data_dir = Path(data_dir)
        self.cfg = cfg
        self.shares = dict(shares)
        self.buffers = {b: ReplayBuffer(data_dir, b, cfg, seed=seed + 7919 * b, report=report, other_sizes="ignore")
                        for b in self.shares}
        self.rng = np.random.default_rng([int(seed), 0x517E])
        self.last_board: int | None = None  # the size of the last batch drawn

    def __len__(self) -> int:
        return sum(len(b) for b in self.buffers.values())

    @property
    def total_samples(self) -> int:
        return sum(b.total_samples for b in self.buffers.values())

    @property
    def window(self) -> int:
        return sum(b.window for b in self.buffers.values())

    @property
    def skipped(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for b in self.buffers.values():
            out.update(b.skipped)
        return out

    def refresh(self) -> int:
        return sum(b.refresh() for b in self.buffers.values())

    def model_ids(self) -> list[str]:
        return [mid for b in self.buffers.values() for mid in b.model_ids()]

    def pick_board(self) -> int:
        """The size of the next batch: by share, among the sizes with samples in their window."""
        ready = [b for b in self.shares if len(self.buffers[b])]
        if not ready:
            raise ValueError(f"replay buffer of {self.data_dir} is empty")
        weights = np.array([self.shares[b] for b in ready])
        return ready[int(self.rng.choice(len(ready), p=weights / weights.sum()))]

    def sample(self, batch_size: int, augment_symmetries: bool | None = None) -> Batch:
        self.last_board = self.pick_board()
        return self.buffers[self.last_board].sample(batch_size, augment_symmetries)

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "sizes": {b: buf.state_dict() for b, buf in self.buffers.items()}}

    def load_state_dict(self, state: dict) -> None:
        if "sizes" not in state:  # a single-size run's checkpoint continued as a mixed one: fresh generators
            return
        self.rng.bit_generator.state = state["rng"]
        for b, buf in self.buffers.items():
            if b in state["sizes"]:
                buf.load_state_dict(state["sizes"][b])

    def stats(self) -> dict:
        out = {"buffer_samples": len(self), "window": self.window, "total_samples": self.total_samples,
               "shards": sum(b.shards_read for b in self.buffers.values()), "skipped_shards": len(self.skipped)}
        out["sizes"] = {f"{b}x{b}": buf.stats() for b, buf in self.buffers.items()}
        return out


def make_replay(cfg, data_dir: str | Path, seed: int = 0, report: Callable[[str], None] | None = None):
    """The replay buffer of a run's ``data_dir`` for ``cfg`` (a ``specmcts.config.Config``): one size's
    ``ReplayBuffer``, or a ``MixedReplay`` over ``game.boards``."""
    if cfg.game.mixed:
        return MixedReplay(data_dir, cfg.game.size_shares(), cfg.train, seed=seed, report=report)
    return ReplayBuffer(data_dir, cfg.game.board, cfg.train, seed=seed, report=report)


def _grow(array: np.ndarray, capacity: int, live: int) -> np.ndarray:
    out = np.zeros((capacity,) + array.shape[1:], array.dtype)
    out[:live] = array[:live]
    return out
