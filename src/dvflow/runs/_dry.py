"""``dvflow run --dry``: what a run would do (``dvc repro --dry``), recording nothing."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dvflow.core._roots import preflight
from dvflow.stores._repro import ReproFlags


@dataclass(frozen=True)
class PlannedStage:
    """One stage of a ``--dry`` run: would it run, be restored, or is it up to date?"""

    name: str
    cmd: str
    # "would run" (DVC's run-cache may then restore it instead) or "up to date".
    # DVC's dry run cannot tell a restore apart: it matches the run-cache
    # against the dependencies' old hashes.
    action: str


def dry_run(
    path: str | os.PathLike[str] = ".",
    targets: Sequence[str] = (),
    *,
    all_pipelines: bool = False,
    flags: ReproFlags | None = None,
) -> list[PlannedStage]:
    """What ``dvflow run`` (``dvc repro --dry``) would do; opens no tracking store.

    Like DVC's own dry run, a stage below one that would run shows as up to
    date when its own inputs have not changed yet.
    """
    from dvflow.stores._dvc import DvcProject, quiet_dvc

    root, _ = preflight(Path(path))
    flags = dataclasses.replace(flags or ReproFlags(), dry=True)
    project = DvcProject(root)
    planned: list[PlannedStage] = []

    def around(stage: Any, call: Any) -> Any:
        if not project.is_tracked_stage(stage):
            return call()
        try:
            returned = call()
        except Exception:
            # DVC's dry run cannot hash an input an upstream stage has not
            # made yet; that stage would run, so this one would too.
            if not any(p.action == "would run" for p in planned):
                raise
            returned = stage
        info = project.describe(stage)
        action = "would run" if returned else "up to date"
        planned.append(PlannedStage(info.name, info.cmd, action))
        return returned

    try:
        with quiet_dvc():  # the plan below says it all, once
            project.reproduce(targets, around, all_pipelines=all_pipelines, flags=flags)
    finally:
        project.close()
    return planned
