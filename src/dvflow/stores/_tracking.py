"""The MLflow adapter: the one place dvflow talks to a tracking store.

MLflow is imported inside the functions that need it (``import mlflow``
alone costs over a second), and every MLflow or transport exception is
translated here into a DvflowError.
"""

from __future__ import annotations

import contextlib
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from dvflow.core._capture import logger_level
from dvflow.core._exceptions import (
    RecordNotFoundError,
    RunNotFoundError,
    StoreEnvironmentError,
    TrackingError,
)
from dvflow.core._redact import Redactor

from ._storecheck import (
    DATABASE_MODULES,
    check_store_location,
    database_message,
    raise_environment_problem,
)

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from dvflow.core._config import Config
    from dvflow.core._declared import MetricPoint

    from ._dataset import DvcDataset

PROBE_TIMEOUT_S = 5.0

# What MLflow, Alembic and SQLAlchemy log on stderr (retries, tracebacks of
# errors dvflow reports itself in one line): shown only with 'dvflow -v'.
_LIBRARY_LOGGERS = ("mlflow", "mlflow.store.db.utils", "alembic", "sqlalchemy", "sqlalchemy.engine")


class _LibraryLogs:
    shown = False


def show_library_logs(show: bool = True) -> None:
    """Let MLflow, Alembic and SQLAlchemy log on stderr (the CLI's -v)."""
    _LibraryLogs.shown = show


def local_artifact_root(uri: str) -> str | None:
    """Where a SQLite store keeps the artifacts of an experiment created without a location.

    Beside its file, as ``dvflow init`` lays a project out; MLflow's own
    default is ``./mlruns`` under whatever folder the process runs in. Other
    stores choose for themselves (a file store keeps artifacts inside itself).
    """
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///") :].partition("?")[0]
    if not path or path == ":memory:":
        return None
    return (Path(path).resolve().parent / "mlartifacts").as_uri()


def display_uri(uri: str) -> str:
    return Redactor().redact(uri)


def check_reachable(uri: str) -> None:
    """Fail fast, before any stage runs, when the store cannot be used."""
    if uri.startswith(("http://", "https://")):
        _probe_http(uri)
    elif uri.startswith("sqlite:///"):
        folder = Path(uri[len("sqlite:///") :]).parent
        if not folder.is_dir():
            raise TrackingError(display_uri(uri), f"folder {folder} does not exist")
    check_store_location(uri)


def check_existing_store(uri: str) -> None:
    """For reading: the store must answer, and a SQLite store must already exist.

    Opening a missing SQLite file would create an empty store wherever the
    command happens to run.
    """
    check_reachable(uri)
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).is_file():
        raise TrackingError(
            display_uri(uri),
            "no store there yet",
            hint="Run this inside a dvflow project (or pass -C DIR), or name the store "
            "with --tracking-uri.",
        )


