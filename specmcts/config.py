"""Configuration as data: dataclasses, YAML presets in ``configs/``, and ``--set a.b=value`` overrides.

The dataclass defaults are the embedded default (the go9 preset), so the CLI works with no file at all.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CONFIG_DIR = Path(__file__).resolve().parent / "configs"  # package data: a wheel install has the presets too


@dataclass(frozen=True)
class GameConfig:
    """The game. ``board`` is the size that is played; a *mixed-size* run (``specmcts run``) names several in
    ``boards`` (e.g. ``[9, 13, 19]``, ``board`` one of them: the size its checkpoints are recorded for) with
    each one's ``shares`` of the training samples (default: equal). One net (kata heads) learns them all:
    self-play plays each size in proportion to its share over its area, the replay buffer samples each size
    by its share, one size per batch (KataGo trains one net on several sizes the same way)."""

    board: int = 9
    komi: float = 7.5
    superko: bool = True
    boards: tuple = field(default=(), metadata={"items": int})  # mixed-size runs: the sizes ((): board only)
    shares: tuple = field(default=(), metadata={"items": float})  # ... their shares of the samples ((): equal)

    def rules(self):
        """The rules these settings describe (``games.go.GoRules``)."""
        from games.go import GoRules

        return GoRules(self.board, self.komi, self.superko)

    def sizes(self) -> tuple[int, ...]:
        """The board sizes played: ``boards``, or ``(board,)``."""
        return tuple(self.boards) if self.boards else (self.board,)

    @property
    def mixed(self) -> bool:
        return len(self.sizes()) > 1

    def size_shares(self) -> dict[int, float]:
        """Each size's share of the training samples, summing to 1."""
        sizes = self.sizes()
        raw = tuple(self.shares) if self.shares else (1.0,) * len(sizes)
        total = float(sum(raw))
        return {b: float(s) / total for b, s in zip(sizes, raw)}

    def game_shares(self) -> dict[int, float]:
        """Each size's share of the self-play *games*: its sample share over its area (a game's samples grow
        with the area), so that the samples produced follow ``size_shares``."""
        weights = {b: s / (b * b) for b, s in self.size_shares().items()}
        total = sum(weights.values())
        return {b: w / total for b, w in weights.items()}


@dataclass(frozen=True)
class NetConfig:
    """The network (``specmcts.engine.network``). ``heads: kata`` (the default) is KataGo-style and fully
    convolutional: a 1x1-conv policy plane plus a pass logit from pooled features, a pooled value head, and
    the auxiliary ownership and score heads; ``fc`` is the AlphaZero heads (fully connected over the board),
    which is what checkpoints made before ``heads`` existed hold."""

    blocks: int = 6
    channels: int = 64
    policy_channels: int = 2  # fc heads: 1x1-conv channels of the policy head
    value_channels: int = 1  # fc heads: ... of the value head
    value_hidden: int = 64  # hidden units of the value (and score) MLP
    heads: str = "kata"  # kata | fc
    head_channels: int = 0  # kata heads: 1x1-conv channels of the policy and value heads (0: channels // 2)
    gpool_every: int = 2  # every this many residual blocks one has global pooling bias (0: none; kata only)
    gpool_channels: int = 0  # channels pooled in those blocks (0: channels // 4)


from specmcts.limits import (AUTO, ConfigError, MAX_ROWS, MAX_SEED, MAX_SIMS, MAX_SPEC_STAGES, MAX_SPEC_WIDTH,  # noqa: F401
                             MAX_SPECULATE, OPTIMIZERS, RUN_MODES, SCHEDULES, validate)




