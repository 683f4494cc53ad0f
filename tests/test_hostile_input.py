"""Hostile input, second round: each value that used to be accepted and misbehave, crash with a traceback, or
exit 1 late is refused up front as a one-line usage error (exit 2) naming the key, and nothing is written."""
from __future__ import annotations

import json

import pytest

from specmcts import cli

TINY = ["--board", "5", "--device", "cpu", "--set", "net.blocks=1", "--set", "net.channels=8",
        "--set", "net.value_hidden=8", "--set", "search.sims=8"]


def one_line_usage_error(argv: list[str], capsys) -> str:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("command, extra, says", [
    ("eval", ["--set", "eval.sims=-5"], "eval.sims"),  # used to report a bogus Elo
    ("eval", ["--set", "eval.concurrent=0"], "eval.concurrent"),
    ("run", ["--minutes", "nan"], "run.minutes"),  # used to run without a limit
    ("run", ["--minutes", "-1"], "run.minutes"),
    ("selfplay", ["--set", "search.leaves_per_tree=100000000"], "search.leaves_per_tree"),  # grew to 11 GB
    ("selfplay", ["--set", "evaluator.max_batch=100000000"], "evaluator.max_batch"),
    ("train", ["--batch-size", "100000000"], "train.batch_size"),
    ("selfplay", ["--set", "search.sims=99999999999999999999999"], "search.sims"),
    ("selfplay", ["--seed", "-1"], "seed"),
    ("selfplay", ["--seed", "999999999999999999999999"], "seed"),
    ("selfplay", ["--set", "game.board.x=1"], "game.board is a value"),  # used to be a TypeError traceback
    ("selfplay", ["--set", "search.sims.sims=3"], "search.sims is a value"),
    ("selfplay", ["--set", "search.sims=abc"], "search.sims: expected an integer"),  # was "expected a int"
    # late config errors that exited 1 after starting: now usage errors before anything starts
    ("train", ["--set", "train.lr=-1"], "train.lr"),
    ("train", ["--set", "train.batch_size=0"], "train.batch_size"),
    ("train", ["--set", "train.optimizer=bogus"], "train.optimizer"),
    ("run", ["--set", "run.mode=bogus"], "run.mode"),
    ("run", ["--set", "run.workers=0"], "run.workers"),
    ("run", ["--set", "run.train_samples_per_sample=0"], "run.train_samples_per_sample"),
    ("train", ["--set", "train.lr_schedule=linear"], "train.lr_schedule"),
])
def test_bad_values_are_one_line_usage_errors(command, extra, says, tmp_path, capsys):
    out = tmp_path / "out"
    err = one_line_usage_error([command, *TINY, *extra, "--out", str(out)], capsys)
    assert says in err
    assert not out.exists()


def test_config_that_is_not_a_yaml_file(tmp_path, capsys):
    binary = tmp_path / "net.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    assert "not a text file" in one_line_usage_error(["selfplay", "--config", str(binary)], capsys)
    assert "a directory" in one_line_usage_error(["selfplay", "--config", str(tmp_path)], capsys)
    err = one_line_usage_error(["selfplay", "--config", str(tmp_path / "missing.yaml")], capsys)
    assert "presets: " in err and "go9" in err  # the error lists what exists


def test_presets_load_by_name_and_by_their_source_tree_path(tmp_path, monkeypatch):
    """`--config configs/go9.yaml` (the README's form) works from any directory, as in an installed package."""
    from specmcts.config import load_config

    monkeypatch.chdir(tmp_path)  # no configs/ here
    assert load_config("configs/go9.yaml").name == load_config("go9").name == "go9"
    assert load_config("go9cpu-big").net.blocks == 6


def test_tree_memory_is_checked_before_allocating(monkeypatch):
    from native import tree

    monkeypatch.setattr(tree, "free_memory", lambda: 1 << 30)
    with pytest.raises(ValueError, match="search trees need .* GiB .*search.sims"):
        tree.Tree.allocate(8, 5_000_010, 362)
    small = tree.Tree.allocate(2, 100, 82)
    assert sum(getattr(small, f).nbytes for f in small._fields) <= tree.Tree.nbytes(2, 100, 82) * 1.01


