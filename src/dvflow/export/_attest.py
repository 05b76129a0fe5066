"""``dvflow attest``: a signed in-toto statement of what made a model version (or a stage run).

The stage run's record and every record upstream of it (the lineage
closure) must match their digests; every model file and every input of the
closure is hashed (sha256, its DVC md5 checked on the way); the statement
is signed in a DSSE envelope, logged as an artifact of the producing run,
and its sha256 set as a tag on the model version (or the run).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dvflow.core._exceptions import (
    DvflowError,
    InvalidArgumentError,
    NotFoundError,
    RecordTamperedError,
)
from dvflow.core._record import ProvenanceRecord, canonical_json, sha256_hex

from ._bundle import bundle_bytes
from ._content import ContentProblem, Digested, digest
from ._dsse import PrivateKey, envelope_bytes, keyid, load_private_key, sign_envelope
from ._statement import Subject, builder_id, dependency_json, statement

if TYPE_CHECKING:
    from dvflow.stores._dvc import DvcProject
    from dvflow.stores._tracking import Tracker

ATTESTATION_TAG = "dvflow.attestation_sha256"
ATTESTATION_ARTIFACT_TAG = "dvflow.attestation"
ARTIFACT_DIR = "dvflow/attestations"
_RUN_ID = re.compile(r"[0-9a-f]{32}")
_EXAMPLES = "For example models:/wine-classifier/1, models:/wine-classifier@production or a run id."


@dataclass(frozen=True)
class Target:
    """What an attestation is about: a stage run, and the model version when one was named."""

    text: str
    run_id: str
    model_name: str | None = None
    model_version: str | None = None
    model_path: str | None = None
    model_md5: str | None = None
    record_sha256: str | None = None  # the version's tag
    source: str | None = None
    tags: tuple[tuple[str, str], ...] = ()

    @property
    def model_uri(self) -> str | None:
        if self.model_name is None:
            return None
        return f"models:/{self.model_name}/{self.model_version}"

    @property
    def artifact(self) -> str:
        if self.model_name is None:
            return f"{ARTIFACT_DIR}/run.intoto.json"
        safe = re.sub(r"[^\w.-]", "_", self.model_name)
        return f"{ARTIFACT_DIR}/{safe}-v{self.model_version}.intoto.json"

    def tag(self, key: str) -> str | None:
        return dict(self.tags).get(key)


@dataclass(frozen=True)
class Attestation:
    target: Target
    envelope: bytes
    sha256: str
    keyid: str
    subjects: int
    dependencies: int
    records: int
    artifact: str = ""

    @property
    def default_file(self) -> str:
        return Path(self.artifact or self.target.artifact).name


def parse_target(text: str) -> tuple[str, str, str]:
    """('run', id, '') or ('version', name, version) or ('alias', name, alias)."""
    value = text.strip()
    if value.startswith("models:/"):
        rest = value[len("models:/") :]
        if "@" in rest:
            name, alias = rest.rsplit("@", 1)
            if name and alias:
                return "alias", name, alias
        else:
            name, _, version = rest.rpartition("/")
            if name and version.isdigit():
                return "version", name, version
        raise InvalidArgumentError(
            "model", value, "give models:/NAME/VERSION or models:/NAME@ALIAS", _EXAMPLES
        )
    if _RUN_ID.fullmatch(value):
        return "run", value, ""
    raise NotFoundError(
        f"{value!r} is not a stage run id or a model version",
        hint="Give a stage run's 32-character id, models:/NAME/VERSION or models:/NAME@ALIAS.",
    )


def resolve_target(tracker: Tracker, text: str) -> Target:
    kind, first, second = parse_target(text)
    if kind == "run":
        return Target(text, first)
    mv = (
        tracker.model_version(first, second)
        if kind == "version"
        else tracker.version_by_alias(first, second)
    )
    tags = dict(mv.tags or {})
    run_id = tags.get("dvflow.run_id") or mv.run_id
    if not run_id or not tags.get("dvflow.model_md5"):
        raise NotFoundError(
            f"{text} was not registered by dvflow (no dvflow.run_id / dvflow.model_md5 tags)",
            hint="Attest versions that 'dvflow run' or 'dvflow register' made.",
        )
    return Target(
        text,
        run_id,
        model_name=first,
        model_version=str(mv.version),
        model_path=tags.get("dvflow.model_path") or "model",
        model_md5=tags["dvflow.model_md5"],
        record_sha256=tags.get("dvflow.record_sha256"),
        source=str(mv.source or ""),
        tags=tuple(sorted(tags.items())),
    )


def attest(
    target: str,
    key: str | os.PathLike[str],
    path: str | os.PathLike[str] = ".",
    *,
    tracking_uri: str | None = None,
    passphrase: bytes | None = None,
    stages: bool = False,
) -> Attestation:
    """Sign a statement of what made ``target``, log it to the run and tag the version.

    ``stages``: a bundle (JSON lines) with one more signed statement per
    upstream stage run, whose subjects are its outputs (``_bundle``).
    """
    from dvflow.core._roots import settings_root
    from dvflow.stores._dvc import DvcProject
    from dvflow.stores._tracking import open_project
    from dvflow.trace._records import note_store

    private = load_private_key(key, passphrase)  # a bad key fails before any work
    root, _, tracker = open_project(path, tracking_uri)
    project_dir = settings_root(Path(path).resolve(), root)
    resolved = resolve_target(tracker, target)
    project = DvcProject(project_dir)
    try:
        payloads = [
            build_statement(
                tracker,
                project=project,
                root=root,
                target=target_run,
                path=path,
                tracking_uri=tracking_uri,
            )
            for target_run in _targets(
                tracker, resolved, path=path, tracking_uri=tracking_uri, stages=stages
            )
        ]
    finally:
        project.close()
    signed = [sign_envelope(payload, private) for payload, _ in payloads]
    envelope = bundle_bytes(signed) if stages else envelope_bytes(signed[0])
    artifact = resolved.artifact + ("l" if stages else "")  # .intoto.jsonl
    sha = sha256_hex(envelope)
    tracker.log_bytes(resolved.run_id, envelope, artifact)
    tags = {ATTESTATION_TAG: sha, ATTESTATION_ARTIFACT_TAG: artifact}
    if resolved.model_name is not None:
        assert resolved.model_version is not None
        tracker.set_version_tags(resolved.model_name, resolved.model_version, tags)
    else:
        tracker.set_tags(resolved.run_id, tags)
    note_store(project_dir, tracker)
    counts = payloads[0][1]
    return Attestation(resolved, envelope, sha, _keyid(private), *counts, artifact=artifact)


def _targets(
    tracker: Tracker,
    target: Target,
    *,
    path: str | os.PathLike[str],
    tracking_uri: str | None,
    stages: bool,
) -> list[Target]:
    """The target, and with ``stages`` every other stage run of its closure (oldest first)."""
    if not stages:
        return [target]
    record, sha = stage_record(tracker, target)
    closure = closure_records(tracker, record, sha, path, tracking_uri)
    others = [r.mlflow["run_id"] for r, _ in closure if r.mlflow["run_id"] != target.run_id]
    return [target, *(Target(run_id, run_id) for run_id in others)]


def _keyid(private: PrivateKey) -> str:
    return keyid(private.public_key())


def build_statement(
    tracker: Tracker,
    *,
    project: DvcProject,
    root: Path,
    target: Target,
    path: str | os.PathLike[str],
    tracking_uri: str | None,
) -> tuple[bytes, tuple[int, int, int]]:
    """The statement's canonical JSON, and its counts (subjects, dependencies, records)."""
    from dvflow.core._version import __version__

    record, sha = stage_record(tracker, target)
    closure = closure_records(tracker, record, sha, path, tracking_uri)
    subjects = _subjects(project, root, record, target)
    dependencies = closure_dependencies(project, root, closure)
    data = statement(
        subjects=subjects,
        record=record,
        record_sha256=sha,
        closure=closure,
        dependencies=dependencies,
        builder=builder_id(),
        dvflow_version=__version__,
    )
    counts = (len(data["subject"]), len(dependencies), len(closure))
    return canonical_json(data), counts


