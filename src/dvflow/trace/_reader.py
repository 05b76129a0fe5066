"""What the lineage index reads from a tracking store, as plain data.

Runs with their inputs and outputs, and model versions with their aliases.
A run's inputs and outputs travel in its ``dvflow.io`` tag, written by
``dvflow run`` (``io_tags``), so one search reads them all; a run whose
list outgrew a tag is read from its record.

Tags can be rewritten by anyone who can write to the store, and no digest
covers them: ``dvflow run`` also logs the sha256 of the tag as the param
``dvflow.io_sha256`` (``io_params``), which MLflow never lets change. A tag
that disagrees with it was rewritten after the run: the run's io then comes
from its record (when the record matches its digest), and the run is
reported as tampered. Runs older than the param are trusted as before.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dvflow.core._exceptions import DvflowError
from dvflow.stores._tracking import Tracker, mlflow_errors, pages

if TYPE_CHECKING:
    from dvflow.core._dvcfiles import Pointer
    from dvflow.core._record import ProvenanceRecord

IO_TAG = "dvflow.io"
# The sha256 of the run's dvflow.io tag, or NO_IO_TAG: a param, because MLflow
# refuses to change a param once logged, while any tag can be rewritten.
IO_PARAM = "dvflow.io_sha256"
NO_IO_TAG = "none"
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


def io_params(tags: Mapping[str, str]) -> dict[str, str]:
    """``{IO_PARAM: ...}`` pinning the ``dvflow.io`` tag among ``tags`` (or its absence)."""
    return {IO_PARAM: io_digest(tags.get(IO_TAG))}


def io_digest(text: str | None) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest() if text else NO_IO_TAG


def io_tag_problem(tags: Mapping[str, str], params: Mapping[str, str]) -> str | None:
    """Why a run's ``dvflow.io`` tag cannot be trusted, or None.

    None also for a run older than ``IO_PARAM`` (nothing to check it with).
    """
    pinned = params.get(IO_PARAM)
    if pinned is None or pinned == io_digest(tags.get(IO_TAG)):
        return None
    if tags.get(IO_TAG) is None:
        return f"its {IO_TAG} tag was deleted after the run"
    return f"its {IO_TAG} tag was changed after the run (it does not match the param {IO_PARAM})"


def record_io(record: ProvenanceRecord) -> dict[str, list[tuple[str, str]]]:
    """A record's inputs and outputs as the ``dvflow.io`` tag lists them."""
    return {
        "in": sorted((p.path, p.md5) for p in record.inputs if p.md5),
        "out": sorted((p.path, p.md5) for p in record.outputs if p.md5),
    }


def io_mismatch(text: str | None, record: ProvenanceRecord) -> str | None:
    """How a run's ``dvflow.io`` tag differs from its record (None: it agrees, or no tag)."""
    tagged = _parse_io(text)
    if tagged is None:
        return None if text is None else f"its {IO_TAG} tag is not valid"
    recorded = record_io(record)
    parts = []
    for role, word in (("in", "input"), ("out", "output")):
        have, want = set(tagged[role]), set(recorded[role])
        parts += [f"{word} {p} ({m[:12]}) missing" for p, m in sorted(want - have)]
        parts += [f"{word} {p} ({m[:12]}) not in the record" for p, m in sorted(have - want)]
    if not parts:
        return None
    shown = "; ".join(parts[:3]) + (f"; and {len(parts) - 3} more" if len(parts) > 3 else "")
    return f"its {IO_TAG} tag disagrees with its record: {shown}"


