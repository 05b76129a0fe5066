"""``dvc repro``'s everyday flags, as ``dvflow run`` passes them through to DVC."""

from __future__ import annotations

from dataclasses import dataclass
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
