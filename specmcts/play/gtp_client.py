"""Talk GTP v2 to an external engine (GnuGo, another specmcts) as a subprocess.

Used as a rules referee in tests, as an opponent by ``specmcts eval`` and by the GTP match tools.
"""
from __future__ import annotations

import os
import queue
import shlex
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

# Debian installs GnuGo in /usr/games, which is not on the default PATH.
GNUGO_FALLBACK_DIRS = ("/usr/games", "/usr/local/games")


class GtpClientError(RuntimeError):
    """The engine answered ``? message`` or died."""


def find_gnugo() -> str | None:
    """Path of the gnugo binary: $PATH first, then Debian's /usr/games."""
    found = shutil.which("gnugo")
    if found:
        return found
    for d in GNUGO_FALLBACK_DIRS:
        candidate = Path(d) / "gnugo"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def gnugo_command(level: int = 1, chinese_rules: bool = True, extra: tuple[str, ...] = ()) -> list[str]:
    exe = find_gnugo()
    if exe is None:
        raise FileNotFoundError("gnugo not found on PATH or in /usr/games (apt-get install -y gnugo)")
    cmd = [exe, "--mode", "gtp", "--level", str(level)]
    if chinese_rules:
        cmd.append("--chinese-rules")
    return cmd + list(extra)


DEFAULT_TIMEOUT_S = 120.0  # per answer: GnuGo level 10 thinks seconds on 19x19; a hung engine is an error
MAX_LINE = 1 << 20  # an answer line longer than this is not GTP
MAX_ANSWER = 1 << 22  # characters of one answer (a 19x19 board drawn with analysis is a few thousand)


class GtpClient:
    """A GTP engine process. ``send('play b d4')`` returns the response text or raises GtpClientError, also when
    no complete answer arrives within ``timeout`` seconds (the message names the engine and the command)."""

    def __init__(self, command: list[str], stderr=subprocess.DEVNULL, timeout: float = DEFAULT_TIMEOUT_S):
        self.command = list(command)
        self.timeout = float(timeout)
        self.hung = False  # an answer timed out: the engine is killed on close, not asked to quit
        self.proc = subprocess.Popen(
            self.command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            bufsize=1,
            # Its own process group: a terminal's Ctrl-C (SIGINT to the whole foreground group) is ours to
            # handle, and stopping a match at its next move needs the engine alive until then. Closing our
            # end of its stdin (or close()) still ends it.
            start_new_session=True,
        )
        # A reader thread, so that a read can time out (a blocked readline cannot). Bounded: an engine that
        # writes without end waits for us instead of filling the memory.
        self._lines: queue.Queue = queue.Queue(maxsize=4096)
        threading.Thread(target=self._read, name=f"gtp-{Path(self.command[0]).name}", daemon=True).start()

    def _read(self) -> None:
        try:
            for out in iter(lambda: self.proc.stdout.readline(MAX_LINE), ""):
                self._lines.put(out)
        except (OSError, ValueError):
            pass
        self._lines.put("")  # end of output

    def _readline(self, line: str, deadline: float) -> str:
        try:
            return self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            self.hung = True
            raise GtpClientError(f"engine {shlex.join(self.command)} did not answer {line.strip()[:80]!r} within "
                           f"{self.timeout:g} s") from None

    def send(self, line: str) -> str:
        if self.proc.poll() is not None:
            raise GtpClientError(f"engine {self.command[0]} has exited with code {self.proc.returncode}")
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(line.strip() + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            raise GtpClientError(f"engine {self.command[0]} does not read its input ({e})") from None
        lines = []
        deadline = time.monotonic() + self.timeout  # for the whole answer, however many lines it has
        size = 0
        while True:
            out = self._readline(line, deadline)
            if out == "":
                raise GtpClientError(f"engine {self.command[0]} closed its output after {line!r}")
            size += len(out)
            if size > MAX_ANSWER:
                self.hung = True
                raise GtpClientError(f"engine {shlex.join(self.command)} answered {line.strip()[:80]!r} with more than "
                               f"{MAX_ANSWER:,} characters: not GTP")
            out = out.rstrip("\r\n")
            if out == "" and lines:
                break
            if out == "" and not lines:
                continue
            lines.append(out)
        head, rest = lines[0], lines[1:]
        body = "\n".join([head[1:].lstrip()] + rest).strip()
        if head.startswith("?"):
            raise GtpClientError(f"{line.strip()!r}: {body}")
        if not head.startswith("="):
            raise GtpClientError(f"{line.strip()!r}: malformed response {head!r}")
        return body

    def close(self):
        if self.proc.poll() is None and self.hung:
            self.proc.kill()
            self.proc.wait()
        if self.proc.poll() is None:
            self.timeout = min(self.timeout, 5.0)
            try:
                self.send("quit")
            except (GtpClientError, BrokenPipeError, OSError):
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@dataclass(frozen=True)
class EngineSpec:
    """How to start one engine: a display name, the command line, and GTP commands to send first."""

    name: str
    command: tuple[str, ...]
    setup: tuple[str, ...] = ()


def gnugo_spec(level: int = 1, seed: int = 1) -> EngineSpec:
    """GnuGo with our rules: Chinese (area) counting, positional superko, suicide forbidden (its default).
    ``--capture-all-dead`` makes it remove dead stones before passing, as area scoring without a dead-stone
    agreement phase wants. The seed makes it deterministic."""
    cmd = gnugo_command(level=level, chinese_rules=True, extra=("--positional-superko", "--capture-all-dead"))
    return EngineSpec(f"gnugo-l{level}", tuple(cmd), (f"set_random_seed {seed}",))


def specmcts_spec(visits: int = 16, board: int = 9, model: str | None = None, seed: int = 0,
                  extra: tuple[str, ...] = (), name: str = "specmcts") -> EngineSpec:
    """Our engine as a subprocess (``python -m specmcts gtp``); ``model``: a checkpoint, 'shipped' or
    'fresh' (None: the engine's default, the net that ships for the board)."""
    cmd = [sys.executable, "-m", "specmcts", "gtp", "--board", str(board), "--visits", str(visits),
           "--seed", str(seed)]
    if model:
        cmd += ["--model", model]
    return EngineSpec(name, tuple(cmd) + tuple(extra))


def parse_command(text: str) -> tuple[str, ...]:
    return tuple(shlex.split(text))
