"""A lineage graph as an SVG drawing, laid out here: no JavaScript, no network.

Columns are the distance from the target (the roots), so data flows left
to right: an upstream graph ends in the target on the right, an impact
starts from it on the left. Within a column, nodes sit near the mean row of
their neighbours in the column drawn before (one barycentre pass), which
keeps most edges short. Every name is escaped: it comes from files and
stores. A graph larger than ``max_nodes`` is cut to the nodes nearest the
target and says how many it left out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from html import escape

from dvflow.core._printable import printable

from ._graph import Graph, Node

NODE_W, NODE_H = 230, 46
COL_GAP, ROW_GAP = 90, 18
MARGIN = 16
MAX_NODES = 300
MIN_SCALE = 0.7  # the smallest a drawing shrinks to fit the page's width
_LABEL_CHARS = 30

Href = Callable[[Node], str | None]


@dataclass(frozen=True)
class Drawing:
    """The SVG text, how many nodes it shows, and how many it left out."""

    svg: str
    shown: int
    omitted: int


def _depths(graph: Graph) -> dict[str, int]:
    """Each node's distance from the roots, walking against the flow (upstream) or with it."""
    step: dict[str, list[str]] = {}
    for edge in graph.edges:
        a, b = (
            (edge.target, edge.source)
            if graph.direction == "upstream"
            else (edge.source, edge.target)
        )
        step.setdefault(a, []).append(b)
    depth = {root: 0 for root in graph.roots if root in graph.nodes}
    frontier = list(depth)
    while frontier:
        following = []
        for node_id in frontier:
            for other in step.get(node_id, ()):
                if other not in depth and other in graph.nodes:
                    depth[other] = depth[node_id] + 1
                    following.append(other)
        frontier = following
    deepest = max(depth.values(), default=0)
    for node_id in graph.nodes:  # nothing should be unreachable; draw it anyway
        depth.setdefault(node_id, deepest + 1)
    return depth


def layout(graph: Graph, max_nodes: int = MAX_NODES) -> tuple[dict[str, tuple[int, int]], int]:
    """``{node id: (column, row)}`` of the nodes drawn, and how many were left out."""
    depth = _depths(graph)
    order = sorted(graph.nodes, key=lambda i: (depth[i], graph.nodes[i].kind, graph.nodes[i].label))
    kept = set(order[:max_nodes])
    deepest = max((depth[i] for i in kept), default=0)
    column = {i: (deepest - depth[i] if graph.direction == "upstream" else depth[i]) for i in kept}
    neighbours: dict[str, list[str]] = {}
    for edge in graph.edges:
        if edge.source in kept and edge.target in kept:
            neighbours.setdefault(edge.source, []).append(edge.target)
            neighbours.setdefault(edge.target, []).append(edge.source)
    # Place columns in order of distance from the target, each after the one it hangs from.
    by_depth: dict[int, list[str]] = {}
    for node_id in order:
        if node_id in kept:
            by_depth.setdefault(depth[node_id], []).append(node_id)
    row: dict[str, int] = {}
    for level in sorted(by_depth):
        members = by_depth[level]

        def centre(node_id: str) -> float:
            placed = [row[n] for n in neighbours.get(node_id, ()) if n in row]
            return sum(placed) / len(placed) if placed else float("inf")

        members.sort(key=lambda i: (centre(i), graph.nodes[i].kind, graph.nodes[i].label))
        for index, node_id in enumerate(members):
            row[node_id] = index
    return {i: (column[i], row[i]) for i in kept}, len(graph.nodes) - len(kept)


