"""``dvc repro``'s everyday flags, and ``--dry``: what a run would do, recording nothing."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ReproFlags:
    """The flags of ``dvc repro`` that ``dvflow run`` passes through, with DVC's meaning."""

    force: bool = False  # -f: run stages even when nothing changed
    single_item: bool = False  # -s: only the targets, not their upstream stages
    downstream: bool = False  # the targets and the stages that depend on them
    keep_going: bool = False  # after a failure, go on with stages that do not depend on it
    pull: bool = False  # fetch missing data (and run-cache) from the remote
    dry: bool = False  # say what would run; run and record nothing

    def dvc_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of DVC's ``Repo.reproduce``."""
        return {
            "force": self.force,
            "single_item": self.single_item,
            "downstream": self.downstream,
            "on_error": "keep-going" if self.keep_going else "fail",
            "pull": self.pull,
            "dry": self.dry,
        }


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
    from ._dvc import DvcProject, quiet_dvc
    from ._project import preflight

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
