"""Nothing lost, nothing hangs, nothing overwritten: bad input, interrupts and kills, as a careful user tries them.

Each case of the reliability issue has a test here (or names the test that has it): the run-directory lock for
``train``, Ctrl-C of ``train`` and ``selfplay`` keeping every finished step and game, engines that never
answer, checkpoints with NaN weights or broken records, a refused run that leaves the record of the last one,
bad ``--set`` values, over-long GTP lines, self-play curves of async runs in TensorBoard, the progress bar,
``kill -9`` of ``selfplay`` at seeded random moments, a fuzz of ``--set`` values and strict JSON summaries.
(``kill -9`` of ``train`` and ``run``: tests/test_train.py and tests/test_resume_kill.py.)
"""
from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from specmcts import cli
from specmcts.sgf import read_sgf
from specmcts.stopping import RunLock

from tests.helpers import wait_for, write_shard

SIZE = 5
TINY = ["--board", "5", "--device", "cpu", "--set", "net.blocks=1", "--set", "net.channels=8",
        "--set", "net.value_hidden=8", "--set", "search.sims=8", "--set", "evaluator.torch_threads=1"]
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def strict_json(text: str):
    """json.loads that refuses NaN and Infinity (which Python writes and other parsers reject)."""
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def specmcts(*args: str, sigint=None) -> subprocess.Popen:
    """The CLI in a child process. ``sigint``: the SIGINT disposition it starts with (signal.SIG_DFL, or
    signal.SIG_IGN as a non-interactive shell starts a background job, ``cmd &``); None: this process's."""
    preexec = None if sigint is None else (lambda: signal.signal(signal.SIGINT, sigint))
    return subprocess.Popen([sys.executable, "-m", "specmcts", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV, preexec_fn=preexec)


@pytest.fixture
def shards(tmp_path) -> Path:
    d = tmp_path / "shards"
    for i in range(2):
        rng = np.random.default_rng(i)
        feats = rng.integers(0, 2, (64, 18, SIZE, SIZE)).astype(np.uint8)
        value = np.where(feats[:, 0, 2, 2] == 1, 1.0, -1.0).astype(np.float32)
        policy = np.zeros((64, SIZE * SIZE + 1), np.float32)
        policy[np.arange(64), rng.integers(0, SIZE * SIZE, 64)] = 1.0
        write_shard(d / f"s{i}.npz", 64, features=feats, value=value, policy=policy)
    return d


def train_args(out: Path, data: Path, *extra: str) -> list[str]:
    return ["train", *TINY, "--out", str(out), "--data", str(data), "--batch-size", "16",
            "--set", "train.min_samples=16", "--set", "train.checkpoint_every=1000", "--quiet", *extra]


# -- 2. one lock for every writer of checkpoints ------------------------------------------------------------------


def test_train_refuses_a_directory_another_run_holds(tmp_path, shards, capsys):
    out = tmp_path / "run"
    with RunLock(out, "run"):  # what `specmcts run` holds while it runs
        assert cli.main(train_args(out, shards, "--steps", "2")) == 1
    err = capsys.readouterr().err
    assert "in use by another specmcts run or train" in err and len(err.strip().splitlines()) == 1
    assert not (out / "models").exists() or not list((out / "models").glob("*.pt"))  # nothing written
    assert cli.main(train_args(out, shards, "--steps", "2")) == 0  # free again: it trains


# -- 3. Ctrl-C of train keeps every step ---------------------------------------------------------------------------


def test_sigint_of_train_checkpoints_the_step_it_reached(tmp_path, shards):
    from specmcts.engine.network import read_checkpoint

    out = tmp_path / "run"
    proc = specmcts(*train_args(out, shards, "--steps", "100000", "--json"))
    tb = out / "tb"
    # step 0 is checkpointed at once; then wait for training to be under way (TensorBoard points)
    wait_for(proc, lambda: (out / "models" / "model_00000000.pt").is_file() and any(
        p.stat().st_size > 2000 for p in tb.glob("events.out.tfevents.*")), "training")
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    summary = strict_json(stdout)
    assert summary["stop_reason"] == "interrupted" and summary["step"] > 0, summary
    newest = max(read_checkpoint(p)["step"] for p in (out / "models").glob("model_*.pt"))
    assert newest == summary["step"]  # no step lost (checkpoint_every is 1000: only the interrupt saved it)
    assert "stopping after this step" in stderr


# -- 4. Ctrl-C of selfplay keeps every finished game in a shard --------------------------------------------------


def test_sigint_of_selfplay_writes_the_finished_games_shard(tmp_path):
    from specmcts.training.replay import read_shard

    out = tmp_path / "sp"
    proc = specmcts("selfplay", *TINY, "--games", "20000", "--set", "selfplay.concurrent=2",
                    "--set", "selfplay.shard_games=100000", "--out", str(out), "--quiet", "--json")
    wait_for(proc, lambda: len(list((out / "sgf").glob("*.sgf"))) >= 3, "three finished games")
    assert proc.poll() is None, "selfplay finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    summary = strict_json(stdout)
    assert summary["stop_reason"] == "interrupted"
    sgfs = sorted((out / "sgf").glob("*.sgf"))
    moves = sum(len(read_sgf(p).moves) for p in sgfs)
    samples = sum(len(read_shard(p, SIZE)) for p in (out / "data").glob("*.npz"))
    assert summary["games"] == len(sgfs) >= 3 and samples == moves == summary["moves"]


@pytest.mark.parametrize("shared", ["on", "off"])
def test_sigint_of_selfplay_workers_keeps_every_finished_game(tmp_path, shared):
    """selfplay --workers 2 (one shared evaluator process, or a net each): Ctrl-C stops each worker at its
    next batch; every game finished by then is in an SGF and in a shard, and the summary counts them."""
    from specmcts.training.replay import read_shard

    out = tmp_path / "sp"
    proc = specmcts("selfplay", *TINY, "--games", "20000", "--workers", "2", "--set", "selfplay.concurrent=2",
                    "--set", "selfplay.shard_games=10000", "--set", f"evaluator.shared={shared}", "--out", str(out),
                    "--quiet", "--json")
    wait_for(proc, lambda: len(list((out / "sgf").glob("*.sgf"))) >= 3, "three finished games")
    assert proc.poll() is None, "selfplay finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    summary = strict_json(stdout)
    assert summary["stop_reason"] == "interrupted" and summary["workers"] == 2
    assert summary["shared_evaluator"] == (shared == "on")
    sgfs = sorted((out / "sgf").glob("*.sgf"))
    moves = sum(len(read_sgf(p).moves) for p in sgfs)
    samples = sum(len(read_shard(p, SIZE)) for p in (out / "data").glob("*.npz"))
    assert summary["games"] == len(sgfs) >= 3 and samples == moves == summary["moves"]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tb"))
    events.Reload()
    assert {"selfplay/sims_per_s", "selfplay/games_per_hour"} <= set(events.Tags()["scalars"])  # over all workers


@pytest.mark.parametrize("signum, sigint", [(signal.SIGINT, signal.SIG_DFL), (signal.SIGINT, signal.SIG_IGN),
                                           (signal.SIGTERM, signal.SIG_DFL)], ids=["sigint", "sigint-ignored", "sigterm"])
def test_interrupted_eval_keeps_and_reports_the_finished_games(tmp_path, tiny_model, signum, sigint):
    """Ctrl-C (or SIGTERM) of `specmcts eval` stops it at the next move: every finished game has its SGF and is
    in the summary, exit 130. Also when the command started with SIGINT ignored, as `specmcts eval ... &` in a
    script starts it: Python then raises no KeyboardInterrupt, and eval used to play on (a suite started in
    the background hung here)."""
    out = tmp_path / "ev"
    # 20,000 games (400 take 15 s): still playing when the signal comes, so a lost signal shows as a hang
    proc = specmcts("eval", *TINY, "--model", str(tiny_model), "--opponent", "random", "--games", "20000",
                    "--set", "eval.concurrent=2", "--out", str(out), "--quiet", "--json", sigint=sigint)
    wait_for(proc, lambda: len(list(out.rglob("*.sgf"))) >= 2, "two finished games")
    assert proc.poll() is None, "eval finished before it could be interrupted"
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "eval: stopping" in stderr
    summary = strict_json(stdout)
    games = sorted(out.rglob("*.sgf"))
    assert summary["stop_reason"] == "interrupted" and summary["games"] == len(games) >= 2
    assert summary["wins"] + summary["losses"] + summary["draws"] == len(games)
    assert all(read_sgf(p).result for p in games)  # every finished game whole, with its result


@pytest.mark.parametrize("command", ["eval-gnugo", "selfplay-workers"])
def test_ctrl_c_at_a_terminal_keeps_the_finished_games(tmp_path, tiny_model, command):
    """A terminal's Ctrl-C goes to the whole foreground process group: the command, its GnuGo opponent, its
    self-play workers. The command still stops at the next move with every finished game kept and counted,
    exit 130: a child that dies of the same SIGINT must not turn the stop into an engine or worker error."""
    if command == "eval-gnugo":
        from specmcts.play.gtp_client import find_gnugo

        assert find_gnugo() is not None, "GnuGo is needed (apt-get install -y gnugo; CI installs it)"
        out = tmp_path / "ev"
        args = ["eval", *TINY, "--model", str(tiny_model), "--opponent", "gnugo", "--games", "20000",
                "--out", str(out), "--quiet", "--json"]
    else:
        out = tmp_path / "sp"
        args = ["selfplay", *TINY, "--games", "20000", "--workers", "2", "--set", "selfplay.concurrent=2",
                "--set", "selfplay.shard_games=10000", "--out", str(out), "--quiet", "--json"]
    proc = subprocess.Popen([sys.executable, "-m", "specmcts", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV, start_new_session=True)  # its own group
    try:
        wait_for(proc, lambda: len(list(out.rglob("*.sgf"))) >= 2, "two finished games")
        assert proc.poll() is None, f"{command} finished before it could be interrupted"
        os.killpg(proc.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr
    summary = strict_json(stdout)
    assert summary["stop_reason"] == "interrupted", summary
    assert summary["games"] == len(list(out.rglob("*.sgf"))) >= 2, summary
    assert "error" not in stderr.lower(), stderr


def test_selfplay_started_with_sigint_ignored_still_stops_on_it(tmp_path):
    """GracefulStop installs its handler over an ignored SIGINT (a background job of a script)."""
    out = tmp_path / "sp"
    proc = specmcts("selfplay", *TINY, "--games", "20000", "--set", "selfplay.concurrent=2", "--out", str(out),
                    "--quiet", "--json", sigint=signal.SIG_IGN)
    wait_for(proc, lambda: len(list((out / "sgf").glob("*.sgf"))) >= 2, "two finished games")
    assert proc.poll() is None, "selfplay finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert strict_json(stdout)["games"] == len(list((out / "sgf").glob("*.sgf"))) >= 2


# -- 5. engines that never answer; GnuGo levels ---------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "m5.pt"
    assert cli.main(["model", "init", str(path), *TINY]) == 0
    return path


@pytest.mark.parametrize("engine", ["gtp:cat", "gtp:sleep 1000"])
def test_eval_against_an_engine_that_never_answers_stops_with_its_name(tmp_path, tiny_model, engine, capsys):
    code = cli.main(["eval", *TINY, "--model", str(tiny_model), "--opponent", engine, "--games", "2",
                     "--set", "eval.gtp_timeout=2", "--out", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1, err
    assert "did not answer" in err and engine[4:].split()[0] in err  # it returned: no hang


def test_gnugo_level_out_of_range_is_a_usage_error(tmp_path, tiny_model, capsys):
    assert cli.main(["eval", *TINY, "--model", str(tiny_model), "--gnugo-level", "99", "--out", str(tmp_path)]) == 2
    assert "eval.gnugo_level must be 0..10" in capsys.readouterr().err


# -- 6 and 8. checkpoints with NaN weights or broken records -----------------------------------------------------


def broken_checkpoint(src: Path, dst: Path, how: str) -> Path:
    data = torch.load(src, weights_only=True)
    if how == "nan":
        model = dict(data["model"])
        name = next(k for k, v in model.items() if v.is_floating_point())
        model[name] = model[name].clone()
        model[name].view(-1)[0] = float("nan")
        data["model"] = model
    elif how == "board":
        data["board_size"] = "nine"
    elif how == "blocks":
        data["net"] = dict(data["net"], blocks=-2)
    torch.save(data, dst)
    return dst


@pytest.mark.parametrize("how, says", [("nan", "non-finite weights"), ("board", "is not a board size"),
                                       ("blocks", "net.blocks must be >= 0")])
def test_a_broken_checkpoint_is_refused_in_one_line_everywhere(tmp_path, tiny_model, how, says, capsys):
    bad = broken_checkpoint(tiny_model, tmp_path / f"{how}.pt", how)
    for args in (["model", "info", str(bad)],
                 ["selfplay", *TINY, "--model", str(bad), "--games", "1", "--out", str(tmp_path / "sp"), "--quiet"],
                 ["eval", *TINY, "--model", str(bad), "--opponent", "random", "--games", "2", "--out",
                  str(tmp_path / "ev"), "--quiet"]):
        assert cli.main(args) == 1, args
        err = capsys.readouterr().err.strip()
        # one error line (after the CPU-defaults notice of selfplay), never a traceback
        assert says in err.splitlines()[-1] and "Traceback" not in err and len(err.splitlines()) <= 2, (args, err)
    assert not list((tmp_path / "sp").rglob("*.npz"))  # no pass-pass games in training shards
    gtp = subprocess.run([sys.executable, "-m", "specmcts", "gtp", "--model", str(bad)], input="genmove b\nquit\n",
                         capture_output=True, text=True, env=ENV, timeout=120)
    assert gtp.returncode != 0 and says in gtp.stderr and "Traceback" not in gtp.stderr


# -- 7. a refused run leaves the record of the last one ----------------------------------------------------------


def test_a_refused_run_does_not_touch_the_recorded_config(tmp_path, capsys):
    out = tmp_path / "run"
    base = ["run", *TINY, "--out", str(out), "--quiet", "--set", "run.mode=generations", "--set",
            "run.games_per_generation=2", "--set", "run.generations=1", "--set", "train.min_samples=8",
            "--set", "train.batch_size=8"]
    assert cli.main(base) == 0
    recorded = (out / "config.yaml").read_bytes()
    assert cli.main(base + ["--set", "search.sims=16"]) == 1  # not --resume: refused
    assert "pass --resume" in capsys.readouterr().err
    assert (out / "config.yaml").read_bytes() == recorded


# -- 8 and 9. bad values on the command line ---------------------------------------------------------------------


@pytest.mark.parametrize("override, says", [("search.sims=[", "not a value"), ("selfplay.games=0", "selfplay.games"),
                                            ("search.c_puct=0", "search.c_puct"),
                                            ("moves.resign_consecutive=-1", "moves.resign_consecutive"),
                                            ("evaluator.torch_threads=-1", "evaluator.torch_threads"),
                                            ("game.komi=.nan", "game.komi")])
def test_bad_set_values_are_one_line_usage_errors(override, says, capsys):
    assert cli.main(["selfplay", *TINY, "--set", override, "--games", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1


@settings(max_examples=60)
@given(key=st.sampled_from(["search.sims", "search.c_puct", "speculation.k", "moves.temperature", "game.board",
                            "game.komi", "selfplay.games", "selfplay.max_moves", "evaluator.max_batch",
                            "moves.dirichlet_fraction", "speculation.width", "net.blocks", "eval.gnugo_level",
                            "search.root", "search.nonexistent", "nothing"]),
       value=st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
                       st.text(max_size=12), st.sampled_from(["[", "{a: 1", "auto", "true", "1e999", "", "- x"])))
def test_no_set_value_yields_a_traceback(key, value):
    """Whatever follows --set: a config, or a ConfigError naming the problem, never another exception."""
    from specmcts.config import ConfigError, load_config

    try:
        load_config(None, [f"{key}={value}"])
    except ConfigError as e:
        assert str(e) and "\n" not in str(e).strip()


@settings(max_examples=40)
@given(data=st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-10**9, 10**9), st.floats(), st.text(max_size=8)),
                         lambda children: st.one_of(st.lists(children, max_size=3),
                                                    st.dictionaries(st.sampled_from(
                                                        ["search", "sims", "game", "board", "net", "run", "eval",
                                                         "blocks", "komi", "mode", "x"]), children, max_size=3)),
                         max_leaves=8))
def test_no_yaml_config_yields_a_traceback(data, tmp_path_factory):
    """Whatever a YAML config file holds: a config, or a ConfigError naming the problem."""
    import yaml

    from specmcts.config import ConfigError, load_config

    path = tmp_path_factory.mktemp("cfg") / "fuzz.yaml"
    path.write_text(yaml.safe_dump(data))
    try:
        load_config(path)
    except ConfigError as e:
        assert str(e) and "\n" not in str(e).strip()


# -- 10. GTP input ------------------------------------------------------------------------------------------------


def test_gtp_refuses_an_overlong_line_and_echoes_little():
    long_vertex = "A" * 100_000
    text = f"1 play b {long_vertex}\n2 play b {'B' * 500}\n3 name\nquit\n"
    done = subprocess.run([sys.executable, "-m", "specmcts", "gtp", "--board", "5", "--model", "fresh"], input=text,
                          capture_output=True, text=True, env=ENV, timeout=120)
    answers = [a for a in done.stdout.split("\n\n") if a.strip()]
    assert answers[0].startswith("?1 command too long")
    assert answers[1].startswith("?2 syntax error") and len(answers[1]) <= 210
    assert answers[2] == "=3 specmcts"


# -- 11. TensorBoard keeps the self-play curves of async runs ----------------------------------------------------


def test_async_run_logs_selfplay_points_as_chunks_arrive(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    code = cli.main(["run", *TINY, "--out", str(out), "--quiet", "--set", "run.mode=async", "--set", "run.workers=1",
                     "--set", "run.chunk_games=2", "--set", "train.min_samples=16", "--set", "train.batch_size=8",
                     "--set", "run.max_steps=12", "--set", "run.train_samples_per_sample=0.5"])
    assert code == 0
    events = EventAccumulator(str(out / "tb"))
    events.Reload()
    tags = events.Tags()["scalars"]
    selfplay = [t for t in tags if t.startswith("selfplay/")]
    assert "selfplay/games_total" in selfplay and any(t.startswith("cache/") for t in tags)
    assert len(events.Scalars("selfplay/games_total")) >= 2  # logged as chunks came in, not once at the end


# -- 12. the progress bar shows the moves being played -----------------------------------------------------------


def test_selfplay_progress_counts_the_moves_of_games_in_progress(monkeypatch):
    import tqdm

    from specmcts.config import load_config
    from specmcts.engine.evaluator import HashEvaluator
    from specmcts.engine.nncache import NNCache
    from specmcts.training.selfplay import SelfPlay

    seen: list[tuple[int, int]] = []  # (games finished, moves shown)

    class Bar:
        def __init__(self, *args, **kwargs):
            self.n = 0

        def update(self, n):
            self.n += n

        def set_postfix(self, moves=0, **kwargs):
            seen.append((self.n, int(moves)))

        def close(self):
            pass

    monkeypatch.setattr(tqdm, "tqdm", Bar)
    cfg = load_config(None, ["game.board=5", "search.sims=16", "selfplay.games=2", "selfplay.concurrent=2"])
    sp = SelfPlay(cfg, HashEvaluator(5, seed=1), NNCache(1 << 10, 26, 51), progress=True, tensorboard=False)
    sp.report_every = 0.0  # a postfix after every batch
    sp.run()
    before_any_finished = [moves for done, moves in seen if done == 0]
    assert before_any_finished and max(before_any_finished) > 0


# -- kill -9 of selfplay at seeded random moments -----------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill_9_of_selfplay_leaves_only_whole_files(tmp_path, seed):
    from specmcts.training.replay import read_shard

    out = tmp_path / "sp"
    proc = specmcts("selfplay", *TINY, "--games", "400", "--set", "selfplay.concurrent=2",
                    "--set", "selfplay.shard_games=2", "--out", str(out), "--quiet")
    wait_for(proc, lambda: len(list((out / "sgf").glob("*.sgf"))) >= 1, "a finished game")
    time.sleep(random.Random(seed).uniform(0.0, 3.0))
    proc.kill()
    proc.communicate(timeout=60)
    for p in (out / "sgf").glob("*.sgf"):
        assert read_sgf(p).moves  # every SGF whole
    for p in (out / "data").glob("*.npz"):
        shard = read_shard(p, SIZE)  # every shard whole (ShardError otherwise)
        assert len(shard) == len(shard.features) > 0
    leftovers = [p.name for p in out.rglob("*") if p.is_file() and not p.name.endswith((".sgf", ".npz"))
                 and not p.name.startswith("events.out.tfevents") and not p.name.endswith(".tmp")]
    assert not leftovers, leftovers


# -- JSON summaries ------------------------------------------------------------------------------------------------


def test_json_summaries_are_strict_json_when_a_stage_saw_no_prediction(tmp_path, capsys):
    """Short 19x19 games with speculation: stages and phases without predictions are null, not NaN."""
    assert cli.main(["selfplay", "--board", "19", "--device", "cpu", "--set", "net.blocks=1", "--set",
                     "net.channels=8", "--set", "search.sims=8", "--set", "selfplay.max_moves=6", "--games", "1",
                     "--speculate", "2", "--out", str(tmp_path), "--json"]) == 0
    summary = strict_json(capsys.readouterr().out)
    values = [v for v in summary["prediction_accuracy_by_stage"]]
    assert all(v is None or (isinstance(v, float) and math.isfinite(v)) for v in values)
