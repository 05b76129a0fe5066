"""What the pages show, read through the read commands' own functions.

Graphs come from ``trace``'s ``lineage``/``impact`` (the index, brought up
to date as the CLI does), records from ``proof``'s ``check_record``, diffs
from ``diff_runs``, checks from ``verify`` without a rebuild (which writes
nothing). Only the two listings of the home page (models with their
versions, the latest pipeline runs) are read here, from the same index.
Nothing here writes to the store.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dvflow.core._exceptions import DvflowError, RecordTamperedError, TargetNotFoundError
from dvflow.core._record import PATCH_ARTIFACT, sha256_hex
from dvflow.trace._graph import Graph
from dvflow.trace._html import mlflow_base, mlflow_model_url, mlflow_run_url

# A patch larger than this is shown cut (the artifact keeps all of it).
PATCH_SHOWN = 200_000
LATEST_RUNS = 20
VERDICT_TAG = "dvflow.verify.verdict"


@dataclass
class Project:
    """The project a server shows; ``lock`` serialises reads of its index."""

    path: Path
    tracking_uri: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def store_uri(self) -> str:
        from dvflow.core._config import load_config
        from dvflow.core._git import find_root
        from dvflow.core._roots import settings_root

        start = self.path.resolve()
        return load_config(
            settings_root(start, find_root(start)), tracking_uri=self.tracking_uri
        ).tracking_uri

    @property
    def mlflow_ui(self) -> str | None:
        return mlflow_base(self.store_uri)


# -- the home page ------------------------------------------------------------------


def catalog(project: Project) -> dict[str, Any]:
    """Registered models with their versions, and the latest pipeline runs."""
    from dvflow.trace._queries import open_index_at

    index, _, warnings = open_index_at(project.path, tracking_uri=project.tracking_uri)
    try:
        db = index.db
        tampered = {str(r[0]) for r in db.execute("SELECT run_id FROM tampered")}
        runs = {
            str(r[0]): (r[1], r[2])
            for r in db.execute("SELECT run_id, record_sha, status FROM runs WHERE kind='stage'")
        }
        aliases: dict[tuple[str, str], list[str]] = {}
        for name, alias, version in db.execute("SELECT name, alias, version FROM aliases"):
            aliases.setdefault((name, version), []).append(alias)
        models: dict[str, list[dict[str, Any]]] = {}
        rows = db.execute(
            "SELECT name, version, run_id, md5, git_commit, record_sha, created, tags FROM models "
            "ORDER BY name, CAST(version AS INTEGER) DESC"
        ).fetchall()
        for name, version, run_id, md5, commit, record_sha, created, tags in rows:
            tag_map = _json(tags)
            models.setdefault(name, []).append(
                {
                    "name": name,
                    "version": version,
                    "run_id": run_id,
                    "md5": md5,
                    "commit": commit,
                    "created": created,
                    "aliases": sorted(aliases.get((name, version), [])),
                    "verdict": _verdict(db, run_id),
                    "lineage": _completeness(run_id, record_sha, runs, tampered, tag_map),
                }
            )
        pipelines = [
            {
                "run_id": r[0],
                "name": r[1],
                "status": r[2],
                "start_time": r[3],
                "commit": r[4],
                "dirty": bool(r[5]),
                "stages": r[6],
            }
            for r in db.execute(
                "SELECT p.run_id, p.name, p.status, p.start_time, p.git_commit, p.dirty, "
                "(SELECT COUNT(*) FROM runs s WHERE s.parent_id = p.run_id) FROM runs p "
                "WHERE p.kind = 'pipeline' ORDER BY p.start_time DESC LIMIT ?",
                (LATEST_RUNS,),
            )
        ]
    finally:
        index.close()
    return {
        "models": [{"name": n, "versions": v} for n, v in sorted(models.items())],
        "pipeline_runs": pipelines,
        "warnings": warnings,
    }


def _json(text: str | None) -> dict[str, Any]:
    try:
        found = json.loads(text or "{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def catalog_verdict(project: Project, run_id: str | None) -> str | None:
    """The last ``verify --rebuild`` verdict on a run, from the index."""
    from dvflow.trace._queries import open_index_at

    index = open_index_at(project.path, tracking_uri=project.tracking_uri, sync=False)[0]
    try:
        return _verdict(index.db, run_id)
    finally:
        index.close()


def _verdict(db: Any, run_id: str | None) -> str | None:
    """The last ``verify --rebuild`` verdict written on the run (None: never rebuilt)."""
    if not run_id:
        return None
    row = db.execute(
        "SELECT json_extract(facts, '$.tags.\"dvflow.verify.verdict\"') FROM run_facts "
        "WHERE run_id=?",
        (run_id,),
    ).fetchone()
    return str(row[0]) if row and row[0] else None


def _completeness(
    run_id: str | None,
    record_sha: str | None,
    runs: dict[str, tuple[str | None, str | None]],
    tampered: set[str],
    tags: dict[str, Any],
) -> str:
    """Whether the index links the version to an intact, finished run (the quick view).

    The full answer is ``verify``'s checks, on the version's page.
    """
    problem = None
    if not run_id:
        problem = "no recorded run"
    elif run_id not in runs:
        problem = "run not in the index"
    elif run_id in tampered:
        problem = "run tampered"
    elif record_sha and runs[run_id][0] and record_sha != runs[run_id][0]:
        problem = "record digest differs from the version's"
    elif runs[run_id][1] != "FINISHED":
        problem = f"run {str(runs[run_id][1]).lower()}"
    forced = sorted(
        k.partition("dvflow.forced.")[2] for k in tags if k.startswith("dvflow.forced.")
    )
    if problem is None and forced:
        problem = "promoted despite failed checks: " + ", ".join(f"@{a}" for a in forced)
    return problem or "complete"


# -- graphs -------------------------------------------------------------------------


def lineage_graph(project: Project, target: str) -> Graph:
    from dvflow.trace._queries import lineage

    return lineage(target, project.path, tracking_uri=project.tracking_uri)


def impact_graph(project: Project, target: str) -> Graph:
    from dvflow.trace._queries import impact

    return impact(target, project.path, tracking_uri=project.tracking_uri)


def data_impact(project: Project, md5: str, path: str) -> Graph:
    """The impact of one data version (``path`` at ``md5``), not of other paths with its bytes."""
    graph = impact_graph(project, md5)
    start = f"data:{md5}:{path}"
    if start not in graph.nodes:
        raise TargetNotFoundError(f"{path}@{md5}")
    following: dict[str, list[str]] = {}
    for edge in graph.edges:
        following.setdefault(edge.source, []).append(edge.target)
    reached = {start}
    todo = [start]
    while todo:
        for other in following.get(todo.pop(), ()):
            if other not in reached:
                reached.add(other)
                todo.append(other)
    sub = Graph(direction="downstream", target=f"{path}@{md5}", roots=[start])
    for node_id, node in graph.nodes.items():
        if node_id in reached:
            sub.add(node)
    for edge in graph.edges:
        if edge.source in reached and edge.target in reached:
            sub.link(edge.source, edge.target, edge.kind)
    sub.warnings.extend(graph.warnings)
    return sub


# -- a model version ----------------------------------------------------------------


def model_version(project: Project, name: str, version: str) -> dict[str, Any]:
    graph = lineage_graph(project, f"models:/{name}/{version}")
    node = graph.nodes.get(f"model:{name}/{version}")
    if node is None:
        raise TargetNotFoundError(f"models:/{name}/{version}")
    run_id = node.attrs.get("run_id")
    record = run_record(project, str(run_id)) if run_id else None
    return {
        "name": name,
        "version": version,
        "node": node,
        "graph": graph,
        "record": record,
        "mlflow_url": mlflow_model_url(project.mlflow_ui, name, version),
    }


def version_checks(project: Project, name: str, version: str) -> dict[str, Any]:
    """``verify``'s quick checks of a version (no rebuild: nothing is written)."""
    from dvflow.proof._verify import AUTHENTICITY_NOTE, verify

    result = verify(f"models:/{name}/{version}", project.path, tracking_uri=project.tracking_uri)
    return {
        "target": result.target,
        "run_id": result.run_id,
        "checks": [c.__dict__ for c in result.checks],
        "failures": result.failures,
        "note": AUTHENTICITY_NOTE,
    }