@dataclass(frozen=True)
class SearchConfig:
    """The search itself: what ``specmcts.engine.search.Search`` reads."""

    sims: int = 800  # simulations per move
    c_puct: float = 1.25
    fpu_reduction: float = 0.25  # unvisited child value = parent value - fpu_reduction * sqrt(visited prior mass)
    leaves_per_tree: int = 8  # intra-decision batch: leaves selected per tree per evaluator call (virtual loss)
    virtual_loss: float = 1.0
    tree_reuse: bool = False
    threads: int = 0  # CPU threads for the batch kernels: 0 = this process's share of the cores (specmcts.threads)
    parallel_min_trees: int = 16  # below this many trees in a batch the kernels run serially
    overlap: bool = False  # two batches in flight per search: half the trees' forward pass runs (in a thread,
    # on a twin evaluator) while the other half selects; records unchanged (docs/performance.md)
    # Root selection: puct (AlphaZero: PUCT + Dirichlet noise, visit-count targets, temperature picks) or gumbel
    # (Danihelka et al. 2022: Gumbel-top-k candidates, sequential halving, improved-policy targets from
    # completed Q-values; self-play draws the Gumbel noise per (game, move), evaluation and GTP use none).
    root: str = "puct"
    gumbel_considered: int = 16  # gumbel: candidates m sampled at the root
    gumbel_c_visit: float = 50.0  # gumbel: sigma(q) = (c_visit + max visits) * c_scale * q (mctx defaults)
    gumbel_c_scale: float = 0.1
    # Score utility (KataGo's dynamic score utility, its weight 0.3): selection maximises
    # q + score_utility * (2/pi) * atan((mean score - root's score) / scale), so a search whose value has
    # saturated still sees points (it keeps a lead instead of passing it away). Applies with an evaluator
    # that has a score head (kata nets); 0: off.
    score_utility: float = 0.3
    score_utility_scale: float = 0.0  # points; 0: half the board's side (4.5 on 9x9)
    # false: the search never plays into the mover's own true eyes (diagonal rule). Tromp-Taylor play never
    # needs to, and a net that has not yet learnt when to pass would fill its eyes until its groups die.
    fill_own_eyes: bool = False


@dataclass(frozen=True)
class MoveConfig:
    """How a move is chosen from a search, and how self-play varies its games and its searches."""

    temperature: float = 1.0
    temperature_moves: int = 0  # moves sampled with temperature; 0: N*N // 8 (10 on 9x9, 45 on 19x19)
    dirichlet_alpha: float = 0.0  # 0: scaled to the board, 0.03 * 361 / N^2 (AlphaZero's 0.03 on 19x19)
    dirichlet_fraction: float = 0.25
    resign_threshold: float = -0.95  # resign when the root value is below this
    resign_consecutive: int = 3  # ... for this many of the player's moves in a row (0: never resign)
    no_resign_fraction: float = 0.1  # games that never resign (to measure false resignations)
    # Playout cap randomization (KataGo): a move gets the full `search.sims` with probability
    # full_search_fraction (drawn per (game, move)) and its policy is trained on; otherwise a fast search of
    # fast_sims, without root noise, whose policy target is not trained on. 0: off (every move full).
    fast_sims: int = 0
    full_search_fraction: float = 0.25
    # Self-play: the first move number at which a search's root may pass while it has another move (-1: half
    # the board's points, 40 on 9x9; 0: any move). Under area scoring an early pass ends a game two moves in
    # (both pass, komi decides); a net that learns to expect that loses from the first move on and passes
    # again: a run fell into such games within a few generations. Searches below the root may still pass.
    pass_from: int = -1


@dataclass(frozen=True)
class SpeculationConfig:
    """Speculation: the searches of the next positions started before a move is decided."""

    # look-ahead depth k of the inter-decision pipeline: 0..16 (0 = off), or "auto": the shape the evaluator's
    # measured batch-cost curve affords (self-play; GTP ponders up to 16 moves deep)
    k: int | str = field(default=0, metadata={"auto": True})
    # Speculation trees: a level may start searches for its width best candidate moves, not only its
    # prediction; rows bounds the evaluator rows one game's searches take per batch (0: a chain's,
    # (k + 1) * search.leaves_per_tree); the likeliest positions get them. sure: a move decided early (its
    # lead cannot be caught with the simulations left) starts its successor as a search that never rolls back.
    width: int = 1
    rows: int = 0
    sure: bool = True
    stages: int = 0  # stages a search is cut into (boundaries where the tree may change); 0: k + 1


