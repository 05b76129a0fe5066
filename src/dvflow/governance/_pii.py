"""``dvflow pii mark|unmark|status`` and ``impact --pii``: personal-data marks and their taint.

A mark names one data version (a path at an md5: DVC's ``.dir`` md5 for a
tracked folder, or a file inside one, found in the folder's listing) and is
written to the committed ``dvflow.governance.yaml``. What the marks taint is
``trace/_taint``'s answer over the lineage index.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dvflow.core import _git
from dvflow.core._exceptions import InvalidArgumentError, TargetNotFoundError
from dvflow.core._governance import (
    MarkRequest,
    PiiMark,
    now_utc,
    read_governance,
    write_governance,
)
from dvflow.core._roots import project_roots
from dvflow.trace._graph import Graph
from dvflow.trace._taint import Taint, project_taint


@dataclass(frozen=True)
class PiiStatus:
    marks: tuple[PiiMark, ...]
    taint: Taint


def who(root: Path) -> str:
    """git's author name (environment, then config), as a commit would carry it."""
    ident = _git._git(root, "var", "GIT_AUTHOR_IDENT", ok_codes=(0, 128)).strip()
    return ident.rpartition("<")[0].strip() or "unknown"


_HEX = re.compile(r"^[0-9a-fA-F]+$")


def resolve_data(
    target: str,
    path: str | os.PathLike[str] = ".",
    *,
    tracking_uri: str | None = None,
    sync: bool | None = None,
) -> list[tuple[str, str]]:
    """``(path, md5)`` of the data versions ``PATH[@REV|@MD5]`` names (exit 5 when none)."""
    from dvflow.trace._lineage import resolve
    from dvflow.trace._queries import open_index

    root, project = project_roots(path)
    request = MarkRequest.parse(target)
    index, _, _ = open_index(root, tracking_uri=tracking_uri, sync=sync, project=project)
    try:
        md5 = request.md5 or _md5_by_prefix(index.db, root, request.path, request.rev)
        if md5 is not None:
            return [_known_version(index.db, target, request.path, md5)]
        found = resolve(index.db, root, target, Path(path).resolve())
    finally:
        index.close()
    pairs = sorted(_data_pair(node_id) for node_id in found if node_id.startswith("data:"))
    if not pairs:
        raise TargetNotFoundError(
            target, hint="Mark a data version: PATH, PATH@REV or PATH@MD5 of a DVC-tracked path."
        )
    return pairs


def _md5_by_prefix(db: sqlite3.Connection, root: Path, path: str, rev: str | None) -> str | None:
    """The md5 ``PATH@PREFIX`` names when PREFIX is no commit but starts one version's md5.

    ``storage`` and ``lineage`` show md5s cut to 8 or 12 characters; a commit
    of that name wins, as ``@REV`` says.
    """
    if not rev or len(rev) < 8 or not _HEX.match(rev) or _git.is_commit(root, rev):
        return None
    rows = db.execute(
        "SELECT md5 FROM entry_io WHERE path=?1 AND substr(md5, 1, ?3)=?2 UNION "
        "SELECT md5 FROM run_io WHERE path=?1 AND substr(md5, 1, ?3)=?2",
        (path.strip("/"), rev.lower(), len(rev)),
    ).fetchall()
    found = sorted({str(r[0]) for r in rows})
    if len(found) > 1:
        raise InvalidArgumentError(
            "md5", rev, f"it starts {len(found)} versions of {path}", "Give more of the md5."
        )
    return found[0] if found else None


def _data_pair(node_id: str) -> tuple[str, str]:
    md5, _, path = node_id.partition(":")[2].partition(":")
    return path, md5


