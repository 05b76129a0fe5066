"""Reading a run's provenance record back and checking it against its digest."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _git
from ._config import load_config
from ._exceptions import (
    InvalidFileError,
    ProjectError,
    RecordNotFoundError,
    RecordTamperedError,
)
from ._record import DIGEST_TAG, RECORD_ARTIFACT, ProvenanceRecord, parse_record, sha256_hex

if TYPE_CHECKING:
    from ._tracking import Tracker


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

    @property
    def intact(self) -> bool:
        return self.expected_sha256 == self.actual_sha256


def _tracking_uri(path: Path, tracking_uri: str | None) -> str:
    """The store of the project around ``path``, or the environment's outside one."""
    start = path.resolve()
    if not start.is_dir():
        raise ProjectError(f"no such folder: {path}", hint="Pass -C the project's folder.")
    root = _git.find_root(start) if _git.is_git_repo(start) else start
    return load_config(root, tracking_uri=tracking_uri).tracking_uri


def check_record(
    run_id: str, path: str | os.PathLike[str] = ".", *, tracking_uri: str | None = None
) -> RecordCheck:
    """Fetch the record of ``run_id`` and compare its sha256 with the run's tag."""
    from ._tracking import Tracker, check_existing_store

    uri = _tracking_uri(Path(path), tracking_uri)
    check_existing_store(uri)
    tracker = Tracker(uri)
    run = tracker.get_run(run_id.strip())
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
