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
from pathlib import Path
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
           "packages": sorted(seen), "has_mlflow": has_mlflow,
           "paths": [entry for entry in sys.path if entry]}, sys.stdout)
"""
_PROBE_TIMEOUT_S = 30.0
# In the project's state folder: the probe's answers, per interpreter.
INTERPRETERS_FILE = "interpreters.json"


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
    overlaps with opening the tracking store instead of adding to it. With a
    ``cache`` file the answer is kept per interpreter and reused, without a
    probe, while none of the folders on its ``sys.path`` (nor the
    interpreter) changed: installing, upgrading or removing a package
    changes its folder's time.
    """

    def __init__(self, search_path: str, cache: Path | None = None) -> None:
        found = shutil.which("python", path=search_path)
        self.found = found is not None
        self.executable = found or sys.executable
        self._proc: subprocess.Popen[str] | None = None
        self._result: StageEnvironment | None = None
        self._cache = _ProbeCache(cache, self.executable) if cache is not None else None
        if self._cache is not None and (known := self._cache.load()) is not None:
            self._result = _from_probe(known, found=self.found, executable=self.executable)
            return
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
        if self._cache is not None:
            self._cache.save(data)
        return _from_probe(data, found=self.found, executable=self.executable)


class _ProbeCache:
    """One interpreter's probe answer in a JSON file, valid while its folders are unchanged.

    Keyed by the interpreter's path and the variables that change its
    ``sys.path``; each entry keeps the time of the interpreter and of every
    folder on that path. A cache that cannot be read or written is no cache.
    """

    def __init__(self, path: Path, executable: str) -> None:
        self.path = path
        env = [os.environ.get(k, "") for k in ("PYTHONPATH", "PYTHONHOME", "PYTHONNOUSERSITE")]
        key = "\0".join([executable, *env, os.path.expanduser("~")])
        self.key = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()
        self.executable = executable

    def _stamps(self, paths: list[str]) -> dict[str, int]:
        stamps = {}
        for entry in [os.path.realpath(self.executable), *paths]:
            try:
                stamps[entry] = os.stat(entry).st_mtime_ns
            except OSError:
                stamps[entry] = -1
        return stamps

    def _read(self) -> dict[str, Any]:
        try:
            found = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return found if isinstance(found, dict) else {}

    def load(self) -> dict[str, Any] | None:
        entry = self._read().get(self.key)
        if not isinstance(entry, dict) or not isinstance(entry.get("data"), dict):
            return None
        data: dict[str, Any] = entry["data"]
        paths = data.get("paths")
        if not isinstance(paths, list) or entry.get("stamps") != self._stamps(paths):
            return None
        return data

    def save(self, data: dict[str, Any]) -> None:
        paths = data.get("paths")
        if not isinstance(paths, list):
            return
        known = self._read()
        known[self.key] = {"data": data, "stamps": self._stamps([str(p) for p in paths])}
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(known, sort_keys=True), encoding="utf-8")
            os.replace(tmp, self.path)


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
