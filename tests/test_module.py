"""The public API is exactly __all__, and importing dvflow stays cheap."""

from __future__ import annotations

import subprocess
import sys

import pytest

import dvflow

# The wings are subpackages, listed by dir(dvflow) and imported on first use; they
# are internal (docs/architecture.md) and are the only other names allowed.
WINGS = {"cli", "core", "export", "governance", "proof", "runs", "stores", "team", "trace", "web"}


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


# What `import dvflow` and `dvflow --help` must not load: the wings below cli
# (imported by the commands that use them, when they run), DVC, MLflow, YAML.
HEAVY = (
    "dvflow.core._record",
    "dvflow.stores",
    "dvflow.trace",
    "dvflow.proof",
    "dvflow._registry",
    "dvflow.runs",
    "dvflow.team",
    "dvflow.cli._demo",
    "dvflow.cli._views",
    "dvc",
    "mlflow",
    "yaml",
    "git",
)


def _loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    probe = f"{code}\nimport sys\nprint('modules:', ' '.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    return set(out.rsplit("modules:", 1)[1].split())


def _heavy(modules: set[str]) -> set[str]:
    return {m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)}


def test_import_dvflow_loads_no_wing() -> None:
    loaded = _loaded_after("import dvflow")
    assert "dvflow.runs._pipeline" not in loaded
    assert {m for m in loaded if m.startswith("dvflow.")} == set()
    assert _heavy(loaded) == set()


def test_help_loads_only_the_command_line() -> None:
    """`dvflow --help` and every `dvflow COMMAND --help` import no wing below cli."""
    code = (
        "from dvflow.cli._main import main\n"
        "from dvflow.cli._cli import cli\n"
        "for args in [['--help'], *([name, '--help'] for name in cli.commands)]:\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code == 0, (args, exc.code)\n"
    )
    loaded = _loaded_after(code)
    assert _heavy(loaded) == set()
    assert "dvflow.runs._pipeline" not in loaded


def test_a_command_imports_what_it_uses_when_it_runs() -> None:
    loaded = _loaded_after(
        "from dvflow.cli._main import main\n"
        "try:\n"
        "    main(['diff', 'a', 'b', '-C', '/nonexistent-dvflow-folder'])\n"
        "except SystemExit:\n"
        "    pass\n"
    )
    assert "dvflow.proof._diff" in loaded
    assert "dvflow.runs._pipeline" not in loaded


def test_every_public_name_resolves_from_its_home() -> None:
    import importlib

    for name in dvflow.__all__:
        value = getattr(dvflow, name)
        home = importlib.import_module(dvflow._HOMES[name])
        assert value is getattr(home, name), name


def test_from_dvflow_import_every_name_in_a_fresh_interpreter() -> None:
    code = (
        f"from dvflow import {', '.join(dvflow.__all__)}\n"
        "import dvflow\n"
        "assert [getattr(dvflow, n) for n in dvflow.__all__] == [globals()[n] for n in dvflow.__all__]\n"
        "assert issubclass(DvflowError, Exception) and callable(run_pipeline)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_type_checkers_see_the_same_names_as_the_run_time() -> None:
    """The ``if TYPE_CHECKING:`` imports name every public name at its real home."""
    import ast
    from pathlib import Path

    tree = ast.parse(Path(dvflow.__file__).read_text())
    block = next(
        node
        for node in tree.body
        if isinstance(node, ast.If)
        and isinstance(node.test, ast.Name)
        and node.test.id == "TYPE_CHECKING"
    )
    static = {
        alias.asname or alias.name: f"dvflow.{node.module}"
        for node in block.body
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module
        for alias in node.names
    }
    assert static == dvflow._HOMES
    assert set(static) == set(dvflow.__all__)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match=r"^module 'dvflow' has no attribute 'veirfy'$"):
        dvflow.veirfy  # noqa: B018
    with pytest.raises(ImportError, match=r"cannot import name 'veirfy' from 'dvflow'"):
        from dvflow import veirfy  # noqa: F401
    assert not hasattr(dvflow, "_nothing_here")
