"""``dvflow.governance.yaml``: the committed personal-data marks and erasure tombstones.

::

    pii:                       # data versions that hold personal data
    - path: data/raw.csv
      md5: 3f2b...             # the version marked (a .dir md5 marks the whole folder)
      fields: [email, phone]   # optional: which fields
      basis: GDPR art. 6(1)(b) customer contract
      by: Ada                  # git user.name of who marked it
      at: '2026-11-30T06:50:00Z'
    erased:                    # objects deleted by 'dvflow erase apply'
    - md5: 3f2b...
      request: REQ-42          # the erasure request's id (never the person)
      at: '2026-11-30T07:10:00Z'

It sits beside ``dvflow.yaml`` and is committed: ``.dvflow/`` is ignored by
Git, and marks must travel with the repository. It holds no personal data:
paths, md5s, field names and request ids only. Reading and writing it here
needs neither DVC nor MLflow.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._exceptions import InvalidFileError

GOVERNANCE_FILE = "dvflow.governance.yaml"
_MD5 = re.compile(r"^[0-9a-f]{32}(\.dir)?$")
_HEADER = (
    "# dvflow governance: personal-data marks and erasure tombstones.\n"
    "# Written by 'dvflow pii mark|unmark' and 'dvflow erase apply'; commit it.\n"
    "# It holds no personal data: paths, md5s, field names and request ids only.\n"
)


@dataclass(frozen=True)
class PiiMark:
    """One data version recorded as holding personal data."""

    path: str
    md5: str
    basis: str
    fields: tuple[str, ...] = ()
    by: str = ""
    at: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "md5": self.md5}
        if self.fields:
            out["fields"] = list(self.fields)
        out |= {"basis": self.basis, "by": self.by, "at": self.at}
        return out


@dataclass(frozen=True)
class Tombstone:
    """One object deleted for an erasure request: what, for which request, when."""

    md5: str
    request: str
    at: str

    def to_dict(self) -> dict[str, Any]:
        return {"md5": self.md5, "request": self.request, "at": self.at}


@dataclass(frozen=True)
class Governance:
    """The whole file: marks and tombstones (empty when the file does not exist)."""

    marks: tuple[PiiMark, ...] = ()
    erased: tuple[Tombstone, ...] = ()

    def erased_md5s(self) -> dict[str, Tombstone]:
        return {t.md5: t for t in self.erased}

    def with_mark(self, mark: PiiMark) -> Governance:
        kept = tuple(m for m in self.marks if (m.path, m.md5) != (mark.path, mark.md5))
        return replace(self, marks=tuple(sorted((*kept, mark), key=_mark_key)))

    def without_marks(self, pairs: Iterable[tuple[str, str]]) -> Governance:
        gone = set(pairs)
        return replace(self, marks=tuple(m for m in self.marks if (m.path, m.md5) not in gone))

    def with_tombstones(self, stones: Sequence[Tombstone]) -> Governance:
        known = {(t.md5, t.request) for t in self.erased}
        new = [t for t in stones if (t.md5, t.request) not in known]
        return replace(self, erased=tuple(sorted((*self.erased, *new), key=_stone_key)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "pii": [m.to_dict() for m in self.marks],
            "erased": [t.to_dict() for t in self.erased],
        }


def _mark_key(mark: PiiMark) -> tuple[str, str]:
    return (mark.path, mark.md5)


def _stone_key(stone: Tombstone) -> tuple[str, str, str]:
    return (stone.at, stone.request, stone.md5)


def governance_path(project: Path) -> Path:
    return project / GOVERNANCE_FILE


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_governance(project: Path) -> Governance:
    """The project's marks and tombstones; an absent file is an empty one."""
    from ._yaml import load_yaml_file

    path = governance_path(project)
    if not path.is_file():
        return Governance()
    data = load_yaml_file(path)
    if data is None:
        return Governance()
    if not isinstance(data, dict) or set(data) - {"pii", "erased"}:
        raise InvalidFileError(path, "must be a mapping with 'pii' and 'erased' lists")
    marks = tuple(_mark(path, item) for item in _list(path, data, "pii"))
    stones = tuple(_stone(path, item) for item in _list(path, data, "erased"))
    return Governance(marks, stones)


def _list(path: Path, data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key) or []
    if not isinstance(value, list):
        raise InvalidFileError(path, f"'{key}' must be a list")
    return value


def _text(path: Path, item: Any, key: str, *, required: bool = True) -> str:
    value = item.get(key, "") if isinstance(item, dict) else None
    if value is None or not isinstance(value, str) or (required and not value):
        raise InvalidFileError(path, f"every entry needs '{key}' (text); found {item!r}")
    return value


def _md5(path: Path, item: Any) -> str:
    md5 = _text(path, item, "md5")
    if not _MD5.match(md5):
        raise InvalidFileError(path, f"{md5!r} is not a DVC md5")
    return md5


def _mark(path: Path, item: Any) -> PiiMark:
    fields = item.get("fields", []) if isinstance(item, dict) else []
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise InvalidFileError(path, f"'fields' must be a list of field names; found {item!r}")
    return PiiMark(
        path=_text(path, item, "path"),
        md5=_md5(path, item),
        basis=_text(path, item, "basis"),
        fields=tuple(fields),
        by=_text(path, item, "by", required=False),
        at=str(item.get("at", "")),
    )


def _stone(path: Path, item: Any) -> Tombstone:
    return Tombstone(
        md5=_md5(path, item),
        request=_text(path, item, "request"),
        at=str(item.get("at", "")) if isinstance(item, dict) else "",
    )


def write_governance(project: Path, governance: Governance) -> Path:
    """Write the file (atomically: a reader sees the old file or the new one)."""
    import yaml

    path = governance_path(project)
    body = yaml.safe_dump(governance.to_dict(), sort_keys=False, default_flow_style=False)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(_HEADER + body, encoding="utf-8")
    os.replace(tmp, path)
    return path


def is_md5(text: str) -> bool:
    return bool(_MD5.match(text))


@dataclass(frozen=True)
class MarkRequest:
    """What ``pii mark`` was asked: a path, optionally at a rev or md5."""

    path: str
    rev: str | None = None
    md5: str | None = None
    fields: tuple[str, ...] = field(default=())

    @classmethod
    def parse(cls, target: str, fields: Sequence[str] = ()) -> MarkRequest:
        path, _, at = target.partition("@")
        if at and is_md5(at):
            return cls(path, md5=at, fields=tuple(fields))
        return cls(path, rev=at or None, fields=tuple(fields))
