"""A lineage or impact graph as plain data, and its documented ``--json`` shape."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

Direction = Literal["upstream", "downstream"]
SCHEMA_VERSION = 2


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
