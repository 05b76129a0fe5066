"""The public API is exactly __all__, and importing dvflow stays cheap."""

from __future__ import annotations

import subprocess
import sys

import dvflow

# The wings are subpackages, so importing dvflow makes them attributes; they
# are internal (docs/architecture.md) and are the only other names allowed.
WINGS = {"cli", "core", "proof", "runs", "stores", "team", "trace"}


def test_public_names_are_exactly_all() -> None:
    public = {name for name in dir(dvflow) if not name.startswith("_")}
    public |= {"__version__"}
    assert public - WINGS == set(dvflow.__all__)
    assert public >= WINGS


def test_importing_dvflow_does_not_import_mlflow_or_dvc() -> None:
    code = (
        "import sys, dvflow, dvflow.cli._main; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mlflow', 'dvc')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
