"""dvflow init: a usable project from a new folder or an existing repository."""

from __future__ import annotations

from pathlib import Path

import pytest

import dvflow
from conftest import cli, dvc, git


def _remote(root: Path) -> str:
    """The default remote as 'name url', as DVC resolves it."""
    name = dvc(root, "config", "core.remote").stdout.strip()
    return f"{name} {dvc(root, 'config', f'remote.{name}.url').stdout.strip()}"


def test_init_new_folder_sets_up_git_dvc_remote_store_and_ignores(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    result = cli("init", str(root))
    assert result.returncode == 0, result.stderr
    assert (root / ".git").is_dir() and (root / ".dvc").is_dir()
    assert "dvc init" in result.stdout and "git init" in result.stdout
    remotes = _remote(root)
    assert remotes.startswith("storage ")
    remote_dir = Path(remotes.split()[1])
    assert remote_dir.is_dir() and root not in remote_dir.parents
    assert "storage" in (root / ".dvc" / "config.local").read_text()  # machine-local default
    config = (root / "dvflow.yaml").read_text()
    assert "tracking_uri: sqlite:///mlflow.db" in config and "experiment: proj" in config
    ignored = (root / ".gitignore").read_text().splitlines()
    assert {"/mlflow.db", "/mlartifacts/", "/.dvflow/"} <= set(ignored)
    (root / "mlflow.db").write_text("x")
    assert "mlflow.db" not in git(root, "status", "--porcelain", "--untracked-files=all")


def test_init_is_idempotent_and_keeps_user_settings(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    dvflow.init_project(root)
    (root / "dvflow.yaml").write_text("tracking_uri: http://team:5000\n")
    before = (root / ".gitignore").read_text()
    again = dvflow.init_project(root)
    assert again.done == ()
    assert "dvflow.yaml" in again.kept and any("remote" in k for k in again.kept)
    assert (root / "dvflow.yaml").read_text() == "tracking_uri: http://team:5000\n"
    assert (root / ".gitignore").read_text() == before


def test_init_existing_repository_with_dvc_and_remote(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    (tmp_path / ".gitignore").write_text("*.tmp")
    assert dvc(tmp_path, "init", "-q").returncode == 0
    assert dvc(tmp_path, "remote", "add", "-d", "mine", str(tmp_path.parent / "r")).returncode == 0
    result = dvflow.init_project(tmp_path, remote="s3://other/bucket")
    assert "git repository" in result.kept and "DVC project" in result.kept
    assert _remote(tmp_path).startswith("mine ")
    assert (tmp_path / ".gitignore").read_text().startswith("*.tmp\n/mlflow.db\n")


def test_init_force_replaces_the_remote_with_a_shared_url(tmp_path: Path) -> None:
    dvflow.init_project(tmp_path)
    dvflow.init_project(tmp_path, remote="s3://team-bucket/dvc", force=True)
    assert "s3://team-bucket/dvc" in (tmp_path / ".dvc" / "config").read_text()
    assert _remote(tmp_path) == "storage s3://team-bucket/dvc"


def test_init_in_a_subfolder_of_a_repository_makes_a_dvc_subdir_project(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    result = dvflow.init_project(tmp_path / "sub")
    assert "dvc init --subdir" in result.done
    assert (tmp_path / "sub" / ".dvc").is_dir() and not (tmp_path / ".dvc").exists()
    assert dvc(tmp_path / "sub", "root").stdout.strip() == "."
    # Its store and index stay out of git, in the subfolder's own .gitignore.
    assert "/mlflow.db" in (tmp_path / "sub" / ".gitignore").read_text().splitlines()
    assert (tmp_path / "sub" / "dvflow.yaml").is_file()


def test_init_of_a_dvc_subdir_project_keeps_it(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    (tmp_path / "sub").mkdir()
    made = dvc(tmp_path / "sub", "init", "--subdir", "-q")
    assert made.returncode == 0, made.stderr
    result = dvflow.init_project(tmp_path / "sub")
    assert "DVC project" in result.kept and not any("dvc init" in d for d in result.done)


def test_init_in_a_folder_of_an_existing_dvc_project_is_refused(tmp_path: Path) -> None:
    dvflow.init_project(tmp_path)
    with pytest.raises(dvflow.ProjectError, match="inside the DVC project"):
        dvflow.init_project(tmp_path / "sub")
    assert not (tmp_path / "sub").exists()  # the refusal created nothing


def test_init_ci_in_a_subfolder_project_is_refused_before_changing_anything(
    tmp_path: Path,
) -> None:
    git(tmp_path, "init", "-q")
    with pytest.raises(dvflow.ProjectError, match="top of the git repository"):
        dvflow.init_project(tmp_path / "sub", ci=True)
    assert not (tmp_path / "sub").exists()


def test_init_then_run_works_on_a_fresh_project(tmp_path: Path) -> None:
    root = tmp_path / "p"
    dvflow.init_project(root)
    (root / "dvc.yaml").write_text(
        "stages:\n  hello:\n    cmd: echo hi > hi.txt\n    outs: [hi.txt]\n"
    )
    result = dvflow.run_pipeline(root)
    assert [(s.name, s.status) for s in result.stages] == [("hello", "ran")]
    assert result.commit is None and result.dirty  # no commit yet: recorded as such
