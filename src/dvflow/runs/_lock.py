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

from dvflow.core._exceptions import LockedError

LOCK_FILE = Path(".dvflow") / "run.lock"
# In every stage command's environment: the work tree whose lock its run holds.
STAGE_ENV = "DVFLOW_RUN_ROOT"


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
        _check_no_leftover_stage(root)
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


def _check_no_leftover_stage(root: Path) -> None:
    """Refuse while a stage command of an earlier, killed run still runs here.

    ``kill -9`` of ``dvflow run`` releases the lock at once, but the stage
    command it started lives on and keeps writing outputs. Stage commands
    carry ``DVFLOW_RUN_ROOT``; finding one while holding the lock means its
    run is gone.
    """
    import psutil

    me = str(root)
    left: list[tuple[int, str]] = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if proc.pid == os.getpid() or proc.environ().get(STAGE_ENV) != me:
                continue
        except (psutil.Error, OSError):
            continue  # gone, or another user's: not one of ours
        left.append((proc.pid, " ".join(proc.info.get("cmdline") or [])[:80]))
    if not left:
        return
    # A shell and the script it started both carry the variable: name them
    # all, since killing the shell alone leaves the script writing.
    listed = "; ".join(f"PID {pid}, {command}" for pid, command in left)
    raise LockedError(
        root,
        f"a stage command of a killed run is still running: {listed}",
        hint=f"Wait for it to end, or stop it: kill {' '.join(str(pid) for pid, _ in left)}",
    )
