"""Calling a kernel without numba's dispatch.

A call through a numba dispatcher types every argument first (``typeof`` of each array, of each field of a
record of arrays) to choose the compiled version: 12.8 us per ``batch.prepare_batch`` call, whose arguments
hold some thirty arrays, against 4.3 us for the compiled version called directly (quiet core, 9x9). A batch
makes two such calls, so at a few leaves a batch the dispatch was a third of the CPU's share.

``Compiled`` keeps the compiled version per key the caller chooses. The caller promises that the arguments
of calls under one key have the same numba types (dtype, dimensions, layout of every array): its own buffers,
allocated once. The compiled version does not check them.
"""
from __future__ import annotations


class Compiled:
    """A kernel's compiled versions, by the caller's key; ``call(key, *args)`` runs the one for ``key``,
    compiling it (or loading it from numba's cache) on the first call with that key."""

    def __init__(self, kernel):
        self.kernel = kernel
        self._entry: dict = {}

    def entry(self, key, args: tuple):
        entry = self._entry.get(key)
        if entry is None:
            entry = self.kernel.compile(tuple(self.kernel.typeof_pyval(a) for a in args))
            self._entry[key] = entry
        return entry

    def call(self, key, *args):
        entry = self._entry.get(key)
        if entry is None:
            entry = self.entry(key, args)
        return entry(*args)
