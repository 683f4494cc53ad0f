"""The command line: every subcommand is listed and has --help; stubs fail cleanly (exit 2, one line)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from specmcts import __version__, cli
from specmcts.config import CONFIG_DIR, load_config

SUBCOMMANDS = ["selfplay", "train", "run", "eval", "gtp", "analysis", "bench", "model"]
COMMON_FLAGS = ["--board", "--games", "--sims", "--speculate", "--device", "--model", "--out", "--config",
                "--seed", "--set", "--json"]

# A minimal valid command line per subcommand (positional arguments where the parser needs them).
MINIMAL_ARGS = {"model": ["info"]}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "specmcts", *args], capture_output=True, text=True, timeout=120)


def test_registry_has_every_subcommand():
    assert list(cli.COMMANDS) == SUBCOMMANDS
    for name, command in cli.COMMANDS.items():
        assert command.run is getattr(cli, f"cmd_{name}")


def test_help_lists_all_subcommands_subprocess():
    proc = run_cli("--help")
    assert proc.returncode == 0, proc.stderr
    for name in SUBCOMMANDS:
        assert name in proc.stdout
    assert "Traceback" not in proc.stderr


def test_help_in_process(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in out


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_subcommand_help_subprocess(name):
    proc = run_cli(name, "--help")
    assert proc.returncode == 0, proc.stderr
    assert f"specmcts {name}" in proc.stdout
    if name != "bench":  # bench passes its arguments through to the tool
        assert "--config" in proc.stdout and "--set" in proc.stdout
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_subcommand_help_in_process(name, capsys):
    assert cli.main([name, "--help"]) == 0
    assert f"specmcts {name}" in capsys.readouterr().out


def test_selfplay_has_the_common_flags(capsys):
    assert cli.main(["selfplay", "--help"]) == 0
    out = capsys.readouterr().out
    for flag in COMMON_FLAGS:
        assert flag in out, flag


def test_selfplay_flags_parse():
    args = cli.build_parser().parse_args(
        ["selfplay", "--board", "9", "--games", "4", "--sims", "64", "--speculate", "2", "--device", "cpu",
         "--model", "m.pt", "--out", "o", "--config", "c.yaml", "--seed", "3", "--set", "search.sims=8",
         "--set", "selfplay.games=2", "--json"])
    assert (args.board, args.games, args.sims, args.speculate, args.device) == (9, 4, 64, 2, "cpu")
    assert (args.model, args.out, args.config, args.seed, args.json) == ("m.pt", "o", "c.yaml", 3, True)
    assert args.overrides == ["search.sims=8", "selfplay.games=2"]


def test_selfplay_defaults_leave_room_for_the_config():
    args = cli.build_parser().parse_args(["selfplay"])
    assert args.board is None and args.sims is None and args.speculate is None and args.overrides == []


@pytest.mark.parametrize("bad", [["--board", "3"], ["--board", "x"], ["--device", "tpu"], ["--set", "novalue"],
                                 ["--speculate", "-1"], ["--speculate", "17"], ["--no-such-flag"]])
def test_bad_flags_are_usage_errors(bad, capsys):
    assert cli.main(["selfplay", *bad]) == 2
    err = capsys.readouterr().err
    assert "usage:" in err and "Traceback" not in err


def test_version(capsys):
    assert cli.main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out
    proc = run_cli("--version")
    assert proc.returncode == 0 and __version__ in proc.stdout


def test_no_subcommand_prints_usage():
    proc = run_cli()
    assert proc.returncode == 2
    assert "usage:" in proc.stderr and "Traceback" not in proc.stderr


def test_command_error_is_one_line(monkeypatch, capsys):
    def failing(args):
        raise cli.CommandError("no checkpoint at x.pt", exit_code=1)

    monkeypatch.setitem(cli.COMMANDS, "model", cli.Command("h", "d", cli.add_model_arguments, failing))
    assert cli.main(["model", "info", "x.pt"]) == 1
    assert capsys.readouterr().err == "specmcts model: no checkpoint at x.pt\n"


def test_keyboard_interrupt_exits_130(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setitem(cli.COMMANDS, "gtp", cli.Command("h", "d", cli.add_gtp_arguments, interrupted))
    assert cli.main(["gtp"]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "interrupted" in err and "Traceback" not in err


def test_model_init_info_export(tmp_path, capsys):
    path = tmp_path / "m.pt"
    assert cli.main(["model", "init", str(path), "--board", "7", "--set", "net.blocks=1", "--set", "net.channels=8"]) == 0
    capsys.readouterr()
    assert cli.main(["model", "info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["board_size"] == 7 and info["net"]["blocks"] == 1 and info["step"] == 0
    assert cli.main(["model", "export", str(path), "--out", str(tmp_path / "e.pt")]) == 0
    assert (tmp_path / "e.pt").is_file()


def test_model_init_never_replaces_a_checkpoint_unasked(tmp_path, capsys):
    """`model init` on an existing file (one letter from `model info`) keeps it, with one line; --force
    replaces it; a directory is refused by name."""
    path = tmp_path / "trained.pt"
    small = ["--board", "5", "--set", "net.blocks=1", "--set", "net.channels=8"]
    assert cli.main(["model", "init", str(path), *small, "--seed", "1"]) == 0
    before = path.read_bytes()
    capsys.readouterr()
    assert cli.main(["model", "init", str(path), *small, "--seed", "2"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "exists" in err[0] and "--force" in err[0]
    assert path.read_bytes() == before
    assert cli.main(["model", "init", str(path), *small, "--seed", "2", "--force"]) == 0
    assert path.read_bytes() != before
    capsys.readouterr()
    assert cli.main(["model", "init", str(tmp_path), *small]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a directory" in err[0] and "Traceback" not in err[0]


def test_model_info_on_a_corrupt_file_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert cli.main(["model", "info", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bad) in err and "Traceback" not in err


def test_selfplay_workers_with_a_corrupt_model_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    out = tmp_path / "sp"
    assert cli.main(["selfplay", "--board", "9", "--workers", "2", "--model", str(bad), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bad) in err and "Traceback" not in err
    assert not out.exists()  # nothing started, nothing written


def test_bench_runs_a_tool(capsys, monkeypatch):
    import os

    import numba

    # A benchmark pins its process to one core and defaults NUMBA_NUM_THREADS to 1. Run in this process, it
    # must not leave either behind for the tests after it: numba rereads its thread count when it compiles
    # (from the affinity when the variable is unset), and the parallel-kernel tests need two threads.
    monkeypatch.setenv("NUMBA_NUM_THREADS", str(numba.config.NUMBA_NUM_THREADS))
    cores = os.sched_getaffinity(0)
    try:
        assert cli.main(["bench", "rules", "--seconds", "0.5", "--sizes", "5", "--repeats", "1", "--no-openspiel"]) == 0
    finally:
        os.sched_setaffinity(0, cores)
    assert "moves/s" in capsys.readouterr().out


def test_model_export_keeps_how_the_net_was_made(tmp_path, capsys):
    """`model export` (how a net is made ready to ship) keeps the config and the compute totals, and `model
    info` shows them."""
    import torch

    from specmcts.engine.network import build_net, save_model

    src = tmp_path / "trained.pt"
    save_model(src, build_net(5, None), {"step": 7, "config": {"name": "go9cpu", "search": {"root": "gumbel", "sims": 40}},
                                         "run": {"totals": {"cpu_hours": 1.5, "games": 1234, "sessions": 2}},
                                         "optimizer": {"state": {}, "param_groups": []}})
    out = tmp_path / "ship.pt"
    assert cli.main(["model", "export", str(src), "--out", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["provenance"]["cpu_hours"] == 1.5 and info["provenance"]["games"] == 1234
    assert info["provenance"]["config"] == "go9cpu" and info["provenance"]["search"]["root"] == "gumbel"
    assert "optimizer" not in torch.load(out, weights_only=True)
    assert cli.main(["model", "info", str(out)]) == 0
    line = capsys.readouterr().out
    assert "1.50 CPU-hours" in line and "1,234 self-play games" in line and "kata heads" in line


def test_model_shipped_is_the_embedded_net_or_a_one_line_error(tmp_path, monkeypatch, capsys):
    from specmcts.engine import network

    assert cli.main(["model", "info", "shipped"]) == 0
    assert "go9.pt" in capsys.readouterr().out
    monkeypatch.setattr(network, "WEIGHTS_DIR", tmp_path)  # a package without weights
    code = cli.main(["model", "info", "shipped"])
    err = capsys.readouterr().err
    assert code != 0 and "no net ships for 9x9" in err and err.count("\n") == 1


def test_cuda_n_is_a_device_everywhere(capsys):
    """`--device cuda:N` passes the CLI and the config's validation; what happens next is the evaluator's:
    without a GPU, one line that says so (with one, the run uses that GPU)."""
    import torch

    from specmcts.config import ConfigError, load_config

    assert load_config(None, ["evaluator.device=cuda:1"]).evaluator.device == "cuda:1"
    for bad in ("cuda:x", "gpu", "cuda:"):
        with pytest.raises(ConfigError, match="auto, cpu, cuda or cuda:N"):
            load_config(None, [f"evaluator.device={bad}"])
    if not torch.cuda.is_available():
        code = cli.main(["selfplay", "--board", "5", "--games", "1", "--sims", "4", "--device", "cuda:0", "--quiet"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 1 and len(err) == 1 and "no CUDA GPU is available" in err[0], err


def test_speculate_auto_is_a_value(tmp_path):
    """`auto` is written as itself on the command line, in YAML and in --set; -1 means nothing."""
    from specmcts.config import ConfigError, load_config

    assert cli.build_parser().parse_args(["selfplay", "--speculate", "auto"]).speculate == "auto"
    assert cli.build_parser().parse_args(["selfplay", "--speculate", "16"]).speculate == 16
    assert load_config(None, ["speculation.k=auto"]).speculation.k == "auto"
    path = tmp_path / "c.yaml"
    path.write_text("search:\n  speculate: Auto\n")
    assert load_config(path).speculation.k == "auto"
    for bad in ("-1", "17", "deep"):
        with pytest.raises(ConfigError, match="speculation.k"):
            load_config(None, [f"speculation.k={bad}"])


@pytest.mark.parametrize("override, key", [
    ("selfplay.games=0", "selfplay.games"), ("selfplay.max_moves=-1", "selfplay.max_moves"),
    ("moves.temperature=-0.5", "moves.temperature"), ("moves.dirichlet_fraction=1.5", "moves.dirichlet_fraction"),
    ("evaluator.torch_threads=-2", "evaluator.torch_threads"), ("search.c_puct=0", "search.c_puct"),
    ("game.komi=.nan", "game.komi"), ("net.blocks=-1", "net.blocks"), ("selfplay.concurrent=0", "selfplay.concurrent"),
])
def test_out_of_range_settings_are_refused_by_name(override, key, capsys):
    """One place validates every range (specmcts.config.validate); the error names the key, on one line."""
    from specmcts.config import ConfigError, load_config, resolve_device

    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, [override])
    assert cli.main(["selfplay", "--board", "5", "--set", override, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and key in err[0], err
    assert resolve_device("cuda:1") == "cuda:1"  # the GPU asked for, not GPU 0


def test_a_loaded_config_is_frozen_and_override_derives_a_new_one():
    """Nothing changes a config once it is loaded (a run records what it ran with); code derives a new one."""
    import dataclasses

    from specmcts.config import ConfigError, load_config

    cfg = load_config(None, ["search.sims=32"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.search.sims = 8
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.net = None
    other = cfg.override("search.sims=8", "game.board=13")
    assert (other.search.sims, other.game.board) == (8, 13) and (cfg.search.sims, cfg.game.board) == (32, 9)
    with pytest.raises(ConfigError, match="search.sims"):
        cfg.override("search.sims=0")  # validated like --set
    assert cfg.search.sims == 32


def test_model_grow_then_a_run_continues_the_bigger_net(tmp_path, capsys):
    """`model grow` writes a deeper, wider net with its source's compute record; `run --model` trains it at the
    new size and counts the source's sessions; refusals are one line and keep every file."""
    tiny = ["--board", "5", "--device", "cpu", "--set", "net.blocks=1", "--set", "net.channels=8",
            "--set", "net.value_hidden=8", "--set", "search.sims=8", "--set", "evaluator.torch_threads=1",
            "--set", "run.mode=generations", "--set", "run.games_per_generation=2", "--set", "run.generations=1",
            "--set", "train.min_samples=8", "--set", "train.batch_size=8", "--quiet"]
    assert cli.main(["run", *tiny, "--out", str(tmp_path / "small")]) == 0
    small = sorted((tmp_path / "small").rglob("model_*.pt"))[-1]
    big = tmp_path / "big.pt"
    capsys.readouterr()
    assert cli.main(["model", "grow", str(small), "--blocks", "2", "--channels", "12", "--out", str(big), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["net"]["blocks"], info["net"]["channels"]) == (2, 12)
    assert info["provenance"]["sessions"] == 1 and info["provenance"]["games"] >= 2

    before = big.read_bytes()
    for args, says in ((["--blocks", "3"], "--out"), (["--out", str(big), "--blocks", "3"], "exists"),
                       (["--out", str(tmp_path / "x.pt"), "--channels", "4"], "does not shrink"),
                       (["--out", str(tmp_path / "x.pt")], "--blocks")):
        assert cli.main(["model", "grow", str(small), *args]) in (1, 2)
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0], err
    assert big.read_bytes() == before and not (tmp_path / "x.pt").exists()

    assert cli.main(["run", *tiny, "--model", str(big), "--out", str(tmp_path / "more"), "--json"]) == 0
    capsys.readouterr()
    latest = sorted((tmp_path / "more").rglob("model_*.pt"))[-1]
    assert cli.main(["model", "info", str(latest), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["net"]["blocks"], info["net"]["channels"]) == (2, 12) and info["provenance"]["sessions"] == 2


@pytest.mark.parametrize("preset", sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
def test_every_preset_loads_and_names_itself(preset):
    """Every shipped preset is valid and records its own name (what `model info` shows of a run's config)."""
    assert load_config(preset).name == preset


def test_a_config_whose_net_differs_from_the_model_says_which_net_is_used(tmp_path, capsys):
    """`run --config go9cpu-big.yaml --model small.pt` trains the checkpoint's net; one stderr line says so and
    how to grow it to the config's size."""
    small = tmp_path / "small.pt"
    assert cli.main(["model", "init", str(small), "--board", "5", "--set", "net.blocks=1",
                     "--set", "net.channels=8"]) == 0
    capsys.readouterr()
    parser = cli.build_parser()
    args = parser.parse_args(["selfplay", "--config", "tiny", "--set", "net.blocks=2", "--set", "net.channels=16",
                              "--model", str(small)])
    cfg = cli.config_from_args(args)
    assert (cfg.net.blocks, cfg.net.channels) == (1, 8)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "1x8" in err[0] and "2x16" in err[0] and "model grow" in err[0]
    args = parser.parse_args(["selfplay", "--config", "tiny", "--set", "net.blocks=1", "--set", "net.channels=8",
                              "--model", str(small)])
    cli.config_from_args(args)
    assert capsys.readouterr().err == ""  # the same net: nothing to say


def test_keys_that_left_search_still_load(tmp_path):
    """The move rule and speculation have sections of their own (``moves``, ``speculation``); a config written
    before the split (``search.fast_sims``, ``search.speculate``) and ``--set`` with the old keys load into them."""
    from specmcts.config import MOVED_KEYS, load_config

    old = tmp_path / "old.yaml"
    old.write_text("search: {sims: 20, fast_sims: 5, temperature_moves: 7, speculate: 3, spec_width: 2}\n")
    cfg = load_config(old)
    assert (cfg.search.sims, cfg.moves.fast_sims, cfg.moves.temperature_moves) == (20, 5, 7)
    assert (cfg.speculation.k, cfg.speculation.width) == (3, 2)
    assert load_config(None, ["search.speculate=auto", "search.no_resign_fraction=0.5"]).speculation.k == "auto"
    assert load_config(None, ["speculation.k=2"]).speculation.k == 2
    assert set(MOVED_KEYS.values()) <= {f"{s}.{f}" for s in ("moves", "speculation")
                                        for f in load_config().to_dict()[s]}
    assert not hasattr(load_config().search, "speculate")  # one place for each setting


def test_benchmarks_read_a_commands_json_summary_in_one_place():
    """specmcts.bench.run.json_summary: the last stdout line of a command as JSON, or its failure in one line."""
    from specmcts.bench.run import json_summary

    ok = [sys.executable, "-c", "print('progress'); print('{\"games\": 2}')"]
    assert json_summary(ok, "two games") == {"games": 2}
    bad = [sys.executable, "-c", "import sys; sys.stderr.write('first\\nno net for 4x4\\n'); sys.exit(3)"]
    with pytest.raises(SystemExit, match=r"^selfplay failed \(3\): no net for 4x4$"):
        json_summary(bad, "selfplay")
