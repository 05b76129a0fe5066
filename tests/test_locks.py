"""requirements.lock pins what running dvflow needs, requirements-dev.lock the test stack on top.

What a package needs is read from the metadata of the installed packages
(this environment is installed from both locks), so a lock that misses a
dependency, or pins one that nothing needs, fails here and not on a user's
machine.
"""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# The extras a runtime install keeps: DVC's cloud plugins (docs/team.md) and
# openlineage-python (docs/openlineage.md).
RUNTIME_EXTRAS = ("s3", "gs", "azure", "openlineage")
# Never needed to run dvflow: the test runner, the servers and emulators the
# tests start, the linters and the type checker.
TEST_STACK = {
    "pytest",
    "hypothesis",
    "moto",
    "pgserver",
    "psycopg2-binary",
    "gcp-storage-emulator",
    "jsonschema",
    "import-linter",
    "grimp",
    "ruff",
    "mypy",
    "securesystemslib",
}


def _pins(name: str) -> dict[str, str]:
    """A lock's packages (canonical name -> version); every line is a pin or a comment."""
    pins = {}
    for line in (ROOT / name).read_text().splitlines():
        if not line.strip() or line.startswith("#") or line == "-r requirements.lock":
            continue
        package, sep, version = line.partition("==")
        assert sep and version and " " not in line and ";" not in line, f"{name}: {line!r}"
        pins[canonicalize_name(package)] = version
    return pins


def _closure(roots: list[str]) -> set[str]:
    """Every installed distribution that ``roots`` need, their extras and markers honoured."""
    extras: dict[str, set[str]] = {}
    todo = [Requirement(root) for root in roots]
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in extras and set(requirement.extras) <= extras[name]:
            continue
        wanted = extras.setdefault(name, set())
        wanted.update(requirement.extras)
        for text in metadata.distribution(name).requires or []:
            needed = Requirement(text)
            if needed.marker is None or any(
                needed.marker.evaluate({"extra": extra}) for extra in wanted or {""}
            ):
                todo.append(needed)
    return set(extras)


def _runtime_roots() -> list[str]:
    project = PYPROJECT["project"]
    extras = project["optional-dependencies"]
    return [*project["dependencies"], *(r for extra in RUNTIME_EXTRAS for r in extras[extra])]


def test_every_line_of_both_locks_is_a_pin() -> None:
    runtime, dev = _pins("requirements.lock"), _pins("requirements-dev.lock")
    assert runtime and dev
    assert not set(runtime) & set(dev), "the dev lock repeats what the runtime lock pins"


def test_the_dev_lock_installs_the_runtime_lock() -> None:
    lines = (ROOT / "requirements-dev.lock").read_text().splitlines()
    assert "-r requirements.lock" in lines


def test_runtime_lock_pins_exactly_what_running_dvflow_needs() -> None:
    runtime = set(_pins("requirements.lock"))
    needed = _closure(_runtime_roots())
    assert needed - runtime == set(), "needed to run dvflow, missing from requirements.lock"
    assert runtime - needed == set(), "in requirements.lock, but running dvflow needs none of it"
    assert not runtime & TEST_STACK


def test_dev_lock_pins_the_test_stack_and_nothing_else() -> None:
    runtime, dev = set(_pins("requirements.lock")), set(_pins("requirements-dev.lock"))
    needed = _closure(_runtime_roots() + PYPROJECT["project"]["optional-dependencies"]["dev"])
    assert needed - runtime - dev == set(), "the tests need these, neither lock pins them"
    assert dev - needed == set(), "in requirements-dev.lock, but nothing needs it"
    assert dev >= TEST_STACK
