"""Atomic file writes: a temporary name in the same folder, fsync, rename. A reader (the replay buffer, a
self-play worker looking for a new net, a GUI loading an SGF) sees the old file or the new one, never half.

Temporary names start with a dot and end in ``.tmp``; the replay buffer never reads them and ``specmcts run``
removes stale ones. ``os.open`` rather than ``tempfile.mkstemp``: mkstemp's 0600 mode would survive the rename.
"""
from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_open(path: str | os.PathLike):
    """``with atomic_open(path) as f: f.write(...)``: binary file that becomes ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path) as f:
        f.write(data)
