"""Atomic file writes: a temporary name in the same folder, fsync, rename. A reader (the replay buffer, a
self-play worker looking for a new net, a GUI loading an SGF) sees the old file or the new one, never half.

Temporary names start with a dot, hold the writer's pid and end in ``.tmp``; the replay buffer never reads them,
and ``remove_stale_temporaries`` (at the start of ``run``, ``train`` and ``selfplay``) removes those of writers
that are gone (a ``kill -9``). ``os.open`` rather than ``tempfile.mkstemp``: mkstemp's 0600 mode would survive the rename.
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
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.filename is None:  # a failed write names no file (a full disk): say which one
            raise OSError(e.errno, f"writing {path}: {e.strerror}") from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temporaries(*folders: str | os.PathLike) -> int:
    """Remove the temporaries that writers cut short left in ``folders`` (their process is gone); a live
    writer's are kept. Returns how many were removed."""
    removed = 0
    for folder in folders:
        for p in Path(folder).glob(".*.tmp"):
            parts = p.name.rsplit(".", 3)  # .<name>.<pid>.<hex>.tmp
            try:
                pid = int(parts[-3])
            except (IndexError, ValueError):
                pid = -1
            if pid > 0 and _alive(pid):
                continue
            try:
                p.unlink()
                removed += 1
            except OSError:
                pass
    return removed


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path) as f:
        f.write(data)
