"""Which recorded runs made the outputs in the work tree, as the index knows them.

A no-op ``dvflow run`` names them without opening the tracking store: this
reads the index as it is (no Git update, no store sync) and never creates
it, so it imports neither MLflow nor DVC.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path

from ._index import Index, index_path

Outputs = Sequence[tuple[str, str]]  # (path from the git root, md5) of one stage


def producers(
    root: Path, project: Path | None, uri: str, outputs: Mapping[str, Outputs]
) -> dict[str, str | None]:
    """The run that produced each stage's current ``outputs``, or None when unknown.

    ``outputs`` maps a stage name (as records spell it) to its outputs now.
    Unknown: no index yet, an index of another store, no run with exactly
    these outputs, or a stage without outputs.
    """
    found: dict[str, str | None] = dict.fromkeys(outputs)
    if not index_path(project or root).is_file():
        return found
    index = Index(root, project=project)
    try:
        if not index.holds_store(uri):
            return found
        for stage, outs in outputs.items():
            found[stage] = _producer(index.db, stage, outs)
    except sqlite3.DatabaseError:
        return found  # only a cache: a damaged one knows nothing
    finally:
        index.close()
    return found


def _producer(db: sqlite3.Connection, stage: str, outs: Outputs) -> str | None:
    """The newest run that ran ``stage`` and made ``outs``; else what a later run names."""
    wanted = sorted(outs)
    if not wanted:
        return None
    path, md5 = wanted[0]
    candidates = db.execute(
        "SELECT r.run_id, r.dvflow_status, r.produced_by FROM runs r "
        "JOIN run_io o ON o.run_id = r.run_id AND o.role = 'out' "
        "WHERE o.md5 = ? AND o.path = ? AND r.stage = ? AND r.kind = 'stage' "
        "AND r.status = 'FINISHED' AND r.run_id NOT IN (SELECT run_id FROM tampered) "
        "ORDER BY r.start_time DESC",
        (md5, path, stage),
    ).fetchall()
    named = None
    for run_id, status, produced_by in candidates:
        made = db.execute(
            "SELECT path, md5 FROM run_io WHERE run_id = ? AND role = 'out' ORDER BY path, md5",
            (run_id,),
        ).fetchall()
        if sorted(map(tuple, made)) != wanted:
            continue
        if status == "ran":
            return str(run_id)
        named = named or produced_by
    return str(named) if named else None