# -- a run --------------------------------------------------------------------------


def run_record(project: Project, run_id: str) -> dict[str, Any]:
    """A run's record and whether it still matches its digest (as ``dvflow show``)."""
    from dvflow.proof._show import DIGEST_SCOPE, check_record

    try:
        check = check_record(run_id, project.path, tracking_uri=project.tracking_uri)
    except RecordTamperedError as exc:  # not even a record any more
        return {
            "run_id": run_id,
            "intact": False,
            "state": "tampered",
            "expected_sha256": exc.expected,
            "actual_sha256": exc.actual,
            "record": None,
            "detail": exc.message,
        }
    record = check.record.to_dict()
    mlflow = record.get("mlflow") or {}
    return {
        "run_id": check.run_id,
        "intact": check.intact,
        "state": "intact" if check.intact else "tampered",
        "expected_sha256": check.expected_sha256,
        "actual_sha256": check.actual_sha256,
        "run_status": check.run_status,
        "result_commit": check.result_commit,
        "note": check.note,
        "record": record,
        "digest_scope": DIGEST_SCOPE,
        "mlflow_url": mlflow_run_url(project.mlflow_ui, mlflow.get("experiment_id"), check.run_id),
    }


def run_patch(project: Project, run_id: str, expected: str | None) -> dict[str, Any] | None:
    """The stored patch of a dirty run, and whether it matches the record's digest."""
    from dvflow.trace._records import close_tracker, open_project_indexed

    _, _, tracker = open_project_indexed(project.path, project.tracking_uri)
    try:
        raw = tracker.read_artifact(run_id, PATCH_ARTIFACT)
    except DvflowError:
        return None
    finally:
        close_tracker(tracker)
    return {
        "intact": bool(expected) and sha256_hex(raw) == expected,
        "bytes": len(raw),
        "text": raw[:PATCH_SHOWN].decode("utf-8", errors="replace"),
        "cut": len(raw) > PATCH_SHOWN,
    }


def run_diff(project: Project, a: str, b: str) -> dict[str, Any]:
    from dvflow.proof._diff import diff_runs

    return diff_runs(a, b, project.path, tracking_uri=project.tracking_uri).to_dict()
