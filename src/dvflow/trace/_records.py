"""Runs, records and model versions answered from the lineage index.

A finished run's record never changes and carries its digest, so the read
commands (``show``, ``diff``, ``verify``'s quick checks, ``check``,
``doctor``) may take it from the index instead of MLflow, whose import
alone costs seconds. The rules:

- the index answers only while it is *fresh*: it holds this store, and the
  store has not moved since the index last read it (a SQLite store's file
  size and time; a server's newest run and registry change, one request
  each, no MLflow import). A moved store is read incrementally first, and
  the runs the command asks for are then read from the store itself;
- a run's record is read where MLflow keeps it when that is a local folder
  (as MLflow would), else from the bytes the index kept; either way it
  must match the digest the run's tag holds. Anything that does not (a
  rewritten artifact, a tampered index row, a run still open) is read from
  the store, which then decides, as it always did;
- commands that write to the store put what they wrote into the index
  before they exit (``note_store``): the next read finds it fresh.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from dvflow.core._exceptions import DvflowError, IndexFileError, RecordNotFoundError
from dvflow.core._record import DIGEST_TAG, RECORD_ARTIFACT, sha256_hex
from dvflow.stores._tracking import Tracker, check_existing_store, local_artifact_root

from ._index import Index, index_path
from ._reader import run_facts

if TYPE_CHECKING:
    from dvflow.core._config import Config

# A shared server is re-read at most this often when it cannot say it moved.
SERVER_MAX_AGE_S = 60.0
_OPEN = ("RUNNING", "SCHEDULED")


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    experiment_id: str
    run_name: str
    status: str
    start_time: int | None
    end_time: int | None
    artifact_uri: str
    lifecycle_stage: str


@dataclass(frozen=True)
class RunData:
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class IndexedRun:
    """A run as the index keeps it: the parts of MLflow's ``Run`` the read commands use."""

    info: RunInfo
    data: RunData

    @classmethod
    def from_json(cls, text: str) -> IndexedRun:
        facts = json.loads(text)
        return cls(
            RunInfo(**facts["info"]), RunData(facts["tags"], facts["params"], facts["metrics"])
        )


@dataclass(frozen=True)
class IndexedVersion:
    """A model version as the index keeps it (``tracker.model_version``'s answer)."""

    name: str
    version: str
    run_id: str | None
    source: str
    tags: dict[str, str]
    aliases: tuple[str, ...] = ()


