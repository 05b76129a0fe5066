"""dvflow with real cloud DVC remotes: S3 (moto), GCS (gcp-storage-emulator), Azure (Azurite).

Each server runs once per session on 127.0.0.1 (tests/servers.py); each test
has a bucket of its own.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import cli, dvc, everything_written, free_port, git, stage_runs, tracking_client
from servers import AZURITE_KEY, AzureContainer, Bucket, S3Bucket, moto_auth_enforced

# Planted where users keep credentials; none may appear in anything dvflow writes.
PLANTED = {
    "s3_key_id_local": "AKIAPLANTEDLOCAL0001",
    "s3_secret_local": "planted-s3-secret-in-config-local",
    "s3_secret_env": "planted-s3-secret-in-env",
    "s3_token_env": "planted-s3-session-token-in-env",
    "gcs_key_file_local": "planted-gcs-key-file-in-config-local",
    "gcs_key_file_env": "planted-gcs-key-file-in-env",
    "sas_sig_env": "planted-sas-signature-in-env",
}


def use_remote(root: Path, url: str, shared: dict[str, str], local: dict[str, str]) -> None:
    """Make ``url`` the default remote ``storage``, as a team would.

    Options go to ``.dvc/config`` (committed), credentials to
    ``.dvc/config.local``: what ``dvc remote add -d storage URL`` and
    ``dvc remote modify [--local] storage OPTION VALUE`` write, through DVC's
    own validating config writer, without a DVC start-up per option.
    """
    from dvc.config import Config

    config = Config(dvc_dir=str(root / ".dvc"))
    with config.edit("local") as conf:  # dvflow init's default: a local folder
        conf["core"].pop("remote", None)
        conf["remote"].pop("storage", None)
    with config.edit("repo") as conf:
        conf["core"]["remote"] = "storage"
        conf["remote"]["storage"] = {"url": url, **shared}
    with config.edit("local") as conf:
        conf["remote"]["storage"] = dict(local)


def s3_remote(root: Path, bucket: Bucket, monkeypatch: pytest.MonkeyPatch, **options: str) -> None:
    """S3 on moto: the endpoint shared, keys in config.local (they win over the environment)."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", PLANTED["s3_secret_env"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", PLANTED["s3_token_env"])
    local = {
        "access_key_id": PLANTED["s3_key_id_local"],
        "secret_access_key": PLANTED["s3_secret_local"],
    }
    shared = {"endpointurl": bucket.endpoint, "jobs": "4", **options}
    use_remote(root, f"s3://{bucket.name}/store", shared, local)


def gcs_remote(root: Path, bucket: Bucket, monkeypatch: pytest.MonkeyPatch) -> None:
    """GCS on the emulator, anonymously: a key file named but never opened."""
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", f"/k/{PLANTED['gcs_key_file_env']}.json")
    local = {
        "credentialpath": f"/k/{PLANTED['gcs_key_file_local']}.json",
        "allow_anonymous_login": "true",
    }
    use_remote(root, f"gs://{bucket.name}/store", {"endpointurl": bucket.endpoint}, local)


def azure_remote(root: Path, bucket: Bucket, monkeypatch: pytest.MonkeyPatch) -> None:
    """Azure on Azurite: the connection string in config.local, a SAS token in the environment."""
    assert isinstance(bucket, AzureContainer)
    monkeypatch.setenv("AZURE_STORAGE_SAS_TOKEN", f"sv=2022-11-02&sig={PLANTED['sas_sig_env']}")
    local = {"connection_string": bucket.connection_string}
    use_remote(root, f"azure://{bucket.name}/store", {}, local)


CLOUDS = {
    "s3": ("s3_bucket", s3_remote),
    "gs": ("gcs_bucket", gcs_remote),
    "azure": ("azure_container", azure_remote),
}


def md5_key(md5: str) -> str:
    """Where a (non-versioned) DVC remote under ``store/`` keeps an object."""
    return f"store/files/md5/{md5[:2]}/{md5[2:]}"


def lock_md5s(root: Path) -> dict[str, str]:
    """``{path: md5}`` of every output in dvc.lock (file form)."""
    lock = (root / "dvc.lock").read_text()
    return dict(re.findall(r"- path: (\S+)\n\s+hash: md5\n\s+md5: (\S+)", lock))


@pytest.mark.parametrize("cloud", sorted(CLOUDS))
def test_run_push_fills_the_bucket_verifies_leaks_nothing_and_names_a_deleted_object(
    cloud: str,
    make_project: Callable[..., Path],
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fixture, configure = CLOUDS[cloud]
    bucket: Bucket = request.getfixturevalue(fixture)
    root = make_project("basic")
    configure(root, bucket, monkeypatch)
    git(root, "commit", "-qm", "cloud remote", "--", ".dvc/config")

    ran = cli("run", "--push", "-C", str(root))
    assert ran.returncode == 0, ran.stderr
    md5s = lock_md5s(root)
    clean = json.loads(
        (root / ".dvc" / "cache" / "files" / "md5")
        .joinpath(md5s["data/clean"][:2], md5s["data/clean"][2:])
        .read_text()
    )
    wanted = {md5s["model.txt"], md5s["data/clean"], *(f["md5"] for f in clean)}
    assert {md5_key(m) for m in wanted} <= set(bucket.object_keys())

    train = stage_runs(root)["train"]
    verified = cli("verify", train, "-C", str(root))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert re.search(r"pass\s+data\s+2 DVC object\(s\) are in the DVC remote", verified.stdout)

    said = ran.stdout + ran.stderr + verified.stdout + verified.stderr
    written = everything_written(root)
    assert f"{cloud}://{bucket.name}/store/files/md5/" in written  # the pointers are kept
    for name, secret in [*PLANTED.items(), ("azurite_key", AZURITE_KEY)]:
        assert secret not in written, f"{name} reached the tracking store"
        assert secret not in said, f"{name} reached dvflow's output"

    bucket.delete(md5_key(md5s["model.txt"]))
    broken = cli("verify", train, "-C", str(root))
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert re.search(
        r"FAIL\s+data\s+1 object\(s\) missing from the DVC remote: model\.txt", broken.stdout
    )
    assert "Traceback" not in broken.stderr


def test_a_version_aware_remote_works_by_version_id_for_run_verify_check_diff_and_checkout(
    make_project: Callable[..., Path],
    s3_bucket: S3Bucket,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """DESIGN trap 6: objects at work-tree paths, ``version_id``s in the pointer files."""
    s3_bucket.enable_versioning()
    root = make_project("basic", commit=False)
    s3_remote(root, s3_bucket, monkeypatch, version_aware="true")
    pushed = dvc(root, "push")
    assert pushed.returncode == 0, pushed.stderr
    raw = (root / "data" / "raw.txt.dvc").read_text()
    assert "version_id:" in raw  # DVC rewrote the pointer with its version
    raw_md5 = raw.split("md5: ")[1].split()[0]
    git(root, "add", "-A")
    git(root, "commit", "-qm", "data on a version-aware remote")

    ran = cli("run", "--push", "-C", str(root))
    assert ran.returncode == 0, ran.stderr
    assert "files:" in (root / "dvc.lock").read_text()  # data/clean, file by file
    git(root, "commit", "-qam", "results")
    assert s3_bucket.object_keys() == [
        "store/data/clean/count.txt",
        "store/data/clean/scaled.txt",
        "store/data/raw.txt",
        "store/model.txt",
    ]
    runs = stage_runs(root)
    # The run recorded the md5 of the version-aware .dvc file as its input.
    tags = tracking_client(root).get_run(runs["prepare"]).data.tags
    assert ["data/raw.txt", raw_md5] in json.loads(tags["dvflow.io"])["in"]
    # Each pointer's remote URI is where the remote keeps it: its own path.
    assert {
        path: f"s3://{s3_bucket.name}/store/{path}" for path in ("data/raw.txt", "data/clean")
    }.items() <= remote_uris(root, runs["prepare"]).items()

    # The committed per-file form links data/clean from prepare to train.
    impact = cli("impact", "data/raw.txt", "--json", "-C", str(root))
    assert impact.returncode == 0, impact.stderr
    reached = {n["attrs"].get("path") for n in json.loads(impact.stdout)["nodes"]}
    assert {"data/clean", "model.txt"} <= reached

    verified = cli("verify", runs["train"], "-C", str(root))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert re.search(r"pass\s+data\s+2 DVC object\(s\) are in the DVC remote", verified.stdout)

    # A second version of data/clean: diff lists its files from the per-file form.
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("factor: 2", "factor: 5"))
    again = cli("run", "--push", "-C", str(root))
    assert again.returncode == 0, again.stderr
    git(root, "commit", "-qam", "factor 5")
    diff = cli("diff", runs["prepare"], stage_runs(root)["prepare"], "-C", str(root))
    assert diff.returncode == 0, diff.stderr
    assert "~ scaled.txt" in diff.stdout and "count.txt" not in diff.stdout

    # A plain delete only hides the object: its version, the one DVC recorded, stays.
    s3_bucket.delete("store/model.txt")
    assert cli("verify", runs["train"], "-C", str(root)).returncode == 0
    s3_bucket.delete_every_version("store/model.txt")
    broken = cli("verify", runs["train"], "-C", str(root))
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert re.search(
        r"FAIL\s+data\s+1 object\(s\) missing from the DVC remote: model\.txt", broken.stdout
    )
    gate = cli("check", "-C", str(root))
    assert gate.returncode == 11, gate.stdout + gate.stderr
    assert "not in the DVC remote: model.txt" in gate.stdout

    # A fresh clone's empty cache: checkout fetches each file by its version id
    # and rebuilds the directory's listing from the per-file form.
    shutil.rmtree(root / ".dvc" / "cache")
    exact = tmp_path / "exact"
    out = cli("checkout", runs["prepare"], "--into", str(exact), "-C", str(root))
    assert out.returncode == 0, out.stderr
    assert (exact / "data" / "raw.txt").read_text() == (root / "data" / "raw.txt").read_text()
    assert (exact / "data" / "clean" / "scaled.txt").read_text() == "2\n4\n6\n8\n"


def absent_bucket_remote(
    root: Path, s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> S3Bucket:
    """The project's remote in a bucket that does not exist, on the same moto."""
    absent = S3Bucket(f"{s3_bucket.name}-absent", s3_bucket.endpoint, s3_bucket.client)
    s3_remote(root, absent, monkeypatch)
    return absent


def remote_uris(root: Path, run_id: str) -> dict[str, str | None]:
    """``{path: remote_uri}`` of every pointer in the run's record."""
    shown = cli("show", run_id, "--json", "-C", str(root))
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    return {p["path"]: p["remote_uri"] for p in record["inputs"] + record["outputs"]}


def doctor_lines(root: Path) -> tuple[int, dict[str, str], str]:
    """Exit code, ``{check: 'level detail'}`` and all the output of ``dvflow doctor``."""
    result = cli("doctor", "-C", str(root))
    found = {}
    for line in result.stdout.splitlines():
        parts = line.split(maxsplit=2)
        if len(parts) == 3 and parts[0] in ("pass", "warn", "FAIL"):
            found[parts[1]] = f"{parts[0]} {parts[2]}"
    return result.returncode, found, result.stdout + result.stderr


def test_doctor_on_s3_warns_with_the_command_until_the_bucket_is_versioned(
    make_project: Callable[..., Path], s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project("basic")
    absent = absent_bucket_remote(root, s3_bucket, monkeypatch)
    code, found, said = doctor_lines(root)
    assert code == 1, said  # DVC does not create buckets: the run's push would fail
    assert found["remote"] == (
        f"FAIL s3://{absent.name}/store: its bucket or container does not exist"
    )
    assert "Create it first" in said

    s3_remote(root, s3_bucket, monkeypatch)
    code, found, said = doctor_lines(root)
    assert code == 0, said
    url = f"s3://{s3_bucket.name}/store"
    assert found["remote"] == f"pass {url} is reachable (empty until the first 'dvc push')"
    assert found["versioning"].startswith(f"warn object versioning is off for {url}")
    assert (
        f"aws s3api put-bucket-versioning --bucket {s3_bucket.name} "
        f"--endpoint-url {s3_bucket.endpoint} --versioning-configuration Status=Enabled" in said
    )

    s3_bucket.enable_versioning()
    code, found, said = doctor_lines(root)
    assert code == 0, said
    assert found["versioning"] == f"pass object versioning is on for {url}"


def test_doctor_fails_clearly_when_s3_refuses_the_credentials_or_does_not_answer(
    make_project: Callable[..., Path], s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project("basic")
    s3_remote(root, s3_bucket, monkeypatch)
    url = f"s3://{s3_bucket.name}/store"
    with moto_auth_enforced(s3_bucket.endpoint):  # moto now knows no key at all
        code, found, said = doctor_lines(root)
    assert code == 1, said
    assert found["remote"].startswith(f"FAIL {url} refused the credentials: ")
    assert "Forbidden" in found["remote"] and "Traceback" not in said
    assert PLANTED["s3_secret_local"] not in said

    s3_remote(root, s3_bucket, monkeypatch, endpointurl=f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore's retries only add seconds here
    code, found, said = doctor_lines(root)
    assert code == 1, said
    assert found["remote"].startswith(f"FAIL {url} does not answer: ")
    assert "endpointurl" in said
    assert "Traceback" not in said


def test_the_team_servers_records_land_in_its_s3_artifact_store(
    make_project: Callable[..., Path], mlflow_server: str, mlflow_artifacts: S3Bucket
) -> None:
    root = make_project("rebuild")
    ran = cli("run", "steady", "-C", str(root), env={"DVFLOW_TRACKING_URI": mlflow_server})
    assert ran.returncode == 0, ran.stderr
    run_id = re.search(r"steady\s+ran\s+run ([0-9a-f]{32})", ran.stdout)
    assert run_id, ran.stdout
    from mlflow.tracking import MlflowClient

    run = MlflowClient(tracking_uri=mlflow_server).get_run(run_id[1])
    key = f"mlflow/{run.info.experiment_id}/{run_id[1]}/artifacts/dvflow/record.json"
    assert key in mlflow_artifacts.object_keys()
    body = mlflow_artifacts.client.get_object(Bucket=mlflow_artifacts.name, Key=key)["Body"]
    assert hashlib.sha256(body.read()).hexdigest() == run.data.tags["dvflow.record_sha256"]


def test_run_push_to_a_missing_bucket_stops_before_any_stage(
    make_project: Callable[..., Path], s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project("basic")
    absent_bucket_remote(root, s3_bucket, monkeypatch)
    result = cli("run", "--push", "-C", str(root))
    assert result.returncode == 3, result.stderr
    assert "bucket or container does not exist" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (root / "data" / "clean").exists() and not (root / "dvc.lock").exists()
