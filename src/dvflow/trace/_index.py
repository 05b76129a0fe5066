"""The lineage index: a disposable SQLite cache of Git history and the MLflow store.

Git and MLflow stay the source of truth; this file only makes questions
fast. It lives in ``.dvflow/index.sqlite`` and is updated incrementally:

- Git: only commits reachable from a branch, tag or HEAD that moved since
  the last update (one ``git log`` plus one ``git cat-file --batch``).
- MLflow: only runs started since the last sync, runs that were still open,
  and the registry (model versions and aliases are few).

Readers never block (WAL); writers take SQLite's write lock for the whole
update, so two commands updating at once do the work once each, safely.
Reading the index imports neither MLflow nor DVC; syncing the store does.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dvflow.core import _history
from dvflow.core._exceptions import IndexFileError
from dvflow.core._redact import Redactor

from . import _listings

if TYPE_CHECKING:
    from dvflow.stores._tracking import Tracker

INDEX_DIR = ".dvflow"
INDEX_NAME = "index.sqlite"
# 5: the store's URI is kept redacted, with a hash of the real one.
# 6: runs whose dvflow.io tag disagrees with its pinned digest (table tampered).
# 7: each run's facts and records, for the read commands (_records).
SCHEMA_VERSION = "7"
# Runs are synced again from a little before the newest one seen: clocks of
# the machines recording to one server differ, and re-reading is harmless.
SYNC_OVERLAP_MS = 10 * 60 * 1000

_SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE commits(sha TEXT PRIMARY KEY, time INTEGER NOT NULL);
CREATE TABLE refs(name TEXT PRIMARY KEY, sha TEXT NOT NULL);
CREATE TABLE ref_commits(ref TEXT, sha TEXT, PRIMARY KEY(ref, sha)) WITHOUT ROWID;
CREATE TABLE entry_refs(entry TEXT, ref TEXT, PRIMARY KEY(entry, ref)) WITHOUT ROWID;
CREATE TABLE changes(
    sha TEXT, path TEXT, blob TEXT, old_blob TEXT, PRIMARY KEY(sha, path)) WITHOUT ROWID;
CREATE INDEX changes_blob ON changes(blob);
CREATE TABLE entries(
    id TEXT PRIMARY KEY, kind TEXT, file TEXT, name TEXT, cmd TEXT, params TEXT, source TEXT);
CREATE TABLE blob_entries(blob TEXT, entry TEXT, PRIMARY KEY(blob, entry)) WITHOUT ROWID;
CREATE INDEX blob_entries_entry ON blob_entries(entry);
CREATE TABLE entry_io(entry TEXT, role TEXT, path TEXT, md5 TEXT);
CREATE INDEX entry_io_md5 ON entry_io(md5, role);
CREATE INDEX entry_io_entry ON entry_io(entry);
CREATE TABLE runs(
    run_id TEXT PRIMARY KEY, experiment_id TEXT, name TEXT, parent_id TEXT, kind TEXT,
    stage TEXT, status TEXT, dvflow_status TEXT, git_commit TEXT, dirty INTEGER,
    start_time INTEGER, end_time INTEGER, record_sha TEXT, produced_by TEXT,
    result_commit TEXT, params TEXT, metrics TEXT);
CREATE INDEX runs_stage ON runs(stage, start_time);
CREATE TABLE run_io(run_id TEXT, role TEXT, path TEXT, md5 TEXT);
CREATE INDEX run_io_md5 ON run_io(md5, role);
CREATE INDEX run_io_run ON run_io(run_id);
CREATE TABLE tampered(run_id TEXT PRIMARY KEY, detail TEXT NOT NULL);
CREATE TABLE run_facts(run_id TEXT PRIMARY KEY, facts TEXT NOT NULL);
CREATE TABLE run_files(run_id TEXT, path TEXT, data BLOB NOT NULL, PRIMARY KEY(run_id, path));
CREATE TABLE models(
    name TEXT, version TEXT, run_id TEXT, source TEXT, md5 TEXT, git_commit TEXT,
    record_sha TEXT, created INTEGER, tags TEXT, PRIMARY KEY(name, version));
CREATE INDEX models_md5 ON models(md5);
CREATE INDEX models_run ON models(run_id);
CREATE TABLE aliases(name TEXT, alias TEXT, version TEXT, PRIMARY KEY(name, alias));
CREATE TABLE dirs(dir TEXT PRIMARY KEY, found INTEGER);
CREATE TABLE dir_files(dir TEXT, relpath TEXT, md5 TEXT, PRIMARY KEY(dir, relpath)) WITHOUT ROWID;
CREATE INDEX dir_files_md5 ON dir_files(md5);
"""


