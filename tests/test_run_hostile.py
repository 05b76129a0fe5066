"""``dvflow run`` against awkward projects: its own errors never hide the real one.

Names MLflow refuses, outputs outside the repository, killed runs, stage
names with quotes and control characters: each run ends with a final
status and one clear message.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import cli, git, tracking_client


def _runs(root: Path) -> list:  # type: ignore[type-arg]
    client = tracking_client(root)
    experiment = client.get_experiment_by_name(root.name)
    return client.search_runs([experiment.experiment_id])


def _by_stage(root: Path) -> dict:  # type: ignore[type-arg]
    return {r.data.tags.get("dvflow.stage", "pipeline"): r for r in _runs(root)}


def _add_stage(root: Path, text: str) -> None:
    with (root / "dvc.yaml").open("a", encoding="utf-8") as out:
        out.write(text)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "one more stage")


@pytest.mark.parametrize("where", ["outside", "symlinked"])
def test_dvc_refusing_an_output_is_the_error_and_the_pipeline_run_ends_failed(
    make_project, tmp_path: Path, where: str
) -> None:
    root = make_project()
    target = tmp_path / "elsewhere"
    target.mkdir()
    if where == "outside":
        out = "../elsewhere/exported.txt"
    else:
        (root / "linked").symlink_to(target)
        out = "linked/exported.txt"
    _add_stage(
        root,
        f"  export:\n    cmd: python -c \"open('{out}', 'w').write('x')\"\n"
        f"    deps:\n      - prepare.py\n    outs:\n      - {out}\n",
    )
    result = cli("run", "export", cwd=root)
    assert result.returncode == 6, result.stderr
    assert "Traceback" not in result.stderr
    assert "stage 'export' failed" in result.stderr
    assert "git check-ignore" not in result.stderr
    runs = _by_stage(root)
    assert runs["pipeline"].info.status == "FAILED"
    assert runs["pipeline"].data.tags["dvflow.status"] == "failed"
    assert runs["export"].info.status == "FAILED"