class IndexedTracker(Tracker):
    """A Tracker that answers from the index while it is fresh; MLflow only for the rest.

    The MLflow client is made on the first question the index cannot answer.
    """

    def __init__(self, uri: str, index: Index, *, fresh: bool) -> None:
        self.uri = uri
        self.artifact_root = local_artifact_root(uri)
        self.index = index
        self.fresh = fresh
        self._records: dict[str, bytes] = {}  # checked against the digest of the indexed run
        self._from_store: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        if name != "client":
            raise AttributeError(name)
        Tracker.__init__(self, self.uri)  # imports MLflow
        return self.client

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.index.close()

    # -- runs and their artifacts -----------------------------------------------

    def get_run(self, run_id: str) -> Any:
        if self.fresh and run_id not in self._from_store:
            run = self._indexed(run_id)
            if run is not None:
                return run
            self._from_store.add(run_id)
        run = super().get_run(run_id)
        self._remember(run)
        return run

    def _indexed(self, run_id: str) -> IndexedRun | None:
        """The run as indexed, when it is finished and its record matches its digest."""
        row = self.index.db.execute(
            "SELECT facts FROM run_facts WHERE run_id=?", (run_id,)
        ).fetchone()
        try:
            run = IndexedRun.from_json(row[0]) if row else None
        except (ValueError, TypeError, KeyError):
            return None  # a damaged row: the store answers
        if run is None or run.info.status in _OPEN or run.info.run_id != run_id:
            return None
        digest = run.data.tags.get(DIGEST_TAG)
        raw = self._record_bytes(run)
        if not digest or raw is None or sha256_hex(raw) != digest:
            return None
        self._records[run_id] = raw
        return run

    def _record_bytes(self, run: IndexedRun) -> bytes | None:
        folder = _local_folder(run.info.artifact_uri)
        if folder is not None:
            with contextlib.suppress(OSError):
                return (folder / RECORD_ARTIFACT).read_bytes()
            return None
        row = self.index.db.execute(
            "SELECT data FROM run_files WHERE run_id=? AND path=?",
            (run.info.run_id, RECORD_ARTIFACT),
        ).fetchone()
        if row:
            return bytes(row[0])
        data = self._proxied(run.info.artifact_uri, RECORD_ARTIFACT)
        if data is not None and sha256_hex(data) == run.data.tags.get(DIGEST_TAG):
            self._write(
                "INSERT OR REPLACE INTO run_files VALUES(?, ?, ?)",
                (run.info.run_id, RECORD_ARTIFACT, data),
            )
        return data

    def _proxied(self, artifact_uri: str, artifact_file: str) -> bytes | None:
        """An artifact the tracking server serves itself, by one GET (None: ask MLflow)."""
        if not self.uri.startswith(("http://", "https://")):
            return None
        from dvflow.stores._rest import proxied_artifact

        return proxied_artifact(self.uri, artifact_uri, artifact_file)

    def read_artifact(self, run_id: str, artifact_file: str) -> bytes:
        if artifact_file == RECORD_ARTIFACT and run_id in self._records:
            return self._records[run_id]
        if self.fresh and run_id not in self._from_store:
            location = self._artifact_uri(run_id)
            folder = _local_folder(location) if location else None
            if folder is not None:
                try:
                    return (folder / artifact_file).read_bytes()
                except OSError as exc:
                    raise RecordNotFoundError(run_id) from exc
            found = self._proxied(location, artifact_file) if location else None
            if found is not None:
                return found
        data = super().read_artifact(run_id, artifact_file)
        if artifact_file == RECORD_ARTIFACT:
            self._keep_record(run_id, data)
        return data

    def _artifact_uri(self, run_id: str) -> str | None:
        row = self.index.db.execute(
            "SELECT json_extract(facts, '$.info.artifact_uri') FROM run_facts WHERE run_id=?",
            (run_id,),
        ).fetchone()
        return str(row[0]) if row and row[0] else None

    def runs_reading(self, path: str, md5: str) -> list[Any] | None:
        """Finished stage runs that read ``path`` at ``md5``, oldest first (None: ask MLflow)."""
        if not self.fresh:
            return None
        rows = self.index.db.execute(
            "SELECT r.run_id FROM run_io io JOIN runs r ON r.run_id = io.run_id "
            "WHERE io.role = 'in' AND io.md5 = ? AND io.path = ? AND r.kind = 'stage' "
            "AND r.status = 'FINISHED' ORDER BY r.start_time",
            (md5, path),
        ).fetchall()
        runs = [self.get_run(str(row[0])) for row in rows]
        return [r for r in runs if r.info.lifecycle_stage == "active"]

    def experiment_id(self, name: str, artifact_location: str | None = None) -> str:
        if self.fresh:
            known = json.loads(self.index.meta("experiments") or "{}")
            if name in known:
                return str(known[name])
        return super().experiment_id(name, artifact_location)  # creates (or restores) it

    def find_producer(self, experiment_id: str, stage: str, outputs_key: str) -> str | None:
        if not self.fresh:
            return super().find_producer(experiment_id, stage, outputs_key)
        row = self.index.db.execute(
            "SELECT r.run_id FROM runs r JOIN run_facts f ON f.run_id = r.run_id "
            "WHERE r.experiment_id = ? AND r.stage = ? AND r.dvflow_status = 'ran' "
            "AND r.status = 'FINISHED' AND json_extract(f.facts, '$.info.lifecycle_stage') = "
            "'active' AND json_extract(f.facts, '$.tags.\"dvflow.outputs_key\"') = ? "
            "ORDER BY r.start_time LIMIT 1",
            (experiment_id, stage, outputs_key),
        ).fetchone()
        return str(row[0]) if row else None

    def set_tags(self, run_id: str, tags: Any) -> None:
        super().set_tags(run_id, tags)
        self._records.pop(run_id, None)
        self._write("DELETE FROM run_facts WHERE run_id=?", (run_id,))

    # -- model versions ----------------------------------------------------------

    def model_version(self, name: str, version: str) -> Any:
        found = self._indexed_version("m.name=? AND m.version=?", (name, version))
        return found if found is not None else super().model_version(name, version)

    def version_by_alias(self, name: str, alias: str) -> Any:
        found = self._indexed_version(
            "m.name=? AND m.version=(SELECT version FROM aliases WHERE name=? AND alias=?)",
            (name, name, alias),
        )
        return found if found is not None else super().version_by_alias(name, alias)

    def _indexed_version(self, where: str, args: tuple[str, ...]) -> IndexedVersion | None:
        if not self.fresh:
            return None
        query = (
            "SELECT m.name, m.version, m.run_id, m.source, m.tags, (SELECT group_concat(alias) "
            "FROM aliases a WHERE a.name=m.name AND a.version=m.version) FROM models m WHERE "
        )
        row = self.index.db.execute(
            query + where,
            args,
        ).fetchone()
        if not row:
            return None
        name, version, run_id, source, tags, aliases = row
        return IndexedVersion(
            name,
            version,
            run_id,
            source,
            json.loads(tags),
            tuple((aliases or "").split(",")) if aliases else (),
        )

    # -- keeping the index current -----------------------------------------------

    def _remember(self, run: Any) -> None:
        """Keep a finished dvflow run read from the store (its record comes next)."""
        if run.info.status in _OPEN or "dvflow.kind" not in run.data.tags:
            return
        if not self.index.holds_store(self.uri):
            return
        self._write(
            "INSERT OR REPLACE INTO run_facts VALUES(?, ?)", (run.info.run_id, run_facts(run))
        )

    def _keep_record(self, run_id: str, data: bytes) -> None:
        """Keep the bytes of a record that matches its run's digest (a remote artifact store)."""
        location = self._artifact_uri(run_id)
        if location and _local_folder(location) is not None:
            return  # read where MLflow keeps it
        row = self.index.db.execute(
            "SELECT json_extract(facts, '$.tags.\"dvflow.record_sha256\"') FROM run_facts "
            "WHERE run_id=?",
            (run_id,),
        ).fetchone()
        if row and row[0] == sha256_hex(data):
            self._write(
                "INSERT OR REPLACE INTO run_files VALUES(?, ?, ?)", (run_id, RECORD_ARTIFACT, data)
            )

    def _write(self, statement: str, args: tuple[Any, ...]) -> None:
        # Only a cache: a locked or read-only index leaves the answer as it is.
        with contextlib.suppress(IndexFileError, sqlite3.Error), self.index.writing() as db:
            db.execute(statement, args)

    def sync(self) -> None:
        """Read what the store gained since the index last read it."""
        self.index.sync_store(self)