# Keys that moved out of ``search`` (configs written before the split still load; ``--set`` takes both).
MOVED_KEYS = {
    **{f"search.{k}": f"moves.{k}" for k in ("temperature", "temperature_moves", "dirichlet_alpha",
                                             "dirichlet_fraction", "resign_threshold", "resign_consecutive",
                                             "no_resign_fraction", "fast_sims", "full_search_fraction")},
    "search.speculate": "speculation.k", "search.spec_width": "speculation.width",
    "search.spec_rows": "speculation.rows", "search.spec_sure": "speculation.sure",
    "search.spec_stages": "speculation.stages",
}


@dataclass(frozen=True)
class EvaluatorConfig:
    device: str = "auto"  # auto | cpu | cuda
    max_batch: int = 512
    cuda_graphs: bool = True
    dtype: str = "bfloat16"  # autocast dtype on CUDA
    cpu_dtype: str = "auto"  # on CPU: float32 | bfloat16 (autocast) | auto: bfloat16 for batches of >= 16 rows
    # where the CPU computes bf16 natively (AVX512-BF16 or AMX: about 2x faster), float32 otherwise
    cache_entries: int = 1 << 20  # NN cache capacity (entries); 0 disables the cache
    torch_threads: int = 0  # torch's CPU threads; 0: decided by specmcts.threads (1 where a process searches)
    shared: str = "auto"  # several self-play processes: one evaluator process for all (on) or a net each (off);
    # auto: on with CUDA (one CUDA context, batches across workers), off on CPU (docs/performance.md)
    server_batch: int = 0  # the shared evaluator's batch (0: workers * max_batch, at most 2048)


@dataclass(frozen=True)
class SelfPlayConfig:
    games: int = 64  # total games to play
    concurrent: int = 16  # games in flight in one process
    max_moves: int = 0  # 0: the rules' 2 * N * N
    shard_games: int = 32  # games per training shard


@dataclass(frozen=True)
class TrainConfig:
    """The trainer (``specmcts train`` and the training half of ``specmcts run``) and its replay window."""

    steps: int = 2000  # optimizer steps of `specmcts train`
    batch_size: int = 256
    optimizer: str = "sgd"  # sgd (momentum, Nesterov) | adamw
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 1e-4  # sgd: L2 term in the loss (conv/linear weights); adamw: decoupled decay
    lr_schedule: str = "constant"  # constant | cosine (to lr_min at lr_total_steps) | step (x lr_decay_factor)
    lr_warmup_steps: int = 0  # linear warm-up from 0
    lr_total_steps: int = 0  # cosine: steps to reach lr_min (0: no decay)
    lr_min: float = 0.0
    lr_decay_every: int = 0  # step: multiply by lr_decay_factor every this many steps (0: never)
    lr_decay_factor: float = 0.1
    value_weight: float = 1.0  # loss = policy cross-entropy + value_weight * value MSE (+ L2)
    ownership_weight: float = 1.0  # ... + ownership_weight * mean per-point ownership cross-entropy (kata heads)
    score_weight: float = 0.05  # ... + score_weight * Huber(score / N) (kata heads)
    grad_clip: float = 5.0  # max global gradient norm (0: off)
    amp: bool = True  # autocast on CUDA, and in bf16 on a CPU that computes bf16 in hardware (else off on CPU)
    amp_dtype: str = "bfloat16"  # bfloat16 | float16 (float16 adds a gradient scaler)
    checkpoint_every: int = 500  # steps between checkpoints (written atomically)
    keep_checkpoints: int = 0  # newest checkpoints kept besides the first (0: keep all)
    log_every: int = 20  # steps between TensorBoard points
    min_samples: int = 2048  # replay samples needed before the first step
    window_samples: int = 250_000  # replay window: the newest samples trained on (KataGo's c)
    window_growth: float = 0.0  # KataGo-style growing window (beta, e.g. 0.4); 0: fixed window
    window_exponent: float = 0.75  # ... its exponent alpha: window = c * (1 + beta * ((n / c)^alpha - 1) / alpha)
    window_max_samples: int = 0  # cap on the growing window (0: none)
    augment: bool = True  # a random one of the 8 board symmetries per sample


