"""What a tracking store holds in the ``deleted`` lifecycle stage, and its model versions.

``mlflow gc`` hard-deletes runs, logged models and experiments that were
soft-deleted; the MLflow side of dvflow's gc reads them here first. Runs and
experiments are read through the client (a tracking server too). Deleted
logged models are listed by no API, so they are read from the backend
store's database: the tracking URI when it is one, else the database URI
the caller passes (the one ``mlflow gc --backend-store-uri`` needs anyway).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ._tracking import Tracker, mlflow_errors, pages

# MLflow's ViewType values, without importing MLflow at module level.
_ACTIVE, _DELETED, _ALL = 1, 2, 3
_DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")


@dataclass(frozen=True)
class StoreExperiment:
    experiment_id: str
    name: str
    deleted: bool


@dataclass(frozen=True)
class DeletedRun:
    run_id: str
    experiment_id: str
    name: str
    kind: str  # dvflow's 'stage' or 'pipeline'; '' for other runs
    stage: str


@dataclass(frozen=True)
class DeletedModel:
    """A logged model (MLflow 3) in the ``deleted`` stage."""

    model_id: str
    name: str
    experiment_id: str
    source_run_id: str


@dataclass(frozen=True)
class VersionFacts:
    """One registered model version, as gc judges it."""

    name: str
    version: str
    run_id: str
    source: str
    model_id: str
    aliases: tuple[str, ...]
    tags: dict[str, str]


def is_database_uri(uri: str) -> bool:
    return uri.partition(":")[0].partition("+")[0] in _DATABASE_SCHEMES


class DeletedReader:
    """Reads a store's soft-deleted runs, logged models and experiments."""

    def __init__(self, tracker: Tracker, backend_store_uri: str | None = None) -> None:
        self.tracker = tracker
        self.client = tracker.client
        if backend_store_uri is None and is_database_uri(tracker.uri):
            backend_store_uri = tracker.uri
        self.backend_store_uri = backend_store_uri

    def experiments(self) -> list[StoreExperiment]:
        """Every experiment of the store, deleted ones too."""
        with mlflow_errors(self.tracker.uri):
            found = self.client.search_experiments(view_type=_ALL, max_results=50000)
        return [
            StoreExperiment(str(e.experiment_id), e.name, e.lifecycle_stage == "deleted")
            for e in found
        ]

    def deleted_runs(self, experiment_ids: Sequence[str]) -> list[DeletedRun]:
        """The runs in the ``deleted`` stage in these experiments."""
        return [_deleted_run(run) for run in self._runs(experiment_ids, _DELETED)]

    def run_ids(self, experiment_ids: Sequence[str]) -> list[str]:
        """Every run of these experiments, whatever its stage."""
        return [str(run.info.run_id) for run in self._runs(experiment_ids, _ALL)]

    def _runs(self, experiment_ids: Sequence[str], view: int) -> Iterator[Any]:
        ids = list(experiment_ids)
        for start in range(0, len(ids), 100):
            chunk = ids[start : start + 100]
            with mlflow_errors(self.tracker.uri):
                search = functools.partial(self.client.search_runs, chunk, run_view_type=view)
                yield from pages(search, 50000)

    def deleted_models(self) -> list[DeletedModel] | None:
        """Every logged model in the ``deleted`` stage; None when no database can be read."""
        if self.backend_store_uri is None:
            return None
        uri = self.backend_store_uri
        with mlflow_errors(uri):
            store = _sql_store(uri)
            found = []
            for model_id in store._get_deleted_logged_models():
                model = store.get_logged_model(model_id, allow_deleted=True)
                found.append(
                    DeletedModel(
                        str(model.model_id),
                        model.name or "",
                        str(model.experiment_id),
                        model.source_run_id or "",
                    )
                )
        return sorted(found, key=lambda m: m.model_id)

    def model_versions(self) -> list[VersionFacts]:
        """Every registered model version, with its aliases and tags."""
        with mlflow_errors(self.tracker.uri):
            aliases: dict[tuple[str, str], list[str]] = {}
            for model in pages(self.client.search_registered_models, 1000):
                for alias, version in (model.aliases or {}).items():
                    aliases.setdefault((model.name, str(version)), []).append(alias)
            versions = list(pages(self.client.search_model_versions, 100_000))
        return [
            VersionFacts(
                name=v.name,
                version=str(v.version),
                run_id=v.run_id or "",
                source=v.source or "",
                model_id=getattr(v, "model_id", None) or "",
                aliases=tuple(sorted(aliases.get((v.name, str(v.version)), []))),
                tags=dict(v.tags or {}),
            )
            for v in versions
        ]


def _deleted_run(run: Any) -> DeletedRun:
    tags = run.data.tags
    return DeletedRun(
        run_id=str(run.info.run_id),
        experiment_id=str(run.info.experiment_id),
        name=run.info.run_name or "",
        kind=tags.get("dvflow.kind", ""),
        stage=tags.get("dvflow.stage", ""),
    )


def _sql_store(uri: str) -> Any:
    """MLflow's SQL store of ``uri``, read only: artifacts are never touched through it."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    return SqlAlchemyStore(uri, "mlflow-artifacts:/")  # type: ignore[no-untyped-call]