def _known_version(db: sqlite3.Connection, target: str, path: str, md5: str) -> tuple[str, str]:
    """``(path, md5)`` when a DVC file or run, or a tracked folder's listing, names it."""
    path = path.strip("/")
    row = db.execute(
        "SELECT 1 FROM entry_io WHERE path=?1 AND md5=?2 UNION "
        "SELECT 1 FROM run_io WHERE path=?1 AND md5=?2 LIMIT 1",
        (path, md5),
    ).fetchone()
    if row is None:
        # A file inside a tracked folder: one of the folder's versions lists it.
        for folder, folder_md5 in db.execute(
            "SELECT DISTINCT path, md5 FROM (SELECT path, md5 FROM entry_io UNION ALL "
            "SELECT path, md5 FROM run_io) WHERE md5 LIKE '%.dir'"
        ):
            if (
                path.startswith(f"{folder}/")
                and db.execute(
                    "SELECT 1 FROM dir_files WHERE dir=? AND relpath=? AND md5=?",
                    (folder_md5, path[len(folder) + 1 :], md5),
                ).fetchone()
            ):
                return path, md5
        known = [
            str(r[0])
            for r in db.execute(
                "SELECT DISTINCT md5 FROM (SELECT path, md5 FROM entry_io UNION ALL "
                "SELECT path, md5 FROM run_io) WHERE path=? ORDER BY md5 LIMIT 5",
                (path,),
            )
        ]
        listed = f" (its known versions: {', '.join(known)})" if known else ""
        raise TargetNotFoundError(
            target,
            hint=f"No version of {path!r} has md5 {md5}{listed}; give PATH, PATH@REV "
            "or PATH@MD5 of a DVC-tracked path.",
        )
    return path, md5


def mark(
    target: str,
    *,
    basis: str,
    fields: Sequence[str] = (),
    path: str | os.PathLike[str] = ".",
    tracking_uri: str | None = None,
) -> list[PiiMark]:
    """Record that the data version(s) ``target`` names hold personal data."""
    if not basis.strip():
        raise InvalidArgumentError(
            "basis", basis, "it is empty", "Say why this data may be held (--basis TEXT)."
        )
    clean = tuple(sorted({f.strip() for f in fields if f.strip()}))
    root, project = project_roots(path)
    pairs = resolve_data(target, path, tracking_uri=tracking_uri)
    governance = read_governance(project)
    by, at = who(root), now_utc()
    made = [PiiMark(p, m, basis.strip(), clean, by, at) for p, m in pairs]
    for one in made:
        governance = governance.with_mark(one)
    write_governance(project, governance)
    return made


def unmark(
    target: str, *, path: str | os.PathLike[str] = ".", tracking_uri: str | None = None
) -> list[PiiMark]:
    """Remove the marks of ``target``: every version of PATH, or the one @REV/@MD5 names."""
    _, project = project_roots(path)
    governance = read_governance(project)
    request = MarkRequest.parse(target)
    if request.md5 is None and request.rev is None:
        named = {(m.path, m.md5) for m in governance.marks if m.path == request.path.strip("/")}
    elif request.md5 is not None:
        named = {(request.path.strip("/"), request.md5)}
    else:
        named = set(resolve_data(target, path, tracking_uri=tracking_uri))
    gone = [m for m in governance.marks if (m.path, m.md5) in named]
    if not gone:
        listed = ", ".join(f"{m.path}@{m.md5}" for m in governance.marks) or "none"
        raise TargetNotFoundError(target, hint=f"No such mark; the marks are: {listed}.")
    write_governance(project, governance.without_marks(named))
    return gone


def pii_status(
    path: str | os.PathLike[str] = ".",
    *,
    tracking_uri: str | None = None,
    sync: bool | None = None,
) -> PiiStatus:
    """Every mark and what it taints: data versions, runs, model versions (with aliases)."""
    _, project = project_roots(path)
    marks = read_governance(project).marks
    taint = project_taint(
        path, tracking_uri=tracking_uri, sync=sync, marks=[(m.path, m.md5) for m in marks]
    )
    return PiiStatus(marks, taint)


def impact_pii(
    target: str,
    path: str | os.PathLike[str] = ".",
    *,
    tracking_uri: str | None = None,
    sync: bool | None = None,
) -> tuple[Graph, Taint]:
    """``impact TARGET`` with each node's personal-data status (``attrs['pii']``)."""
    from dvflow.trace._queries import impact

    graph = impact(target, path, tracking_uri=tracking_uri, sync=sync)
    taint = pii_status(path, tracking_uri=tracking_uri, sync=False).taint
    for node_id, node in graph.nodes.items():
        status = taint.status.get(node_id)
        if status is not None:
            node.attrs["pii"] = status
    return graph, taint
