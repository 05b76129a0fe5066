"""dvflow storage: the bytes actually stored (remote and cache), what they are kept for, cost.

And gc on S3 (moto), GCS and Azure emulators: planned and applied by key,
or by version id on a version-aware S3 remote, with no credential in plans, audit records or output.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import cli, dvc, git
from servers import AZURITE_KEY, Bucket, S3Bucket
from test_cloud import CLOUDS, PLANTED, s3_remote

GB = 2**30


def walk(folder: Path) -> tuple[int, int]:
    """(files, bytes) under ``folder``."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def settings(root: Path, text: str) -> None:
    with (root / "dvflow.yaml").open("a") as fobj:
        fobj.write("\n" + text)


def run_twice(root: Path, *run_args: str) -> None:
    """Two runs (prepare.factor 2, then 5), each committed: two versions of every output."""
    for factor in ("2", "5"):
        params = root / "params.yaml"
        params.write_text(re.sub(r"factor: \d+", f"factor: {factor}", params.read_text()))
        ran = cli("run", "-C", str(root), *run_args)
        assert ran.returncode == 0, ran.stderr
        git(root, "add", "-A")
        git(root, "commit", "-qm", f"factor {factor}")


def storage(root: Path, *args: str) -> dict:  # type: ignore[type-arg]
    shown = cli("storage", "--json", "-C", str(root), *args)
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)  # type: ignore[no-any-return]


def test_storage_totals_are_the_bytes_in_the_remote_and_cache_and_cost_bytes_times_price(
    make_project: Callable[..., Path], tmp_path: Path
) -> None:
    root = make_project("basic")
    remote = tmp_path / "remote"
    added = dvc(root, "remote", "add", "--local", "-f", "-d", "storage", str(remote))
    assert added.returncode == 0, added.stderr
    settings(root, "governance:\n  prices:\n    local: 0.5\n")
    git(root, "commit", "-qam", "a price for local disks")
    run_twice(root, "--push")
    # An object no commit names: pushed, then its pointer thrown away.
    (root / "stray.txt").write_text("nobody needs this\n")
    assert dvc(root, "add", "stray.txt").returncode == 0
    assert dvc(root, "push", "-q", "stray.txt").returncode == 0
    (root / "stray.txt.dvc").unlink()

    report = storage(root, "--commits", "2")
    totals = report["remote_totals"]
    assert (totals["objects"], totals["bytes"]) == walk(remote)
    cache = report["cache_totals"]
    assert (cache["objects"], cache["bytes"]) == walk(root / ".dvc" / "cache" / "files" / "md5")
    assert report["usd_per_month"] == round(totals["bytes"] / GB * 0.5, 6)
    assert report["price"] == {"scheme": "local", "source": "dvflow.yaml", "usd_per_gb_month": 0.5}

    kept = report["kept_for"]
    assert sum(k["objects"] for k in kept.values()) == totals["dvc_objects"]
    assert sum(k["bytes"] for k in kept.values()) == totals["dvc_bytes"]
    assert kept["head"]["objects"] and kept["history"]["objects"]
    assert kept["nothing"]["objects"] == 1  # stray.txt
    assert kept["model"]["objects"] == 0  # no model version is protected

    paths = {p["path"]: p for p in report["paths"]}
    versions = [v for v in report["versions"] if v["path"] == "data/clean"]
    assert paths["data/clean"]["versions"] == len(versions) == 2
    # Per path an object counts once, however many versions share it.
    assert paths["data/clean"]["bytes"] <= sum(v["bytes"] for v in versions)
    assert paths["model.txt"]["bytes"] == sum(
        v["bytes"] for v in report["versions"] if v["path"] == "model.txt"
    )
    growth = report["growth"]
    assert [g["commit"] for g in growth] == git(root, "log", "-2", "--format=%H").split()[::-1]
    assert growth[-1]["added_bytes"] > 0

    text = cli("storage", "-C", str(root))
    assert text.returncode == 0, text.stderr
    assert "data/clean" in text.stdout and "kept for" in text.stdout
    # A version whose object the remote lacks says so, not only "0 B".
    md5 = report["versions"][0]["md5"]
    (remote / "files" / "md5" / md5[:2] / md5[2:]).unlink()
    text = cli("storage", "-C", str(root))
    line = next(x for x in text.stdout.splitlines() if f"@{md5[:12]}" in x)
    assert "not in the remote" in line, text.stdout


