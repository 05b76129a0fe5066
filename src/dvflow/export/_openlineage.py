"""One provenance record as OpenLineage 2-0-2 ``RunEvent``s: a START and a terminal event.

Pure mapping, no I/O: ``_export`` reads the records and hands each here with
what the record does not hold (the MLflow times, the model versions made from
the run, the namespaces). Equal input, equal events: run ids are UUIDs
derived from the MLflow run id and its start time, and nothing reads a clock.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dvflow.core._dvcfiles import Pointer
from dvflow.core._record import ProvenanceRecord, canonical_json
from dvflow.core._redact import Redactor
from dvflow.core._version import __version__

from ._naming import location, repo_web_url, strip_userinfo

SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
# Who made the events: OpenLineage asks for a URI; dvflow has no web home of its own.
PRODUCER = f"urn:dvflow:{__version__}"
_FACETS = "https://openlineage.io/spec/facets/"
FACET_SCHEMAS = {
    "sourceCodeLocation": "1-0-1/SourceCodeLocationJobFacet.json#/$defs/SourceCodeLocationJobFacet",
    "jobType": "2-0-3/JobTypeJobFacet.json#/$defs/JobTypeJobFacet",
    "parent": "1-1-0/ParentRunFacet.json#/$defs/ParentRunFacet",
    "processing_engine": "1-1-1/ProcessingEngineRunFacet.json#/$defs/ProcessingEngineRunFacet",
    "errorMessage": "1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet",
    "version": "1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet",
    "symlinks": "1-0-1/SymlinksDatasetFacet.json#/$defs/SymlinksDatasetFacet",
    "datasetType": "1-0-1/DatasetTypeDatasetFacet.json#/$defs/DatasetTypeDatasetFacet",
    "tags": "1-0-0/TagsDatasetFacet.json#/$defs/TagsDatasetFacet",
}
PROVENANCE_SCHEMA_ID = "urn:dvflow:facets:1-0-0:DvflowProvenanceRunFacet.json"
PROVENANCE_SCHEMA_URL = f"{PROVENANCE_SCHEMA_ID}#/$defs/DvflowProvenanceRunFacet"
IMPORT_SCHEMA_URL = f"{PROVENANCE_SCHEMA_ID}#/$defs/DvflowImportDatasetFacet"

# dvflow's status of a run -> its terminal event (any other: COMPLETE).
_TERMINAL = {"failed": "FAIL", "killed": "ABORT", "skipped": "ABORT"}


@dataclass(frozen=True)
class RunContext:
    """What an event needs beyond the record."""

    run_id: str
    start_ms: int | None
    end_ms: int | None
    mlflow_status: str
    record_sha256: str
    job_namespace: str
    dataset_namespace: str
    tracking_namespace: str
    tracking_uri: str
    parent: tuple[str, int | None] | None = None  # the pipeline's run id and start
    models: Sequence[tuple[str, str]] = ()  # (name, version) registered from this run
    # (path, md5) -> the source of a 'dvc import' (url, path, rev, rev_lock), from the index
    imports: Mapping[tuple[str, str], Mapping[str, str]] = field(default_factory=dict)
    azure_accounts: Mapping[str, str] = field(default_factory=dict)
    # (path, md5) of the data versions personal-data marks taint -> the marked fields
    pii: Mapping[tuple[str, str], Sequence[str]] = field(default_factory=dict)
    pii_models: frozenset[tuple[str, str]] = frozenset()  # (name, version) tainted


def run_uuid(run_id: str, start_ms: int | None) -> str:
    """A UUIDv7 (RFC 9562) for an MLflow run: its start time, then bits of its id's sha256.

    The same run always gets the same UUID; consumers that order runs by
    their UUIDv7 (Marquez) see them in the order they started.
    """
    digest = hashlib.sha256(run_id.encode("utf-8")).digest()
    stamp = (start_ms or 0) & ((1 << 48) - 1)
    rand_a = int.from_bytes(digest[:2], "big") & 0x0FFF
    rand_b = int.from_bytes(digest[2:10], "big") & ((1 << 62) - 1)
    value = (stamp << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return str(uuid.UUID(int=value))


def event_time(ms: int | None, fallback: str) -> str:
    """RFC 3339 UTC with milliseconds, from MLflow's epoch milliseconds (else the record's)."""
    if ms is not None:
        moment = datetime.fromtimestamp(ms / 1000, UTC)
    else:
        moment = datetime.fromisoformat(fallback)
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def terminal_type(record: ProvenanceRecord, mlflow_status: str) -> str:
    if mlflow_status.upper() == "FAILED":
        return "FAIL"
    if mlflow_status.upper() == "KILLED":
        return "ABORT"
    return _TERMINAL.get(dvflow_status(record), "COMPLETE")


def dvflow_status(record: ProvenanceRecord) -> str:
    """A stage's ran/restored/up-to-date/failed/...; a pipeline's MLflow status, lower case."""
    if record.stage is not None and record.stage.get("status"):
        return str(record.stage["status"]).lower()
    return record.status.lower()


def job_name(record: ProvenanceRecord) -> str:
    """DVC's stage address from the repository root (``dvc.yaml:train``, ``sub/dvc.yaml:train``).

    A record's stage name is already that address, except for the root's own
    dvc.yaml (``train``); a pipeline run's job is its project's ``dvc.yaml``.
    """
    if record.kind == "pipeline" or record.stage is None:
        return job_name_of_pipeline(record)
    name = str(record.stage["name"])
    return name if ":" in name else f"dvc.yaml:{name}"


def _facet(facet: str, **fields: Any) -> dict[str, Any]:
    return {"_producer": PRODUCER, "_schemaURL": _FACETS + FACET_SCHEMAS[facet], **fields}


def _job(record: ProvenanceRecord, ctx: RunContext) -> dict[str, Any]:
    facets: dict[str, Any] = {
        "jobType": _facet(
            "jobType",
            processingType="BATCH",
            integration="DVC",
            jobType="DAG" if record.kind == "pipeline" else "TASK",
        )
    }
    code = _source_code(record)
    if code is not None:
        facets["sourceCodeLocation"] = code
    return {"namespace": ctx.job_namespace, "name": job_name(record), "facets": facets}


def _source_code(record: ProvenanceRecord) -> dict[str, Any] | None:
    repo = record.code.get("repo_url")
    web = repo_web_url(repo)
    if not repo or not web:
        return None  # a repository with no remote: no URL another system could follow
    commit, folder = record.code.get("commit"), record.code.get("dvc_root") or ""
    fields: dict[str, Any] = {"type": "git", "repoUrl": strip_userinfo(repo)}
    fields["url"] = f"{web}/tree/{commit}/{folder}".rstrip("/") if commit else web
    if commit:
        fields["version"] = commit
    if record.code.get("branch"):
        fields["branch"] = record.code["branch"]
    fields["path"] = folder or "."
    return _facet("sourceCodeLocation", **fields)


def _run(record: ProvenanceRecord, ctx: RunContext, terminal: str | None) -> dict[str, Any]:
    facets: dict[str, Any] = {
        "processing_engine": _facet(
            "processing_engine",
            name="DVC",
            version=record.environment.get("dvc") or "unknown",
            openlineageAdapterVersion=__version__,
        ),
        "dvflow_provenance": _provenance(record, ctx),
    }
    if ctx.parent is not None:
        parent_id, parent_start = ctx.parent
        facets["parent"] = _facet(
            "parent",
            run={"runId": run_uuid(parent_id, parent_start)},
            job={"namespace": ctx.job_namespace, "name": job_name_of_pipeline(record)},
        )
    if terminal == "FAIL" and record.kind == "stage" and record.stage is not None:
        facets["errorMessage"] = _facet(
            "errorMessage",
            message=f"DVC stage {record.stage['name']!r} failed: {record.stage['cmd']}",
            programmingLanguage="SHELL",
        )
    return {"runId": run_uuid(ctx.run_id, ctx.start_ms), "facets": facets}


def job_name_of_pipeline(record: ProvenanceRecord) -> str:
    folder = record.code.get("dvc_root") or ""
    return f"{folder}/dvc.yaml" if folder else "dvc.yaml"


def _provenance(record: ProvenanceRecord, ctx: RunContext) -> dict[str, Any]:
    """The record's facet; a field it lacks is left out (OpenLineage clients drop nulls)."""
    fields = {
        "_producer": PRODUCER,
        "_schemaURL": PROVENANCE_SCHEMA_URL,
        "recordSha256": ctx.record_sha256,
        "trackingUri": ctx.tracking_uri,
        "runId": ctx.run_id,
        "experimentId": record.mlflow.get("experiment_id", ""),
        "kind": record.kind,
        "status": dvflow_status(record),
        "params": dict(sorted(record.params.items())),
        "metrics": dict(sorted(record.metrics.items())),
        "gitCommit": record.code.get("commit"),
        "dirty": bool(record.code.get("dirty")),
        "patchSha256": record.code.get("patch_sha256"),
    }
    return {key: value for key, value in fields.items() if value is not None}


