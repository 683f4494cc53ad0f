"""Running a ``specmcts`` command (or a peer program) from a benchmark and reading its one-line JSON summary."""
from __future__ import annotations

import json
import subprocess


def json_summary(cmd: list[str], what: str, stderr=subprocess.PIPE, **kwargs) -> dict:
    """Run ``cmd``, a command that ends by printing a one-line JSON summary (``specmcts ... --json``), and
    return that summary. A failure is a ``SystemExit`` naming ``what`` with its exit status and the last line
    of its stderr (``stderr``: a file to keep all of it instead)."""
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True, **kwargs)
    if proc.returncode != 0:
        tail = (proc.stderr or "").strip().splitlines() or ["see its log"]
        raise SystemExit(f"{what} failed ({proc.returncode}): {tail[-1]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
