"""A lineage graph as one self-contained HTML page (``lineage --html``, ``dvflow/lineage.html``).

Inline SVG and CSS, one inline script of a line (it marks the page drawn,
for a browser test): the page opens offline, from an e-mail or a CI
artifact, and names no server except the user's own tracking server. Jinja2
(MLflow brings it) fills the template with autoescape on: every name is
text, never markup.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from base64 import b64encode
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from dvflow.core._exceptions import DvflowError, ProjectError
from dvflow.core._printable import printable
from dvflow.core._redact import Redactor

from ._graph import Graph, Node
from ._render import summary
from ._svg import SVG_CSS, Drawing, to_svg

# Sets a DOM marker once the drawing is in the page: the number of nodes drawn.
MARKER_SCRIPT = (
    "(function(){var g=document.getElementById('lineage-graph');"
    "document.documentElement.setAttribute('data-graph-nodes',"
    "g?String(g.querySelectorAll('g.node').length):'0');})();"
)
# For a Content-Security-Policy that runs this script and no other.
MARKER_SCRIPT_HASH = "sha256-" + b64encode(hashlib.sha256(MARKER_SCRIPT.encode()).digest()).decode()


def mlflow_base(uri: str | None) -> str | None:
    """The tracking server's UI address for links: http(s) only, no credentials, no query."""
    if not uri or not uri.startswith(("http://", "https://")):
        return None
    parts = urlsplit(uri)
    host = parts.hostname or ""
    if not host:
        return None
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    base = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    return Redactor().redact(base)


def mlflow_run_url(base: str | None, experiment_id: str | None, run_id: str) -> str | None:
    if not base or not experiment_id:
        return None
    return f"{base}/#/experiments/{quote(experiment_id, safe='')}/runs/{quote(run_id, safe='')}"


def mlflow_model_url(base: str | None, name: str, version: str) -> str | None:
    if not base:
        return None
    return f"{base}/#/models/{quote(name, safe='')}/versions/{quote(version, safe='')}"


def anchor(index: int) -> str:
    return f"n{index}"


@dataclass(frozen=True)
class _Row:
    anchor: str
    kind: str
    label: str
    id: str
    facts: list[tuple[str, str]]
    link: str | None


def node_facts(node: Node) -> list[tuple[str, str]]:
    """A node's attributes as ``(key, text)`` pairs, control characters escaped."""
    facts = []
    for key, value in sorted(node.attrs.items()):
        if value in (None, "", [], {}):
            continue
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        facts.append((printable(key), printable(text)))
    return facts


def _node_link(node: Node, base: str | None) -> str | None:
    a = node.attrs
    if node.kind == "run" and a.get("run_id"):
        return mlflow_run_url(base, a.get("experiment_id"), str(a["run_id"]))
    if node.kind == "model" and a.get("name"):
        return mlflow_model_url(base, str(a["name"]), str(a.get("version") or ""))
    return None


def to_html(graph: Graph, *, command: str, tracking_uri: str | None = None) -> str:
    """The whole page. ``tracking_uri``: links to runs in the MLflow UI when it is a server."""
    from jinja2 import Environment, PackageLoader, select_autoescape
    from markupsafe import Markup

    from dvflow.core._version import __version__

    base = mlflow_base(tracking_uri)
    anchors = {node_id: anchor(i) for i, node_id in enumerate(graph.nodes)}
    drawing: Drawing = to_svg(graph, lambda node: "#" + anchors[node.id])
    rows = [
        _Row(
            anchors[n.id],
            n.kind,
            printable(n.label),
            printable(n.id),
            node_facts(n),
            _node_link(n, base),
        )
        for n in graph.nodes.values()
    ]
    edges = [
        {
            "source": printable(graph.nodes[e.source].label),
            "target": printable(graph.nodes[e.target].label),
            "kind": e.kind,
            "source_anchor": anchors[e.source],
            "target_anchor": anchors[e.target],
        }
        for e in graph.edges
        if e.source in anchors and e.target in anchors
    ]
    env = Environment(
        loader=PackageLoader("dvflow.trace", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    word = "Lineage" if graph.direction == "upstream" else "Impact"
    context: dict[str, Any] = {
        "title": f"{word} of {printable(graph.target)}",
        "summary": _summary(graph),
        "warnings": [printable(w) for w in graph.warnings],
        "svg": Markup(drawing.svg),  # noqa: S704 - built from escaped parts in _svg
        "svg_css": Markup(SVG_CSS),  # noqa: S704 - a constant
        "marker_script": Markup(MARKER_SCRIPT),  # noqa: S704 - a constant
        "shown": drawing.shown,
        "omitted": drawing.omitted,
        "rows": rows,
        "edges": edges,
        "command": printable(command),
        "version": __version__,
    }
    return env.get_template("lineage.html").render(context)


def _summary(graph: Graph) -> str:
    if graph.direction == "downstream":
        return summary(graph)
    counts: dict[str, int] = {}
    for node in graph.nodes.values():
        counts[node.kind] = counts.get(node.kind, 0) + 1
    return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "no nodes"


def write_lineage_html(
    graph: Graph,
    file: str | os.PathLike[str],
    *,
    command: str,
    path: str | os.PathLike[str] = ".",
    tracking_uri: str | None = None,
) -> str:
    """Write ``graph`` as a page to ``file``; says what it drew ("8 nodes").

    Links go to the runs in the MLflow UI when the project's store is a
    server; the credentials visible from the project are masked.
    """
    page = lineage_page(graph, command=command, path=path, tracking_uri=tracking_uri)
    try:
        Path(file).write_text(page, encoding="utf-8")
    except OSError as exc:
        raise ProjectError(
            f"cannot write {file}: {exc.strerror}",
            hint="Give --html a file in a folder you can write.",
        ) from None
    return f"{len(graph.nodes)} nodes, {len(graph.edges)} edges"


def lineage_page(
    graph: Graph,
    *,
    command: str,
    path: str | os.PathLike[str] = ".",
    tracking_uri: str | None = None,
) -> str:
    """``to_html`` for the project at ``path``: its store's links, its secrets masked."""
    from dvflow.core._config import load_config
    from dvflow.core._git import find_root
    from dvflow.core._redact import redactor_for
    from dvflow.core._roots import settings_root

    start = Path(path).resolve()
    try:
        root: Path | None = find_root(start)
    except DvflowError:
        root = None
    uri = tracking_uri
    if root is not None:
        with contextlib.suppress(DvflowError):
            uri = load_config(settings_root(start, root), tracking_uri=tracking_uri).tracking_uri
    redactor = redactor_for(root)
    if uri:
        parts = urlsplit(uri)
        redactor.add(x for x in (parts.password, parts.username) if x)
    return redactor.redact(to_html(graph, command=command, tracking_uri=uri))
