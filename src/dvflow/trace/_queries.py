"""``lineage``, ``impact`` and ``update_index``: the library side of those commands.

Each query first brings the index up to date: Git always (two git calls
when nothing moved), the tracking store only when it changed (a local
SQLite store) or the last sync is older than ``max_age_s`` (a server).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from dvflow.core._config import load_config
from dvflow.core._exceptions import TrackingError
from dvflow.core._roots import project_roots

from ._graph import Direction, Graph
from ._index import Index, UpdateStats
from ._lineage import build_graph

# A shared server is re-read at most this often by queries (--sync forces it).
SERVER_MAX_AGE_S = 60.0


@dataclass(frozen=True)
class IndexStatus:
    """What the index holds after an update."""

    path: Path
    commits: int
    stage_entries: int
    runs: int
    model_versions: int
    refs: int
    store_uri: str | None
    updated: UpdateStats
    warnings: tuple[str, ...] = field(default=())


def open_index(
    root: Path,
    *,
    tracking_uri: str | None = None,
    sync: bool | None = None,
    rebuild: bool = False,
    project: Path | None = None,
) -> tuple[Index, UpdateStats, list[str]]:
    """The index of ``root``, brought up to date; returns it, what changed, and warnings.

    ``sync``: True always re-reads the store, False never, None when it changed.
    ``project``: the folder of a 'dvc init --subdir' project, whose settings,
    store and index are its own (default: the git root's).
    """
    config = load_config(project or root, tracking_uri=tracking_uri)
    index = Index(root, project=project)
    if rebuild:
        index.clear()
    git = index.update_git()
    try:
        index, stats, warnings = _update_store(index, git, config.tracking_uri, sync, rebuild)
        # Last: the listings of directory versions that Git and the store named.
        index.update_dirs(changed=bool(stats.commits or stats.refs or stats.synced_store))
    except BaseException:
        index.close()
        raise
    warnings.extend(index.skipped)
    if (project or root) == root and (hint := _subprojects_hint(root)):
        warnings.append(hint)
    return index, stats, warnings


def _subprojects_hint(root: Path) -> str | None:
    """Say so when the git root is no DVC project but folders in it are ('--subdir').

    Their runs are in their own stores: from the top, only Git history answers.
    """
    if (root / ".dvc").is_dir():
        return None
    found = sorted(
        p.parent.relative_to(root).as_posix()
        for p in (*root.glob("*/.dvc"), *root.glob("*/*/.dvc"))
    )
    if not found:
        return None
    return (
        f"the DVC projects of this repository are in folders ({', '.join(found[:5])}"
        f"{', ...' if len(found) > 5 else ''}) with stores of their own: this answer comes "
        "from Git history alone; pass -C FOLDER (or run it there) to include their runs"
    )


def open_index_at(
    path: str | os.PathLike[str], *, tracking_uri: str | None = None, sync: bool | None = None
) -> tuple[Index, UpdateStats, list[str]]:
    """``open_index`` of the project around ``path`` ('dvc init --subdir' ones have their own)."""
    root, project = project_roots(path)
    return open_index(root, tracking_uri=tracking_uri, sync=sync, project=project)


def _update_store(
    index: Index, git: UpdateStats, uri: str, sync: bool | None, rebuild: bool
) -> tuple[Index, UpdateStats, list[str]]:
    from dvflow.stores._tracking import check_existing_store, display_uri

    warnings: list[str] = []
    if sync is False or not (sync or rebuild or index.store_stale(uri, SERVER_MAX_AGE_S)):
        return index, git, warnings
    try:
        check_existing_store(uri)
    except TrackingError as exc:
        if index.other_store(uri):
            # Never answer for one store with the runs of another.
            index.forget_store()
            warnings.append(
                f"the index held another store's runs; tracking store {display_uri(uri)}: "
                f"{exc.problem}: answering from Git history only"
            )
            return index, git, warnings
        if uri.startswith("sqlite:///") and "no store there yet" in exc.problem:
            return index, git, warnings  # a repository without MLflow runs: Git alone
        synced = index.meta("synced_at")
        warnings.append(
            f"tracking store {display_uri(uri)} unreachable; answering from the index"
            + (" as last synced" if synced else " (Git history only)")
        )
        return index, git, warnings
    from dvflow.stores._tracking import Tracker

    stats = index.sync_store(Tracker(uri), full=rebuild)
    return index, _merge(git, stats), warnings


def _merge(git: UpdateStats, store: UpdateStats) -> UpdateStats:
    return UpdateStats(
        commits=git.commits,
        refs=git.refs,
        runs=store.runs,
        models=store.models,
        synced_store=store.synced_store,
    )


def _query(
    direction: Direction,
    target: str,
    path: str | os.PathLike[str],
    tracking_uri: str | None,
    sync: bool | None,
) -> Graph:
    root, project = project_roots(path)
    index, _, warnings = open_index(root, tracking_uri=tracking_uri, sync=sync, project=project)
    try:
        # A relative path may also be taken from -C's folder (or the current one).
        graph = build_graph(index.db, root, target, direction, Path(path).resolve())
    finally:
        index.close()
    graph.warnings.extend(warnings)
    return graph


def lineage(
    target: str,
    path: str | os.PathLike[str] = ".",
    *,
    tracking_uri: str | None = None,
    sync: bool | None = None,
) -> Graph:
    """Everything upstream of ``target``: what produced it, back to the roots."""
    return _query("upstream", target, path, tracking_uri, sync)


def impact(
    target: str,
    path: str | os.PathLike[str] = ".",
    *,
    tracking_uri: str | None = None,
    sync: bool | None = None,
) -> Graph:
    """Everything downstream of ``target``: data, runs, models and aliases built on it."""
    return _query("downstream", target, path, tracking_uri, sync)


def update_index(
    path: str | os.PathLike[str] = ".",
    *,
    tracking_uri: str | None = None,
    rebuild: bool = False,
    sync: bool | None = True,
) -> IndexStatus:
    """Bring the index up to date (or rebuild it from scratch) and say what it holds."""
    root, project = project_roots(path)
    index, stats, warnings = open_index(
        root, tracking_uri=tracking_uri, sync=sync, rebuild=rebuild, project=project
    )
    try:
        db = index.db

        def count(query: str) -> int:
            return int(db.execute(query).fetchone()[0])

        return IndexStatus(
            path=index.path,
            commits=count("SELECT COUNT(*) FROM commits"),
            stage_entries=count("SELECT COUNT(*) FROM entries"),
            runs=count("SELECT COUNT(*) FROM runs"),
            model_versions=count("SELECT COUNT(*) FROM models"),
            refs=count("SELECT COUNT(*) FROM refs"),
            store_uri=index.meta("store_uri"),
            updated=stats,
            warnings=tuple(warnings),
        )
    finally:
        index.close()
