"""Lineage (upstream) and impact (downstream) graphs, answered from the index.

Nodes are data versions (by md5), stage runs (MLflow), stage entries of
committed ``dvc.lock`` files (where a pipeline ran without dvflow), sources
(``dvc add``/``dvc import``), model versions and aliases. Edges point the way
data flows: from what was used to what was made.

Nothing here imports MLflow or DVC: a warm index answers in milliseconds.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypedDict

from . import _history
from ._exceptions import TargetNotFoundError
from ._git import rev_parse

Direction = Literal["upstream", "downstream"]
SCHEMA_VERSION = 1
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_MD5 = re.compile(r"^[0-9a-f]{32}(\.dir)?$")
_CHUNK = 500
_SOURCE_EDGES = {"import": "imported", "add": "added"}


class NodeJSON(TypedDict):
    id: str
    kind: str
    label: str
    attrs: dict[str, Any]


class EdgeJSON(TypedDict):
    source: str
    target: str
    kind: str


class GraphJSON(TypedDict):
    """The documented ``--json`` shape of ``dvflow lineage`` and ``dvflow impact``."""

    schema_version: int
    direction: str
    target: str
    roots: list[str]
    nodes: list[NodeJSON]
    edges: list[EdgeJSON]


@dataclass
class Node:
    id: str
    kind: str
    label: str
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    kind: str


@dataclass
class Graph:
    """A lineage or impact answer: ``roots`` are the nodes the target named."""

    direction: Direction
    target: str
    roots: list[str] = field(default_factory=list)
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def add(self, node: Node) -> bool:
        if node.id in self.nodes:
            return False
        self.nodes[node.id] = node
        return True

    def link(self, source: str, target: str, kind: str) -> None:
        edge = Edge(source, target, kind)
        if edge not in self._edge_set:
            self._edge_set.add(edge)
            self.edges.append(edge)

    @property
    def _edge_set(self) -> set[Edge]:
        if not hasattr(self, "_edges_seen"):
            self._edges_seen: set[Edge] = set()
        return self._edges_seen

    def to_dict(self) -> GraphJSON:
        return {
            "schema_version": SCHEMA_VERSION,
            "direction": self.direction,
            "target": self.target,
            "roots": list(self.roots),
            "nodes": [
                {"id": n.id, "kind": n.kind, "label": n.label, "attrs": n.attrs}
                for n in self.nodes.values()
            ],
            "edges": [{"source": e.source, "target": e.target, "kind": e.kind} for e in self.edges],
        }

    def of_kind(self, kind: str) -> list[Node]:
        return [n for n in self.nodes.values() if n.kind == kind]


# -- resolving what the user typed ------------------------------------------------


def resolve(db: sqlite3.Connection, root: Path, target: str) -> list[str]:
    """The node ids ``target`` names (a model, alias, run, md5 or path[@rev])."""
    text = target.strip()
    if text.startswith("models:/"):
        return [_resolve_model(db, text)]
    if _HEX32.match(text) and db.execute("SELECT 1 FROM runs WHERE run_id=?", (text,)).fetchone():
        return [f"run:{text}"]
    if _MD5.match(text):
        if _known_md5(db, text):
            return [f"data:{text}"]
        raise TargetNotFoundError(target)
    return [f"data:{md5}" for md5 in _resolve_path(db, root, text)]


def _resolve_model(db: sqlite3.Connection, text: str) -> str:
    rest = text[len("models:/") :]
    if "@" in rest:
        name, alias = rest.rsplit("@", 1)
        row = db.execute(
            "SELECT version FROM aliases WHERE name=? AND alias=?", (name, alias)
        ).fetchone()
        if not row:
            raise TargetNotFoundError(text, hint=f"Model {name!r} has no alias @{alias}.")
        return f"model:{name}/{row[0]}"
    name, _, version = rest.rpartition("/")
    if not db.execute(
        "SELECT 1 FROM models WHERE name=? AND version=?", (name, version)
    ).fetchone():
        raise TargetNotFoundError(
            text, hint="Give models:/NAME/VERSION or models:/NAME@ALIAS of a registered model."
        )
    return f"model:{name}/{version}"


def _known_md5(db: sqlite3.Connection, md5: str) -> bool:
    return any(
        db.execute(query, (md5,)).fetchone()
        for query in (
            "SELECT 1 FROM entry_io WHERE md5=? LIMIT 1",
            "SELECT 1 FROM run_io WHERE md5=? LIMIT 1",
            "SELECT 1 FROM models WHERE md5=? LIMIT 1",
        )
    )


def _resolve_path(db: sqlite3.Connection, root: Path, text: str) -> list[str]:
    """The md5 of ``path`` at ``rev`` (committed files), or in the work tree's DVC files."""
    path, _, rev = text.partition("@")
    path = path.rstrip("/")
    if rev:
        commit = rev_parse(root, rev)
        files = _history.tree_files(root, commit)
        blobs = _history.read_blobs(root, files.values())
        entries = [e for p, b in files.items() for e in _history.parse_file(p, blobs.get(b, b""))]
    else:
        entries = list(_worktree_entries(root))
    outs = sorted({m for e in entries for p, m in e.outs if p == path})
    deps = sorted({m for e in entries for p, m in e.deps if p == path})
    found = outs or deps
    if not found:
        where = f"at {rev}" if rev else "in the work tree's dvc.lock or .dvc files"
        raise TargetNotFoundError(
            text, hint=f"No DVC-tracked path {path!r} {where}; paths are relative to the repo root."
        )
    return found


