"""Two dvflow runs in one work tree: the second stops at once and changes nothing."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import DVFLOW, cli, tracking_client


def test_a_second_run_in_the_same_work_tree_is_refused_and_changes_nothing(
    make_project: Callable[..., Path],
) -> None:
    root = make_project("rebuild")
    env = {**os.environ, "DVFLOW_TEST_PICKY": "1", "DVFLOW_TEST_SLEEP": "30"}
    first = subprocess.Popen(
        [str(DVFLOW), "run", "picky", "-C", str(root)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lock = root / ".dvflow" / "run.lock"
        deadline = time.monotonic() + 60
        while not (lock.exists() and "PID" in lock.read_text()):
            assert time.monotonic() < deadline and first.poll() is None, first.communicate()
            time.sleep(0.1)
        client = tracking_client(root)
        before = len(client.search_runs([e.experiment_id for e in client.search_experiments()]))
        status_before = (root / ".gitignore").read_text(), sorted(os.listdir(root))
        second = cli("run", "-C", str(root), env={"DVFLOW_TEST_PICKY": "1"})
        assert second.returncode == 3, second.stderr
        assert f"locked by another dvflow run (PID {first.pid}, started " in second.stderr
        assert "nothing was changed" in second.stderr
        after = len(client.search_runs([e.experiment_id for e in client.search_experiments()]))
        assert after == before
        assert ((root / ".gitignore").read_text(), sorted(os.listdir(root))) == status_before
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    # The lock went with its process: the next run goes ahead.
    third = cli("run", "steady", "-C", str(root))
    assert third.returncode == 0, third.stderr


def test_a_stage_left_running_by_kill_9_keeps_the_work_tree_locked(
    make_project: Callable[..., Path],
) -> None:
    import psutil

    root = make_project("rebuild")
    env = {**os.environ, "DVFLOW_TEST_PICKY": "1", "DVFLOW_TEST_SLEEP": "120"}
    first = subprocess.Popen(
        [str(DVFLOW), "run", "picky", "-C", str(root)],
        env=env,
        # Not pipes: the orphan would hold them open.
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    # _runs_picky: a short-lived child (dvflow asks the stage's python for its
    # environment) may be a zombie by the time its command line is read.
    while not [
        c for c in psutil.Process(first.pid).children(recursive=True) if _runs_picky(c, root)
    ]:
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=60)
    # Whether the shell execs the script or waits for it depends on the
    # shell: every process of the stage must be named and stopped.
    stage = [p for p in psutil.process_iter() if _runs_picky(p, root)]
    try:
        assert stage and all(p.is_running() for p in stage)  # orphans live on, writing outputs
        second = cli("run", "picky", "-C", str(root), env={"DVFLOW_TEST_PICKY": "1"})
        assert second.returncode == 3, second.stderr
        assert "still running: PID" in second.stderr and "Traceback" not in second.stderr
        hint = next(line for line in second.stderr.splitlines() if line.startswith("hint:"))
        assert sorted(hint.split("kill ")[1].split()) == sorted(str(p.pid) for p in stage)
    finally:
        for p in stage:
            with contextlib.suppress(psutil.Error):
                p.kill()
                p.wait(timeout=30)
    third = cli("run", "picky", "-C", str(root), env={"DVFLOW_TEST_PICKY": "1"})
    assert third.returncode == 0, third.stderr
    # The killed run's own runs (the pipeline's and the stage's) are ended now.
    assert "left 2 run(s) open; ended them as KILLED" in third.stderr
    client = tracking_client(root)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert sorted(r.info.status for r in runs) == ["FINISHED", "FINISHED", "KILLED", "KILLED"]
    assert not (root / ".dvflow" / "open-runs.json").exists()


def _runs_picky(proc: Any, root: Path) -> bool:
    import psutil

    try:
        return "picky.py" in " ".join(proc.cmdline()) and proc.cwd() == str(root)
    except psutil.Error:
        return False