def _probe_http(uri: str) -> None:
    from urllib.parse import urlsplit, urlunsplit

    # urllib cannot take user:pass@ in a URL; the probe needs no credentials.
    parts = urlsplit(uri)
    host = parts.netloc.rpartition("@")[2]
    url = urlunsplit((parts.scheme, host, parts.path.rstrip("/") + "/health", "", ""))
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as response:  # noqa: S310
            response.read(64)
    except urllib.error.HTTPError as exc:
        # A server that answers (401, 404 on a proxy path...) is reachable.
        if exc.code >= 500:
            raise TrackingError(
                display_uri(uri),
                f"server error {exc.code}",
                unreachable=exc.code in {502, 503, 504},
            ) from exc
    except (TimeoutError, urllib.error.URLError, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(display_uri(uri), f"unreachable ({reason})", unreachable=True) from exc


# What MLflow's HTTP client says when a request got no answer at all.
_TRANSPORT_FAILURES = (
    "Max retries exceeded",
    "Failed to establish a new connection",
    "Connection refused",
    "Connection aborted",
    "Connection reset",
    "RemoteDisconnected",
    "Read timed out",
    # urllib3 after retries: a proxy or load balancer while the server restarts.
    "too many 502",
    "too many 503",
    "too many 504",
)


def _is_transport_failure(message: str) -> bool:
    return any(text in message for text in _TRANSPORT_FAILURES)


@contextlib.contextmanager
def mlflow_errors(uri: str, run_id: str | None = None) -> Iterator[None]:
    """Translate MLflow, database and transport errors into DvflowErrors.

    MLflow's own logging (retries, the traceback of an error reported here
    in one line) stays off stderr unless ``show_library_logs()``.
    """
    from mlflow.exceptions import MlflowException

    try:
        with _quiet_libraries():
            yield
    except MlflowException as exc:
        raise_environment_problem(display_uri(uri), exc)
        code = getattr(exc, "error_code", "")
        message = str(exc.message or "")
        if run_id and (
            code == "RESOURCE_DOES_NOT_EXIST"
            or (code == "INVALID_PARAMETER_VALUE" and "'run_id'" in message)
        ):
            raise RunNotFoundError(run_id, display_uri(uri)) from exc
        if _is_transport_failure(message):
            raise TrackingError(
                display_uri(uri), f"unreachable ({_reason(message)})", unreachable=True
            ) from exc
        first_line = message.splitlines()[0] if message else code
        # A validation error: the store answered and refused a value; it is not down.
        hint = _REFUSED_HINT if code in ("INVALID_PARAMETER_VALUE", "BAD_REQUEST") else None
        raise TrackingError(display_uri(uri), Redactor().redact(first_line), hint=hint) from exc
    except (ConnectionError, OSError) as exc:
        raise_environment_problem(display_uri(uri), exc)
        raise TrackingError(
            display_uri(uri), f"unreachable ({_reason(str(exc))})", unreachable=True
        ) from exc
    except Exception as exc:
        # SQLAlchemy's and the database drivers' own errors, which MLflow lets through.
        if not type(exc).__module__.startswith(DATABASE_MODULES):
            raise
        raise_environment_problem(display_uri(uri), exc)
        message = database_message(exc)
        if _is_transport_failure(message) or "connect" in message.lower():
            raise TrackingError(
                display_uri(uri), f"unreachable ({_reason(message)})", unreachable=True
            ) from exc
        raise TrackingError(display_uri(uri), Redactor().redact(message)) from exc


@contextlib.contextmanager
def _quiet_libraries() -> Iterator[None]:
    """No MLflow, Alembic or SQLAlchemy logging on stderr, unless asked for."""
    if _LibraryLogs.shown:
        # Still no "Creating initial MLflow database tables..." at INFO.
        with logger_level("mlflow.store.db.utils", logging.WARNING):
            yield
        return
    with contextlib.ExitStack() as stack:
        for name in _LIBRARY_LOGGERS:
            stack.enter_context(logger_level(name, logging.CRITICAL + 1))
        yield


_REFUSED_HINT = (
    "The store answers: it refused a name or value dvflow sent. Run again with -v and report it."
)


def _reason(message: str) -> str:
    """The telling part of a transport error, without urllib3's nested reprs."""
    for text in _TRANSPORT_FAILURES:
        if text in message:
            if text.startswith("too many"):
                return "server unavailable"
            return text[0].lower() + text[1:]
    first = message.splitlines()[0] if message else "no answer"
    return Redactor().redact(first[:200])


def open_project(
    path: str | os.PathLike[str], tracking_uri: str | None
) -> tuple[Path, Config, Tracker]:
    """The project around ``path``: its root, its settings, and a client of its existing store."""
    from dvflow.core._config import load_config
    from dvflow.core._git import find_root
    from dvflow.core._roots import settings_root

    start = Path(path).resolve()
    root = find_root(start)
    # A 'dvc init --subdir' project keeps its own settings and store (dvflow run's).
    config = load_config(settings_root(start, root), tracking_uri=tracking_uri)
    check_existing_store(config.tracking_uri)
    return root, config, Tracker(config.tracking_uri)


class RunWriter(Protocol):
    """What a pipeline run needs from a tracking store."""

    uri: str

    def experiment_id(self, name: str, artifact_location: str | None = None) -> str: ...
    def create_run(
        self,
        experiment_id: str,
        name: str,
        tags: Mapping[str, str],
        parent_id: str | None,
        start_ms: int | None = None,
    ) -> str: ...
    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None: ...
    def log_params(self, run_id: str, params: Mapping[str, str]) -> list[str]: ...
    def log_metrics(self, run_id: str, metrics: Mapping[str, float], timestamp_ms: int) -> None: ...
    def log_metric_points(self, run_id: str, points: Sequence[MetricPoint]) -> None: ...
    def log_batch(
        self,
        run_id: str,
        params: Mapping[str, str],
        points: Sequence[MetricPoint],
        tags: Mapping[str, str],
    ) -> bool: ...
    def log_bytes(self, run_id: str, data: bytes, artifact_file: str) -> None: ...
    def log_file(self, run_id: str, path: Path, artifact_dir: str) -> None: ...
    def log_datasets(self, run_id: str, datasets: Sequence[DvcDataset]) -> None: ...
    def terminate(self, run_id: str, status: str, end_ms: int | None = None) -> None: ...
    def find_producer(self, experiment_id: str, stage: str, outputs_key: str) -> str | None: ...
    def version_with_tag(self, name: str, key: str, value: str) -> str | None: ...
    def create_version(
        self,
        name: str,
        source: str,
        run_id: str | None,
        tags: Mapping[str, str],
        model_id: str | None = None,
    ) -> str: ...
    def logged_model_of_run(self, experiment_id: str, run_id: str) -> str | None: ...


class Tracker:
    """A thin, error-translating wrapper over ``MlflowClient``."""

    def __init__(self, uri: str) -> None:
        from mlflow.tracking import MlflowClient

        # dvflow's stdout is its own report: no "View run at" lines from MLflow.
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        self.uri = uri
        self._artifact_uris: dict[str, str] = {}  # of the runs this tracker created
        check_store_location(uri)
        self.artifact_root = local_artifact_root(uri)
        # MLflow logs schema creation at INFO on stderr; mlflow_errors keeps it quiet.
        with mlflow_errors(uri):
            if self.artifact_root and not Path(uri[len("sqlite:///") :].partition("?")[0]).exists():
                from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

                # A new store: its Default experiment keeps artifacts beside it too.
                SqlAlchemyStore(uri, self.artifact_root)  # type: ignore[no-untyped-call]
            self.client: MlflowClient = MlflowClient(tracking_uri=uri, registry_uri=uri)
            # The SQL store is created lazily; create (or migrate) it now, quietly.
            self.client.search_experiments(max_results=1)

    def experiment_id(self, name: str, artifact_location: str | None = None) -> str:
        from mlflow.exceptions import MlflowException

        with mlflow_errors(self.uri):
            experiment = self.client.get_experiment_by_name(name)
            if experiment is None:
                try:
                    return str(
                        self.client.create_experiment(
                            name, artifact_location=artifact_location or self.artifact_root
                        )
                    )
                except MlflowException as exc:
                    # Another client created it a moment ago (team runs start together).
                    if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                        raise
                    experiment = self.client.get_experiment_by_name(name)
                    if experiment is None:
                        raise
            if experiment.lifecycle_stage == "deleted":
                self.client.restore_experiment(experiment.experiment_id)
            return str(experiment.experiment_id)

    def create_run(
        self,
        experiment_id: str,
        name: str,
        tags: Mapping[str, str],
        parent_id: str | None,
        start_ms: int | None = None,
    ) -> str:
        all_tags = dict(tags)
        if parent_id:
            all_tags["mlflow.parentRunId"] = parent_id
        with mlflow_errors(self.uri):
            run = self.client.create_run(
                experiment_id, start_time=start_ms, tags=all_tags, run_name=name
            )
        # Known now: its artifacts need no request to ask the store where they go.
        self._artifact_uris[str(run.info.run_id)] = str(run.info.artifact_uri)
        return str(run.info.run_id)

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        with mlflow_errors(self.uri, run_id):
            self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])

    def log_params(self, run_id: str, params: Mapping[str, str]) -> list[str]:
        """Log params; returns the keys skipped because the script logged another value."""
        from mlflow.entities import Param
        from mlflow.exceptions import MlflowException

        items = [Param(k, v) for k, v in params.items()]
        try:
            with mlflow_errors(self.uri, run_id):
                for start in range(0, len(items), 100):
                    self.client.log_batch(run_id, params=items[start : start + 100])
            return []
        except TrackingError as exc:
            if exc.unreachable or isinstance(exc, StoreEnvironmentError):
                raise
        skipped = []
        for param in items:
            try:
                self.client.log_param(run_id, param.key, param.value)
            except MlflowException:
                skipped.append(param.key)
        return skipped

    def log_batch(
        self,
        run_id: str,
        params: Mapping[str, str],
        points: Sequence[MetricPoint],
        tags: Mapping[str, str],
    ) -> bool:
        """Params, metric points and tags in one request; False when more than one fits.

        MLflow takes at most 100 params, 100 tags and 1000 values in all per
        request. A refused value (a param the script logged with another
        value, a metric MLflow rejects) raises TrackingError: the caller then
        logs them one kind at a time.
        """
        from mlflow.entities import Metric, Param, RunTag

        if len(params) > 100 or len(tags) > 100 or len(params) + len(tags) + len(points) > 1000:
            return False
        if not (params or points or tags):
            return True
        with mlflow_errors(self.uri, run_id):
            self.client.log_batch(
                run_id,
                metrics=[Metric(p.key, p.value, p.timestamp_ms, p.step) for p in points],
                params=[Param(k, v) for k, v in params.items()],
                tags=[RunTag(k, v) for k, v in tags.items()],
            )
        return True

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], timestamp_ms: int) -> None:
        from mlflow.entities import Metric

        items = [Metric(k, v, timestamp_ms, 0) for k, v in metrics.items()]
        with mlflow_errors(self.uri, run_id):
            for start in range(0, len(items), 500):
                self.client.log_batch(run_id, metrics=items[start : start + 500])

    def log_metric_points(self, run_id: str, points: Sequence[MetricPoint]) -> None:
        """Log metric histories: each point with its own step and time."""
        from mlflow.entities import Metric

        items = [Metric(p.key, p.value, p.timestamp_ms, p.step) for p in points]
        with mlflow_errors(self.uri, run_id):
            for start in range(0, len(items), 500):
                self.client.log_batch(run_id, metrics=items[start : start + 500])

    def log_bytes(self, run_id: str, data: bytes, artifact_file: str) -> None:
        from dvflow.core._scratch import scratch

        with scratch("artifact") as tmp:
            local = Path(tmp) / Path(artifact_file).name
            local.write_bytes(data)
            folder = str(Path(artifact_file).parent)
            self.log_file(run_id, local, None if folder == "." else folder)

    def log_file(self, run_id: str, path: Path, artifact_dir: str | None) -> None:
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        with mlflow_errors(self.uri, run_id):
            location = self._artifact_uris.get(run_id)
            if location is None:
                self.client.log_artifact(run_id, str(path), artifact_dir)
            else:
                repository = get_artifact_repository(location, tracking_uri=self.uri)
                repository.log_artifact(str(path), artifact_dir)  # type: ignore[no-untyped-call]

    def log_datasets(self, run_id: str, datasets: Sequence[DvcDataset]) -> None:
        from mlflow.entities import DatasetInput, InputTag

        inputs = [
            DatasetInput(d._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", "input")])
            for d in datasets
        ]
        if inputs:
            with mlflow_errors(self.uri, run_id):
                self.client.log_inputs(run_id, datasets=inputs)

    def terminate(self, run_id: str, status: str, end_ms: int | None = None) -> None:
        with mlflow_errors(self.uri, run_id):
            self.client.set_terminated(run_id, status=status, end_time=end_ms)

    def get_run(self, run_id: str) -> Any:
        with mlflow_errors(self.uri, run_id):
            return self.client.get_run(run_id)

    def read_artifact(self, run_id: str, artifact_file: str) -> bytes:
        from mlflow.exceptions import MlflowException

        from dvflow.core._scratch import scratch

        with scratch("artifact") as tmp, no_progress_bar():
            try:
                local = self.client.download_artifacts(run_id, artifact_file, str(tmp))
            except (MlflowException, OSError) as exc:
                raise RecordNotFoundError(run_id) from exc
            return Path(local).read_bytes()

    def search(
        self, experiment_ids: Sequence[str], filter_string: str, max_results: int = 1000
    ) -> list[Any]:
        with mlflow_errors(self.uri):
            return list(
                self.client.search_runs(
                    list(experiment_ids),
                    filter_string=filter_string,
                    max_results=max_results,
                    order_by=["attributes.start_time ASC"],
                )
            )

    def all_experiments(self, *, deleted: bool = True) -> list[str]:
        """The ids of every experiment (deleted ones too, unless ``deleted=False``)."""
        from mlflow.entities import ViewType

        view = ViewType.ALL if deleted else ViewType.ACTIVE_ONLY
        with mlflow_errors(self.uri):
            found = self.client.search_experiments(view_type=view, max_results=50000)
        return [e.experiment_id for e in found]

    def run_tagged(self, key: str, value: str) -> Any | None:
        """The oldest run, in any experiment, tagged ``key=value`` (None: none)."""
        runs = self.search(
            self.all_experiments(), f"tags.`{key}` = '{_quote(value)}'", max_results=1
        )
        return runs[0] if runs else None

    def runs_with_outputs(self, experiment_id: str, stage: str, outputs_key: str) -> list[Any]:
        """Every run of ``stage`` that ended with exactly these outputs, oldest first."""
        runs = self.search(
            [experiment_id],
            f"tags.`dvflow.outputs_key` = '{outputs_key}' and {_tag_is('dvflow.stage', stage)}",
        )
        return [r for r in runs if r.data.tags.get("dvflow.stage") == stage]

    def find_producer(self, experiment_id: str, stage: str, outputs_key: str) -> str | None:
        """The earliest finished run of ``stage`` that produced exactly these outputs."""
        runs = self.search(
            [experiment_id],
            f"tags.`dvflow.outputs_key` = '{outputs_key}' "
            f"and {_tag_is('dvflow.stage', stage)} "
            "and tags.`dvflow.status` = 'ran' and attributes.status = 'FINISHED'",
            max_results=1 if _exact(stage) else 1000,
        )
        found = [r for r in runs if r.data.tags.get("dvflow.stage") == stage]
        return str(found[0].info.run_id) if found else None

    # -- model registry

    def version_with_tag(self, name: str, key: str, value: str) -> str | None:
        """The lowest version of model ``name`` tagged ``key=value``, if any."""
        with mlflow_errors(self.uri):
            if not self._model_exists(name):
                return None
            found = self.client.search_model_versions(
                f"name = '{_quote(name)}' and tags.`{key}` = '{_quote(value)}'"
            )
        versions = sorted(int(v.version) for v in found)
        return str(versions[0]) if versions else None

    def _model_exists(self, name: str) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(name)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return False
            raise
        return True

    def create_version(
        self,
        name: str,
        source: str,
        run_id: str | None,
        tags: Mapping[str, str],
        model_id: str | None = None,
    ) -> str:
        quiet = logger_level("mlflow.store.model_registry.abstract_store", logging.WARNING)
        with mlflow_errors(self.uri), quiet, _default_store(self.uri):
            if not self._model_exists(name):
                self.client.create_registered_model(name)
            version = self.client.create_model_version(
                name, source, run_id=run_id, tags=dict(tags), model_id=model_id
            )
        return str(version.version)

    def model_version(self, name: str, version: str) -> Any:
        return self._version(name, lambda: self.client.get_model_version(name, version), version)

    def version_by_alias(self, name: str, alias: str) -> Any:
        return self._version(
            name, lambda: self.client.get_model_version_by_alias(name, alias), alias=alias
        )

    def _version(
        self, name: str, get: Any, version: str | None = None, alias: str | None = None
    ) -> Any:
        from mlflow.exceptions import MlflowException

        from dvflow.core._exceptions import ModelNotFoundError

        with mlflow_errors(self.uri):
            try:
                return get()
            except MlflowException as exc:
                if exc.error_code in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}:
                    raise ModelNotFoundError(name, version=version, alias=alias) from exc
                raise

    def set_version_tags(self, name: str, version: str, tags: Mapping[str, str]) -> None:
        with mlflow_errors(self.uri):
            for key, value in tags.items():
                self.client.set_model_version_tag(name, version, key, value)

    def describe_version(self, name: str, version: str, description: str) -> None:
        """Set a model version's description (Markdown in MLflow's UI)."""
        with mlflow_errors(self.uri):
            self.client.update_model_version(name, version, description=description)

    def set_alias(self, name: str, alias: str, version: str) -> None:
        with mlflow_errors(self.uri):
            self.client.set_registered_model_alias(name, alias, version)

    def transition_stage(self, name: str, version: str, stage: str) -> None:
        """Registry stages, deprecated by MLflow since 2.9: only on request."""
        import warnings

        with mlflow_errors(self.uri), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            self.client.transition_model_version_stage(name, version, stage)

    def logged_model_of_run(self, experiment_id: str, run_id: str) -> str | None:
        """The id of the newest model the run logged through MLflow itself, if any."""
        with mlflow_errors(self.uri, run_id):
            models = self.client.search_logged_models(
                experiment_ids=[experiment_id],
                filter_string=f"source_run_id = '{run_id}'",
                order_by=[{"field_name": "creation_timestamp", "ascending": False}],
                max_results=1,
            )
        return str(models[0].model_id) if models else None

    def artifact_exists(self, run_id: str, artifact_file: str) -> bool:
        folder, _, name = artifact_file.rpartition("/")
        with mlflow_errors(self.uri, run_id):
            listed = self.client.list_artifacts(run_id, folder or None)
        return any(item.path == artifact_file or item.path.endswith("/" + name) for item in listed)

    # -- erasure (governance): runs are soft-deleted, 'mlflow gc' purges them

    def logged_models_of_runs(self, run_ids: Sequence[str]) -> list[tuple[str, str]]:
        """``(model_id, run_id)`` of every model the runs logged through MLflow itself."""
        found: list[tuple[str, str]] = []
        with mlflow_errors(self.uri):
            experiments = self.all_experiments()
            for start in range(0, len(run_ids), 50):
                chunk = ", ".join(f"'{_quote(r)}'" for r in run_ids[start : start + 50])
                models = self.client.search_logged_models(
                    experiment_ids=experiments,
                    filter_string=f"source_run_id IN ({chunk})",
                    max_results=1000,
                )
                found += [(str(m.model_id), str(m.source_run_id)) for m in models]
        return sorted(found)

    def delete_run(self, run_id: str) -> bool:
        """Soft-delete a run (False: already deleted or gone)."""
        from mlflow.exceptions import MlflowException

        with mlflow_errors(self.uri, run_id):
            try:
                if self.client.get_run(run_id).info.lifecycle_stage == "deleted":
                    return False
                self.client.delete_run(run_id)
            except MlflowException as exc:
                if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                    return False
                raise
        return True

    def delete_logged_model(self, model_id: str) -> bool:
        from mlflow.exceptions import MlflowException

        with mlflow_errors(self.uri):
            try:
                self.client.delete_logged_model(model_id)
            except MlflowException as exc:
                if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                    return False
                raise
        return True


