"""doctor: each check, sound and broken, through the real command."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from conftest import cli, git


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
    assert set(found) == {"tools", "secrets", "local", "remote", "tracking", "spool", "gitignore"}
    assert found["spool"].startswith("pass")
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
