"""Fuzzing the GTP engine: random and mutated command lines never kill it and always get a protocol answer.

In process, Hypothesis feeds more than 10,000 lines (valid commands with random arguments, mutated commands,
random text with control characters) to one engine and checks every answer: exactly one ``=[id] ...`` or
``?[id] ...`` answer per line that is not empty after GTP's preprocessing, with the line's id echoed, no empty
line inside it, and an empty line after it; and the engine's position must always equal the replay of its
record. A subprocess run then pipes a few hundred such lines through ``python -m specmcts gtp`` and checks the
same things on its stdout and that it exits cleanly on ``quit``.
"""
from __future__ import annotations

import os
import random
import re
import subprocess
import sys

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from specmcts.config import load_config
from specmcts.play.gtp import EngineOptions, GtpEngine

TINY = ["net.blocks=2", "net.channels=32", "net.value_hidden=32", "search.sims=4", "evaluator.device=cpu",
        "evaluator.cache_entries=4096"]
LINES_PER_EXAMPLE = 25
EXAMPLES = 420  # 10,500 lines
SIZES = [5, 7, 9, 13, 19]  # boardsize draws these most of the time (a fresh net per size is built on demand)

COMMANDS = ["protocol_version", "name", "version", "known_command", "list_commands", "boardsize",
            "clear_board", "komi", "get_komi", "play", "genmove", "reg_genmove", "undo", "showboard",
            "final_score", "final_status_list", "time_settings", "kgs-time_settings", "time_left", "loadsgf",
            "printsgf", "fixed_handicap", "place_free_handicap", "set_free_handicap", "lz-analyze",
            "kata-analyze", "lz-genmove_analyze", "kata-genmove_analyze", "gogui-analyze_commands",
            "specmcts-policy", "quit"]
# Commands whose weight is raised: the ones that change the position.
MOVES = ["play", "play", "play", "play", "genmove", "undo", "undo"]
COLUMNS = "ABCDEFGHJKLMNOPQRST"

# -- the answer checker ----------------------------------------------------------------------------------


def gtp_preprocess(raw: str) -> str:
    """GTP v2 section 2.4, written independently of the engine: drop control characters except HT and LF,
    HT to space, cut at '#', strip."""
    text = "".join(" " if ch == "\t" else ch for ch in raw if ch in "\t\n" or not (ord(ch) < 32 or ord(ch) == 127))
    return text.split("#", 1)[0].strip()


def expected_id(raw: str) -> str | None:
    """None: no answer expected; else the id the answer must echo ('' when the line has none)."""
    line = gtp_preprocess(raw)
    if not line:
        return None
    first = line.split()[0]
    return first if first.isdigit() and first.isascii() else ""


ANSWER = re.compile(r"([=?])(\d*)(?:( [^\n]*))?\n((?:[^\n]+\n)*)\n")


def check_answer(raw: str, answer: str) -> None:
    ident = expected_id(raw)
    if ident is None:
        assert answer == "", (raw, answer)
        return
    m = ANSWER.fullmatch(answer)
    assert m, (raw, answer)
    assert m.group(2) == ident, (raw, answer)
    if m.group(1) == "?":
        assert m.group(4) == "", (raw, answer)  # errors are one line
        assert "internal error" not in answer, (raw, answer)  # a bug caught by the engine's last resort


# -- line generators ---------------------------------------------------------------------------------------

ANY_CHAR = st.characters(blacklist_characters="\n")
VERTEX = st.one_of(
    st.builds(lambda c, r: f"{c}{r}", st.sampled_from(COLUMNS + COLUMNS.lower() + "IiZz"), st.integers(-1, 21)),
    st.sampled_from(["pass", "PASS", "resign", "", "a", "A0", "T19", "j9", "e5", "\u00e95", "11", "--"]),
    st.text(ANY_CHAR, max_size=4),
)
NUMBER = st.one_of(
    st.integers(-5, 25).map(str),
    st.integers(-10 ** 30, 10 ** 30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["0", "1", "7.5", "-7.5", "0.5", "1e9", "nan", "inf", "-0", "+3", "0x10", "\u0663", "1_000"]),
)
COLOUR = st.sampled_from(["b", "w", "B", "W", "black", "white", "BLACK", "x", "", "bw", "0"])
ARGUMENT = st.one_of(VERTEX, NUMBER, COLOUR,
                     st.sampled_from(["interval", "minmoves", "maxmoves", "ownership", "true", "false", "avoid",
                                      "alive", "dead", "seki", "none", "absolute", "byoyomi", "canadian"]))
