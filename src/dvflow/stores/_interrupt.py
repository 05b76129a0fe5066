"""Ending runs honestly when dvflow is interrupted (SIGTERM, Ctrl-C)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

from ._dvcstage import command_status, is_command_failure

KILLED_STATUSES = frozenset({-2, -15, 130, 143})


class Interrupted(BaseException):
    """Raised from the SIGTERM handler; a BaseException so DVC does not swallow it."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


def killed_by_signal(exc: BaseException) -> bool:
    """A command that died of SIGINT/SIGTERM (directly or through its shell)."""
    status = command_status(exc) if is_command_failure(exc) else None
    return status is not None and status in KILLED_STATUSES


def kill_children() -> None:
    import psutil

    children = psutil.Process().children(recursive=True)
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.terminate()
    _, alive = psutil.wait_procs(children, timeout=3)
    for child in alive:
        with contextlib.suppress(psutil.Error):
            child.kill()


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        kill_children()
        raise Interrupted("SIGTERM")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
