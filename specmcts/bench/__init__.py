"""Benchmarks: ``specmcts bench NAME [ARGS]`` runs ``specmcts.bench.NAME.main(ARGS)`` (each prints a table and
a one-line summary; ``--json`` where it writes one). They measure speed; the tests measure correctness."""


def too_many_threads(threads: int) -> str | None:
    """Why ``threads`` numba threads cannot run in a benchmark process, or None. The benchmarks pin numba to one
    thread when they load (``NUMBA_NUM_THREADS``, 1 unless set); ``Search`` would cap a larger
    ``search.threads`` silently, so a benchmark refuses it with this as its usage error."""
    import numba

    have = numba.config.NUMBA_NUM_THREADS
    if 1 <= threads <= have:
        return None
    return (f"{threads} thread(s): this benchmark runs numba with {have} thread(s) (NUMBA_NUM_THREADS, 1 unless "
            f"set): run it with NUMBA_NUM_THREADS={max(threads, 1)}")
