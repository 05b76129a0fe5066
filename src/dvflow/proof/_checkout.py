"""``checkout``: the exact code and data of a run (or model version), in a folder.

A Git worktree at the recorded commit with the recorded patch applied, and
every DVC-tracked input and output of the run copied in from the cache
(fetched from the DVC remote first where missing). The worktree stays:
enter it, inspect, re-run; ``git worktree remove DIR`` when done.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from dvflow.core import _git
from dvflow.core._exceptions import DvflowError, ProjectError, UnsafeRecordError
from dvflow.core._record import sha256_hex
from dvflow.stores._confine import (
    check_declared,
    check_record_paths,
    checked_commit,
    confined,
    patch_paths,
    recorded_patch,
)

from ._show import intact_record


@dataclass(frozen=True)
class Checkout:
    folder: Path
    run_id: str
    commit: str
    patched: bool
    files: tuple[str, ...]
    # The applied patch: its sha256, size and the files it changes.
    patch_sha256: str | None = None
    patch_bytes: int = 0
    patch_files: tuple[str, ...] = ()
    notice: str | None = None


def checkout(
    target: str,
    path: str | os.PathLike[str] = ".",
    *,
    into: str | os.PathLike[str] | None = None,
    tracking_uri: str | None = None,
) -> Checkout:
    """Materialize ``target``'s code and data into ``into`` (default .dvflow/checkouts/ID).

    Only the paths the commit's ``dvc.yaml`` declares for the run's stage are
    written, each inside the worktree; a record that names others is refused
    (``UnsafeRecordError``) and the worktree removed.
    """
    from dvflow.core._roots import settings_root
    from dvflow.stores._dvc import DvcProject
    from dvflow.stores._tracking import open_project

    from ._rebuild import apply_patch, materialize, prepare_dvc, remove_worktree, stage_io
    from ._verify import _resolve

    root, _, tracker = open_project(path, tracking_uri)
    # A 'dvc init --subdir' project: its index, cache and checkouts are in its folder.
    dvc_dir = settings_root(Path(path).resolve(), root)
    run_id = _resolve(tracker, target, dvc_dir)[0]
    if not run_id:
        raise DvflowError(f"{target} is linked to no run", hint="Give a run id.")
    record = intact_record(tracker, run_id)[0]
    commit = record.code.get("commit")
    if commit:
        checked_commit(commit, run_id)
    if not commit or not _git.is_commit(root, commit):
        raise ProjectError(
            f"commit {commit or '(none)'} of run {run_id} is not in this repository",
            hint="Fetch the branch that holds it ('git fetch --all').",
        )
    checkouts = dvc_dir / ".dvflow" / "checkouts"
    # A model version's run id comes from the store: it names no folder elsewhere.
    folder = Path(into).resolve() if into else confined(checkouts, run_id[:12], run_id, "run id")
    # Refused before anything is made: a patch that is not the one the record names.
    patch, notice = recorded_patch(tracker, record, run_id)
    removed = _take_folder(root, folder)
    notice = "\n".join(filter(None, [notice, removed])) or None
    existed = folder.exists()
    _git._git(root, "worktree", "add", "--detach", "-q", str(folder), commit)
    _mark(folder, run_id, complete=False)
    project = DvcProject(dvc_dir)
    try:
        check_record_paths(record, folder)
        changed = patch_paths(folder, patch, run_id) if patch else []
        if patch:
            apply_patch(folder, patch)
        prepare_dvc(dvc_dir, folder / dvc_dir.relative_to(root), project)
        pointers = [p for p in (*record.inputs, *record.outputs) if p.cache_path and p.md5]
        if pointers:
            stage = record.stage["name"] if record.stage else ""
            if not stage:
                raise UnsafeRecordError(run_id, "it names data to write but no stage")
            declared = stage_io(folder, stage, run_id, commit)
            check_declared(
                folder,
                run_id,
                stage=stage,
                commit=commit,
                pointers=pointers,
                declared=declared,
            )
        materialize(project, folder, pointers, run_id)
    except BaseException:
        remove_worktree(root, folder)
        if existed:  # the user's empty folder stays, as it was
            folder.mkdir(parents=True, exist_ok=True)
        raise
    finally:
        project.close()
    _mark(folder, run_id, complete=True)
    return Checkout(
        folder,
        run_id,
        commit,
        bool(patch),
        tuple(p.path for p in pointers),
        sha256_hex(patch) if patch else None,
        len(patch or b""),
        tuple(changed),
        notice,
    )


def _take_folder(root: Path, folder: Path) -> str | None:
    """Check that ``folder`` can take a checkout; a killed checkout's leftover is removed.

    Returns the notice of that removal. A finished checkout, or anything
    else, is never removed: the user may have worked in it.
    """
    from ._rebuild import remove_worktree

    if folder.exists() and not folder.is_dir():
        raise ProjectError(
            f"{folder} is a file, not a folder", hint="Give --into a new or empty folder."
        )
    if not folder.exists() or not any(folder.iterdir()):
        return None
    if not _unfinished(root, folder):
        earlier = _marker(folder)
        raise ProjectError(
            f"{folder} exists and is not empty"
            + (f": it holds a checkout of run {earlier['run_id']}" if earlier else ""),
            hint=f"Enter it, or remove it ('git worktree remove --force {folder}'), "
            "or choose another --into.",
        )
    remove_worktree(root, folder)  # a half-made worktree of this command's own kind
    return f"removed the unfinished checkout a killed one left: {folder}"


# Kept in the worktree's own Git admin folder (.git/worktrees/NAME), not in its files.
_MARKER = "dvflow-checkout.json"


def _admin_dir(folder: Path) -> Path | None:
    """The Git admin folder of the worktree at ``folder``, if it is one."""
    link = folder / ".git"
    if not link.is_file():
        return None
    try:
        text = link.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if not text.startswith("gitdir: "):
        return None
    admin = Path(text[len("gitdir: ") :].strip())
    return admin if admin.is_dir() else None


def _mark(folder: Path, run_id: str, *, complete: bool) -> None:
    admin = _admin_dir(folder)
    if admin is not None:
        (admin / _MARKER).write_text(json.dumps({"run_id": run_id, "complete": complete}))


def _marker(folder: Path) -> dict[str, object] | None:
    admin = _admin_dir(folder)
    if admin is None:
        return None
    try:
        found = json.loads((admin / _MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) and isinstance(found.get("run_id"), str) else None


def _unfinished(root: Path, folder: Path) -> bool:
    """Is ``folder`` a worktree of this repository that a killed checkout left half-made?"""
    marker = _marker(folder)
    if marker is None or marker.get("complete") is not False:
        return False
    admin = _admin_dir(folder)
    common = _git._git(root, "rev-parse", "--git-common-dir").strip()
    worktrees = (root / common).resolve() / "worktrees"
    return admin is not None and admin.resolve().parent == worktrees
