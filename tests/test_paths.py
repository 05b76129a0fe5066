"""Paths as DVC writes them: templated folders with a trailing slash, and wdir stages.

The fixture (tests/projects/templated) has ``${base.model_dir}/clf-model``
with ``model_dir: model/``, which DVC keeps as ``model//clf-model`` in
dvc.lock, and a ``wdir`` + ``matrix`` stage whose paths are relative to its
folder. Records, the gate, binding and rebuilds must all speak one
normalised, repo-relative path.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import cli, git, run_commit_push, stage_runs, tracking_client
from dvflow.core._dvcfiles import Pointer, outputs_key, pointer_from_entry, repo_path


@pytest.fixture
def templated(make_project: Callable[..., Path]) -> Path:
    """The templated project, run by dvflow, committed and pushed."""
    return run_commit_push(make_project("templated"))


def test_dvc_keeps_the_double_slash_the_fixture_is_about(templated: Path) -> None:
    lock = (templated / "dvc.lock").read_text()
    assert "path: model//clf-model" in lock and "path: ./data//features.txt" in lock


@pytest.mark.parametrize(
    ("base", "raw", "expected"),
    [
        ("", "model//clf-model", "model/clf-model"),
        ("", "./data//features.txt", "data/features.txt"),
        ("src", "../model//clf-model", "model/clf-model"),
        (".", "./x", "x"),
        ("sub", "out/", "sub/out"),
        ("", "s3://bucket/dir//x", "s3://bucket/dir//x"),
    ],
)
def test_every_path_from_a_dvc_file_is_normalised_in_one_place(
    base: str, raw: str, expected: str
) -> None:
    assert repo_path(base, raw) == expected
    assert pointer_from_entry({"path": raw, "md5": "a" * 32}, wdir=base).path == expected


def test_the_outputs_key_ignores_how_a_path_was_spelled() -> None:
    md5 = "b" * 32 + ".dir"
    assert outputs_key([Pointer("model//clf-model", md5)]) == outputs_key(
        [Pointer("model/clf-model", md5)]
    )


def test_check_passes_right_after_dvflow_run_with_templated_paths(templated: Path) -> None:
    result = cli("check", "-C", str(templated))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "pass  recorded" in result.stdout


def test_bind_finds_the_runs_of_templated_outputs(templated: Path) -> None:
    result = cli("bind", "-C", str(templated))
    assert result.returncode == 0, result.stderr
    client = tracking_client(templated)
    tags = client.get_run(stage_runs(templated)["train"]).data.tags
    assert tags["dvflow.result_commit"] == git(templated, "rev-parse", "HEAD").strip()


def test_a_templated_output_rebuilds_identical(templated: Path) -> None:
    run_id = stage_runs(templated)["train"]
    result = cli("verify", run_id, "--rebuild", "-C", str(templated))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "identical  model/clf-model" in result.stdout


def test_a_wdir_matrix_stage_rebuilds_identical(templated: Path) -> None:
    run_id = stage_runs(templated)["evaluate@north"]
    result = cli("verify", run_id, "--rebuild", "-C", str(templated))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "identical  reports/north.txt" in result.stdout


def test_a_foreach_stages_templated_own_metrics_rebuild_within_tolerance(templated: Path) -> None:
    run_id = stage_runs(templated)["score@south"]
    result = cli("verify", run_id, "--rebuild", "-C", str(templated))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if "metric " in line]
    assert len(lines) == 2, result.stdout
    assert all("within tolerance" in line for line in lines), result.stdout
    assert "rebuilt None" not in result.stdout and "identical" in result.stdout


def test_a_metric_the_rebuild_did_not_write_is_reported_missing(templated: Path) -> None:
    run_id = stage_runs(templated)["score@north"]
    env = {"DVFLOW_TEST_NO_CHARS": "1"}
    result = cli("verify", run_id, "--rebuild", "-C", str(templated), env=env)
    assert result.returncode != 0, result.stdout + result.stderr
    assert "chars: recorded 15.0, missing after the rebuild" in result.stdout
    assert "OUTSIDE" not in result.stdout and "rebuilt None" not in result.stdout
    assert "score: recorded" in result.stdout and "(within tolerance)" in result.stdout
