"""tools/strength.py: the learning curve is read back from real TensorBoard files and drawn as a PNG; the
match part is `specmcts eval` (tests/test_evaluate*.py) and runs here at toy size against GnuGo."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_tool():
    spec = importlib.util.spec_from_file_location("strength_tool", ROOT / "tools" / "strength.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_learning_curve_from_tensorboard_logs(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    tool = load_tool()
    runs = []
    for r, (offset_h, offset_games) in enumerate(((0.0, 0), (1.0, 5000))):  # a run and its continuation
        run = tmp_path / f"run{r}"
        writer = SummaryWriter(str(run / "tb"))
        for step in range(0, 400, 100):
            writer.add_scalar("compute/cpu_hours", offset_h + step / 400, step)
            writer.add_scalar("compute/games", offset_games + 10 * step, step)
            if step:
                writer.add_scalar("elo/vs_first", 50.0 * (r + step / 100), step + 5)
                writer.add_scalar("elo/vs_gnugo_l1", -300.0 + 50.0 * (r + step / 100), step + 5)
        writer.close()
        runs.append(run)
    curve = tool.learning_curve(runs, tmp_path / "curve.png")
    assert len(curve["points"]) == 12 and {p["opponent"] for p in curve["points"]} == {"first", "gnugo_l1"}
    first = [p for p in curve["points"] if p["opponent"] == "first"]
    hours = [p["cpu_hours"] for p in first]
    assert hours == sorted(hours) and hours[-1] == pytest.approx(1.75)
    assert first[-1]["games"] == 5000 + 3000
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {p["config"] for p in curve["points"]} == {"?"}  # no recorded config: one series per opponent

    # a second config (the bigger net's run) beside the first: its points say which config they belong to
    (runs[0] / "config.yaml").write_text("name: go9cpu\n")
    (runs[1] / "config.yaml").write_text("name: go9cpu-big\n")
    curve = tool.learning_curve(runs, tmp_path / "ab.png")
    by_config = {c: [p["run"] for p in curve["points"] if p["config"] == c] for c in ("go9cpu", "go9cpu-big")}
    assert set(by_config["go9cpu"]) == {"run0"} and set(by_config["go9cpu-big"]) == {"run1"}
    assert (tmp_path / "ab.png").is_file()


def test_strength_table_at_toy_size(tmp_path, capsys, gnugo):
    from specmcts.config import NetConfig
    from specmcts.engine.network import build_net, save_model

    model = tmp_path / "net.pt"
    save_model(model, build_net(9, NetConfig(blocks=1, channels=8, value_hidden=8)), {"step": 0})
    tool = load_tool()
    assert tool.main(["--model", str(model), "--visits", "4", "--levels", "0", "--games", "2",
                      "--out", str(tmp_path / "out"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    names = [m["opponent"] for m in result["matches"]]
    assert names == ["gnugo-l0", "untrained"] and all(m["games"] == 2 for m in result["matches"])
    assert len(list((tmp_path / "out").rglob("*.sgf"))) == 4
    assert (tmp_path / "out" / "strength.json").is_file()


def test_ctrl_c_keeps_the_finished_games_and_prints_what_was_played(tmp_path, gnugo):
    """A terminal's Ctrl-C (SIGINT to the tool's process group, GnuGo included) in the first match: the
    finished games are kept and reported, the later matches are not started, exit 130."""
    import os
    import subprocess

    from tests.helpers import ctrl_c_when

    from specmcts.config import NetConfig
    from specmcts.engine.network import build_net, save_model

    model = tmp_path / "net.pt"
    save_model(model, build_net(9, NetConfig(blocks=1, channels=8, value_hidden=8)), {"step": 0})
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, str(ROOT / "tools" / "strength.py"), "--model", str(model),
                             "--visits", "4", "--levels", "0", "--games", "2000", "--out", str(out), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"), start_new_session=True)
    stdout, stderr = ctrl_c_when(proc, lambda: len(list(out.rglob("*.sgf"))) >= 2, "strength.py")
    assert proc.returncode == 130, stderr
    result = json.loads(stdout)
    assert result["stop_reason"] == "interrupted" and [m["opponent"] for m in result["matches"]] == ["gnugo-l0"]
    assert result["matches"][0]["games"] == len(list(out.rglob("*.sgf"))) >= 2
    assert json.loads((out / "strength.json").read_text())["stop_reason"] == "interrupted"


def test_the_table_counts_distinct_games_on_any_board(tmp_path, capsys, gnugo):
    """A kata-heads net made for 9x9 measured on 7x7: the table names the board and the opening method, counts
    the distinct games and gives the score's Wilson interval; per-size Elo tags make per-size curve lines."""
    from specmcts.config import NetConfig
    from specmcts.engine.network import build_net, save_model

    model = tmp_path / "net.pt"
    save_model(model, build_net(9, NetConfig(blocks=1, channels=8, value_hidden=8)), {"step": 0})
    tool = load_tool()
    assert tool.main(["--model", str(model), "--board", "7", "--visits", "4", "--levels", "0", "--games", "4",
                      "--no-untrained", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("7x7, 2 random plies per pair of games"), out
    header, row = out[1], out[3]
    assert "distinct" in header and "Wilson" in header
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:4] == ["4", "gnugo-l0", "4", "4"]  # 4 games, all distinct
    assert out[-1].startswith("strength: 1 matches of 4 games (4 of 4 distinct)")
    result = json.loads((tmp_path / "out" / "strength.json").read_text())
    assert result["board"] == 7 and result["matches"][0]["board"] == 7
    assert len(list((tmp_path / "out").rglob("*.sgf"))) == 4

    from torch.utils.tensorboard import SummaryWriter

    run = tmp_path / "mixed"
    writer = SummaryWriter(str(run / "tb"))
    for step in (0, 100):
        writer.add_scalar("compute/cpu_hours", step / 100, step)
        writer.add_scalar("compute/games", step, step)
        writer.add_scalar("elo/9x9/vs_gnugo_l1", 10.0 + step, step)
        writer.add_scalar("elo/13x13/vs_gnugo_l1", -100.0 + step, step)
    writer.close()
    curve = tool.learning_curve([run], tmp_path / "mixed.png")
    assert {p["opponent"] for p in curve["points"]} == {"9x9 gnugo_l1", "13x13 gnugo_l1"}
