"""The software environment a run executed in."""

from __future__ import annotations

import hashlib
import os
import platform
import re
import sys
from functools import lru_cache
from importlib import metadata

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


def stage_path() -> str:
    """PATH for stage commands: dvflow's own Python environment first.

    Like an activated virtualenv, so ``python`` in a stage command is the
    interpreter that has dvflow, MLflow and DVC even when the venv is not
    activated.
    """
    bindir = os.path.dirname(sys.executable)
    path = os.environ.get("PATH", "")
    return path if path.split(os.pathsep)[0] == bindir else bindir + os.pathsep + path
