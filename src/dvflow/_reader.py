"""What the lineage index reads from a tracking store, as plain data.

Runs with their inputs and outputs, and model versions with their aliases.
A run's inputs and outputs travel in its ``dvflow.io`` tag, written by
``dvflow run`` (``io_tags``), so one search reads them all; a run whose
list outgrew a tag is read from its record.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ._exceptions import DvflowError
from ._tracking import Tracker, mlflow_errors

if TYPE_CHECKING:
    from ._dvcfiles import Pointer

IO_TAG = "dvflow.io"
# When 'dvflow sync' uploaded a run from the local spool (ISO 8601, UTC).
SYNCED_AT_TAG = "dvflow.synced_at"


def io_tag(inputs: Sequence[tuple[str, str]], outputs: Sequence[tuple[str, str]]) -> str | None:
    """The ``dvflow.io`` tag: a run's input and output md5s, or None when too long.

    A tag lets the index read a run's data in the same search as its other
    facts; past MLflow's tag limit the index reads the record instead.
    """
    text = json.dumps({"in": sorted(inputs), "out": sorted(outputs)}, separators=(",", ":"))
    return text if len(text) <= _TAG_LIMIT else None


_TAG_LIMIT = 7500


def io_tags(inputs: Sequence[Pointer], outputs: Sequence[Pointer]) -> dict[str, str]:
    """``{IO_TAG: ...}`` for a run with these pointers, or nothing when too long."""
    text = io_tag(
        [(p.path, p.md5) for p in inputs if p.md5], [(p.path, p.md5) for p in outputs if p.md5]
    )
    return {IO_TAG: text} if text else {}


class StoreReader:
    """Runs and model versions of a store, as dicts the index can keep."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.client = tracker.client

    def runs(self, since_ms: int, also: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Every dvflow run started at or after ``since_ms``, plus the runs ``also`` names."""
        experiments = self.tracker.all_experiments()
        with mlflow_errors(self.tracker.uri):
            found = {}
            queries = [f"tags.`dvflow.kind` LIKE '%' and attributes.start_time >= {since_ms}"]
            if since_ms > 0:
                # 'dvflow sync' uploads runs with their original, older start times.
                queries.append(
                    f"tags.`{SYNCED_AT_TAG}` LIKE '%' and attributes.start_time < {since_ms}"
                )
            queries += [
                "attributes.run_id IN ({})".format(",".join(f"'{r}'" for r in also[i : i + 100]))
                for i in range(0, len(also), 100)
            ]
            for query in queries:
                for run in self._search(experiments, query):
                    found[run.info.run_id] = run
        return [self._run_dict(run) for run in found.values()]

    def _search(self, experiments: list[str], query: str) -> Iterator[Any]:
        token = None
        for start in range(0, len(experiments), 100):
            while True:
                page = self.client.search_runs(
                    experiments[start : start + 100],
                    filter_string=query,
                    run_view_type=3,  # ViewType.ALL: deleted runs still explain history
                    max_results=50000,
                    page_token=token,
                )
                yield from page
                token = page.token
                if not token:
                    break

    def _run_dict(self, run: Any) -> dict[str, Any]:
        tags = run.data.tags
        io = _parse_io(tags.get(IO_TAG))
        if io is None:
            io = self._io_from_record(run)
        return {
            "run_id": run.info.run_id,
            "experiment_id": run.info.experiment_id,
            "name": run.info.run_name or "",
            "parent_id": tags.get("mlflow.parentRunId"),
            "kind": tags.get("dvflow.kind", ""),
            "stage": tags.get("dvflow.stage"),
            "status": run.info.status,
            "dvflow_status": tags.get("dvflow.status"),
            "git_commit": tags.get("dvflow.git_commit"),
            "dirty": tags.get("dvflow.git_dirty") == "true",
            "start_time": run.info.start_time or 0,
            "end_time": run.info.end_time,
            "record_sha": tags.get("dvflow.record_sha256"),
            "produced_by": tags.get("dvflow.produced_by"),
            "result_commit": tags.get("dvflow.result_commit"),
            "params": dict(run.data.params),
            "metrics": dict(run.data.metrics),
            "inputs": io["in"],
            "outputs": io["out"],
        }

    def _io_from_record(self, run: Any) -> dict[str, list[tuple[str, str]]]:
        """Inputs and outputs from the record, for runs whose io did not fit a tag."""
        from ._record import RECORD_ARTIFACT

        if "dvflow.record_sha256" not in run.data.tags:
            return {"in": [], "out": []}
        try:
            data = json.loads(self.tracker.read_artifact(run.info.run_id, RECORD_ARTIFACT))
        except (DvflowError, ValueError):
            return {"in": [], "out": []}
        return {
            role: [
                (str(p["path"]), str(p["md5"]))
                for p in data.get(key) or []
                if isinstance(p, dict) and p.get("md5")
            ]
            for role, key in (("in", "inputs"), ("out", "outputs"))
        }

    def model_versions(self) -> list[dict[str, Any]]:
        with mlflow_errors(self.tracker.uri):
            aliases: dict[tuple[str, str], list[str]] = {}
            for model in self._pages(self.client.search_registered_models, 1000):
                for alias, version in (model.aliases or {}).items():
                    aliases.setdefault((model.name, str(version)), []).append(alias)
            versions = list(self._pages(self.client.search_model_versions, 100_000))
        return [
            {
                "name": v.name,
                "version": str(v.version),
                "run_id": v.run_id or None,
                "source": v.source or "",
                "created": v.creation_timestamp or 0,
                "tags": dict(v.tags or {}),
                "aliases": sorted(aliases.get((v.name, str(v.version)), [])),
            }
            for v in versions
        ]

    @staticmethod
    def _pages(search: Any, size: int) -> Iterator[Any]:
        token = None
        while True:
            page = search(max_results=size, page_token=token)
            yield from page
            token = page.token
            if not token:
                return


def _parse_io(text: str | None) -> dict[str, list[tuple[str, str]]] | None:
    if not text:
        return None
    try:
        data = json.loads(text)
        return {role: [(str(p), str(m)) for p, m in data.get(role) or []] for role in ("in", "out")}
    except (ValueError, TypeError):
        return None
