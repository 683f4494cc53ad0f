"""The thread plan (specmcts.threads): the defaults never oversubscribe, the user's settings win, and waiting
OpenMP threads sleep. That these defaults are fast beside busy processes is measured, not tested:
``specmcts bench threads --hogs 2``."""
import json
import os
import subprocess
import sys

import pytest

from specmcts.config import load_config
from specmcts.threads import SEARCH, TRAIN, numba_threads, plan


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)


def cfg_with(*overrides: str):
    return load_config(None, overrides=list(overrides))


def test_a_search_gets_one_torch_thread_and_its_share_for_the_kernels(clean_env):
    p = plan(cfg_with(), SEARCH, cores=8)
    assert (p.torch, p.numba, p.cores) == (1, 8, 8)
    p = plan(cfg_with(), SEARCH, processes=3, cores=8)  # three self-play processes on 8 cores
    assert (p.torch, p.numba, p.cores) == (1, 2, 2)


def test_a_trainer_gets_its_share_of_the_cores(clean_env):
    assert plan(cfg_with(), TRAIN, cores=8).torch == 8
    assert plan(cfg_with(), TRAIN, processes=4, cores=8).torch == 2
    assert plan(cfg_with(), TRAIN, processes=16, cores=8).torch == 1  # never 0


def test_no_default_oversubscribes(clean_env):
    for cores in (1, 2, 3, 16):
        for processes in (1, 2, 5):
            for role in (SEARCH, TRAIN):
                p = plan(cfg_with(), role, processes=processes, cores=cores)
                assert 1 <= p.torch <= max(1, cores // processes) and 1 <= p.numba <= max(1, cores // processes)


def test_the_users_settings_win(clean_env, monkeypatch):
    p = plan(cfg_with("evaluator.torch_threads=3", "search.threads=5"), SEARCH, cores=2)
    assert (p.torch, p.numba) == (3, 5) and "evaluator.torch_threads" in p.why and "search.threads" in p.why
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    monkeypatch.setenv("NUMBA_NUM_THREADS", "1")
    p = plan(cfg_with(), SEARCH, cores=8)
    assert (p.torch, p.numba) == (4, 1) and "OMP_NUM_THREADS" in p.why
    with pytest.raises(ValueError, match="thread role"):
        plan(cfg_with(), "bogus")


def test_numba_threads_never_exceed_numbas_pool():
    import numba

    assert numba_threads(10_000) == numba.config.NUMBA_NUM_THREADS
    assert numba_threads(1) == 1


def run_python(code: str, **env) -> str:
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "KMP_BLOCKTIME", "OMP_NUM_THREADS")}
    return subprocess.run([sys.executable, "-c", code], env=dict(base, **env), capture_output=True, text=True,
                          check=True, timeout=300).stdout


def test_importing_specmcts_makes_waiting_openmp_threads_sleep():
    code = "import os, specmcts, torch; print(os.environ['OMP_WAIT_POLICY'], os.environ['KMP_BLOCKTIME'])"
    assert run_python(code).split() == ["PASSIVE", "0"]
    assert run_python(code, OMP_WAIT_POLICY="ACTIVE").split() == ["ACTIVE", "0"]  # the user's choice is kept


def test_selfplay_with_the_defaults_runs_one_torch_thread_and_says_so(tmp_path):
    """The command a new user runs first: its process ends with one intra-op thread (not torch's default of
    one per core) and the summary says what was decided."""
    code = ("import json, sys, torch; from specmcts.cli import main; "
            f"rc = main(['selfplay', '--board', '5', '--games', '1', '--sims', '4', '--out', {str(tmp_path)!r}, "
            "'--set', 'net.blocks=1', '--set', 'net.channels=8', '--set', 'net.value_hidden=8', '--json']); "
            "print(json.dumps({'rc': rc, 'torch': torch.get_num_threads()}))")
    lines = run_python(code).strip().splitlines()
    summary, after = json.loads(lines[-2]), json.loads(lines[-1])
    assert after == {"rc": 0, "torch": 1}
    assert summary["threads"]["torch"] == 1 and summary["threads"]["numba"] >= 1
