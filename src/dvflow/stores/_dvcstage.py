"""A stage command under DVC: its PATH, its exit status, and what DVC's log says of it.

DVC is imported only inside the functions that need it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator

_EXIT_STATUS = re.compile(r"exited with (-?\d+)")


def command_path() -> str:
    """The PATH DVC gives stage commands: the caller's, less what a pyenv shim put first."""
    if "PYENV_ROOT" not in os.environ:
        return os.environ.get("PATH", "")  # DVC changes it only under a pyenv shim
    from dvc.utils import fix_env

    return str(fix_env().get("PATH", ""))


def command_status(exc: BaseException) -> int | None:
    """The exit status named in DVC's StageCmdFailedError, if any."""
    match = _EXIT_STATUS.search(str(exc))
    return int(match.group(1)) if match else None


def is_command_failure(exc: BaseException) -> bool:
    from dvc.stage.exceptions import StageCmdFailedError

    return isinstance(exc, StageCmdFailedError)


class StageLogWatcher(logging.Handler):
    """Learn from DVC's own log what happened to a stage.

    DVC says "Running stage", "is cached - skipping run" or "didn't change";
    those three messages are the only place it tells ran / restored /
    up-to-date apart.
    """

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.status: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        message = record.msg if isinstance(record.msg, str) else ""
        if "is cached - skipping run" in message:
            self.status = "restored"
        elif message.startswith("Running stage"):
            self.status = "ran"
        elif message.startswith("Pulling data for"):  # --pull fetched the outputs
            self.status = "restored"
        elif "didn't change, skipping" in message and self.status is None:
            self.status = "up-to-date"

    @contextlib.contextmanager
    def attached(self) -> Iterator[StageLogWatcher]:
        logger = logging.getLogger("dvc")
        old_level = logger.level
        logger.addHandler(self)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
        try:
            yield self
        finally:
            logger.removeHandler(self)
            logger.setLevel(old_level)
