"""GTP sessions as Sabaki and Lizzie run them, against a real ``specmcts gtp`` process.

The command sequences and the parsing are read from the clients' sources (Sabaki 0.52:
``src/modules/enginesyncer.js``, ``sabaki.js``, ``analysis.js`` and its ``@sabaki/gtp`` controller; Lizzie
0.7: ``analysis/Leelaz.java``, ``MoveData.java``), not guessed:

- **Sabaki** sends commands without ids and does not wait between them: ``name``, ``version``,
  ``protocol_version`` and ``list_commands`` at once on start-up; it syncs a position with ``komi``,
  ``boardsize``, ``clear_board``, ``set_free_handicap`` (handicap stones, vertices sorted as JavaScript sorts
  their ``"x,y"`` strings) and ``play``; it analyses with the first of ``analyze``, ``kata-analyze``,
  ``lz-analyze`` the engine lists, as ``<command> <colour> 50``, and stops it with ``protocol_version``; it
  generates with the first of ``genmove_analyze``, ``kata-genmove_analyze``, ``lz-genmove_analyze`` (else
  ``genmove``) and takes the move from the ``play`` line. Of an info segment it keeps ``move`` (a vertex,
  never pass), ``visits``, ``winrate`` (a fraction after a ``kata`` command, else hundredths of a percent),
  ``scoreLead`` and the ``pv``, which must end the segment.
- **Lizzie** numbers every command (``1 name``) and reads the number back from each answer; it starts with
  ``name``, ``version`` (``0.<minor>`` with an integer minor, unless the name starts with KataGo),
  ``boardsize 19``, ``komi 7.5``; it analyses with ``lz-analyze <centiseconds>`` (no colour) and stops with
  ``name``; ``winrate`` and ``lcb`` must parse as Java integers, ``visits`` too; genmove answers a vertex,
  ``pass`` or ``resign``.

Each answer is checked field by field as that client reads it.
"""
from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading

import pytest

TINY = ["net.blocks=2", "net.channels=32", "net.value_hidden=32", "evaluator.cache_entries=4096"]
TIMEOUT_S = 120.0


class Session:
    """A ``specmcts gtp`` process, its stdout read line by line on a thread (so a read can time out)."""

    def __init__(self, *extra: str):
        env = dict(os.environ, OMP_NUM_THREADS="1")
        cmd = [sys.executable, "-m", "specmcts", "gtp", "--device", "cpu", "--model", "fresh", "--seed", "5",
               "--visits", "16", "--analysis-visits", "200", *[f"--set={s}" for s in TINY], *extra]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, bufsize=1, env=env)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in iter(self.proc.stdout.readline, ""):
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def send(self, *commands: str) -> None:
        """Write commands at once, as both clients do (they do not wait for answers in between)."""
        self.proc.stdin.write("".join(c + "\n" for c in commands))
        self.proc.stdin.flush()

    def line(self) -> str:
        line = self.lines.get(timeout=TIMEOUT_S)
        assert line is not None, f"the engine closed its output; stderr: {self.proc.stderr.read()[-2000:]}"
        return line

    def answer(self) -> tuple[str, str]:
        """The next whole answer: (its first line's head ``=``/``?`` with the id, the body lines joined)."""
        first = self.line()
        while first == "":
            first = self.line()
        lines = [first]
        while (line := self.line()) != "":
            lines.append(line)
        head, _, rest = lines[0].partition(" ")
        return head, "\n".join([rest] + lines[1:]).strip()

    def close(self) -> str:
        if self.proc.poll() is None:
            self.send("quit")
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        err = self.proc.stderr.read()
        assert "Traceback" not in err, err[-3000:]
        return err


@pytest.fixture
def session():
    sessions = []

    def start(*extra):
        sessions.append(Session(*extra))
        return sessions[-1]

    yield start
    for s in sessions:
        s.close()


# -- Sabaki ----------------------------------------------------------------------------------------------------

SABAKI_ANALYZE = ("analyze", "kata-analyze", "lz-analyze")
SABAKI_GENMOVE_ANALYZE = ("genmove_analyze", "kata-genmove_analyze", "lz-genmove_analyze")
SABAKI_PV = re.compile(r"(pass|[A-Za-z]\d+)(\s+(pass|[A-Za-z]\d+))*$")


