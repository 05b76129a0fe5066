"""The MLflow side of gc: which soft-deleted runs and logged models ``mlflow gc`` may take.

``mlflow gc`` hard-deletes soft-deleted runs with their artifacts even when a
registered model version needs them (MLflow issue 3160). dvflow reads what
is soft-deleted in the project's experiments and refuses, by name and with
the command that restores it, everything that backs a protected model
version or lies in its lineage:

- the version's own run, and its logged model (``model_id``, a
  ``models:/m-...`` or ``runs:/RUN/...`` source);
- every stage run upstream of it (what ``dvflow lineage models:/NAME/V``
  walks in the lineage index) and their pipeline runs;
- the logged models those runs made, and a deleted experiment holding any
  of them.

The rest is handed to the user as one ``mlflow gc`` command naming exactly
what it may delete; dvflow never runs it. Without ``--run-ids``,
``--logged-model-ids`` or ``--experiment-ids``, ``mlflow gc`` takes *every*
deleted entity of that kind in the store, so a kind with refused (or
unjudged) entities and none to delete blocks the command until they are
restored.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypedDict

from dvflow.core._exceptions import InvalidArgumentError, TargetNotFoundError
from dvflow.core._redact import Redactor
from dvflow.core._roots import project_roots

if TYPE_CHECKING:
    from dvflow.stores._deleted import DeletedReader, StoreExperiment, VersionFacts

Protect = Literal["aliased", "registered"]
Kind = Literal["run", "logged_model", "experiment"]
KEEP_TAG = "dvflow.keep"
_RUN_SOURCE = re.compile(r"^runs:/([0-9a-f]{32})(/|$)")
_MODEL_SOURCE = re.compile(r"^models:/(m-[0-9a-f]+)$")
_MODEL_ID = re.compile(r"^m-[0-9a-f]+$")
_FLAGS: Mapping[Kind, str] = {
    "run": "--run-ids",
    "logged_model": "--logged-model-ids",
    "experiment": "--experiment-ids",
}
_WORDS: Mapping[Kind, str] = {
    "run": "run",
    "logged_model": "logged model",
    "experiment": "experiment",
}


class EntityJSON(TypedDict):
    kind: str
    id: str
    name: str
    experiment_id: str
    protected_by: list[str]
    why: str
    restore: str | None


class MlflowGcJSON(TypedDict):
    """The documented ``dvflow gc mlflow --json`` shape (docs/cli.md)."""

    format: int
    store: str
    experiments: list[dict[str, str | bool]]
    protect: str
    protected_versions: list[str]
    refused: list[EntityJSON]
    deletable: list[EntityJSON]
    outside: list[EntityJSON]
    command: list[str] | None
    command_text: str | None
    blocked: list[str]
    warnings: list[str]


@dataclass(frozen=True)
class Entity:
    """A soft-deleted run, logged model or experiment, and what keeps it (if anything)."""

    kind: Kind
    id: str
    name: str
    experiment_id: str
    protected_by: tuple[str, ...] = ()
    why: str = ""
    restore: str | None = None

    @property
    def label(self) -> str:
        shown = f" ({self.name})" if self.name and self.name != self.id else ""
        return f"{_WORDS[self.kind]} {self.id}{shown}"

    def to_dict(self) -> EntityJSON:
        return {
            "kind": self.kind,
            "id": self.id,
            "name": self.name,
            "experiment_id": self.experiment_id,
            "protected_by": list(self.protected_by),
            "why": self.why,
            "restore": self.restore,
        }


@dataclass(frozen=True)
class MlflowGcPlan:
    """What ``mlflow gc`` may delete in a project's experiments, and what it must not."""

    store: str  # redacted
    experiments: tuple[StoreExperiment, ...]
    protect: Protect
    protected_versions: tuple[str, ...]
    refused: tuple[Entity, ...]
    deletable: tuple[Entity, ...]
    outside: tuple[Entity, ...]  # deleted in other experiments: not judged, not planned
    command: tuple[str, ...] | None  # redacted argv; None: nothing to delete
    blocked: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default=())

    @property
    def command_text(self) -> str | None:
        return shlex.join(self.command) if self.command else None

    def to_dict(self) -> MlflowGcJSON:
        return {
            "format": 1,
            "store": self.store,
            "experiments": [
                {"id": e.experiment_id, "name": e.name, "deleted": e.deleted}
                for e in self.experiments
            ],
            "protect": self.protect,
            "protected_versions": list(self.protected_versions),
            "refused": [e.to_dict() for e in self.refused],
            "deletable": [e.to_dict() for e in self.deletable],
            "outside": [e.to_dict() for e in self.outside],
            "command": list(self.command) if self.command else None,
            "command_text": self.command_text,
            "blocked": list(self.blocked),
            "warnings": list(self.warnings),
        }


@dataclass
class _Keep:
    """Protected ids by kind, each with the versions that protect it and how."""

    found: dict[tuple[Kind, str], tuple[list[str], str]] = field(default_factory=dict)

    def add(self, kind: Kind, entity_id: str, version: str, why: str) -> None:
        if not entity_id:
            return
        versions, _ = self.found.setdefault((kind, entity_id), ([], why))
        if version not in versions:
            versions.append(version)

    def get(self, kind: Kind, entity_id: str) -> tuple[list[str], str] | None:
        return self.found.get((kind, entity_id))


