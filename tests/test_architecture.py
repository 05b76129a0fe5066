"""The wings keep their layers (import-linter, contracts in pyproject) and no import cycle."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "dvflow"
WINGS = ("cli", "core", "export", "governance", "proof", "runs", "stores", "team", "trace", "web")

LAYERS = "A wing imports only the wings below it"
CORE = "core imports neither DVC nor MLflow"
STORES = "Only stores imports DVC and MLflow directly"
CLICK = "Only cli imports click"
WARM = "Lineage queries never import MLflow on the warm path"


def lint_imports(src: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """import-linter over the dvflow found in ``src``, with the project's contracts.

    Run in ``cwd`` with no cache, so it writes nothing into the checkout.
    """
    code = (
        "import sys\n"
        "from importlinter.cli import lint_imports\n"
        f"sys.exit(lint_imports(config_filename={str(ROOT / 'pyproject.toml')!r}, "
        "no_cache=True, no_logo=True))\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def import_cycles(package: str) -> list[tuple[str, ...]]:
    """Every import ``a -> b`` for which ``b`` leads back to ``a``, as the closed chain."""
    graph = grimp.build_graph(package, cache_dir=None)
    cycles = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                cycles.append((importer, *back))
    return cycles


def test_the_wings_keep_their_layers_and_core_imports_neither_dvc_nor_mlflow(
    tmp_path: Path,
) -> None:
    result = lint_imports(PACKAGE.parent, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for contract in (LAYERS, CORE, STORES, CLICK, WARM):
        assert f"{contract} KEPT" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("core/_yaml.py", "import mlflow", CORE),
        ("core/_git.py", "from dvflow.stores import _dvc", LAYERS),
        ("stores/_remote.py", "from dvflow.proof import _checks", LAYERS),
        ("proof/_show.py", "import dvc.repo", STORES),
        ("runs/_results.py", "import click", CLICK),
        ("trace/_walk.py", "from dvflow.stores import _tracking", WARM),
    ],
)
def test_a_forbidden_import_breaks_a_contract(
    tmp_path: Path, module: str, line: str, broken: str
) -> None:
    copy = tmp_path / "src" / "dvflow"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "_demo_project"))
    target = copy / module
    target.write_text(target.read_text() + f"\n{line}  # added by the test\n")
    result = lint_imports(copy.parent, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{broken} BROKEN" in result.stdout


def test_no_dvflow_module_imports_itself_through_others() -> None:
    assert import_cycles("dvflow") == []


def test_the_cycle_check_finds_a_cycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "roundabout"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from roundabout import b\n")
    (package / "b.py").write_text("from roundabout import c\n")
    (package / "c.py").write_text("def f():\n    from roundabout import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert ("roundabout.a", "roundabout.b", "roundabout.c", "roundabout.a") in import_cycles(
        "roundabout"
    )


@pytest.mark.parametrize("wing", WINGS)
def test_each_wing_says_what_it_owns_and_may_import(wing: str) -> None:
    text = (PACKAGE / wing / "__init__.py").read_text()
    assert text.startswith(f'"""{wing}: ')
    assert "May import:" in text


def test_the_wings_are_the_folders_of_the_package() -> None:
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert folders == set(WINGS)
