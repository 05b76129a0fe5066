"""Real git, real DVC and a real MLflow SQLite store, in temporary folders.

Creating an MLflow SQLite schema costs seconds, so one database is migrated
per session and copied into each project.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import history_repo
from history_repo import HistoryRepo

PROJECTS = Path(__file__).parent / "projects"
DVFLOW = Path(sys.executable).with_name("dvflow")
_LEAKY_ENV = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_RUN_ID",
    "MLFLOW_EXPERIMENT_NAME",
    "DVFLOW_TRACKING_URI",
    "DVFLOW_EXPERIMENT",
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


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """A real PostgreSQL (initdb on a free port, 127.0.0.1), stopped by PID at the end.

    The binaries come from the ``pgserver`` wheel, found without importing it.
    PostgreSQL refuses to run as root, so as root it runs as a system user of
    its own. Returns the URI MLflow should use (DESIGN trap 10: psycopg2).
    """
    import importlib.util
    import pwd
    import signal
    import tempfile
    import time

    spec = importlib.util.find_spec("pgserver")
    assert spec is not None and spec.origin, "pgserver is a dev dependency"
    bindir = Path(spec.origin).parent / "pginstall" / "bin"
    # Not under pytest's tmp folders: those are private to root.
    folder = Path(tempfile.mkdtemp(prefix="dvflow-pg-"))
    folder.chmod(0o755)
    run_as: list[str] = []
    if os.geteuid() == 0:
        user = "dvflowpg"
        try:
            pwd.getpwnam(user)
        except KeyError:
            subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", user], check=True)
        shutil.chown(folder, user)
        run_as = ["runuser", "-u", user, "--"]
    port = free_port()
    data = folder / "db"

    def pg(*args: str, as_owner: bool = True) -> None:
        proc = subprocess.run(
            [*(run_as if as_owner else []), *args], capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, proc.stderr

    pg(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync")
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k {folder}"
    pg(
        str(bindir / "pg_ctl"),
        "-D",
        str(data),
        "-l",
        str(folder / "log"),
        "-w",
        "-o",
        options,
        "start",
    )
    pid = int((data / "postmaster.pid").read_text().split()[0])
    try:
        host = ["-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
        pg(str(bindir / "createdb"), *host, "mlflow", as_owner=False)
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/mlflow"
    finally:
        os.kill(pid, signal.SIGINT)  # fast shutdown: do not wait for clients
        deadline = time.monotonic() + 30
        while (data / "postmaster.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory, postgres: str) -> Iterator[str]:
    """A real ``mlflow server`` on 127.0.0.1 backed by PostgreSQL, stopped by PID at the end."""
    import signal
    import time
    import urllib.request

    folder = tmp_path_factory.mktemp("server")
    port = free_port()
    log = (folder / "server.log").open("w")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--backend-store-uri",
            postgres,
            "--artifacts-destination",
            str(folder / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        # DESIGN trap 9: without this the server starts ~9 processes and 2.5 GB.
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):  # noqa: S310 - loopback
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                log.close()
                raise RuntimeError((folder / "server.log").read_text()) from None
            time.sleep(0.3)
    try:
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


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
