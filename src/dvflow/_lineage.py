"""Lineage (upstream) and impact (downstream) graphs, answered from the index.

Nodes are data versions (by md5), stage runs (MLflow), stage entries of
committed ``dvc.lock`` files (where a pipeline ran without dvflow), sources
(``dvc add``/``dvc import``), model versions and aliases. Edges point the way
data flows: from what was used to what was made.

Nothing here imports MLflow or DVC: a warm index answers in milliseconds.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
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


def build_graph(db: sqlite3.Connection, root: Path, target: str, direction: Direction) -> Graph:
    """The lineage (``upstream``) or impact (``downstream``) graph of ``target``."""
    from ._walk import Walker

    roots = resolve(db, root, target)
    return Walker(db, direction, target).walk(roots)
