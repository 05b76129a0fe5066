"""Personal-data taint: what was made from a marked data version, through the lineage index.

The taint is ``impact``'s own downstream walk (``_walk.Walker``) from every
marked data version at once, then one pass over the graph it built: a node
is ``tainted`` when a path from a mark reaches it that does not go through a
declared sanitiser stage (``governance.sanitisers`` in dvflow.yaml). A
sanitiser's run is ``sanitiser``; what is made after it, and only through
sanitisers, is ``derived``: still known to come from the marked data, not
tainted. Nothing here imports MLflow or DVC.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

from dvflow.core._roots import project_roots

from ._graph import Graph, Node
from ._nodes import split_key

Status = str  # "marked" | "tainted" | "sanitiser" | "derived"
_STAGE_KINDS = ("run", "entry", "stage")


@dataclass
class Taint:
    """The downstream graph of the marks and each node's status in it."""

    graph: Graph
    status: dict[str, Status] = field(default_factory=dict)

    def nodes(self, kind: str, *statuses: Status) -> list[Node]:
        wanted = statuses or ("marked", "tainted")
        found = [
            n for n in self.graph.nodes.values() if n.kind == kind and self.status[n.id] in wanted
        ]
        return sorted(found, key=lambda n: (n.label, n.id))

    def data_versions(self, *statuses: Status) -> list[tuple[str, str]]:
        """``(path, md5)`` of the tainted data versions (marked ones included)."""
        return sorted(split_key(n.id.partition(":")[2]) for n in self.nodes("data", *statuses))

    def runs(self) -> list[Node]:
        """Stage runs (dvflow) and stage entries (Git history) that read tainted data."""
        return [n for kind in _STAGE_KINDS for n in self.nodes(kind)]

    def models(self, *statuses: Status) -> list[Node]:
        return self.nodes("model", *statuses)

    def tainted_aliases(self) -> list[tuple[str, str, str]]:
        """``(name, version, alias)`` of every alias pointing at a tainted model version."""
        return sorted(
            (str(m.attrs.get("name")), str(m.attrs.get("version")), str(alias))
            for m in self.models()
            for alias in m.attrs.get("aliases", [])
        )

    def is_tainted(self, path: str, md5: str) -> bool:
        return self.status.get(f"data:{md5}:{path}") in ("marked", "tainted")


def model_line(node: Node) -> str:
    """``wine-classifier v3 @production`` (aliases after the version)."""
    aliases = " ".join(f"@{a}" for a in node.attrs.get("aliases", []))
    return f"{node.label} {aliases}".rstrip()


def stage_of(node: Node) -> str:
    """The stage name a run or stage entry ran (``train``, ``sub/dvc.yaml:train`` -> ``train``)."""
    stage = str(node.attrs.get("stage") or node.label or "")
    return stage.rpartition(":")[2]


def compute_taint(
    db: sqlite3.Connection,
    marks: Iterable[tuple[str, str]],
    sanitisers: Collection[str] = (),
) -> Taint:
    """Walk downstream from the marked ``(path, md5)`` data versions and label every node."""
    from ._walk import Walker, data_key

    roots = sorted({f"data:{data_key(path, md5)}" for path, md5 in marks})
    graph = Walker(db, "downstream", "pii marks").walk(roots)
    return label(graph, roots, sanitisers)


def label(graph: Graph, roots: Sequence[str], sanitisers: Collection[str]) -> Taint:
    """Each node's status: a breadth-first pass over the walk's edges, stopping at sanitisers."""
    following: dict[str, list[str]] = {}
    for edge in graph.edges:
        following.setdefault(edge.source, []).append(edge.target)
    stops = {
        node_id
        for node_id, node in graph.nodes.items()
        if node.kind in _STAGE_KINDS and stage_of(node) in sanitisers
    }
    tainted = set(roots)
    frontier = list(roots)
    while frontier:
        nxt = []
        for node_id in frontier:
            if node_id in stops:
                continue  # it read tainted data; what it writes is clean by declaration
            for target in following.get(node_id, []):
                if target not in tainted:
                    tainted.add(target)
                    nxt.append(target)
        frontier = nxt
    status: dict[str, Status] = {}
    for node_id in graph.nodes:
        if node_id in roots:
            status[node_id] = "marked"
        elif node_id in stops and node_id in tainted:
            status[node_id] = "sanitiser"
        elif node_id in tainted:
            status[node_id] = "tainted"
        else:
            status[node_id] = "derived"
    return Taint(graph, status)


def project_taint(
    path: str | os.PathLike[str] = ".",
    *,
    tracking_uri: str | None = None,
    sync: bool | None = None,
    marks: Iterable[tuple[str, str]] | None = None,
) -> Taint:
    """The taint of the project at ``path``: from its committed marks (or ``marks``).

    Sanitisers come from ``governance.sanitisers`` in dvflow.yaml.
    """
    from dvflow.core._config import load_config
    from dvflow.core._governance import read_governance

    from ._queries import open_index

    root, project = project_roots(path)
    config = load_config(project, tracking_uri=tracking_uri)
    if marks is None:
        marks = [(m.path, m.md5) for m in read_governance(project).marks]
    index, _, warnings = open_index(root, tracking_uri=tracking_uri, sync=sync, project=project)
    try:
        taint = compute_taint(index.db, marks, set(config.governance.sanitisers))
    finally:
        index.close()
    taint.graph.warnings.extend(warnings)
    return taint