def plan_mlflow_gc(
    path: str | os.PathLike[str] = ".",
    *,
    tracking_uri: str | None = None,
    protect: Protect = "aliased",
    experiments: Sequence[str] = (),
    backend_store_uri: str | None = None,
) -> MlflowGcPlan:
    """Judge every soft-deleted run and logged model of the project's experiments.

    ``experiments``: names (or ids) to judge besides the project's own.
    ``backend_store_uri``: the tracking server's database, to read its
    deleted logged models and to name it in the ``mlflow gc`` command (a
    SQL tracking URI is its own).
    """
    from dvflow.stores._deleted import DeletedReader, is_database_uri
    from dvflow.stores._tracking import open_project

    if protect not in ("aliased", "registered"):
        raise InvalidArgumentError("--protect", protect, "use 'aliased' or 'registered'")
    if backend_store_uri is not None and not is_database_uri(backend_store_uri):
        raise InvalidArgumentError(
            "--backend-store-uri",
            Redactor().redact(backend_store_uri),
            "give the tracking server's database URI (postgresql://..., mysql://..., "
            "sqlite:///...), as 'mlflow gc' needs it",
        )
    _, config, tracker = open_project(path, tracking_uri)
    reader = DeletedReader(tracker, backend_store_uri)
    every = reader.experiments()
    scope = _scope(every, [config.experiment, *experiments])
    versions = _protected(reader.model_versions(), protect)
    keep, warnings = _keep_set(versions, Path(path), config.tracking_uri)
    return _judge(
        reader,
        uri=tracker.uri,
        every=every,
        scope=scope,
        protect=protect,
        versions=versions,
        keep=keep,
        warnings=warnings,
    )


def _scope(every: Sequence[StoreExperiment], wanted: Iterable[str]) -> list[StoreExperiment]:
    names = set(wanted)
    return [e for e in every if e.name in names or e.experiment_id in names]


def _protected(
    versions: Sequence[VersionFacts], protect: Protect
) -> list[tuple[str, VersionFacts]]:
    """The protected versions, each with the label that says why."""
    chosen = []
    for v in sorted(versions, key=lambda v: (v.name, int(v.version))):
        label = f"{v.name} v{v.version}"
        if v.aliases:
            chosen.append((label + "".join(f" @{a}" for a in v.aliases), v))
        elif KEEP_TAG in v.tags:
            chosen.append((f"{label} ({KEEP_TAG})", v))
        elif protect == "registered":
            chosen.append((f"{label} (registered)", v))
    return chosen


def _keep_set(
    versions: Sequence[tuple[str, VersionFacts]], path: Path, tracking_uri: str
) -> tuple[_Keep, list[str]]:
    """Every run and logged model the protected versions need, from their lineage."""
    keep = _Keep()
    for label, v in versions:
        keep.add("run", v.run_id, label, f"the run of {label}")
        if m := _RUN_SOURCE.match(v.source):
            keep.add("run", m.group(1), label, f"holds the model files of {label}")
        if m := _MODEL_SOURCE.match(v.source):
            keep.add("logged_model", m.group(1), label, f"the logged model of {label}")
        keep.add("logged_model", v.model_id, label, f"the logged model of {label}")
    if not versions:
        return keep, []
    return keep, _keep_lineage(keep, versions, path, tracking_uri)


def _keep_lineage(
    keep: _Keep, versions: Sequence[tuple[str, VersionFacts]], path: Path, tracking_uri: str
) -> list[str]:
    """Add the runs 'dvflow lineage models:/NAME/V' walks; one index, read fresh, for all."""
    from dvflow.trace._lineage import build_graph
    from dvflow.trace._queries import open_index

    root, project = project_roots(path)
    index, _, warnings = open_index(root, tracking_uri=tracking_uri, sync=True, project=project)
    try:
        for label, v in versions:
            try:
                graph = build_graph(index.db, root, f"models:/{v.name}/{v.version}", "upstream")
            except TargetNotFoundError:
                warnings.append(
                    f"{label} is not in this project's lineage index: only its own run and "
                    "logged model are protected"
                )
                continue
            for node in graph.of_kind("run"):
                keep.add("run", node.id.partition(":")[2], label, f"in the lineage of {label}")
                if parent := node.attrs.get("parent_run_id"):
                    why = f"the pipeline run of a stage of {label}"
                    keep.add("run", str(parent), label, why)
    finally:
        index.close()
    return warnings


