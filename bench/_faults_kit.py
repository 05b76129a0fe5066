"""What bench_faults.py reads and waits on: command outcomes, the server's runs, locks."""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Outcome:
    code: int
    out: str
    err: str


def ids_printed(stdout: str) -> list[str]:
    """The pipeline run's id and its stage runs' ids, as ``dvflow run`` prints them."""
    pipeline = re.findall(r"^pipeline run ([0-9a-f]{32})", stdout, re.MULTILINE)
    stages = re.findall(r"^  \S+\s+\S+\s+run ([0-9a-f]{32})", stdout, re.MULTILINE)
    return pipeline + stages


def sync_mapping(stdout: str) -> dict[str, str]:
    """Spool id -> server id, from ``dvflow sync``'s output (a completed run keeps its id)."""
    mapping = dict(re.findall(r"^  run ([0-9a-f]{32}) -> ([0-9a-f]{32})$", stdout, re.MULTILINE))
    for run_id in re.findall(r"^  run ([0-9a-f]{32}): completed$", stdout, re.MULTILINE):
        mapping[run_id] = run_id
    return mapping


class Store:
    """What the server holds, read through MLflow's REST API (no MLflow import here)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def call(self, endpoint: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(  # noqa: S310 - loopback
            f"{self.url}/api/2.0/mlflow/{endpoint}",
            data=data,
            headers={"Content-Type": "application/json"},
            method="POST" if data is not None else "GET",
        )
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - loopback
            result: dict[str, Any] = json.loads(answer.read() or b"{}")
            return result

    def runs(self) -> dict[str, dict[str, Any]]:
        """Every run of every experiment, by id."""
        experiments = self.call("experiments/search", {"max_results": 1000})
        ids = [e["experiment_id"] for e in experiments.get("experiments", [])]
        found: dict[str, dict[str, Any]] = {}
        token = None
        while True:
            query: dict[str, Any] = {"experiment_ids": ids, "max_results": 1000}
            if token:
                query["page_token"] = token
            page = self.call("runs/search", query)
            found |= {r["info"]["run_id"]: r for r in page.get("runs", [])}
            token = page.get("next_page_token")
            if not token:
                return found

    def status(self, run_id: str) -> str:
        try:
            run = self.call(f"runs/get?run_id={run_id}")
        except urllib.error.HTTPError:
            return "absent"
        return str(run["run"]["info"]["status"])


def tags(run: dict[str, Any]) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run.get("data", {}).get("tags", [])}


class Trigger:
    """When a fault is due: ``delay`` seconds after the start or after a stage started."""

    def __init__(self, anchor: str, delay: float, stderr: Path) -> None:
        self.anchor, self.delay, self.stderr = anchor, delay, stderr
        self.since = time.monotonic() if anchor == "start" else None

    def due(self) -> bool:
        if self.since is None and f"] {self.anchor}: starting" in self.stderr.read_text():
            self.since = time.monotonic()
        return self.since is not None and time.monotonic() - self.since >= self.delay


def stage_at(stderr: str, fault: str) -> str:
    """The stage the run was in when the fault came, from its progress lines."""
    if fault == "server" and "local spool" in stderr:
        stderr = stderr[: stderr.index("local spool")]
    started = re.findall(r"^\[\d+/\d+\] (\S+): starting", stderr, re.MULTILINE)
    ended = re.findall(r"^\[\d+/\d+\] (\S+): (?!starting)", stderr, re.MULTILINE)
    if not started:
        return "before any stage"
    if len(ended) >= len(started):
        return f"after stage {ended[-1]}"
    return f"in stage {started[-1]}"


def wait_for_group(pgid: int, timeout: float = 60) -> bool:
    """Wait until the process group is gone; whether any process was left in it."""
    deadline = time.monotonic() + timeout
    left = False
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return left
        left = True
        time.sleep(0.1)
    return left


def lock_held(path: Path) -> bool:
    """Whether another ``dvflow run`` would be refused: the lock's flock is taken."""
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def last_line(text: str) -> str:
    """The ``error:`` line of a dvflow command's stderr, else its last line."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or ["(no output)"])[-1][:300]


class Outside:
    """What lies outside the project: a neighbour folder, the temp folder, the base.

    ``changes()`` names every file that appeared, vanished or changed there
    since the last ``snapshot()``: a run, sync, rebuild or checkout, even
    killed, must not touch a neighbour's files nor leave debris in TMPDIR.
    """

    def __init__(self, base: Path, inside: set[str]) -> None:
        self.base, self.inside = base, inside
        self.neighbour, self.tmp = base / "neighbour", base / "tmp"
        self.tmp.mkdir()
        (self.neighbour / "notes").mkdir(parents=True)
        (self.neighbour / "notes" / "keep.txt").write_text("a neighbour's file\n")
        (self.neighbour / "model.bin").write_bytes(b"\0" * 1024)
        self.before: dict[str, tuple[int, int]] = {}

    def listing(self) -> dict[str, tuple[int, int]]:
        found: dict[str, tuple[int, int]] = {}
        for entry in self.base.iterdir():
            if entry.name in self.inside:
                continue
            paths = [entry, *entry.rglob("*")] if entry.is_dir() else [entry]
            for path in paths:
                info = path.lstat()
                # A folder counts by being there: its mtime moves with any temp file.
                seen = (0, 0) if path.is_dir() else (info.st_size, info.st_mtime_ns)
                found[str(path.relative_to(self.base))] = seen
        return found

    def snapshot(self) -> None:
        self.before = self.listing()

    def changes(self) -> list[str]:
        after = self.listing()
        changed = [p for p in after if p not in self.before or after[p] != self.before[p]]
        return sorted(changed + [p for p in self.before if p not in after])


class Disk:
    """A small tmpfs holding the project and its remote; ``fill()`` leaves no byte free."""

    def __init__(self, folder: Path, size_mb: int = 512) -> None:
        self.folder = folder
        folder.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(folder)],
            capture_output=True,
            text=True,
            check=False,
        )
        self.mounted = done.returncode == 0
        self.why = done.stderr.strip()
        self.filler = folder / "filler"

    def fill(self) -> None:
        stat = os.statvfs(self.folder)
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.posix_fallocate(fd, 0, stat.f_bavail * stat.f_frsize)
        except OSError:
            pass  # whatever was free is taken
        finally:
            os.close(fd)

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def unmount(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.folder)], check=False)
