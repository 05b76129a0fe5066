"""What identifies each node of a lineage graph, read in bulk once the walk is done.

Runs: status, commit, params changed against the previous run of the stage;
stage entries: their first commit; data versions: the refs holding them,
other paths with the same bytes, producers the walk did not follow, and
whether DVC ever stored the path (data) or Git tracks it (code).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from ._graph import Graph, Node

_CHUNK = 500


def split_key(key: str) -> tuple[str, str]:
    """``(path, md5)`` of a data node's key (``md5:path``)."""
    md5, _, path = key.partition(":")
    return path, md5


class Attributes:
    """Reads what identifies each node, in bulk, once the walk is done."""

    def __init__(
        self, db: sqlite3.Connection, graph: Graph, also: Mapping[str, set[str]] | None = None
    ) -> None:
        self.db, self.graph = db, graph
        self.also = also or {}

    def _rows(
        self, query: str, keys: Iterable[str], *, twice: bool = False
    ) -> Iterator[tuple[Any, ...]]:
        keys = list(keys)
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            args = chunk * 2 if twice else chunk
            yield from self.db.execute(query.format(",".join("?" * len(chunk))), args)

    def _keys(self, kind: str) -> dict[str, Node]:
        return {n.id.partition(":")[2]: n for n in self.graph.nodes.values() if n.kind == kind}

    def fill(self) -> None:
        self._runs()
        self._entries()
        self._models()
        self._aliases()
        self._data()

    def _runs(self) -> None:
        nodes = self._keys("run")
        previous = self._previous_params(set(nodes))
        for row in self._rows(
            "SELECT run_id, stage, dvflow_status, status, git_commit, dirty, start_time, "
            "params, metrics, experiment_id, parent_id, result_commit, record_sha, kind "
            "FROM runs WHERE run_id IN ({})",
            nodes,
        ):
            run_id, stage, dstatus, status, commit, dirty, start, params = row[:8]
            node = nodes[run_id]
            node.label = stage or row[13] or run_id
            prev = previous.get(run_id)
            node.attrs = {
                "run_id": run_id,
                "stage": stage,
                "status": dstatus or str(status).lower(),
                "mlflow_status": status,
                "commit": commit,
                "dirty": bool(dirty),
                "result_commit": row[11],
                "experiment_id": row[9],
                "parent_run_id": row[10],
                "start_time": start,
                "record_sha256": row[12],
                "metrics": json.loads(row[8] or "{}"),
                "params_changed": _diff(json.loads(prev), json.loads(params or "{}"))
                if prev
                else {},
            }

    def _previous_params(self, run_ids: set[str]) -> dict[str, str | None]:
        """Each run's previous run of the same stage: its params, by one window query."""
        if not run_ids:
            return {}
        previous: dict[str, str | None] = {}
        for run_id, prev in self.db.execute(
            "SELECT run_id, LAG(params) OVER (PARTITION BY stage, experiment_id "
            "ORDER BY start_time, run_id) FROM runs WHERE kind='stage'"
        ):
            if run_id in run_ids:
                previous[run_id] = prev
        return previous

    def _entries(self) -> None:
        nodes = self._keys("entry")
        first: dict[str, tuple[str, int, str | None]] = {}
        for entry, sha, time, old in self._rows(
            "SELECT be.entry, c.sha, cm.time, c.old_blob FROM blob_entries be "
            "JOIN changes c ON c.blob = be.blob JOIN commits cm ON cm.sha = c.sha "
            "WHERE be.entry IN ({})",
            nodes,
        ):
            if entry not in first or (time, sha) < first[entry][1::-1]:
                first[entry] = (sha, time, old)
        rows = {
            row[0]: row[1:]
            for row in self._rows(
                "SELECT id, kind, file, name, cmd, params, source FROM entries WHERE id IN ({})",
                nodes,
            )
        }
        before = self._params_in_blobs({f[2] for f in first.values() if f[2]})
        for entry, node in nodes.items():
            kind, file, name, cmd, params, source = rows[entry]
            sha, time, old = first.get(entry, (None, None, None))
            node.attrs = {"entry": entry, "file": file, "commit": sha, "commit_time": time}
            if kind == "stage":
                prev = before.get((old, file, name)) if old else None
                node.kind, node.label = "stage", name
                node.attrs |= {
                    "stage": name,
                    "cmd": cmd,
                    "params_changed": _diff(json.loads(prev), json.loads(params or "{}"))
                    if prev
                    else {},
                }
            else:
                node.kind, node.label = "source", file
                node.attrs["how"] = "dvc import" if kind == "import" else "dvc add"
                if source:
                    node.attrs["source"] = json.loads(source)

    def _params_in_blobs(self, blobs: set[str]) -> dict[tuple[str, str, str], str]:
        return {
            (blob, file, name): params
            for blob, file, name, params in self._rows(
                "SELECT be.blob, e.file, e.name, e.params FROM blob_entries be "
                "JOIN entries e ON e.id = be.entry WHERE be.blob IN ({})",
                blobs,
            )
        }

    def _models(self) -> None:
        nodes = self._keys("model")
        aliases: dict[str, list[str]] = {}
        for key, alias in self._rows(
            "SELECT name || '/' || version, alias FROM aliases "
            "WHERE name || '/' || version IN ({}) ORDER BY alias",
            nodes,
        ):
            aliases.setdefault(key, []).append(alias)
        for key, name, version, run_id, md5, commit, record, source, tags in self._rows(
            "SELECT name || '/' || version, name, version, run_id, md5, git_commit, record_sha, "
            "source, tags FROM models WHERE name || '/' || version IN ({})",
            nodes,
        ):
            node = nodes[key]
            node.label = f"{name} v{version}"
            node.attrs = {
                "name": name,
                "version": version,
                "aliases": aliases.get(key, []),
                "run_id": run_id,
                "md5": md5,
                "commit": commit,
                "record_sha256": record,
                "source": source,
                "dirty": json.loads(tags or "{}").get("dvflow.git_dirty") == "true",
            }

    def _aliases(self) -> None:
        for key, node in self._keys("alias").items():
            name, _, alias = key.partition("@")
            row = self.db.execute(
                "SELECT version FROM aliases WHERE name=? AND alias=?", (name, alias)
            ).fetchone()
            node.attrs = {
                "name": name,
                "alias": alias,
                "version": row[0] if row else None,
                "in_use": True,
            }

    def _data(self) -> None:
        """Each data version's path, md5, other paths with its bytes, and refs holding it."""
        nodes = {n.id: n for n in self.graph.nodes.values() if n.kind == "data"}
        pairs = {node_id: split_key(node_id.partition(":")[2]) for node_id in nodes}
        md5s = sorted({md5 for _, md5 in pairs.values()})
        refs = self._refs(md5s, "out")
        # A version no DVC file names as an output (code, a folder of Git):
        # the refs whose dvc.lock files depend on it.
        unmade = sorted({md5 for pair in pairs.values() if pair not in refs for md5 in pair[1:]})
        refs |= {k: v for k, v in self._refs(unmade, "dep").items() if k not in refs}
        paths: dict[str, set[str]] = {}
        for path, md5 in self._rows(
            "SELECT path, md5 FROM entry_io WHERE md5 IN ({0}) UNION "
            "SELECT path, md5 FROM run_io WHERE md5 IN ({0})",
            md5s,
            twice=True,
        ):
            paths.setdefault(md5, set()).add(path)
        code = CodePaths(self.db)
        for node_id, node in nodes.items():
            path, md5 = pairs[node_id]
            names = refs.get((path, md5), set())
            # HEAD is only worth naming when no branch or tag holds the data.
            node.attrs = {
                "path": path,
                "md5": md5,
                "refs": sorted(names - {"HEAD"} or names),
                "same_content_as": sorted(paths.get(md5, set()) - {path}),
                "also_produced_by": sorted(self.also.get(node_id, ())),
            }
            if code.is_code(path):
                node.kind = "code"

    def _refs(self, md5s: Sequence[str], role: str) -> dict[tuple[str, str], set[str]]:
        refs: dict[tuple[str, str], set[str]] = {}
        short: dict[str, str] = {}
        for path, md5, names in self._rows(_REFS_QUERY[role], md5s):
            found = refs.setdefault((path, md5), set())
            for ref in names.split("\n"):
                if ref not in short:
                    short[ref] = _short_ref(ref)
                found.add(short[ref])
        return refs


