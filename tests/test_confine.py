"""checkout and verify --rebuild write only inside their worktree, whatever a record says.

Whoever can write to the tracking store can rewrite a record together with
its digest tag (and whoever can write to the DVC remote, a ``.dir``
listing). These tests do exactly that, on a real project, store and remote,
and check that nothing outside the worktree is touched: a canary folder
beside the project keeps its file and gains none.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import DVFLOW, cli, dvc, git, run_commit_push, stage_runs, tracking_client
from dvflow.core._exceptions import UnsafeRecordError
from dvflow.core._record import DIGEST_TAG, canonical_json, sha256_hex

# From a worktree four folders below tmp_path (checkout --into a/b/c/d, or a
# rebuild's TMPDIR t1/t2/<holder>/tree) this is tmp_path/victim.
UP = "../../../../victim"
SECRET = "planted-secret-value-4711"  # noqa: S105
IO_PIN = "dvflow.io_sha256"


@pytest.fixture
def recorded(make_project: Callable[..., Path]) -> Path:
    """The basic project (prepare -> data/clean -> train), run, committed and pushed."""
    return run_commit_push(make_project("basic"))


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    folder = tmp_path / "victim"
    folder.mkdir()
    (folder / "keep.txt").write_text("canary\n")
    return folder


def outside(tmp_path: Path) -> dict[str, bytes]:
    """Everything under tmp_path that no command here may touch: all but the project."""
    mine = {"basic", "a", "t1"}
    return {
        p.relative_to(tmp_path).as_posix(): p.read_bytes() if p.is_file() else b"<dir>"
        for p in sorted(tmp_path.rglob("*"))
        if p.relative_to(tmp_path).parts[0] not in mine
    }


def artifacts(root: Path, run_id: str) -> Path:
    uri = tracking_client(root).get_run(run_id).info.artifact_uri
    return Path(uri.removeprefix("file://"))


def forge(root: Path, run_id: str, edit: Callable[[dict[str, Any]], None]) -> None:
    """Rewrite a run's record and its digest tag, as anyone who can write to the store can.

    The run's ``dvflow.io_sha256`` param goes too, as for a run recorded before
    dvflow pinned its io tag: verify's io check then only warns, and the
    confinement of checkout and rebuild is what stands between the forged
    record and the disk (test_tamper.py shows the pin catching the forgery).
    """
    path = artifacts(root, run_id) / "dvflow" / "record.json"
    data = json.loads(path.read_bytes())
    edit(data)
    raw = canonical_json(data)
    path.write_bytes(raw)
    tracking_client(root).set_tag(run_id, DIGEST_TAG, sha256_hex(raw))
    with contextlib.closing(sqlite3.connect(root / "mlflow.db")) as db, db:
        db.execute("DELETE FROM params WHERE run_uuid = ? AND key = ?", (run_id, IO_PIN))


def pointer(data: dict[str, Any], section: str, path: str) -> dict[str, Any]:
    return next(p for p in data[section] if p["path"] == path)


def set_field(section: str, path: str, key: str, value: str) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        pointer(data, section, path)[key] = value

    return edit


def remote_folder(root: Path) -> Path:
    config = (root / ".dvc" / "config.local").read_text()
    return Path(config.split("url = ")[1].split()[0])


def worktrees(root: Path) -> int:
    return git(root, "worktree", "list").count("\n")


def rebuild_env(tmp_path: Path) -> dict[str, str]:
    temp = tmp_path / "t1" / "t2"
    temp.mkdir(parents=True, exist_ok=True)
    return {"TMPDIR": str(temp)}


def assert_refused(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "error: refusing the record of run" in result.stderr, result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert "identical" not in result.stdout


@pytest.mark.parametrize(
    "case",
    [
        ("inputs", "data/clean", False),
        ("inputs", "data/clean", True),
        ("outputs", "model.txt", False),
    ],
)
def test_checkout_refuses_a_record_path_outside_the_worktree(
    recorded: Path, victim: Path, tmp_path: Path, case: tuple[str, str, bool]
) -> None:
    section, path, absolute = case
    run_id = stage_runs(recorded)["train"]
    hostile = str(victim) if absolute else UP
    forge(recorded, run_id, set_field(section, path, "path", hostile))
    before = outside(tmp_path)
    target = tmp_path / "a" / "b" / "c" / "d"
    result = cli("checkout", run_id, "--into", str(target), "-C", str(recorded))
    assert outside(tmp_path) == before
    assert_refused(result, repr(hostile))
    assert (victim / "keep.txt").read_text() == "canary\n"
    assert not target.exists() and worktrees(recorded) == 1


def test_verify_rebuild_refuses_a_record_path_outside_its_worktree(
    recorded: Path, victim: Path, tmp_path: Path
) -> None:
    run_id = stage_runs(recorded)["train"]
    forge(recorded, run_id, set_field("inputs", "data/clean", "path", UP))
    before = outside(tmp_path)
    env = rebuild_env(tmp_path)
    result = cli("verify", run_id, "--rebuild", "-C", str(recorded), env=env)
    assert outside(tmp_path) == before
    assert_refused(result, repr(UP), "leaves the folder")
    assert not list((tmp_path / "t1" / "t2").iterdir()) and worktrees(recorded) == 1
    assert "dvflow.verify.verdict" not in tracking_client(recorded).get_run(run_id).data.tags


def test_verify_rebuild_refuses_a_dvc_project_folder_outside_its_worktree(
    recorded: Path, victim: Path, tmp_path: Path
) -> None:
    run_id = stage_runs(recorded)["train"]
    forge(recorded, run_id, lambda data: data["code"].update(dvc_root=UP))
    before = outside(tmp_path)
    result = cli("verify", run_id, "--rebuild", "-C", str(recorded), env=rebuild_env(tmp_path))
    assert outside(tmp_path) == before
    assert_refused(result, "DVC project folder", repr(UP))


def test_a_dir_listing_with_a_file_outside_its_folder_is_refused(
    recorded: Path, victim: Path, tmp_path: Path
) -> None:
    run_id = stage_runs(recorded)["train"]
    raw_md5 = (recorded / "data" / "raw.txt.dvc").read_text().split("md5: ")[1].split()[0]
    # data/clean is tree/data/clean: six folders up is tmp_path.
    escape = "../../../../../../victim/planted.txt"
    listing = json.dumps([{"md5": raw_md5, "relpath": escape}]).encode()
    md5 = hashlib.md5(listing).hexdigest() + ".dir"  # noqa: S324
    for base in (recorded / ".dvc" / "cache", remote_folder(recorded)):
        obj = base / "files" / "md5" / md5[:2] / md5[2:]
        obj.parent.mkdir(parents=True, exist_ok=True)
        obj.write_bytes(listing)
    forge(recorded, run_id, set_field("inputs", "data/clean", "md5", md5))
    before = outside(tmp_path)
    target = tmp_path / "a" / "b" / "c" / "d"
    checkout = cli("checkout", run_id, "--into", str(target), "-C", str(recorded))
    assert outside(tmp_path) == before
    assert_refused(checkout, "the .dir listing of data/clean", repr(escape))
    rebuilt = cli("verify", run_id, "--rebuild", "-C", str(recorded), env=rebuild_env(tmp_path))
    assert outside(tmp_path) == before
    assert_refused(rebuilt, "the .dir listing of data/clean", repr(escape))
    assert not (victim / "planted.txt").exists()


def test_a_record_md5_that_is_not_an_md5_is_refused(recorded: Path, tmp_path: Path) -> None:
    run_id = stage_runs(recorded)["train"]
    forge(recorded, run_id, set_field("outputs", "model.txt", "md5", "../../../../etc/passwd"))
    target = tmp_path / "a" / "b" / "c" / "d"
    result = cli("checkout", run_id, "--into", str(target), "-C", str(recorded))
    assert_refused(result, "which is not an md5")


def test_checkout_refuses_data_the_commits_dvc_yaml_does_not_declare(
    recorded: Path, tmp_path: Path
) -> None:
    run_id = stage_runs(recorded)["train"]
    forge(recorded, run_id, set_field("inputs", "data/clean", "path", "data/other"))
    target = tmp_path / "a" / "b" / "c" / "d"
    result = cli("checkout", run_id, "--into", str(target), "-C", str(recorded))
    assert_refused(result, "'data/other' as data of stage 'train'", "declares ")
    assert "data/clean" in result.stderr  # what the commit does declare, named beside it
    assert not target.exists()


@pytest.mark.parametrize("commit", ["HEAD", "--orphan=planted"])
def test_a_record_commit_that_is_not_a_commit_id_is_refused(
    recorded: Path, tmp_path: Path, commit: str
) -> None:
    run_id = stage_runs(recorded)["train"]
    forge(recorded, run_id, lambda data: data["code"].update(commit=commit))
    target = tmp_path / "a" / "b" / "c" / "d"
    result = cli("checkout", run_id, "--into", str(target), "-C", str(recorded))
    assert_refused(result, f"its commit {commit!r} is not a commit id")
    assert not target.exists() and "planted" not in git(recorded, "branch", "-a")


@pytest.fixture
def dirty(recorded: Path) -> tuple[Path, str]:
    """A run of train from a dirty work tree (params.yaml changed), pushed."""
    params = recorded / "params.yaml"
    params.write_text(params.read_text().replace("epochs: ", "epochs: 1"))
    result = cli("run", "train", "-C", str(recorded))
    assert result.returncode == 0, result.stderr
    assert dvc(recorded, "push", "-q").returncode == 0
    return recorded, stage_runs(recorded)["train"]


def other_patch(root: Path) -> bytes:
    (root / "planted.txt").write_text("from the store\n")
    git(root, "add", "-N", "planted.txt")
    patch = git(root, "diff", "--binary", "HEAD").encode()
    git(root, "reset", "-q", "planted.txt")
    (root / "planted.txt").unlink()
    return patch


def test_checkout_refuses_a_patch_that_is_not_the_one_its_record_names(
    dirty: tuple[Path, str], tmp_path: Path
) -> None:
    root, run_id = dirty
    patch_file = artifacts(root, run_id) / "dvflow" / "code.patch"
    recorded_sha = sha256_hex(patch_file.read_bytes())
    patch_file.write_bytes(other_patch(root))
    target = tmp_path / "a" / "b" / "c" / "d"
    result = cli("checkout", run_id, "--into", str(target), "-C", str(root))
    assert_refused(result, f"the record says {recorded_sha}")
    assert not target.exists() and worktrees(root) == 1


def test_a_rebuild_refuses_a_patch_that_is_not_the_one_its_record_names(
    dirty: tuple[Path, str],
) -> None:
    from dvflow.proof._rebuild import rebuild
    from dvflow.proof._show import intact_record
    from dvflow.stores._dvc import DvcProject
    from dvflow.stores._tracking import Tracker

    root, run_id = dirty
    # The quick check refuses it too; the rebuild itself must not rely on that.
    (artifacts(root, run_id) / "dvflow" / "code.patch").write_bytes(other_patch(root))
    tracker = Tracker(f"sqlite:///{root / 'mlflow.db'}")
    record = intact_record(tracker, run_id)[0]
    project = DvcProject(root)
    try:
        with pytest.raises(UnsafeRecordError, match="the record says"):
            rebuild(root, tracker, project, record)
    finally:
        project.close()
    assert worktrees(root) == 1


def test_verify_rebuild_and_checkout_say_which_patch_they_apply(
    dirty: tuple[Path, str], tmp_path: Path
) -> None:
    root, run_id = dirty
    sha = sha256_hex((artifacts(root, run_id) / "dvflow" / "code.patch").read_bytes())
    rebuilt = cli("verify", run_id, "--rebuild", "-C", str(root))
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert f"applying the recorded patch: sha256 {sha}" in rebuilt.stderr
    assert "changing params.yaml" in rebuilt.stderr
    target = tmp_path / "a" / "b" / "c" / "d"
    checkout = cli("checkout", run_id, "--into", str(target), "-C", str(root))
    assert checkout.returncode == 0, checkout.stderr
    assert f"+ its recorded patch (sha256 {sha}, " in checkout.stdout


def plant_credentials(root: Path) -> None:
    for args in (
        ("remote", "add", "--local", "other", "s3://bucket/path"),
        ("remote", "modify", "--local", "other", "secret_access_key", SECRET),
    ):
        result = dvc(root, *args)
        assert result.returncode == 0, result.stderr


def test_checkout_copies_no_credential_into_its_worktree(recorded: Path, tmp_path: Path) -> None:
    plant_credentials(recorded)
    run_id = stage_runs(recorded)["train"]
    target = tmp_path / "a" / "b" / "c" / "d"
    result = cli("checkout", run_id, "--into", str(target), "-C", str(recorded))
    assert result.returncode == 0, result.stderr
    config = (target / ".dvc" / "config.local").read_text()
    assert SECRET not in config
    assert "s3://bucket/path" in config and "[cache]" in config
    assert dvc(target, "status").returncode == 0  # a config DVC reads


def test_a_killed_rebuild_leaves_no_credential_and_the_next_one_removes_its_worktree(
    make_project: Callable[..., Path], tmp_path: Path
) -> None:
    picky = {"DVFLOW_TEST_PICKY": "1"}
    root = run_commit_push(make_project("rebuild"), env=picky)
    plant_credentials(root)
    runs = stage_runs(root)
    env = rebuild_env(tmp_path)
    temp = Path(env["TMPDIR"])
    proc = subprocess.Popen(
        [str(DVFLOW), "verify", runs["picky"], "--rebuild", "-C", str(root)],
        env={**os.environ, **env, **picky, "DVFLOW_TEST_SLEEP": "120"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        for _ in range(1200):  # until the stage runs in its worktree
            if list(temp.glob("dvflow-verify-*/tree/.dvc/config.local")):
                break
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    leftovers = list(temp.glob("dvflow-verify-*"))
    assert len(leftovers) == 1 and worktrees(root) == 2
    for file in leftovers[0].rglob("*"):
        if file.is_file() and not file.is_symlink():
            assert SECRET.encode() not in file.read_bytes(), file
    again = cli("verify", runs["steady"], "--rebuild", "-C", str(root), env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert not list(temp.iterdir()) and worktrees(root) == 1


def test_checkout_into_an_existing_file_is_a_clear_error(recorded: Path, tmp_path: Path) -> None:
    file = tmp_path / "taken.txt"
    file.write_text("mine\n")
    result = cli(
        "checkout", stage_runs(recorded)["train"], "--into", str(file), "-C", str(recorded)
    )
    assert result.returncode == 3, result.stderr
    assert "is a file" in result.stderr and "dvflow bug" not in result.stderr
    assert file.read_text() == "mine\n"


def checkout_folder(result: subprocess.CompletedProcess[str]) -> Path:
    return Path(result.stdout.split("enter it:   cd ")[1].splitlines()[0])


def test_the_next_checkout_replaces_the_half_made_worktree_of_a_killed_one(
    recorded: Path,
) -> None:
    run_id = stage_runs(recorded)["train"]
    first = cli("checkout", run_id, "-C", str(recorded))
    assert first.returncode == 0, first.stderr
    folder = checkout_folder(first)
    # What a checkout killed before it copied the data leaves: the worktree,
    # registered with Git, marked unfinished, without its data.
    admin = Path((folder / ".git").read_text().removeprefix("gitdir: ").strip())
    marker = admin / "dvflow-checkout.json"
    assert json.loads(marker.read_text()) == {"run_id": run_id, "complete": True}
    marker.write_text(json.dumps({"run_id": run_id, "complete": False}))
    (folder / "model.txt").unlink()
    again = cli("checkout", run_id, "-C", str(recorded))
    assert again.returncode == 0, again.stderr
    assert f"removed the unfinished checkout a killed one left: {folder}" in again.stdout
    assert (folder / "model.txt").read_bytes() == (recorded / "model.txt").read_bytes()
    assert worktrees(recorded) == 2


def test_a_finished_checkout_is_never_replaced_and_the_refusal_says_whose_it_is(
    recorded: Path,
) -> None:
    run_id = stage_runs(recorded)["train"]
    first = cli("checkout", run_id, "-C", str(recorded))
    folder = checkout_folder(first)
    (folder / "my-notes.txt").write_text("an edit of the user's\n")
    again = cli("checkout", run_id, "-C", str(recorded))
    assert again.returncode == 3, again.stderr
    assert f"it holds a checkout of run {run_id}" in again.stderr
    assert f"git worktree remove --force {folder}" in again.stderr
    assert (folder / "my-notes.txt").read_text() == "an edit of the user's\n"


def test_a_worktrees_dvc_config_keeps_urls_and_the_cache_and_drops_every_credential(
    tmp_path: Path,
) -> None:
    from dvflow.stores._confine import worktree_config

    local = tmp_path / ".dvc" / "config.local"
    local.parent.mkdir()
    local.write_text(
        "[core]\n    remote = storage\n"
        "['remote \"storage\"']\n    url = ../../remote\n"
        f"['remote \"web\"']\n    url = https://user:{SECRET}@host/path\n    password = {SECRET}\n"
        f"['remote \"keys\"']\n    access_key_id = {SECRET}\n"
        f"[studio]\n    token = {SECRET}\n"
    )
    text = worktree_config(local, tmp_path / "cache")
    assert SECRET not in text
    assert "remote = storage" in text and f"url = {tmp_path.parent / 'remote'}" in text
    assert "url = https://user@host/path" in text and "keys" not in text
    assert f"[cache]\n    dir = {tmp_path / 'cache'}" in text


def test_lineage_reads_no_listing_that_names_a_file_outside_its_folder(tmp_path: Path) -> None:
    from dvflow.trace._listings import from_cache, from_worktree

    cache = tmp_path / "cache"
    good = json.dumps([{"md5": "0" * 32, "relpath": "a.txt"}]).encode()
    bad = json.dumps([{"md5": "0" * 32, "relpath": "../../outside.txt"}]).encode()
    md5s = {}
    for name, listing in (("good", good), ("bad", bad)):
        md5 = hashlib.md5(listing).hexdigest() + ".dir"  # noqa: S324
        obj = cache / "files" / "md5" / md5[:2] / md5[2:]
        obj.parent.mkdir(parents=True, exist_ok=True)
        obj.write_bytes(listing)
        md5s[name] = md5
    assert from_cache([cache], md5s["good"]) == {"a.txt": "0" * 32}
    assert from_cache([cache], md5s["bad"]) is None
    # An 'md5' from history or the store that is a path: never read.
    planted = tmp_path / "pl" / "anted"
    planted.parent.mkdir()
    planted.write_bytes(good)
    (tmp_path / "cache2").mkdir()
    assert from_cache([tmp_path / "cache2"], "..pl/anted") is None  # tmp_path/pl/anted
    (tmp_path / "project").mkdir()
    assert from_worktree(tmp_path / "project", "../cache", md5s["good"]) is None
