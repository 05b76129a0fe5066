"""Real git, real DVC and a real MLflow SQLite store, in temporary folders.

Creating an MLflow SQLite schema costs seconds, so one database is migrated
per session and copied into each project. Servers are in servers.py; the
check that the session leaves the checkout clean is in hygiene.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import history_repo
from history_repo import HistoryRepo

# The session's servers (PostgreSQL, MLflow, S3, GCS, Azure) and their fixtures.
pytest_plugins = ["servers", "hygiene"]

PROJECTS = Path(__file__).parent / "projects"
DVFLOW = Path(sys.executable).with_name("dvflow")
_LEAKY_ENV = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_RUN_ID",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_S3_ENDPOINT_URL",
    "DVFLOW_TRACKING_URI",
    "DVFLOW_EXPERIMENT",
    # A developer's own cloud credentials and endpoints must not reach a test's
    # remotes; tests that need a cloud set the emulators' own.
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "STORAGE_EMULATOR_HOST",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_ACCOUNT",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
)


@pytest.fixture(scope="session")
def session_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, session_home: Path) -> None:
    """No user or system git/DVC/MLflow configuration reaches a test."""
    _isolate(monkeypatch, session_home)


def _isolate(monkeypatch: pytest.MonkeyPatch, session_home: Path) -> None:
    monkeypatch.setenv("HOME", str(session_home))
    monkeypatch.setenv("XDG_DATA_HOME", str(session_home / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(session_home / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(session_home / "cache"))
    monkeypatch.setenv("DVC_SITE_CACHE_DIR", str(session_home / "dvc-site"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    # As an activated virtualenv does: stage commands saying 'python x.py' find
    # the test environment's interpreter (with MLflow), also when pytest was
    # started as .venv/bin/python -m pytest without activating it.
    bindir = str(Path(sys.executable).parent)
    if os.environ.get("PATH", "").split(os.pathsep)[0] != bindir:
        monkeypatch.setenv("PATH", bindir + os.pathsep + os.environ.get("PATH", ""))
    for key in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{key}_NAME", "Test User")
        monkeypatch.setenv(f"GIT_{key}_EMAIL", "test@example.com")
    for key in _LEAKY_ENV:
        monkeypatch.delenv(key, raising=False)


@pytest.fixture(scope="session")
def history(
    tmp_path_factory: pytest.TempPathFactory, session_home: Path, template_db: Path
) -> HistoryRepo:
    """The repository of tests/history_repo.py, built once; copy it to change it."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        _isolate(monkeypatch, session_home)
        return history_repo.build(tmp_path_factory.mktemp("history"), template_db)


@pytest.fixture
def history_copy(history: HistoryRepo, tmp_path: Path) -> HistoryRepo:
    return history_repo.copy(history, tmp_path / "repo")


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory, session_home: Path) -> Path:
    """The project 'dvflow demo' makes (three runs, two versions, v1 @production), built once.

    Tests read it; a test that changes it works on a project of its own.
    """
    from dvflow import run_demo

    with pytest.MonkeyPatch.context() as monkeypatch:
        _isolate(monkeypatch, session_home)
        return run_demo(tmp_path_factory.mktemp("demo") / "dvflow-demo").root


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    # Imported late: pytest imports servers itself (above), rewriting its asserts.
    from servers import free_port as find

    return find()


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=root, check=True, capture_output=True, text=True
    ).stdout


def dvc(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )


def cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the real installed ``dvflow`` console script."""
    return subprocess.run(
        [str(DVFLOW), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


@pytest.fixture
def make_project(tmp_path: Path, template_db: Path) -> Callable[..., Path]:
    """Copy a fixture project from tests/projects, make it a dvflow project, commit."""

    def make(name: str = "basic", *, commit: bool = True) -> Path:
        from dvflow import init_project

        root = tmp_path / name
        shutil.copytree(PROJECTS / name, root)
        init_project(root)
        shutil.copy(template_db, root / "mlflow.db")
        if (root / "data" / "raw.txt").exists():
            result = dvc(root, "add", "data/raw.txt")
            assert result.returncode == 0, result.stderr
        if commit:
            git(root, "add", "-A")
            git(root, "commit", "-qm", "fixture project")
        return root

    return make


def tracking_client(root: Path):  # type: ignore[no-untyped-def]
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")


def everything_written(root: Path) -> str:
    """Every tag, param, metric name, dataset and artifact in a project's store, as one text.

    Tests that plant credentials assert none of them is in it.
    """
    import json

    client = tracking_client(root)
    chunks: list[str] = []
    for experiment in client.search_experiments():
        chunks.append(json.dumps([experiment.name, experiment.tags]))
        for run in client.search_runs([experiment.experiment_id]):
            chunks.append(json.dumps([run.info.run_name, run.data.tags, run.data.params]))
            chunks.append(json.dumps(sorted(run.data.metrics)))
            for item in run.inputs.dataset_inputs:
                d = item.dataset
                chunks.extend([d.name, d.digest, d.source, d.profile or ""])
            dest = root.parent / "downloads" / run.info.run_id
            local = Path(client.download_artifacts(run.info.run_id, "", str(dest)))
            for path in local.rglob("*"):
                if path.is_file():
                    chunks.append(path.read_bytes().decode("utf-8", errors="replace"))
    return "\n".join(chunks)


def run_commit_push(root: Path, env: dict[str, str] | None = None) -> Path:
    """``root`` run by dvflow, committed and its data pushed: ready for verify and check."""
    result = cli("run", "-C", str(root), env=env)
    assert result.returncode == 0, result.stderr
    git(root, "add", "-A")
    git(root, "commit", "-qm", "results")
    pushed = dvc(root, "push", "-q")
    assert pushed.returncode == 0, pushed.stderr
    return root


def stage_runs(root: Path) -> dict[str, str]:
    """The newest run id of each stage."""
    client = tracking_client(root)
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        "tags.`dvflow.kind` = 'stage'",
        order_by=["attributes.start_time ASC"],
    )
    return {r.data.tags["dvflow.stage"]: r.info.run_id for r in runs}


def predict_with(tracking_uri: str, model_uri: str) -> str:
    """What ``mlflow.pyfunc.load_model(model_uri).predict([7])`` prints, in a fresh process."""
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import mlflow, sys; mlflow.set_tracking_uri(sys.argv[1]); "
            "print(mlflow.pyfunc.load_model(sys.argv[2]).predict([7]))",
            tracking_uri,
            model_uri,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert loaded.returncode == 0, loaded.stderr
    return loaded.stdout


# Screenshots the browser tests took (record_property("screenshot", path)), listed
# at the end of the session: the reports carry them back from xdist's workers.
_SCREENSHOTS: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call":
        _SCREENSHOTS.extend(str(v) for k, v in report.user_properties if k == "screenshot")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _SCREENSHOTS:
        terminalreporter.section("screenshots")
        for path in _SCREENSHOTS:
            terminalreporter.write_line(path)
