"""Helpers shared by test modules (imported as ``tests.helpers``; test modules do not import each other)."""
from __future__ import annotations

import os
import signal
import subprocess
import textwrap
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from native.features import NUM_PLANES


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


def write_shard(path: Path, n: int, tag: float = 0.0, board: int = 5, **override) -> Path:
    """A well-formed shard whose samples carry ``tag + i / 1000`` in ``value`` (to recognise them)."""
    rng = np.random.default_rng(int(tag * 1000) + n)
    policy = rng.random((n, board * board + 1)).astype(np.float32)
    policy /= policy.sum(1, keepdims=True)
    arrays = dict(
        features=rng.integers(0, 2, (n, NUM_PLANES, board, board)).astype(np.uint8),
        policy=policy,
        value=(tag + np.arange(n) / 1000.0).astype(np.float32) if tag < 1 else np.zeros(n, np.float32),
        board_size=np.int32(board), komi=np.float32(7.5), model_id=np.array("test"), version=np.int32(1),
    )
    arrays.update(override)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


def stub_engine(genmove: str, final_score_error: bool = False) -> str:
    """Python source of a minimal GTP engine: every ``genmove`` is answered ``genmove``, ``final_score`` with
    an error when ``final_score_error``, anything else with an empty success."""
    return textwrap.dedent(f"""
        import sys
        for line in sys.stdin:
            cmd = line.split()
            if not cmd:
                continue
            if cmd[0] == "quit":
                print("=\\n", flush=True)
                break
            if cmd[0] == "final_score" and {final_score_error!r}:
                print("? cannot score\\n", flush=True)
                continue
            answer = {genmove!r} if cmd[0] == "genmove" else ""
            print(f"= {{answer}}\\n", flush=True)
    """)


def wait_for(proc: subprocess.Popen, condition, what: str, limit_s: float = 300.0) -> None:
    """Poll ``condition`` (the command's progress on disk); a command that dies or never gets there fails the
    test (the deadline only turns a hang into a failure)."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"{proc.args[3] if len(proc.args) > 3 else proc.args} exited ({proc.returncode}) before {what}: {proc.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{proc.args[3] if len(proc.args) > 3 else proc.args} did not reach {what} within {limit_s:.0f} s")
        time.sleep(0.1)


# A 5x5 run small enough for CI: what the run, backend, Ray, learning and resume tests share; each names only
# what it changes (``toy_run``).
TOY_RUN = {
    "seed": 5,
    "game": {"board": 5},
    "net": {"blocks": 1, "channels": 16, "value_hidden": 16},
    "search": {"sims": 16, "leaves_per_tree": 8, "threads": 1},
    "evaluator": {"device": "cpu", "max_batch": 128, "cache_entries": 16384, "torch_threads": 1},
    "selfplay": {"concurrent": 8},
    "train": {"batch_size": 32, "min_samples": 64, "checkpoint_every": 5, "log_every": 5},
}


def toy_run(**changes) -> dict:
    """``TOY_RUN`` with ``changes``: a section given as a dict updates that section's keys, a value (``name``,
    ``seed``) replaces it."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in TOY_RUN.items()}
    for key, value in changes.items():
        if isinstance(value, dict):
            out[key] = {**out.get(key, {}), **value}
        else:
            out[key] = value
    return out


def pass_loving_evaluator(board: int, max_batch: int = 512):
    """A collapsed net, as a run can fall into: nearly all of its policy on the pass, and every position lost
    for the side to move. Deterministic (``HashEvaluator``'s rows, reshaped)."""
    from specmcts.engine.evaluator import HashEvaluator

    class PassLoving(HashEvaluator):
        def twin(self):
            return PassLoving(self.board_size, self.seed, self.max_batch, self.num_planes)

        def _forward(self, n: int) -> None:
            super()._forward(n)
            self._policy[:n] *= 0.001
            self._policy[:n, -1] += 0.999
            self._value[:n] = -0.9
            self._score[:n] = -7.5

    return PassLoving(board, seed=7, max_batch=max_batch)
