"""The read-only web app of ``dvflow ui``: Starlette routes, Jinja2 pages, a JSON API.

Every page is a GET; nothing here writes to the store or the repository
(the lineage index, a cache, is brought up to date as the CLI's read
commands do). Templates autoescape every value; the SVG is built from
escaped parts; a Content-Security-Policy runs the one inline script of a
line and nothing else, and every body is passed through the redactor that
masks the credentials visible from the project (a tracking URI's password,
the DVC remotes').
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

from dvflow.core._exceptions import (
    DvflowError,
    InvalidArgumentError,
    NotFoundError,
    ProjectError,
)
from dvflow.core._printable import printable
from dvflow.core._redact import MASK, Redactor, redactor_for
from dvflow.trace._graph import Graph, Node
from dvflow.trace._html import MARKER_SCRIPT, MARKER_SCRIPT_HASH
from dvflow.trace._render import summary as impact_summary
from dvflow.trace._svg import MAX_NODES, SVG_CSS, to_svg

from . import _read
from ._read import Project

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

NODES_PER_PAGE = 200
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    f"script-src '{MARKER_SCRIPT_HASH}'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def q(value: object) -> str:
    """One URL path segment."""
    return quote(str(value), safe="")


def qpath(value: object) -> str:
    """A repository path in a URL, its slashes kept."""
    return quote(str(value), safe="/")


def node_href(node: Node) -> str | None:
    """The page of a node, or None for kinds without one (Git-history stages, sources)."""
    a = node.attrs
    if node.kind == "run" and a.get("run_id"):
        return f"/runs/{q(a['run_id'])}"
    if node.kind == "model" and a.get("name"):
        return f"/models/{qpath(a['name'])}/versions/{q(a.get('version') or '')}"
    if node.kind == "alias":
        name, _, _ = node.label.partition("@")
        if a.get("version") and name:
            return f"/models/{qpath(name)}/versions/{q(a['version'])}"
    if node.kind in ("data", "code") and a.get("md5") and a.get("path"):
        return f"/data/{q(a['md5'])}/{qpath(a['path'])}"
    return None


def _when(ms: object) -> str:
    if not isinstance(ms, (int, float)):
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class _Pages:
    """The templates and the redactor of one project's server."""

    def __init__(self, project: Project) -> None:
        from jinja2 import Environment, PackageLoader, select_autoescape

        self.project = project
        self.env = Environment(
            loader=PackageLoader("dvflow.web", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
        )
        self.env.filters.update(q=q, qpath=qpath, when=_when)
        self.redactor = _redactor(project)
        # The same secrets as they appear inside JSON text (quotes, backslashes escaped).
        self.json_redactor = Redactor(
            self.redactor.secrets | {json.dumps(x)[1:-1] for x in self.redactor.secrets}
        )
        self.name = printable(project.path.resolve().name)

    def html(self, template: str, context: dict[str, Any], status: int = 200) -> Response:
        from markupsafe import Markup
        from starlette.responses import HTMLResponse

        page = self.env.get_template(template).render(
            {
                "project_name": self.name,
                "marker_script": Markup(MARKER_SCRIPT),  # noqa: S704 - a constant
                "svg_css": Markup(SVG_CSS),  # noqa: S704 - a constant
                **context,
            }
        )
        return HTMLResponse(self.redactor.redact(page), status_code=status, headers=_HEADERS)

    def json(self, data: Any, status: int = 200) -> Response:
        from starlette.responses import Response

        # The known secrets, masked in the text (in their JSON-escaped form too): a
        # pattern pass over the 12 MB of a large impact would take seconds, and
        # what the store holds was masked when it was written.
        body = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
        masked = body
        for secret in sorted(self.json_redactor.secrets, key=len, reverse=True):
            masked = masked.replace(secret, MASK)
        if masked != body:
            try:
                json.loads(masked)
            except ValueError:  # a secret that was JSON syntax too: mask value by value
                masked = json.dumps(
                    self.redactor.redact_obj(data),
                    sort_keys=True,
                    separators=(",", ":"),
                    default=str,
                )
        body = masked
        return Response(body, status_code=status, media_type="application/json", headers=_HEADERS)

    def graph_context(self, graph: Graph, request: Request, api_url: str) -> dict[str, Any]:
        from markupsafe import Markup

        search = request.query_params.get("q", "").strip()
        wanted = search.lower()
        nodes = list(graph.nodes.values())
        if wanted:  # a search: the table lists the matches, the drawing outlines them
            nodes = [n for n in nodes if wanted in f"{n.label} {n.id}".lower()]
        marked = frozenset(n.id for n in nodes) if wanted else frozenset()
        drawing = to_svg(graph, node_href, MAX_NODES, marked)
        pages = max(1, math.ceil(len(nodes) / NODES_PER_PAGE))
        page = min(max(1, _int(request.query_params.get("page"), 1)), pages)
        rows = [
            {
                "kind": n.kind,
                "label": printable(n.label),
                "id": printable(n.id),
                "href": node_href(n),
            }
            for n in nodes[(page - 1) * NODES_PER_PAGE : page * NODES_PER_PAGE]
        ]
        others = [(k, v) for k, v in request.query_params.multi_items() if k != "page"]
        plain = [(k, v) for k, v in others if k != "q"]
        return {
            "graph": graph,
            "drawing": drawing,
            "drawing_svg": Markup(drawing.svg),  # noqa: S704 - built from escaped parts in _svg
            "node_rows": rows,
            "page": page,
            "pages": pages,
            "page_query": urlencode(others) + "&" if others else "",
            "api_url": api_url,
            "search": search,
            "search_fields": plain,
            "plain_query": urlencode(plain),
            "node_count": len(nodes),
            "summary": _graph_summary(graph),
        }


def _int(text: str | None, default: int) -> int:
    try:
        return int(text or default)
    except ValueError:
        return default


def _graph_summary(graph: Graph) -> str:
    if graph.direction == "downstream":
        return impact_summary(graph)
    counts: dict[str, int] = {}
    for node in graph.nodes.values():
        counts[node.kind] = counts.get(node.kind, 0) + 1
    return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "no nodes"


def _redactor(project: Project) -> Redactor:
    """Masks the credentials visible from the project, and the tracking URI's password."""
    from dvflow.core._git import find_root

    try:
        root: Path | None = find_root(project.path.resolve())
    except DvflowError:
        root = None
    redactor = redactor_for(root)
    try:
        uri = project.store_uri
    except DvflowError:
        return redactor
    parts = urlsplit(uri)
    redactor.add(x for x in (parts.password, parts.username) if x)
    return redactor


def _status(exc: DvflowError) -> tuple[int, str]:
    if isinstance(exc, NotFoundError):
        return 404, "Not found"
    if isinstance(exc, InvalidArgumentError):
        return 400, "Bad request"
    if isinstance(exc, ProjectError):
        return 500, "Project problem"
    return 500, "Error"


class _Site:
    """The handlers of one project's pages and API."""

    def __init__(self, project: Project, pages: _Pages) -> None:
        self.project = project
        self.pages = pages

    def home(self, request: Request) -> Response:
        data = _read.catalog(self.project)
        for model in data["models"]:
            for version in model["versions"]:
                version["href"] = (
                    f"/models/{qpath(version['name'])}/versions/{q(version['version'])}"
                )
        return self.pages.html("home.html", {"title": "models and runs", "data": data})

    def model_page(self, request: Request) -> Response:
        name, version = request.path_params["name"], request.path_params["version"]
        data = _read.model_version(self.project, name, version)
        verdict = _read.catalog_verdict(self.project, data["node"].attrs.get("run_id"))
        api = f"/api/models/{qpath(name)}/versions/{q(version)}/lineage"
        return self.pages.html(
            "model.html",
            {
                "title": f"{name} v{version}",
                **data,
                "verdict": verdict,
                "checks_href": f"/models/{qpath(name)}/versions/{q(version)}/checks",
                **self.pages.graph_context(data["graph"], request, api),
            },
        )

    def checks_page(self, request: Request) -> Response:
        name, version = request.path_params["name"], request.path_params["version"]
        data = _read.version_checks(self.project, name, version)
        back = f"/models/{qpath(name)}/versions/{q(version)}"
        return self.pages.html(
            "checks.html", {"title": f"checks of {name} v{version}", "data": data, "back": back}
        )

    def run_page(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        run = _read.run_record(self.project, run_id)
        record = run.get("record") or {}
        code = record.get("code") or {}
        patch = (
            _read.run_patch(self.project, run["run_id"], code.get("patch_sha256"))
            if code.get("dirty")
            else None
        )
        context: dict[str, Any] = {"title": f"run {run_id}", "run": run, "patch": patch}
        if record:
            graph = _read.lineage_graph(self.project, run["run_id"])
            context.update(
                self.pages.graph_context(graph, request, f"/api/lineage?target={q(run['run_id'])}")
            )
        return self.pages.html("run.html", context)

    def data_page(self, request: Request) -> Response:
        md5, data_path = request.path_params["md5"], request.path_params["path"]
        graph = _read.data_impact(self.project, md5, data_path)
        api = f"/api/data/{q(md5)}/{qpath(data_path)}"
        return self.pages.html(
            "graph.html",
            {
                "title": f"impact of {data_path} at md5 {md5}",
                **self.pages.graph_context(graph, request, api),
            },
        )

    def query_page(self, direction: str) -> Callable[[Request], Response]:
        def handler(request: Request) -> Response:
            target = request.query_params.get("target", "").strip()
            context: dict[str, Any] = {"title": direction, "target": target, "show_form": True}
            if target:
                read = _read.lineage_graph if direction == "lineage" else _read.impact_graph
                graph = read(self.project, target)
                api = f"/api/{direction}?target={q(target)}"
                context.update(self.pages.graph_context(graph, request, api))
                context["title"] = f"{direction} of {target}"
            return self.pages.html("graph.html", context)

        return handler

    def diff_page(self, request: Request) -> Response:
        a = request.query_params.get("a", "").strip()
        b = request.query_params.get("b", "").strip()
        d = _read.run_diff(self.project, a, b) if a and b else None
        return self.pages.html("diff.html", {"title": "diff", "a": a, "b": b, "d": d})

    # -- the JSON API -----------------------------------------------------------

    def api_index(self, request: Request) -> Response:
        return self.pages.json(
            {
                "endpoints": [
                    "/api/models",
                    "/api/models/{name}/versions/{version}",
                    "/api/models/{name}/versions/{version}/lineage",
                    "/api/runs/{run_id}",
                    "/api/lineage?target=T",
                    "/api/impact?target=T",
                    "/api/data/{md5}/{path}",
                    "/api/diff?a=A&b=B",
                ],
                "graphs": "the shape of 'dvflow lineage --json' (docs/lineage.schema.json)",
            }
        )

    def api_models(self, request: Request) -> Response:
        return self.pages.json(_read.catalog(self.project))

    def api_version(self, request: Request) -> Response:
        name, version = request.path_params["name"], request.path_params["version"]
        data = _read.model_version(self.project, name, version)
        node = data["node"]
        return self.pages.json(
            {
                "id": node.id,
                "name": name,
                "version": version,
                "attrs": node.attrs,
                "record": data["record"],
                "verdict": _read.catalog_verdict(self.project, node.attrs.get("run_id")),
            }
        )

    def api_version_lineage(self, request: Request) -> Response:
        name, version = request.path_params["name"], request.path_params["version"]
        return self.pages.json(
            _read.lineage_graph(self.project, f"models:/{name}/{version}").to_dict()
        )

    def api_run(self, request: Request) -> Response:
        return self.pages.json(_read.run_record(self.project, request.path_params["run_id"]))

    def api_query(self, direction: str) -> Callable[[Request], Response]:
        def handler(request: Request) -> Response:
            target = request.query_params.get("target", "").strip()
            if not target:
                raise InvalidArgumentError("target", target, "give ?target=")
            read = _read.lineage_graph if direction == "lineage" else _read.impact_graph
            return self.pages.json(read(self.project, target).to_dict())

        return handler

    def api_data(self, request: Request) -> Response:
        md5, data_path = request.path_params["md5"], request.path_params["path"]
        return self.pages.json(_read.data_impact(self.project, md5, data_path).to_dict())

    def api_diff(self, request: Request) -> Response:
        a = request.query_params.get("a", "").strip()
        b = request.query_params.get("b", "").strip()
        if not (a and b):
            raise InvalidArgumentError("a and b", f"{a!r}, {b!r}", "give ?a=A&b=B")
        return self.pages.json(_read.run_diff(self.project, a, b))

    async def not_found(self, request: Request, exc: Exception) -> Response:
        from starlette.exceptions import HTTPException

        status = exc.status_code if isinstance(exc, HTTPException) else 500
        heading = (
            "Not found" if status == 404 else "Method not allowed" if status == 405 else "Error"
        )
        message = (
            f"there is no page at {printable(request.url.path)}"
            if status == 404
            else "this server is read-only: pages are read with GET"
            if status == 405
            else "the request failed"
        )
        if request.url.path.startswith("/api/"):
            return self.pages.json({"error": message, "hint": None}, status)
        return self.pages.html(
            "error.html",
            {
                "title": heading,
                "status": status,
                "heading": heading,
                "message": message,
                "hint": None,
            },
            status,
        )


def create_app(
    path: str | Path = ".",
    *,
    tracking_uri: str | None = None,
    allowed_hosts: Sequence[str] | None = None,
) -> Starlette:
    """The app for the project at ``path`` (a Starlette ASGI app; serve it with uvicorn).

    ``allowed_hosts``: the Host headers it answers (default: loopback names
    only, so a web page elsewhere cannot read it through DNS rebinding).
    """
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.routing import Route

    project = Project(Path(path), tracking_uri)
    pages = _Pages(project)

    def page(
        handler: Callable[[Request], Response], *, api: bool = False
    ) -> Callable[[Request], Response]:
        def wrapped(request: Request) -> Response:
            try:
                with project.lock:
                    return handler(request)
            except DvflowError as exc:
                status, heading = _status(exc)
                hint = getattr(exc, "hint", None)
                if api:
                    return pages.json({"error": exc.message, "hint": hint}, status)
                return pages.html(
                    "error.html",
                    {
                        "title": heading,
                        "status": status,
                        "heading": heading,
                        "message": exc.message,
                        "hint": hint,
                    },
                    status,
                )

        return wrapped

    site = _Site(project, pages)
    routes = [
        Route("/", page(site.home)),
        Route("/models/{name:path}/versions/{version}/checks", page(site.checks_page)),
        Route("/models/{name:path}/versions/{version}", page(site.model_page)),
        Route("/runs/{run_id}", page(site.run_page)),
        Route("/data/{md5}/{path:path}", page(site.data_page)),
        Route("/lineage", page(site.query_page("lineage"))),
        Route("/impact", page(site.query_page("impact"))),
        Route("/diff", page(site.diff_page)),
        Route("/api/", page(site.api_index, api=True)),
        Route("/api/models", page(site.api_models, api=True)),
        Route(
            "/api/models/{name:path}/versions/{version}/lineage",
            page(site.api_version_lineage, api=True),
        ),
        Route("/api/models/{name:path}/versions/{version}", page(site.api_version, api=True)),
        Route("/api/runs/{run_id}", page(site.api_run, api=True)),
        Route("/api/lineage", page(site.api_query("lineage"), api=True)),
        Route("/api/impact", page(site.api_query("impact"), api=True)),
        Route("/api/data/{md5}/{path:path}", page(site.api_data, api=True)),
        Route("/api/diff", page(site.api_diff, api=True)),
    ]
    hosts = list(allowed_hosts) if allowed_hosts is not None else [*LOOPBACK, "testserver"]
    return Starlette(
        routes=routes,
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=hosts)],
        exception_handlers={HTTPException: site.not_found},
    )