def _worktree_entries(root: Path) -> Iterator[_history.Entry]:
    from ._git import _git

    listed = _git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    for rel in listed.split("\0"):
        if rel and (rel.endswith(".dvc") or rel.split("/")[-1] == "dvc.lock"):
            file = root / rel
            if file.is_file():
                yield from _history.parse_file(rel, file.read_bytes())


# -- walking ------------------------------------------------------------------------


class Walker:
    """Builds a Graph by walking the index from the target's nodes."""

    def __init__(self, db: sqlite3.Connection, direction: Direction, target: str) -> None:
        self.db = db
        self.graph = Graph(direction, target)
        self._run_outputs_by_stage: dict[str, set[frozenset[str]]] | None = None

    def walk(self, roots: Sequence[str], max_depth: int | None = None) -> Graph:
        self.graph.roots = list(roots)
        frontier = list(roots)
        for node_id in roots:
            self._ensure(node_id)
        depth = 0
        while frontier and (max_depth is None or depth < max_depth):
            step = self._upstream if self.graph.direction == "upstream" else self._downstream
            frontier = step(frontier)
            depth += 1
        self._decorate()
        return self.graph

    # Each step takes a frontier of node ids and returns the nodes it added.

    def _upstream(self, frontier: Sequence[str]) -> list[str]:
        new: list[str] = []
        by_kind = _group(frontier)
        for model in by_kind.get("model", []):
            new += self._model_sources(model)
        for alias in by_kind.get("alias", []):
            name, _, alias_name = alias.partition("@")
            row = self.db.execute(
                "SELECT version FROM aliases WHERE name=? AND alias=?", (name, alias_name)
            ).fetchone()
            if row:
                new += self._added(self._model_node(name, row[0]), f"alias:{alias}", "aliased-as")
        new += self._run_inputs(by_kind.get("run", []))
        new += self._entry_inputs(by_kind.get("entry", []))
        new += self._producers(by_kind.get("data", []))
        return new

    def _downstream(self, frontier: Sequence[str]) -> list[str]:
        new: list[str] = []
        by_kind = _group(frontier)
        for model in by_kind.get("model", []):
            name, _, version = model.partition("/")
            for (alias,) in self.db.execute(
                "SELECT alias FROM aliases WHERE name=? AND version=?", (name, version)
            ).fetchall():
                node = Node(
                    f"alias:{name}@{alias}",
                    "alias",
                    f"{name}@{alias}",
                    {"name": name, "alias": alias, "version": version},
                )
                new += self._added(f"model:{model}", node, "aliased-as")
        runs = by_kind.get("run", [])
        new += self._run_outputs(runs)
        new += self._models_of_runs(runs)
        new += self._entry_outputs(by_kind.get("entry", []))
        new += self._consumers(by_kind.get("data", []))
        return new

    def _added(self, source: str | Node, target: str | Node, kind: str) -> list[str]:
        """Link two nodes (adding the new one); returns the id of any node added."""
        added = []
        ids = []
        for item in (source, target):
            if isinstance(item, Node):
                if self.graph.add(item):
                    added.append(item.id)
                ids.append(item.id)
            else:
                ids.append(item)
        self.graph.link(ids[0], ids[1], kind)
        return added

    # -- upstream pieces

    def _model_sources(self, model: str) -> list[str]:
        name, _, version = model.partition("/")
        row = self.db.execute(
            "SELECT run_id, md5 FROM models WHERE name=? AND version=?", (name, version)
        ).fetchone()
        if not row:
            return []
        run_id, md5 = row
        if run_id and self.db.execute("SELECT 1 FROM runs WHERE run_id=?", (run_id,)).fetchone():
            return self._added(self._run_node(run_id), f"model:{model}", "registered-from")
        if md5:
            return self._added(self._data_node(md5), f"model:{model}", "registered-from")
        return []

    def _run_inputs(self, runs: Sequence[str]) -> list[str]:
        new: list[str] = []
        for run_id, path, md5 in self._rows(
            "SELECT run_id, path, md5 FROM run_io WHERE role='in' AND run_id IN ({})", runs
        ):
            new += self._added(self._data_node(md5, path), f"run:{run_id}", "consumed")
        for run_id, producer in self._rows(
            "SELECT run_id, produced_by FROM runs WHERE produced_by IS NOT NULL AND run_id IN ({})",
            runs,
        ):
            if self._run_exists(producer):
                new += self._added(self._run_node(producer), f"run:{run_id}", "restored-from")
        return new

    def _entry_inputs(self, entries: Sequence[str]) -> list[str]:
        new: list[str] = []
        for entry, path, md5 in self._rows(
            "SELECT entry, path, md5 FROM entry_io WHERE role='dep' AND entry IN ({})", entries
        ):
            new += self._added(self._data_node(md5, path), f"entry:{entry}", "consumed")
        return new

    def _producers(self, data: Sequence[str]) -> list[str]:
        """Who made each data version: a dvflow run, else a committed stage, else a source."""
        new: list[str] = []
        runs = _first_by(
            self._rows(
                "SELECT io.md5, r.run_id FROM run_io io JOIN runs r ON r.run_id = io.run_id "
                "WHERE io.role='out' AND r.kind='stage' AND io.md5 IN ({}) "
                "ORDER BY r.dvflow_status != 'ran', r.start_time",
                data,
            )
        )
        for md5, run_id in runs.items():
            new += self._added(self._run_node(run_id), f"data:{md5}", "produced")
        rest = [m for m in data if m not in runs]
        for md5, entry, kind in self._rows(
            "SELECT DISTINCT io.md5, e.id, e.kind FROM entry_io io JOIN entries e "
            "ON e.id = io.entry WHERE io.role='out' AND io.md5 IN ({})",
            rest,
        ):
            node = self._entry_node(entry)
            new += self._added(node, f"data:{md5}", _SOURCE_EDGES.get(kind, "produced"))
        return new

    # -- downstream pieces

    def _run_outputs(self, runs: Sequence[str]) -> list[str]:
        new: list[str] = []
        for run_id, path, md5 in self._rows(
            "SELECT run_id, path, md5 FROM run_io WHERE role='out' AND run_id IN ({})", runs
        ):
            new += self._added(f"run:{run_id}", self._data_node(md5, path), "produced")
        return new

    def _models_of_runs(self, runs: Sequence[str]) -> list[str]:
        new: list[str] = []
        for run_id, name, version in self._rows(
            "SELECT run_id, name, version FROM models WHERE run_id IN ({})", runs
        ):
            new += self._added(f"run:{run_id}", self._model_node(name, version), "registered-from")
        return new

    def _entry_outputs(self, entries: Sequence[str]) -> list[str]:
        new: list[str] = []
        for entry, path, md5 in self._rows(
            "SELECT entry, path, md5 FROM entry_io WHERE role='out' AND entry IN ({})", entries
        ):
            new += self._added(f"entry:{entry}", self._data_node(md5, path), "produced")
        return new

    def _consumers(self, data: Sequence[str]) -> list[str]:
        new: list[str] = []
        for md5, run_id in self._rows(
            "SELECT io.md5, io.run_id FROM run_io io JOIN runs r ON r.run_id = io.run_id "
            "WHERE io.role='in' AND r.kind='stage' AND io.md5 IN ({})",
            data,
        ):
            new += self._added(f"data:{md5}", self._run_node(run_id), "consumed")
        for md5, entry in self._rows(
            "SELECT DISTINCT md5, entry FROM entry_io WHERE role='dep' AND md5 IN ({})", data
        ):
            if not self._covered(entry):
                new += self._added(f"data:{md5}", self._entry_node(entry), "consumed")
        for md5, name, version in self._rows(
            "SELECT md5, name, version FROM models WHERE run_id IS NULL AND md5 IN ({})", data
        ):
            new += self._added(f"data:{md5}", self._model_node(name, version), "registered-from")
        return new

    # -- nodes

    def _ensure(self, node_id: str) -> None:
        kind, _, key = node_id.partition(":")
        if kind == "data":
            self._add_node(self._data_node(key))
        elif kind == "run":
            self._add_node(self._run_node(key))
        elif kind == "model":
            name, _, version = key.rpartition("/")
            self._add_node(self._model_node(name, version))

    def _add_node(self, node: Node) -> None:
        self.graph.add(node)

    def _data_node(self, md5: str, path: str | None = None) -> Node:
        if f"data:{md5}" in self.graph.nodes:
            return self.graph.nodes[f"data:{md5}"]
        if path is None:
            row = self.db.execute(
                "SELECT path FROM entry_io WHERE md5=? UNION ALL "
                "SELECT path FROM run_io WHERE md5=? LIMIT 1",
                (md5, md5),
            ).fetchone()
            path = row[0] if row else md5
        return Node(f"data:{md5}", "data", str(path), {"path": path, "md5": md5})

    def _run_node(self, run_id: str) -> Node:
        if f"run:{run_id}" in self.graph.nodes:
            return self.graph.nodes[f"run:{run_id}"]
        row = self.db.execute(
            "SELECT stage, dvflow_status, status, git_commit, dirty, start_time, params, "
            "metrics, experiment_id, parent_id, result_commit, record_sha, kind "
            "FROM runs WHERE run_id=?",
            (run_id,),
        ).fetchone()
        if not row:
            return Node(f"run:{run_id}", "run", run_id, {"run_id": run_id, "missing": True})
        stage, dstatus, status, commit, dirty, start, params, metrics, exp, parent, result = row[
            :11
        ]
        attrs: dict[str, Any] = {
            "run_id": run_id,
            "stage": stage,
            "status": dstatus or status.lower(),
            "mlflow_status": status,
            "commit": commit,
            "dirty": bool(dirty),
            "result_commit": result,
            "experiment_id": exp,
            "parent_run_id": parent,
            "start_time": start,
            "record_sha256": row[11],
            "metrics": json.loads(metrics or "{}"),
            "params_changed": self._changed_run_params(run_id, stage, exp, start, params),
        }
        return Node(f"run:{run_id}", "run", stage or row[12] or run_id, attrs)

    def _changed_run_params(
        self, run_id: str, stage: str | None, exp: str, start: int, params: str | None
    ) -> dict[str, list[str | None]]:
        prev = self.db.execute(
            "SELECT params FROM runs WHERE stage=? AND experiment_id=? AND start_time < ? "
            "AND run_id != ? AND kind='stage' ORDER BY start_time DESC LIMIT 1",
            (stage, exp, start, run_id),
        ).fetchone()
        return _diff(json.loads(prev[0]), json.loads(params or "{}")) if prev else {}

    def _entry_node(self, entry: str) -> Node:
        if f"entry:{entry}" in self.graph.nodes:
            return self.graph.nodes[f"entry:{entry}"]
        kind, file, name, cmd, params, source = self.db.execute(
            "SELECT kind, file, name, cmd, params, source FROM entries WHERE id=?", (entry,)
        ).fetchone()
        first = self.db.execute(
            "SELECT c.sha, cm.time, c.old_blob FROM blob_entries be "
            "JOIN changes c ON c.blob = be.blob JOIN commits cm ON cm.sha = c.sha "
            "WHERE be.entry=? ORDER BY cm.time, c.sha LIMIT 1",
            (entry,),
        ).fetchone()
        attrs: dict[str, Any] = {
            "entry": entry,
            "file": file,
            "commit": first[0] if first else None,
            "commit_time": first[1] if first else None,
        }
        if kind == "stage":
            attrs |= {
                "stage": name,
                "cmd": cmd,
                "params_changed": self._changed_entry_params(
                    file, name, first[2] if first else None, params
                ),
            }
            return Node(f"entry:{entry}", "stage", name, attrs)
        attrs |= {"how": "dvc import" if kind == "import" else "dvc add"}
        if source:
            attrs["source"] = json.loads(source)
        return Node(f"entry:{entry}", "source", file, attrs)

    def _changed_entry_params(
        self, file: str, name: str, old_blob: str | None, params: str
    ) -> dict[str, list[str | None]]:
        """Params against the same stage in the version of the file the commit replaced."""
        prev = self.db.execute(
            "SELECT e.params FROM blob_entries be JOIN entries e ON e.id = be.entry "
            "WHERE be.blob=? AND e.file=? AND e.name=?",
            (old_blob, file, name),
        ).fetchone()
        return _diff(json.loads(prev[0]), json.loads(params or "{}")) if prev else {}

    def _model_node(self, name: str, version: str) -> Node:
        node_id = f"model:{name}/{version}"
        if node_id in self.graph.nodes:
            return self.graph.nodes[node_id]
        row = self.db.execute(
            "SELECT run_id, md5, git_commit, record_sha, source, tags FROM models "
            "WHERE name=? AND version=?",
            (name, version),
        ).fetchone()
        aliases = [
            r[0]
            for r in self.db.execute(
                "SELECT alias FROM aliases WHERE name=? AND version=? ORDER BY alias",
                (name, version),
            ).fetchall()
        ]
        attrs: dict[str, Any] = {"name": name, "version": version, "aliases": aliases}
        if row:
            tags = json.loads(row[5] or "{}")
            attrs |= {
                "run_id": row[0],
                "md5": row[1],
                "commit": row[2],
                "record_sha256": row[3],
                "source": row[4],
                "dirty": tags.get("dvflow.git_dirty") == "true",
            }
        return Node(node_id, "model", f"{name} v{version}", attrs)

    # -- helpers

    def _covered(self, entry: str) -> bool:
        """Does a dvflow run of the same stage account for this committed entry?

        Then the run says more (status, params, metrics, commit) and the
        entry would only repeat it.
        """
        if self._run_outputs_by_stage is None:
            found: dict[str, dict[str, set[str]]] = {}
            for stage, run_id, md5 in self.db.execute(
                "SELECT r.stage, r.run_id, io.md5 FROM run_io io JOIN runs r "
                "ON r.run_id = io.run_id WHERE io.role='out' AND r.kind='stage'"
            ):
                found.setdefault(stage, {}).setdefault(run_id, set()).add(md5)
            self._run_outputs_by_stage = {
                stage: {frozenset(v) for v in runs.values()} for stage, runs in found.items()
            }
        row = self.db.execute("SELECT file, name FROM entries WHERE id=?", (entry,)).fetchone()
        outs = frozenset(
            r[0]
            for r in self.db.execute(
                "SELECT md5 FROM entry_io WHERE entry=? AND role='out'", (entry,)
            )
        )
        key = _history.Entry("stage", row[0], row[1]).stage_key
        return bool(outs) and outs in self._run_outputs_by_stage.get(key, set())

    def _run_exists(self, run_id: str) -> bool:
        return bool(self.db.execute("SELECT 1 FROM runs WHERE run_id=?", (run_id,)).fetchone())

    def _rows(self, query: str, keys: Sequence[str]) -> Iterator[tuple[Any, ...]]:
        keys = [k.partition(":")[2] if ":" in k else k for k in keys]
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            yield from self.db.execute(query.format(",".join("?" * len(chunk))), chunk)

    def _decorate(self) -> None:
        """Where each data version was committed: first commit and the refs holding it."""
        data = [n.attrs["md5"] for n in self.graph.of_kind("data")]
        refs: dict[str, set[str]] = {}
        for md5, ref in self._rows(
            "SELECT DISTINCT io.md5, rc.ref FROM entry_io io "
            "JOIN blob_entries be ON be.entry = io.entry JOIN changes c ON c.blob = be.blob "
            "JOIN ref_commits rc ON rc.sha = c.sha WHERE io.md5 IN ({})",
            data,
        ):
            refs.setdefault(md5, set()).add(_short_ref(ref))
        for node in self.graph.of_kind("data"):
            names = refs.get(node.attrs["md5"], set())
            # HEAD is only worth naming when no branch or tag holds the data.
            node.attrs["refs"] = sorted(names - {"HEAD"} or names)
        for node in self.graph.of_kind("alias"):
            node.attrs["in_use"] = True


def _group(ids: Iterable[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for node_id in ids:
        kind, _, key = node_id.partition(":")
        groups.setdefault(kind, []).append(key)
    return groups


def _first_by(rows: Iterable[tuple[Any, ...]]) -> dict[str, str]:
    first: dict[str, str] = {}
    for key, value in rows:
        first.setdefault(key, value)
    return first


def _diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, list[str | None]]:
    return {
        key: [old.get(key), new.get(key)]
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    }


def _short_ref(ref: str) -> str:
    for prefix in ("refs/heads/", "refs/tags/"):
        if ref.startswith(prefix):
            return ref[len(prefix) :]
    return ref


def build_graph(db: sqlite3.Connection, root: Path, target: str, direction: Direction) -> Graph:
    """The lineage (``upstream``) or impact (``downstream``) graph of ``target``."""
    roots = resolve(db, root, target)
    return Walker(db, direction, target).walk(roots)