NAME = st.one_of(st.sampled_from(COMMANDS), st.sampled_from(MOVES),
                 st.sampled_from(["foo", "PLAY", "genmove_black", "lz-", ""]))
BOARDSIZE = st.one_of(st.sampled_from([str(s) for s in SIZES]), NUMBER)
NOISE = st.one_of(st.sampled_from(list("\t\r\x00\x01\x1b\x7f #=?\u00a0\u2028")), ANY_CHAR)


@st.composite
def command_line(draw) -> str:
    """A command with plausible-to-nonsense arguments, maybe an id, maybe a comment."""
    name = draw(NAME)
    if name == "boardsize":
        args = [draw(BOARDSIZE)]
    elif name == "play":
        args = [draw(COLOUR), draw(VERTEX)]
    elif name in ("genmove", "reg_genmove"):
        args = [draw(COLOUR)]
    elif name in ("lz-analyze", "kata-analyze", "lz-genmove_analyze", "kata-genmove_analyze"):
        args = [draw(COLOUR)] + draw(st.lists(ARGUMENT, max_size=5))
    elif name == "loadsgf":
        args = [draw(st.sampled_from(["game.sgf", "missing.sgf", ".", "/dev/null", "game.sgf 3", "game.sgf x"]))]
    elif name == "printsgf":  # writes files: only names in the test's temporary folder
        args = draw(st.sampled_from([[], ["game.sgf"], ["other.sgf"]]))
    elif name == "set_free_handicap":
        args = draw(st.lists(VERTEX, max_size=6))
    else:
        args = draw(st.lists(ARGUMENT, max_size=4))
    line = " ".join([name] + args)
    if draw(st.booleans()):
        line = f"{draw(st.integers(0, 10 ** 12))} {line}"
    if draw(st.integers(0, 9)) == 0:
        line += " # " + draw(st.text(ANY_CHAR, max_size=8))
    return line


@st.composite
def mutated_line(draw) -> str:
    """A command line with characters inserted, deleted or replaced (control characters, tabs, Unicode)."""
    line = draw(command_line())
    if line.lstrip().split(" ", 1)[0].lstrip("0123456789 ").startswith("printsgf"):
        return line  # never let a mutation turn its file name into a path outside the temporary folder
    chars = list(line)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.integers(0, 2))
        at = draw(st.integers(0, len(chars)))
        if op == 0:
            chars.insert(at, draw(NOISE))
        elif op == 1 and chars:
            del chars[min(at, len(chars) - 1)]
        elif chars:
            chars[min(at, len(chars) - 1)] = draw(ANY_CHAR)
    text = "".join(chars)
    if "printsgf" in text:  # a mutation produced the command: neutralise the file name
        return "printsgf"
    return text


ANY_LINE = st.one_of(command_line(), command_line(), mutated_line(),
                     st.text(ANY_CHAR, max_size=40).filter(lambda t: "printsgf" not in t))


# -- in process ----------------------------------------------------------------------------------------------


