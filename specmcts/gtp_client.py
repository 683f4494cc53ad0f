"""Talk GTP v2 to an external engine (GnuGo, another specmcts) as a subprocess.

Used as a rules referee in tests, as an opponent by ``specmcts eval`` and by the GTP match tools.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

# Debian installs GnuGo in /usr/games, which is not on the default PATH.
GNUGO_FALLBACK_DIRS = ("/usr/games", "/usr/local/games")


class GTPError(RuntimeError):
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


class GTPEngine:
    """A GTP engine process. ``send('play b d4')`` returns the response text or raises GTPError."""

    def __init__(self, command: list[str], stderr=subprocess.DEVNULL):
        self.command = list(command)
        self.proc = subprocess.Popen(
            self.command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            bufsize=1,
        )

    def send(self, line: str) -> str:
        if self.proc.poll() is not None:
            raise GTPError(f"engine {self.command[0]} has exited with code {self.proc.returncode}")
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line.strip() + "\n")
        self.proc.stdin.flush()
        lines = []
        while True:
            out = self.proc.stdout.readline()
            if out == "":
                raise GTPError(f"engine {self.command[0]} closed its output after {line!r}")
            out = out.rstrip("\r\n")
            if out == "" and lines:
                break
            if out == "" and not lines:
                continue
            lines.append(out)
        head, rest = lines[0], lines[1:]
        body = "\n".join([head[1:].lstrip()] + rest).strip()
        if head.startswith("?"):
            raise GTPError(f"{line.strip()!r}: {body}")
        if not head.startswith("="):
            raise GTPError(f"{line.strip()!r}: malformed response {head!r}")
        return body

    def close(self):
        if self.proc.poll() is None:
            try:
                self.send("quit")
            except (GTPError, BrokenPipeError, OSError):
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
