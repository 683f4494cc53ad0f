"""The limits of a configuration and the check of one (``validate``): every section's ranges and choices, checked
when a config is loaded, so that a bad value is a one-line ``ConfigError`` naming its key before anything runs.
``specmcts.config`` holds the sections and loads them; this module reads them and knows no config types."""
from __future__ import annotations

import math
import re


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names the file or key."""


AUTO = "auto"  # the value of settings chosen by measurement at start (speculation.k)
MAX_SPECULATE = 16  # deepest speculation (speculation.k)
MAX_SPEC_WIDTH = 8  # most candidate moves one level speculates on
MAX_SPEC_STAGES = 64  # finest cut of a search into stages
OPTIMIZERS = ("sgd", "adamw")  # train.optimizer
SCHEDULES = ("constant", "cosine", "step")  # train.lr_schedule
RUN_MODES = ("async", "generations")  # run.mode
EVAL_DTYPES = ("bfloat16", "bf16", "float16", "fp16", "half", "float32", "fp32", "float")  # evaluator.dtype
CPU_DTYPES = ("auto", "float32", "fp32", "float", "bfloat16", "bf16")  # evaluator.cpu_dtype
MAX_SEED = 2**32 - 1
# Upper bounds of the sizes that allocate in proportion to them, far above any real use: a typo (an extra 0
# or five) fails here with the key's name instead of as an out-of-memory error minutes later. What a
# search's trees take is also checked against the free memory before they are allocated (native.tree).
MAX_SIMS = 10_000_000
MAX_ROWS = 65_536  # search.leaves_per_tree, evaluator.max_batch, train.batch_size, selfplay.concurrent


def validate(cfg) -> None:
    from native.layout import MAX_SIZE, MIN_SIZE

    if not MIN_SIZE <= cfg.game.board <= MAX_SIZE:
        raise ConfigError(f"game.board must be {MIN_SIZE}..{MAX_SIZE}, got {cfg.game.board}")
    _validate_sizes(cfg, MIN_SIZE, MAX_SIZE)
    if cfg.search.sims < 1:
        raise ConfigError("search.sims must be >= 1")
    if cfg.speculation.k != AUTO and not 0 <= cfg.speculation.k <= MAX_SPECULATE:
        raise ConfigError(f"speculation.k must be 0..{MAX_SPECULATE} or auto, got {cfg.speculation.k}")
    if not 1 <= cfg.speculation.width <= MAX_SPEC_WIDTH:
        raise ConfigError(f"speculation.width must be 1..{MAX_SPEC_WIDTH}, got {cfg.speculation.width}")
    if cfg.speculation.stages != 0 and not 2 <= cfg.speculation.stages <= MAX_SPEC_STAGES:
        raise ConfigError(f"speculation.stages must be 0 (k + 1) or 2..{MAX_SPEC_STAGES}, got {cfg.speculation.stages}")
    if cfg.speculation.rows < 0:
        raise ConfigError(f"speculation.rows must be >= 0 (0: a chain's rows), got {cfg.speculation.rows}")
    if cfg.search.root not in ("puct", "gumbel"):
        raise ConfigError(f"search.root must be puct or gumbel, got {cfg.search.root!r}")
    if cfg.search.score_utility < 0 or cfg.search.score_utility_scale < 0:
        raise ConfigError("search.score_utility and search.score_utility_scale must be >= 0")
    if cfg.search.gumbel_considered < 1:
        raise ConfigError("search.gumbel_considered must be >= 1")
    if not 0 <= cfg.moves.fast_sims <= cfg.search.sims:
        raise ConfigError(f"moves.fast_sims must be 0..search.sims ({cfg.search.sims}), got {cfg.moves.fast_sims}")
    if not 0.0 <= cfg.moves.full_search_fraction <= 1.0:
        raise ConfigError("moves.full_search_fraction must be in [0, 1]")
    if cfg.search.leaves_per_tree < 1:
        raise ConfigError("search.leaves_per_tree must be >= 1")
    if cfg.net.heads not in ("kata", "fc"):
        raise ConfigError(f"net.heads must be kata or fc, got {cfg.net.heads!r}")
    if min(cfg.net.head_channels, cfg.net.gpool_every, cfg.net.gpool_channels) < 0:
        raise ConfigError("net.head_channels, net.gpool_every and net.gpool_channels must be >= 0")
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", str(cfg.evaluator.device)):
        raise ConfigError(f"evaluator.device must be auto, cpu, cuda or cuda:N, got {cfg.evaluator.device!r}")
    if str(cfg.evaluator.shared).lower() not in ("auto", "on", "off", "true", "false"):
        raise ConfigError(f"evaluator.shared must be auto, on or off, got {cfg.evaluator.shared!r}")
    if cfg.evaluator.server_batch < 0:
        raise ConfigError("evaluator.server_batch must be >= 0 (0: workers * max_batch, at most 2048)")
    # ranges of the values that used to be accepted and then misbehaved (NaN, 0, negative)
    ranges = [
        ("game.komi", cfg.game.komi, "a finite number", math.isfinite),
        ("search.c_puct", cfg.search.c_puct, "> 0", lambda v: v > 0),
        ("moves.temperature", cfg.moves.temperature, ">= 0", lambda v: v >= 0),
        ("moves.dirichlet_fraction", cfg.moves.dirichlet_fraction, "in [0, 1]", lambda v: 0 <= v <= 1),
        ("moves.dirichlet_alpha", cfg.moves.dirichlet_alpha, ">= 0 (0: scaled to the board)", lambda v: v >= 0),
        ("search.virtual_loss", cfg.search.virtual_loss, ">= 0", lambda v: v >= 0),
        ("search.fpu_reduction", cfg.search.fpu_reduction, ">= 0", lambda v: v >= 0),
        ("search.threads", cfg.search.threads, ">= 0 (0: this process's share of the cores)", lambda v: v >= 0),
        ("moves.resign_consecutive", cfg.moves.resign_consecutive, ">= 0 (0: never resign)", lambda v: v >= 0),
        ("moves.no_resign_fraction", cfg.moves.no_resign_fraction, "in [0, 1]", lambda v: 0 <= v <= 1),
        ("eval.gnugo_level", cfg.eval.gnugo_level, "0..10 (GnuGo's levels)", lambda v: 0 <= v <= 10),
        ("eval.gtp_timeout", cfg.eval.gtp_timeout, "> 0 seconds", lambda v: v > 0),
        ("selfplay.games", cfg.selfplay.games, ">= 1", lambda v: v >= 1),
        ("selfplay.max_moves", cfg.selfplay.max_moves, ">= 0 (0: the rules' limit)", lambda v: v >= 0),
        ("selfplay.shard_games", cfg.selfplay.shard_games, ">= 1", lambda v: v >= 1),
        ("evaluator.cache_entries", cfg.evaluator.cache_entries, ">= 0 (0: no cache)", lambda v: v >= 0),
        ("evaluator.torch_threads", cfg.evaluator.torch_threads, ">= 0 (0: decided per process)", lambda v: v >= 0),
        ("net.blocks", cfg.net.blocks, ">= 0", lambda v: v >= 0),
        ("net.channels", cfg.net.channels, ">= 1", lambda v: v >= 1),
        ("net.value_hidden", cfg.net.value_hidden, ">= 1", lambda v: v >= 1),
        ("seed", cfg.seed, f"0..{MAX_SEED}", lambda v: 0 <= v <= MAX_SEED),
        ("search.sims", cfg.search.sims, f"1..{MAX_SIMS:,}", lambda v: 1 <= v <= MAX_SIMS),
        ("search.leaves_per_tree", cfg.search.leaves_per_tree, f"1..{MAX_ROWS}", lambda v: 1 <= v <= MAX_ROWS),
        ("evaluator.max_batch", cfg.evaluator.max_batch, f"1..{MAX_ROWS}", lambda v: 1 <= v <= MAX_ROWS),
        ("selfplay.concurrent", cfg.selfplay.concurrent, f"1..{MAX_ROWS}", lambda v: 1 <= v <= MAX_ROWS),
        ("eval.sims", cfg.eval.sims, f"0..{MAX_SIMS:,} (0: search.sims)", lambda v: 0 <= v <= MAX_SIMS),
        ("eval.games", cfg.eval.games, ">= 1", lambda v: v >= 1),
        ("eval.opening_plies", cfg.eval.opening_plies, "0..20", lambda v: 0 <= v <= 20),
        ("eval.concurrent", cfg.eval.concurrent, f"1..{MAX_ROWS}", lambda v: 1 <= v <= MAX_ROWS),
        ("train.batch_size", cfg.train.batch_size, f"1..{MAX_ROWS}", lambda v: 1 <= v <= MAX_ROWS),
        ("train.lr", cfg.train.lr, "> 0", lambda v: v > 0),
        ("train.checkpoint_every", cfg.train.checkpoint_every, ">= 1", lambda v: v >= 1),
        ("train.log_every", cfg.train.log_every, ">= 1", lambda v: v >= 1),
        ("train.window_samples", cfg.train.window_samples, ">= 1", lambda v: v >= 1),
        ("train.min_samples", cfg.train.min_samples, ">= 1", lambda v: v >= 1),
        ("run.minutes", cfg.run.minutes, ">= 0 minutes (0: no limit)", lambda v: v >= 0),
        ("run.cpu_minutes", cfg.run.cpu_minutes, ">= 0 minutes (0: no limit)", lambda v: v >= 0),
        ("run.train_samples_per_sample", cfg.run.train_samples_per_sample, "> 0", lambda v: v > 0),
        ("run.games_per_generation", cfg.run.games_per_generation, ">= 1", lambda v: v >= 1),
        ("run.workers", cfg.run.workers, ">= 1", lambda v: v >= 1),
    ]
    for key, value, what, ok in ranges:
        if not (math.isfinite(value) and ok(value)):
            raise ConfigError(f"{key} must be {what}, got {value}")
    for key, value, choices in (("train.optimizer", cfg.train.optimizer, OPTIMIZERS),
                                ("train.lr_schedule", cfg.train.lr_schedule, SCHEDULES),
                                ("train.amp_dtype", cfg.train.amp_dtype, ("bfloat16", "float16")),
                                ("run.mode", cfg.run.mode, RUN_MODES),
                                ("evaluator.dtype", cfg.evaluator.dtype, EVAL_DTYPES),
                                ("evaluator.cpu_dtype", cfg.evaluator.cpu_dtype, CPU_DTYPES)):
        if value not in choices:
            raise ConfigError(f"{key} must be one of {', '.join(choices)}, got {value!r}")


def _validate_sizes(cfg, lo: int, hi: int) -> None:
    g = cfg.game
    if not g.boards:
        if g.shares:
            raise ConfigError("game.shares needs game.boards (the sizes they are shares of)")
        if any(b != g.board for b in cfg.run.eval_boards):
            raise ConfigError(f"run.eval_boards: a run of game.board {g.board} evaluates only that size "
                              f"(game.boards lists the sizes of a mixed-size run)")
        return
    bad = [b for b in g.boards if not lo <= b <= hi]
    if bad:
        raise ConfigError(f"game.boards must be sizes {lo}..{hi}, got {bad[0]}")
    if len(set(g.boards)) != len(g.boards):
        raise ConfigError(f"game.boards names a size twice: {list(g.boards)}")
    if g.board not in g.boards:
        raise ConfigError(f"game.board ({g.board}) must be one of game.boards {list(g.boards)}: the size the run's "
                          f"checkpoints are recorded for")
    stray = [b for b in cfg.run.eval_boards if b not in g.sizes()]
    if stray:
        raise ConfigError(f"run.eval_boards names {stray[0]}x{stray[0]}, which the run does not play "
                          f"(game.boards {list(g.sizes())})")
    if g.shares and len(g.shares) != len(g.boards):
        raise ConfigError(f"game.shares has {len(g.shares)} values for {len(g.boards)} game.boards")
    if g.shares and not all(math.isfinite(s) and s > 0 for s in g.shares):
        raise ConfigError(f"game.shares must all be > 0, got {list(g.shares)}")
    if len(g.boards) > 1 and cfg.net.heads != "kata":
        raise ConfigError("game.boards with several sizes needs net.heads=kata (fc heads fit one board size)")
    if len(g.boards) > 1 and str(cfg.evaluator.shared).lower() in ("on", "true"):
        raise ConfigError("evaluator.shared serves one board size; a mixed-size run (game.boards) gives each "
                          "self-play worker its own evaluator: set evaluator.shared=off")
