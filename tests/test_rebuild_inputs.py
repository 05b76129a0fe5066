"""verify --rebuild re-runs a stage on the inputs it recorded, or refuses.

Fixture tests/projects/uncached: ``measure`` writes ``stats.json``
(``cache: false``, tracked by Git) and ``report`` reads it. A run that
changes ``stats.json`` records ``report`` from a commit that still holds
the old one (DESIGN trap 15).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import cli, dvc, git, stage_runs


def _run(root: Path) -> None:
    result = cli("run", "-C", str(root))
    assert result.returncode == 0, result.stderr
    pushed = dvc(root, "push", "-q")
    assert pushed.returncode == 0, pushed.stderr


@pytest.fixture
def changed_during_run(make_project: Callable[..., Path]) -> Path:
    """stats.json committed at scale 2, then rewritten by a run at scale 3 (not committed)."""
    root = make_project("uncached")
    _run(root)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "scale 2")
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("scale: 2", "scale: 3"))
    _run(root)
    return root


def test_an_input_the_run_rewrote_is_restored_as_recorded(changed_during_run: Path) -> None:
    run_id = stage_runs(changed_during_run)["report"]
    result = cli("verify", run_id, "--rebuild", "-C", str(changed_during_run))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "identical  report.txt" in result.stdout


def test_an_input_that_cannot_be_restored_stops_the_rebuild_naming_it(
    changed_during_run: Path,
) -> None:
    root = changed_during_run
    run_id = stage_runs(root)["report"]
    # DVC's run-cache keeps a copy of the cache: false output; this clone lost it,
    # and the work tree moved on.
    md5 = (
        (root / "dvc.lock").read_text().split("path: stats.json\n")[1].split("md5: ")[1].split()[0]
    )
    (root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]).unlink()
    (root / "stats.json").write_text('{"mean": 0, "n": 0}\n')
    result = cli("verify", run_id, "--rebuild", "-C", str(root))
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"cannot restore the input(s) the run read: stats.json (md5 {md5})" in result.stderr
    assert "diverged" not in result.stdout + result.stderr
    assert "seed" not in result.stdout + result.stderr
