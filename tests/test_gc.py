"""dvflow gc plan|apply on real remotes: registry-aware, planned, confirmed, audited.

The history repository (tests/history_repo.py) has ``lin-model`` v1 trained
at tag v1.0 and v2 on branch ``experiment``; ``main`` moved on with plain
``dvc repro``, so HEAD no longer names v1's features or model.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import cli, dvc, git, tracking_client
from history_repo import HistoryRepo, copy

GRACE_0 = "\ngovernance:\n  grace_days: 0\n"


def remote_md5s(remote: Path) -> set[str]:
    """The md5 of every object of DVC 3's layout in a local remote (or cache) folder."""
    base = remote / "files" / "md5"
    return {f"{p.parent.name}{p.name}" for p in base.glob("*/*") if p.is_file()}


def own_remote(root: Path, remote: Path) -> None:
    """Point ``root`` at a remote folder of its own and push every commit's data to it."""
    assert dvc(root, "remote", "modify", "--local", "storage", "url", str(remote)).returncode == 0
    pushed = dvc(root, "push", "-q", "--all-commits")
    assert pushed.returncode == 0, pushed.stderr


def no_grace(root: Path) -> None:
    with (root / "dvflow.yaml").open("a") as fobj:
        fobj.write(GRACE_0)


def plan(root: Path, *args: str) -> tuple[dict, str]:  # type: ignore[type-arg]
    out = root.parent / f"plan-{len(list(root.parent.glob('plan-*.json')))}.json"
    made = cli("gc", "plan", "-C", str(root), "-o", str(out), *args)
    assert made.returncode == 0, made.stdout + made.stderr
    return json.loads(out.read_text()), str(out)


def closure(root: Path, target: str) -> set[str]:
    """Every DVC object ``dvflow lineage TARGET`` reaches (directories: and their files)."""
    graph = cli("lineage", target, "--json", "-C", str(root))
    assert graph.returncode == 0, graph.stderr
    md5s = {
        n["attrs"]["md5"]
        for n in json.loads(graph.stdout)["nodes"]
        if n["kind"] == "data" and n["attrs"].get("md5")
    }
    cache = root / ".dvc" / "cache" / "files" / "md5"
    for md5 in [m for m in md5s if m.endswith(".dir")]:
        listing = json.loads((cache / md5[:2] / md5[2:]).read_text())
        md5s |= {entry["md5"] for entry in listing}
    return md5s


@pytest.fixture
def production(history: HistoryRepo, tmp_path: Path) -> tuple[HistoryRepo, Path]:
    """The history repository with v1 (the older one) @production, pushed to its own remote."""
    repo = copy(history, tmp_path / "repo")
    remote = tmp_path / "remote"
    own_remote(repo.root, remote)
    tracking_client(repo.root).set_registered_model_alias("lin-model", "production", "1")
    no_grace(repo.root)
    git(repo.root, "commit", "-qam", "no grace period")
    return repo, remote


def test_dvc_gc_deletes_the_production_models_training_data(
    production: tuple[HistoryRepo, Path],
) -> None:
    repo, remote = production
    # What the remote holds of it (code is in Git, an import's data in its source repository).
    needed = closure(repo.root, "models:/lin-model@production") & remote_md5s(remote)
    assert len(needed) >= 3
    gone = dvc(repo.root, "gc", "-w", "-c", "-f")
    assert gone.returncode == 0, gone.stderr
    # The hazard: v1's features and model are not what HEAD names, so DVC deleted them.
    assert needed - remote_md5s(remote)


