"""Helpers shared by the benchmarks: timing child processes by wall and CPU time."""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent
# Every benchmark runs git and DVC with a fixed identity and no analytics, and
# its venv first on PATH, as if activated: stages run with the caller's
# ``python`` (as under ``dvc repro``), and the benchmarks' stages import mlflow.
ENV = {
    "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    "VIRTUAL_ENV": str(BIN.parent),
    "DVC_NO_ANALYTICS": "1",
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "b@b",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "b@b",
}


def isolated_env(home: Path) -> dict[str, str]:
    """ENV plus a HOME of the benchmark's own.

    No user's git, DVC or MLflow set-up is read, and ``dvflow init`` puts its
    default DVC remote under this HOME, not under the user's.
    """
    return {
        **ENV,
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "DVC_SITE_CACHE_DIR": str(home / "dvc-site"),
        "GIT_CONFIG_NOSYSTEM": "1",
    }


@dataclass(frozen=True)
class Timing:
    wall: float
    cpu: float


def timed(
    command: Sequence[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> Timing:
    """Run ``command``; wall seconds and the CPU seconds of it and its children."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        command,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timing(wall, cpu)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def row(label: str, *cells: str) -> str:
    return f"{label:<34}" + "".join(f"{c:>14}" for c in cells)
