"""One ``dvflow run`` per work tree at a time.

A second run in the same work tree would race the first for ``dvc.lock``,
the outputs and the MLflow runs. It stops at once, before it changes
anything, naming the run that holds the lock. The lock is an ``flock`` on
``.dvflow/run.lock``: the kernel releases it when its process ends, even by
``kill -9``, so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from ._exceptions import LockedError

LOCK_FILE = Path(".dvflow") / "run.lock"


@contextlib.contextmanager
def run_lock(root: Path) -> Iterator[None]:
    path = root / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    ignore = path.parent / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n", encoding="utf-8")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
            raise LockedError(root, holder or "another process") from None
        os.ftruncate(fd, 0)
        started = datetime.now(UTC).isoformat(timespec="seconds")
        os.pwrite(fd, f"PID {os.getpid()}, started {started}".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