def test_gc_keeps_the_production_lineage_and_a_fresh_clone_of_the_old_commit_pulls(
    production: tuple[HistoryRepo, Path], tmp_path: Path
) -> None:
    repo, remote = production
    root = repo.root
    needed = closure(root, "models:/lin-model@production")
    before = remote_md5s(remote)
    data, plan_file = plan(root, "--workspace")
    planned = {o["md5"] for o in data["objects"] if o["where"] == "remote"}
    assert planned and not planned & needed
    assert planned <= before
    v2_model = tracking_client(root).get_model_version("lin-model", "2").tags["dvflow.model_md5"]
    assert v2_model in planned  # v2 has no alias and HEAD does not name it
    assert [(p["name"], p["version"], p["aliases"]) for p in data["protected"]] == [
        ("lin-model", "1", ["production"])
    ]
    assert data["totals"]["remote_bytes"] == sum(
        (remote / "files" / "md5" / m[:2] / m[2:]).stat().st_size for m in planned
    )

    applied = cli("gc", "apply", plan_file, "--confirm", data["plan_sha256"], "-C", str(root))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert remote_md5s(remote) == before - planned
    audits = list((root / ".dvflow" / "audit").glob("*-gc-*.json"))
    assert len(audits) == 1 and data["plan_sha256"][:12] in audits[0].name
    audit = json.loads(audits[0].read_text())
    assert audit["who"] == "Test User" and audit["plan_sha256"] == data["plan_sha256"]
    assert audit["deleted"]["remote_objects"] == len(planned)

    verified = cli("verify", "models:/lin-model@production", "-C", str(root))
    assert verified.returncode == 0, verified.stdout + verified.stderr

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(root), str(clone))
    git(clone, "checkout", "-q", "v1.0")
    added = dvc(clone, "remote", "add", "--local", "-f", "-d", "storage", str(remote))
    assert added.returncode == 0, added.stderr
    pulled = dvc(clone, "pull")
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    assert (clone / "model" / "model.bin").is_file()


def test_a_stale_plan_an_edited_plan_and_a_wrong_confirmation_are_refused(
    production: tuple[HistoryRepo, Path],
) -> None:
    repo, remote = production
    root = repo.root
    data, plan_file = plan(root)
    again, _ = plan(root)
    assert again["plan_sha256"] == data["plan_sha256"]  # deterministic
    assert data["options"]["scopes"] == ["workspace"]  # the default scope
    sha = data["plan_sha256"]

    missing = cli("gc", "apply", plan_file, "-C", str(root))
    wrong = cli("gc", "apply", plan_file, "--confirm", "0" * 64, "-C", str(root))
    for refused in (missing, wrong):
        assert refused.returncode == 31, refused.stderr
        assert refused.stderr.startswith("error: ") and "\nhint: " in refused.stderr

    edited_file = Path(plan_file).with_name("edited.json")
    edited = json.loads(Path(plan_file).read_text())
    edited["objects"] = edited["objects"][1:]
    edited_file.write_text(json.dumps(edited))
    tampered = cli("gc", "apply", str(edited_file), "--confirm", sha, "-C", str(root))
    assert tampered.returncode == 30, tampered.stderr
    assert "edited" in tampered.stderr

    # A new commit makes a planned object (v2's model, on branch experiment) needed again.
    git(root, "merge", "-q", "--no-edit", "-X", "theirs", "experiment")
    before = remote_md5s(remote)
    stale = cli("gc", "apply", plan_file, "--confirm", sha, "-C", str(root))
    assert stale.returncode == 30, stale.stdout + stale.stderr
    assert re.search(r"needed now", stale.stderr) and "Traceback" not in stale.stderr
    assert remote_md5s(remote) == before  # nothing was deleted


def test_project_keeps_what_another_project_sharing_the_remote_needs(
    make_project: Callable[..., Path], tmp_path: Path
) -> None:
    remote = tmp_path / "shared"

    olds: set[str] = set()

    def made(name: str, text: str) -> Path:
        root = make_project("basic")
        shutil.move(root, tmp_path / name)
        root = tmp_path / name
        olds.add(_raw_md5(root))  # the fixture's own data/raw.txt
        (root / "data" / "raw.txt").write_text(text)
        assert dvc(root, "add", "data/raw.txt").returncode == 0
        git(root, "commit", "-qam", "raw data")
        own_remote(root, remote)
        return root

    ours = made("ours", "ours 1\n")
    olds.add(_raw_md5(ours))
    (ours / "data" / "raw.txt").write_text("ours 2\n")
    assert dvc(ours, "add", "data/raw.txt").returncode == 0
    git(ours, "commit", "-qam", "raw data 2")
    own_remote(ours, remote)
    no_grace(ours)
    theirs = made("theirs", "theirs\n")
    theirs_md5 = _raw_md5(theirs)

    alone, _ = plan(ours)
    assert {o["md5"] for o in alone["objects"] if o["where"] == "remote"} == olds | {theirs_md5}
    shared, plan_file = plan(ours, "--project", str(theirs))
    # Their HEAD is kept; their older data is not (the scope is --workspace for both).
    assert {o["md5"] for o in shared["objects"] if o["where"] == "remote"} == olds
    assert shared["options"]["projects"] == [str(theirs.resolve())]
    applied = cli(
        "gc", "apply", plan_file, "--confirm", shared["plan_sha256"][:12], "-C", str(ours)
    )
    assert applied.returncode == 0, applied.stderr
    ours_1 = _raw_md5_at(ours, "HEAD~1")
    assert theirs_md5 in remote_md5s(remote) and ours_1 not in remote_md5s(remote)
    assert ours_1 not in remote_md5s(ours / ".dvc" / "cache")  # planned from the cache too
    status = dvc(theirs, "status", "-c")
    assert status.returncode == 0 and "missing" not in status.stdout, status.stdout


