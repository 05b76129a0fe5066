"""Real servers on 127.0.0.1, one of each per test session, each stopped by PID.

    postgres       PostgreSQL from the pgserver wheel: MLflow's backend store
    moto_server    S3 (moto): DVC remotes, and the artifact store of mlflow_server
    gcs_server     Google Cloud Storage (gcp-storage-emulator)
    azurite        Azure Blob Storage (azurite, installed once per machine with npm)
    mlflow_server  ``mlflow server`` on PostgreSQL, artifacts in a bucket on moto

A server that cannot start fails the tests that need it: none of them is
ever skipped, so CI always runs them. The per-test fixtures (``s3_bucket``,
``gcs_bucket``, ``azure_container``) give each test a fresh bucket of its own
and the environment a client needs to reach it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

BIN = Path(sys.executable).parent
# The environment pytest started with: npm needs the user's own registry
# settings, which the tests' isolated HOME hides.
_USER_ENV = dict(os.environ)
_USER_CACHE = Path(_USER_ENV.get("XDG_CACHE_HOME") or Path.home() / ".cache")
AZURITE_VERSION = "3.35.0"
# Azurite's development account: public, documented by Microsoft, not a secret.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    # A test that drops the keys gets "no credentials" at once, not after
    # botocore has asked the EC2 metadata address.
    "AWS_EC2_METADATA_DISABLED": "true",
}
# gcsfs asks the bucket's storage layout over gRPC (with TLS, retried for
# minutes) before opening a file; an emulator has no such endpoint.
GCS_TEST_ENV = {"GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unique_name(prefix: str) -> str:
    """A bucket name no other test uses: lowercase, digits and dashes."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@contextlib.contextmanager
def serving(
    command: list[str], probe: str, folder: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``command`` in its own process group, wait until ``probe`` answers, stop it.

    Any HTTP answer, even an error status, means the server is up. Its log is
    ``folder/server.log``, shown when it does not start.
    """
    log_path = folder / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=folder,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        try:
            wait_until_answering(probe, proc, log_path)
            yield proc
        finally:
            stop(proc)


def wait_until_answering(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not start:\n{log.read_text()}") from None
            time.sleep(0.2)


def stop(proc: subprocess.Popen[Any]) -> None:
    """Stop a server's whole process group by its PID: SIGTERM, then SIGKILL."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """A real PostgreSQL (initdb on a free port, 127.0.0.1), stopped by PID at the end.

    The binaries come from the ``pgserver`` wheel, found without importing it.
    PostgreSQL refuses to run as root, so as root it runs as a system user of
    its own. Returns the URI MLflow should use (DESIGN trap 10: psycopg2).
    """
    import importlib.util
    import pwd

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
            # Under xdist each worker starts its own PostgreSQL: another may add the user first.
            made = subprocess.run(
                ["useradd", "-M", "-s", "/usr/sbin/nologin", user], capture_output=True, check=False
            )
            if made.returncode != 0:
                pwd.getpwnam(user)  # KeyError with useradd's failure as context if none did
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
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's S3 (and IAM, STS…) on 127.0.0.1; yields its endpoint URL.

    Any credentials are accepted unless a test turns authentication on
    (``moto_auth_enforced``). Buckets of all tests live side by side, so each
    test makes its own (``s3_bucket``).
    """
    folder = tmp_path_factory.mktemp("moto")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with serving(command, f"{url}/moto-api/", folder):
        yield url


@contextlib.contextmanager
def moto_auth_enforced(endpoint: str) -> Iterator[None]:
    """Make moto check every request's credentials (none are known to it), then stop."""

    def reset(count: str) -> None:
        request = urllib.request.Request(  # noqa: S310 - loopback
            f"{endpoint}/moto-api/reset-auth",
            data=count.encode(),
            # Not a form: moto reads the raw body.
            headers={"Content-Type": "text/plain"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - loopback
            pass

    reset("0")
    try:
        yield
    finally:
        reset("inf")


def s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=AWS_TEST_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_TEST_ENV["AWS_SECRET_ACCESS_KEY"],
        region_name=AWS_TEST_ENV["AWS_DEFAULT_REGION"],
    )


@dataclass(frozen=True)
class Bucket:
    """One test's own bucket (or Azure container) on an emulator."""

    name: str
    endpoint: str
    client: Any

    def object_keys(self) -> list[str]:
        """Every object's key, sorted."""
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError


class S3Bucket(Bucket):
    def object_keys(self) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.name, Key=key)

    def delete_every_version(self, key: str) -> None:
        """Delete ``key`` for good: each of its versions, not just the current one."""
        versions = self.client.list_object_versions(Bucket=self.name, Prefix=key)
        for version in versions.get("Versions", []):
            self.client.delete_object(
                Bucket=self.name, Key=version["Key"], VersionId=version["VersionId"]
            )

    def enable_versioning(self) -> None:
        self.client.put_bucket_versioning(
            Bucket=self.name, VersioningConfiguration={"Status": "Enabled"}
        )


class GcsBucket(Bucket):
    def object_keys(self) -> list[str]:
        return sorted(blob.name for blob in self.client.list_blobs(self.name))

    def delete(self, key: str) -> None:
        self.client.bucket(self.name).blob(key).delete()


@dataclass(frozen=True)
class AzureContainer(Bucket):
    connection_string: str = ""

    def object_keys(self) -> list[str]:
        container = self.client.get_container_client(self.name)
        return sorted(blob.name for blob in container.list_blobs())

    def delete(self, key: str) -> None:
        self.client.get_container_client(self.name).delete_blob(key)


@pytest.fixture
def s3_bucket(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> S3Bucket:
    """A fresh bucket on moto; AWS test credentials in the environment."""
    for key, value in AWS_TEST_ENV.items():
        monkeypatch.setenv(key, value)
    client = s3_client(moto_server)
    name = unique_name("dvc")
    client.create_bucket(Bucket=name)
    return S3Bucket(name, moto_server, client)


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """gcp-storage-emulator (in memory) on 127.0.0.1; yields its endpoint URL.

    It checks no credentials: clients connect anonymously.
    """
    folder = tmp_path_factory.mktemp("gcs")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        str(BIN / "gcp-storage-emulator"),
        "start",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--in-memory",
        "--quiet",
    ]
    with serving(command, f"{url}/storage/v1/b", folder):
        yield url


@pytest.fixture
def gcs_bucket(gcs_server: str, monkeypatch: pytest.MonkeyPatch) -> GcsBucket:
    """A fresh bucket on the GCS emulator."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    for key, value in GCS_TEST_ENV.items():
        monkeypatch.setenv(key, value)
    client = storage.Client(
        project="dvflow-test",
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": gcs_server},
    )
    name = unique_name("dvc")
    client.create_bucket(name)
    return GcsBucket(name, gcs_server, client)


def azurite_bin() -> Path:
    """``azurite-blob``, installed with npm into the user's cache folder once per version.

    npm missing, or an install that fails, fails the test: never a skip.
    """
    folder = _USER_CACHE / "dvflow-tests" / f"azurite-{AZURITE_VERSION}"
    binary = folder / "node_modules" / ".bin" / "azurite-blob"
    node = shutil.which("node", path=_USER_ENV.get("PATH"))
    assert node, "the Azure tests need Node.js on PATH (Azurite is a Node.js program)"
    if binary.exists():
        return binary
    npm = shutil.which("npm", path=_USER_ENV.get("PATH"))
    assert npm, "the Azure tests need Node.js and npm on PATH (Azurite is an npm package)"
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Install beside the final folder, then rename: two sessions at once, or an
    # interrupted install, never leave a half-installed folder in use.
    staging = Path(tempfile.mkdtemp(prefix="azurite-", dir=folder.parent))
    proc = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", f"azurite@{AZURITE_VERSION}"],
        cwd=staging,
        env=_USER_ENV,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, f"npm install azurite failed:\n{proc.stdout}{proc.stderr}"
    try:
        staging.rename(folder)
    except OSError:  # another session finished first
        shutil.rmtree(staging, ignore_errors=True)
    assert binary.exists(), f"npm installed no {binary}"
    return binary


def azurite_connection_string(endpoint: str) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
        f"AccountKey={AZURITE_KEY};BlobEndpoint={endpoint}/{AZURITE_ACCOUNT};"
    )


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Azurite's Blob service on 127.0.0.1; yields its connection string."""
    folder = tmp_path_factory.mktemp("azurite")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        str(azurite_bin()),
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        "--location",
        str(folder),
        "--skipApiVersionCheck",
        "--loose",
        "--silent",
        "--disableTelemetry",
    ]
    with serving(command, f"{url}/{AZURITE_ACCOUNT}?comp=list", folder):
        yield azurite_connection_string(url)


