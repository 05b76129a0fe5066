"""Credentials planted where users keep them never reach what dvflow writes."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import cli, dvc, everything_written, git, tracking_client

SECRETS = {
    "config_local_key": "AKIAPLANTED00CONFIG",
    "config_local_secret": "planted-secret-in-config-local",
    "url_password": "planted-pass-in-remote-url",
    "git_token": "planted-token-in-git-remote",
    "aws_env": "planted-aws-secret-from-env",
    "azure_key": "planted-azure-account-key",
    "sas_sig": "planted-sas-signature",
    "mlflow_password": "planted-mlflow-password",
    "patch_password": "planted-pass-in-patch",
    "gcs_key_file": "planted-gcs-key-file-name",
}

LEAKY_TRAIN = """\
import os, sys
print("AWS", os.environ["AWS_SECRET_ACCESS_KEY"], file=sys.stderr)
print("AZ", os.environ["AZURE_STORAGE_CONNECTION_STRING"], file=sys.stderr)
print("SAS", os.environ["AZURE_STORAGE_SAS_TOKEN"], file=sys.stderr)
sys.exit(1)
"""


def _plant(root: Path) -> dict[str, str]:
    local = root / ".dvc" / "config.local"
    local.write_text(
        local.read_text()
        + "['remote \"backup\"']\n"
        + "    url = s3://bucket/path\n"
        + f"    access_key_id = {SECRETS['config_local_key']}\n"
        + f"    secret_access_key = {SECRETS['config_local_secret']}\n"
    )
    url = f"https://planted-user:{SECRETS['url_password']}@example.invalid/store"
    result = dvc(root, "remote", "add", "--local", "-f", "-d", "web", url)
    assert result.returncode == 0, result.stderr
    git(
        root,
        "remote",
        "add",
        "origin",
        f"https://bot:{SECRETS['git_token']}@example.invalid/team/repo.git",
    )
    (root / "train.py").write_text(
        (root / "train.py").read_text()
        + f'\nSERVER = "https://admin:{SECRETS["patch_password"]}@db.example.invalid"\n'
    )
    return {
        "AWS_SECRET_ACCESS_KEY": SECRETS["aws_env"],
        "AZURE_STORAGE_CONNECTION_STRING": "DefaultEndpointsProtocol=https;AccountName=acct;"
        f"AccountKey={SECRETS['azure_key']};EndpointSuffix=core.windows.net",
        "AZURE_STORAGE_SAS_TOKEN": f"sv=2022-11-02&ss=b&sig={SECRETS['sas_sig']}",
        "MLFLOW_TRACKING_PASSWORD": SECRETS["mlflow_password"],
        "GOOGLE_APPLICATION_CREDENTIALS": f"/keys/{SECRETS['gcs_key_file']}.json",
    }


def test_no_planted_credential_reaches_runs_records_or_logs(make_project) -> None:
    root = make_project()
    env = _plant(root)
    ok = cli("run", cwd=root, env=env)
    assert ok.returncode == 0, ok.stderr
    (root / "train.py").write_text(LEAKY_TRAIN)
    failed = cli("run", cwd=root, env=env)
    assert failed.returncode == 6, failed.stderr

    written = everything_written(root)
    assert "AWS ***" in written  # the failing stage's stderr tail was kept, redacted
    assert "https://***@example.invalid/store/files/md5/" in written  # pointers kept
    assert "+SERVER = " in written  # the patch was kept
    for name, secret in SECRETS.items():
        assert secret not in written, f"{name} leaked into the tracking store"
        assert secret not in ok.stdout + ok.stderr, f"{name} leaked into dvflow's output"


def test_no_planted_credential_reaches_the_index_lineage_exports_or_registry(
    make_project,
) -> None:
    root = make_project()
    env = _plant(root)
    ok = cli("run", cwd=root, env=env)
    assert ok.returncode == 0, ok.stderr
    client = tracking_client(root)
    (train, *_) = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], "tags.`dvflow.stage` = 'train'"
    )
    outputs = [
        cli(
            "register",
            train.info.run_id,
            "--name",
            "leak-check",
            "--path",
            "model.txt",
            "--alias",
            "candidate",
            cwd=root,
            env=env,
        ),
        cli("index", "--rebuild", cwd=root, env=env),
        cli("lineage", "models:/leak-check/1", "--json", cwd=root, env=env),
        cli("impact", "data/raw.txt", "--mermaid", cwd=root, env=env),
        cli("verify", train.info.run_id, cwd=root, env=env),
        cli("diff", train.info.run_id, train.info.run_id, "--json", cwd=root, env=env),
        cli("doctor", cwd=root, env=env),
    ]
    version = client.get_model_version("leak-check", "1")
    written = "\n".join(
        [o.stdout + o.stderr for o in outputs]
        + [json.dumps(dict(version.tags)), version.source]
        + [
            path.read_bytes().decode("utf-8", "replace")
            for path in (root / ".dvflow").glob("index.sqlite*")
        ]
    )
    for name, secret in SECRETS.items():
        assert secret not in written, f"{name} leaked into the index, an export or the registry"
