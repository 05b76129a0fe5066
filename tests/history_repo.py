"""A real repository with real history, for lineage and registry tests.

Built once per session (about 30 s) and copied by the tests that change it:

- ``upstream/``: a second DVC repository that ``words.txt`` is imported from.
- ``repo/`` on branch ``main``:
  1. code, ``dvc add data/raw.txt``, ``dvc import`` of ``words.txt`` (rev_lock);
  2. ``dvflow run``: featurize (a directory output) and train (the model,
     registered as ``lin-model`` v1 through ``artifacts:``); tag ``v1.0``;
  3. branch ``experiment``: ``train.alpha`` 0.5 -> 0.9, ``dvflow run``
     (``lin-model`` v2), committed there;
  4. back on ``main``: ``featurize.n`` 2 -> 3 and plain ``dvc repro``
     (no dvflow: lineage has only Git history there), committed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PROJECTS = Path(__file__).parent / "projects"
DVFLOW = Path(sys.executable).with_name("dvflow")


def _run(cwd: Path, *args: str) -> str:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"{args} failed in {cwd}:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def git(root: Path, *args: str) -> str:
    return _run(root, "git", *args)


def dvc(root: Path, *args: str) -> str:
    return _run(root, sys.executable, "-m", "dvc", *args)


def dvflow(root: Path, *args: str) -> str:
    return _run(root, str(DVFLOW), *args)


def set_param(root: Path, section: str, key: str, value: str) -> None:
    path = root / "params.yaml"
    lines, current = [], None
    for line in path.read_text().splitlines():
        if not line.startswith(" "):
            current = line.rstrip(":")
        wanted = current == section and line.strip().startswith(f"{key}:")
        lines.append(f"  {key}: {value}" if wanted else line)
    path.write_text("\n".join(lines) + "\n")


@dataclass(frozen=True)
class HistoryRepo:
    root: Path
    upstream: Path
    upstream_rev: str
    first: str  # the commit with code and data
    results: str  # main after dvflow run (tag v1.0)
    experiment: str  # tip of branch experiment
    plain: str  # main after plain dvc repro


def build(base: Path, template_db: Path) -> HistoryRepo:
    from dvflow import init_project

    upstream = base / "upstream"
    upstream.mkdir()
    git(upstream, "init", "-q", "-b", "main")
    dvc(upstream, "init", "-q")
    (upstream / "words.txt").write_text("one\ntwo\nthree\n")
    dvc(upstream, "add", "-q", "words.txt")
    git(upstream, "add", "-A")
    git(upstream, "commit", "-qm", "words")
    upstream_rev = git(upstream, "rev-parse", "HEAD").strip()

    root = base / "repo"
    shutil.copytree(PROJECTS / "lineage", root)
    git(root, "init", "-q", "-b", "main")
    init_project(root)
    shutil.copy(template_db, root / "mlflow.db")
    dvc(root, "add", "-q", "data/raw.txt")
    dvc(root, "import", "-q", str(upstream), "words.txt", "-o", "data/words.txt")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "code and data")
    first = git(root, "rev-parse", "HEAD").strip()

    dvflow(root, "run")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "results 1")
    results = git(root, "rev-parse", "HEAD").strip()
    git(root, "tag", "v1.0")

    git(root, "checkout", "-q", "-b", "experiment")
    set_param(root, "train", "alpha", "0.9")
    dvflow(root, "run")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "alpha 0.9")
    experiment = git(root, "rev-parse", "HEAD").strip()

    git(root, "checkout", "-q", "main")
    dvc(root, "checkout", "-q")
    set_param(root, "featurize", "n", "3")
    dvc(root, "repro", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "n 3, without dvflow")
    plain = git(root, "rev-parse", "HEAD").strip()
    return HistoryRepo(root, upstream, upstream_rev, first, results, experiment, plain)


def copy(repo: HistoryRepo, dest: Path) -> HistoryRepo:
    """A copy a test may change (the upstream repository is shared, read-only)."""
    import sqlite3

    shutil.copytree(repo.root, dest, symlinks=True)
    # The store holds absolute artifact locations: point the copy at its own.
    old, new = repo.root.as_uri(), dest.as_uri()
    with sqlite3.connect(dest / "mlflow.db") as db:
        db.execute(
            "UPDATE experiments SET artifact_location=replace(artifact_location, ?, ?)", (old, new)
        )
        db.execute("UPDATE runs SET artifact_uri=replace(artifact_uri, ?, ?)", (old, new))
    index = dest / ".dvflow" / "index.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{index}{suffix}").unlink(missing_ok=True)
    return HistoryRepo(
        dest,
        repo.upstream,
        repo.upstream_rev,
        repo.first,
        repo.results,
        repo.experiment,
        repo.plain,
    )