@pytest.fixture
def azure_container(azurite: str) -> AzureContainer:
    """A fresh container on Azurite."""
    from azure.storage.blob import BlobServiceClient

    client = BlobServiceClient.from_connection_string(azurite)
    name = unique_name("dvc")
    client.create_container(name)
    return AzureContainer(name, client.primary_endpoint, client, connection_string=azurite)


@pytest.fixture(scope="session")
def mlflow_artifacts(moto_server: str) -> S3Bucket:
    """The bucket on moto that holds mlflow_server's artifacts (under ``mlflow/``)."""
    client = s3_client(moto_server)
    name = unique_name("mlflow")
    client.create_bucket(Bucket=name)
    return S3Bucket(name, moto_server, client)


@pytest.fixture(scope="session")
def mlflow_server(
    tmp_path_factory: pytest.TempPathFactory,
    postgres: str,
    mlflow_artifacts: S3Bucket,
) -> Iterator[str]:
    """A real ``mlflow server`` on 127.0.0.1, stopped by PID at the end.

    Its backend store is PostgreSQL; its artifacts go to ``s3://BUCKET/mlflow``
    on moto (``mlflow_artifacts``), through the server: clients need no S3
    credentials, as in a team's set-up.
    """
    folder = tmp_path_factory.mktemp("server")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        str(BIN / "mlflow"),
        "server",
        "--backend-store-uri",
        postgres,
        "--artifacts-destination",
        f"s3://{mlflow_artifacts.name}/mlflow",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    env = {
        **AWS_TEST_ENV,
        "MLFLOW_S3_ENDPOINT_URL": mlflow_artifacts.endpoint,
        # DESIGN trap 9: without this the server starts ~9 processes and 2.5 GB.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    with serving(command, f"{url}/health", folder, env):
        yield url
