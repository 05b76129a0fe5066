"""Real servers for the benchmarks, on 127.0.0.1 and free ports, each stopped by PID.

``postgres()`` runs PostgreSQL from the ``pgserver`` wheel's binaries (initdb
in a temporary folder), started as the tests' ``postgres`` fixture starts it:
PostgreSQL refuses to run as root, so as root it runs as a system user of its
own. ``MlflowServer`` is an ``mlflow server`` on one of its databases that a
benchmark can stop and start again on the same port, to inject faults.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

BIN = Path(sys.executable).parent
PG_USER = "dvflowpg"
# DESIGN trap 9: without this the server starts ~9 processes and 2.5 GB.
SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Postgres:
    """A running PostgreSQL cluster; ``create_database`` gives each server a fresh one."""

    def __init__(self, bindir: Path, port: int) -> None:
        self.bindir, self.port = bindir, port

    def create_database(self, name: str | None = None) -> str:
        """Create a database; return the URI MLflow needs (DESIGN trap 10: psycopg2)."""
        name = name or f"bench_{uuid.uuid4().hex[:12]}"
        host = ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"]
        _check([str(self.bindir / "createdb"), *host, name])
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{name}"


# Trust on loopback only, and no fsync: a benchmark's cluster is thrown away.
_INITDB = ["-A", "trust", "--no-sync"]


@contextlib.contextmanager
def postgres() -> Iterator[Postgres]:
    """Start PostgreSQL (initdb, then pg_ctl start); stop it with SIGINT to its PID."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.origin:
        raise RuntimeError("the benchmarks need the pgserver wheel (a dev dependency)")
    bindir = Path(spec.origin).parent / "pginstall" / "bin"
    folder = Path(tempfile.mkdtemp(prefix="dvflow-bench-pg-"))
    folder.chmod(0o755)  # the server's own user must reach its data folder
    run_as = _server_user(folder)
    data, port = folder / "db", free_port()
    _check([*run_as, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", *_INITDB])
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k {folder}"
    pg_ctl = [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w"]
    _check([*run_as, *pg_ctl, "-o", options, "start"])
    pid = int((data / "postmaster.pid").read_text().split()[0])
    try:
        yield Postgres(bindir, port)
    finally:
        os.kill(pid, signal.SIGINT)  # fast shutdown: do not wait for clients
        deadline = time.monotonic() + 30
        while (data / "postmaster.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        shutil.rmtree(folder, ignore_errors=True)


def _server_user(folder: Path) -> list[str]:
    """The command prefix that runs PostgreSQL's tools as a non-root user, when root."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        _check(["useradd", "-M", "-s", "/usr/sbin/nologin", PG_USER])
    shutil.chown(folder, PG_USER)
    return ["runuser", "-u", PG_USER, "--"]


def _check(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{Path(command[0]).name} failed: {done.stderr.strip()}")


class MlflowServer:
    """``mlflow server`` on ``backend``, artifacts in ``folder``; stop() and start() again.

    The port is chosen once, so clients keep their URL across a restart.
    """

    def __init__(self, backend: str, folder: Path) -> None:
        self.backend, self.folder = backend, folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None

    def start(self, timeout: float = 120) -> None:
        """Start it and wait until ``/health`` answers."""
        command = [
            str(BIN / "mlflow"),
            "server",
            "--backend-store-uri",
            self.backend,
            "--artifacts-destination",
            str(self.folder / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **SERVER_ENV},
                start_new_session=True,  # stop() ends the whole group: workers too
            )
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"mlflow server did not start:\n{tail}")
            time.sleep(0.2)

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2):  # noqa: S310 - loopback
                return True
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM to its process group, SIGKILL after 30 s."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None


@contextlib.contextmanager
def mlflow_server(backend: str, folder: Path) -> Iterator[MlflowServer]:
    """A started ``MlflowServer``, stopped on the way out (wherever a fault left it)."""
    folder.mkdir(parents=True, exist_ok=True)
    server = MlflowServer(backend, folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def postgres_mlflow(folder: Path) -> Iterator[MlflowServer]:
    """PostgreSQL, a fresh database on it, and an ``mlflow server`` on that database."""
    with postgres() as cluster, mlflow_server(cluster.create_database(), folder) as server:
        yield server