def test_a_huge_number_in_an_analysis_query_answers_that_query_and_the_engine_goes_on(tmp_path):
    """A 5,000-digit maxVisits (past Python's int conversion limit) used to end the engine and drop every
    queued query; a 400-digit one must be refused by range, not crash the float check."""
    import subprocess
    import sys

    query = '{"id":"%s","moves":[],"rules":"chinese","komi":7.5,"boardXSize":5,"boardYSize":5,"maxVisits":%s}'
    lines = [query % ("huge", "9" * 5000), query % ("big", "9" * 400), query % ("ok", "4")]
    p = subprocess.run([sys.executable, "-m", "specmcts", "analysis", "--model", "fresh", "--set", "net.blocks=1",
                        "--set", "net.channels=8", "--set", "net.value_hidden=8"],
                       input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=300)
    answers = [json.loads(line) for line in p.stdout.splitlines()]
    assert "could not parse" in answers[0]["error"]
    assert answers[1]["id"] == "big" and "maxVisits" == answers[1]["field"]
    assert answers[2]["id"] == "ok" and answers[2]["moveInfos"]
    assert p.returncode == 0


def test_analysis_slots_are_bounded(capsys):
    assert cli.main(["analysis", "--slots", "1000000000"]) == 2
    assert "--slots" in capsys.readouterr().err


# -- a new user's first hour: the tour in order ------------------------------------------------------------------


def sgf_texts(out) -> list[str]:
    return sorted(p.read_text() for p in (out / "sgf").glob("*.sgf"))


def test_selfplay_draws_a_fresh_seed_says_it_and_seed_repeats_it(tmp_path, capsys):
    small = ["selfplay", "--board", "5", "--games", "2", "--set", "net.blocks=1", "--set", "net.channels=8",
             "--set", "net.value_hidden=8", "--set", "search.sims=8", "--json"]
    seeds = []
    for i in range(2):
        assert cli.main([*small, "--out", str(tmp_path / f"a{i}")]) == 0
        seeds.append(json.loads(capsys.readouterr().out)["seed"])
    assert seeds[0] != seeds[1] and sgf_texts(tmp_path / "a0") != sgf_texts(tmp_path / "a1")
    assert cli.main([*small, "--out", str(tmp_path / "again"), "--seed", str(seeds[0])]) == 0
    assert json.loads(capsys.readouterr().out)["seed"] == seeds[0]
    assert sgf_texts(tmp_path / "again") == sgf_texts(tmp_path / "a0")
    human = [a for a in small if a != "--json"]
    assert cli.main([*human, "--out", str(tmp_path / "h")]) == 0
    line = capsys.readouterr().out.strip()
    assert f"in {tmp_path / 'h'}" in line and "--seed " in line  # where the files went, how to repeat them


def test_the_first_command_then_train_works_on_a_cpu(tmp_path, capsys, monkeypatch):
    """README: `specmcts selfplay --board 9` (the CPU defaults: 8 games), then `specmcts train`: the samples
    of those 8 games are enough to start training."""
    monkeypatch.setattr("specmcts.config.resolve_device", lambda device: "cpu")
    out = tmp_path / "go9"
    assert cli.main(["selfplay", "--board", "9", "--out", str(out), "--quiet", "--json"]) == 0
    samples = json.loads(capsys.readouterr().out)["moves"]
    assert cli.main(["train", "--out", str(out), "--steps", "3", "--quiet", "--json"]) == 0, (
        f"{samples} samples: {capsys.readouterr().err}")
    assert json.loads(capsys.readouterr().out)["step"] == 3