def sabaki_parse(line: str, command: str) -> list[dict]:
    """Sabaki's ``parseAnalysis`` of one ``info`` line: the variations it shows (a segment whose pv is not
    at its end, or whose move is not a vertex, is dropped)."""
    variations = []
    for segment in re.split(r"\s*info\s+", line)[1:]:
        match = SABAKI_PV.search(segment)
        if match is None:
            continue
        head = segment[:match.start()].split()
        assert head and head[-1] == "pv", segment
        data = dict(zip(head[:-1:2], head[1:-1:2]))
        if not re.fullmatch(r"[A-Za-z]\d+", data.get("move", "")):
            continue
        winrate = float(data["winrate"])
        pv = match.group(0).split()
        variations.append({
            "vertex": data["move"], "visits": int(data["visits"]),
            "winrate": winrate * 100 if command.startswith("kata") else winrate / 100,
            "scoreLead": float(data["scoreLead"]) if "scoreLead" in data else None,
            "moves": pv[:pv.index("pass")] if "pass" in pv else pv,
        })
    return variations


def js_sorted_vertices(points: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """JavaScript's default ``Array.prototype.sort`` on ``[x, y]`` vertices: by their ``"x,y"`` strings."""
    return sorted(points, key=lambda p: f"{p[0]},{p[1]}")


def gtp_vertex(x: int, y: int, size: int) -> str:
    return "ABCDEFGHJKLMNOPQRST"[x] + str(size - y)


# Per board size: two handicap stones (SGF points, as Sabaki holds them), white's first move, the move white
# plays instead after an undo, and the pattern of a vertex on that board.
SABAKI_GAMES = {
    9: {"handicap": [(6, 6), (2, 2)], "sorted": "C7 G3", "white": "E5", "instead": "D5",
        "vertex": r"[A-HJ][1-9]"},
    19: {"handicap": [(15, 3), (3, 15)], "sorted": "Q16 D4", "white": "K10", "instead": "C3",
         "vertex": r"[A-HJ-T](1[0-9]|[1-9])"},
}


@pytest.mark.parametrize("size", sorted(SABAKI_GAMES))
def test_a_sabaki_session(session, size):
    game = SABAKI_GAMES[size]
    s = session()
    s.send("name", "version", "protocol_version", "list_commands")  # start-up, all at once
    assert s.answer() == ("=", "specmcts")
    head, version = s.answer()
    assert head == "=" and version
    assert s.answer() == ("=", "2")
    head, listed = s.answer()
    commands = listed.split("\n")
    analyze = next(c for c in SABAKI_ANALYZE if c in commands)
    genmove = next(c for c in SABAKI_GENMOVE_ANALYZE if c in commands)
    assert (analyze, genmove) == ("kata-analyze", "kata-genmove_analyze")
    assert {"undo", "set_free_handicap"} <= set(commands)  # Sabaki's sync uses both when listed

    # A game with two handicap stones (e.g. AB[cc][gg] on 9x9, KM[0.5]) and white's first move, then analysis.
    handicap = " ".join(gtp_vertex(x, y, size) for x, y in js_sorted_vertices(game["handicap"]))
    assert handicap == game["sorted"]
    s.send("komi 0.5", f"boardsize {size}", "clear_board", f"set_free_handicap {handicap}",
           f"play W {game['white']}", f"{analyze} B 50")
    for _ in range(5):
        assert s.answer() == ("=", "")
    assert s.line() == "="  # the analysis answer opens at once, then streams
    line = s.line()  # the first report (the search may end at its visit cap and report no more)
    assert line.startswith("info ")
    variations = sabaki_parse(line, analyze)
    assert variations, line
    for v in variations:
        assert 0.0 <= v["winrate"] <= 100.0 and v["visits"] >= 0 and v["scoreLead"] is not None
        assert re.fullmatch(game["vertex"], v["vertex"]) and v["vertex"] not in (*handicap.split(), game["white"])
        assert not v["moves"] or v["moves"][0] == v["vertex"]
    s.send("protocol_version")  # Sabaki's abort: any command ends the stream, an empty line closes it
    line = s.line()
    while line.startswith("info "):
        line = s.line()
    assert line == ""
    assert s.answer() == ("=", "2")

    # Navigating back one move and on (undo, then play), then the engine moves for black.
    s.send("undo", f"play W {game['instead']}", f"{genmove} B 50")
    assert s.answer() == ("=", "")
    assert s.answer() == ("=", "")
    assert s.line() == "="
    line = s.line()
    while line.startswith("info "):
        assert all(0.0 <= v["winrate"] <= 100.0 for v in sabaki_parse(line, genmove))
        line = s.line()
    assert re.fullmatch(rf"play ({game['vertex']}|pass|resign)", line), line  # Sabaki resolves on this line
    assert s.line() == ""
    played = line.split()[1]
    s.send("showboard")
    head, board = s.answer()
    assert head == "=" and (played in ("pass", "resign") or board.count("X") >= 3)
    s.send("quit")
    assert s.answer() == ("=", "")


# -- Lizzie ----------------------------------------------------------------------------------------------------


def lizzie_from_info(segment: str) -> dict:
    """Lizzie's ``MoveData.fromInfo`` (Leela Zero format): integers where Java parses integers."""
    head, _, pv = segment.partition(" pv ")
    tokens = head.split()
    data = dict(zip(tokens[::2], tokens[1::2]))
    return {"coordinate": data["move"], "playouts": int(data["visits"]), "winrate": int(data["winrate"]) / 100.0,
            "lcb": int(data["lcb"]) / 100.0, "variation": pv.split()}


def test_a_lizzie_session(session):
    s = session()
    number = iter(range(1, 100))

    def ask(command: str) -> str:
        n = next(number)
        s.send(f"{n} {command}")
        head, body = s.answer()
        assert head == f"={n}", (command, head, body)  # Lizzie parses the id back from every answer
        return body

    assert ask("name") == "specmcts"  # not "KataGo...": Lizzie talks Leela Zero to it
    version = ask("version")
    major, minor = version.split(".")[:2]  # Lizzie: ver[1] must be an integer (it warns below 15)
    int(major), int(minor)
    assert ask("boardsize 19") == "" and ask("komi 7.5") == ""
    assert ask("play B Q16") == "" and ask("play W D4") == ""

    n = next(number)
    s.send(f"{n} lz-analyze 10")  # no colour: the side to move
    assert s.line() == f"={n}"
    line = s.line()
    assert line.startswith("info ")
    entries = [lizzie_from_info(seg) for seg in line[5:].split(" info ")]
    assert entries
    for e in entries:
        assert 0.0 <= e["winrate"] <= 100.0 and e["lcb"] <= e["winrate"] and e["playouts"] >= 0
        assert e["variation"][0] == e["coordinate"] and e["coordinate"] not in ("Q16", "D4")
    n = next(number)
    s.send(f"{n} name")  # Lizzie's way of ending pondering
    line = s.line()
    while line.startswith("info "):
        line = s.line()
    assert line == ""
    assert s.answer() == (f"={n}", "specmcts")

    avoided = {e["coordinate"] for e in entries[:3]}  # Leela Zero's avoid: not searched for that player
    n = next(number)
    s.send(f"{n} lz-analyze 10 avoid b {','.join(sorted(avoided))} 1")
    assert s.line() == f"={n}"
    line = s.line()
    assert line.startswith("info ")
    assert not {lizzie_from_info(seg)["coordinate"] for seg in line[5:].split(" info ")} & avoided
    n = next(number)
    s.send(f"{n} name")
    while (line := s.line()).startswith("info "):
        pass
    assert line == "" and s.answer() == (f"={n}", "specmcts")

    assert ask("undo") == ""
    assert ask("time_settings 0 2 1") == ""  # Lizzie's max-game-thinking-time: 2 s per move
    move = ask("genmove W")
    assert re.fullmatch(r"[A-HJ-T](1[0-9]|[1-9])|pass|resign", move, re.IGNORECASE)
    assert ask("clear_board") == ""
    stones = ask("fixed_handicap 2").split()  # Lizzie places what the engine answers as black stones
    assert sorted(stones) == ["D4", "Q16"]
    assert ask("komi 7.0") == ""  # Java's Double.toString of 7
