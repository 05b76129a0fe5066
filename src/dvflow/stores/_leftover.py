"""Runs a ``dvflow run`` killed with ``kill -9`` left open, ended by the next one.

A killed run cannot end its MLflow runs: they would stay RUNNING forever.
Each run dvflow opens is noted in ``.dvflow/open-runs.json`` until it ends;
the next ``dvflow run`` or ``dvflow sync`` in the work tree (holding its
lock, so the killed run is gone) ends whatever is still noted as KILLED.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from dvflow.core._exceptions import RunNotFoundError, TrackingError

from ._openruns import OpenRuns

if TYPE_CHECKING:
    from ._tracking import Tracker


def end_left_open(root: Path, uri: str, warn: Callable[[str], None]) -> None:
    """End as KILLED the runs a killed ``dvflow run`` left open (call holding the lock).

    A run the store cannot be asked about now (the server does not answer)
    stays noted for the next time.
    """
    ids = OpenRuns(root).ids
    if not ids:
        return
    store = _store_if_answering(uri)
    ended, kept = [], []
    for run_id in ids:
        try:
            done = _end(root, store, run_id)
        except TrackingError as exc:
            # Gone quiet: try again next time; refused (a deleted run...): drop it.
            done = None if exc.unreachable else False
        if done is None:
            kept.append(run_id)
        elif done:
            ended.append(run_id)
    OpenRuns(root, kept).save()
    if ended:
        warn(
            f"the last dvflow run here was killed and left {len(ended)} run(s) open; "
            f"ended them as KILLED: {', '.join(ended)}"
        )


def _store_if_answering(uri: str) -> Tracker | None:
    """The store, if it answers now (one quick probe, not MLflow's minutes of retries)."""
    from ._tracking import Tracker, check_reachable

    try:
        check_reachable(uri)
    except TrackingError:
        return None
    return Tracker(uri)


def _end(root: Path, store: Tracker | None, run_id: str) -> bool | None:
    """End ``run_id`` (or its stand-in in the spool) as KILLED if it is still running.

    None: it is on a store that does not answer now.
    """
    from ._spool import open_spool, spool_exists, stand_in_of

    if spool_exists(root):
        stand_in = stand_in_of(root, run_id)
        if stand_in is not None:
            return _kill(open_spool(root), stand_in)
    if store is None:
        return None
    try:
        return _kill(store, run_id)
    except RunNotFoundError:
        return False


def _kill(store: Tracker, run_id: str) -> bool:
    if store.get_run(run_id).info.status != "RUNNING":
        return False
    # As a run stopped by Ctrl-C ends: no 'dvflow.status=running' left behind.
    store.set_tags(run_id, {"dvflow.status": "killed"})
    store.terminate(run_id, "KILLED")
    return True
