"""The software environment a run executed in."""

from __future__ import annotations

import hashlib
import platform
import sys
from functools import lru_cache
from importlib import metadata

from ._record import EnvironmentInfo


@lru_cache(maxsize=1)
def installed_packages() -> tuple[str, ...]:
    """``name==version`` of every installed distribution, sorted and unique."""
    seen = {
        f"{(dist.metadata['Name'] or '').lower()}=={dist.version}"
        for dist in metadata.distributions()
        if dist.metadata["Name"]
    }
    return tuple(sorted(seen))


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