def dataset(pointer: Pointer, ctx: RunContext) -> dict[str, Any]:
    """One DVC pointer: the work-tree path, at its md5, linked to its object in the remote."""
    facets: dict[str, Any] = {}
    if pointer.md5:
        facets["version"] = _facet("version", datasetVersion=pointer.md5)
    if pointer.remote_uri:
        namespace, name = location(pointer.remote_uri, ctx.azure_accounts)
        facets["symlinks"] = _facet(
            "symlinks", identifiers=[{"namespace": namespace, "name": name, "type": "FILE"}]
        )
    fields = ctx.pii.get((pointer.path, pointer.md5 or ""))
    if fields is not None:
        facets["tags"] = pii_tags(fields)
    source = ctx.imports.get((pointer.path, pointer.md5 or ""))
    if source is not None:
        facets["dvflow_import"] = {
            "_producer": PRODUCER,
            "_schemaURL": IMPORT_SCHEMA_URL,
            "url": strip_userinfo(source.get("url", "")),
            "path": source.get("path", ""),
            "rev": source.get("rev", ""),
            "revLock": source.get("rev_lock", ""),
        }
    return {"namespace": ctx.dataset_namespace, "name": pointer.path, "facets": facets}


def pii_tags(fields: Sequence[str]) -> dict[str, Any]:
    """The ``tags`` facet of a dataset holding personal data: ``pii``, and one per field."""
    tags = [{"key": "pii", "value": "true", "source": "DVFLOW"}]
    tags += [{"key": "pii", "value": "true", "source": "DVFLOW", "field": f} for f in fields]
    return _facet("tags", tags=tags)


