"""``diff A B``: what changed between two recorded runs (or model versions).

Code (commits between, files changed), data (pointers that changed; for a
directory, the files added, removed or modified, from DVC's ``.dir``
listings), params, metrics with their deltas, and the packages installed.
For a model version, also the metrics of the stage runs that consumed it
(an ``evaluate`` stage downstream of ``train``: the usual layout).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dvflow.core import _git
from dvflow.core._dvcfiles import Pointer
from dvflow.core._exceptions import DvflowError
from dvflow.core._record import PACKAGES_ARTIFACT, PATCH_ARTIFACT, ProvenanceRecord

from ._checks import package_change, split_requirement
from ._show import intact_record

if TYPE_CHECKING:
    from dvflow.stores._tracking import Tracker


@dataclass(frozen=True)
class Side:
    """One end of a diff: the run, its stage and its code."""

    target: str
    run_id: str
    stage: str | None
    commit: str | None
    dirty: bool
    patched: tuple[str, ...] = ()  # files the dirty run's patch changes


@dataclass(frozen=True)
class DataChange:
    path: str
    old: str | None
    new: str | None
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    modified: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConsumerMetrics:
    """The metrics of the runs of one stage that consumed A's and B's model."""

    stage: str
    a_run: str | None
    b_run: str | None
    metrics: dict[str, tuple[float | None, float | None]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "a_run": self.a_run,
            "b_run": self.b_run,
            "metrics": _metric_deltas(self.metrics),
        }


@dataclass(frozen=True)
class RunDiff:
    a: Side
    b: Side
    commits_ahead: int | None
    commits_behind: int | None
    files: tuple[tuple[str, str], ...]
    data: tuple[DataChange, ...]
    params: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    metrics: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    packages: tuple[str, ...] = ()
    consumers: tuple[ConsumerMetrics, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a.__dict__,
            "b": self.b.__dict__,
            "code": {
                "commits_ahead": self.commits_ahead,
                "commits_behind": self.commits_behind,
                "files": [{"status": s, "path": p} for s, p in self.files],
            },
            "data": [
                c.__dict__ | {k: list(getattr(c, k)) for k in ("added", "removed", "modified")}
                for c in self.data
            ],
            "params": {k: list(v) for k, v in self.params.items()},
            "metrics": _metric_deltas(self.metrics),
            "consumers": [c.to_dict() for c in self.consumers],
            "packages": list(self.packages),
        }


def _metric_deltas(metrics: dict[str, tuple[float | None, float | None]]) -> dict[str, Any]:
    return {
        k: {"old": o, "new": n, "delta": None if o is None or n is None else n - o}
        for k, (o, n) in metrics.items()
    }


def diff_runs(
    a: str,
    b: str,
    path: str | os.PathLike[str] = ".",
    *,
    tracking_uri: str | None = None,
    sync: bool | None = None,
) -> RunDiff:
    """Compare the records (and runs) that ``a`` and ``b`` name.

    From the lineage index while the store has not moved (``sync=True``: from the store).
    """
    from dvflow.trace._records import close_tracker, open_project_indexed

    root, _, tracker = open_project_indexed(path, tracking_uri, sync=sync)
    try:
        return _diff(root, tracker, a, b, path)
    finally:
        close_tracker(tracker)


def _diff(root: Path, tracker: Tracker, a: str, b: str, path: str | os.PathLike[str]) -> RunDiff:
    from ._verify import _resolve

    sides, models = [], []
    for target in (a, b):
        # A short run id is looked up in the index of the DVC project at ``path``.
        run_id, model = _resolve(tracker, target, Path(path))[:2]
        if not run_id:
            raise DvflowError(f"{target} is linked to no run", hint="Give a run id.")
        sides.append((target, run_id, *intact_record(tracker, run_id)[:2]))
        models.append(model)
    (ta, ra, rec_a, run_a), (tb, rb, rec_b, run_b) = sides
    side_a, side_b = _side(tracker, ta, ra, rec_a), _side(tracker, tb, rb, rec_b)
    ahead, behind, files = _code(root, side_a.commit, side_b.commit)
    from dvflow.core._roots import settings_root

    # A 'dvc init --subdir' project's cache is in its folder.
    project = _Listings(settings_root(Path(path).resolve(), root))
    try:
        data = _data(project, rec_a, rec_b)
    finally:
        project.close()
    return RunDiff(
        side_a,
        side_b,
        ahead,
        behind,
        files,
        data,
        _changed(dict(rec_a.params), dict(rec_b.params)),
        _changed(dict(run_a.data.metrics), dict(run_b.data.metrics)),
        tuple(_packages(tracker, run_a, run_b)),
        _consumers(tracker, models[0], models[1]),
    )


def _consumers(
    tracker: Tracker, a: Pointer | None, b: Pointer | None
) -> tuple[ConsumerMetrics, ...]:
    """Per downstream stage, how the metrics of the runs that read each model changed."""
    if a is None and b is None:
        return ()
    runs_a, runs_b = _consuming_runs(tracker, a), _consuming_runs(tracker, b)
    found = []
    for stage in sorted(set(runs_a) | set(runs_b)):
        run_a, run_b = runs_a.get(stage), runs_b.get(stage)
        old = dict(run_a.data.metrics) if run_a else {}
        new = dict(run_b.data.metrics) if run_b else {}
        found.append(
            ConsumerMetrics(
                stage,
                run_a.info.run_id if run_a else None,
                run_b.info.run_id if run_b else None,
                _changed(old, new),
            )
        )
    return tuple(found)


def _consuming_runs(tracker: Tracker, model: Pointer | None) -> dict[str, Any]:
    """The newest finished stage run of each stage that read ``model`` (same path, same md5).

    Found by the inputs the lineage index holds, or else by the MLflow
    dataset digest dvflow logs for every input.
    """
    if model is None or not model.md5:
        return {}
    from dvflow.trace._records import IndexedTracker

    indexed = (
        tracker.runs_reading(model.path, model.md5) if isinstance(tracker, IndexedTracker) else None
    )
    if indexed is None:
        query = (
            f"dataset.digest = '{model.md5}' and tags.`dvflow.kind` = 'stage' "
            "and attributes.status = 'FINISHED'"
        )
        runs = tracker.search(tracker.all_experiments(deleted=False), query)
        indexed = [
            r for r in runs if model.path in {d.dataset.name for d in r.inputs.dataset_inputs}
        ]
    newest: dict[str, Any] = {}
    for run in indexed:  # oldest first: the newest run of a stage wins
        stage = run.data.tags.get("dvflow.stage")
        if stage:
            newest[stage] = run
    return newest


def _side(tracker: Tracker, target: str, run_id: str, record: ProvenanceRecord) -> Side:
    patched: tuple[str, ...] = ()
    if record.code.get("dirty") and record.code.get("patch_sha256"):
        try:
            patch = tracker.read_artifact(run_id, PATCH_ARTIFACT).decode(errors="replace")
        except DvflowError:
            patch = ""
        patched = tuple(
            sorted(
                {
                    line.split(" b/", 1)[1]
                    for line in patch.splitlines()
                    if line.startswith("diff --git ")
                }
            )
        )
    return Side(
        target,
        run_id,
        record.stage["name"] if record.stage else None,
        record.code.get("commit"),
        bool(record.code.get("dirty")),
        patched,
    )


def _code(
    root: Path, a: str | None, b: str | None
) -> tuple[int | None, int | None, tuple[tuple[str, str], ...]]:
    if not a or not b or not _git.is_commit(root, a) or not _git.is_commit(root, b):
        return None, None, ()
    counts = _git._git(root, "rev-list", "--left-right", "--count", f"{a}...{b}").split()
    names = _git._git(root, "diff", "--name-status", "--no-renames", a, b)
    files = tuple(
        (line.split("\t", 1)[0], line.split("\t", 1)[1]) for line in names.splitlines() if line
    )
    return int(counts[1]), int(counts[0]), files


class _Listings:
    """Listings of ``.dir`` objects: from DVC's cache files, else through DVC (its remote)."""

    def __init__(self, folder: Path) -> None:
        from dvflow.trace._listings import cache_folders

        self.folder = folder
        self.folders = cache_folders(folder)
        self.project: Any = None

    def listing(self, md5: str) -> dict[str, str]:
        from dvflow.trace._listings import from_cache

        found = from_cache(self.folders, md5)
        if found is not None:
            return found
        if self.project is None:
            from dvflow.stores._dvc import DvcProject

            self.project = DvcProject(self.folder)
        listing: dict[str, str] = self.project.listing(md5)
        return listing

    def close(self) -> None:
        if self.project is not None:
            self.project.close()