class StoreReader:
    """Runs and model versions of a store, as dicts the index can keep."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.client = tracker.client
        # Name -> id of the active experiments, as the last runs() found them.
        self.experiment_names: dict[str, str] = {}

    def runs(self, since_ms: int, also: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Every dvflow run started at or after ``since_ms``, plus the runs ``also`` names."""
        with mlflow_errors(self.tracker.uri):
            found_experiments = self.client.search_experiments(
                view_type=3,  # ViewType.ALL: runs of deleted experiments still explain history
                max_results=50000,
            )
        experiments = [e.experiment_id for e in found_experiments]
        self.experiment_names = {
            e.name: str(e.experiment_id) for e in found_experiments if e.lifecycle_stage == "active"
        }
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
        for start in range(0, len(experiments), 100):
            chunk = experiments[start : start + 100]
            search = functools.partial(
                self.client.search_runs,
                chunk,
                filter_string=query,
                run_view_type=3,  # ViewType.ALL: deleted runs still explain history
            )
            yield from pages(search, 50000)

    def _run_dict(self, run: Any) -> dict[str, Any]:
        tags = run.data.tags
        params = dict(run.data.params)
        io, tampered = self._io(run, tags, params)
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
            # dvflow's own param is no param of the stage.
            "params": {k: v for k, v in params.items() if k != IO_PARAM},
            "metrics": dict(run.data.metrics),
            "inputs": io["in"],
            "outputs": io["out"],
            "tampered": tampered,
            "facts": run_facts(run),
        }

    def _io(
        self, run: Any, tags: Mapping[str, str], params: Mapping[str, str]
    ) -> tuple[dict[str, list[tuple[str, str]]], str | None]:
        """The run's inputs and outputs, and why they are suspect (None: they are not).

        The tag is trusted when the param pins it (or, for older runs, when
        there is no param); else the record is read, and used only when it
        matches its digest and the param: a rewritten tag is never followed.
        """
        problem = io_tag_problem(tags, params)
        io = None if problem else _parse_io(tags.get(IO_TAG))
        if io is not None:
            return io, None
        read, unread = self._io_from_record(run)
        pinned = params.get(IO_PARAM)
        if (
            read is not None
            and pinned not in (None, NO_IO_TAG)
            and io_digest(io_tag(read["in"], read["out"])) != pinned
        ):
            # The record was replaced with its digest: the param still says what ran
            # (NO_IO_TAG: the record is all there is, as for a pipeline run).
            read = None
            unread = (
                f"its record does not hold the inputs and outputs the param {IO_PARAM} pinned "
                "at the run: they are left out"
            )
        if read is None and problem:
            unread = unread or "its record cannot be read: its inputs and outputs are left out"
        if unread:
            return _NO_IO, f"{problem}, and {unread}" if problem else unread
        if problem:
            return read or _NO_IO, f"{problem}: its inputs and outputs come from its record"
        return read or _NO_IO, None

    def _io_from_record(
        self, run: Any
    ) -> tuple[dict[str, list[tuple[str, str]]] | None, str | None]:
        """Inputs and outputs from the record, for runs whose io did not fit a tag.

        None when there is no readable record (still running, say), and why
        when the record does not match its digest.
        """
        from dvflow.core._record import DIGEST_TAG, RECORD_ARTIFACT, sha256_hex

        digest = run.data.tags.get(DIGEST_TAG)
        if not digest:
            return None, None
        try:
            raw = self.tracker.read_artifact(run.info.run_id, RECORD_ARTIFACT)
            data = json.loads(raw)
        except (DvflowError, ValueError):
            return None, None
        if sha256_hex(raw) != digest:
            return None, "its record does not match its digest: its inputs and outputs are left out"
        if not isinstance(data, dict):
            return None, None
        return {
            role: [
                (str(p["path"]), str(p["md5"]))
                for p in data.get(key) or []
                if isinstance(p, dict) and p.get("md5")
            ]
            for role, key in (("in", "inputs"), ("out", "outputs"))
        }, None

    def model_versions(self) -> list[dict[str, Any]]:
        with mlflow_errors(self.tracker.uri):
            aliases: dict[tuple[str, str], list[str]] = {}
            for model in pages(self.client.search_registered_models, 1000):
                for alias, version in (model.aliases or {}).items():
                    aliases.setdefault((model.name, str(version)), []).append(alias)
            versions = list(pages(self.client.search_model_versions, 100_000))
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


_NO_IO: dict[str, list[tuple[str, str]]] = {"in": [], "out": []}


def run_facts(run: Any) -> str:
    """What the read commands use of an MLflow run, as JSON the index keeps (_records)."""
    info = run.info
    return json.dumps(
        {
            "info": {
                "run_id": info.run_id,
                "experiment_id": info.experiment_id,
                "run_name": info.run_name or "",
                "status": info.status,
                "start_time": info.start_time,
                "end_time": info.end_time,
                "artifact_uri": info.artifact_uri,
                "lifecycle_stage": info.lifecycle_stage,
            },
            "tags": dict(run.data.tags),
            "params": dict(run.data.params),
            "metrics": dict(run.data.metrics),
        },
        sort_keys=True,
    )


def _parse_io(text: str | None) -> dict[str, list[tuple[str, str]]] | None:
    if not text:
        return None
    try:
        data = json.loads(text)
        return {role: [(str(p), str(m)) for p, m in data.get(role) or []] for role in ("in", "out")}
    except (ValueError, TypeError):
        return None
