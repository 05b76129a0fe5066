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


# Credential shapes the redactor once missed, each with a marker that must not be written.
SHAPES = {
    "api_key": "https://api.example.invalid/v1?api_key=PlantedShape0001&page=2",
    "key": "https://maps.example.invalid/geo?key=AIzaPlantedShape0002",
    "goog": "https://storage.example.invalid/b/o?X-Goog-Credential=svc%2FPlantedShape0003"
    "&X-Goog-Signature=9f8e7dPlantedShape0004",
    "bearer": "Authorization: Bearer eyJhbGci.PlantedShape0005",
    "pem": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANPlantedShape0006\n-----END PRIVATE KEY-----",
    "aws": "aws_secret_access_key = wJalrXUtnFEMI/PlantedShape0007",
}
SHAPE_ENV = {
    "MYSQL_PWD": "PlantedShape0008pw",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.example.invalid/services/T0/PlantedShape0009",
    "DEPLOY_BEARER": "PlantedShape0010bearer",
}
SHAPES_TEXT = "\n".join(SHAPES.values())


def test_planted_credential_shapes_never_reach_stderr_the_patch_or_records(
    make_project,
) -> None:
    root = make_project()
    # In the patch: an uncommitted change to the stage's script.
    (root / "train.py").write_text((root / "train.py").read_text() + f"\nNOTES = {SHAPES_TEXT!r}\n")
    # In the record: the stage's command.
    dvc_yaml = root / "dvc.yaml"
    dvc_yaml.write_text(
        dvc_yaml.read_text().replace(
            "cmd: python train.py", f"cmd: python train.py --url '{SHAPES['key']}'"
        )
    )
    ok = cli("run", cwd=root, env=SHAPE_ENV)
    assert ok.returncode == 0, ok.stderr
    # In stderr.txt: a failing stage prints every shape and variable.
    (root / "train.py").write_text(
        "import os, sys\n"
        f"print({SHAPES_TEXT!r}, file=sys.stderr)\n"
        "for name in ('MYSQL_PWD', 'SLACK_WEBHOOK_URL', 'DEPLOY_BEARER'):\n"
        "    print(name + '=' + os.environ[name], file=sys.stderr)\n"
        "sys.exit(1)\n"
    )
    failed = cli("run", cwd=root, env=SHAPE_ENV)
    assert failed.returncode == 6, failed.stderr

    written = everything_written(root)
    assert "+NOTES = " in written  # the patch was kept
    assert "Authorization: Bearer ***" in written  # stderr.txt was kept, redacted
    assert "-----BEGIN PRIVATE KEY-----" in written
    assert "python train.py --url 'https://maps.example.invalid/geo?key=***'" in written
    for marker in [f"PlantedShape{n:04}" for n in range(1, 11)]:
        assert marker not in written, f"{marker} leaked into the tracking store"


def test_ordinary_values_of_credential_looking_variables_stay_in_records(make_project) -> None:
    root = make_project()
    env = {"SKIP_AUTH": "true", "CACHE_KEY": "train", "USE_SAS": "false", "HF_TOKEN": "prepare"}
    ok = cli("run", cwd=root, env=env)
    assert ok.returncode == 0, ok.stderr
    client = tracking_client(root)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert {r.data.tags.get("dvflow.stage") for r in runs} == {None, "prepare", "train"}
    assert {r.info.run_name for r in runs} >= {"prepare", "train"}
    assert {r.data.tags["dvflow.git_dirty"] for r in runs} == {"false"}
    assert "***" not in everything_written(root)