def _default_store(uri: str) -> contextlib.AbstractContextManager[None]:
    """This store as MLflow's default while a call needs it.

    A SQLite registry finds the artifacts of a ``models:/m-...`` version
    source through the default store, not its own: for the local spool that
    would be the wrong one.
    """
    return _env("MLFLOW_TRACKING_URI", uri)


def no_progress_bar() -> contextlib.AbstractContextManager[None]:
    """MLflow draws a download bar on stderr even for one small file."""
    return _env("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@contextlib.contextmanager
def _env(key: str, value: str) -> Iterator[None]:
    """``key=value`` in the environment for a while, then as it was."""
    old = os.environ.get(key)
    os.environ[key] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


def _quote(value: str) -> str:
    return value.replace("'", "\\'")


def _exact(value: str) -> bool:
    """Can MLflow's filter syntax, which has no escapes, spell ``value`` exactly?"""
    return "'" not in value or '"' not in value


def _tag_is(key: str, value: str) -> str:
    """A filter clause: tag ``key`` equals ``value``, in whichever quotes it lacks.

    A value with both kinds of quotes cannot be spelled: the clause is a LIKE
    with ``_`` for each single quote, and the caller keeps the exact matches.
    """
    if "'" not in value:
        return f"tags.`{key}` = '{value}'"
    if '"' not in value:
        return f'tags.`{key}` = "{value}"'
    return f"tags.`{key}` LIKE '{value.replace(chr(39), '_')}'"


def pages(search: Any, size: int) -> Iterator[Any]:
    """Every item of a paged MLflow search (``search(max_results=, page_token=)``)."""
    token = None
    while True:
        page = search(max_results=size, page_token=token)
        yield from page
        token = page.token
        if not token:
            return
