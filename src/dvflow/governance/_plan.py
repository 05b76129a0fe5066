"""Plan files: what a gc would delete, written before anything is deleted.

JSON, sorted keys, 2-space indent::

    {"kind": "gc", "format": 1, "project": ".",
     "remote": {"name": ..., "url": <without credentials>, "versioned": bool},
     "objects": [{"md5", "path", "size", "version_id", "where"}, ...],
     "totals": {...}, "protected": [...], "options": {...}, ...,
     "plan_sha256": <sha256 of the canonical JSON of everything else>}

Objects are sorted by (where, path, version_id). The digest makes the plan
its own confirmation: ``apply --confirm SHA`` runs only the plan the user
read, and a plan edited since it was written no longer matches its digest.
Nothing in a plan depends on when it was made, so planning twice over the
same state gives the same ``plan_sha256``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dvflow.core._exceptions import ConfirmationError, InvalidFileError, PlanStaleError

PLAN_FORMAT = 1
_REQUIRED = ("kind", "format", "project", "remote", "objects", "totals", "plan_sha256")


def canonical(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def digest(data: Mapping[str, Any]) -> str:
    """The sha256 of the plan without its ``plan_sha256`` field."""
    body = {k: v for k, v in data.items() if k != "plan_sha256"}
    return hashlib.sha256(canonical(body)).hexdigest()


def sort_objects(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(objects, key=lambda o: (o["where"], o["path"], o.get("version_id") or ""))


def seal(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with its objects sorted and its ``plan_sha256`` set."""
    sealed = {**data, "objects": sort_objects(list(data["objects"]))}
    sealed["plan_sha256"] = digest(sealed)
    return sealed


def write_plan(data: Mapping[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, sort_keys=True, indent=2) + "\n", encoding="utf-8")
    return path


def read_plan(path: Path, kind: str) -> dict[str, Any]:
    """A plan file of ``kind``, refused when it is not one or was edited (exit 30)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InvalidFileError(
            path, "no such plan file", hint="Give the file 'plan' wrote."
        ) from exc
    except (OSError, ValueError) as exc:
        raise InvalidFileError(
            path, f"not a plan file ({exc})", hint=f"Make a new plan with 'dvflow {kind} plan'."
        ) from exc
    if not isinstance(data, dict) or any(key not in data for key in _REQUIRED):
        raise InvalidFileError(path, "not a plan file: fields are missing")
    if data["kind"] != kind or data["format"] != PLAN_FORMAT:
        raise InvalidFileError(
            path, f"a {data['kind']!r} plan of format {data['format']}, not a {kind!r} plan"
        )
    if digest(data) != data["plan_sha256"]:
        raise PlanStaleError(
            str(path),
            "it was edited after it was written (its sha256 no longer matches)",
            hint=f"Make a new plan ('dvflow {kind} plan') and review it.",
        )
    return data


def confirm(data: Mapping[str, Any], path: Path, given: str | None) -> None:
    """``--confirm`` must be the plan's sha256 (its first 12 characters are enough)."""
    sha = str(data["plan_sha256"])
    if not given or len(given) < 12 or not sha.startswith(given.lower()):
        raise ConfirmationError(str(path), given, str(data["kind"]))
