"""The session-wide clean-checkout check (tests/hygiene.py) fails a session that leaves files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


def _session(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    """Run a one-test session with only the hygiene plugin in a fresh git checkout."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    subprocess.run(["git", "init", "-q", str(checkout)], check=True)
    (checkout / "pyproject.toml").write_text("[tool.pytest.ini_options]\n")
    (checkout / ".gitignore").write_text("mlruns/\n")
    (checkout / "test_one.py").write_text(
        "from pathlib import Path\n\n\ndef test_one(request):\n"
        "    root = request.config.rootpath\n" + body
    )
    subprocess.run(["git", "-C", str(checkout), "add", "-A"], check=True)
    subprocess.run(
        [
            "git",
            "-C",
            str(checkout),
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "c",
        ],
        check=True,
    )
    env = {**os.environ, "PYTHONPATH": str(TESTS), "PYTEST_ADDOPTS": ""}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "hygiene", "-p", "no:cacheprovider", "-q"],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    ("body", "left"),
    [
        ("    (root / 'leftover.txt').write_text('x')\n", "leftover.txt"),
        # Ignored by git, still caught: how mlruns/ was committed once.
        (
            "    (root / 'mlruns').mkdir()\n    (root / 'mlruns' / 'meta.yaml').write_text('x')\n",
            "mlruns",
        ),
        ("    (root / 'test_one.py').write_text('changed')\n", "test_one.py"),
    ],
    ids=["new file", "ignored folder", "changed file"],
)
def test_a_session_that_leaves_a_file_in_the_checkout_fails_and_names_it(
    tmp_path: Path, body: str, left: str
) -> None:
    proc = _session(tmp_path, body)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout
    assert "checkout not clean" in proc.stdout
    assert left in proc.stdout.split("checkout not clean", 1)[1]


def test_a_session_that_writes_only_under_its_temporary_folder_passes(tmp_path: Path) -> None:
    proc = _session(tmp_path, "    assert root.is_dir()\n")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "checkout not clean" not in proc.stdout
