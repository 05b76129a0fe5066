"""Every cloud error, in every command that touches the DVC remote: a failed check, never a bug.

One project is made once (two runs pushed to a real S3 bucket on moto, a
registered model). Each test points its remote at one real failure and runs
one command; commands that read the remote only for what the local cache
lacks get an empty cache, as in a fresh clone. The failures:

- ``no-credentials``: no keys anywhere (config, environment, AWS files);
- ``refused``: keys moto does not know, with moto checking them;
- ``unreachable``: an endpoint on a free port where nothing listens;
- ``missing-bucket``: a bucket that was never created.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import PROJECTS, _isolate, cli, dvc, free_port, git, stage_runs
from servers import AWS_TEST_ENV, AZURITE_ACCOUNT, moto_auth_enforced, s3_client, unique_name


@dataclass(frozen=True)
class Pushed:
    """The shared project: its bucket and the runs the commands are pointed at."""

    root: Path
    bucket: str
    endpoint: str
    first: dict[str, str]
    second: dict[str, str]


def write_remote(root: Path, url: str, **options: str) -> None:
    """The default remote ``storage``, wholly in the git-ignored config.local."""
    lines = ["[core]", "    remote = storage", "['remote \"storage\"']", f"    url = {url}"]
    lines += [f"    {key} = {value}" for key, value in options.items()]
    (root / ".dvc" / "config.local").write_text("\n".join(lines) + "\n", encoding="utf-8")


def good_remote(root: Path, bucket: str, endpoint: str) -> None:
    keys = AWS_TEST_ENV["AWS_ACCESS_KEY_ID"], AWS_TEST_ENV["AWS_SECRET_ACCESS_KEY"]
    write_remote(
        root,
        f"s3://{bucket}/store",
        endpointurl=endpoint,
        access_key_id=keys[0],
        secret_access_key=keys[1],
    )


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def pushed(
    tmp_path_factory: pytest.TempPathFactory,
    session_home: Path,
    template_db: Path,
    moto_server: str,
) -> Iterator[Pushed]:
    from dvflow import init_project

    with pytest.MonkeyPatch.context() as monkeypatch:
        _isolate(monkeypatch, session_home)
        bucket = unique_name("dvc")
        s3_client(moto_server).create_bucket(Bucket=bucket)
        root = tmp_path_factory.mktemp("remote-errors") / "basic"
        shutil.copytree(PROJECTS / "basic", root)
        init_project(root)
        shutil.copy(template_db, root / "mlflow.db")
        ok(dvc(root, "add", "data/raw.txt"))  # type: ignore[arg-type]
        git(root, "add", "-A")
        git(root, "commit", "-qm", "fixture project")
        good_remote(root, bucket, moto_server)
        ok(cli("run", "--push", "-C", str(root)))
        git(root, "commit", "-qam", "factor 2")
        first = stage_runs(root)
        params = root / "params.yaml"
        params.write_text(params.read_text().replace("factor: 2", "factor: 5"))
        ok(cli("run", "--push", "-C", str(root)))
        git(root, "commit", "-qam", "factor 5")
        second = stage_runs(root)
        ok(cli("register", "train", "--name", "clf", "-C", str(root)))
        yield Pushed(root, bucket, moto_server, first, second)


ERRORS = ("no-credentials", "refused", "unreachable", "missing-bucket")


@pytest.fixture(params=ERRORS)
def broken(
    request: pytest.FixtureRequest,
    pushed: Pushed,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[Callable[[], AbstractContextManager[None]]]:
    """Point the shared project's remote at one real failure; yield what to run commands in."""
    root, kind = pushed.root, request.param
    # No AWS file (the isolated HOME has none; these make sure) and no instance metadata.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", AWS_TEST_ENV["AWS_DEFAULT_REGION"])
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # retries would only add seconds
    url = f"s3://{pushed.bucket}/store"
    within: Callable[[], AbstractContextManager[None]] = nullcontext
    if kind == "no-credentials":
        write_remote(root, url, endpointurl=pushed.endpoint)
    elif kind == "refused":
        good_remote(root, pushed.bucket, pushed.endpoint)
        within = lambda: moto_auth_enforced(pushed.endpoint)  # noqa: E731
    elif kind == "unreachable":
        good_remote(root, pushed.bucket, f"http://127.0.0.1:{free_port()}")
    else:
        good_remote(root, f"{pushed.bucket}-never-made", pushed.endpoint)
    try:
        yield within
    finally:
        good_remote(root, pushed.bucket, pushed.endpoint)