def _raw_md5(root: Path) -> str:
    return re.findall(r"md5: (\w+)", (root / "data" / "raw.txt.dvc").read_text())[0]


def _raw_md5_at(root: Path, rev: str) -> str:
    return re.findall(r"md5: (\w+)", git(root, "show", f"{rev}:data/raw.txt.dvc"))[0]


def test_errors_are_one_line_with_a_hint(make_project: Callable[..., Path], tmp_path: Path) -> None:
    root = make_project("basic")
    removed = dvc(root, "remote", "remove", "--local", "storage")  # where dvflow init put it
    assert removed.returncode == 0, removed.stderr
    none = cli("gc", "plan", "-C", str(root))
    assert none.returncode == 3, none.stdout + none.stderr
    assert "no DVC remote" in none.stderr and "hint: " in none.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    broken = cli("gc", "apply", str(bad), "--confirm", "a" * 64, "-C", str(root))
    assert broken.returncode == 3, broken.stderr
    assert broken.stderr.count("error: ") == 1 and "Traceback" not in broken.stderr


def test_the_grace_period_keeps_a_young_directorys_older_files_with_it(
    make_project: Callable[..., Path], tmp_path: Path
) -> None:
    """DVC takes a .dir object in the remote as proof its files are there: they stay together."""
    import os
    import time

    root = make_project("basic")
    remote = tmp_path / "remote"
    added = dvc(root, "remote", "add", "--local", "-f", "-d", "storage", str(remote))
    assert added.returncode == 0, added.stderr
    folder = root / "d"
    folder.mkdir()
    (folder / "a.txt").write_text("shared by both versions\n")
    (folder / "b.txt").write_text("only in the first\n")
    assert dvc(root, "add", "d").returncode == 0
    git(root, "add", "-A")
    git(root, "commit", "-qm", "d, version 1")
    assert dvc(root, "push", "-q").returncode == 0
    month_ago = time.time() - 30 * 86400
    for path in remote.rglob("*"):
        os.utime(path, (month_ago, month_ago))
    old = remote_md5s(remote)

    # A colleague pushes a second version (a.txt is already there) and commits nothing.
    (folder / "b.txt").unlink()
    (folder / "c.txt").write_text("only in the second\n")
    assert dvc(root, "add", "d").returncode == 0
    assert dvc(root, "push", "-q").returncode == 0
    young = remote_md5s(remote) - old
    git(root, "rm", "-q", "--cached", "d.dvc")
    (root / "d.dvc").unlink()
    git(root, "commit", "-qm", "no d")

    data, plan_file = plan(root, "--no-cache")
    planned = {o["md5"] for o in data["objects"]}
    a_md5 = _md5_text("shared by both versions\n")
    assert a_md5 in old and a_md5 not in planned  # kept with the young .dir that lists it
    assert _md5_text("only in the first\n") in planned
    assert not planned & young
    assert data["kept"]["in_grace_period"] == len(young) + 1
    # --grace-days 0, for one plan (dvflow.yaml unchanged): the young objects go too.
    at_once, _ = plan(root, "--no-cache", "--grace-days", "0")
    assert young <= {o["md5"] for o in at_once["objects"]}
    assert at_once["grace_days"] == 0 and at_once["kept"]["in_grace_period"] == 0

    # Between plan and apply, a third version lists b.txt again: it is in the remote, so
    # 'dvc push' does not upload it; deleting it would break that version.
    (folder / "b.txt").write_text("only in the first\n")
    assert dvc(root, "add", "d").returncode == 0
    assert dvc(root, "push", "-q").returncode == 0
    (root / "d.dvc").unlink()  # as from a colleague's clone: no pointer here
    before = remote_md5s(remote)
    stale = cli("gc", "apply", plan_file, "--confirm", data["plan_sha256"], "-C", str(root))
    assert stale.returncode == 30, stale.stdout + stale.stderr
    assert "pushed within the grace period" in stale.stderr
    assert remote_md5s(remote) == before


def _md5_text(text: str) -> str:
    import hashlib

    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()
