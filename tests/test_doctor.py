"""doctor: each check, sound and broken, through the real command."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import PROJECTS, cli, dvc, free_port, git


def lines(stdout: str) -> dict[str, str]:
    found = {}
    for line in stdout.splitlines():
        parts = line.split(maxsplit=2)
        if len(parts) == 3 and parts[0] in ("pass", "warn", "FAIL"):
            found[parts[1]] = f"{parts[0]} {parts[2]}"
    return found


def test_a_fresh_project_is_sound(make_project: Callable[..., Path]) -> None:
    root = make_project("basic")
    result = cli("doctor", "-C", str(root))
    assert result.returncode == 0, result.stdout + result.stderr
    found = lines(result.stdout)
    assert set(found) == {
        "tools",
        "secrets",
        "local",
        "remote",
        "tracking",
        "spool",
        "openlineage",
        "gitignore",
        "keys",
    }
    assert found["spool"].startswith("pass")
    assert found["openlineage"] == "pass no consumer configured: events are not sent live"
    assert found["tools"].startswith("pass git ") and "dvc 3." in found["tools"]
    assert "a SQLite store" in found["tracking"]
    assert result.stdout.rstrip().endswith("setup is sound")


def test_committed_credentials_fail_and_are_not_printed(make_project: Callable[..., Path]) -> None:
    root = make_project("basic")
    planted = "planted-secret-in-dvc-config"
    config = root / ".dvc" / "config"
    config.write_text(
        config.read_text()
        + "['remote \"team\"']\n    url = s3://bucket/path\n"
        + f"    secret_access_key = {planted}\n"
    )
    result = cli("doctor", "-C", str(root))
    assert result.returncode == 1
    assert lines(result.stdout)["secrets"].startswith("FAIL")
    assert "remote team: secret_access_key" in result.stdout
    assert "rotate them" in result.stderr
    assert planted not in result.stdout + result.stderr


def test_a_stale_local_remote_section_fails_with_the_command_that_fixes_it(
    make_project: Callable[..., Path],
) -> None:
    root = make_project("basic")
    local = root / ".dvc" / "config.local"
    local.write_text(local.read_text() + "['remote \"gone\"']\n    password = x\n")
    result = cli("doctor", "-C", str(root))
    assert result.returncode == 1
    assert lines(result.stdout)["local"].startswith("FAIL")
    assert "dvc config --local --unset remote.gone" in result.stderr


def test_an_unignored_store_and_an_unreachable_server_fail(
    make_project: Callable[..., Path],
) -> None:
    root = make_project("basic")
    (root / ".gitignore").write_text("")
    git(root, "commit", "-qam", "no ignores")
    result = cli("doctor", "--tracking-uri", "http://127.0.0.1:9", "-C", str(root))
    assert result.returncode == 1
    found = lines(result.stdout)
    assert found["gitignore"].startswith("FAIL") and "/mlflow.db" in found["gitignore"]
    assert found["tracking"].startswith("FAIL") and "unreachable" in found["tracking"]


def test_no_remote_is_a_warning_with_the_command_to_add_one(
    make_project: Callable[..., Path],
) -> None:
    root = make_project("basic")
    (root / ".dvc" / "config.local").write_text("")
    result = cli("doctor", "-C", str(root))
    assert result.returncode == 0, result.stdout
    assert lines(result.stdout)["remote"].startswith("warn no default DVC remote")


def remote_line(root: Path) -> tuple[int, str, str]:
    """doctor's exit code, its ``remote`` line and everything it said."""
    result = cli("doctor", "-C", str(root))
    return result.returncode, lines(result.stdout).get("remote", ""), result.stdout + result.stderr


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_an_http_remote_nobody_answers_is_unreachable_not_a_missing_bucket(
    make_project: Callable[..., Path], scheme: str
) -> None:
    root = make_project("basic")
    url = f"{scheme}://127.0.0.1:{free_port()}/store"
    assert dvc(root, "remote", "add", "--local", "-d", "-f", "storage", url).returncode == 0
    code, remote, said = remote_line(root)
    assert code == 1, said
    assert remote.startswith(f"FAIL {url} does not answer: "), said
    assert "bucket" not in said and "Traceback" not in said
    assert "endpointurl" in said  # the hint names what to check


def test_doctor_in_a_subdir_project_reads_that_projects_dvc_config(
    tmp_path: Path, template_db: Path
) -> None:
    """``dvc init --subdir``: one Git repository, a .dvc/config per DVC project."""
    root = tmp_path / "monorepo"
    shutil.copytree(PROJECTS / "monorepo", root)
    git(root, "init", "-q")
    for sub in ("proj-a", "proj-b"):
        assert dvc(root / sub, "init", "--subdir", "-q").returncode == 0
        shutil.copy(template_db, root / sub / "mlflow.db")
    store = tmp_path / "a-store"
    store.mkdir()
    assert dvc(root / "proj-a", "remote", "add", "-d", "storage", str(store)).returncode == 0
    # proj-b's own config commits a secret; proj-a's does not.
    b_config = root / "proj-b" / ".dvc" / "config"
    b_config.write_text(
        b_config.read_text()
        + "[core]\n    remote = b\n['remote \"b\"']\n    url = s3://b-bucket/store\n"
        + "    secret_access_key = planted-b-secret\n"
    )
    git(root, "add", "-A")
    git(root, "commit", "-qm", "two DVC projects")

    a = cli("doctor", "-C", "proj-a", cwd=root)
    found = lines(a.stdout)
    assert found["remote"] == f"pass {store} is reachable", a.stdout + a.stderr
    assert found["secrets"].startswith("pass"), a.stdout
    b = cli("doctor", "-C", str(root / "proj-b"))
    found = lines(b.stdout)
    assert found["secrets"].startswith("FAIL credentials committed in .dvc/config: remote b"), (
        b.stdout
    )
    assert "planted-b-secret" not in b.stdout + b.stderr
