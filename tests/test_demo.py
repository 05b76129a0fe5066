"""dvflow demo, through the real console script, as a new user runs it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from conftest import cli, git, tracking_client


@pytest.mark.slow
def test_demo_runs_three_times_and_shows_every_stage_status(tmp_path: Path) -> None:
    # As in the README: run from the top of another repository (a dvflow clone),
    # as .venv/bin/dvflow with the venv not activated: the 'python' on PATH, if
    # any, has neither MLflow nor scikit-learn.
    git(tmp_path, "init", "-q")
    bindir = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != bindir)
    result = cli("demo", cwd=tmp_path, env={"PATH": path})
    assert result.returncode == 0, result.stderr
    root = tmp_path / "dvflow-demo"
    assert "run 1: prepare ran, train ran, evaluate ran" in result.stdout
    assert "run 2: prepare up-to-date, train ran, evaluate ran" in result.stdout
    assert "run 3: prepare up-to-date, train restored, evaluate restored" in result.stdout
    assert "mlflow ui --backend-store-uri sqlite:///mlflow.db" in result.stdout
    assert "[2/3] train: ran" in result.stderr  # progress is visible

    client = tracking_client(root)
    experiment = client.get_experiment_by_name("dvflow-demo").experiment_id
    runs = client.search_runs([experiment], order_by=["attributes.start_time ASC"])
    kinds = [r.data.tags["dvflow.kind"] for r in runs]
    assert kinds.count("pipeline") == 3 and kinds.count("stage") == 9
    assert all(r.info.status == "FINISHED" for r in runs)

    trains = [r for r in runs if r.data.tags.get("dvflow.stage") == "train"]
    assert [t.data.tags["dvflow.status"] for t in trains] == ["ran", "ran", "restored"]
    assert trains[2].data.tags["dvflow.produced_by"] == trains[0].info.run_id
    assert "train_accuracy" in trains[0].data.metrics  # logged by the unchanged script
    assert trains[0].data.params["train.n_estimators"] == "40"
    assert trains[1].data.params["train.n_estimators"] == "80"
    models = client.search_logged_models(experiment_ids=[experiment])
    assert {m.source_run_id for m in models} == {trains[0].info.run_id, trains[1].info.run_id}

    evaluate = next(r for r in runs if r.data.tags.get("dvflow.stage") == "evaluate")
    assert 0.5 < evaluate.data.metrics["test.accuracy"] <= 1.0
    raw = (root / "data" / "raw.csv.dvc").read_text().split("md5: ")[1].split()[0]
    prepare = next(r for r in runs if r.data.tags.get("dvflow.stage") == "prepare")
    consumers = client.search_runs([experiment], f"dataset.digest = '{raw}'")
    assert prepare.info.run_id in {r.info.run_id for r in consumers}
    assert git(root, "status", "--porcelain") == ""
    assert git(root, "rev-parse", "--show-toplevel").strip() == str(root)

    # The registry part: two versions, v1 promoted, its lineage printed and rebuilt.
    versions = client.search_model_versions("name = 'wine-classifier'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    assert client.get_registered_model("wine-classifier").aliases == {"production": 1}
    assert "wine-classifier v1 promoted to @production; its lineage:" in result.stdout
    assert "dvc add data/raw.csv.dvc" in result.stdout
    assert "data/raw.csv ends up in: wine-classifier v1, wine-classifier v2" in result.stdout
    assert (
        result.stdout.split("verify --rebuild models:/wine-classifier@production:")[1]
        .split("project:")[0]
        .strip()
        .endswith("identical")
    )
    verified = client.get_run(trains[0].info.run_id).data.tags  # made v1
    assert verified["dvflow.verify.verdict"] == "identical"
    assert git(root, "worktree", "list").count("\n") == 1
    impact = cli("impact", "data/raw.csv", "-C", str(root))
    assert "model versions: wine-classifier v1 @production, wine-classifier v2" in impact.stdout
    diff = cli("diff", trains[0].info.run_id, trains[1].info.run_id, "-C", str(root))
    assert diff.returncode == 0, diff.stderr
    assert "param    train.n_estimators  40 -> 80" in diff.stdout
    assert "data     models/model.pkl  " in diff.stdout
    assert "B's uncommitted patch changes: params.yaml" in diff.stdout


@pytest.mark.slow
def test_demo_refuses_a_folder_that_is_not_its_own(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    result = cli("demo", str(tmp_path))
    assert result.returncode == 3
    assert "is not empty" in result.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine"
