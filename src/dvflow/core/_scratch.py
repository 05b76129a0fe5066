"""Temporary folders that a killed dvflow leaves behind only until the next one starts.

``scratch("sync")`` is a ``TemporaryDirectory`` that also writes who made
it (this process id) into it. ``sweep()`` removes such folders whose process
is gone: ``kill -9`` runs no clean-up, so the next ``dvflow sync`` or
``dvflow run`` does it. Folders of live processes, and anything without
the owner file, are never touched.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PREFIX = "dvflow-scratch-"
OWNER_FILE = ".dvflow-owner"


@contextmanager
def scratch(purpose: str) -> Iterator[Path]:
    """A new temporary folder, removed on the way out (by the next sweep after a kill)."""
    folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{purpose}-"))
    try:
        (folder / OWNER_FILE).write_text(f"{os.getpid()}\n", encoding="utf-8")
        work = folder / "work"
        work.mkdir()
        yield work
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def sweep() -> list[Path]:
    """Remove the scratch folders of dvflow processes that are gone; returns them."""
    removed = []
    for folder in Path(tempfile.gettempdir()).glob(f"{PREFIX}*"):
        try:
            pid = int((folder / OWNER_FILE).read_text(encoding="utf-8").split()[0])
        except (OSError, ValueError, IndexError):
            continue
        if folder.is_symlink() or alive(pid):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def alive(pid: int) -> bool:
    """Is process ``pid`` still running (or not ours to ask)?"""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
