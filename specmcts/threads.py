"""CPU threads, decided in one place for every process the project starts.

A process has two thread pools: torch's intra-op pool (the forward pass, the training step) and numba's (the
batch kernels of ``native.tree``, parallel over trees). Both are OpenMP pools, and an OpenMP thread that waits
spins by default. On a machine doing anything else the two pools and the other programs fight for the cores:
the shipped net's forward pass of one position took 143 ms with torch's defaults beside one busy process on
two cores, 3.9 ms with waiting threads asleep, 2.1 ms with one thread. So:

- ``prepare_environment()`` makes waiting OpenMP threads sleep (``OMP_WAIT_POLICY=PASSIVE``) unless the user
  set the variable. It must run before torch or numba load their OpenMP runtime: ``import specmcts`` calls it.
- ``plan()`` picks the counts. A process gets its share of the cores it may run on (its CPU affinity divided
  by the processes that share them). A process that searches runs batches too small for intra-op threads to
  pay, so torch gets one thread there; a process that only trains gets its share. numba gets the share: its
  kernels go parallel only for batches of many trees (``search.parallel_min_trees``).
- ``configure()`` applies a plan to this process: torch's pool at once, numba's count for ``Search``. The
  config keeps 0 ("decide"), so a process started from this one decides for its own share.

What the user sets wins: ``evaluator.torch_threads`` or ``search.threads`` above 0, and the environment
variables ``OMP_NUM_THREADS`` (torch) and ``NUMBA_NUM_THREADS`` (numba). ``specmcts bench threads`` measures
this machine, with and without other busy processes, and prints the settings to use.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

# Waiting OpenMP threads sleep instead of spinning: GNU OpenMP (torch's and numba's pools) reads
# OMP_WAIT_POLICY, Intel's (MKL builds) KMP_BLOCKTIME. Read once, when the runtime loads.
SLEEPING_WAITS = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}

SEARCH = "search"  # selfplay, gtp, analysis, eval, run's own process: a search's small forward passes
TRAIN = "train"  # large batches only (a trainer, the shared evaluator's process): intra-op threads pay
ROLES = (SEARCH, TRAIN)


def prepare_environment() -> None:
    """Sleeping waits for every OpenMP pool this process will load (a variable the user set is kept)."""
    for key, value in SLEEPING_WAITS.items():
        os.environ.setdefault(key, value)


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity: ``taskset``, a container's cpuset)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _env_int(name: str) -> int:
    try:
        return max(0, int(os.environ.get(name, "0")))
    except ValueError:
        return 0


@dataclass(frozen=True)
class ThreadPlan:
    torch: int  # torch's intra-op threads
    numba: int  # threads of the parallel batch kernels
    cores: int  # this process's share of the cores
    why: str  # one line: where the counts came from

    def describe(self) -> str:
        return f"threads: torch {self.torch}, numba {self.numba} ({self.why})"


def plan(cfg, role: str = SEARCH, processes: int = 1, cores: int | None = None) -> ThreadPlan:
    """The thread counts for one of ``processes`` processes sharing ``cores`` (default: this process's
    affinity) in ``role``. Never more threads than the share; the user's settings win."""
    if role not in ROLES:
        raise ValueError(f"thread role must be one of {', '.join(ROLES)}, got {role!r}")
    cores = cores or available_cores()
    share = max(1, cores // max(1, processes))
    why = [f"{share} of {cores} cores" + (f" for each of {processes} processes" if processes > 1 else "")]
    if cfg.evaluator.torch_threads > 0:
        torch_threads = cfg.evaluator.torch_threads
        why.append("evaluator.torch_threads")
    elif _env_int("OMP_NUM_THREADS"):
        torch_threads = _env_int("OMP_NUM_THREADS")
        why.append("OMP_NUM_THREADS")
    else:
        torch_threads = share if role == TRAIN else 1
    if cfg.search.threads > 0:
        numba_threads = cfg.search.threads
        why.append("search.threads")
    elif _env_int("NUMBA_NUM_THREADS"):
        numba_threads = min(share, _env_int("NUMBA_NUM_THREADS"))
        why.append("NUMBA_NUM_THREADS")
    else:
        numba_threads = share
    return ThreadPlan(torch=torch_threads, numba=numba_threads, cores=share, why="; ".join(why))


_current: ThreadPlan | None = None  # the plan this process applied (configure)


def configure(cfg, role: str = SEARCH, processes: int = 1, cores: int | None = None) -> ThreadPlan:
    """Plan and apply this process's threads: torch's pool is set now; numba's count is what ``Search``
    asks ``numba_threads`` for. The config is not changed (0 stays "decide"), so processes started from
    this one decide for their own share."""
    global _current
    prepare_environment()
    import torch

    thread_plan = plan(cfg, role, processes, cores)
    if torch.get_num_threads() != thread_plan.torch:
        torch.set_num_threads(thread_plan.torch)
    _current = thread_plan
    return thread_plan


def numba_threads(requested: int = 0) -> int:
    """Threads for a parallel batch kernel: ``requested`` (``search.threads``) when above 0, else this
    process's plan (its share of the cores when none was configured)."""
    import numba

    if requested <= 0:
        requested = _current.numba if _current is not None else available_cores()
    return max(1, min(requested, numba.config.NUMBA_NUM_THREADS))
