"""Stage commands run in the user's environment (PATH, active virtualenv), as under dvc repro."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import cli, dvc, git, stage_runs, tracking_client
from dvflow.core._record import PACKAGES_ARTIFACT, RECORD_ARTIFACT

NOTICE = "has no MLflow"


def _stage_venv(folder: Path) -> Path:
    """A virtualenv without MLflow, holding a package dvflow's environment lacks."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "stagemarker.py").write_text('VALUE = "from the stage venv"\n')
    info = Path(site) / "stagemarker-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: stagemarker\nVersion: 1.0\n")
    return folder


def _activated(venv: Path) -> dict[str, str]:
    """What 'source venv/bin/activate' does to the environment."""
    return {
        "PATH": str(venv / "bin") + os.pathsep + os.environ["PATH"],
        "VIRTUAL_ENV": str(venv),
    }


def _artifact(root: Path, run_id: str, path: str) -> str:
    local = tracking_client(root).download_artifacts(run_id, path, str(root.parent / run_id))
    return Path(local).read_text()


def _run_in_venv(make_project, tmp_path: Path) -> tuple[Path, Path, subprocess.CompletedProcess]:
    root = make_project("stagevenv")
    venv = _stage_venv(tmp_path / "stage-venv")
    return root, venv, cli("run", cwd=root, env=_activated(venv))


def test_stage_runs_with_the_active_virtualenv_and_records_its_environment(
    make_project, tmp_path: Path
) -> None:
    root, venv, result = _run_in_venv(make_project, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (root / "marked.txt").read_text() == "from the stage venv\n"
    assert (root / "plain.txt").read_text().split()[-1] == str(venv)

    client = tracking_client(root)
    runs = stage_runs(root)
    marked = client.get_run(runs["marked"])
    assert marked.data.tags["dvflow.status"] == "ran"
    record = json.loads(_artifact(root, runs["marked"], RECORD_ARTIFACT))
    packages = _artifact(root, marked.data.tags["mlflow.parentRunId"], PACKAGES_ARTIFACT)
    assert "stagemarker==1.0" in packages.splitlines()
    assert not any(line.startswith("mlflow") for line in packages.splitlines())
    listed = packages.rstrip("\n").encode()
    env = record["environment"]
    assert env["packages_sha256"] == hashlib.sha256(listed).hexdigest()
    assert env["mlflow"] == "not installed"
    version = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert env["python"] == version


def test_stage_python_without_mlflow_is_recorded_with_one_notice(
    make_project, tmp_path: Path
) -> None:
    root, _, result = _run_in_venv(make_project, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count(NOTICE) == 1
    client = tracking_client(root)
    for run_id in stage_runs(root).values():
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        assert run.data.tags["dvflow.status"] == "ran"


def test_without_python_on_the_stage_path_the_record_describes_dvflows_own(
    tmp_path: Path,
) -> None:
    import platform

    from dvflow.core._environment import StageInterpreter

    described = StageInterpreter(str(tmp_path)).environment()  # a PATH with no python
    assert not described.found
    assert described.info["python"] == platform.python_version()
    assert described.info["mlflow"] != "not installed" and described.has_mlflow
    assert "no working 'python'" in (described.notice() or "")


def test_a_rebuild_runs_the_stage_in_the_active_virtualenv_too(
    make_project, tmp_path: Path
) -> None:
    root, venv, result = _run_in_venv(make_project, tmp_path)
    assert result.returncode == 0, result.stderr
    git(root, "add", "-A")
    git(root, "commit", "-qm", "results")
    pushed = dvc(root, "push", "-q")
    assert pushed.returncode == 0, pushed.stderr

    rebuilt = cli("verify", stage_runs(root)["marked"], "--rebuild", cwd=root, env=_activated(venv))
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert "ModuleNotFoundError" not in rebuilt.stderr
    assert rebuilt.stdout.strip().splitlines()[-1] == "identical"
