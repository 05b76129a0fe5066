"""The software environment a run executed in."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from typing import Any

from ._record import EnvironmentInfo


@lru_cache(maxsize=1)
def installed_packages() -> tuple[str, ...]:
    """``name==version`` of every installed distribution, sorted and unique.

    Read from the ``name-version.dist-info`` folder names on ``sys.path``:
    parsing every METADATA file instead costs a third of a second.
    """
    seen: set[str] = set()
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.endswith(".dist-info"):
                dist, _, version = name.removesuffix(".dist-info").partition("-")
                if version:
                    seen.add(f"{_canonical(dist)}=={version}")
    return tuple(sorted(seen))


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def environment_info() -> EnvironmentInfo:
    packages = "\n".join(installed_packages()).encode()
    return {
        "python": platform.python_version(),
        "platform": f"{sys.platform}-{platform.machine()}",
        "dvc": _version("dvc"),
        "mlflow": _version("mlflow"),
        "packages_sha256": hashlib.sha256(packages).hexdigest(),
    }


# Run by the stage's interpreter, so it must read on any Python 3 (no
# walrus, no f-strings). The '' entry of ``-c`` is the working directory,
# which a stage script does not have on its path.
_PROBE = """
import json, os, platform, sys
seen = set()
for entry in sys.path:
    if not entry:
        continue
    try:
        names = os.listdir(entry)
    except OSError:
        continue
    for name in names:
        if name.endswith(".dist-info"):
            dist, _, version = name[: -len(".dist-info")].partition("-")
            if version:
                seen.add((dist, version))
try:
    from importlib.util import find_spec
    has_mlflow = find_spec("mlflow") is not None
except Exception:
    has_mlflow = False
json.dump({"python": platform.python_version(),
           "platform": sys.platform + "-" + platform.machine(),
           "packages": sorted(seen), "has_mlflow": has_mlflow}, sys.stdout)
"""
_PROBE_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class StageEnvironment:
    """The interpreter that ``python`` in a stage command runs, as a record describes it."""

    info: EnvironmentInfo
    packages: tuple[str, ...]
    has_mlflow: bool
    # False when no ``python`` was on the stage's PATH: dvflow's own is described.
    found: bool = True
    executable: str = ""

    def notice(self) -> str | None:
        """What to tell the user once per run about the stages' interpreter, if anything."""
        if not self.found:
            return (
                "no working 'python' on the stages' PATH: the records describe dvflow's "
                "own Python environment"
            )
        if not self.has_mlflow:
            return (
                f"the stages' python ({self.executable}) has no MLflow: stages run and are "
                "recorded as usual; only a script's own 'import mlflow' needs it there"
            )
        return None


class StageInterpreter:
    """Ask the stages' ``python`` about itself, once per run, in the background.

    Started before the run does its other set-up, so the probe's start-up
    overlaps with opening the tracking store instead of adding to it.
    """

    def __init__(self, search_path: str) -> None:
        found = shutil.which("python", path=search_path)
        self.found = found is not None
        self.executable = found or sys.executable
        self._proc: subprocess.Popen[str] | None = None
        self._result: StageEnvironment | None = None
        with contextlib.suppress(OSError):
            self._proc = subprocess.Popen(
                [self.executable, "-c", _PROBE],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                env={**os.environ, "PATH": search_path},
            )

    def environment(self) -> StageEnvironment:
        if self._result is None:
            self._result = self._read()
        return self._result

    def _read(self) -> StageEnvironment:
        data: dict[str, Any] = {}
        if self._proc is not None:
            try:
                out, _ = self._proc.communicate(timeout=_PROBE_TIMEOUT_S)
                data = json.loads(out) if self._proc.returncode == 0 else {}
            except (subprocess.TimeoutExpired, ValueError):
                self._proc.kill()
                self._proc.communicate()
        if not isinstance(data, dict) or "packages" not in data:
            # An interpreter that cannot answer (Python 2, a broken venv):
            # describe dvflow's own rather than nothing, and say it has no MLflow.
            own = environment_info()
            return StageEnvironment(own, installed_packages(), False, False, sys.executable)
        return _from_probe(data, found=self.found, executable=self.executable)


def _from_probe(data: dict[str, Any], *, found: bool, executable: str) -> StageEnvironment:
    packages = tuple(
        sorted({f"{_canonical(str(name))}=={version}" for name, version in data["packages"]})
    )
    versions = dict(p.split("==", 1) for p in packages)
    info: EnvironmentInfo = {
        "python": str(data.get("python", "")),
        "platform": str(data.get("platform", "")),
        # DVC runs in dvflow's process: its version is the one that ran the stages.
        "dvc": _version("dvc"),
        "mlflow": versions.get("mlflow") or versions.get("mlflow-skinny") or "not installed",
        "packages_sha256": hashlib.sha256("\n".join(packages).encode()).hexdigest(),
    }
    return StageEnvironment(info, packages, bool(data.get("has_mlflow")), found, executable)
