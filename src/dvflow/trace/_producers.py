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


def producers(project: Path, uri: str, outputs: Mapping[str, Outputs]) -> dict[str, str | None]:
    """The run that produced each stage's current ``outputs``, or None when unknown.

    ``project`` is the folder of the DVC project (and of its index), ``uri``
    its tracking store's. ``outputs`` maps a stage name (as records spell
    it) to its outputs now. Unknown: no index yet, an index of another
    store, no run with exactly these outputs, or a stage without outputs.
    """
    found: dict[str, str | None] = dict.fromkeys(outputs)
    if not index_path(project).is_file():
        return found
    index = Index(project)  # read as it is: no Git update, no store sync
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
    """The earliest run that ran ``stage`` and made ``outs`` (as 'dvflow run' links them).

    Without one (the index has only a later run that restored or found them
    up to date), the producer that run names.
    """
    wanted = sorted(outs)
    if not wanted:
        return None
    path, md5 = wanted[0]
    candidates = db.execute(
        "SELECT r.run_id, r.dvflow_status, r.produced_by FROM runs r "
        "JOIN run_io o ON o.run_id = r.run_id AND o.role = 'out' "
        "WHERE o.md5 = ? AND o.path = ? AND r.stage = ? AND r.kind = 'stage' "
        "AND r.status = 'FINISHED' AND r.run_id NOT IN (SELECT run_id FROM tampered) "
        "ORDER BY r.start_time, r.run_id",
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
