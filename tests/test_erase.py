"""Erasure plans and their application, on real remotes (a local folder; moto S3, versioned).

The project is tests/pii_repo.py's: raw data with e-mail addresses, an
unsanitised chain to pii-model v1 @production and v2, and a sanitised one to
clean-model v1 @production, pushed to a local remote.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import pii_repo
from conftest import _isolate, cli, dvc, tracking_client
from pii_repo import PiiRepo
from servers import S3Bucket
from test_cloud import PLANTED, s3_remote
from test_pii import lock_outs, raw_md5, runs_by_stage


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory, session_home: Path, template_db: Path
) -> PiiRepo:
    with pytest.MonkeyPatch.context() as monkeypatch:
        _isolate(monkeypatch, session_home)
        return pii_repo.build(tmp_path_factory.mktemp("erase"), template_db)


@pytest.fixture
def repo(built: PiiRepo, tmp_path: Path) -> PiiRepo:
    copied = pii_repo.copy(built, tmp_path / "repo")
    marked = cli("pii", "mark", "data/raw.csv", "--basis", "contract", "-C", str(copied.root))
    assert marked.returncode == 0, marked.stderr
    return copied


def listing(root: Path, md5: str) -> dict[str, str]:
    cached = root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    return {e["relpath"]: e["md5"] for e in json.loads(cached.read_text())}


def expected_md5s(repo: PiiRepo) -> set[str]:
    """The raw data, the prepared folder and its files, both model files: nothing clean."""
    first, second = lock_outs(repo.root, repo.first), lock_outs(repo.root, repo.second)
    folder = first["data/prepared"]
    assert folder == second["data/prepared"]  # the same prepared data fed both versions
    return {
        raw_md5(repo.root),
        folder,
        *listing(repo.root, folder).values(),
        first["model.txt"],
        second["model.txt"],
    }


def make_plan(root: Path, out: Path) -> tuple[dict, str]:  # type: ignore[type-arg]
    result = cli(
        "erase", "plan", "data/raw.csv", "--request-id", "REQ-7", "-o", str(out), "-C", str(root)
    )
    assert result.returncode == 0, result.stderr
    return json.loads(out.read_text()), result.stdout + result.stderr


def test_the_plan_lists_exactly_the_tainted_objects_runs_and_model_versions(
    repo: PiiRepo, tmp_path: Path
) -> None:
    root = repo.root
    plan, said = make_plan(root, tmp_path / "plan.json")
    expected = expected_md5s(repo)
    objects = {(o["where"], o["md5"]) for o in plan["objects"]}
    assert objects == {(w, m) for w in ("remote", "cache") for m in expected}
    assert all(o["path"] == f"files/md5/{o['md5'][:2]}/{o['md5'][2:]}" for o in plan["objects"])
    runs = runs_by_stage(root)
    assert {r["run_id"] for r in plan["mlflow"]["runs"]} == runs["prepare"] | runs["train"]
    assert plan["retrain"] == [
        {
            "model": "pii-model",
            "version": "1",
            "aliases": ["production"],
            "stages": ["prepare", "train"],
        },
        {"model": "pii-model", "version": "2", "aliases": [], "stages": ["prepare", "train"]},
    ]
    assert plan["protected"] == ["pii-model/1"]
    assert {c["commit"] for c in plan["commits"]} >= {repo.first, repo.second}
    assert plan["remote"]["versioned"] is False
    assert "other clones' DVC caches" in said and "history is not rewritten" in said
    assert f"--confirm {plan['plan_sha256']} --acknowledge pii-model/1" in said
    again, _ = make_plan(root, tmp_path / "again.json")
    assert again["plan_sha256"] == plan["plan_sha256"]


def test_apply_refuses_a_wrong_confirm_an_edited_plan_and_unacknowledged_versions(
    repo: PiiRepo, tmp_path: Path
) -> None:
    root = repo.root
    plan, _ = make_plan(root, tmp_path / "plan.json")
    remote = pii_repo.remote_dir(root)
    before = sorted(p.name for p in remote.rglob("*") if p.is_file())
    wrong = cli(
        "erase",
        "apply",
        str(tmp_path / "plan.json"),
        "--confirm",
        "0" * 64,
        "--acknowledge",
        "pii-model/1",
        "-C",
        str(root),
    )
    assert wrong.returncode == 31 and "hint: " in wrong.stderr
    unacknowledged = cli(
        "erase",
        "apply",
        str(tmp_path / "plan.json"),
        "--confirm",
        plan["plan_sha256"],
        "-C",
        str(root),
    )
    assert unacknowledged.returncode == 32, unacknowledged.stderr
    assert "pii-model/1" in unacknowledged.stderr
    edited = dict(plan, objects=plan["objects"][:1])
    (tmp_path / "edited.json").write_text(json.dumps(edited))
    refused = cli(
        "erase",
        "apply",
        str(tmp_path / "edited.json"),
        "--confirm",
        plan["plan_sha256"],
        "--acknowledge",
        "pii-model/1",
        "-C",
        str(root),
    )
    assert refused.returncode == 30, refused.stderr
    assert sorted(p.name for p in remote.rglob("*") if p.is_file()) == before  # nothing went


def test_after_apply_the_data_is_gone_verify_says_erased_and_check_fails(
    repo: PiiRepo, tmp_path: Path
) -> None:
    root = repo.root
    plan, _ = make_plan(root, tmp_path / "plan.json")
    expected = expected_md5s(repo)
    runs = runs_by_stage(root)
    remote = pii_repo.remote_dir(root)
    applied = cli(
        "erase",
        "apply",
        str(tmp_path / "plan.json"),
        "--confirm",
        plan["plan_sha256"],
        "--acknowledge",
        "pii-model/1",
        "-C",
        str(root),
    )
    assert applied.returncode == 0, applied.stderr
    left = {p.parent.name + p.name for p in remote.rglob("*") if p.is_file()}
    assert not left & expected
    clean = lock_outs(root)
    assert {clean["data/clean.csv"], clean["clean_model.txt"]} <= left
    assert not (root / "data" / "raw.csv").exists() and (root / "data" / "clean.csv").exists()
    client = tracking_client(root)
    for run_id in runs["prepare"] | runs["train"]:
        assert client.get_run(run_id).info.lifecycle_stage == "deleted"
    for run_id in runs["sanitise"] | runs["train_clean"]:
        assert client.get_run(run_id).info.lifecycle_stage == "active"
    governance = (root / "dvflow.governance.yaml").read_text()
    assert all(md5 in governance for md5 in expected) and "REQ-7" in governance
    assert "example.invalid" not in governance and "Ann" not in governance
    (audit,) = (root / ".dvflow" / "audit").iterdir()
    record = json.loads(audit.read_text())
    assert record["request_id"] == "REQ-7" and record["plan_sha256"] == plan["plan_sha256"]
    assert {o["md5"] for o in record["deleted"]} == expected

    erased = cli("verify", "models:/pii-model@production", "-C", str(root))
    assert erased.returncode == 9, erased.stderr
    assert "is erased" in erased.stderr and "REQ-7" in erased.stderr
    assert "missing" not in erased.stderr and "Traceback" not in erased.stderr
    kept = cli("verify", "models:/clean-model@production", "-C", str(root))
    assert kept.returncode == 0, kept.stdout + kept.stderr
    check = cli("check", "-C", str(root))
    assert check.returncode == 15, check.stdout + check.stderr
    assert "FAIL  pii       pii-model v1 @production is tainted" in check.stdout


def test_check_passes_the_pii_line_when_only_the_sanitised_version_is_aliased(
    repo: PiiRepo,
) -> None:
    root = repo.root
    failing = cli("check", "-C", str(root))
    assert failing.returncode == 15
    moved = cli("promote", "pii-model", "2", "--alias", "production", "-C", str(root))
    assert moved.returncode == 0, moved.stderr
    still = cli("check", "-C", str(root))
    assert "pii-model v2 @production is tainted" in still.stdout
    client = tracking_client(root)
    client.delete_registered_model_alias("pii-model", "production")
    passing = cli("check", "-C", str(root))
    assert "pass  pii       no alias points at a version tainted by 1 mark(s)" in passing.stdout


def test_a_versioned_s3_remote_is_warned_about_and_no_credential_is_written(
    repo: PiiRepo, tmp_path: Path, s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = repo.root
    s3_bucket.enable_versioning()
    s3_remote(root, s3_bucket, monkeypatch)
    pushed = dvc(root, "push", "-q", "--all-commits")
    assert pushed.returncode == 0, pushed.stderr
    plan, said = make_plan(root, tmp_path / "plan.json")
    assert plan["remote"]["versioned"] is True
    assert "until a lifecycle rule expires them" in said
    in_bucket = {
        k.removeprefix("store/files/md5/").replace("/", "") for k in s3_bucket.object_keys()
    }
    expected = expected_md5s(repo) & in_bucket
    assert len(expected) >= 5
    assert {o["md5"] for o in plan["objects"] if o["where"] == "remote"} == expected
    applied = cli(
        "erase",
        "apply",
        str(tmp_path / "plan.json"),
        "--confirm",
        plan["plan_sha256"],
        "--acknowledge",
        "pii-model/1",
        "-C",
        str(root),
    )
    assert applied.returncode == 0, applied.stderr
    keys = s3_bucket.object_keys()
    assert not any(k.endswith(m[2:]) for k in keys for m in expected)
    # The bucket keeps them as noncurrent versions: what the warning says.
    versions = s3_bucket.client.list_object_versions(Bucket=s3_bucket.name).get("Versions", [])
    assert any(v["Key"].endswith(raw_md5(root)[2:]) for v in versions)
    written = [
        (tmp_path / "plan.json").read_text(),
        (root / "dvflow.governance.yaml").read_text(),
        *(p.read_text() for p in (root / ".dvflow" / "audit").iterdir()),
        said,
        applied.stdout + applied.stderr,
    ]
    for text in written:
        for secret in PLANTED.values():
            assert secret not in text


def test_erasing_a_file_inside_a_tracked_folder_keeps_the_folder_s_other_files(
    repo: PiiRepo, tmp_path: Path
) -> None:
    root = repo.root
    folder = lock_outs(root)["data/prepared"]
    files = listing(root, folder)
    result = cli(
        "erase",
        "plan",
        "data/prepared/rows.csv",
        "--request-id",
        "REQ-8",
        "-o",
        str(tmp_path / "plan.json"),
        "-C",
        str(root),
    )
    assert result.returncode == 0, result.stderr
    plan = json.loads((tmp_path / "plan.json").read_text())
    first, second = lock_outs(root, repo.first), lock_outs(root, repo.second)
    assert {o["md5"] for o in plan["objects"]} == {
        files["rows.csv"],
        folder,
        first["model.txt"],
        second["model.txt"],
    }
    assert plan["protected"] == ["pii-model/1"]
