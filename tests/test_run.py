"""dvflow run: stage runs, statuses, links, datasets, params, metrics, patches."""

from __future__ import annotations

import json
from pathlib import Path

import dvflow
from conftest import cli, git, tracking_client
from dvflow.core._record import DIGEST_TAG, RECORD_ARTIFACT, sha256_hex


def _record(root: Path, run_id: str) -> dict:
    client = tracking_client(root)
    local = client.download_artifacts(run_id, RECORD_ARTIFACT, str(root.parent))
    return json.loads(Path(local).read_text())


def _set_param(root: Path, old: str, new: str) -> None:
    params = root / "params.yaml"
    params.write_text(params.read_text().replace(old, new))


def test_cli_run_records_parent_and_stage_runs_end_to_end(make_project) -> None:
    root = make_project()
    result = cli("run", cwd=root)
    assert result.returncode == 0, result.stderr
    assert "prepare" in result.stdout and "ran" in result.stdout

    client = tracking_client(root)
    experiment = client.get_experiment_by_name(root.name)
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("dvflow.kind") == "pipeline"]
    stages = {
        r.data.tags["dvflow.stage"]: r for r in runs if r.data.tags.get("dvflow.kind") == "stage"
    }
    assert len(parents) == 1 and set(stages) == {"prepare", "train"}
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    head = git(root, "rev-parse", "HEAD").strip()
    for run in stages.values():
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["dvflow.status"] == "ran"
        assert run.data.tags["dvflow.git_commit"] == head
        assert run.data.tags["dvflow.git_dirty"] == "false"

    train = stages["train"]
    pinned = train.data.params["dvflow.io_sha256"]  # the dvflow.io tag's sha256 (test_tamper)
    assert train.data.params == {"train.lr": "0.1", "train.epochs": "3", "dvflow.io_sha256": pinned}
    assert train.data.metrics == {
        "loss": train.data.metrics["loss"],
        "eval.acc": 0.5,
        "eval.n": 4.0,
    }
    artifacts = {a.path for a in client.list_artifacts(train.info.run_id, "plots")}
    assert artifacts == {"plots/plot.csv"}

    record = _record(root, train.info.run_id)
    assert record["schema_version"] == 1
    assert record["stage"] == {
        "name": "train",
        "cmd": "python train.py",
        "status": "ran",
        "produced_by": None,
    }
    outputs = {p["path"]: p for p in record["outputs"]}
    lock = (root / "dvc.lock").read_text()
    assert outputs["model.txt"]["md5"] in lock
    remote = outputs["model.txt"]["remote_uri"]
    md5 = outputs["model.txt"]["md5"]
    assert remote.endswith(f"/files/md5/{md5[:2]}/{md5[2:]}")
    assert (root / outputs["model.txt"]["cache_path"]).is_file()
    inputs = {p["path"]: p for p in record["inputs"]}
    assert inputs["data/clean"]["md5"].endswith(".dir") and inputs["data/clean"]["nfiles"] == 2
    assert (root / inputs["data/clean"]["cache_path"]).is_file()
    # Code lives in git, not in DVC's cache or remote: no object to point at.
    assert inputs["train.py"]["cache_path"] is None and inputs["train.py"]["remote_uri"] is None
    assert record["environment"]["mlflow"] == "3.17.2"
    assert record["mlflow"]["parent_run_id"] == parent.info.run_id

    shown = cli("show", train.info.run_id, "--json", cwd=root)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == record
    assert sha256_hex(shown.stdout.encode()) == train.data.tags[DIGEST_TAG]
    assert "intact" in shown.stderr


def test_record_digest_tag_matches_the_record_bytes(make_project) -> None:
    root = make_project()
    result = dvflow.run_pipeline(root)
    client = tracking_client(root)
    for run_id in [result.run_id, *(s.run_id for s in result.stages)]:
        local = client.download_artifacts(run_id, RECORD_ARTIFACT, str(root.parent))
        raw = Path(local).read_bytes()
        assert client.get_run(run_id).data.tags[DIGEST_TAG] == sha256_hex(raw)
    parent_record = dvflow.load_record(result.run_id, root)
    assert parent_record.kind == "pipeline"
    assert [s["name"] for s in parent_record.stages] == ["prepare", "train"]


def test_restored_stage_is_recorded_and_linked_to_producing_run(make_project) -> None:
    root = make_project()
    first = dvflow.run_pipeline(root)
    _set_param(root, "lr: 0.1", "lr: 0.2")
    second = dvflow.run_pipeline(root)
    assert [s.status for s in second.stages] == ["up-to-date", "ran"]
    _set_param(root, "lr: 0.2", "lr: 0.1")
    third = dvflow.run_pipeline(root)

    train = third.stages[1]
    assert train.status == "restored"
    assert train.produced_by == first.stages[1].run_id
    run = tracking_client(root).get_run(train.run_id)
    assert run.data.tags["dvflow.status"] == "restored"
    assert run.data.tags["dvflow.produced_by"] == first.stages[1].run_id
    assert run.info.status == "FINISHED"
    record = dvflow.load_record(train.run_id, root)
    assert record.stage is not None and record.stage["produced_by"] == first.stages[1].run_id


