"""Text from files and stores, made safe to print on a terminal."""

from __future__ import annotations

import logging
import re

# Control characters (C0, DEL, C1) and Unicode bidirectional overrides: a
# name read from a file or a store must not move the cursor, retitle or
# clear the terminal, or show text in another order than it has.
_OTHERS = "\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(f"[\x00-\x0a{_OTHERS}]")
_CONTROL_BUT_LINES = re.compile(f"[\x00-\x08{_OTHERS}]")  # keeps tabs and newlines


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, newlines: bool = False) -> str:
    """``text`` with its control characters written as escapes (``\\x1b``).

    For everything dvflow prints that comes from a file or a store (stage
    names, paths, messages quoting them); ``newlines`` keeps line breaks and
    tabs, for a message of several lines.
    """
    return (_CONTROL_BUT_LINES if newlines else _CONTROL).sub(_escape, text)


def _printable_record(record: logging.LogRecord) -> bool:
    """A logging filter: the record's message and arguments made printable."""
    if isinstance(record.msg, str):
        record.msg = printable(record.msg, newlines=True)
    if isinstance(record.args, tuple):
        record.args = tuple(
            printable(a, newlines=True) if isinstance(a, str) else a for a in record.args
        )
    return True


def escape_logs(*loggers: str) -> None:
    """Make the handlers of ``loggers`` (DVC's, which print) escape control characters."""
    for name in loggers:
        for handler in logging.getLogger(name).handlers:
            if _printable_record not in handler.filters:
                handler.addFilter(_printable_record)
