"""``run_demo``: a small real project, run three times to show every stage status."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from dvflow._registry import Promotion, promote
from dvflow.core import _git
from dvflow.core._exceptions import ProjectError
from dvflow.proof._verify import Verification, verify
from dvflow.runs._bind import bind_commit
from dvflow.runs._pipeline import run_pipeline
from dvflow.runs._results import PipelineRun, ProgressCallback
from dvflow.stores._dvc import DvcProject
from dvflow.team._project import init_project, make_folder
from dvflow.trace._graph import Graph
from dvflow.trace._queries import impact, lineage

MARKER = ".dvflow-demo"


MODEL_NAME = "wine-classifier"


@dataclass(frozen=True)
class DemoResult:
    root: Path
    tracking_uri: str
    runs: tuple[PipelineRun, ...]
    promotion: Promotion
    lineage: Graph
    impact: Graph
    verification: Verification


def _prepare_folder(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise ProjectError(f"{root} exists and is not a folder")
    if root.exists() and any(root.iterdir()):
        if not (root / MARKER).exists():
            raise ProjectError(
                f"{root} is not empty",
                hint="Give 'dvflow demo' a new or empty folder (or a previous demo folder).",
            )
        shutil.rmtree(root)  # a previous demo of ours: safe to start afresh
    make_folder(root)


def _copy_template(root: Path) -> None:
    template = resources.files("dvflow.cli") / "_demo_project"
    with resources.as_file(template) as source:
        shutil.copytree(source, root, dirs_exist_ok=True)
    (root / MARKER).write_text("made by 'dvflow demo'; safe to delete\n", encoding="utf-8")


def _write_raw_data(root: Path) -> None:
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame
    (root / "data").mkdir(exist_ok=True)
    frame.to_csv(root / "data" / "raw.csv", index=False)


def _dvc_add(root: Path, path: str) -> None:
    from dvc.repo import Repo

    from dvflow.stores._dvc import in_repo, quiet_dvc

    with in_repo(root), quiet_dvc():
        repo = Repo(str(root))
        repo.scm_context.quiet = True
        try:
            repo.add(path)
        finally:
            repo.close()


def _set_trees(root: Path, count: int) -> None:
    params = root / "params.yaml"
    lines = [
        f"  n_estimators: {count}" if line.startswith("  n_estimators:") else line
        for line in params.read_text(encoding="utf-8").splitlines()
    ]
    params.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _stage_path() -> str:
    """The demo is dvflow's own project: its stages run on dvflow's Python (scikit-learn, MLflow).

    Like an activated virtualenv, so 'python src/train.py' works also when
    dvflow was started as .venv/bin/dvflow without activating its venv.
    """
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def run_demo(
    directory: str | os.PathLike[str] = "dvflow-demo",
    *,
    on_step: Callable[[str], None] | None = None,
    on_progress: ProgressCallback | None = None,
) -> DemoResult:
    """Write the demo project, then run it, change a param, run, revert, run."""
    step = on_step or (lambda message: None)
    root = Path(directory).resolve()
    _prepare_folder(root)
    step(f"writing the demo project to {root}")
    _copy_template(root)
    _write_raw_data(root)
    # The demo is a project of its own, also when made inside another
    # repository (such as a clone of dvflow itself).
    _git.init(root)
    init_project(root)
    _dvc_add(root, "data/raw.csv")
    _git.commit_all(root, "demo: wine pipeline")

    runs = []
    path = _stage_path()
    step("run 1: every stage runs")
    runs.append(run_pipeline(root, on_progress=on_progress, stage_path=path))
    _git.commit_all(root, "demo: results of run 1")
    bind_commit(root)

    step("run 2: train.n_estimators 40 -> 80; prepare is up to date, train and evaluate run")
    _set_trees(root, 80)
    runs.append(run_pipeline(root, on_progress=on_progress, stage_path=path))
    _git.commit_all(root, "demo: more trees")
    bind_commit(root)

    step("run 3: back to 40 trees; DVC restores train and evaluate from its run-cache")
    _set_trees(root, 40)
    runs.append(run_pipeline(root, on_progress=on_progress, stage_path=path))
    _git.commit_all(root, "demo: back to 40 trees")
    bind_commit(root)

    current = runs[-1].registered[0]
    step(f"push every commit's data to the DVC remote; promote {MODEL_NAME} v{current.version}")
    project = DvcProject(root)
    try:
        project.push(all_commits=True)  # every version's data, not only HEAD's
    finally:
        project.close()
    promotion = promote(MODEL_NAME, current.version, "production", root)
    step(f"verify --rebuild: re-run the stage that made {MODEL_NAME}@production")
    verification = verify(
        f"models:/{MODEL_NAME}@production",
        root,
        rebuild_stage=True,
        on_step=step,
        stage_path=path,
    )
    return DemoResult(
        root,
        runs[-1].tracking_uri,
        tuple(runs),
        promotion,
        lineage(f"models:/{MODEL_NAME}@production", root),
        impact("data/raw.csv", root),
        verification,
    )
