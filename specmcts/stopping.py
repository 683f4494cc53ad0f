"""What long commands share about stopping and about owning a run directory.

- ``RunLock``: an exclusive ``flock`` on ``<run>/run.lock``, taken by every command that writes checkpoints
  into a run directory (``specmcts run`` and ``specmcts train``): two of them in one directory would write
  checkpoints with the same names, one lineage over the other. The kernel releases it even on ``kill -9``.
- ``die_with_parent``: a child process that must not outlive the process that started it.
- ``GracefulStop``: the first SIGINT or SIGTERM asks the command to stop after the unit of work in hand (a
  training step, a self-play chunk, an eval move) and to keep everything finished; a second one stops at once
  (``KeyboardInterrupt``). Handlers are installed only in the main thread (signals are delivered there). The
  handler replaces an inherited SIG_IGN too: a non-interactive shell starts ``cmd &`` with SIGINT ignored, and
  Python then raises no ``KeyboardInterrupt`` at all.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

LOCK_NAME = "run.lock"


def die_with_parent() -> None:
    """Linux: this process gets SIGKILL when its parent dies (a self-play worker of a killed run, an engine
    whose GUI started it through a shell that was terminated): no orphan keeps running or holds pipes open."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class RunLock:
    """``with RunLock(run_dir):`` holds ``<run_dir>/run.lock``; RuntimeError when another process holds it."""

    def __init__(self, run_dir: str | Path, who: str = "specmcts"):
        self.path = Path(run_dir) / LOCK_NAME
        self.who = who
        self.fd = None

    def __enter__(self):
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(self.fd)
                raise RuntimeError(self.in_use_message()) from None
            try:  # the file we locked is still the one at the path (its last holder removes it on exit)
                if os.stat(self.path).st_ino == os.fstat(self.fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(self.fd)
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.getpid()} {self.who}\n".encode())
        return self

    def __exit__(self, *exc):
        try:  # no stale lock file after a clean exit or a Ctrl-C (a kill -9 leaves it, unlocked and harmless)
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self.fd)

    def in_use_message(self) -> str:
        holder = ""
        try:
            holder = self.path.read_text().split()[0]
        except (OSError, IndexError):
            pass
        return (f"{self.path.parent} is in use by another specmcts run or train" + (f" (pid {holder})" if holder else "")
                + f" (lock {self.path})")

    @classmethod
    def held(cls, run_dir: str | Path) -> str | None:
        """The in-use message when a live process holds ``run_dir``'s lock, else None (takes nothing)."""
        import fcntl

        lock = cls(run_dir)
        try:
            fd = os.open(lock.path, os.O_RDWR)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return lock.in_use_message()
        finally:
            os.close(fd)  # closing releases a lock this check took
        return None


@contextmanager
def notice_if_slow(message: str, after: float = 2.0):
    """Say ``message`` if the block is still running after ``after`` seconds (kernels compiling on a first
    run, a measurement at start): a long wait is never a silent one."""
    timer = threading.Timer(after, say, args=(message,))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def quiet_thread_errors() -> None:
    """A thread that dies of an OSError (TensorBoard's writer thread on a full disk) says so in one line
    instead of a traceback; the command itself then fails with its own one-line error. Other errors keep
    Python's report."""
    default = threading.excepthook

    def hook(args) -> None:
        if issubclass(args.exc_type, OSError):
            name = args.thread.name if args.thread is not None else "a thread"
            say(f"specmcts: {name} stopped: {args.exc_value}")
        else:
            default(args)

    threading.excepthook = hook


def say(message: str) -> None:
    """A line on stderr for the user while a progress bar may be drawn there: the bar is cleared first and
    redrawn below it (tqdm.write), so the line never lands on the bar's own line."""
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)


class GracefulStop:
    """``with GracefulStop(on_request) as stop:`` then check ``stop.requested`` between units of work.

    ``on_request()`` runs at the first signal (e.g. to print "stopping after the current step"); the second
    raises ``KeyboardInterrupt``."""

    def __init__(self, on_request: Callable[[], None] | None = None):
        self.on_request = on_request
        self.requested = False
        self._old: dict = {}

    def _handle(self, signum, _frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        if self.on_request is not None:
            self.on_request()

    def __enter__(self) -> "GracefulStop":
        if threading.current_thread() is threading.main_thread():
            self._old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old = {}