def model_dataset(name: str, version: str, ctx: RunContext) -> dict[str, Any]:
    facets = {
        "datasetType": _facet("datasetType", datasetType="MODEL"),
        "version": _facet("version", datasetVersion=version),
    }
    if (name, version) in ctx.pii_models:
        facets["tags"] = pii_tags(())
    return {"namespace": ctx.tracking_namespace, "name": f"{name}/{version}", "facets": facets}


def run_events(record: ProvenanceRecord, ctx: RunContext) -> list[dict[str, Any]]:
    """The START and the terminal event of one recorded run, in that order."""
    terminal = terminal_type(record, ctx.mlflow_status)
    job = _job(record, ctx)
    inputs = [dataset(p, ctx) for p in record.inputs]
    outputs = [dataset(p, ctx) for p in record.outputs]
    outputs += [model_dataset(n, v, ctx) for n, v in sorted(ctx.models)]
    base = {"producer": PRODUCER, "schemaURL": SCHEMA_URL, "job": job}
    start = {
        **base,
        "eventType": "START",
        "eventTime": event_time(ctx.start_ms, record.started),
        "run": _run(record, ctx, None),
        "inputs": inputs,
        "outputs": [],
    }
    end = {
        **base,
        "eventType": terminal,
        "eventTime": event_time(ctx.end_ms if ctx.end_ms else ctx.start_ms, record.ended),
        "run": _run(record, ctx, terminal),
        "inputs": inputs,
        "outputs": outputs,
    }
    return [start, end]


def event_line(event: Mapping[str, Any], redactor: Redactor) -> str:
    """One event as a JSON line; every credential dvflow knows of is masked."""
    text = canonical_json(event).decode("utf-8")
    for secret in sorted(redactor.secrets, key=len, reverse=True):
        text = text.replace(json.dumps(secret)[1:-1], "***")
    return text