@dataclass(frozen=True)
class RunConfig:
    """``specmcts run``: self-play and training on one machine."""

    mode: str = "async"  # async (KataGo: producers and trainer concurrently) | generations (AlphaZero: in turns)
    generations: int = 0  # generations mode: how many (0: until minutes or Ctrl-C)
    minutes: float = 0.0  # wall-clock budget of the whole run (0: none)
    cpu_minutes: float = 0.0  # CPU budget of this run start (user + system time of all threads and of finished
    # child processes: in async mode a worker counts once it has ended; 0: none)
    max_steps: int = 0  # stop at this trainer step (0: none)
    games_per_generation: int = 64  # generations mode: self-play games before each training phase
    chunk_games: int = 0  # async: games per self-play chunk (0: selfplay.concurrent); a new net is picked up between chunks
    workers: int = 1  # async: self-play processes
    train_samples_per_sample: float = 4.0  # ratio control: samples trained on per self-play sample produced
    max_lead_samples: int = 0  # async: self-play pauses when this many samples ahead of the ratio (0: never)
    gating_games: int = 0  # candidate vs current self-play net before it is adopted (0: no gating)
    gating_threshold: float = 0.55  # score the candidate needs to be adopted
    eval_every: int = 0  # trainer steps between Elo evaluations (generations: at a generation end); 0: off
    eval_games: int = 20
    eval_gnugo_games: int = 0  # ... and vs GnuGo at eval.gnugo_level (0: off)
    eval_boards: tuple = field(default=(), metadata={"items": int})  # mixed-size runs: the sizes evaluated
    # (each its own Elo points, elo/<N>x<N>/...; (): every size of game.boards)
    elo_reference: str = ""  # the net elo/vs_first is measured against ("": the run's first checkpoint; "shipped":
    # the board's embedded net; a run continued from another run's checkpoint names that run's first net here,
    # so the Elo curve continues)


@dataclass(frozen=True)
class EvalConfig:
    """Matches (``specmcts eval``, gating and Elo inside ``specmcts run``)."""

    games: int = 40
    sims: int = 0  # simulations per move (0: search.sims)
    concurrent: int = 64  # games played at once (one batched search per side)
    temperature_moves: int = 0  # opening moves sampled in proportion to visits, for variety (0: max(4, N*N // 16))
    temperature: float = 1.0
    resign: bool = True  # resign at moves.resign_threshold for moves.resign_consecutive moves
    gnugo_level: int = 1  # 0..10
    sgf: bool = True  # write every game under <out>/sgf/
    gtp_timeout: float = 120.0  # seconds an external GTP engine may take to answer one command
    # Each pair of games starts from its own opening: this many random legal moves (per pair, from the seed),
    # played once with each colour, so no two games of a match repeat (0: every game from the empty board).
    opening_plies: int = 2


@dataclass(frozen=True)
class RayConfig:
    """``specmcts run --ray [ADDRESS]``: self-play workers as Ray actors (``specmcts.training.distributed``)."""

    address: str = "local"  # local: a new cluster here; auto: the running one; host:port; ray://host:10001
    workers: int = 0  # self-play actors (0: run.workers)
    num_cpus_per_worker: float = 0.0  # CPUs per actor, also its torch/numba threads (0: the most that lets all fit)
    num_gpus_per_worker: float = -1.0  # GPU share per actor (-1: 1/ceil(workers / GPUs), 0 without GPUs; 0: CPU)
    chunks_in_flight: int = 2  # chunks queued per actor, so the next one is ready while the driver trains
    shared_storage: bool = False  # actors write shards/SGF into the run directory themselves (same path on every
    # node, e.g. NFS); false: they return them through the object store and the driver writes them
    max_restarts: int = 20  # dead actors respawned in one run at most (then the run stops)
    trainer: str = "driver"  # driver: the trainer runs in the driver; actor: in a Ray actor of its own (its own
    # GPU), on the driver's node (or anywhere with shared_storage), weights still published by checkpoint
    trainer_cpus: float = 1.0  # CPUs reserved for the trainer actor (also its torch threads, at least 1)
    trainer_gpus: float = -1.0  # GPUs for the trainer actor (-1: 1 when the run's device is CUDA, else 0)


