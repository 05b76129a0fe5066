"""Copy runs, logged models and model versions from one tracking store to another.

``dvflow sync`` uses it for the local spool, and ``sync --from`` for
another store (the laptop's SQLite file). Two passes, so every id is known
before any record is rewritten:

1. every source run gets its run in the store: a stand-in continues the
   server run it names; any other run is created there with its original
   start time, parents before children. The store's id is tagged on the
   source run at once, so an interrupted copy resumes instead of creating
   a second one;
2. oldest first, each run's tags, params, metric histories, datasets and
   artifacts are copied, source ids are mapped to the store's, its record
   is rewritten to match (its digest tag too), and it ends with its
   original status and end time.

Between the two, models that stage scripts logged with MLflow's
``log_model`` are copied (their artifacts, params and tags), so pass 2 can
link each run to them. Model versions follow, registered from the copied
models where they were.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dvflow.core._config import Config
from dvflow.core._record import DIGEST_TAG, RECORD_ARTIFACT, canonical_json, sha256_hex
from dvflow.core._scratch import scratch
from dvflow.runs._results import Progress, ProgressCallback
from dvflow.stores._spool import (
    CREATED_TAG,
    SERVER_RUN_TAG,
    SPOOLED_AS_TAG,
    SYNCED_TAG,
    TARGET_TAG,
)
from dvflow.stores._tracking import (
    Tracker,
    _quote,
    display_uri,
    mlflow_errors,
    no_progress_bar,
)
from dvflow.trace._reader import SYNCED_AT_TAG

_SPOOL_TAGS = frozenset({SERVER_RUN_TAG, CREATED_TAG, TARGET_TAG, SYNCED_TAG})
# On a run (logged model, version) of a store copied with --from: its id in
# the store whose display URI hashes to the next part.
COPIED_PREFIX = "dvflow.copied."


class Copier:
    """Copies one store (the spool, or a store named by --from) into another.

    Each run, logged model and version copied is tagged in the source with
    its id in the store, so a second pass copies only what is new. The
    spool is only ever copied to one store; another source can be copied to
    several, so its tags name the store they are about.
    """

    def __init__(
        self,
        store: Tracker,
        spool: Tracker,
        config: Config,
        emit: ProgressCallback,
        *,
        spool_source: bool = True,
    ):
        self.store, self.spool, self.config, self.emit = store, spool, config, emit
        if spool_source:
            self.created_tag, self.synced_tag = CREATED_TAG, SYNCED_TAG
        else:
            where = hashlib.sha256(display_uri(store.uri).rstrip("/").encode()).hexdigest()[:12]
            self.created_tag = f"{COPIED_PREFIX}{where}.created"
            self.synced_tag = f"{COPIED_PREFIX}{where}.synced"
        self.spool_source = spool_source
        self.copied = 0
        self.ids: dict[str, str] = {}  # spool run id -> store run id
        self.digests: dict[str, str] = {}  # spool record digest -> store record digest
        self.experiments: dict[str, str] = {}  # spool experiment id -> store experiment id
        self.models: dict[str, str] = {}  # spool logged model id -> store logged model id
        self.artifact_uris: dict[str, str] = {}  # spool run id -> its artifact root
        source = hashlib.sha256(display_uri(spool.uri).encode()).hexdigest()[:12]
        self.source_key = source  # names the source in the versions copied from it

    # -- runs ---------------------------------------------------------------

    def copy_runs(self) -> tuple[tuple[str, str], ...]:
        runs = self._spooled_runs()
        targets = {str(r.data.tags.get(TARGET_TAG, "")) for r in runs} - {""}
        here = display_uri(self.config.tracking_uri)
        if targets and targets != {here}:
            self._notice(
                f"the spool's runs were meant for {', '.join(sorted(targets))}; "
                f"copying them to {here}"
            )
        for run in _parents_first(runs):
            self._place(run)
        self._copy_logged_models()
        copied = []
        waiting = [r for r in runs if self.synced_tag not in r.data.tags]
        for run in runs:
            shown = run.data.tags.get(SERVER_RUN_TAG, run.info.run_id)
            if self.synced_tag not in run.data.tags:
                self._copy(run)
                self.copied += 1
                done = waiting.index(run) + 1
                self.emit(
                    Progress("synced", done, len(waiting), shown, run_id=self.ids[run.info.run_id])
                )
            copied.append((shown, self.ids[run.info.run_id]))
        return tuple(copied)

    def _spooled_runs(self) -> list[Any]:
        # Deleted runs and experiments stay behind: MLflow lets no one tag them.
        experiments = self.spool.all_experiments(deleted=False)
        with mlflow_errors(self.spool.uri):
            runs = list(_pages(self.spool.client.search_runs, experiments))
        if not self.spool_source:
            # Another store's run still running would be copied half done, and
            # never again: it waits for a later sync.
            running = [r for r in runs if r.info.status == "RUNNING"]
            if running:
                self._notice(
                    f"{len(running)} run(s) still RUNNING in {display_uri(self.spool.uri)} "
                    "are left for a later 'dvflow sync --from'"
                )
            runs = [r for r in runs if r.info.status != "RUNNING"]
        self.artifact_uris = {r.info.run_id: r.info.artifact_uri or "" for r in runs}
        return sorted(runs, key=lambda r: (r.info.start_time or 0, r.info.run_id))

    def _place(self, run: Any) -> None:
        """Give ``run`` its run in the store, created now or continued."""
        spool_id, tags = run.info.run_id, run.data.tags
        if tags.get(SERVER_RUN_TAG) or tags.get(self.created_tag):
            self.ids[spool_id] = tags.get(SERVER_RUN_TAG) or tags[self.created_tag]
            return
        parent = tags.get("mlflow.parentRunId")
        experiment = self._experiment(run.info.experiment_id)
        # A sync killed between creating the run and noting it made it already.
        made = self.store.search([experiment], f"tags.`{SPOOLED_AS_TAG}` = '{_quote(spool_id)}'", 1)
        created = (
            str(made[0].info.run_id)
            if made
            else self.store.create_run(
                experiment,
                run.info.run_name or "",
                self._tags(tags, parent=False) | {SPOOLED_AS_TAG: spool_id},
                self._run_of(parent),
                start_ms=run.info.start_time,
            )
        )
        self.spool.set_tags(spool_id, {self.created_tag: created})
        self.ids[spool_id] = created

    def _copy(self, run: Any) -> None:
        spool_id = run.info.run_id
        target = self.ids[spool_id]
        experiment = self._experiment(run.info.experiment_id)
        tags = self._tags(run.data.tags, parent=True)
        producer = self._producer(experiment, tags)
        if producer:
            tags["dvflow.produced_by"] = producer
        if run.data.params:
            self.store.log_params(target, dict(run.data.params))
        self._copy_metrics(spool_id, target, run.data.metrics)
        inputs = list(run.inputs.dataset_inputs) if run.inputs else []
        if inputs:
            with mlflow_errors(self.store.uri, target):
                self.store.client.log_inputs(target, datasets=inputs)
        self._link_models(run, target)
        digest = self._copy_artifacts(spool_id, target, experiment, producer)
        if digest:
            self.digests[run.data.tags.get(DIGEST_TAG, "")] = digest
            tags[DIGEST_TAG] = digest
        tags[SYNCED_AT_TAG] = datetime.now(UTC).isoformat(timespec="seconds")
        self.store.set_tags(target, tags)
        if run.info.status != "RUNNING":  # a killed 'dvflow run' left it open: so does the store
            self.store.terminate(target, run.info.status, run.info.end_time)
        self.spool.set_tags(spool_id, {self.synced_tag: target})

    def _tags(self, tags: Mapping[str, str], *, parent: bool) -> dict[str, str]:
        return {
            key: self.ids.get(value, value)
            for key, value in tags.items()
            if _copyable(key) and (parent or key != "mlflow.parentRunId")
        }

    def _producer(self, experiment: str, tags: Mapping[str, str]) -> str | None:
        """The store's producer of a restored run's outputs, which the spool could not see."""
        if tags.get("dvflow.produced_by") or tags.get("dvflow.status") == "ran":
            return None
        key, stage = tags.get("dvflow.outputs_key"), tags.get("dvflow.stage")
        if not key or not stage:
            return None
        return self.store.find_producer(experiment, stage, key)

    def _copy_metrics(self, spool_id: str, target: str, metrics: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        history: list[Metric] = []
        with mlflow_errors(self.spool.uri, spool_id):
            for key in sorted(metrics):
                history += self.spool.client.get_metric_history(spool_id, key)
        with mlflow_errors(self.store.uri, target):
            for start in range(0, len(history), 500):
                batch = [
                    Metric(
                        m.key,
                        m.value,
                        m.timestamp,
                        m.step,
                        model_id=self.models.get(m.model_id or "") or None,
                        dataset_name=m.dataset_name,
                        dataset_digest=m.dataset_digest,
                    )
                    for m in history[start:][:500]
                ]
                self.store.client.log_batch(target, metrics=batch)

    def _copy_artifacts(
        self, spool_id: str, target: str, experiment: str, producer: str | None
    ) -> str | None:
        """Copy the run's artifacts; returns the rewritten record's digest, if it has one."""
        with scratch("sync") as tmp:
            with mlflow_errors(self.spool.uri, spool_id), no_progress_bar():
                local = Path(self.spool.client.download_artifacts(spool_id, "", str(tmp)))
            digest = None
            record = local / RECORD_ARTIFACT
            if record.is_file():
                try:
                    loaded = json.loads(record.read_bytes())
                except ValueError:
                    loaded = None  # copied as it is: 'dvflow show' will call it tampered
                    self._notice(f"run {spool_id}: its record is not JSON; copied unchanged")
                if isinstance(loaded, dict):
                    data = self._rewrite(loaded, experiment, producer)
                    record.write_bytes(data)
                    digest = sha256_hex(data)
            if any(local.iterdir()):
                with mlflow_errors(self.store.uri, target), no_progress_bar():
                    self.store.client.log_artifacts(target, str(local))
        return digest

    def _rewrite(self, record: dict[str, Any], experiment: str, producer: str | None) -> bytes:
        """The record as an uninterrupted run would have written it."""
        mapped: dict[str, Any] = _map_strings(record, self.ids)
        mapped.setdefault("mlflow", {})["experiment_id"] = experiment
        if producer and isinstance(mapped.get("stage"), dict):
            mapped["stage"]["produced_by"] = producer
        return canonical_json(mapped)

    def _experiment(self, spool_experiment: str) -> str:
        if spool_experiment not in self.experiments:
            with mlflow_errors(self.spool.uri):
                name = self.spool.client.get_experiment(spool_experiment).name
            location = self.config.artifact_location if name == self.config.experiment else None
            self.experiments[spool_experiment] = self.store.experiment_id(name, location)
        return self.experiments[spool_experiment]

    # -- model versions -----------------------------------------------------

    def copy_versions(self) -> tuple[tuple[str, str, str], ...]:
        from dvflow._registry import MD5_TAG, portable_source

        client = self.spool.client
        with mlflow_errors(self.spool.uri):
            versions = sorted(
                client.search_model_versions(max_results=100_000),
                key=lambda v: (v.creation_timestamp or 0, v.name, int(v.version)),
            )
        aliases = self._aliases()
        copied = []
        for version in versions:
            tags = dict(version.tags or {})
            if self.synced_tag in tags:
                copied.append((version.name, str(version.version), tags[self.synced_tag]))
                continue
            tags = {
                key: self.digests.get(value, self.ids.get(value, value))
                for key, value in tags.items()
                if _copyable(key)
            }
            md5 = tags.get(MD5_TAG)
            # A sync stopped between making the version and noting it made it.
            origin = f"{self.source_key}:{version.name}/{version.version}"
            existing = self.store.version_with_tag(version.name, SPOOLED_AS_TAG, origin) or (
                self.store.version_with_tag(version.name, MD5_TAG, md5) if md5 else None
            )
            source = version.source or ""
            spooled = getattr(version, "model_id", None) or source.removeprefix("models:/")
            logged = self.models.get(spooled)
            source = f"models:/{logged}" if logged else self._in_copied_run(version, source)
            made = existing or self.store.create_version(
                version.name,
                portable_source(
                    source, self.store.uri, tags.get("dvflow.model_path", version.name), md5 or ""
                ),
                self._run_of(version.run_id),
                tags | {SPOOLED_AS_TAG: origin},
                model_id=logged,
            )
            self._copy_aliases(
                version.name, aliases.get((version.name, str(version.version)), []), made
            )
            self.spool.set_version_tags(version.name, str(version.version), {self.synced_tag: made})
            copied.append((version.name, str(version.version), made))
        return tuple(copied)

    def _in_copied_run(self, version: Any, source: str) -> str:
        """A source inside its run's artifacts, as the same place in the copied run."""
        run_id = version.run_id or ""
        root = self.artifact_uris.get(run_id, "").rstrip("/")
        if not root or run_id not in self.ids or not source.startswith(root + "/"):
            return source
        return f"runs:/{self.ids[run_id]}/{source[len(root) + 1 :]}"

    def _run_of(self, run_id: str | None) -> str | None:
        """The store's run for a version's run: a spool version may name a server run."""
        if not run_id:
            return None
        return self.ids.get(run_id, run_id if self.spool_source else None)

    def _aliases(self) -> dict[tuple[str, str], list[str]]:
        """``{(model, version): [alias, ...]}`` of the spool (version search omits them)."""
        found: dict[tuple[str, str], list[str]] = {}
        token = None
        with mlflow_errors(self.spool.uri):
            while True:
                page = self.spool.client.search_registered_models(
                    max_results=1000, page_token=token
                )
                for model in page:
                    for alias, version in (model.aliases or {}).items():
                        found.setdefault((model.name, str(version)), []).append(alias)
                token = page.token
                if not token:
                    return found

    def _copy_aliases(self, name: str, aliases: list[str], made: str) -> None:
        """These aliases, unless the store gives one to another version already."""
        from dvflow.core._exceptions import ModelNotFoundError

        for alias in sorted(aliases):
            try:
                current = str(self.store.version_by_alias(name, alias).version)
            except ModelNotFoundError:
                self.store.set_alias(name, alias, made)
                continue
            if current != made:
                self._notice(
                    f"model {name}: alias {alias!r} already names version {current} "
                    f"in {display_uri(self.store.uri)}; left as it is (version {made} is the "
                    "copy): move it with 'dvflow promote' if the copy should have it"
                )

    # -- models logged with MLflow's log_model -------------------------------

    def _copy_logged_models(self) -> None:
        from mlflow.entities import LoggedModelStatus

        experiments = self.spool.all_experiments(deleted=False)
        with mlflow_errors(self.spool.uri):
            models = list(_pages(self.spool.client.search_logged_models, experiments))
        if not self.spool_source:  # half-logged there: left for a later sync
            models = [m for m in models if str(m.status) != str(LoggedModelStatus.PENDING)]
        for model in sorted(models, key=lambda m: (m.creation_timestamp or 0, m.model_id)):
            synced = (model.tags or {}).get(self.synced_tag)
            self.models[model.model_id] = synced or self._copy_logged_model(model)

    def _copy_logged_model(self, model: Any) -> str:
        """Create ``model`` in the store with its artifacts, params, tags and status."""
        from mlflow.entities import LoggedModelStatus

        experiment = self._experiment(model.experiment_id)
        client = self.store.client
        with mlflow_errors(self.store.uri):
            # A sync killed after creating the model made it already.
            made = client.search_logged_models(
                [experiment],
                filter_string=f"tags.`{SPOOLED_AS_TAG}` = '{_quote(model.model_id)}'",
                max_results=1,
            )
            if made:
                copy = made[0]
            else:
                copy = client.create_logged_model(
                    experiment,
                    name=model.name,
                    source_run_id=self.ids.get(model.source_run_id or "") or None,
                    tags={
                        k: self.ids.get(v, v) for k, v in (model.tags or {}).items() if _copyable(k)
                    }
                    | {SPOOLED_AS_TAG: model.model_id},
                    params=dict(model.params or {}),
                    model_type=model.model_type,
                )
            if copy.status == LoggedModelStatus.PENDING:  # not finalized: copy (again), finalize
                with scratch("sync") as tmp:
                    local = _download(model.artifact_location, str(tmp), self.spool.uri)
                    if any(Path(local).iterdir()):
                        client.log_model_artifacts(copy.model_id, local)
                if model.status in (LoggedModelStatus.READY, LoggedModelStatus.FAILED):
                    client.finalize_logged_model(copy.model_id, model.status)
        with mlflow_errors(self.spool.uri):
            self.spool.client.set_logged_model_tags(
                model.model_id, {self.synced_tag: copy.model_id}
            )
        return str(copy.model_id)

    def _link_models(self, run: Any, target: str) -> None:
        """The run's logged models, as the store's run's outputs."""
        from mlflow.entities import LoggedModelOutput

        outputs = run.outputs.model_outputs if run.outputs else []
        wanted = [(self.models[o.model_id], o.step) for o in outputs if o.model_id in self.models]
        if not wanted:
            return
        # A sync stopped after linking them (MLflow refuses a second link).
        there = self.store.get_run(target).outputs
        done = {o.model_id for o in (there.model_outputs if there else [])}
        linked = [LoggedModelOutput(m, step) for m, step in wanted if m not in done]
        if linked:
            with mlflow_errors(self.store.uri, target):
                self.store.client.log_outputs(target, linked)

    def copied_models(self) -> tuple[tuple[str, str], ...]:
        return tuple(self.models.items())

    def _notice(self, text: str) -> None:
        notice(self.emit, text)


