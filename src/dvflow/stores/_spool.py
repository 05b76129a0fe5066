"""The local spool: where a run records while the tracking server does not answer.

A team's ``mlflow server`` can be down or out of reach when a pipeline runs.
The pipeline must not stop for that (unless ``--require-tracking``), and no
record may be lost. ``FallbackTracker`` writes to the server while it
answers; at the first request that gets no answer it moves to the spool, a
local MLflow SQLite store in ``.dvflow/spool/``, for the rest of the run:

* runs the server already holds and that are still open are continued in
  the spool by a stand-in run tagged with the server run's id, so the
  records and tags the session writes later are not lost;
* runs created after the switch exist only in the spool, with the spool's
  ids and their real start times;
* stage commands see the spool store, so what a script logs through MLflow
  is kept too.

``dvflow sync`` (``_sync.py``) later copies everything to the server with
the original times and statuses, and maps the spool's ids to the server's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dvflow.core._exceptions import TrackingError

from ._openruns import OpenRuns
from ._tracking import Tracker, check_reachable, display_uri

if TYPE_CHECKING:
    from dvflow.core._declared import MetricPoint

    from ._dataset import DvcDataset

SPOOL_DIR = Path(".dvflow") / "spool"
# On a stand-in run: the id of the server run it continues.
SERVER_RUN_TAG = "dvflow.spool.server_run"
# On every spooled run: the (redacted) store it belongs to.
TARGET_TAG = "dvflow.spool.target"
# On a spooled run: the store run ``dvflow sync`` created for it.
CREATED_TAG = "dvflow.spool.created"
# On a spooled run or version once ``dvflow sync`` has copied it.
SYNCED_TAG = "dvflow.spool.synced"
# On a store run sync created: the id 'dvflow run' printed for it while spooled.
SPOOLED_AS_TAG = "dvflow.spooled_as"

# MLflow's client retries a request that gets no answer for minutes by
# default; a run waits a few seconds, then records to the spool.
_QUICK_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}


def spool_uri(root: Path) -> str:
    return f"sqlite:///{root / SPOOL_DIR / 'mlflow.db'}"


def spool_artifacts(root: Path) -> str:
    return (root / SPOOL_DIR / "artifacts").as_uri()


def spool_exists(root: Path) -> bool:
    return (root / SPOOL_DIR / "mlflow.db").is_file()


def spool_notice(root: Path) -> str | None:
    """The reminder that spooled runs wait for 'dvflow sync', or None when none wait."""
    if waiting_runs(root) == 0:
        return None
    return (
        f"the local spool ({SPOOL_DIR}/) still holds runs recorded while the "
        "tracking server did not answer: upload them with 'dvflow sync'"
    )


def waiting_runs(root: Path) -> int | None:
    """How many spooled runs sync has not copied; None when the spool cannot be read.

    Counted in the spool's SQLite file (MLflow's ``runs`` and ``tags``
    tables) without loading MLflow.
    """
    found = _ask_spool(
        root,
        "SELECT COUNT(*) FROM runs r WHERE NOT EXISTS (SELECT 1 FROM tags t "
        "WHERE t.run_uuid = r.run_uuid AND t.key = ?)",
        (SYNCED_TAG,),
    )
    return None if found is None else int(found[0][0]) if found else 0


def spooled_run(root: Path, run_id: str) -> str | None:
    """Is ``run_id`` a run of the local spool: ``waiting``, ``synced``, or None (not there)."""
    found = _ask_spool(
        root,
        "SELECT EXISTS (SELECT 1 FROM tags WHERE run_uuid = r.run_uuid AND key = ?) "
        "FROM runs r WHERE r.run_uuid = ?",
        (SYNCED_TAG, run_id),
    )
    if not found:
        return None
    return "synced" if found[0][0] else "waiting"


def stand_in_of(root: Path, run_id: str) -> str | None:
    """The spool run that is ``run_id`` or stands in for it (None: neither)."""
    found = _ask_spool(
        root,
        "SELECT r.run_uuid FROM runs r WHERE r.run_uuid = ? OR EXISTS (SELECT 1 FROM tags t "
        "WHERE t.run_uuid = r.run_uuid AND t.key = ? AND t.value = ?)",
        (run_id, SERVER_RUN_TAG, run_id),
    )
    return str(found[0][0]) if found else None


def _ask_spool(root: Path, query: str, args: tuple[str, ...]) -> list[Any] | None:
    """Rows of ``query`` on the spool's SQLite file ([] without a spool, None if unreadable)."""
    import contextlib
    import sqlite3

    path = root / SPOOL_DIR / "mlflow.db"
    if not path.is_file():
        return []
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            return db.execute(query, args).fetchall()
    except sqlite3.Error:
        return None


