"""What ``run_pipeline`` returns and reports while it works."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from dvflow.core._dvcfiles import Pointer

if TYPE_CHECKING:  # the registry (and the proof wing under it) loads only when a run registers
    from dvflow._registry import Registration


@dataclass(frozen=True)
class StageRun:
    """What happened to one stage in one ``dvflow run``."""

    name: str
    status: str
    run_id: str | None
    produced_by: str | None = None
    seconds: float = 0.0
    outputs: tuple[Pointer, ...] = ()
    metrics: Mapping[str, float] = field(default_factory=dict)
    skipped_params: tuple[str, ...] = ()


@dataclass(frozen=True)
class PipelineRun:
    """The result of ``run_pipeline``: the parent run and its stage runs.

    ``noop``: every targeted stage was up to date, so nothing ran and nothing
    was recorded (``run_pipeline(record_noop=False)``, the default). Then
    ``run_id`` and ``experiment_id`` are None, ``status`` is ``UP-TO-DATE``,
    and each stage's ``run_id`` is None and its ``produced_by`` names the
    recorded run that made its current outputs (None when the lineage index
    does not know it).
    """

    root: Path
    run_id: str | None
    experiment_id: str | None
    experiment: str
    tracking_uri: str
    status: str
    commit: str | None
    dirty: bool
    stages: tuple[StageRun, ...]
    ignored_outputs: tuple[str, ...] = ()
    registered: tuple[Registration, ...] = ()
    spooled: bool = False  # recorded (at least in part) to the local spool
    noop: bool = False  # up to date: nothing ran, nothing recorded


@dataclass(frozen=True)
class Progress:
    """One step of a running pipeline (or of a sync), for a caller that shows progress.

    ``synced``: run ``stage`` (the id 'dvflow run' printed) is now run
    ``run_id`` of the store, ``index`` of ``total``.
    """

    event: Literal["plan", "stage-start", "stage-end", "notice", "synced"]
    index: int
    total: int
    stage: str | None = None
    status: str | None = None
    run_id: str | None = None
    stages: tuple[str, ...] = ()
    seconds: float = 0.0
    message: str = ""  # of a "notice"


ProgressCallback = Callable[[Progress], None]
