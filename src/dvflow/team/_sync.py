"""``dvflow sync``: copy what the local spool holds to the tracking store.

It also sends the OpenLineage events a run could not deliver (the outbox,
``export/_emit``), in order, each once.

The copying itself (two passes, parents before children, ids mapped in
every record) is ``_copier.Copier``; here are the lock, the reachability
check, ``--from``'s source store, and the spool's removal once all of it is
copied.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from dvflow.core._config import load_config, resolve_tracking_uri
from dvflow.core._exceptions import InvalidArgumentError, TrackingError
from dvflow.core._git import find_root
from dvflow.core._scratch import sweep
from dvflow.export._emit import Delivery, send_outbox
from dvflow.runs._lock import run_lock
from dvflow.runs._results import ProgressCallback
from dvflow.stores._leftover import end_left_open
from dvflow.stores._spool import SPOOL_DIR, spool_exists, spool_uri
from dvflow.stores._storecheck import mlflow_sqlite_problem
from dvflow.stores._tracking import Tracker, check_reachable, display_uri
from dvflow.trace._records import note_store

from ._copier import Copier, notice


@dataclass(frozen=True)
class SyncResult:
    tracking_uri: str
    # (the id 'dvflow run' printed, the store's id): equal for a run the
    # server held before it stopped answering.
    runs: tuple[tuple[str, str], ...]
    versions: tuple[tuple[str, str, str], ...]  # (model, spool version, store version)
    # (spool id, store id) of each model a script logged with log_model.
    models: tuple[tuple[str, str], ...] = ()
    copied: int = 0  # runs copied now; the others of ``runs`` were there already
    source: str | None = None  # the store copied instead of the spool (--from)
    lineage: Delivery = field(default_factory=Delivery)  # the OpenLineage outbox's events


def sync_spool(
    path: str | os.PathLike[str] = ".",
    *,
    tracking_uri: str | None = None,
    source: str | None = None,
    on_progress: ProgressCallback | None = None,
) -> SyncResult:
    """Upload every spooled run and model version; raise TrackingError if the store is down.

    With ``source`` (another tracking store, such as the laptop's
    ``sqlite:///mlflow.db``), copy that store's runs, logged models and
    model versions instead, the same way, and leave it as it was apart
    from a tag per copied run. Run again, it copies only what is new.
    """
    from dvflow.core._roots import settings_root

    sweep()  # the temporary folders of a killed sync
    start = Path(path).resolve()
    # A 'dvc init --subdir' project spools to its own folder, for its own store.
    root = settings_root(start, find_root(start))
    config = load_config(root, tracking_uri=tracking_uri)
    shown = display_uri(config.tracking_uri)
    if source is None and not spool_exists(root):
        with run_lock(root):
            return SyncResult(shown, (), (), lineage=send_outbox(root, config))
    origin = _source_store(source, root, config.tracking_uri) if source else spool_uri(root)
    emit = on_progress or (lambda p: None)
    with run_lock(root):
        try:
            check_reachable(config.tracking_uri)
        except TrackingError as exc:
            again = (
                "The spool is kept: run 'dvflow sync'"
                if source is None
                else f"Nothing was changed: run 'dvflow sync --from {display_uri(origin)}'"
            )
            raise TrackingError(
                exc.uri,
                exc.problem,
                hint=f"{again} again once the server answers.",
                unreachable=exc.unreachable,
            ) from None
        if source is None:  # a killed run's stand-ins go to the store as KILLED, not RUNNING
            end_left_open(root, config.tracking_uri, lambda text: notice(emit, text))
        target = Tracker(config.tracking_uri)
        copier = Copier(target, Tracker(origin), config, emit, spool_source=source is None)
        runs = copier.copy_runs()
        versions = copier.copy_versions()
        if source is None:
            shutil.rmtree(root / SPOOL_DIR)
        note_store(root, target)  # write-through: the lineage index has the copied runs
        lineage = send_outbox(root, config) if source is None else Delivery()
    return SyncResult(
        shown,
        runs,
        versions,
        copier.copied_models(),
        copied=copier.copied,
        source=display_uri(origin) if source else None,
        lineage=lineage,
    )


def _source_store(source: str, root: Path, target: str) -> str:
    """The store ``--from`` names: it must exist, and not be the target."""
    if "://" not in source and not source.startswith(("sqlite:", "file:")):
        source = f"sqlite:///{source}"  # a bare path: the laptop's SQLite file
    origin = resolve_tracking_uri(source, root)
    if origin.rstrip("/") == target.rstrip("/"):
        raise InvalidArgumentError(
            "source store",
            display_uri(origin),
            "it is the store runs are copied to",
            hint="Name the team store with --tracking-uri (or DVFLOW_TRACKING_URI).",
        )
    local = origin[len("sqlite:///") :] if origin.startswith("sqlite:///") else None
    if origin.startswith("file:"):
        from urllib.parse import unquote, urlparse

        local = unquote(urlparse(origin).path)
    if local is not None and not Path(local).exists():
        raise InvalidArgumentError(
            "source store",
            display_uri(origin),
            "there is no such file or folder",
            hint="Name the store the runs are in, such as --from sqlite:///mlflow.db "
            "(a relative path starts at the project's root).",
        )
    # MLflow would write its schema into an empty file or another SQLite database.
    sqlite = local is not None and origin.startswith("sqlite:///")
    if sqlite and (problem := mlflow_sqlite_problem(Path(str(local)))):
        raise InvalidArgumentError(
            "source store",
            display_uri(origin),
            f"not an MLflow store: {problem}; it was left as it was",
            hint="Name the store the runs are in, such as --from sqlite:///mlflow.db.",
        )
    check_reachable(origin)
    return origin