def test_up_to_date_stage_is_recorded_and_linked(make_project) -> None:
    root = make_project()
    first = dvflow.run_pipeline(root)
    again = dvflow.run_pipeline(root, record_noop=True)
    assert [s.status for s in again.stages] == ["up-to-date", "up-to-date"]
    assert [s.produced_by for s in again.stages] == [s.run_id for s in first.stages]


def test_run_with_target_records_only_that_stage_and_its_upstream(make_project) -> None:
    root = make_project()
    result = dvflow.run_pipeline(root, ["prepare"])
    assert [s.name for s in result.stages] == ["prepare"]
    assert not (root / "model.txt").exists()


def test_dirty_tree_records_patch_with_untracked_dependency(make_project) -> None:
    root = make_project()
    train = root / "train.py"
    train.write_text(train.read_text() + "\n# tuned by hand\n")
    (root / "helper.py").write_text("VALUE = 1\n")
    dvc_yaml = root / "dvc.yaml"
    dvc_yaml.write_text(
        dvc_yaml.read_text().replace("      - train.py\n", "      - train.py\n      - helper.py\n")
    )

    result = dvflow.run_pipeline(root)
    assert result.dirty
    client = tracking_client(root)
    stage_id = result.stages[1].run_id
    record = dvflow.load_record(stage_id, root)
    assert record.code["dirty"] is True
    patch = Path(
        client.download_artifacts(stage_id, "dvflow/code.patch", str(root.parent))
    ).read_bytes()
    assert record.code["patch_sha256"] == sha256_hex(patch)
    assert b"+# tuned by hand" in patch
    assert b"+VALUE = 1" in patch and b"helper.py" in patch
    tags = client.get_run(stage_id).data.tags
    assert tags["dvflow.git_dirty"] == "true"
    assert tags["dvflow.patch_sha256"] == sha256_hex(patch)


def test_dataset_inputs_are_native_and_searchable_by_digest(make_project) -> None:
    import mlflow.data

    from dvflow.stores._dataset import DvcDatasetSource

    root = make_project()
    result = dvflow.run_pipeline(root)
    client = tracking_client(root)
    clean = next(p for p in result.stages[0].outputs if p.path == "data/clean")
    experiment = client.get_experiment_by_name(root.name).experiment_id

    consumers = client.search_runs([experiment], filter_string=f"dataset.digest = '{clean.md5}'")
    assert [r.info.run_id for r in consumers] == [result.stages[1].run_id]

    run = client.get_run(result.stages[1].run_id)
    inputs = {d.dataset.name: d for d in run.inputs.dataset_inputs}
    assert set(inputs) == {"train.py", "data/clean"}
    dataset = inputs["data/clean"].dataset
    assert dataset.digest == clean.md5 and dataset.source_type == "dvc"
    source = mlflow.data.get_source(inputs["data/clean"])
    assert isinstance(source, DvcDatasetSource)
    assert source.md5 == clean.md5 and source.path == "data/clean"
    assert source.rev == git(root, "rev-parse", "HEAD").strip()
    assert source.uri.startswith("dvc://") and "md5=" in source.uri
    assert DvcDatasetSource._resolve(source.uri).to_dict() == source.to_dict()


def test_same_data_consumed_in_two_runs_is_found_for_both(make_project) -> None:
    # DESIGN trap 8: MLflow keeps one dataset per (experiment, name, digest);
    # the run-to-dataset links must still find every consumer.
    root = make_project()
    first = dvflow.run_pipeline(root)
    _set_param(root, "lr: 0.1", "lr: 0.3")
    second = dvflow.run_pipeline(root)
    client = tracking_client(root)
    md5 = next(p.md5 for p in first.stages[0].outputs)
    experiment = client.get_experiment_by_name(root.name).experiment_id
    found = {r.info.run_id for r in client.search_runs([experiment], f"dataset.digest = '{md5}'")}
    assert found == {first.stages[1].run_id, second.stages[1].run_id}


def test_scripts_logging_to_mlflow_land_in_their_stage_runs(make_project) -> None:
    root = make_project("tracked")
    result = dvflow.run_pipeline(root)
    client = tracking_client(root)
    by_name = {s.name: s.run_id for s in result.stages}

    hand = client.get_run(by_name["logmetric"])
    assert hand.data.metrics["hand_metric"] == 42.0
    assert hand.data.tags["script"] == "logmetric"

    auto = client.get_run(by_name["autolog"])
    assert auto.data.params.get("fit_intercept") == "True"
    assert "training_score" in auto.data.metrics
    assert auto.info.status == "FINISHED"

    experiment = client.get_experiment_by_name(root.name).experiment_id
    assert len(client.search_runs([experiment])) == 3  # the parent and two stages, no strays