def stage_record(tracker: Tracker, target: Target) -> tuple[ProvenanceRecord, str]:
    """The target's stage record, intact, and the one the version's tag names."""
    from dvflow.proof._show import intact_record

    record, _, sha = intact_record(tracker, target.run_id)
    if target.record_sha256 is not None and target.record_sha256 != sha:
        raise RecordTamperedError(target.run_id, target.record_sha256, sha)
    if record.kind != "stage":
        raise InvalidArgumentError(
            "target", target.text, "it is a pipeline run", "Attest a stage run or a model version."
        )
    return record, sha


def closure_records(
    tracker: Tracker,
    record: ProvenanceRecord,
    sha: str,
    path: str | os.PathLike[str],
    tracking_uri: str | None,
) -> list[tuple[ProvenanceRecord, str]]:
    """The stage run's record and those of every stage run upstream of it (each intact)."""
    from dvflow.proof._show import intact_record
    from dvflow.trace._queries import lineage

    own = record.mlflow["run_id"]
    graph = lineage(own, path, tracking_uri=tracking_uri, sync=True)
    found = {own: (record, sha)}
    for node in graph.of_kind("run"):
        run_id = node.id.partition(":")[2]
        if run_id in found:
            continue
        upstream, _, digest_now = intact_record(tracker, run_id)
        if upstream.kind == "stage":
            found[run_id] = (upstream, digest_now)
    return sorted(found.values(), key=lambda item: (item[0].started, item[0].mlflow["run_id"]))


