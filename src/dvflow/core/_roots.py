"""Where a project is: its DVC root, where dvflow keeps its settings, and the checks before a run.

Plain files and git only, so every wing can ask without importing DVC.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import _git
from ._dvcfiles import LOCK_FILE, PARAMS_FILE, check_params_files, read_lock, read_pipeline
from ._exceptions import ProjectError


def _params_files(pipeline: Mapping[str, Any]) -> set[str]:
    files = {PARAMS_FILE}
    for stage in pipeline.get("stages", {}).values():
        for item in stage.get("params", None) or []:
            if isinstance(item, dict):
                files.update(str(k) for k in item)
    return files


def nearest_dvc_root(start: Path, top: Path) -> Path | None:
    """The nearest folder with ``.dvc/`` from ``start`` up to the git root ``top``."""
    for folder in (start, *start.parents):
        if (folder / ".dvc").is_dir():
            return folder
        if folder == top:
            break
    return None


def settings_root(start: Path, top: Path) -> Path:
    """Where dvflow keeps a project's dvflow.yaml, store and ``.dvflow/``.

    That is the DVC project's folder holding ``start`` ('dvc init --subdir'
    projects keep their own, where 'dvflow run' writes them), else the git
    root ``top``.
    """
    return nearest_dvc_root(start, top) or top


def project_roots(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """The git root around ``path`` and the folder of its project's settings and store."""
    start = Path(path).resolve()
    top = _git.find_root(start)
    return top, settings_root(start, top)


def dvc_root(path: Path) -> Path:
    """The DVC project holding ``path``: the nearest folder with ``.dvc/``, up to the git root.

    With ``dvc init --subdir`` one git repository holds several DVC projects
    in subfolders; each runs where it is, as ``dvc repro`` in it would.
    """
    if not path.is_dir():
        raise ProjectError(f"no such folder: {path}", hint="Pass -C the project's folder.")
    top = _git.find_root(path.resolve())
    found = nearest_dvc_root(path.resolve(), top)
    if found is not None:
        return found
    raise ProjectError(
        f"{top} is a git repository but not a DVC project",
        hint="Run 'dvflow init' to set up DVC and MLflow here (or pass -C the folder of "
        "a 'dvc init --subdir' project).",
    )


def preflight(path: Path) -> tuple[Path, dict[str, Any]]:
    """Every check that can fail before a single stage runs; returns the DVC project's root."""
    root = dvc_root(path)
    pipeline = read_pipeline(root)
    read_lock(root / LOCK_FILE)
    check_params_files(root, _params_files(pipeline))
    return root, pipeline