def _judge(
    reader: DeletedReader,
    *,
    uri: str,
    every: Sequence[StoreExperiment],
    scope: Sequence[StoreExperiment],
    protect: Protect,
    versions: Sequence[tuple[str, VersionFacts]],
    keep: _Keep,
    warnings: list[str],
) -> MlflowGcPlan:
    in_scope = {e.experiment_id for e in scope}
    runs = reader.deleted_runs([e.experiment_id for e in every])
    models = reader.deleted_models()
    # Logged models the protected runs made are kept with them.
    for model in models or ():
        if found := keep.get("run", model.source_run_id):
            for label in found[0]:
                keep.add("logged_model", model.model_id, label, f"made by a run of {label}")
    deleted = [e for e in every if e.deleted]
    _keep_experiments(reader, keep, [e for e in deleted if e.experiment_id in in_scope])
    entities = [
        *(Entity("run", r.run_id, r.stage or r.name, r.experiment_id) for r in runs),
        *(Entity("logged_model", m.model_id, m.name, m.experiment_id) for m in models or ()),
        *(Entity("experiment", e.experiment_id, e.name, e.experiment_id) for e in deleted),
    ]
    refused, deletable, outside = [], [], []
    for entity in entities:
        if entity.experiment_id not in in_scope:
            outside.append(entity)
        elif found := keep.get(entity.kind, entity.id):
            refused.append(_refuse(entity, found, uri, reader.backend_store_uri))
        else:
            deletable.append(entity)
    if models is None:
        warnings.append(
            "deleted logged models are not listed: a tracking server does not list them; "
            "pass --backend-store-uri (the server's database, as 'mlflow gc' needs it)"
        )
    command, blocked = _command(
        uri,
        database=reader.backend_store_uri,
        refused=refused,
        deletable=deletable,
        outside=outside,
        models=models,
    )
    return MlflowGcPlan(
        store=Redactor().redact(uri),
        experiments=tuple(scope),
        protect=protect,
        protected_versions=tuple(label for label, _ in versions),
        refused=tuple(refused),
        deletable=tuple(deletable),
        outside=tuple(outside),
        command=command,
        blocked=tuple(blocked),
        warnings=tuple(warnings),
    )


def _keep_experiments(
    reader: DeletedReader, keep: _Keep, deleted: Sequence[StoreExperiment]
) -> None:
    """Keep a deleted experiment holding a protected run: 'mlflow gc' would take it too."""
    for experiment in deleted:
        for run_id in reader.run_ids([experiment.experiment_id]):
            if found := keep.get("run", run_id):
                for label in found[0]:
                    why = f"holds run {run_id}, {found[1]}"
                    keep.add("experiment", experiment.experiment_id, label, why)


def _refuse(entity: Entity, found: tuple[list[str], str], uri: str, database: str | None) -> Entity:
    versions, why = found
    return Entity(
        entity.kind,
        entity.id,
        entity.name,
        entity.experiment_id,
        tuple(versions),
        why,
        _restore(entity, uri, database),
    )


def _restore(entity: Entity, uri: str, database: str | None) -> str:
    """The command that brings ``entity`` back to the ``active`` stage."""
    env = f"MLFLOW_TRACKING_URI={shlex.quote(Redactor().redact(uri))}"
    if entity.kind == "run":
        return f"{env} mlflow runs restore --run-id {entity.id}"
    if entity.kind == "experiment":
        return f"{env} mlflow experiments restore --experiment-id {entity.id}"
    # MLflow has no API that restores a logged model: its row says 'deleted'.
    if not _MODEL_ID.match(entity.id):
        return "MLflow has no command to restore a logged model"
    # Shown for the user to run, never executed here; the id is checked above.
    update = f"UPDATE logged_models SET lifecycle_stage = 'active' WHERE model_id = '{entity.id}'"  # noqa: S608
    if database and database.startswith("sqlite:///"):
        return f'sqlite3 {shlex.quote(database[len("sqlite:///") :])} "{update}"'
    return f"in the store's database: {update}"


def _command(
    uri: str,
    *,
    database: str | None,
    refused: Sequence[Entity],
    deletable: Sequence[Entity],
    outside: Sequence[Entity],
    models: Sequence[object] | None,
) -> tuple[tuple[str, ...] | None, list[str]]:
    """The ``mlflow gc`` argv (redacted) naming exactly ``deletable``, and what blocks it."""
    if not deletable:
        return None, []
    redact = Redactor().redact
    argv = ["mlflow", "gc", "--backend-store-uri"]
    argv.append(redact(database) if database else "<the tracking server's database URI>")
    argv += ["--tracking-uri", redact(uri)]
    blocked = []
    if database is None:
        blocked.append("'mlflow gc' needs the tracking server's database: pass --backend-store-uri")
    for kind, flag in _FLAGS.items():
        ids = sorted(e.id for e in deletable if e.kind == kind)
        if ids:
            argv += [flag, ",".join(ids)]
            continue
        kept = [e for e in (*refused, *outside) if e.kind == kind]
        if kind == "logged_model" and models is None:
            blocked.append(
                "without --logged-model-ids 'mlflow gc' hard-deletes every deleted logged "
                "model of the store, and dvflow cannot list them here"
            )
        elif kept:
            shown = ", ".join(e.id for e in kept[:5]) + (", ..." if len(kept) > 5 else "")
            blocked.append(
                f"without {flag} 'mlflow gc' hard-deletes every deleted {_WORDS[kind]} of the "
                f"store, {len(kept)} kept here too ({shown}): restore them first"
            )
    return tuple(argv), blocked
