"""Reading a run's provenance record back and checking it against its digest."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dvflow.core import _git
from dvflow.core._config import load_config
from dvflow.core._exceptions import (
    InvalidFileError,
    NotAGitRepoError,
    ProjectError,
    RecordNotFoundError,
    RecordTamperedError,
    RunNotFoundError,
)
from dvflow.core._record import (
    DIGEST_TAG,
    RECORD_ARTIFACT,
    ProvenanceRecord,
    parse_record,
    sha256_hex,
)
from dvflow.trace._records import close_tracker

if TYPE_CHECKING:
    from dvflow.stores._tracking import Tracker


@dataclass(frozen=True)
class RecordCheck:
    """A record as stored, and whether its bytes still match the run's tag."""

    run_id: str
    record: ProvenanceRecord
    raw: bytes
    expected_sha256: str | None
    actual_sha256: str
    run_status: str
    result_commit: str | None = None
    # Where a run named by its spool id was found ('dvflow sync').
    note: str | None = None

    @property
    def intact(self) -> bool:
        return self.expected_sha256 == self.actual_sha256

    @property
    def verdict(self) -> str:
        """What ``show`` says of an intact record: its digest, and what that proves."""
        return f"record sha256 {self.actual_sha256}: intact\nnote: {DIGEST_SCOPE}"


def _project(path: Path, tracking_uri: str | None) -> tuple[Path, Path, str]:
    """The git root around ``path``, the folder of its project (its spool's), and its store.

    The store is the environment's when it names one outside.
    """
    start = path.resolve()
    if not start.is_dir():
        raise ProjectError(f"no such folder: {path}", hint="Pass -C the project's folder.")
    from dvflow.core._roots import settings_root

    try:
        top = _git.find_root(start)
    except NotAGitRepoError:
        top = start
    # A 'dvc init --subdir' project keeps its own settings, store and spool (dvflow run's).
    settings = settings_root(start, top)
    return top, settings, load_config(settings, tracking_uri=tracking_uri).tracking_uri


def _find_run(
    uri: str, run_id: str, top: Path, root: Path, sync: bool | None = None
) -> tuple[Any, Tracker, str | None]:
    """The run ``run_id`` names, the store that holds it, and a note on where it was found.

    While the server did not answer, 'dvflow run' printed the ids of the
    local spool: such a run is read from the spool (even offline) until
    'dvflow sync' copies it, and after that from the server run that
    carries its id.
    """
    from dvflow.stores._spool import SPOOLED_AS_TAG, open_spool, spooled_run
    from dvflow.stores._tracking import check_existing_store, display_uri
    from dvflow.trace._records import open_indexed

    spooled = spooled_run(root, run_id) if _RUN_ID.match(run_id) else None
    if spooled == "waiting":
        note = "in the local spool, not on the server yet: upload it with 'dvflow sync'"
        spool = open_spool(root)
        return spool.get_run(run_id), spool, note
    if not _MLFLOW_RUN_ID.match(run_id):
        check_existing_store(uri)
        # No store holds a run by that name: say so, not that the store failed.
        raise RunNotFoundError(run_id, display_uri(uri), hint=RUN_ID_FORMAT)
    # The lineage index answers while the store has not moved (trace/_records).
    tracker = open_indexed(top, root, uri, sync=sync)
    try:
        return tracker.get_run(run_id), tracker, None
    except RunNotFoundError as exc:
        # The spool is gone once all of it is synced, and 'dvflow sync --from'
        # copies another store's runs: ask the store anyway.
        synced = tracker.run_tagged(SPOOLED_AS_TAG, run_id) if _RUN_ID.match(run_id) else None
        if synced is None:
            if not _RUN_ID.match(run_id):
                raise RunNotFoundError(run_id, display_uri(uri), hint=RUN_ID_FORMAT) from exc
            raise
    return synced, tracker, f"copied here by 'dvflow sync' as run {synced.info.run_id}"


_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
# Any id MLflow accepts (its own are 32 hexadecimal characters, as _RUN_ID).
_MLFLOW_RUN_ID = re.compile(r"^[a-zA-Z0-9][\w\-]{0,255}$", re.ASCII)
RUN_ID_FORMAT = (
    "A run id is the 32 hexadecimal characters 'dvflow run' printed after 'run' "
    "(or a model version's source run); copy it whole."
)
# What the digest check proves, and what it does not.
DIGEST_SCOPE = (
    "the digest proves the record is unchanged within this store, not who wrote it: "
    "anyone who may write to the store can rewrite a record and its digest together; "
    "signed attestations ('dvflow attest', 'dvflow verify --pubkey') prove authenticity"
)


def check_record(
    run_id: str,
    path: str | os.PathLike[str] = ".",
    *,
    tracking_uri: str | None = None,
    sync: bool | None = None,
) -> RecordCheck:
    """Fetch the record of ``run_id`` and compare its sha256 with the run's tag.

    From the lineage index while the store has not moved; ``sync=True``
    reads the store itself.
    """
    top, root, uri = _project(Path(path), tracking_uri)
    run, tracker, note = _find_run(uri, run_id.strip(), top, root, sync)
    try:
        return _checked(run, tracker, run_id, note)
    finally:
        close_tracker(tracker)


def _checked(run: Any, tracker: Tracker, run_id: str, note: str | None) -> RecordCheck:
    if "dvflow.kind" not in run.data.tags:
        raise RecordNotFoundError(run_id)
    raw = tracker.read_artifact(run.info.run_id, RECORD_ARTIFACT)
    expected, actual = run.data.tags.get(DIGEST_TAG), sha256_hex(raw)
    try:
        record = parse_record(raw)
    except InvalidFileError:
        if expected != actual:
            raise RecordTamperedError(run.info.run_id, expected or "none", actual) from None
        raise
    return RecordCheck(
        run_id=run.info.run_id,
        record=record,
        raw=raw,
        expected_sha256=expected,
        actual_sha256=actual,
        run_status=run.info.status,
        result_commit=run.data.tags.get("dvflow.result_commit"),
        note=note,
    )


def intact_record(tracker: Tracker, run_id: str) -> tuple[ProvenanceRecord, Any, str]:
    """A run's record (with the run and the record's sha256); RecordTamperedError if it changed."""
    run = tracker.get_run(run_id)
    raw = tracker.read_artifact(run_id, RECORD_ARTIFACT)
    expected, actual = run.data.tags.get(DIGEST_TAG), sha256_hex(raw)
    if expected != actual:
        raise RecordTamperedError(run_id, expected or "none", actual)
    return parse_record(raw), run, actual


def load_record(
    run_id: str, path: str | os.PathLike[str] = ".", *, tracking_uri: str | None = None
) -> ProvenanceRecord:
    """The provenance record of ``run_id``; raises RecordTamperedError if it changed."""
    check = check_record(run_id, path, tracking_uri=tracking_uri)
    if not check.intact:
        expected = check.expected_sha256 or "none"
        raise RecordTamperedError(check.run_id, expected, check.actual_sha256)
    return check.record
