"""``export_openlineage``: the recorded runs of a store, or of a target's lineage, as events.

Runs and records come from the lineage index as ``show`` and ``lineage`` read
them (MLflow only for what the index does not hold); each record must match
the digest its run carries (else RecordTamperedError, exit 1). Runs still
open have no record yet and are left out.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dvflow.core import _git
from dvflow.core._config import load_config
from dvflow.core._exceptions import RecordNotFoundError
from dvflow.core._redact import Redactor, redactor_for
from dvflow.proof._show import intact_record
from dvflow.trace._lineage import build_graph
from dvflow.trace._queries import open_index
from dvflow.trace._records import close_tracker, open_indexed

from ._naming import Names, azure_accounts, strip_userinfo, tracking_namespace
from ._openlineage import RunContext, event_line, run_events

_OPEN = ("RUNNING", "SCHEDULED")
# Order of events with the same time: a pipeline starts before its stages, ends after.
_RANK = {("pipeline", True): 0, ("stage", True): 1, ("stage", False): 2, ("pipeline", False): 3}


def export_openlineage(
    target: str | None = None,
    path: str | os.PathLike[str] = ".",
    *,
    tracking_uri: str | None = None,
    namespace: str | None = None,
    sync: bool | None = None,
) -> list[str]:
    """OpenLineage RunEvents as JSON lines (sorted keys), START and terminal per run.

    ``target`` as for ``lineage`` (a run id, ``models:/N/V``, ``models:/N@A``, a
    path or an md5): the runs of its lineage and their pipeline runs; None:
    every recorded run of the store. Exporting twice gives the same bytes.
    """
    from dvflow.core._roots import settings_root

    start = Path(path).resolve()
    root = _git.find_root(start)
    project = settings_root(start, root)
    config = load_config(project, tracking_uri=tracking_uri)
    index, _, _ = open_index(root, tracking_uri=tracking_uri, sync=sync, project=project)
    try:
        runs = _runs(index.db, root, target, start)
        models = _models(index.db, list(runs))
        imports = _imports(index.db)
        pii, pii_models = _pii(index.db, project, set(config.governance.sanitisers))
    finally:
        index.close()
    redactor = redactor_for(project)
    names = Names(
        namespace=namespace,
        remote=_git.remote_url(root),
        folder=project.name,
        tracking=tracking_namespace(config.tracking_uri),
        tracking_uri=Redactor().redact(strip_userinfo(config.tracking_uri)),
        azure=azure_accounts(project),
    )
    tracker = open_indexed(root, project, config.tracking_uri, sync=False)
    try:
        events = [
            e
            for run_id in runs
            for e in _events(
                tracker,
                run_id,
                runs=runs,
                models=models,
                imports=imports,
                names=names,
                pii=(pii, pii_models),
            )
        ]
    finally:
        close_tracker(tracker)
    events.sort(key=_order)
    return [event_line(event, redactor) for event in events]


def _runs(db: Any, root: Path, target: str | None, cwd: Path) -> dict[str, tuple[Any, ...]]:
    """Finished runs to export: run id -> (kind, parent id, status, start, end)."""
    query = "SELECT run_id, kind, parent_id, status, start_time, end_time FROM runs"
    rows = {r[0]: tuple(r[1:]) for r in db.execute(query)}
    if target is not None:
        graph = build_graph(db, root, target, "upstream", cwd)
        wanted = {n.id.partition(":")[2] for n in graph.of_kind("run")}
        wanted |= {rows[r][1] for r in wanted if r in rows and rows[r][1]}
        rows = {r: facts for r, facts in rows.items() if r in wanted}
    return {
        r: facts
        for r, facts in sorted(rows.items(), key=lambda item: (item[1][3] or 0, item[0]))
        if facts[2] not in _OPEN and facts[0] in ("stage", "pipeline")
    }


def _pii(
    db: Any, project: Path, sanitisers: set[str]
) -> tuple[dict[tuple[str, str], tuple[str, ...]], frozenset[tuple[str, str]]]:
    """The data versions the committed personal-data marks taint (-> the marked fields),
    and the tainted model versions."""
    from dvflow.core._governance import read_governance
    from dvflow.trace._taint import compute_taint

    marks = read_governance(project).marks
    if not marks:
        return {}, frozenset()
    taint = compute_taint(db, [(m.path, m.md5) for m in marks], sanitisers)
    fields = {(m.path, m.md5): m.fields for m in marks}
    data = {pair: fields.get(pair, ()) for pair in taint.data_versions()}
    models = frozenset(
        (str(n.attrs.get("name")), str(n.attrs.get("version"))) for n in taint.models()
    )
    return data, models


def _models(db: Any, run_ids: list[str]) -> dict[str, list[tuple[str, str]]]:
    found: dict[str, list[tuple[str, str]]] = {}
    for name, version, run_id in db.execute("SELECT name, version, run_id FROM models"):
        if run_id in run_ids:
            found.setdefault(run_id, []).append((str(name), str(version)))
    return found


def _imports(db: Any) -> dict[tuple[str, str], dict[str, str]]:
    """(path, md5) -> the source of the 'dvc import' that made it (as Git history has it)."""
    found: dict[tuple[str, str], dict[str, str]] = {}
    for path, md5, source in db.execute(
        "SELECT DISTINCT io.path, io.md5, e.source FROM entry_io io JOIN entries e "
        "ON e.id = io.entry WHERE e.kind = 'import' AND io.role = 'out' AND e.source IS NOT NULL "
        "ORDER BY e.id"
    ):
        with contextlib.suppress(ValueError, TypeError):
            loaded = json.loads(source)
            if isinstance(loaded, dict):
                found.setdefault((str(path), str(md5)), {k: str(v) for k, v in loaded.items()})
    return found


def _events(
    tracker: Any,
    run_id: str,
    *,
    runs: Mapping[str, tuple[Any, ...]],
    models: Mapping[str, list[tuple[str, str]]],
    imports: Mapping[tuple[str, str], Mapping[str, str]],
    names: Names,
    pii: tuple[Mapping[tuple[str, str], Sequence[str]], frozenset[tuple[str, str]]] = (
        {},
        frozenset(),
    ),
) -> Iterable[dict[str, Any]]:
    try:
        record, run, digest = intact_record(tracker, run_id)
    except RecordNotFoundError:
        return []  # killed before its record was written: nothing to say what it used
    job_namespace, dataset_namespace = names.of(record)
    _, parent_id, status, start, end = runs[run_id]
    parent = None
    if record.kind == "stage" and parent_id:
        parent_start = runs[parent_id][3] if parent_id in runs else _start_of(tracker, parent_id)
        parent = (str(parent_id), parent_start)
    ctx = RunContext(
        run_id=run_id,
        start_ms=start if start is not None else run.info.start_time,
        end_ms=end if end is not None else run.info.end_time,
        mlflow_status=str(status or run.info.status),
        record_sha256=digest,
        job_namespace=job_namespace,
        dataset_namespace=dataset_namespace,
        tracking_namespace=names.tracking,
        tracking_uri=names.tracking_uri,
        parent=parent,
        models=tuple(models.get(run_id, ())),
        azure_accounts=names.azure,
        imports=imports,
        pii=pii[0],
        pii_models=pii[1],
    )
    return run_events(record, ctx)


def _start_of(tracker: Any, run_id: str) -> int | None:
    start = tracker.get_run(run_id).info.start_time
    return int(start) if start is not None else None


def _order(event: Mapping[str, Any]) -> tuple[str, int, str]:
    kind = "pipeline" if event["job"]["facets"]["jobType"]["jobType"] == "DAG" else "stage"
    return (event["eventTime"], _RANK[(kind, event["eventType"] == "START")], event["run"]["runId"])