@dataclass(frozen=True)
class Config:
    name: str = "go9"
    seed: int = 0
    cpu_fallback: bool = False  # set when the CPU fallback was applied (reported, not read from files)
    game: GameConfig = field(default_factory=GameConfig)
    net: NetConfig = field(default_factory=NetConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    moves: MoveConfig = field(default_factory=MoveConfig)
    speculation: SpeculationConfig = field(default_factory=SpeculationConfig)
    evaluator: EvaluatorConfig = field(default_factory=EvaluatorConfig)
    selfplay: SelfPlayConfig = field(default_factory=SelfPlayConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    run: RunConfig = field(default_factory=RunConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    ray: RayConfig = field(default_factory=RayConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, not tuples), as YAML and JSON write it."""
        return dataclasses.asdict(self, dict_factory=lambda items: {k: list(v) if isinstance(v, tuple) else v
                                                                    for k, v in items})

    def at_board(self, board: int) -> "Config":
        """This config playing ``board`` (one of ``game.sizes()``): what a mixed-size run hands to self-play and
        matches of that size."""
        if board == self.game.board:
            return self
        return dataclasses.replace(self, game=dataclasses.replace(self.game, board=int(board)))

    def override(self, *items: str) -> "Config":
        """A new config: this one with ``a.b=value`` overrides (as ``--set`` takes them), validated. Configs
        are frozen: this (or ``dataclasses.replace``) is how code derives one from another."""
        return _apply(copy.deepcopy(self), items)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _merge(obj, data: dict, where: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    names = {f.name: f for f in dataclasses.fields(obj)}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(f"{where or 'config'}: unknown key {key!r} (known: {', '.join(sorted(names))})")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            _merge(current, value, _join(where, key))
        elif names[key].metadata.get("auto") and str(value).strip().lower() == AUTO:
            object.__setattr__(obj, key, AUTO)  # building: the config is frozen once loaded
        elif "items" in names[key].metadata:
            object.__setattr__(obj, key, _coerce_list(value, names[key].metadata["items"], _join(where, key)))
        else:
            object.__setattr__(obj, key, _coerce(value, current, _join(where, key)))


def _coerce(value, current, where: str):
    if isinstance(current, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no", "on", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    try:
        if isinstance(current, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if isinstance(current, float):
            return float(value)
    except (TypeError, ValueError):
        kind = "an integer" if isinstance(current, int) else "a number"
        raise ConfigError(f"{where}: expected {kind}, got {value!r}") from None
    return value if isinstance(value, str) else str(value)


def _coerce_list(value, item_type, where: str) -> tuple:
    """A list setting (YAML ``[9, 13]``, ``--set game.boards=[9,13]``; one value is a list of one)."""
    if value is None:
        return ()
    items = value if isinstance(value, (list, tuple)) else [value]
    return tuple(_coerce(v, item_type(), f"{where}[{i}]") for i, v in enumerate(items))


def preset_path(name: str) -> Path:
    return CONFIG_DIR / f"{name}.yaml"


def load_config(source: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Defaults, then a YAML file (a path or a preset name from ``configs/``), then ``a.b=value`` overrides."""
    cfg = Config()
    if source is not None:
        path = find_config(source)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config {path}: not valid YAML ({str(e).splitlines()[0]})") from None
        except UnicodeDecodeError:
            raise ConfigError(f"config {path}: not a text file (a YAML config is expected)") from None
        except OSError as e:
            raise ConfigError(f"config {path}: cannot be read ({e.strerror or e})") from None
        _merge(cfg, _moved(data), str(path))
    return _apply(cfg, overrides)


def presets() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def find_config(source: str | Path) -> Path:
    """A config file: a path, a preset's name (``go9``), or a preset's path as the source tree names it
    (``configs/go9.yaml``, which an installed package also finds); else a one-line error listing the presets."""
    path = Path(source)
    if path.is_dir():
        raise ConfigError(f"config {source}: a directory, not a YAML file")
    if path.is_file():
        return path
    for name in (str(source), path.stem if path.suffix in (".yaml", ".yml") and path.parent.name == "configs" else ""):
        if name and preset_path(name).is_file():
            return preset_path(name)
    raise ConfigError(f"config {source}: no such file or preset (presets: {', '.join(presets())}, "
                      f"e.g. --config go9 or --config configs/go9.yaml)")


def _moved(data):
    """A config file's data with the keys that left ``search`` (``MOVED_KEYS``) in their sections now."""
    if not isinstance(data, dict) or not isinstance(data.get("search"), dict):
        return data
    data = dict(data)
    search = dict(data["search"])
    for old, new in MOVED_KEYS.items():
        key = old.split(".", 1)[1]
        if key in search:
            section, name = new.split(".")
            moved = dict(data.get(section) or {})
            moved.setdefault(name, search.pop(key))
            data[section] = moved
    data["search"] = search
    return data


def _apply(cfg: Config, overrides) -> Config:
    """``a.b=value`` overrides merged into ``cfg`` (being built: not yet handed out), then validated."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r}: expected key=value, e.g. search.sims=400")
        key = MOVED_KEYS.get(key.strip(), key)  # search.speculate=2 still works: speculation.k=2
        node = cfg
        parts = key.strip().split(".")
        for i, part in enumerate(parts[:-1]):
            if not dataclasses.is_dataclass(node) or not hasattr(node, part):
                raise ConfigError(f"override {item!r}: unknown section {part!r}")
            node = getattr(node, part)
            if not dataclasses.is_dataclass(node):
                raise ConfigError(f"override {item!r}: {'.'.join(parts[:i + 1])} is a value, not a section")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise ConfigError(f"override {item!r}: not a value ({str(e).splitlines()[0]})") from None
        _merge(node, {parts[-1]: value}, ".".join(parts[:-1]))
    validate(cfg)
    return cfg


def shared_evaluator(cfg: Config, device: str, workers: int) -> bool:
    """Whether ``workers`` self-play processes share one evaluator process (``evaluator.shared``)."""
    choice = str(cfg.evaluator.shared).lower()
    if choice in ("on", "true"):
        return True
    if choice in ("off", "false") or cfg.game.mixed:
        return False
    return workers > 1 and str(device).startswith("cuda")


# Applied on a CPU when no --config is given: `specmcts selfplay --board 9` finishes in about a minute on
# two cores instead of hours (a 2x32 net and 64 simulations instead of 6x64 and 800).
CPU_FALLBACK = [
    "net.blocks=2", "net.channels=32", "net.value_hidden=32",
    "search.sims=64", "selfplay.games=8", "selfplay.concurrent=8",
    # what those 8 games give (about 800 samples) is enough for `specmcts train` to start on
    "train.min_samples=512",
]


def preset_for_board(board: int) -> str | None:
    """The preset named after the board (configs/go9.yaml, configs/go19.yaml), else None (defaults)."""
    name = f"go{board}"
    return name if preset_path(name).exists() else None


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu' (imports torch only for 'auto'); anything else,
    'cuda:N' included, as it is."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def dirichlet_alpha(cfg: MoveConfig, board: int) -> float:
    return cfg.dirichlet_alpha if cfg.dirichlet_alpha > 0 else 0.03 * 361 / (board * board)


def pass_from(cfg: MoveConfig, board: int) -> int:
    """The first move number at which a self-play root may pass while it has another move."""
    return cfg.pass_from if cfg.pass_from >= 0 else (board * board) // 2


def temperature_moves(cfg: MoveConfig, board: int) -> int:
    return cfg.temperature_moves if cfg.temperature_moves > 0 else (board * board) // 8
