"""Lineage (upstream) and impact (downstream) graphs, answered from the index.

Nodes are data versions (one repo-relative path at one md5: the same bytes
under two paths are two nodes; Git-tracked dependencies are ``code``), stage
runs (MLflow), stage entries of committed ``dvc.lock`` files (where a
pipeline ran without dvflow), sources (``dvc add``/``dvc import``), model
versions and aliases. Edges point the way data flows: from what was used to
what was made; a file and the folder versions listing it are linked both ways.

Nothing here imports MLflow or DVC: a warm index answers in milliseconds.
"""

from __future__ import annotations

import contextlib
import posixpath
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from dvflow.core import _history
from dvflow.core._exceptions import GitError, InvalidArgumentError, TargetNotFoundError
from dvflow.core._git import rev_parse

from ._graph import Direction, Graph

_MD5 = re.compile(r"^[0-9a-f]{32}(\.dir)?$")


# -- resolving what the user typed ------------------------------------------------


def resolve(
    db: sqlite3.Connection,
    root: Path,
    target: str,
    cwd: Path | None = None,
    context: set[str] | None = None,
) -> list[str]:
    """The node ids ``target`` names (a model, alias, run, md5 or path[@rev]).

    Run ids and md5s may be shortened to a unique prefix of 7 or more
    characters, as the tree prints them. A path adds to ``context`` the
    entries of the DVC files it was read from (at ``rev`` or in the work
    tree): of several producers, those are the target's.
    """
    text = target.strip()
    if not text:
        raise InvalidArgumentError("target", target, "give a model, run id, path or md5")
    if text.startswith("models:/"):
        return [_resolve_model(db, text)]
    if _HEX_PREFIX.match(text):
        found = _by_prefix(db, text)
        if found and found.startswith("data:"):
            return _paths_of(db, found.partition(":")[2])
        if found:
            return [found]
    if _MD5.match(text):
        raise TargetNotFoundError(target)
    return [f"data:{md5}:{path}" for path, md5 in _resolve_path(db, root, text, cwd, context)]


def _paths_of(db: sqlite3.Connection, md5: str) -> list[str]:
    """A data node per path that had these bytes: content alone is not identity."""
    paths = {
        str(row[0])
        for row in db.execute(
            "SELECT path FROM entry_io WHERE md5 = ?1 UNION SELECT path FROM run_io WHERE md5 = ?1 "
            "UNION SELECT json_extract(tags, '$.\"dvflow.model_path\"') FROM models WHERE md5 = ?1",
            (md5,),
        )
        if row[0]
    }
    return [f"data:{md5}:{path}" for path in sorted(paths or {md5})]


_HEX_PREFIX = re.compile(r"^[0-9a-f]{7,32}(\.dir)?$")
_PREFIX_QUERIES = (
    ("run", "SELECT DISTINCT run_id FROM runs WHERE run_id >= ? AND run_id < ? LIMIT 3"),
    ("data", "SELECT DISTINCT md5 FROM entry_io WHERE md5 >= ? AND md5 < ? LIMIT 3"),
    ("data", "SELECT DISTINCT md5 FROM run_io WHERE md5 >= ? AND md5 < ? LIMIT 3"),
    ("data", "SELECT DISTINCT md5 FROM models WHERE md5 >= ? AND md5 < ? LIMIT 3"),
)


def _by_prefix(db: sqlite3.Connection, text: str) -> str | None:
    """The one run or data version whose id starts with ``text`` (None: no match)."""
    found: set[str] = set()
    for kind, query in _PREFIX_QUERIES:
        # A range on the indexed column: every id that starts with the prefix.
        found |= {f"{kind}:{row[0]}" for row in db.execute(query, (text, text + "~"))}
    if text.endswith(".dir"):
        found = {f for f in found if f.endswith(text)}
    if len(found) > 1:
        shown = ", ".join(sorted(f.partition(":")[2] for f in found)[:3])
        raise TargetNotFoundError(
            text, hint=f"{text!r} is ambiguous ({shown}...); give more characters."
        )
    return found.pop() if found else None


def _resolve_model(db: sqlite3.Connection, text: str) -> str:
    rest = text[len("models:/") :]
    name, alias = rest.rsplit("@", 1) if "@" in rest else (rest.rpartition("/")[0], "")
    versions = [
        str(row[0])
        for row in db.execute(
            "SELECT version FROM models WHERE name=? ORDER BY CAST(version AS INTEGER)", (name,)
        )
    ]
    if not versions:
        raise TargetNotFoundError(
            text,
            hint=f"No registered model {name!r} in the index; 'dvflow index --sync' re-reads "
            "the store.",
        )
    if alias:
        row = db.execute(
            "SELECT version FROM aliases WHERE name=? AND alias=?", (name, alias)
        ).fetchone()
        if not row:
            known = [r[0] for r in db.execute("SELECT alias FROM aliases WHERE name=?", (name,))]
            listed = ", ".join(f"@{a}" for a in sorted(known)) or "none"
            raise TargetNotFoundError(
                text, hint=f"Model {name!r} has no alias @{alias} (its aliases: {listed})."
            )
        return f"model:{name}/{row[0]}"
    version = rest.rpartition("/")[2]
    if version not in versions:
        raise TargetNotFoundError(text, hint=f"Model {name!r} has versions {', '.join(versions)}.")
    return f"model:{name}/{version}"


