"""Helpers shared by test modules (imported as ``tests.helpers``; test modules do not import each other)."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Callable


def ctrl_c_when(proc: subprocess.Popen, ready: Callable[[], bool], what: str, wait_s: float = 300.0
                ) -> tuple[str, str]:
    """A terminal's Ctrl-C (SIGINT to ``proc``'s whole process group: start it with ``start_new_session``)
    once ``ready()``; returns its (stdout, stderr). It must still be running when ``ready()`` turns true
    (else ``what`` ended too soon: a failure, not a pass), and it is killed if it outlives the test."""
    try:
        deadline = time.monotonic() + wait_s
        while not ready():
            assert proc.poll() is None and time.monotonic() < deadline, f"{what} ended or stalled"
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGINT)
        return proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