# Commands that go to the remote only for objects the local cache lacks.
EMPTY_CACHE = ("checkout", "diff", "run --pull")
# command -> (arguments, exit code of its failed remote check)
COMMANDS: dict[str, tuple[Callable[[Pushed, Path], list[str]], int]] = {
    "verify": (lambda p, _: ["verify", p.second["train"]], 1),
    "verify --rebuild": (lambda p, _: ["verify", p.second["train"], "--rebuild"], 1),
    "promote": (lambda p, _: ["promote", "clf", "1", "--alias", "production"], 1),
    "check": (lambda p, _: ["check"], 11),
    "checkout": (lambda p, t: ["checkout", p.second["train"], "--into", str(t / "co")], 3),
    "diff": (lambda p, _: ["diff", p.first["prepare"], p.second["prepare"]], 3),
    "run --push": (lambda p, _: ["run", "--push"], 3),
    "run --pull": (lambda p, _: ["run", "--pull"], 3),
    "register": (lambda p, _: ["register", p.first["train"], "--name", "clf-first"], 0),
    "doctor": (lambda p, _: ["doctor"], 1),
    "storage": (lambda p, _: ["storage"], 3),
    "gc plan": (lambda p, t: ["gc", "plan", "-o", str(t / "plan.json")], 3),
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_cloud_error_is_a_failed_remote_check_with_a_hint_in_every_command(
    command: str,
    broken: Callable[[], AbstractContextManager[None]],
    pushed: Pushed,
    tmp_path: Path,
) -> None:
    arguments, expected = COMMANDS[command]
    if command in EMPTY_CACHE:
        with (pushed.root / ".dvc" / "config.local").open("a", encoding="utf-8") as config:
            config.write(f"[cache]\n    dir = {tmp_path / 'empty-cache'}\n")
        # The lineage index keeps the folder listings it read: without it, they
        # must come from the remote.
        for index in (pushed.root / ".dvflow").glob("index.sqlite*"):
            index.unlink()
    # diff reads listings from any DVC cache folder on the machine, the default
    # one too even when cache.dir points elsewhere: move it out of the way.
    default_cache = pushed.root / ".dvc" / "cache"
    aside = tmp_path / "default-cache"
    if command == "diff":
        default_cache.rename(aside)
    try:
        with broken():
            result = cli(*arguments(pushed, tmp_path), "-C", str(pushed.root), timeout=120)
    finally:
        if aside.exists():
            aside.rename(default_cache)
    said = result.stdout + result.stderr
    assert result.returncode == expected, said
    assert "Traceback" not in said and "dvflow bug" not in said, said
    if expected == 3:
        assert re.search(r"^error: .*DVC remote", result.stderr, re.M), said
        assert re.search(r"^hint: ", result.stderr, re.M), said
    elif expected:
        failed = re.search(r"^\s*FAIL\s+(data|remote)\s", result.stdout, re.M)
        assert failed, said
        assert "fix: " in result.stderr or "hint: " in result.stderr, said


def test_each_cloud_error_names_its_cause(
    broken: Callable[[], AbstractContextManager[None]],
    pushed: Pushed,
    request: pytest.FixtureRequest,
) -> None:
    """The four failures read differently: the user learns which one to fix."""
    kind = request.node.callspec.params["broken"]
    with broken():
        result = cli("check", "-C", str(pushed.root), timeout=120)
    said = result.stdout + result.stderr
    expected = {
        "no-credentials": "no credentials",
        "refused": "refused the credentials",
        "unreachable": "does not answer",
        "missing-bucket": "does not exist",
    }[kind]
    assert expected in said, said


def azure_connection(connection_string: str, **changes: str) -> str:
    """Azurite's connection string with some of its fields replaced."""
    fields = dict(f.split("=", 1) for f in connection_string.strip(";").split(";"))
    return ";".join(f"{k}={v}" for k, v in {**fields, **changes}.items()) + ";"


@pytest.mark.parametrize(
    ("cloud", "kind"),
    [
        ("azure", "refused"),
        ("azure", "unreachable"),
        ("azure", "missing-bucket"),
        ("gs", "unreachable"),
        ("gs", "missing-bucket"),
    ],
)
def test_doctor_names_the_cause_on_azure_and_gcs_too(
    cloud: str,
    kind: str,
    make_project: Callable[..., Path],
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = make_project("basic")
    name = unique_name("dvc") if kind == "missing-bucket" else None
    if cloud == "azure":
        container = request.getfixturevalue("azure_container")
        endpoint = f"http://127.0.0.1:{free_port()}/{AZURITE_ACCOUNT}"
        changes = {
            "refused": {"AccountKey": base64.b64encode(b"not the account key" * 3).decode()},
            "unreachable": {"BlobEndpoint": endpoint},
        }.get(kind, {})
        url = f"azure://{name or container.name}/store"
        connection = azure_connection(container.connection_string, **changes)
        write_remote(root, url, connection_string=connection)
    else:
        bucket = request.getfixturevalue("gcs_bucket")
        endpoint = f"http://127.0.0.1:{free_port()}" if kind == "unreachable" else bucket.endpoint
        url = f"gs://{name or bucket.name}/store"
        write_remote(root, url, endpointurl=endpoint, allow_anonymous_login="true")
    result = cli("doctor", "-C", str(root), timeout=120)
    said = result.stdout + result.stderr
    assert result.returncode == 1, said
    assert "Traceback" not in said, said
    expected = {
        "refused": "refused the credentials",
        "unreachable": "does not answer",
        "missing-bucket": "its bucket or container does not exist",
    }[kind]
    assert re.search(rf"^\s*FAIL\s+remote\s+{re.escape(url)}:? {expected}", result.stdout, re.M), (
        said
    )


def _raised_from(error: BaseException, cause: BaseException) -> BaseException:
    try:
        raise error from cause
    except BaseException as raised:  # the chain is what is tested
        return raised


def test_the_cloud_clients_own_exceptions_are_told_apart_and_an_md5_is_no_status() -> None:
    """The clients' real exception classes, as s3fs, adlfs and fsspec raise or wrap them."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        ResourceNotFoundError,
        ServiceRequestError,
    )
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    from dvflow.stores._remote import classify

    def s3(code: str) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": code}}, "HeadObject")

    refused_http = ConnectionRefusedError(111, "Connect call failed")
    cases = {
        NoCredentialsError(): "no-credentials",
        s3("InvalidAccessKeyId"): "refused",
        _raised_from(PermissionError("Forbidden"), s3("403")): "refused",
        ClientAuthenticationError("Server failed to authenticate the request"): "refused",
        EndpointConnectionError(endpoint_url="http://127.0.0.1:9"): "unreachable",
        ServiceRequestError("Cannot connect to host"): "unreachable",
        _raised_from(FileNotFoundError("https://host/store"), refused_http): "unreachable",
        _raised_from(FileNotFoundError("bucket"), s3("NoSuchBucket")): "missing-bucket",
        ResourceNotFoundError("ErrorCode:ContainerNotFound"): "missing-bucket",
        FileNotFoundError("store/files/md5/40/3f01403a9e"): "error",
    }
    assert {repr(e): classify(e) for e in cases} == {repr(e): r for e, r in cases.items()}


def test_a_cloud_client_error_that_escaped_every_boundary_is_still_the_remotes() -> None:
    """The CLI's last resort: by exception type only, so a dvflow bug stays a bug (exit 70)."""
    from botocore.exceptions import NoCredentialsError

    from dvflow.stores._remote import escaped_client_error

    escaped = escaped_client_error(_raised_from(RuntimeError("wrapped"), NoCredentialsError()))
    assert escaped is not None and escaped.reason == "no-credentials" and escaped.exit_code == 3
    assert escaped_client_error(KeyError("timed out 403")) is None