@pytest.fixture
def fuzz_engine(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # printsgf/loadsgf file names land here
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    cfg = load_config(None, TINY)
    engine = GtpEngine(cfg, options=EngineOptions(visits=4, analysis_visits=8, playouts=8, quiet=True))
    (tmp_path / "game.sgf").write_text("(;GM[1]FF[4]SZ[9]KM[7.5];B[ee];W[dd];B[];W[cc])")
    yield engine
    torch.set_num_threads(before)


def test_fuzz_in_process(fuzz_engine):
    engine = fuzz_engine
    fed = []

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
    @given(st.lists(ANY_LINE, min_size=LINES_PER_EXAMPLE, max_size=LINES_PER_EXAMPLE))
    def run(lines):
        for raw in lines:
            check_answer(raw, engine.handle(raw))
            engine.quit_requested = False  # a quit ends a served session; here the next line just goes on
            fed.append(raw)
        # the position always equals the replay of the record (undo/komi/loadsgf rebuild it that way)
        assert (engine.state.board() == engine.record.replay().board()).all()
        assert engine.state.to_play == engine.record.replay().to_play

    run()
    assert len(fed) >= 10_000


def test_checker_catches_bad_answers():
    check_answer("1 name", "=1 specmcts\n\n")
    check_answer("# nothing", "")
    for raw, bad in (("1 name", "= specmcts\n\n"), ("name", "=specmcts\n\n"), ("name", "= a\n\nb\n\n"),
                     ("x", "? a\nb\n\n"), ("", "= \n\n"), ("name", "= specmcts\n")):
        with pytest.raises(AssertionError):
            check_answer(raw, bad)


# -- a real process ------------------------------------------------------------------------------------------


def random_lines(seed: int, count: int) -> list[str]:
    """Plain-Python counterpart of the strategies above (no Hypothesis inside a subprocess test)."""
    rng = random.Random(seed)
    noise = "\t\r\x00\x01\x1b\x7f #=?\u00a0\u00e9\u4e2d "
    out = []
    for _ in range(count):
        name = rng.choice(COMMANDS[:-1] + MOVES * 2 + ["foo"])  # no quit: it comes last
        if name == "play":
            args = [rng.choice("bwx"), rng.choice(COLUMNS[:9] + "Iz") + str(rng.randint(0, 10))]
        elif name in ("genmove", "reg_genmove", "lz-genmove_analyze", "kata-genmove_analyze"):
            args = [rng.choice(["b", "w", "white", "q"])] + (["0"] if "analyze" in name else [])
        elif name == "boardsize":
            args = [rng.choice(["9", "9", "19", "4", "x", "-1"])]
        elif name in ("loadsgf", "printsgf"):
            args = [rng.choice(["", "missing.sgf"])] if name == "loadsgf" else []
        else:
            args = [rng.choice(["1", "-3", "7.5", "nan", "b", "d4", "alive", "interval", "0"])
                    for _ in range(rng.randint(0, 3))]
        line = " ".join([name] + args)
        if rng.random() < 0.5:
            line = f"{rng.randint(0, 999)} {line}"
        if rng.random() < 0.3:
            chars = list(line)
            for _ in range(rng.randint(1, 3)):
                chars.insert(rng.randint(0, len(chars)), rng.choice(noise))
            line = "".join(chars)
        if rng.random() < 0.05:
            line = "".join(chr(rng.randint(1, 0x2FF)) for _ in range(rng.randint(0, 20))).replace("\n", " ")
        out.append(line)
    return out


def test_fuzz_subprocess_smoke(tmp_path):
    lines = random_lines(seed=7, count=400) + ["999 quit"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "specmcts", "gtp", "--board", "9", "--device", "cpu", "--visits", "4",
           "--analysis-visits", "8", *[f"--set={s}" for s in TINY if not s.startswith("evaluator.device")]]
    payload = "".join(line + "\n" for line in lines).encode("utf-8", "surrogatepass")
    proc = subprocess.run(cmd, input=payload, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    out = proc.stdout.decode("utf-8")
    expected = [ident for ident in (expected_id(line) for line in lines) if ident is not None]
    answers = list(ANSWER.finditer(out))
    assert "".join(m.group(0) for m in answers) == out  # stdout is answers and nothing else
    assert [m.group(2) for m in answers] == expected  # one answer per line, in order, ids echoed
    assert answers[-1].group(0) == "=999\n\n"
    err = proc.stderr.decode(errors="replace")
    assert "Traceback" not in err and "Fatal" not in err and "internal error" not in err
