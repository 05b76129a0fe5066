"""Lineage graphs as text: a readable tree, JSON, Graphviz DOT and Mermaid."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from dvflow.core._printable import printable

from ._graph import Edge, Graph, Node

_SHAPES = {
    "data": "note",
    "code": "tab",
    "run": "box",
    "stage": "box",
    "source": "folder",
    "model": "component",
    "alias": "ellipse",
}


def to_json(graph: Graph) -> str:
    # Compact: json's C encoder does not indent, and an impact over ten
    # thousand runs is for programs (jq, a CI step) more than for eyes.
    return json.dumps(graph.to_dict(), sort_keys=True, separators=(",", ":"))


def describe(node: Node, refs: Mapping[tuple[str, ...], str] | None = None) -> str:
    """One line naming a node and what identifies it, control characters escaped.

    ``refs`` names long ref lists once (``refs A``) instead of on every node.
    """
    return printable(_describe(node, refs))


def _describe(node: Node, refs: Mapping[tuple[str, ...], str] | None) -> str:
    a = node.attrs
    if node.kind in ("data", "code"):
        names = tuple(a.get("refs") or ())
        shown = (refs or {}).get(names) or ", ".join(names)
        bits = [f"{node.kind} {node.label}", f"md5 {_short(a['md5'])}"]
        bits += [f"[{shown}]"] if shown else []
        if a.get("same_content_as"):
            bits += [f"same content as {', '.join(a['same_content_as'])}"]
        if a.get("also_produced_by"):
            others = ", ".join(_short_id(i) for i in a["also_produced_by"])
            bits += [f"same content also produced by {others}"]
        return "  ".join(bits)
    if node.kind == "run":
        name = f"run {node.label}" if a.get("stage") else "pipeline run"
        bits = [name, a["run_id"][:12], f"({a.get('status')})"]
        bits += _code_bits(a)
        bits += _params_bits(a.get("params_changed") or {})
        return "  ".join(bits)
    if node.kind == "stage":
        bits = [f"stage {node.label}", f"in {a['file']}"]
        bits += [f"commit {a['commit'][:8]}"] if a.get("commit") else []
        bits += ["(from Git history)"]
        bits += _params_bits(a.get("params_changed") or {})
        return "  ".join(bits)
    if node.kind == "source":
        source = a.get("source") or {}
        bits = [f"{a['how']} {node.label}"]
        bits += [f"commit {a['commit'][:8]}"] if a.get("commit") else []
        if source.get("url"):
            rev = source.get("rev_lock")
            bits += [f"from {source['url']}" + (f" @ {rev[:8]}" if rev else "")]
        return "  ".join(bits)
    if node.kind == "model":
        aliases = " ".join(f"@{x}" for x in a.get("aliases") or [])
        bits = [f"model {node.label}"] + ([aliases] if aliases else [])
        bits += [f"md5 {_short(a['md5'])}"] if a.get("md5") else []
        bits += _code_bits(a)
        return "  ".join(bits)
    return f"alias {node.label}  -> v{a.get('version')}  (in use)"


def _code_bits(a: dict[str, Any]) -> list[str]:
    if not a.get("commit"):
        return ["no commit"]
    return [f"commit {a['commit'][:8]}" + ("+dirty" if a.get("dirty") else "")]


def _params_bits(changed: dict[str, list[str | None]]) -> list[str]:
    if not changed:
        return []
    shown = ", ".join(f"{k} {old} -> {new}" for k, (old, new) in list(changed.items())[:4])
    more = f" (+{len(changed) - 4} more)" if len(changed) > 4 else ""
    return [f"params: {shown}{more}"]


def _short_id(node_id: str) -> str:
    kind, _, key = node_id.partition(":")
    return f"{'run' if kind == 'run' else 'stage entry'} {key[:12]}"


def _short(md5: str) -> str:
    return md5[:8] + (".dir" if md5.endswith(".dir") else "")


def to_tree(graph: Graph) -> str:
    """Indented tree from the target; a node met again is named, not repeated.

    An impact tree ends with what the target reaches, models first: the
    line a user reads when asking "which models did this data end up in?".
    """
    legend = _ref_legend(graph)
    lines = [f"refs {name}: {', '.join(names)}" for names, name in legend.items()]
    lines += list(_Tree(graph, legend).lines())
    if graph.direction == "downstream":
        lines += ["", summary(graph)]
    return "\n".join(lines)


# A ref list longer than this is printed once, in a legend, and named on nodes.
_REFS_INLINE = 3


def _ref_legend(graph: Graph) -> dict[tuple[str, ...], str]:
    """``{ref list: name}`` for each distinct long ref list, named A, B, ... in order met."""
    legend: dict[tuple[str, ...], str] = {}
    for node in graph.nodes.values():
        names = tuple(node.attrs.get("refs") or ())
        if len(names) > _REFS_INLINE and names not in legend:
            legend[names] = _letters(len(legend))
    return legend


def _letters(n: int) -> str:
    text = ""
    n += 1
    while n:
        n, rest = divmod(n - 1, 26)
        text = chr(ord("A") + rest) + text
    return text


def summary(graph: Graph) -> str:
    models = sorted(graph.of_kind("model"), key=lambda n: n.label)
    shown = [n.label + "".join(f" @{a}" for a in n.attrs.get("aliases") or []) for n in models]
    derived = [n for n in graph.of_kind("data") if n.id not in graph.roots]
    counts = (
        f"{len(derived)} derived data version(s), "
        f"{len(graph.of_kind('run'))} stage run(s), "
        f"{len(graph.of_kind('stage'))} stage(s) from Git history"
    )
    return f"reaches {counts}; model versions: {', '.join(shown) or 'none'}"


_EDGE_WORDS = {
    "restored-from": "restored from: ",
    "imported": "",
    "part-of": "",
    # Folder links read from the child's side: a folder above, or a file in it.
    "folder": "in folder: ",
    "file": "holds: ",
}


def _child_word(edge: Edge, child: str) -> str:
    """The edge's word as the child's line says it (folder links read both ways)."""
    if edge.kind not in ("contains", "contained-in"):
        return edge.kind
    folder = edge.source if edge.kind == "contains" else edge.target
    return "folder" if child == folder else "file"


class _Tree:
    def __init__(self, graph: Graph, legend: Mapping[tuple[str, ...], str]) -> None:
        self.graph = graph
        self.legend = {names: f"refs {name}" for names, name in legend.items()}
        self.children: dict[str, list[tuple[str, str]]] = {}
        for edge in graph.edges:
            parent, child = (
                (edge.target, edge.source)
                if graph.direction == "upstream"
                else (edge.source, edge.target)
            )
            self.children.setdefault(parent, []).append((child, _child_word(edge, child)))
        self.shown: set[str] = set()

    def lines(self) -> Iterator[str]:
        for root in self.graph.roots:
            yield from self._node(root, "", "", "")

    def _order(self, item: tuple[str, str]) -> tuple[str, str, int]:
        node = self.graph.nodes[item[0]]
        when = node.attrs.get("start_time") or node.attrs.get("commit_time") or 0
        return (node.kind, node.label, int(when))

    def _node(self, node_id: str, lead: str, branch: str, edge: str) -> Iterator[str]:
        # Recursive over depth only: lineage is as deep as the pipeline is long.
        again = node_id in self.shown
        text = _EDGE_WORDS.get(edge, "") + describe(self.graph.nodes[node_id], self.legend)
        yield f"{lead}{branch}{text}" + ("  (see above)" if again else "")
        if again:
            return
        self.shown.add(node_id)
        kids = sorted(self.children.get(node_id, []), key=self._order)
        child_lead = lead + ("    " if branch in ("", "└── ") else "│   ")
        for i, (kid, kind) in enumerate(kids):
            yield from self._node(kid, child_lead, "└── " if i == len(kids) - 1 else "├── ", kind)


def to_dot(graph: Graph) -> str:
    lines = ["digraph lineage {", "  rankdir=LR;", '  node [fontname="Helvetica"];']
    for node in graph.nodes.values():
        style = ', style="bold"' if node.id in graph.roots else ""
        lines.append(
            f'  "{_dot_escape(node.id)}" [label="{_dot_escape(describe(node))}", '
            f"shape={_SHAPES.get(node.kind, 'box')}{style}];"
        )
    for edge in graph.edges:
        lines.append(
            f'  "{_dot_escape(edge.source)}" -> "{_dot_escape(edge.target)}" '
            f'[label="{_dot_escape(edge.kind)}"];'
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def to_mermaid(graph: Graph) -> str:
    ids = {node_id: f"n{i}" for i, node_id in enumerate(graph.nodes)}
    lines = ["flowchart LR"]
    for node_id, node in graph.nodes.items():
        open_, close = ("([", "])") if node.kind in ("model", "alias") else ('["', '"]')
        label = _mermaid_escape(describe(node))
        if open_ == "([":
            lines.append(f'    {ids[node_id]}(["{label}"])')
        else:
            lines.append(f"    {ids[node_id]}{open_}{label}{close}")
    for edge in graph.edges:
        lines.append(f"    {ids[edge.source]} -->|{edge.kind}| {ids[edge.target]}")
    return "\n".join(lines) + "\n"


def _mermaid_escape(text: str) -> str:
    """Mermaid labels take HTML entities; quotes and brackets would end the label."""
    table = {"&": "#amp;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "|": "#124;"}
    return "".join(table.get(ch, ch) for ch in text)
