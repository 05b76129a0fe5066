"""The test session fails when it leaves files in the checkout.

Every test must write under its own temporary folder. At the end of the
session the checkout's new, changed and ignored paths are compared with
those at its start; caches and the environment aside, anything new fails
the session and is listed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# What a test run may leave in the checkout: caches and the environment.
CACHES = {
    ".venv",
    ".pytest_cache",
    ".hypothesis",
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
}

_BEFORE = pytest.StashKey[set[str] | None]()


def checkout_status(checkout: Path) -> set[str] | None:
    """The checkout's new, changed and ignored paths (caches left out); None outside git.

    Ignored paths count too: MLflow's ``mlruns/`` is ignored, and a test
    that leaves one in the checkout must still be caught.
    """
    proc = subprocess.run(
        ["git", "status", "--porcelain", "-z", "--ignored", "--untracked-files=all"],
        cwd=checkout,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        return None
    entries = set()
    for entry in proc.stdout.split("\0"):
        parts = Path(entry[3:].rstrip("/")).parts
        if entry and not any(p in CACHES or p.endswith(".egg-info") for p in parts):
            entries.add(entry)
    return entries


def pytest_sessionstart(session: pytest.Session) -> None:
    # Under xdist only the controller checks: workers share its checkout.
    if not hasattr(session.config, "workerinput"):
        session.config.stash[_BEFORE] = checkout_status(session.config.rootpath)


def pytest_sessionfinish(session: pytest.Session) -> None:
    before = session.config.stash.get(_BEFORE, None)
    after = checkout_status(session.config.rootpath) if before is not None else None
    if before is None or after is None or after <= before:
        return
    left = "\n".join(f"  {entry}" for entry in sorted(after - before))
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    message = (
        "the test session left files in the checkout (each test must write "
        f"only under its own temporary folder):\n{left}"
    )
    if reporter is not None:
        reporter.write("\n")
        reporter.write_sep("=", "checkout not clean", red=True)
        reporter.write_line(message)
    else:
        sys.stderr.write(message + "\n")
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
