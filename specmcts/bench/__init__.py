"""Benchmarks: ``specmcts bench NAME [ARGS]`` runs ``specmcts.bench.NAME.main(ARGS)`` (each prints a table and
a one-line summary; ``--json`` where it writes one). They measure speed; the tests measure correctness."""
