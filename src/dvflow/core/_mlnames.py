"""Metric and param names, and param values, as MLflow accepts them.

MLflow refuses a metric or param key with characters other than letters,
digits, ``_ - . / : space``, one that is not a normalised relative path, or
one longer than 250 characters; it refuses (or cuts) a param value longer
than 6000 characters. Such names come from users' metrics and params files,
and a refusal must not fail a stage that ran: the name is logged in a form
MLflow takes, and the run says so. The record keeps the names and values
as they are.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Iterable, Mapping

KEY_LIMIT = 250
PARAM_VALUE_LIMIT = 6000
_REFUSED_CHARS = re.compile(r"[^/\w.\- :]")


def mlflow_key(key: str) -> str:
    """``key`` as MLflow accepts a metric or param name (``key`` itself when it does)."""
    safe = _REFUSED_CHARS.sub("_", key)
    if not safe or posixpath.normpath(safe) != safe or safe.startswith(("/", "..")):
        safe = safe.replace("/", "_") or "_"
    if safe in (".", "..") or safe.startswith(".."):
        safe = "_" + safe
    if len(safe) > KEY_LIMIT:
        # Cut, with a digest of the whole name so two long names stay apart.
        digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:8]
        safe = safe[: KEY_LIMIT - 9] + "-" + digest
    return safe


def shown(name: str) -> str:
    """``name`` quoted; a long one by its start and its end."""
    return repr(name if len(name) <= 80 else f"{name[:50]}...{name[-20:]}")


def renamed_notices(kind: str, names: Iterable[str]) -> list[str]:
    """One notice for each name MLflow would refuse, naming what it is logged as."""
    notices = []
    for name in sorted(set(names)):
        key = mlflow_key(name)
        if key != name:
            why = f"longer than {KEY_LIMIT} characters" if len(name) > KEY_LIMIT else "refused"
            notices.append(
                f"{kind} {shown(name)}: MLflow does not take this name ({why}); "
                f"logged as {shown(key)} (the record keeps the name)"
            )
    return notices


def mlflow_params(params: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """``params`` as MLflow takes them, and a notice for each one changed."""
    notices = renamed_notices("param", params)
    logged: dict[str, str] = {}
    for name, value in params.items():
        if len(value) > PARAM_VALUE_LIMIT:
            notices.append(
                f"param {shown(name)}: its value is {len(value)} characters, MLflow keeps "
                f"{PARAM_VALUE_LIMIT}; logged cut (the record keeps the whole value)"
            )
        logged[mlflow_key(name)] = value[:PARAM_VALUE_LIMIT]
    return logged, notices