_TABLES = (
    *("commits", "refs", "ref_commits", "entry_refs", "changes", "entries", "blob_entries"),
    "entry_io",
    *("runs", "run_io", "tampered", "run_facts", "run_files", "models", "aliases"),
    *("dirs", "dir_files"),
)
# What belongs to the store: dropped when the index is pointed at another one.
_STORE_TABLES = ("runs", "run_io", "tampered", "run_facts", "run_files", "models", "aliases")


@dataclass(frozen=True)
class UpdateStats:
    """What one update found: new commits, moved refs, new runs, model versions read."""

    commits: int = 0
    refs: int = 0
    runs: int = 0
    models: int = 0
    synced_store: bool = False


def index_path(root: Path) -> Path:
    return root / INDEX_DIR / INDEX_NAME


class Index:
    """The index of one repository (and the tracking store it records to)."""

    def __init__(self, root: Path, path: Path | None = None, project: Path | None = None) -> None:
        self.root = root
        # A 'dvc init --subdir' project keeps its index and DVC cache in its folder.
        self.project = project or root
        self.path = path or index_path(self.project)
        self.skipped: list[str] = []  # committed files the YAML loader refused, for a warning
        self.db = self._open()

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        ignore = self.path.parent / ".gitignore"
        if self.path.parent.name == INDEX_DIR and not ignore.exists():
            # The folder ignores itself, also in repositories dvflow did not set up.
            ignore.write_text("*\n", encoding="utf-8")
        try:
            return self._connect()
        except sqlite3.DatabaseError as exc:
            # Only a cache: a file that is not a database is rebuilt, not reported.
            # Anything else (a lock held by another command...) must not delete
            # a file that another process is using.
            if not _corrupt(exc):
                raise IndexFileError(self.path, str(exc)) from exc
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        try:
            return self._connect()
        except sqlite3.DatabaseError as exc:
            raise IndexFileError(self.path, str(exc)) from exc

    def _connect(self) -> sqlite3.Connection:
        # Switching to WAL, or creating the schema, while another command does
        # the same can be refused at once ("database is locked") instead of
        # waiting: try again for a while.
        deadline = time.monotonic() + 60
        while True:
            try:
                return self._connect_once()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _connect_once(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            if not self._has_schema(db):
                self._create(db)
        except BaseException:
            db.close()
            raise
        return db

    @staticmethod
    def _has_schema(db: sqlite3.Connection) -> bool:
        try:
            row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        except sqlite3.OperationalError:
            return False
        return bool(row and row[0] == SCHEMA_VERSION)

    @staticmethod
    def _create(db: sqlite3.Connection) -> None:
        # An older index may hold credentials (a store URI, an import URL): its
        # dropped pages are zeroed, not left behind in the file.
        db.execute("PRAGMA secure_delete=ON")
        db.execute("BEGIN IMMEDIATE")
        try:
            if not Index._has_schema(db):
                tables = db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
                for (name,) in tables:
                    db.execute(f'DROP TABLE IF EXISTS "{name}"')
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute("INSERT INTO meta VALUES('schema', ?)", (SCHEMA_VERSION,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def writing(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; other writers wait, readers keep reading."""
        deadline = time.monotonic() + 60
        while True:
            try:
                self.db.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise IndexFileError(self.path, str(exc)) from exc
                time.sleep(0.05)
            except sqlite3.DatabaseError as exc:
                raise IndexFileError(self.path, str(exc)) from exc
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return str(row[0]) if row else None

    @staticmethod
    def _set_meta(db: sqlite3.Connection, key: str, value: str) -> None:
        db.execute("INSERT OR REPLACE INTO meta VALUES(?, ?)", (key, value))

    # -- Git ----------------------------------------------------------------

    def update_git(self) -> UpdateStats:
        """Read the commits that branches, tags and HEAD gained since the last update."""
        current = _current_refs(self.root)
        stored = dict(self.db.execute("SELECT name, sha FROM refs").fetchall())
        if current == stored:
            return UpdateStats()
        with self.writing() as db:
            stored = dict(db.execute("SELECT name, sha FROM refs").fetchall())
            known = _history.existing(self.root, set(stored.values()))
            commits, changes = _history.changes(
                self.root, sorted(set(current.values())), sorted(known)
            )
            self._add_history(db, commits, changes)
            moved = [name for name, sha in current.items() if stored.get(name) != sha]
            self._update_refs(db, current, moved)
        return UpdateStats(commits=len(commits), refs=len(moved))

    def _add_history(
        self,
        db: sqlite3.Connection,
        commits: Sequence[_history.Commit],
        changes: Sequence[_history.Change],
    ) -> None:
        db.executemany(
            "INSERT OR IGNORE INTO commits VALUES(?, ?)", [(c.sha, c.time) for c in commits]
        )
        db.executemany(
            "INSERT OR REPLACE INTO changes VALUES(?, ?, ?, ?)",
            [(c.commit, c.path, c.blob, c.old) for c in changes],
        )
        # The oldest commit of each new blob (git log lists the newest first):
        # a rebuild and an incremental update then read the same dvc.yaml.
        first = {c.blob: c for c in changes if c.blob}
        seen = {row[0] for row in db.execute("SELECT DISTINCT blob FROM blob_entries").fetchall()}
        new = {blob: c for blob, c in first.items() if blob not in seen}
        contents = _history.read_blobs(self.root, new)
        pipelines = _history.read_named(
            self.root,
            (
                f"{c.commit}:{_history.pipeline_path(c.path)}"
                for c in new.values()
                if c.path.rpartition("/")[2] == "dvc.lock"
            ),
        )
        for blob, data in contents.items():
            change = new[blob]
            pipeline = pipelines.get(f"{change.commit}:{_history.pipeline_path(change.path)}")
            for entry in _history.parse_file(
                change.path, data, pipeline, commit=change.commit, skipped=self.skipped
            ):
                self._add_entry(db, blob, entry)

    @staticmethod
    def _add_entry(db: sqlite3.Connection, blob: str, entry: _history.Entry) -> None:
        digest = entry.digest
        db.execute("INSERT OR IGNORE INTO blob_entries VALUES(?, ?)", (blob, digest))
        exists = db.execute("SELECT 1 FROM entries WHERE id=?", (digest,)).fetchone()
        if exists:
            return
        db.execute(
            "INSERT INTO entries VALUES(?, ?, ?, ?, ?, ?, ?)",
            (
                digest,
                entry.kind,
                entry.file,
                entry.name,
                entry.cmd,
                json.dumps(dict(entry.params), sort_keys=True),
                # A committed 'dvc import' URL may carry a token (https://u:t@host).
                json.dumps(Redactor().redact_obj(dict(entry.source))) if entry.source else None,
            ),
        )
        rows = [(digest, "dep", p, m) for p, m in entry.deps]
        rows += [(digest, "out", p, m) for p, m in entry.outs]
        db.executemany("INSERT INTO entry_io VALUES(?, ?, ?, ?)", rows)

    def _update_refs(
        self, db: sqlite3.Connection, current: Mapping[str, str], moved: Sequence[str]
    ) -> None:
        known = {row[0] for row in db.execute("SELECT sha FROM commits").fetchall()}
        db.execute("DELETE FROM refs")
        db.executemany("INSERT INTO refs VALUES(?, ?)", list(current.items()))
        gone = [(name,) for name in moved] + [
            (row[0],)
            for row in db.execute("SELECT DISTINCT ref FROM ref_commits").fetchall()
            if row[0] not in current
        ]
        db.executemany("DELETE FROM ref_commits WHERE ref=?", gone)
        db.executemany("DELETE FROM entry_refs WHERE ref=?", gone)
        for name in moved:
            shas = [s for s in _history.reachable(self.root, current[name]) if s in known]
            db.executemany(
                "INSERT OR IGNORE INTO ref_commits VALUES(?, ?)", [(name, s) for s in shas]
            )
            # Which stage and source entries each ref's history commits: the
            # refs of a data version are then one lookup, not a join per query.
            db.execute(
                "INSERT OR IGNORE INTO entry_refs SELECT DISTINCT be.entry, rc.ref "
                "FROM ref_commits rc JOIN changes c ON c.sha = rc.sha "
                "JOIN blob_entries be ON be.blob = c.blob WHERE rc.ref = ?",
                (name,),
            )
        if gone:
            self._forget_unreachable(db)

    @staticmethod
    def _forget_unreachable(db: sqlite3.Connection) -> None:
        """Drop what only deleted or force-pushed refs held: a rebuild would not read it."""
        for statement in (
            "DELETE FROM commits WHERE sha NOT IN (SELECT sha FROM ref_commits)",
            "DELETE FROM changes WHERE sha NOT IN (SELECT sha FROM commits)",
            "DELETE FROM blob_entries WHERE blob NOT IN (SELECT blob FROM changes)",
            "DELETE FROM entries WHERE id NOT IN (SELECT entry FROM blob_entries)",
            "DELETE FROM entry_io WHERE entry NOT IN (SELECT id FROM entries)",
            "DELETE FROM entry_refs WHERE entry NOT IN (SELECT id FROM entries)",
        ):
            db.execute(statement)

    # -- directory listings -------------------------------------------------

    def update_dirs(self, changed: bool) -> int:
        """Read the listing of every directory version not read yet; returns how many.

        From DVC's cache (tried again while missing: a ``dvc pull`` may bring
        it), or once from the work tree for the versions its DVC files name.
        New versions are looked for only when Git or the store brought some
        (``changed``): a warm query does not scan every md5.
        """
        scan = changed or self.meta("dirs_scanned") is None
        query = (
            "SELECT io.md5, d.found FROM (SELECT md5 FROM entry_io UNION "
            "SELECT md5 FROM run_io) io LEFT JOIN dirs d ON d.dir = io.md5 "
            "WHERE io.md5 LIKE '%.dir' AND (d.found IS NULL OR d.found = 0)"
            if scan
            else "SELECT dir, found FROM dirs WHERE found = 0"
        )
        wanted = [(str(md5), found) for md5, found in self.db.execute(query)]
        if not wanted:
            if scan:
                with self.writing() as db:
                    self._set_meta(db, "dirs_scanned", "1")
            return 0
        folders = _listings.cache_folders(self.project)
        listings = {md5: _listings.from_cache(folders, md5) for md5, _ in wanted}
        untried = {md5 for md5, found in wanted if found is None and listings[md5] is None}
        if untried:
            listings |= self._git_listings(untried, folders)
            missing = {md5 for md5 in untried if listings.get(md5) is None}
            listings |= {k: v for k, v in self._worktree_listings(missing).items() if v}
        read = {md5: listing for md5, listing in listings.items() if listing is not None}
        if not read and not untried and not scan:
            return 0
        with self.writing() as db:
            self._set_meta(db, "dirs_scanned", "1")
            db.executemany(
                "INSERT OR REPLACE INTO dirs VALUES(?, ?)",
                [(md5, int(md5 in read)) for md5, _ in wanted if md5 in read or md5 in untried],
            )
            db.executemany(
                "INSERT OR IGNORE INTO dir_files VALUES(?, ?, ?)",
                [(md5, rel, m) for md5, listing in read.items() for rel, m in listing.items()],
            )
        return len(read)

    def _git_listings(
        self, md5s: set[str], folders: Sequence[Path]
    ) -> dict[str, _listings.Listing | None]:
        """Listings of Git-tracked folder dependencies, from a commit whose dvc.lock names them."""
        found: dict[str, _listings.Listing | None] = {}
        wanted = sorted(md5s)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            for md5, path, sha in self.db.execute(
                "SELECT io.md5, io.path, MIN(c.sha) FROM entry_io io "  # noqa: S608 - only '?'s
                "JOIN blob_entries be ON be.entry = io.entry JOIN changes c ON c.blob = be.blob "
                f"WHERE io.role = 'dep' AND io.md5 IN ({','.join('?' * len(chunk))}) "
                "GROUP BY io.md5, io.path",
                chunk,
            ):
                if found.get(md5) is None:
                    found[md5] = _listings.from_git(self.root, sha, path, md5, folders)
        return found

    def _worktree_listings(self, md5s: set[str]) -> dict[str, _listings.Listing | None]:
        from ._lineage import _worktree_entries

        found: dict[str, _listings.Listing | None] = {}
        for entry in _worktree_entries(self.root):
            for path, md5 in (*entry.deps, *entry.outs):
                if md5 in md5s and found.get(md5) is None:
                    found[md5] = _listings.from_worktree(self.root, path, md5)
        return found

    # -- MLflow -------------------------------------------------------------

    def store_stale(self, uri: str, max_age_s: float) -> bool:
        """Has the store (probably) changed since the last sync?

        A local SQLite store is compared by its file's size and time, which
        costs nothing; a server by a few small REST requests (its newest runs
        and registry, ``stores/_rest``), or by the age of the last
        sync when it does not answer them.
        """
        if not self.holds_store(uri):
            return True
        stamp = _store_stamp(uri)
        if stamp is not None:
            return stamp != self.meta("store_stamp")
        synced = float(self.meta("synced_at") or 0)
        return time.time() - synced > max_age_s

    def sync_store(self, tracker: Tracker, *, full: bool = False) -> UpdateStats:
        """Read runs started since the last sync, open runs, and the whole registry."""
        from ._reader import StoreReader

        reader = StoreReader(tracker)
        stamp = _store_stamp(tracker.uri)  # before reading: a write meanwhile moves it
        with self.writing() as db:
            if full or not self.holds_store(tracker.uri):
                for table in _STORE_TABLES[:5]:
                    db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed names, no input
                self._set_meta(db, "runs_since", "0")
            since = int(self.meta("runs_since") or 0)
            open_runs = [
                row[0]
                for row in db.execute(
                    "SELECT run_id FROM runs WHERE status='RUNNING' OR record_sha IS NULL"
                ).fetchall()
            ]
            runs = reader.runs(max(0, since - SYNC_OVERLAP_MS) if since else 0, open_runs)
            known = {row[0] for row in db.execute("SELECT run_id FROM runs").fetchall()}
            for run in runs:
                self._put_run(db, run)
            newest = max([since, *(int(r["start_time"]) for r in runs)])
            versions = reader.model_versions()
            self._put_models(db, versions)
            self._set_meta(db, "runs_since", str(newest))
            self._set_meta(db, "experiments", json.dumps(reader.experiment_names, sort_keys=True))
            self._set_meta(db, "store_uri", _redacted(tracker.uri))
            self._set_meta(db, "store_uri_sha256", _uri_hash(tracker.uri))
            self._set_meta(db, "synced_at", str(time.time()))
            self._set_meta(db, "store_stamp", stamp or "")
        new = sum(1 for run in runs if run["run_id"] not in known)
        return UpdateStats(runs=new, models=len(versions), synced_store=True)

    @staticmethod
    def _put_run(db: sqlite3.Connection, run: Mapping[str, Any]) -> None:
        run_id = run["run_id"]
        db.execute(
            "INSERT OR REPLACE INTO runs VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                run_id,
                run["experiment_id"],
                run["name"],
                run["parent_id"],
                run["kind"],
                run["stage"],
                run["status"],
                run["dvflow_status"],
                run["git_commit"],
                int(run["dirty"]),
                run["start_time"],
                run["end_time"],
                run["record_sha"],
                run["produced_by"],
                run["result_commit"],
                json.dumps(run["params"], sort_keys=True),
                json.dumps(run["metrics"], sort_keys=True),
            ),
        )
        db.execute("DELETE FROM run_io WHERE run_id=?", (run_id,))
        rows = [(run_id, "in", p, m) for p, m in run["inputs"]]
        rows += [(run_id, "out", p, m) for p, m in run["outputs"]]
        db.executemany("INSERT INTO run_io VALUES(?, ?, ?, ?)", rows)
        # A run whose dvflow.io tag was rewritten: every answer says so (_lineage).
        db.execute("DELETE FROM tampered WHERE run_id=?", (run_id,))
        if run.get("tampered"):
            db.execute("INSERT INTO tampered VALUES(?, ?)", (run_id, run["tampered"]))
        if run.get("facts"):
            # What 'show' and 'verify' read of the run (_records).
            db.execute("INSERT OR REPLACE INTO run_facts VALUES(?, ?)", (run_id, run["facts"]))

    @staticmethod
    def _put_models(db: sqlite3.Connection, versions: Sequence[Mapping[str, Any]]) -> None:
        db.execute("DELETE FROM models")
        db.execute("DELETE FROM aliases")
        for v in versions:
            tags = v["tags"]
            db.execute(
                "INSERT INTO models VALUES(?,?,?,?,?,?,?,?,?)",
                (
                    v["name"],
                    v["version"],
                    v["run_id"],
                    v["source"],
                    tags.get("dvflow.model_md5"),
                    tags.get("dvflow.git_commit"),
                    tags.get("dvflow.record_sha256"),
                    v["created"],
                    json.dumps(tags, sort_keys=True),
                ),
            )
            db.executemany(
                "INSERT OR REPLACE INTO aliases VALUES(?, ?, ?)",
                [(v["name"], alias, v["version"]) for alias in v["aliases"]],
            )

    def holds_store(self, uri: str) -> bool:
        """Are the runs in the index those of the store at ``uri``?

        The index keeps the URI redacted (a password in it stays out of
        ``.dvflow/``) and compares a hash of the real one.
        """
        return self.meta("store_uri_sha256") == _uri_hash(uri)

    def other_store(self, uri: str) -> bool:
        """Does the index hold the runs of a store other than ``uri``?"""
        return self.meta("store_uri_sha256") not in (None, _uri_hash(uri))

    def forget_store(self) -> None:
        """Drop every run and model version: they belong to a store no longer in use."""
        with self.writing() as db:
            for table in _STORE_TABLES:
                db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed names, no input
            db.execute(
                "DELETE FROM meta WHERE key IN "
                "('store_uri', 'store_uri_sha256', 'runs_since', 'store_stamp')"
            )

    def clear(self) -> None:
        """Forget everything; the next update reads Git and the store from scratch."""
        with self.writing() as db:
            for table in _TABLES:
                db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed names, no input
            db.execute("DELETE FROM meta WHERE key != 'schema'")


def _corrupt(exc: sqlite3.DatabaseError) -> bool:
    text = str(exc).lower()
    return "not a database" in text or "malformed" in text or "encrypted" in text


def _current_refs(root: Path) -> dict[str, str]:
    found = _history.refs(root)
    from dvflow.core._git import head_commit

    head = head_commit(root)
    if head:
        found["HEAD"] = head
    return found


def _uri_hash(uri: str) -> str:
    return hashlib.sha256(uri.encode("utf-8", "surrogateescape")).hexdigest()


def _redacted(uri: str) -> str:
    return Redactor().redact(uri)


def _store_stamp(uri: str) -> str | None:
    """What moves when anyone writes to the store (None: only the age of a sync tells)."""
    if uri.startswith(("http://", "https://")):
        from dvflow.stores._rest import server_stamp

        return server_stamp(uri)
    return _file_stamp(uri)


def _file_stamp(uri: str) -> str | None:
    """Size and time of a local SQLite store's file (None for any other store)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = Path(uri[len("sqlite:///") :])
    parts = []
    for candidate in (path, Path(f"{path}-wal")):
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        parts.append(f"{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts) or "missing"
