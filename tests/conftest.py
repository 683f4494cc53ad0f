"""Shared test setup.

Hypothesis profiles: the numba kernels compile on first call (seconds), so per-example deadlines are off.
``HYPOTHESIS_PROFILE=ci`` (what CI should set) also derandomizes, so a red CI run replays the same examples.
"""
import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Tests import their shared helpers as ``tests.helpers``: the repository root on sys.path makes that work
# from any working directory, not only from the root.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "ci", deadline=None, derandomize=True, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture
def gnugo() -> str:
    """GnuGo's path. CI installs it (.ci/run), so a missing binary fails the test; it never skips."""
    from specmcts.play.gtp_client import find_gnugo

    path = find_gnugo()
    if path is None:
        pytest.fail("gnugo is required and was not found on PATH or in /usr/games (apt-get install -y gnugo)",
                    pytrace=False)
    return path


@pytest.fixture(autouse=True)
def _thread_plan_per_test():
    """A test that runs a command in-process (``run_loop``, ``gtp``) applies that config's thread plan to this
    process (``specmcts.threads.configure``: torch's pool and the numba count ``Search`` asks for); undo it
    after the test, so that a later test's searches do not depend on which tests ran before."""
    import torch

    from specmcts import threads

    saved, torch_threads = threads._current, torch.get_num_threads()
    yield
    threads._current = saved
    if torch.get_num_threads() != torch_threads:
        torch.set_num_threads(torch_threads)
