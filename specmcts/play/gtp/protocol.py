"""GTP v2 as text (https://www.lysator.liu.se/~gunnar/gtp/): one command per line, ``[id] name args``; the
answer is ``=[id] result`` or ``?[id] message``, ended by an empty line. Parsing of the arguments (colours,
numbers, vertices), line cleaning, answers, and the reader thread that lets a search stop when the next
command arrives (``LineQueue``)."""
from __future__ import annotations

import collections
import math
import os
import re
import threading


from games.go import BLACK, WHITE, gtp_to_action

PROTOCOL_VERSION = "2"
MAX_LINE = 1 << 16  # bytes of one command line; a longer one is answered "? command too long"
MAX_ANSWER_ECHO = 200  # characters of an error answer (which may quote the input)


class GtpError(Exception):
    """A command that cannot be executed: answered ``? message``, the engine carries on."""


# ----------------------------------------------------------------------------------------------
# Parsing


def parse_colour(token: str) -> int:
    t = token.lower()
    if t in ("b", "black"):
        return BLACK
    if t in ("w", "white"):
        return WHITE
    raise GtpError(f"syntax error (expected a colour b, w, black or white, got {token!r})")


def colour_letter(colour: int) -> str:
    return "B" if colour == BLACK else "W"


def parse_int(token: str, what: str, low: int | None = None, high: int | None = None) -> int:
    if not re.fullmatch(r"[+-]?[0-9]{1,18}", token):
        raise GtpError(f"syntax error ({what} must be an integer, got {token!r})")
    value = int(token)
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"{low if low is not None else '-inf'}..{high if high is not None else 'inf'}"
        raise GtpError(f"syntax error ({what} must be in {bounds}, got {value})")
    return value


def parse_float(token: str, what: str) -> float:
    try:
        value = float(token)
    except ValueError:
        raise GtpError(f"syntax error ({what} must be a number, got {token!r})") from None
    if not math.isfinite(value):
        raise GtpError(f"syntax error ({what} must be finite, got {token!r})")
    return value


def parse_vertex(size: int, token: str) -> int:
    """A board point or pass (GTP ``resign`` is not a move one can ``play``)."""
    try:
        action = gtp_to_action(size, token)
    except ValueError:
        raise GtpError(f"syntax error (invalid vertex {token!r} for a {size}x{size} board)") from None
    if action > size * size:
        raise GtpError(f"syntax error ({token!r} is not a move)")
    return action


def clean_line(raw: str) -> str:
    """GTP preprocessing: drop control characters but HT and LF, HT becomes a space, drop comments, trim."""
    text = "".join(" " if ch == "\t" else ch for ch in raw if ch == "\t" or ch == "\n" or not _is_control(ch))
    return text.split("#", 1)[0].strip()


def _is_control(ch: str) -> bool:
    o = ord(ch)
    return o < 32 or o == 127


def split_command(line: str) -> tuple[str | None, str, list[str]]:
    """``(id or None, command name, arguments)`` of a cleaned, non-empty line; the id is the leading
    unsigned integer, if any (an id alone leaves the name empty)."""
    tokens = line.split()
    ident = None
    if tokens and tokens[0].isdigit() and tokens[0].isascii():
        ident = tokens.pop(0)
    if not tokens:
        return ident, "", []
    return ident, tokens[0], tokens[1:]


class LineQueue:
    """Lines of a binary stream read by a daemon thread; ``None`` marks the end of input.

    A stream with a file descriptor is read with ``os.read``: a daemon thread blocked there holds no Python
    lock, so the interpreter can exit after ``quit`` while the thread still waits for input (blocked in a
    ``BufferedReader`` it would hold the buffer's lock and make the interpreter abort at shutdown)."""

    def __init__(self, stream):
        self._lines: collections.deque = collections.deque()
        self._ready = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), name="gtp-stdin", daemon=True)
        self._thread.start()

    def _put(self, line) -> None:
        with self._ready:
            self._lines.append(line)
            self._ready.notify_all()

    @staticmethod
    def _chunks(stream):
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):
            fd = None
        if fd is None:
            yield from stream
            return
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return
            yield chunk

    def _read(self, stream) -> None:
        pending = b""
        dropped = 0  # bytes of the current line beyond MAX_LINE, not kept
        try:
            for chunk in self._chunks(stream):
                if isinstance(chunk, str):
                    chunk = chunk.encode("utf-8", "surrogateescape")
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    self._put(self._line(line, dropped))
                    dropped = 0
                if len(pending) > MAX_LINE:  # a line without end in sight: keep its head only
                    dropped += len(pending) - MAX_LINE
                    pending = pending[:MAX_LINE]
        except (OSError, ValueError):
            pass
        finally:
            if pending or dropped:
                self._put(self._line(pending, dropped).rstrip("\n"))
            self._put(None)

    @staticmethod
    def _line(data: bytes, dropped: int) -> str:
        if dropped or len(data) > MAX_LINE:
            return TooLong(data[:64].decode("utf-8", "replace"), len(data) + dropped)
        return data.decode("utf-8", "replace") + "\n"

    def pending(self) -> bool:
        return bool(self._lines)

    def wait(self, timeout: float | None = None) -> bool:
        with self._ready:
            return self._ready.wait_for(lambda: bool(self._lines), timeout)

    def get(self) -> str | None:
        with self._ready:
            self._ready.wait_for(lambda: bool(self._lines))
            line = self._lines[0]
            if line is not None:  # the end-of-input mark stays for every later caller
                self._lines.popleft()
            return line


def arity(args: list[str], n: int) -> None:
    if len(args) != n:
        raise GtpError(f"syntax error (expected {n} argument{'s' if n != 1 else ''}, got {len(args)})")


def one_line(text: str, limit: int = MAX_ANSWER_ECHO) -> str:
    """``text`` on one line, at most ``limit`` characters (input echoed in an error stays short)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


class TooLong(str):
    """An input line longer than ``MAX_LINE`` bytes: only its head is kept (to read the command id)."""

    def __new__(cls, head: str, length: int):
        line = super().__new__(cls, head)
        line.length = length
        return line


def answer(tag: str, result: str) -> str:
    """``=id result`` + empty line; multi-line results keep their lines, never an empty one inside."""
    lines = [line.rstrip() for line in result.split("\n")]
    head, body = lines[0], [line for line in lines[1:] if line.strip()]
    first = f"={tag} {head}" if head else f"={tag}"
    return "\n".join([first] + body) + "\n\n"
