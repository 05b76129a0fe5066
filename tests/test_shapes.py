"""Pipeline shapes users have: wdir, nested dvc.yaml, uncached outputs, several metrics files."""

from __future__ import annotations

import pytest

import dvflow
from conftest import git, tracking_client


def _by_name(result: dvflow.PipelineRun) -> dict[str, dvflow.StageRun]:
    return {s.name: s for s in result.stages}


def test_wdir_paths_are_normalised_and_point_at_the_cache(make_project) -> None:
    root = make_project("shapes")
    result = _by_name(dvflow.run_pipeline(root))
    record = dvflow.load_record(result["w"].run_id, root)
    inputs = {p.path: p for p in record.inputs}
    assert set(inputs) == {"data/prep.txt", "sub/w.py"}
    prep = next(p for p in result["prep"].outputs if p.path == "data/prep.txt")
    assert inputs["data/prep.txt"].md5 == prep.md5
    assert inputs["data/prep.txt"].cache_path == prep.cache_path
    assert inputs["data/prep.txt"].cache_path and (root / prep.cache_path).is_file()
    run = tracking_client(root).get_run(result["w"].run_id)
    assert {d.dataset.name for d in run.inputs.dataset_inputs} == {"data/prep.txt", "sub/w.py"}


def test_uncached_outputs_have_no_cache_or_remote_pointer(make_project) -> None:
    root = make_project("shapes")
    result = _by_name(dvflow.run_pipeline(root))
    outputs = {p.path: p for p in result["w"].outputs}
    assert outputs["sub/w.txt"].cache_path and outputs["sub/w.txt"].remote_uri
    for path in ("sub/u.txt", "sub/train.json", "sub/test.json"):
        assert outputs[path].md5
        assert outputs[path].cache_path is None and outputs[path].remote_uri is None


def test_several_metrics_files_keep_every_value(make_project) -> None:
    root = make_project("shapes")
    result = _by_name(dvflow.run_pipeline(root))
    metrics = tracking_client(root).get_run(result["w"].run_id).data.metrics
    assert metrics == {"sub/test.json:acc": 0.71, "sub/train.json:acc": 0.99}


def test_nested_dvc_yaml_stage_with_top_level_metrics(make_project) -> None:
    root = make_project("shapes")
    result = dvflow.run_pipeline(root, ["sub/dvc.yaml:inner"])
    [inner] = result.stages
    assert inner.name == "sub/dvc.yaml:inner" and inner.status == "ran"
    assert inner.metrics == {"t": 8.0}
    assert {p.path for p in inner.outputs} == {"sub/inner.txt", "sub/im.yaml"}


def test_bind_covers_wdir_and_nested_stages(make_project) -> None:
    root = make_project("shapes")
    main = _by_name(dvflow.run_pipeline(root))
    nested = dvflow.run_pipeline(root, ["sub/dvc.yaml:inner"]).stages[0]
    git(root, "add", "-A")
    git(root, "commit", "-qm", "results")
    bound = set(dvflow.bind_commit(root).bound)
    assert {main["prep"].run_id, main["w"].run_id, nested.run_id} <= bound


def test_failed_stage_does_not_ignore_files_git_tracks(make_project) -> None:
    root = make_project("shapes")
    (root / "sub" / "w.txt").write_text("tracked by git\n")
    (root / "sub" / "w.py").write_text(
        "from pathlib import Path\nPath('w.txt').write_text('half')\nraise SystemExit(2)\n"
    )
    git(root, "add", "-f", "sub/w.txt", "sub/w.py")
    git(root, "commit", "-qm", "w.txt in git")
    with pytest.raises(dvflow.StageFailedError):
        dvflow.run_pipeline(root, ["w"])
    ignore = root / "sub" / ".gitignore"
    assert (root / "sub" / "w.txt").exists()
    assert not ignore.exists() or "/w.txt" not in ignore.read_text().splitlines()


def test_all_pipelines_runs_every_dvc_yaml(make_project) -> None:
    root = make_project("shapes")
    result = dvflow.run_pipeline(root, all_pipelines=True)
    assert {s.name for s in result.stages} == {"prep", "w", "sub/dvc.yaml:inner"}
    assert all(s.status == "ran" for s in result.stages)
    default = dvflow.run_pipeline(root)
    assert {s.name for s in default.stages} == {"prep", "w"}