@pytest.mark.parametrize("cloud", sorted(CLOUDS))
def test_storage_and_gc_on_a_cloud_match_the_bucket_and_leak_no_credential(
    cloud: str,
    make_project: Callable[..., Path],
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    fixture, configure = CLOUDS[cloud]
    bucket: Bucket = request.getfixturevalue(fixture)
    root = make_project("basic")
    configure(root, bucket, monkeypatch)
    settings(root, "governance:\n  grace_days: 0\n")
    git(root, "commit", "-qm", "cloud remote", "--", ".dvc/config", "dvflow.yaml")
    run_twice(root, "--push")
    assert dvc(root, "push", "-q").returncode == 0  # data/raw.txt too

    shown = cli("storage", "--json", "-C", str(root))
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    before = set(bucket.object_keys())
    assert report["remote_totals"]["objects"] == len(before)
    if isinstance(bucket, S3Bucket):
        pages = bucket.client.get_paginator("list_objects_v2").paginate(Bucket=bucket.name)
        stored = sum(o["Size"] for page in pages for o in page.get("Contents", []))
        assert report["remote_totals"]["bytes"] == stored
        assert report["usd_per_month"] == round(stored / GB * 0.023, 6)

    plan_file = tmp_path / "plan.json"
    made = cli("gc", "plan", "-C", str(root), "-o", str(plan_file))
    assert made.returncode == 0, made.stderr
    plan = json.loads(plan_file.read_text())
    planned = {f"store/{o['path']}" for o in plan["objects"] if o["where"] == "remote"}
    assert planned and planned < before
    assert plan["remote"]["url"] == f"{cloud}://{bucket.name}/store"
    applied = cli("gc", "apply", str(plan_file), "--confirm", plan["plan_sha256"], "-C", str(root))
    assert applied.returncode == 0, applied.stderr
    assert set(bucket.object_keys()) == before - planned
    status = dvc(root, "status", "-c")
    assert status.returncode == 0 and "deleted" not in status.stdout, status.stdout

    audit = next((root / ".dvflow" / "audit").glob("*.json")).read_text()
    said = "".join(r.stdout + r.stderr for r in (shown, made, applied))
    for name, secret in [*PLANTED.items(), ("azurite_key", AZURITE_KEY)]:
        for where, text in (("plan", plan_file.read_text()), ("audit", audit), ("output", said)):
            assert secret not in text, f"{name} reached the {where}"


def test_gc_on_a_version_aware_remote_deletes_the_old_version_by_its_id(
    make_project: Callable[..., Path],
    s3_bucket: S3Bucket,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    s3_bucket.enable_versioning()
    root = make_project("basic", commit=False)
    s3_remote(root, s3_bucket, monkeypatch, version_aware="true")
    settings(root, "governance:\n  grace_days: 0\n")
    assert dvc(root, "push", "-q").returncode == 0
    git(root, "add", "-A")
    git(root, "commit", "-qm", "data, version 1")
    (root / "data" / "raw.txt").write_text("a second version\n")
    assert dvc(root, "add", "-q", "data/raw.txt").returncode == 0
    assert dvc(root, "push", "-q").returncode == 0
    git(root, "commit", "-qam", "data, version 2")

    def versions() -> dict[str, bool]:
        found = s3_bucket.client.list_object_versions(
            Bucket=s3_bucket.name, Prefix="store/data/raw.txt"
        )
        return {v["VersionId"]: v["IsLatest"] for v in found.get("Versions", [])}

    old = re.findall(r"version_id: (\S+)", git(root, "show", "HEAD~1:data/raw.txt.dvc"))[0]
    new = re.findall(r"version_id: (\S+)", (root / "data" / "raw.txt.dvc").read_text())[0]
    assert versions() == {old: False, new: True}

    report = storage(root)
    assert report["remote_totals"]["noncurrent_versions"] == 1
    plan_file = tmp_path / "plan.json"
    made = cli("gc", "plan", "--no-cache", "-C", str(root), "-o", str(plan_file))
    assert made.returncode == 0, made.stderr
    plan = json.loads(plan_file.read_text())
    assert plan["remote"]["versioned"] is True
    assert [(o["path"], o["version_id"]) for o in plan["objects"]] == [("data/raw.txt", old)]
    applied = cli("gc", "apply", str(plan_file), "--confirm", plan["plan_sha256"], "-C", str(root))
    assert applied.returncode == 0, applied.stderr
    assert versions() == {new: True}


def test_the_object_layout_prices_and_plan_digest_in_isolation(tmp_path: Path) -> None:
    from dvflow.core._exceptions import ConfirmationError, PlanStaleError
    from dvflow.governance._plan import confirm, read_plan, seal, write_plan
    from dvflow.governance._prices import price_for
    from dvflow.stores._objects import legacy_md5_of, md5_of, object_path

    md5 = "ab" + "c" * 30
    assert md5_of(object_path(md5)) == md5
    assert md5_of(object_path(md5 + ".dir")) == md5 + ".dir"
    assert md5_of(f"ab/{'c' * 30}") is None and legacy_md5_of(f"ab/{'c' * 30}") == md5
    assert md5_of("runs/ab/cd") is None and md5_of("files/md5/ab/short") is None

    assert price_for("s3", {}).usd_per_gb_month == 0.023
    assert price_for("s3", {"s3": 0.0125}).monthly(GB * 2) == 0.025
    assert price_for("ssh", {}).monthly(GB) is None

    objects = [
        {"md5": m, "path": object_path(m), "size": 1, "version_id": None, "where": w}
        for m, w in ((md5, "remote"), ("00" + "1" * 30, "remote"), (md5, "cache"))
    ]
    fields = {"kind": "gc", "format": 1, "project": ".", "remote": {}, "totals": {}}
    one = seal({**fields, "objects": objects})
    two = seal({**fields, "objects": objects[::-1]})
    assert one == two  # sorted, so the same digest whatever the order found
    assert [o["where"] for o in one["objects"]] == ["cache", "remote", "remote"]
    path = write_plan(one, tmp_path / "plan.json")
    assert read_plan(path, "gc") == one
    confirm(one, path, one["plan_sha256"][:12])
    with pytest.raises(ConfirmationError):
        confirm(one, path, one["plan_sha256"][:11])
    path.write_text(path.read_text().replace('"size": 1', '"size": 2', 1))
    with pytest.raises(PlanStaleError):
        read_plan(path, "gc")


def test_growth_counts_only_bytes_no_earlier_commit_named() -> None:
    from dvflow.governance._keep import References
    from dvflow.governance._storage import _growth

    # HEAD's line, newest first (as read_references gives it): the window is the
    # last three commits; the fourth, older one, is only what came before.
    refs = References(
        project=".",
        recent=[
            ("revert", 4, {"a", "b"}),  # back to the model of "first"
            ("second", 3, {"a", "c"}),
            ("first", 2, {"a", "b"}),
            ("before", 1, {"a"}),
        ],
    )
    sizes = {"a": 100, "b": 10, "c": 1}
    rows = _growth(refs, lambda _md5: None, sizes, 3)
    assert [(r["commit"], r["bytes"], r["added_bytes"]) for r in rows] == [
        ("first", 110, 10),
        ("second", 101, 1),
        ("revert", 110, 0),
    ]