_REFS_SELECT = (
    "SELECT path, md5, GROUP_CONCAT(ref, char(10)) FROM (SELECT DISTINCT io.path, "
    "io.md5, er.ref FROM entry_io io JOIN entry_refs er ON er.entry = io.entry "
)
_REFS_QUERY = {
    "out": _REFS_SELECT + "WHERE io.role = 'out' AND io.md5 IN ({})) GROUP BY path, md5",
    "dep": _REFS_SELECT + "WHERE io.role = 'dep' AND io.md5 IN ({})) GROUP BY path, md5",
}


class CodePaths:
    """Paths that DVC never stored: code and other files Git tracks, drawn as code.

    A dependency is data when it, a folder above it, or a path inside it was
    ever an output (of a stage, ``dvc add`` or a dvflow run).
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        self.outs = {
            str(row[0])
            for row in db.execute(
                "SELECT path FROM entry_io WHERE role='out' UNION "
                "SELECT path FROM run_io WHERE role='out'"
            )
        }
        self.above = {parent for out in self.outs for parent in _parents(out)}

    def is_code(self, path: str) -> bool:
        if path in self.outs or path in self.above:
            return False
        return not any(parent in self.outs for parent in _parents(path))


def _parents(path: str) -> Iterator[str]:
    while "/" in path:
        path = path.rpartition("/")[0]
        yield path


def _diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, list[str | None]]:
    return {
        key: [old.get(key), new.get(key)]
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    }


def _short_ref(ref: str) -> str:
    for prefix in ("refs/heads/", "refs/tags/", "refs/remotes/"):
        if ref.startswith(prefix):
            return ref[len(prefix) :]
    return ref
