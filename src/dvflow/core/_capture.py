"""Keep the tail of everything written to file descriptor 2.

Stage commands inherit dvflow's stderr, so the only way to keep what a
failing command said, while still showing it live, is to put a pipe on fd 2
and copy it through.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator
from types import TracebackType

TAIL_BYTES = 64 * 1024
_JOIN_TIMEOUT_S = 5.0


class StderrTail:
    def __init__(self, limit: int = TAIL_BYTES) -> None:
        self.limit = limit
        self._buffer = bytearray()
        self._saved = -1
        self._thread: threading.Thread | None = None

    @property
    def text(self) -> str:
        return bytes(self._buffer).decode("utf-8", errors="replace")

    def __enter__(self) -> StderrTail:
        sys.stderr.flush()
        self._saved = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
        self._thread = threading.Thread(target=self._pump, args=(read_end,), daemon=True)
        self._thread.start()
        return self

    def _pump(self, read_end: int) -> None:
        try:
            while chunk := os.read(read_end, 65536):
                os.write(self._saved, chunk)
                self._buffer += chunk
                if len(self._buffer) > self.limit:
                    del self._buffer[: len(self._buffer) - self.limit]
        finally:
            os.close(read_end)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        if self._thread is not None:
            # A daemon a stage left behind may hold the pipe open; don't wait for it.
            self._thread.join(_JOIN_TIMEOUT_S)
            if self._thread.is_alive():
                return  # the pump still writes to the saved fd: leave it open
        os.close(self._saved)


@contextlib.contextmanager
def logger_level(name: str, level: int) -> Iterator[logging.Logger]:
    """Set one logger's level for a block, then put the old one back."""
    logger = logging.getLogger(name)
    old = logger.level
    logger.setLevel(level)
    try:
        yield logger
    finally:
        logger.setLevel(old)