def test_run_resume_without_config_reads_the_runs_own_config(tmp_path, capsys):
    out = tmp_path / "run"
    base = ["--out", str(out), "--quiet", "--json", "--set", "run.mode=generations",
            "--set", "run.games_per_generation=2", "--set", "run.generations=1"]
    tiny = ["--board", "5", "--device", "cpu", "--set", "net.blocks=1", "--set", "net.channels=8",
            "--set", "net.value_hidden=8", "--set", "search.sims=8", "--set", "train.min_samples=8",
            "--set", "train.batch_size=8"]
    assert cli.main(["run", *tiny, *base]) == 0
    first = json.loads(capsys.readouterr().out)
    assert cli.main(["run", "--resume", *base, "--set", "run.generations=2"]) == 0  # no --config, no --board
    captured = capsys.readouterr()
    again = json.loads(captured.out)
    assert "skipping shard" not in captured.err
    assert again["seed"] == first["seed"] and again["games"] == 2 and again["step"] > first["step"]


# -- model files: nothing overwritten by surprise ------------------------------------------------------------------


def small_checkpoint(path):
    from specmcts.config import NetConfig
    from specmcts.engine.network import build_net, save_model

    save_model(path, build_net(5, NetConfig(blocks=1, channels=8, value_hidden=8)),
               {"step": 3, "optimizer": {"state": {}, "param_groups": []}})
    return path


def test_model_export_never_overwrites_without_force(tmp_path, capsys):
    """`model export CK --out CK` used to strip a training checkpoint's optimizer: it can no longer resume."""
    ck = small_checkpoint(tmp_path / "model_00000003.pt")
    before = ck.read_bytes()
    assert cli.main(["model", "export", str(ck), "--out", str(ck)]) == 1
    assert "exists" in capsys.readouterr().err and ck.read_bytes() == before
    other = tmp_path / "other.pt"
    other.write_bytes(b"keep me")
    assert cli.main(["model", "export", str(ck), "--out", str(other)]) == 1
    assert other.read_bytes() == b"keep me"
    assert cli.main(["model", "export", str(ck), "--out", str(other), "--force"]) == 0


def test_model_commands_refuse_a_run_that_is_running(tmp_path, capsys):
    from specmcts.stopping import RunLock

    run = tmp_path / "run"
    (run / "models").mkdir(parents=True)
    ck = small_checkpoint(tmp_path / "src.pt")
    with RunLock(run, "run"):
        assert cli.main(["model", "init", str(run / "models" / "model_00000000.pt"), "--board", "5"]) == 1
        assert "in use" in capsys.readouterr().err
        assert cli.main(["model", "export", str(ck), "--out", str(run / "models" / "x.pt")]) == 1
        assert not list((run / "models").iterdir())
    assert not (run / "run.lock").exists()  # released and removed: no stale lock file after the run
    assert cli.main(["model", "export", str(ck), "--out", str(run / "models" / "x.pt")]) == 0


def test_a_run_lock_left_by_a_killed_process_does_not_stop_the_next(tmp_path):
    from specmcts.stopping import RunLock

    (tmp_path / "run.lock").write_text("12345 run\n")  # kill -9: the file stays, the kernel dropped the lock
    assert RunLock.held(tmp_path) is None
    with RunLock(tmp_path, "train"):
        assert "in use" in RunLock.held(tmp_path)
        with pytest.raises(RuntimeError, match="in use"):
            RunLock(tmp_path).__enter__()


def test_finite_weights_whose_outputs_overflow_are_refused(tmp_path, capsys):
    """Every float tensor x 1e30: each weight is finite, the outputs are not. Self-play used to exit 0 with
    2-move games and shards whose policy was always pass."""
    import torch

    from specmcts.engine.network import CheckpointError, load_model, read_checkpoint

    ck = small_checkpoint(tmp_path / "net.pt")
    data = read_checkpoint(ck)
    data["model"] = {k: v * 1e30 if v.is_floating_point() else v for k, v in data["model"].items()}
    torch.save(data, tmp_path / "huge.pt")
    assert all(bool(torch.isfinite(v).all()) for v in data["model"].values() if v.is_floating_point())
    with pytest.raises(CheckpointError, match="output is not"):
        load_model(tmp_path / "huge.pt")
    out = tmp_path / "sp"
    assert cli.main(["selfplay", *TINY, "--model", str(tmp_path / "huge.pt"), "--out", str(out), "--games", "1"]) == 1
    assert "output is not" in capsys.readouterr().err
    assert not list(out.rglob("*.npz"))