def _data(project: Any, a: ProvenanceRecord, b: ProvenanceRecord) -> tuple[DataChange, ...]:
    old = {p.path: p.md5 for p in (*a.inputs, *a.outputs)}
    new = {p.path: p.md5 for p in (*b.inputs, *b.outputs)}
    changes = []
    for path in sorted(set(old) | set(new)):
        if old.get(path) == new.get(path):
            continue
        o, n = old.get(path), new.get(path)
        if o and n and o.endswith(".dir") and n.endswith(".dir"):
            before, after = project.listing(o), project.listing(n)
            changes.append(
                DataChange(
                    path,
                    o,
                    n,
                    tuple(sorted(set(after) - set(before))),
                    tuple(sorted(set(before) - set(after))),
                    tuple(sorted(k for k in set(before) & set(after) if before[k] != after[k])),
                )
            )
        else:
            changes.append(DataChange(path, o, n))
    return tuple(changes)


def _changed(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    return {
        key: (old.get(key), new.get(key))
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    }


def _packages(tracker: Tracker, run_a: Any, run_b: Any) -> list[str]:
    lists = []
    for run in (run_a, run_b):
        parent = run.data.tags.get("mlflow.parentRunId")
        try:
            text = tracker.read_artifact(parent, PACKAGES_ARTIFACT).decode() if parent else ""
        except DvflowError:
            text = ""
        lists.append(dict(split_requirement(line) for line in text.splitlines() if line.strip()))
    then, now = lists
    return [
        package_change(n, then.get(n), now.get(n))
        for n in sorted(set(then) | set(now))
        if then.get(n) != now.get(n)
    ]