def open_spool(root: Path) -> Tracker:
    folder = root / SPOOL_DIR
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "artifacts").mkdir(exist_ok=True)
    return Tracker(spool_uri(root))


@dataclass
class _OpenRun:
    experiment_id: str
    name: str
    tags: dict[str, str]
    parent_id: str | None
    start_ms: int


class FallbackTracker:
    """The tracking server while it answers, the local spool once it does not."""

    def __init__(
        self, uri: str, root: Path, *, required: bool, warn: Callable[[str], None]
    ) -> None:
        self.uri, self.root, self.required, self.warn = uri, root, required, warn
        self.server: Tracker | None = None
        self.spool: Tracker | None = None
        self.reason = ""
        self._open: dict[str, _OpenRun] = {}  # server runs not yet ended, in creation order
        self._stand_ins: dict[str, str] = {}  # server run id -> its stand-in in the spool
        self._experiments: dict[str, str] = {}  # server experiment id -> name
        self.journal = OpenRuns(root)  # what a kill -9 would leave open
        for key, value in _QUICK_RETRIES.items():
            os.environ.setdefault(key, value)
        try:
            check_reachable(uri)
            self.server = Tracker(uri)
        except TrackingError as exc:
            self._fall_back(exc)
        else:
            if notice := spool_notice(root):
                warn(notice)

    @property
    def spooled(self) -> bool:
        return self.spool is not None

    def stage_env(self, experiment_id: str, run_id: str) -> dict[str, str]:
        """Where a stage command's own MLflow calls should go."""
        if self.spool is None:
            return {
                "MLFLOW_TRACKING_URI": self.uri,
                "MLFLOW_EXPERIMENT_ID": experiment_id,
                "MLFLOW_RUN_ID": run_id,
            }
        run = self._stand_ins.get(run_id, run_id)
        return {
            "MLFLOW_TRACKING_URI": self.spool.uri,
            "MLFLOW_EXPERIMENT_ID": self._spool_experiment(experiment_id),
            "MLFLOW_RUN_ID": run,
        }

    def lost_server(self) -> bool:
        """Has the server stopped answering? If so, the rest of the run goes to the spool."""
        if self.spool is not None or self.server is None:
            return self.spool is not None
        try:
            check_reachable(self.uri)
        except TrackingError as exc:
            if exc.unreachable and not self.required:
                self._fall_back(exc)
                return True
        return False

    # -- falling back --------------------------------------------------------

    def _fall_back(self, exc: TrackingError) -> None:
        if self.required or not exc.unreachable:
            raise exc
        self.reason = exc.problem
        self.warn(
            f"tracking store {display_uri(self.uri)}: {exc.problem}; recording to the local "
            f"spool ({SPOOL_DIR}/) instead. Run 'dvflow sync' once the server answers."
        )
        self.spool = open_spool(self.root)
        for server_id, run in self._open.items():
            tags = run.tags | {SERVER_RUN_TAG: server_id, TARGET_TAG: display_uri(self.uri)}
            parent = self._stand_ins.get(run.parent_id or "", run.parent_id)
            self._stand_ins[server_id] = self.spool.create_run(
                self._spool_experiment(run.experiment_id), run.name, tags, parent, run.start_ms
            )

    def _spool_experiment(self, experiment_id: str) -> str:
        assert self.spool is not None
        name = self._experiments.get(experiment_id)
        if name is None:  # already a spool experiment
            return experiment_id
        return self.spool.experiment_id(name, spool_artifacts(self.root))

    def _do(self, run_id: str, call: Callable[[Tracker, str], Any]) -> Any:
        """``call`` on the server, or on the spool with the run's stand-in."""
        return self._on_store(lambda store: call(store, self._spool_run(store, run_id)))

    def _on_store(self, call: Callable[[Tracker], Any]) -> Any:
        if self.server is not None and self.spool is None:
            try:
                return call(self.server)
            except TrackingError as exc:
                self._fall_back(exc)
        assert self.spool is not None
        return call(self.spool)

    def _spool_run(self, store: Tracker, run_id: str) -> str:
        return run_id if store is self.server else self._stand_ins.get(run_id, run_id)

    # -- the writer interface ------------------------------------------------

    def experiment_id(self, name: str, artifact_location: str | None = None) -> str:
        if self.server is not None and self.spool is None:
            try:
                found = self.server.experiment_id(name, artifact_location)
                self._experiments[found] = name
                return found
            except TrackingError as exc:
                self._fall_back(exc)
        assert self.spool is not None
        return self.spool.experiment_id(name, spool_artifacts(self.root))

    def create_run(
        self,
        experiment_id: str,
        name: str,
        tags: Mapping[str, str],
        parent_id: str | None,
        start_ms: int | None = None,
    ) -> str:
        start = start_ms or int(time.time() * 1000)
        if self.server is not None and self.spool is None:
            try:
                run_id = self.server.create_run(experiment_id, name, tags, parent_id, start)
                self._open[run_id] = _OpenRun(experiment_id, name, dict(tags), parent_id, start)
                self.journal.opened(run_id)
                return run_id
            except TrackingError as exc:
                self._fall_back(exc)
        assert self.spool is not None
        parent = self._stand_ins.get(parent_id or "", parent_id)
        run_id = self.spool.create_run(
            self._spool_experiment(experiment_id),
            name,
            {**tags, TARGET_TAG: display_uri(self.uri)},
            parent,
            start,
        )
        self.journal.opened(run_id)
        return run_id

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        self._do(run_id, lambda t, r: t.set_tags(r, tags))

    def log_params(self, run_id: str, params: Mapping[str, str]) -> list[str]:
        skipped: list[str] = self._do(run_id, lambda t, r: t.log_params(r, params))
        return skipped

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], timestamp_ms: int) -> None:
        self._do(run_id, lambda t, r: t.log_metrics(r, metrics, timestamp_ms))

    def log_metric_points(self, run_id: str, points: Sequence[MetricPoint]) -> None:
        self._do(run_id, lambda t, r: t.log_metric_points(r, points))

    def log_batch(
        self,
        run_id: str,
        params: Mapping[str, str],
        points: Sequence[MetricPoint],
        tags: Mapping[str, str],
    ) -> bool:
        done: bool = self._do(run_id, lambda t, r: t.log_batch(r, params, points, tags))
        return done

    def log_bytes(self, run_id: str, data: bytes, artifact_file: str) -> None:
        self._do(run_id, lambda t, r: t.log_bytes(r, data, artifact_file))

    def log_file(self, run_id: str, path: Path, artifact_dir: str) -> None:
        self._do(run_id, lambda t, r: t.log_file(r, path, artifact_dir))

    def log_datasets(self, run_id: str, datasets: Sequence[DvcDataset]) -> None:
        self._do(run_id, lambda t, r: t.log_datasets(r, datasets))

    def terminate(self, run_id: str, status: str, end_ms: int | None = None) -> None:
        end = end_ms or int(time.time() * 1000)
        self._do(run_id, lambda t, r: t.terminate(r, status, end))
        self.journal.ended(run_id)
        if self.spool is None:
            self._open.pop(run_id, None)

    def find_producer(self, experiment_id: str, stage: str, outputs_key: str) -> str | None:
        # In the spool only the spool's runs are known; 'dvflow sync' looks
        # again on the server for a run it did not find.
        if self.server is not None and self.spool is None:
            try:
                return self.server.find_producer(experiment_id, stage, outputs_key)
            except TrackingError as exc:
                self._fall_back(exc)
        assert self.spool is not None
        return self.spool.find_producer(self._spool_experiment(experiment_id), stage, outputs_key)

    def version_with_tag(self, name: str, key: str, value: str) -> str | None:
        found: str | None = self._on_store(lambda t: t.version_with_tag(name, key, value))
        return found

    def create_version(
        self,
        name: str,
        source: str,
        run_id: str | None,
        tags: Mapping[str, str],
        model_id: str | None = None,
    ) -> str:
        version: str = self._on_store(
            lambda t: t.create_version(
                name, source, run_id and self._spool_run(t, run_id), tags, model_id=model_id
            )
        )
        return version

    def logged_model_of_run(self, experiment_id: str, run_id: str) -> str | None:
        if self.server is not None and self.spool is None:
            try:
                return self.server.logged_model_of_run(experiment_id, run_id)
            except TrackingError as exc:
                self._fall_back(exc)
        assert self.spool is not None
        # A model logged into the spool: 'dvflow sync' copies it, and the
        # version made from it, to the server.
        return self.spool.logged_model_of_run(
            self._spool_experiment(experiment_id), self._stand_ins.get(run_id, run_id)
        )
