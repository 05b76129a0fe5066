"""The machine, not the project, stops a command: exit 7, one line and its fix.

A locked store, a folder or another program's file in its place, a database
URI without host and database or without its driver, a full disk. Also:
``sync --from`` refuses a source that is not an MLflow store and leaves it
as it was; ``show`` of a malformed id is an unknown run; ``show`` says what
an intact digest proves.

The full disk is a small tmpfs mounted in a private mount namespace of the
command alone (``unshare``); where the machine allows none, those tests skip.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DVFLOW, cli, stage_runs

ENVIRONMENT_EXIT = 7
SOME_RUN_ID = "0123456789abcdef0123456789abcdef"


def _assert_clean_error(result, code: int, *fragments: str) -> None:  # type: ignore[no-untyped-def]
    """One error line, its hint, nothing else on stderr: no traceback, no MLflow log line."""
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    assert lines[1].startswith("hint: "), result.stderr
    assert "dvflow bug" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- the store's file -----------------------------------------------------------


def test_a_text_file_in_place_of_the_store_is_an_environment_problem(make_project) -> None:
    root = make_project()
    (root / "mlflow.db").write_text("not a database\n")
    for args in (("run",), ("show", SOME_RUN_ID)):
        _assert_clean_error(
            cli(*args, cwd=root), ENVIRONMENT_EXIT, "is not an SQLite database", "move it away"
        )
    assert (root / "mlflow.db").read_text() == "not a database\n"


def test_a_folder_in_place_of_the_store_stops_run_before_any_stage(make_project) -> None:
    # MLflow alone retries such a store for nearly two minutes, then fails.
    root = make_project()
    (root / "mlflow.db").unlink()
    (root / "mlflow.db").mkdir()
    _assert_clean_error(cli("run", cwd=root), ENVIRONMENT_EXIT, "is a folder", "Move that folder")
    assert not (root / "dvc.lock").exists()  # no stage ran
    assert list((root / "mlflow.db").iterdir()) == []
    _assert_clean_error(cli("show", SOME_RUN_ID, cwd=root), ENVIRONMENT_EXIT, "is a folder")


def test_a_store_locked_by_another_process_is_named_with_its_fix(make_project) -> None:
    root = make_project()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys\n"
            "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "db.execute('PRAGMA locking_mode=EXCLUSIVE')\n"
            "db.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n",
            str(root / "mlflow.db"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        result = cli("show", SOME_RUN_ID, cwd=root)
    finally:
        holder.communicate("")
    _assert_clean_error(result, ENVIRONMENT_EXIT, "locked by another process", "hint: Another")


# -- database URIs --------------------------------------------------------------


@pytest.mark.parametrize("uri", ["postgresql://", "postgresql+psycopg2://", "mysql://"])
def test_a_database_uri_without_host_or_database_is_refused_with_its_form(
    make_project, uri: str
) -> None:
    root = make_project()
    scheme = uri.partition(":")[0].partition("+")[0]
    result = cli("run", "--tracking-uri", uri, cwd=root)
    _assert_clean_error(
        result, ENVIRONMENT_EXIT, "neither a host nor a database", f"{scheme}://HOST:PORT/DATABASE"
    )
    assert not (root / "dvc.lock").exists()


@pytest.mark.skipif(
    importlib.util.find_spec("MySQLdb") is not None, reason="the MySQL driver is installed"
)
def test_a_database_uri_whose_driver_is_not_installed_names_the_driver(make_project) -> None:
    root = make_project()
    result = cli("show", SOME_RUN_ID, "--tracking-uri", "mysql://db.example/mlflow", cwd=root)
    _assert_clean_error(result, ENVIRONMENT_EXIT, "driver for mysql is not installed", "MySQLdb")


# -- a full disk ----------------------------------------------------------------


def _unshare() -> list[str] | None:
    """A command prefix that runs what follows in a private mount namespace, if allowed."""
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return None
    prefix = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-r", "-m"]
    probe = subprocess.run([*prefix, "true"], capture_output=True, check=False)
    return prefix if probe.returncode == 0 else None


# Mount a tmpfs of $1 KB on $2, copy $3 (a file or a folder) into it, fill what
# is left, then run the rest of the arguments, from the copy when it is a folder.
_ON_FULL_DISK = """
set -e
mount -t tmpfs -o size="$1"k tmpfs "$2"
cp -a "$3" "$2/"
copy="$2/$(basename "$3")"
dd if=/dev/zero of="$2/filler" bs=4096 2>/dev/null || true
shift 3
if [ -d "$copy" ]; then cd "$copy"; fi
exec "$@"
"""


def _on_full_disk(mount: Path, copied: Path, *args: str) -> subprocess.CompletedProcess[str]:
    prefix = _unshare()
    if prefix is None:
        pytest.skip("no private mount namespace here to make a full disk in")
    mount.mkdir()
    files = [copied, *copied.rglob("*")] if copied.is_dir() else [copied]
    size_kb = 2 * sum(f.lstat().st_size for f in files) // 1024 + 2048  # room to spare
    command = [str(size_kb), str(mount), str(copied), str(DVFLOW), *args]
    result = subprocess.run(
        [*prefix, "sh", "-c", _ON_FULL_DISK, "sh", *command],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if "mount:" in result.stderr and result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    return result


def test_a_full_disk_under_the_store_is_one_line_without_mlflow_tracebacks(
    make_project, tmp_path: Path
) -> None:
    root = make_project()

    def run_with_store_in(small: Path, *flags: str) -> subprocess.CompletedProcess[str]:
        store = f"sqlite:///{small / 'mlflow.db'}"
        args = (*flags, "run", "-C", str(root), "--tracking-uri", store)
        return _on_full_disk(small, root / "mlflow.db", *args)

    result = run_with_store_in(tmp_path / "small")
    _assert_clean_error(result, ENVIRONMENT_EXIT, "no space left", "Free some space")
    # -v shows what MLflow logged, and the traceback.
    verbose = run_with_store_in(tmp_path / "small-v", "-v")
    assert verbose.returncode == ENVIRONMENT_EXIT, verbose.stderr
    assert "Traceback" in verbose.stderr
    assert "ERROR mlflow" in verbose.stderr


def test_a_full_disk_under_the_project_is_an_environment_problem(
    make_project, tmp_path: Path
) -> None:
    root = make_project()
    result = _on_full_disk(tmp_path / "small", root, "run")
    _assert_clean_error(result, ENVIRONMENT_EXIT, "no space left on device", "Free some space")


# -- sync --from ----------------------------------------------------------------


def test_sync_from_refuses_a_source_that_is_not_an_mlflow_store_and_leaves_it_as_it_was(
    make_project,
) -> None:
    root = make_project()
    (root / "empty.db").touch()
    with sqlite3.connect(root / "notes.db") as db:
        db.execute("CREATE TABLE notes (text TEXT)")
        db.execute("INSERT INTO notes VALUES ('keep me')")
    db.close()
    (root / "text.db").write_text("hello\n")
    (root / "folder.db").mkdir()
    before = {name: _sha256(root / name) for name in ("empty.db", "notes.db", "text.db")}
    for source, why in (
        ("empty.db", "the file is empty"),
        ("sqlite:///notes.db", "without MLflow's tables"),
        ("text.db", "not an SQLite database"),
        ("folder.db", "is a folder"),
    ):
        result = cli("sync", "--from", source, "--tracking-uri", "sqlite:///target.db", cwd=root)
        _assert_clean_error(result, 2, "not an MLflow store", why, "left as it was")
    assert {name: _sha256(root / name) for name in before} == before
    assert list((root / "folder.db").iterdir()) == []
    assert not (root / "target.db").exists()


# -- show -----------------------------------------------------------------------


@pytest.mark.parametrize("run_id", ["a'b", "../x", "run-1", "0123"])
def test_show_of_a_malformed_run_id_is_an_unknown_run_with_the_form_of_an_id(
    make_project, run_id: str
) -> None:
    root = make_project()
    _assert_clean_error(
        cli("show", run_id, cwd=root), 5, f"no run {run_id!r}", "32 hexadecimal characters"
    )


def test_show_says_an_intact_digest_proves_integrity_not_authenticity(make_project) -> None:
    root = make_project()
    assert cli("run", cwd=root).returncode == 0
    shown = cli("show", stage_runs(root)["train"], cwd=root)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stderr.strip().splitlines()
    assert lines[-2].endswith(": intact")
    assert "not who wrote it" in lines[-1]
    assert "signed attestations" in lines[-1]


def test_git_or_dvc_failing_for_want_of_disk_space_is_an_environment_problem() -> None:
    # bench_faults.py saw 'git status' fail on a full disk and dvflow exit 3
    # (a project problem). Git's and DVC's words for it become exit 7.
    from dvflow.cli._main import _out_of_space
    from dvflow.core._exceptions import DvcError, GitError, RemoteError

    full = GitError(
        ["status", "--porcelain"],
        "fatal: sha1 file '.git/index.lock' write error. Out of diskspace",
    )
    problem = _out_of_space(full)
    assert problem is not None and problem.exit_code == ENVIRONMENT_EXIT
    assert "Out of diskspace" in problem.message and "Free some space" in (problem.hint or "")
    dvc = _out_of_space(DvcError("[Errno 28] No space left on device: '.dvc/cache/files'"))
    assert dvc is not None and dvc.exit_code == ENVIRONMENT_EXIT
    # A remote that is full is the remote's problem; other git errors stay exit 3.
    assert _out_of_space(RemoteError("s3://bucket", "error", "No space left on device")) is None
    assert _out_of_space(GitError(["status"], "fatal: not a git repository")) is None
