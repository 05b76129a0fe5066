"""A ``dvflow run`` with nothing to do: no MLflow, no new runs, the producers named.

When every targeted stage is up to date, ``dvc repro`` would do nothing, and
recording an ``up-to-date`` run per stage only adds duplicates to the store
(``impact`` lists them all). So the run records nothing and never imports
MLflow; the runs that made the current outputs come from the lineage index.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from dvflow.core import _git
from dvflow.core._config import Config
from dvflow.core._dvcfiles import LOCK_FILE, Pointer, pointer_from_entry, read_lock
from dvflow.core._exceptions import DvcError, RemoteError
from dvflow.stores._dvc import DvcProject
from dvflow.stores._repro import ReproFlags
from dvflow.stores._spool import spool_notice
from dvflow.stores._tracking import display_uri
from dvflow.trace._producers import producers

from ._push import check_remote_for_push
from ._results import PipelineRun, StageRun


def up_to_date_run(
    root: Path,
    config: Config,
    project: DvcProject,
    targets: Sequence[str],
    *,
    all_pipelines: bool,
    flags: ReproFlags | None,
    warn: Callable[[str], None],
) -> PipelineRun | None:
    """The result of a run with nothing to do, or None when some stage would run."""
    planned = project.plan(targets, all_pipelines=all_pipelines, flags=flags)
    if project.first_changed(planned) is not None:
        return None
    if notice := spool_notice(root):
        warn(notice)
    prefix = "" if project.prefix == "." else project.prefix  # a 'dvc init --subdir' project
    outputs: dict[str, list[Pointer]] = {}
    for stage in planned:
        if project.is_tracked_stage(stage):
            outputs[project.stage_name(stage)] = _outputs(root, project, stage, prefix)
    made_by = producers(
        root,
        config.tracking_uri,
        {name: [(out.path, str(out.md5)) for out in outs] for name, outs in outputs.items()},
    )
    if config.push:  # nothing to record, but the data must still reach the remote
        _push(project, project.cached_outputs(planned), warn)
    commit, dirty = _git.head_and_dirty(root)
    return PipelineRun(
        root=root,
        run_id=None,
        experiment_id=None,
        experiment=config.experiment,
        tracking_uri=display_uri(config.tracking_uri),
        status="UP-TO-DATE",
        commit=commit,
        dirty=dirty,
        stages=tuple(
            StageRun(name, "up-to-date", None, made_by[name], outputs=tuple(outs))
            for name, outs in outputs.items()
        ),
        noop=True,
    )


def _push(project: DvcProject, paths: Sequence[str], warn: Callable[[str], None]) -> None:
    """Push what a run with --push would: each planned stage's cached outputs, and the
    ``dvc add``ed data among them (DVC only: no MLflow)."""
    check_remote_for_push(project, "push")
    try:
        pushed = project.push_paths(paths)
    except RemoteError:  # it names the remote and the cause already
        raise
    except DvcError as exc:
        raise DvcError(
            f"could not push the current outputs to the DVC remote: {exc.message}",
            hint=exc.hint or "Check the remote with 'dvflow doctor', then run again.",
        ) from exc
    if pushed:
        warn(f"pushed {pushed} object(s) of the current outputs to the DVC remote")


def _outputs(root: Path, project: DvcProject, stage: Any, prefix: str) -> list[Pointer]:
    """The stage's outputs in dvc.lock, with paths from the git root as runs record them."""
    info = project.describe(stage)
    entry = read_lock(root / Path(info.dvcfile).parent / LOCK_FILE).get(info.lock_key) or {}
    found = []
    for out in entry.get("outs") or []:
        if isinstance(out, dict):
            pointer = pointer_from_entry(out, wdir=info.wdir)
            path = (
                posixpath.normpath(posixpath.join(prefix, pointer.path)) if prefix else pointer.path
            )
            if pointer.md5:
                found.append(replace(pointer, path=path))
    return found