def test_an_engine_whose_answer_never_ends_times_out_per_answer(tmp_path):
    """`gtp:yes =` answers every command with endless '=' lines: a timeout per line never fired and the
    memory grew. The timeout is per answer now, and the reader waits instead of queueing without bound."""
    from specmcts.play.gtp_client import GtpClient, GtpClientError

    with GtpClient(["yes", "="], timeout=2.0) as engine:
        with pytest.raises(GtpClientError, match="did not answer|characters"):
            engine.send("name")
    assert engine._lines.maxsize > 0 and engine._lines.qsize() <= engine._lines.maxsize


def test_train_data_that_does_not_exist_and_a_model_that_is_a_directory(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", *TINY, "--data", str(tmp_path / "nonexistent"), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "no such directory" in err and "play more" not in err and not out.exists()
    assert cli.main(["selfplay", *TINY, "--model", str(tmp_path), "--out", str(out)]) == 1
    assert "a directory, not a checkpoint file" in capsys.readouterr().err


def test_selfplay_removes_what_a_killed_selfplay_left_half_written(tmp_path):
    """kill -9 during an atomic write leaves sgf/.<name>.<pid>.<hex>.tmp: the next start removes it (its
    writer is gone), and never the temporary of a writer still alive."""
    import os
    import subprocess
    import sys

    from specmcts.atomic import remove_stale_temporaries

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "sgf").mkdir()
    stale = tmp_path / "sgf" / f".game_000001.sgf.{dead.pid}.0123456789ab.tmp"
    live = tmp_path / "sgf" / f".game_000002.sgf.{os.getpid()}.0123456789ab.tmp"
    stale.write_text("(;half")
    live.write_text("(;being written")
    assert cli.main(["selfplay", *TINY, "--games", "1", "--out", str(tmp_path), "--quiet"]) == 0
    assert not stale.exists() and live.exists()
    assert remove_stale_temporaries(tmp_path / "sgf") == 0


def test_eval_names_the_shipped_net_shipped(tmp_path, capsys):
    """`eval` with no --model plays the embedded net: the summary calls it that, not the run's name."""
    assert cli.main(["eval", "--board", "9", "--opponent", "random", "--games", "1", "--out", str(tmp_path),
                     "--set", "eval.sims=2", "--quiet", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert "shipped" in json.dumps(summary) and "go9 vs" not in json.dumps(summary)


def test_the_gtp_engine_loads_and_announces_the_embedded_net_once(gnugo):
    """final_score and final_status_list ask for the net again and again: it is loaded and logged once."""
    import subprocess
    import sys

    commands = "boardsize 9\nplay b e5\nfinal_score\nfinal_score\nfinal_status_list dead\nquit\n"
    p = subprocess.run([sys.executable, "-m", "specmcts", "gtp", "--board", "9", "--visits", "4"], input=commands,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and p.stderr.count("using the embedded net") == 1


def test_a_full_disk_names_the_file_and_a_writer_thread_dies_in_one_line(tmp_path, monkeypatch, capsys):
    import errno
    import os
    import threading

    from specmcts.atomic import atomic_write_bytes
    from specmcts.stopping import quiet_thread_errors

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match=f"writing {tmp_path / 'game.sgf'}: No space left"):
        atomic_write_bytes(tmp_path / "game.sgf", b"(;)")
    assert not list(tmp_path.iterdir())  # no temporary left behind
    monkeypatch.undo()

    monkeypatch.setattr(threading, "excepthook", threading.excepthook)  # restored after the test
    quiet_thread_errors()

    def writer():
        raise OSError(errno.ENOSPC, "No space left on device")

    t = threading.Thread(target=writer, name="EventFileWriter")
    t.start()
    t.join()
    err = capsys.readouterr().err
    assert "Traceback" not in err and "EventFileWriter stopped: [Errno 28] No space left on device" in err