def test_untracked_files_go_to_the_stages_that_read_them_and_secret_named_ones_nowhere(
    make_project,
) -> None:
    root = make_project()
    dvc_yaml = root / "dvc.yaml"
    dvc_yaml.write_text(
        dvc_yaml.read_text().replace(
            "      - train.py\n      - data/clean\n",
            "      - train.py\n      - data/clean\n      - config\n",
        )
    )
    (root / "config").mkdir()
    (root / "config" / "committed.yaml").write_text("lr: 1\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "train reads config/")
    (root / "config" / "settings.json").write_text(
        '{"db": "postgresql://svc:planted-untracked-url-pass@db.example.invalid/x"}\n'
    )
    (root / "config" / ".env").write_text("DB_NAME=planted-dotenv-line\n")
    (root / "config" / "secrets.json").write_text('{"name": "planted-secrets-json"}\n')
    (root / "config" / "deploy.pem").write_text("planted-pem-file\n")

    ok = cli("run", cwd=root)
    assert ok.returncode == 0, ok.stderr
    notices = [line for line in ok.stderr.splitlines() if line.startswith("warning: ")]
    assert any(
        "code.patch holds untracked files" in n and "config/settings.json" in n for n in notices
    )
    left_out = next(n for n in notices if "left out of code.patch" in n)
    for name in ("config/.env", "config/secrets.json", "config/deploy.pem"):
        assert name in left_out

    client = tracking_client(root)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    by_stage = {r.data.tags.get("dvflow.stage", "pipeline"): r for r in runs}

    def patch_of(run) -> str:  # type: ignore[no-untyped-def]
        names = [a.path for a in client.list_artifacts(run.info.run_id, "dvflow")]
        if "dvflow/code.patch" not in names:
            return ""
        dest = root.parent / "patches" / run.info.run_id
        return Path(
            client.download_artifacts(run.info.run_id, "dvflow/code.patch", str(dest))
        ).read_text()

    train, pipeline = patch_of(by_stage["train"]), patch_of(by_stage["pipeline"])
    for patch in (train, pipeline):
        assert "config/settings.json" in patch
        assert "postgresql://***@db.example.invalid/x" in patch
    # prepare reads no untracked file and the tracked tree is clean: a clean run.
    assert patch_of(by_stage["prepare"]) == ""
    assert by_stage["prepare"].data.tags["dvflow.git_dirty"] == "false"
    assert by_stage["train"].data.tags["dvflow.git_dirty"] == "true"
    written = everything_written(root)
    for planted in ("untracked-url-pass", "dotenv-line", "secrets-json", "pem-file"):
        assert f"planted-{planted}" not in written, f"{planted} reached the tracking store"


IMPORT_DVC = """\
md5: 0123456789abcdef0123456789abcdef
frozen: true
deps:
- path: words.txt
  repo:
    url: https://bot:planted-import-token@git.example.invalid/team/data.git
    rev_lock: 0123456789abcdef0123456789abcdef01234567
outs:
- md5: d41d8cd98f00b204e9800998ecf8427e
  size: 0
  hash: md5
  path: words.txt
"""


def test_a_token_in_a_committed_dvc_import_url_is_neither_printed_nor_indexed(
    make_project,
) -> None:
    root = make_project()
    (root / "data" / "words.txt.dvc").write_text(IMPORT_DVC)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "import words")
    outputs = [
        cli("index", "--rebuild", cwd=root),
        cli("lineage", "data/words.txt", cwd=root),
        cli("lineage", "data/words.txt", "--json", cwd=root),
        cli("impact", "data/words.txt", cwd=root),
    ]
    for out in outputs:
        assert out.returncode == 0, out.stderr
    assert "https://***@git.example.invalid/team/data.git" in outputs[1].stdout
    written = "\n".join(o.stdout + o.stderr for o in outputs) + "\n".join(
        path.read_bytes().decode("utf-8", "replace") for path in (root / ".dvflow").glob("index*")
    )
    assert "planted-import-token" not in written


def test_the_index_keeps_no_tracking_password(make_project, mlflow_server: str) -> None:
    root = make_project()
    planted = "planted-tracking-password"
    uri = mlflow_server.replace("http://", f"http://planted-user:{planted}@")
    env = {"DVFLOW_TRACKING_URI": uri}
    ran = cli("run", cwd=root, env=env)
    assert ran.returncode == 0, ran.stderr
    for args in (("index",), ("lineage", "data/raw.txt"), ("impact", "data/raw.txt")):
        out = cli(*args, cwd=root, env=env)
        assert out.returncode == 0, out.stderr
        assert planted not in out.stdout + out.stderr
    index_bytes = b"".join(p.read_bytes() for p in (root / ".dvflow").glob("index.sqlite*"))
    assert planted.encode() not in index_bytes
    assert b"http://***@127.0.0.1" in index_bytes  # the redacted URI is kept


def test_an_index_from_an_older_dvflow_with_a_password_in_it_is_rebuilt_without_it(
    make_project,
) -> None:
    import sqlite3

    root = make_project()
    assert cli("index", cwd=root).returncode == 0
    path = root / ".dvflow" / "index.sqlite"
    # What an older dvflow wrote: schema 4, the store's URI as given.
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value='4' WHERE key='schema'")
        db.execute(
            "INSERT OR REPLACE INTO meta VALUES('store_uri', "
            "'http://planted-user:planted-old-index-password@127.0.0.1:1')"
        )
    db.close()
    again = cli("index", "--offline", cwd=root)  # no sync that would overwrite it
    assert again.returncode == 0, again.stderr
    index_bytes = b"".join(p.read_bytes() for p in path.parent.glob("index.sqlite*"))
    assert b"planted-old-index-password" not in index_bytes
