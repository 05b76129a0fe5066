"""A project holding personal data, for the PII and erasure tests.

Built once per test module (about 20 s) and copied by each test that changes it:

- ``data/raw.csv`` (``dvc add``: names and e-mail addresses) feeds two chains:
  ``prepare`` (a folder output, ``data/prepared``) -> ``train`` -> ``model.txt``
  (``pii-model``), and the declared sanitiser ``sanitise`` (drops e-mail) ->
  ``data/clean.csv`` -> ``train_clean`` -> ``clean_model.txt`` (``clean-model``);
- ``dvflow run`` twice at two commits (``train.lr`` 0.1 then 0.2): ``pii-model``
  v1 and v2, ``clean-model`` v1; the data pushed to the local remote;
- ``pii-model`` v1 (the older) and ``clean-model`` v1 are ``@production``.
"""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from history_repo import dvc, dvflow, git, set_param

PROJECTS = Path(__file__).parent / "projects"


@dataclass(frozen=True)
class PiiRepo:
    root: Path
    first: str  # the commit of run 1 (lr 0.1)
    second: str  # the commit of run 2 (lr 0.2)


def build(base: Path, template_db: Path) -> PiiRepo:
    from dvflow import init_project

    root = base / "repo"
    shutil.copytree(PROJECTS / "pii", root)
    git(root, "init", "-q", "-b", "main")
    init_project(root)
    shutil.copy(template_db, root / "mlflow.db")
    dvc(root, "add", "-q", "data/raw.csv")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "code and data")
    dvflow(root, "run", "--push")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "results 1")
    first = git(root, "rev-parse", "HEAD").strip()
    set_param(root, "train", "lr", "0.2")
    dvflow(root, "run", "--push")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "results 2")
    second = git(root, "rev-parse", "HEAD").strip()
    dvflow(root, "promote", "pii-model", "1", "--alias", "production")
    dvflow(root, "promote", "clean-model", "1", "--alias", "production")
    return PiiRepo(root, first, second)


def copy(repo: PiiRepo, dest: Path) -> PiiRepo:
    """A copy a test may change, with its own store's artifact folders and remote."""
    shutil.copytree(repo.root, dest, symlinks=True)
    old, new = repo.root.as_uri(), dest.as_uri()
    with sqlite3.connect(dest / "mlflow.db") as db:
        db.execute(
            "UPDATE experiments SET artifact_location=replace(artifact_location, ?, ?)", (old, new)
        )
        db.execute("UPDATE runs SET artifact_uri=replace(artifact_uri, ?, ?)", (old, new))
        db.execute("UPDATE model_versions SET source=replace(source, ?, ?)", (old, new))
    for suffix in ("", "-wal", "-shm"):
        Path(f"{dest / '.dvflow' / 'index.sqlite'}{suffix}").unlink(missing_ok=True)
    remote = dest.parent / f"{dest.name}-remote"
    shutil.copytree(remote_dir(repo.root), remote)
    dvc(dest, "remote", "modify", "--local", "storage", "url", str(remote))
    return PiiRepo(dest, repo.first, repo.second)


def remote_dir(root: Path) -> Path:
    """The project's local DVC remote (``.dvc/config.local``, as ``dvflow init`` set it)."""
    local = (root / ".dvc" / "config.local").read_text()
    return Path(local.split("url = ", 1)[1].splitlines()[0].strip())
