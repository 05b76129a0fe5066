"""``checkout``: the exact code and data of a run (or model version), in a folder.

A Git worktree at the recorded commit with the recorded patch applied, and
every DVC-tracked input and output of the run copied in from the cache
(fetched from the DVC remote first where missing). The worktree stays:
enter it, inspect, re-run; ``git worktree remove DIR`` when done.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from . import _git
from ._exceptions import DvflowError, ProjectError
from ._record import PATCH_ARTIFACT
from ._show import intact_record


@dataclass(frozen=True)
class Checkout:
    folder: Path
    run_id: str
    commit: str
    patched: bool
    files: tuple[str, ...]


def checkout(
    target: str,
    path: str | os.PathLike[str] = ".",
    *,
    into: str | os.PathLike[str] | None = None,
    tracking_uri: str | None = None,
) -> Checkout:
    """Materialize ``target``'s code and data into ``into`` (default .dvflow/checkouts/ID)."""
    from ._dvc import DvcProject
    from ._project import settings_root
    from ._rebuild import apply_patch, materialize, prepare_dvc, remove_worktree
    from ._tracking import open_project
    from ._verify import _resolve

    root, _, tracker = open_project(path, tracking_uri)
    # A 'dvc init --subdir' project: its index, cache and checkouts are in its folder.
    dvc_dir = settings_root(Path(path).resolve(), root)
    run_id = _resolve(tracker, target, dvc_dir)[0]
    if not run_id:
        raise DvflowError(f"{target} is linked to no run", hint="Give a run id.")
    record = intact_record(tracker, run_id)[0]
    commit = record.code.get("commit")
    if not commit or not _git.is_commit(root, commit):
        raise ProjectError(
            f"commit {commit or '(none)'} of run {run_id} is not in this repository",
            hint="Fetch the branch that holds it ('git fetch --all').",
        )
    folder = Path(into).resolve() if into else dvc_dir / ".dvflow" / "checkouts" / run_id[:12]
    if folder.exists() and any(folder.iterdir()):
        raise ProjectError(f"{folder} exists and is not empty", hint="Choose another --into.")
    _git._git(root, "worktree", "add", "--detach", "-q", str(folder), commit)
    project = DvcProject(dvc_dir)
    try:
        patch = None
        if record.code.get("dirty") and record.code.get("patch_sha256"):
            patch = tracker.read_artifact(run_id, PATCH_ARTIFACT)
            apply_patch(folder, patch)
        prepare_dvc(dvc_dir, folder / dvc_dir.relative_to(root), project)
        pointers = [p for p in (*record.inputs, *record.outputs) if p.cache_path and p.md5]
        materialize(project, folder, pointers)
    except BaseException:
        remove_worktree(root, folder)
        raise
    finally:
        project.close()
    return Checkout(folder, run_id, commit, bool(patch), tuple(p.path for p in pointers))
