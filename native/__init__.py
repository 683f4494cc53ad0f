"""numba kernels: Go rules on fixed-size arrays, feature planes, and the MCTS tree.

The only place where per-point and per-node loops live; everything here is ``@njit(cache=True)``.

numba's cache checks only the source file of the function it compiled, not the files of the functions it
inlined from (``tree.select_leaves`` compiles ``board.play`` into itself): after ``board.py`` changes, a cached
``select_leaves`` would go on running the old rules. So the kernels are cached in a folder of their own per
version of this package's sources (``native-<fingerprint>``, under ``NUMBA_CACHE_DIR`` when it is set, else
under the user's cache folder), set here before any kernel is defined.

numba also keys a cached kernel by its Python function's name, line and signature, not by its options: a serial
and a parallel kernel made from one function would load each other's compiled code, whichever was cached first
(the parallel one then runs on one thread). A second variant of a function is made from ``variant``'s copy.
"""
import hashlib
import os
import types
from pathlib import Path

import numba

HERE = Path(__file__).resolve().parent


def source_fingerprint(folder: Path = HERE) -> str:
    """A digest of every kernel source file (names and contents): it changes whenever any kernel does."""
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def cache_dir(folder: Path = HERE) -> str:
    """Where the kernels of these sources are cached."""
    base = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "specmcts", "numba")
    return os.path.join(base, "native-" + source_fingerprint(folder))


numba.config.CACHE_DIR = cache_dir()


def variant(py_func, suffix: str):
    """A copy of a kernel's Python function named ``<name><suffix>``, to compile a second variant of it (e.g.
    ``parallel=True``) that numba caches apart from the first."""
    clone = types.FunctionType(py_func.__code__, py_func.__globals__, py_func.__name__ + suffix,
                               py_func.__defaults__, py_func.__closure__)
    clone.__qualname__ = py_func.__qualname__ + suffix
    clone.__doc__ = py_func.__doc__
    clone.__module__ = py_func.__module__
    return clone