def _short(text: str, limit: int = _LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def subtitle(node: Node) -> str:
    """The second line of a node's box: what identifies it."""
    a = node.attrs
    if node.kind in ("data", "code"):
        md5 = str(a.get("md5") or "")
        return f"{node.kind}  md5 {md5[:8]}{'.dir' if md5.endswith('.dir') else ''}"
    if node.kind == "run":
        what = "stage run" if a.get("stage") else "pipeline run"
        return f"{what}  {str(a.get('run_id') or '')[:8]}  {a.get('status') or ''}".rstrip()
    if node.kind == "model":
        aliases = " ".join(f"@{x}" for x in a.get("aliases") or [])
        return f"model  {aliases}".rstrip()
    if node.kind == "stage":
        return f"stage (Git)  {str(a.get('commit') or '')[:8]}".rstrip()
    if node.kind == "source":
        return f"{a.get('how') or 'source'}"
    return node.kind


def to_svg(
    graph: Graph, href: Href, max_nodes: int = MAX_NODES, marked: frozenset[str] = frozenset()
) -> Drawing:
    """The graph drawn as one ``<svg>`` element; ``href`` gives each node's link (or None).

    ``marked``: ids of nodes to outline (a search's matches).
    """
    places, omitted = layout(graph, max_nodes)
    columns = max((c for c, _ in places.values()), default=0) + 1
    rows = max((r for _, r in places.values()), default=0) + 1
    width = 2 * MARGIN + columns * NODE_W + (columns - 1) * COL_GAP
    height = 2 * MARGIN + rows * NODE_H + (rows - 1) * ROW_GAP

    def corner(node_id: str) -> tuple[int, int]:
        col, row = places[node_id]
        return MARGIN + col * (NODE_W + COL_GAP), MARGIN + row * (NODE_H + ROW_GAP)

    # The drawing shrinks to the page's width, so a pipeline's whole chain (and
    # the model at its end) shows without scrolling, but never below MIN_SCALE
    # of its size: text stays readable, and a wider graph scrolls.
    parts = [
        f'<svg id="lineage-graph" class="lineage fit" style="min-width: '
        f'{int(width * MIN_SCALE)}px" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'data-node-count="{len(places)}" data-omitted="{omitted}" role="img" '
        f'aria-label="lineage graph of {_attr(graph.target)}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" '
        'class="arrowhead"/></marker></defs>',
    ]
    for edge in graph.edges:
        if edge.source not in places or edge.target not in places:
            continue
        (sx, sy), (tx, ty) = corner(edge.source), corner(edge.target)
        x1, y1 = sx + NODE_W, sy + NODE_H // 2
        x2, y2 = tx, ty + NODE_H // 2
        if x2 <= x1:  # the same column or backwards (folder links): bow out to the right
            x2 = tx + NODE_W
            bend = max(40, abs(y2 - y1) // 3)
            path = f"M {x1} {y1} C {x1 + bend} {y1}, {x2 + bend} {y2}, {x2} {y2}"
        else:
            mid = (x1 + x2) // 2
            path = f"M {x1} {y1} C {mid} {y1}, {mid} {y2}, {x2} {y2}"
        parts.append(
            f'<path class="edge e-{_attr(edge.kind)}" d="{path}" marker-end="url(#arrow)">'
            f"<title>{_text(edge.kind)}</title></path>"
        )
    for node_id in places:
        node = graph.nodes[node_id]
        x, y = corner(node_id)
        root = " root" if node_id in graph.roots else ""
        root += " hit" if node_id in marked else ""
        box = (
            f'<g class="node n-{_attr(node.kind)}{root}" data-id="{_attr(node_id)}">'
            f"<title>{_text(node.label)}\n{_text(subtitle(node))}\n{_text(node_id)}</title>"
            f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="6"/>'
            f'<text x="{x + 8}" y="{y + 18}" class="label">{_text(_short(node.label))}</text>'
            f'<text x="{x + 8}" y="{y + 36}" class="sub">{_text(_short(subtitle(node), 34))}</text>'
            "</g>"
        )
        link = href(node)
        parts.append(f'<a href="{_attr(link)}">{box}</a>' if link else box)
    parts.append("</svg>")
    return Drawing("".join(parts), len(places), omitted)


def _text(text: str) -> str:
    return escape(printable(str(text), newlines=True), quote=False)


def _attr(text: str) -> str:
    return escape(printable(str(text)), quote=True)


# The page's own style for the drawing: inline, so a saved page needs nothing else.
SVG_CSS = """
svg.lineage { font: 12px system-ui, sans-serif; background: #fff; }
svg.lineage.fit { max-width: 100%; height: auto; }
svg.lineage .node rect { fill: #f4f6f8; stroke: #5b6770; stroke-width: 1; }
svg.lineage .node.root rect { stroke-width: 3; }
svg.lineage .n-data rect { fill: #e8f1fb; stroke: #3572b0; }
svg.lineage .n-code rect { fill: #f1f1f1; stroke: #777; }
svg.lineage .n-run rect { fill: #fdf3e1; stroke: #b7791f; }
svg.lineage .n-stage rect { fill: #fbeee6; stroke: #a0522d; stroke-dasharray: 4 2; }
svg.lineage .n-model rect { fill: #e6f6ec; stroke: #2f855a; }
svg.lineage .n-alias rect { fill: #eef0fb; stroke: #5a67d8; }
svg.lineage .n-source rect { fill: #f3ecfa; stroke: #805ad5; }
svg.lineage .label { font-weight: 600; fill: #1a202c; }
svg.lineage .sub { fill: #4a5568; font-size: 11px; }
svg.lineage .edge { fill: none; stroke: #8a96a3; stroke-width: 1.3; }
svg.lineage .arrowhead { fill: #8a96a3; }
svg.lineage .node.hit rect { stroke: #d53f8c; stroke-width: 3; }
svg.lineage a:hover rect, svg.lineage a:focus rect { stroke-width: 3; }
"""