def _pages(search: Any, experiments: list[str], **options: Any) -> Iterator[Any]:
    token = None
    while True:
        page = search(experiments, max_results=50000, page_token=token, **options)
        yield from page
        token = page.token
        if not token:
            return


def notice(emit: ProgressCallback, text: str) -> None:
    emit(Progress("notice", 0, 0, message=text))


def _copyable(key: str) -> bool:
    """Is tag ``key`` the run's own, not a note of dvflow's on where it was copied?"""
    # The source's own dvflow.spooled_as (a run it got by a sync) would hide
    # the one naming it in the store.
    return key not in _SPOOL_TAGS and key != SPOOLED_AS_TAG and not key.startswith(COPIED_PREFIX)


def _download(location: str, into: str, uri: str) -> str:
    """A logged model's artifacts from the source store ``uri``."""
    from mlflow.artifacts import download_artifacts

    with no_progress_bar(), mlflow_errors(uri):
        return str(download_artifacts(artifact_uri=location, dst_path=into, tracking_uri=uri))


def _parents_first(runs: list[Any]) -> list[Any]:
    by_id = {r.info.run_id: r for r in runs}
    done: set[str] = set()
    ordered: list[Any] = []

    def visit(run: Any) -> None:
        if run.info.run_id in done:
            return
        done.add(run.info.run_id)
        parent = by_id.get(run.data.tags.get("mlflow.parentRunId", ""))
        if parent is not None:
            visit(parent)
        ordered.append(run)

    for run in runs:
        visit(run)
    return ordered


def _map_strings(value: Any, ids: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return ids.get(value, value)
    if isinstance(value, list):
        return [_map_strings(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: _map_strings(v, ids) for k, v in value.items()}
    return value
