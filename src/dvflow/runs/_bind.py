"""``bind_commit``: tie runs to the later commit that holds their results.

A stage runs before its ``dvc.lock`` is committed (DESIGN trap 2), so the
commit in a record is the code the run started from, not the commit that
holds its results. Once that commit exists, binding tags every run whose
outputs it holds with ``dvflow.result_commit``. Records stay untouched:
their digests keep proving what the run saw when it ran.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from dvflow.core import _git
from dvflow.core._dvcfiles import LOCK_FILE, outputs_key, pointer_from_entry
from dvflow.core._exceptions import InvalidFileError
from dvflow.core._yaml import load_yaml_text

RESULT_COMMIT_TAG = "dvflow.result_commit"


@dataclass(frozen=True)
class BindResult:
    commit: str
    bound: tuple[str, ...]
    already_bound: tuple[str, ...]


def _stage_keys(root: Path, commit: str) -> dict[str, str]:
    """Stage name -> outputs key, for every stage in every dvc.lock at ``commit``."""
    keys: dict[str, str] = {}
    for lock_path in _git.files_named(root, commit, LOCK_FILE):
        data = load_yaml_text(_git.show_file(root, commit, lock_path), f"{commit[:8]}:{lock_path}")
        stages = data.get("stages") if isinstance(data, dict) else None
        if not isinstance(stages, dict):
            raise InvalidFileError(lock_path, f"no 'stages' mapping at commit {commit[:8]}")
        keys.update(lock_keys(lock_path, stages))
    return keys


def lock_keys(lock_path: str, stages: Mapping[str, Any]) -> dict[str, str]:
    """Stage name (as runs are tagged) -> outputs key, for the stages of one dvc.lock.

    Computed from the paths as dvc.lock writes them (normalised), exactly as
    ``dvflow run`` tags its runs, so that a key found here names those runs.
    """
    folder = str(PurePosixPath(lock_path).parent)
    keys: dict[str, str] = {}
    for name, entry in stages.items():
        outs = entry.get("outs") if isinstance(entry, dict) else None
        pointers = [pointer_from_entry(o) for o in outs or [] if isinstance(o, dict)]
        key = outputs_key(pointers)
        if key:
            keys[name if folder == "." else f"{folder}/dvc.yaml:{name}"] = key
    return keys


def bind_commit(
    path: str | os.PathLike[str] = ".", rev: str = "HEAD", *, tracking_uri: str | None = None
) -> BindResult:
    """Tag the runs whose outputs the ``dvc.lock`` files at ``rev`` hold."""
    from dvflow.core._roots import settings_root
    from dvflow.stores._tracking import open_project
    from dvflow.trace._records import note_store

    root, config, tracker = open_project(path, tracking_uri)
    commit = _git.rev_parse(root, rev)
    keys = _stage_keys(root, commit)
    experiment = tracker.experiment_id(config.experiment, config.artifact_location)
    bound: list[str] = []
    already: list[str] = []
    parents: set[str] = set()
    for stage, key in sorted(keys.items()):
        for run in tracker.runs_with_outputs(experiment, stage, key):
            parent = run.data.tags.get("mlflow.parentRunId")
            if RESULT_COMMIT_TAG in run.data.tags:
                already.append(run.info.run_id)
                continue
            tracker.set_tags(run.info.run_id, {RESULT_COMMIT_TAG: commit})
            bound.append(run.info.run_id)
            if parent:
                parents.add(parent)
    for parent in sorted(parents):
        if RESULT_COMMIT_TAG not in tracker.get_run(parent).data.tags:
            tracker.set_tags(parent, {RESULT_COMMIT_TAG: commit})
            bound.append(parent)
    note_store(settings_root(Path(path).resolve(), root), tracker, bound)  # write-through
    return BindResult(commit, tuple(bound), tuple(already))
