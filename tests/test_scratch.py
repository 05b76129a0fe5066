"""The temporary folders of a killed dvflow are removed by the next run or sync.

``kill -9`` runs no clean-up: bench_faults.py found a killed ``dvflow sync``
leaving its download folder in TMPDIR for good. These tests leave such
folders as a killed process does (its owner file names a process that is
gone) and check which ones the next command removes.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from conftest import cli


def leftover(temp: Path, name: str, owner: str | None) -> Path:
    folder = temp / name
    (folder / "work" / "dvflow").mkdir(parents=True)
    (folder / "work" / "dvflow" / "record.json").write_text("{}")
    if owner is not None:
        (folder / ".dvflow-owner").write_text(owner)
    return folder


def gone_pid() -> int:
    """The id of a process that has ended."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_next_sync_and_run_remove_a_killed_commands_temporary_folders_only(
    make_project: Callable[..., Path], tmp_path: Path
) -> None:
    root = make_project()
    temp = tmp_path / "temp"
    temp.mkdir()
    env = {"TMPDIR": str(temp)}
    killed = leftover(temp, "dvflow-scratch-sync-abc", f"{gone_pid()}\n")
    live = leftover(temp, "dvflow-scratch-sync-live", "1\n")  # init never ends
    unmarked = leftover(temp, "dvflow-scratch-sync-mine", None)
    other = leftover(temp, "someone-elses", f"{gone_pid()}\n")
    synced = cli("sync", cwd=root, env=env)
    assert synced.returncode == 0, synced.stderr
    assert not killed.exists()
    assert live.exists() and unmarked.exists() and other.exists()
    killed_run = leftover(temp, "dvflow-scratch-artifact-xyz", f"{gone_pid()}\n")
    ran = cli("run", cwd=root, env=env)
    assert ran.returncode == 0, ran.stderr
    assert not killed_run.exists()
    assert sorted(p.name for p in temp.iterdir()) == sorted(
        ["dvflow-scratch-sync-live", "dvflow-scratch-sync-mine", "someone-elses"]
    )
