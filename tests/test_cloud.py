"""dvflow with real cloud DVC remotes: S3 (moto), GCS (gcp-storage-emulator), Azure (Azurite).

Each server runs once per session on 127.0.0.1 (tests/servers.py); each test
has a bucket of its own.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import cli, everything_written, git, tracking_client
from servers import AZURITE_KEY, AzureContainer, Bucket, S3Bucket

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


def stage_runs(root: Path) -> dict[str, str]:
    """The newest run id of each stage."""
    client = tracking_client(root)
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        "tags.`dvflow.kind` = 'stage'",
        order_by=["attributes.start_time ASC"],
    )
    return {r.data.tags["dvflow.stage"]: r.info.run_id for r in runs}


def record(root: Path, run_id: str) -> dict[str, list[dict[str, object]]]:
    shown = cli("show", run_id, "--json", "-C", str(root))
    assert shown.returncode == 0, shown.stderr
    return dict(json.loads(shown.stdout))


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
