"""``verify``: prove that a recorded result still reproduces.

The quick check (seconds, also for large data) runs every check of
``_checks``; ``rebuild=True`` then re-runs the stage (``_rebuild``) and
writes the verdict back to the verified run as tags.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from dvflow.core._dvcfiles import Pointer
from dvflow.core._exceptions import (
    DvflowError,
    ErasedError,
    InterruptedRunError,
    InvalidArgumentError,
    NotFoundError,
    RebuildError,
)
from dvflow.core._governance import Tombstone, read_governance

from ._checks import Check, RunChecks
from ._rebuild import Rebuild, rebuild

if TYPE_CHECKING:
    from dvflow.stores._tracking import Tracker

VERDICT_TAG = "dvflow.verify.verdict"
# Printed under the checks: what a matching digest does and does not prove.
AUTHENTICITY_NOTE = (
    "note: the digests prove integrity within the tracking store, not authenticity: "
    "whoever can write to the store can replace a record together with its digest "
    "(signed attestations prove who vouched for it: dvflow attest, verify --pubkey)"
)
_EXAMPLES = "For example models:/wine-classifier/3 or models:/wine-classifier@production."


@dataclass(frozen=True)
class Verification:
    """The checks of one run (and its rebuild, when asked for)."""

    target: str
    run_id: str | None
    checks: tuple[Check, ...]
    rebuild: Rebuild | None = None

    @property
    def failures(self) -> list[str]:
        reasons = [f"{c.name}: {c.detail}" for c in self.checks if not c.ok]
        if self.rebuild is not None and self.rebuild.verdict == "diverged":
            reasons.append(f"rebuild of stage {self.rebuild.stage} diverged")
        return reasons


def verify(
    target: str,
    path: str | os.PathLike[str] = ".",
    *,
    rebuild_stage: bool = False,
    rtol: float = 1e-9,
    atol: float = 0.0,
    tracking_uri: str | None = None,
    on_step: Callable[[str], None] | None = None,
    stage_path: str | None = None,
    sync: bool | None = None,
) -> Verification:
    """Check ``target`` (a run id, ``models:/N/V`` or ``models:/N@A``); rebuild on request.

    ``stage_path``: the PATH a rebuilt stage runs with (default: the caller's,
    as for ``dvflow run``); the environment check asks that PATH's ``python``.
    The run and its record come from the lineage index while the store has
    not moved (``sync=True``: from the store).
    """
    from dvflow.trace._records import close_tracker, open_project_indexed

    root, _, tracker = open_project_indexed(path, tracking_uri, sync=sync)
    try:
        return _verify(
            root,
            tracker,
            target,
            path,
            rebuild_stage=rebuild_stage,
            rtol=rtol,
            atol=atol,
            on_step=on_step,
            stage_path=stage_path,
        )
    finally:
        close_tracker(tracker)


def _verify(
    root: Path,
    tracker: Tracker,
    target: str,
    path: str | os.PathLike[str],
    *,
    rebuild_stage: bool,
    rtol: float,
    atol: float,
    on_step: Callable[[str], None] | None,
    stage_path: str | None,
) -> Verification:
    from dvflow.core._roots import settings_root
    from dvflow.stores._dvc import DvcProject

    # The DVC project may be a folder of the git repository ('dvc init --subdir').
    dvc_dir = settings_root(Path(path).resolve(), root)
    run_id, model, record_sha = _resolve(tracker, target, dvc_dir)
    erased = read_governance(dvc_dir).erased_md5s()
    _raise_if_erased(target, erased, [model.md5] if model is not None and model.md5 else [])
    checks = RunChecks(tracker, root, run_id, model, record_sha, stage_path=stage_path)
    try:
        checks.run_all(lambda _root: DvcProject(dvc_dir), outputs=True, extended=True)
    except DvflowError:
        # An erased run may be gone from the store: its indexed inputs still say why.
        _raise_if_erased(target, erased, _indexed_md5s(dvc_dir, run_id) if erased else [])
        raise
    if checks.record is not None:
        pointers = (*checks.record.inputs, *checks.record.outputs)
        _raise_if_erased(target, erased, [p.md5 for p in pointers if p.md5])
    _check_io(checks)
    if checks.record is not None and checks.record.kind == "pipeline":
        stages = ", ".join(f"{s['name']} {s['run_id']}" for s in checks.record.stages)
        raise InvalidArgumentError(
            "target",
            target,
            "it is a pipeline run",
            f"Verify one of its stage runs: {stages}.",
        )
    result = Verification(target, run_id, tuple(checks.checks))
    if not rebuild_stage or result.failures:
        return result  # a rebuild on a failed check would only fail less clearly
    if checks.record is None or checks.record.kind != "stage" or not run_id:
        raise RebuildError(
            f"{target}: no intact stage record to rebuild from",
            hint="Rebuild a stage run (or a model version made by one) whose record checks pass.",
        )
    project = DvcProject(dvc_dir)
    try:
        outcome = rebuild(
            root,
            tracker,
            project,
            checks.record,
            rtol=rtol,
            atol=atol,
            on_step=on_step,
            stage_path=stage_path,
        )
    except BaseException as exc:
        from dvflow.stores._interrupt import Interrupted

        if isinstance(exc, (Interrupted, KeyboardInterrupt)):
            name = exc.signal_name if isinstance(exc, Interrupted) else "SIGINT"
            raise InterruptedRunError(
                name, "the rebuild worktree was removed", "Run 'dvflow verify' again."
            ) from None
        raise
    finally:
        project.close()
    tracker.set_tags(run_id, _verdict_tags(outcome))
    return Verification(target, run_id, tuple(checks.checks), outcome)


def _raise_if_erased(target: str, erased: Mapping[str, Tombstone], md5s: Sequence[str]) -> None:
    """ErasedError (exit 9) when the data named was deleted for an erasure request."""
    hit = sorted({m for m in md5s if m in erased})
    if hit:
        raise ErasedError(target, [(m, erased[m].request, erased[m].at) for m in hit])


def _indexed_md5s(project: Path, run_id: str | None) -> list[str]:
    from dvflow.trace._queries import open_index_at

    if not run_id:
        return []
    index = open_index_at(project, sync=False)[0]
    try:
        rows = index.db.execute("SELECT md5 FROM run_io WHERE run_id = ?", (run_id,)).fetchall()
    finally:
        index.close()
    return [str(r[0]) for r in rows]


def _check_io(checks: RunChecks) -> None:
    """Is the ``dvflow.io`` tag, which lineage and impact read, the record's?

    No digest covers a tag: a mismatch means it was rewritten (or, for a
    run older than the ``dvflow.io_sha256`` param, possibly written from a
    differently redacted record: a warning only).
    """
    from dvflow.trace._reader import IO_PARAM, IO_TAG, io_mismatch, io_tag_problem

    if checks.record is None or checks.run is None:
        return
    tags, params = checks.run.data.tags, checks.run.data.params
    problem = io_tag_problem(tags, params) or io_mismatch(tags.get(IO_TAG), checks.record)
    if problem is None:
        found = "matches the record" if IO_TAG in tags else "absent: lineage reads the record"
        check = Check("io", "pass", f"{IO_TAG} tag {found}")
    else:
        pinned = IO_PARAM in params
        check = Check(
            "io",
            "fail" if pinned else "warn",
            f"run {checks.run_id}: {problem}",
            "The tag was changed in the tracking store after the run; lineage and impact "
            "use the run's record instead, with a warning."
            if pinned
            else f"The run is older than the {IO_PARAM} param, so lineage and impact still "
            "read this tag; re-run the stage to record one that is checked.",
        )
    checks.checks.append(check)


def _resolve(
    tracker: object, target: str, root: Path | None = None
) -> tuple[str | None, Pointer | None, str | None]:
    """A run id, and for a model version its model object and record digest.

    A run id may be a unique prefix of 7 or more characters, as dvflow prints
    them; the lineage index of the project at ``root`` resolves it.
    """
    from dvflow.stores._tracking import Tracker

    assert isinstance(tracker, Tracker)
    text = target.strip()
    if not text.startswith("models:/"):
        return _run_id(text, root), None, None
    rest = text[len("models:/") :]
    if "@" in rest:
        name, alias = rest.rsplit("@", 1)
        if not name or not alias:
            raise InvalidArgumentError("model", text, "give models:/NAME@ALIAS", _EXAMPLES)
        mv = tracker.version_by_alias(name, alias)
    else:
        name, _, version = rest.rpartition("/")
        if not name or not version.isdigit():
            raise InvalidArgumentError(
                "model",
                text,
                "give models:/NAME/VERSION (a number) or models:/NAME@ALIAS",
                _EXAMPLES,
            )
        mv = tracker.model_version(name, version)
    tags = mv.tags or {}
    model = (
        Pointer(tags.get("dvflow.model_path") or "the model", tags["dvflow.model_md5"])
        if tags.get("dvflow.model_md5")
        else None
    )
    return mv.run_id or tags.get("dvflow.run_id"), model, tags.get("dvflow.record_sha256")


def _run_id(text: str, root: Path | None) -> str:
    hint = "Give a stage run's id (or a unique prefix), models:/NAME/VERSION or models:/NAME@ALIAS."
    if not re.fullmatch(r"[0-9a-f]{7,32}", text):
        raise NotFoundError(f"{text!r} is not a run id or a model version", hint=hint)
    if len(text) == 32 or root is None:
        return text
    from dvflow.trace._lineage import _by_prefix
    from dvflow.trace._queries import open_index_at

    index = open_index_at(root)[0]
    try:
        found = _by_prefix(index.db, text)
    finally:
        index.close()
    if not found or not found.startswith("run:"):
        raise NotFoundError(f"no run id starts with {text!r} in the lineage index", hint=hint)
    return found.partition(":")[2]


def _verdict_tags(outcome: Rebuild) -> dict[str, str]:
    detail = {
        "outputs": {o.path: [o.recorded, o.rebuilt] for o in outcome.outputs},
        "metrics": {m.name: [m.recorded, m.rebuilt] for m in outcome.metrics},
    }
    text = json.dumps(detail, sort_keys=True, separators=(",", ":"))
    return {
        VERDICT_TAG: outcome.verdict,
        "dvflow.verify.at": datetime.now(UTC).isoformat(timespec="seconds"),
        "dvflow.verify.detail": text if len(text) <= 7500 else "too long for a tag",
    }