def _local_folder(uri: str) -> Path | None:
    """The folder of a run's artifacts when it is on this machine (None: a server, a bucket)."""
    if uri.startswith("file://"):
        return Path(unquote(urlsplit(uri).path))
    if uri.startswith("/"):
        return Path(uri)
    return None


def open_indexed(root: Path, project: Path, uri: str, *, sync: bool | None = None) -> Tracker:
    """A tracker of the store at ``uri`` answering from the index of ``project`` while fresh.

    ``sync``: True reads the store (and bypasses the index) for this command,
    None when it moved, False never (the index as it is). Falls back to a
    plain Tracker when the index cannot be opened.
    """
    if not index_path(project).exists():
        check_existing_store(uri)  # no index made beside a store that is not there
    try:
        index = Index(root, project=project)
    except (IndexFileError, sqlite3.Error, OSError):
        check_existing_store(uri)
        return Tracker(uri)
    try:
        fresh = index.holds_store(uri) and (
            sync is False or (sync is None and not index.store_stale(uri, SERVER_MAX_AGE_S))
        )
        if not fresh:
            check_existing_store(uri)
        tracker = IndexedTracker(uri, index, fresh=fresh)
        if not fresh:
            with contextlib.suppress(IndexFileError):
                tracker.sync()
    except BaseException:
        index.close()
        raise
    return tracker


def note_store(project: Path, tracker: Tracker | None, changed: Sequence[str] = ()) -> None:
    """Write-through: put what a command just wrote to ``tracker``'s store into the index.

    An incremental read of the store while MLflow is loaded anyway: the
    runs it gained (the command's own and any other writer's), the
    registry, and the runs in ``changed`` (older runs the command tagged).
    Never fails the command: the index is a cache, and the next read
    command catches up.
    """
    if tracker is None:
        return
    from dvflow.core._git import find_root

    with contextlib.suppress(DvflowError, sqlite3.Error, OSError):
        index = Index(find_root(project), project=project)
        try:
            index.sync_store(tracker)
            facts = [(run_id, run_facts(tracker.get_run(run_id))) for run_id in changed]
            with index.writing() as db:
                db.executemany("INSERT OR REPLACE INTO run_facts VALUES(?, ?)", facts)
        finally:
            index.close()


def open_project_indexed(
    path: str | os.PathLike[str], tracking_uri: str | None, *, sync: bool | None = None
) -> tuple[Path, Config, Tracker]:
    """``stores.open_project``, with a tracker that answers from the index while fresh."""
    from dvflow.core._config import load_config
    from dvflow.core._git import find_root
    from dvflow.core._roots import settings_root

    start = Path(path).resolve()
    root = find_root(start)
    settings = settings_root(start, root)
    config = load_config(settings, tracking_uri=tracking_uri)
    return root, config, open_indexed(root, settings, config.tracking_uri, sync=sync)


def close_tracker(tracker: Tracker) -> None:
    """Let go of the index a tracker of ``open_indexed`` holds (nothing for a plain one)."""
    if isinstance(tracker, IndexedTracker):
        tracker.close()
