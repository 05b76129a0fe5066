"""Strict YAML reading that turns every parse problem into InvalidFileError."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ._exceptions import InvalidFileError

try:  # The C loader is 5-10x faster on large dvc.lock files.
    _Loader: type[yaml.SafeLoader] = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - pyyaml built without libyaml
    _Loader = yaml.SafeLoader


def load_yaml_text(text: str, path: Path | str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InvalidFileError(path, f"invalid YAML{where}: {problem}") from exc
    except (ValueError, TypeError, RecursionError) as exc:
        raise InvalidFileError(path, f"unreadable YAML: {exc}") from exc


def load_yaml_file(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidFileError(path, "not UTF-8 text") from exc
    except OSError as exc:
        raise InvalidFileError(path, f"cannot read: {exc.strerror}") from exc
    return load_yaml_text(text, path)