def closure_dependencies(
    project: DvcProject, root: Path, closure: Sequence[tuple[ProvenanceRecord, str]]
) -> list[dict[str, Any]]:
    """Every input of every stage run of the closure, hashed, once per (path, md5)."""
    readers: dict[tuple[str, str], list[tuple[str, str]]] = {}
    commits: dict[tuple[str, str], str | None] = {}
    for record, _ in closure:
        stage = record.stage["name"] if record.stage else ""
        for pointer in record.inputs:
            if not pointer.md5:
                continue
            key = (pointer.path, pointer.md5)
            readers.setdefault(key, []).append((stage, record.mlflow["run_id"]))
            commits.setdefault(key, record.code.get("commit"))
    out = []
    for key in sorted(readers):
        out.append(dependency_json(_digest(project, root, *key, commits[key]), readers[key]))
    return out


def _subjects(
    project: DvcProject, root: Path, record: ProvenanceRecord, target: Target
) -> list[Subject]:
    commit = record.code.get("commit")
    run_id = record.mlflow["run_id"]
    if target.model_name is not None:
        assert target.model_path is not None
        assert target.model_md5 is not None
        notes = {
            "mlflow_model_uri": target.model_uri or "",
            "mlflow_run_id": run_id,
            "mlflow_source": target.source or "",
        }
        return [Subject(_digest(project, root, target.model_path, target.model_md5, commit), notes)]
    outputs = [p for p in record.outputs if p.md5]
    if not outputs:
        raise NotFoundError(
            f"run {run_id} has no output with a DVC md5 to attest",
            hint="Attest a stage run whose outputs DVC tracks, or a model version.",
        )
    notes = {"mlflow_run_id": run_id}
    return [Subject(_digest(project, root, p.path, p.md5 or "", commit), notes) for p in outputs]


def _digest(project: DvcProject, root: Path, path: str, md5: str, commit: str | None) -> Digested:
    try:
        return digest(project, root, path, md5, commit)
    except ContentProblem as exc:
        raise DvflowError(
            f"cannot attest: {exc}",
            hint="Fetch the data ('dvc fetch' or 'dvc pull'), then attest again; "
            "an attestation names only bytes dvflow has hashed.",
        ) from None