def _resolve_path(
    db: sqlite3.Connection, root: Path, text: str, cwd: Path | None, context: set[str] | None
) -> list[tuple[str, str]]:
    """``(path, md5)`` of ``path`` at ``rev`` (committed files), or in the work tree's DVC files.

    The path is taken from the repository root, or else from ``cwd`` when
    that is a folder inside the repository. A file inside a tracked folder
    is found in that folder's listing.
    """
    raw, _, rev = text.partition("@")
    candidates = [posixpath.normpath(raw)]
    if cwd is not None and cwd.resolve() != root.resolve():
        with contextlib.suppress(ValueError):
            inside = (cwd.resolve() / raw).relative_to(root.resolve())
            candidates.append(posixpath.normpath(inside.as_posix()))  # '../x' from a subfolder
    entries = _entries_at(root, rev, text) if rev else list(_worktree_entries(root))
    if context is not None:
        context.update(e.digest for e in entries)
    for path in candidates:
        outs = sorted({m for e in entries for p, m in e.outs if p == path})
        deps = sorted({m for e in entries for p, m in e.deps if p == path})
        if outs or deps:
            return [(path, m) for m in outs or deps]
    for path in candidates:
        held = _inside_folders(db, entries, path)
        if held:
            return held
    where = f"at {rev}" if rev else "in the work tree's dvc.lock or .dvc files"
    raise TargetNotFoundError(
        text,
        hint=f"No DVC-tracked path {candidates[0]!r} {where}; paths are relative to the repo "
        "root, or to the current folder (or -C's) inside it.",
    )


def _inside_folders(
    db: sqlite3.Connection, entries: list[_history.Entry], path: str
) -> list[tuple[str, str]]:
    """``(path, md5)`` of a file as the listings of the tracked folders holding it give it."""
    folders = {
        (p, m)
        for e in entries
        for p, m in (*e.outs, *e.deps)
        if m.endswith(".dir") and path.startswith(p + "/")
    }
    found = set()
    for folder, md5 in sorted(folders):
        row = db.execute(
            "SELECT md5 FROM dir_files WHERE dir = ? AND relpath = ?",
            (md5, path[len(folder) + 1 :]),
        ).fetchone()
        if row:
            found.add((path, str(row[0])))
    return sorted(found)


def _entries_at(root: Path, rev: str, text: str) -> list[_history.Entry]:
    try:
        commit = rev_parse(root, rev)
    except GitError:
        raise TargetNotFoundError(
            text, hint=f"No commit, branch or tag named {rev!r} in this repository."
        ) from None
    files = _history.tree_files(root, commit)
    blobs = _history.read_blobs(root, files.values())
    pipelines = _history.read_named(
        root, (f"{commit}:{_history.pipeline_path(p)}" for p in files if p.endswith("dvc.lock"))
    )
    return [
        e
        for p, b in files.items()
        for e in _history.parse_file(
            p, blobs.get(b, b""), pipelines.get(f"{commit}:{_history.pipeline_path(p)}")
        )
    ]


def _worktree_entries(root: Path) -> Iterator[_history.Entry]:
    from dvflow.core._git import _git

    listed = _git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    for rel in listed.split("\0"):
        if rel and (rel.endswith(".dvc") or rel.split("/")[-1] == "dvc.lock"):
            file = root / rel
            if file.is_file():
                pipeline = root / _history.pipeline_path(rel)
                beside = pipeline.read_bytes() if pipeline.is_file() else None
                yield from _history.parse_file(rel, file.read_bytes(), beside)


def build_graph(
    db: sqlite3.Connection,
    root: Path,
    target: str,
    direction: Direction,
    cwd: Path | None = None,
) -> Graph:
    """The lineage (``upstream``) or impact (``downstream``) graph of ``target``."""
    from ._walk import Walker

    context: set[str] = set()
    roots = resolve(db, root, target, cwd, context)
    graph = Walker(db, direction, target, context).walk(roots)
    graph.warnings.extend(tamper_warnings(db))
    return graph


def tamper_warnings(db: sqlite3.Connection) -> list[str]:
    """One warning per run of the store whose ``dvflow.io`` tag was rewritten (_reader).

    Every answer names them, not only those that reach the run: a rewritten
    tag may be what keeps a run out of the answer.
    """
    rows = db.execute("SELECT run_id, detail FROM tampered ORDER BY run_id").fetchall()
    shown = [
        f"run {run_id} was tampered with in the tracking store: {detail}; "
        f"'dvflow verify {run_id}' checks its record"
        for run_id, detail in rows[:10]
    ]
    if len(rows) > 10:
        shown.append(f"and {len(rows) - 10} more runs were tampered with in the tracking store")
    return shown
