"""dvflow gc mlflow: soft-deleted runs and logged models that back a protected version stay.

On a copy of the demo (wine-classifier v1 @production, v2 without alias), in
its real SQLite store, and against a real tracking server; the ``mlflow gc``
command dvflow prints is run as a user would run it.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from conftest import cli, tracking_client

MODEL = "wine-classifier"
MLFLOW = Path(sys.executable).with_name("mlflow")


def _copy_demo(source: Path, dest: Path) -> Path:
    """A copy whose store names its own artifacts (the store holds absolute paths)."""
    shutil.copytree(source, dest, symlinks=True)
    (dest / ".dvflow" / "index.sqlite").unlink(missing_ok=True)
    db = sqlite3.connect(dest / "mlflow.db")
    try:
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall():
            for column in [c[1] for c in db.execute(f"PRAGMA table_info({table})")]:
                db.execute(
                    f"UPDATE {table} SET {column} = replace({column}, ?, ?) "  # noqa: S608
                    f"WHERE typeof({column}) = 'text'",
                    (str(source), str(dest)),
                )
        db.commit()
    finally:
        db.close()
    return dest


@pytest.fixture
def project(demo: Path, tmp_path: Path) -> Path:
    return _copy_demo(demo, tmp_path / "demo")


def _sibling(client: Any, run_id: str, stage: str) -> str:
    """The run of ``stage`` in the same pipeline run as ``run_id``."""
    parent = client.get_run(run_id).data.tags["mlflow.parentRunId"]
    experiment = client.get_run(run_id).info.experiment_id
    runs = client.search_runs(
        [experiment], f"tags.`mlflow.parentRunId` = '{parent}' and tags.`dvflow.stage` = '{stage}'"
    )
    assert len(runs) == 1
    return str(runs[0].info.run_id)


def _model_id(version: Any) -> str:
    """The logged model a version was registered from (its ``models:/m-...`` source)."""
    assert str(version.source).startswith("models:/m-")
    return str(version.source)[len("models:/") :]


def _plan(root: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = cli("gc", "mlflow", "--json", "-C", str(root), *args, env=env)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def _ids(entities: list[dict[str, Any]]) -> set[str]:
    return {e["id"] for e in entities}


def test_runs_in_the_production_lineage_are_refused_and_gc_of_the_rest_keeps_it_verifying(
    project: Path,
) -> None:
    client = tracking_client(project)
    production = client.get_model_version_by_alias(MODEL, "production")
    other = client.get_model_version(MODEL, "2")
    train = str(production.run_id)
    prepare = _sibling(client, train, "prepare")
    pipeline = client.get_run(train).data.tags["mlflow.parentRunId"]
    unrelated = _sibling(client, str(other.run_id), "evaluate")  # downstream of v2 only
    for run_id in (train, prepare, pipeline, unrelated):
        client.delete_run(run_id)
    for version in (production, other):
        client.delete_logged_model(_model_id(version))

    plan = _plan(project)
    assert plan["protected_versions"] == [f"{MODEL} v1 @production"]
    assert _ids(plan["refused"]) == {train, prepare, pipeline, _model_id(production)}
    assert _ids(plan["deletable"]) == {unrelated, _model_id(other)}
    refused = {e["id"]: e for e in plan["refused"]}
    assert refused[train]["why"] == f"the run of {MODEL} v1 @production"
    assert refused[prepare]["why"] == f"in the lineage of {MODEL} v1 @production"
    assert refused[pipeline]["why"] == f"the pipeline run of a stage of {MODEL} v1 @production"
    assert refused[prepare]["restore"].endswith(f"mlflow runs restore --run-id {prepare}")
    assert plan["blocked"] == []
    command = plan["command"]
    assert command[command.index("--run-ids") + 1] == unrelated
    assert command[command.index("--logged-model-ids") + 1] == _model_id(other)

    text = cli("gc", "mlflow", "-C", str(project))
    assert text.returncode == 0, text.stderr
    assert f"run {prepare} (prepare): in the lineage of {MODEL} v1 @production" in text.stdout
    assert "restore: MLFLOW_TRACKING_URI=" in text.stdout
    assert plan["command_text"] in text.stdout

    # gc plan --mlflow: the DVC objects' plan, and the same judgement after it.
    both = cli("gc", "plan", "--mlflow", "--json", "-C", str(project))
    assert both.returncode == 0, both.stderr
    joined = json.loads(both.stdout)
    assert joined["kind"] == "gc" and joined["mlflow"] == plan
    text = cli("gc", "plan", "--mlflow", "-C", str(project))
    assert text.returncode == 0, text.stderr
    assert "plan_sha256" in text.stdout
    assert f"run {prepare} (prepare): in the lineage of {MODEL} v1 @production" in text.stdout
    plan_file = project / ".dvflow" / "plans" / f"gc-{joined['plan_sha256'][:12]}.json"
    sealed = json.loads(plan_file.read_text())
    assert "mlflow" not in sealed  # dvflow applies only the DVC side

    # The user runs the printed command.
    gc = subprocess.run(
        [str(MLFLOW), *command[1:]], cwd=project, capture_output=True, text=True, check=False
    )
    assert gc.returncode == 0, gc.stderr
    assert f"Run with ID {unrelated} has been permanently deleted" in gc.stdout
    verified = cli("verify", f"models:/{MODEL}@production", "-C", str(project))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    after = _plan(project)
    assert _ids(after["refused"]) == _ids(plan["refused"])
    assert after["deletable"] == [] and after["command"] is None

    # The hazard dvflow guards against: plain 'mlflow gc' takes the production run too.
    plain = subprocess.run(
        [str(MLFLOW), "gc", *command[2:6]], cwd=project, capture_output=True, text=True, check=False
    )
    assert plain.returncode == 0, plain.stderr
    broken = cli("verify", f"models:/{MODEL}@production", "-C", str(project))
    assert broken.returncode != 0


def test_protect_registered_and_the_keep_tag_refuse_an_unaliased_version(project: Path) -> None:
    client = tracking_client(project)
    v2 = client.get_model_version(MODEL, "2")
    client.delete_run(v2.run_id)

    assert _ids(_plan(project)["deletable"]) == {v2.run_id}
    registered = _plan(project, "--protect", "registered")
    assert registered["protected_versions"] == [
        f"{MODEL} v1 @production",
        f"{MODEL} v2 (registered)",
    ]
    assert _ids(registered["refused"]) == {v2.run_id}
    assert registered["command"] is None

    client.set_model_version_tag(MODEL, "2", "dvflow.keep", "audit 2026")
    kept = _plan(project)
    assert kept["refused"][0]["protected_by"] == [f"{MODEL} v2 (dvflow.keep)"]


def test_a_kind_left_out_of_the_command_blocks_it_until_the_refused_are_restored(
    project: Path,
) -> None:
    # 'mlflow gc --run-ids X' alone also hard-deletes every deleted logged model.
    client = tracking_client(project)
    production = client.get_model_version_by_alias(MODEL, "production")
    v2 = client.get_model_version(MODEL, "2")
    client.delete_run(v2.run_id)
    client.delete_logged_model(_model_id(production))

    plan = _plan(project)
    assert _ids(plan["deletable"]) == {v2.run_id}
    assert "--logged-model-ids" not in plan["command"]
    assert len(plan["blocked"]) == 1
    assert "without --logged-model-ids" in plan["blocked"][0]
    assert _model_id(production) in plan["blocked"][0]
    text = cli("gc", "mlflow", "-C", str(project)).stdout
    assert "not yet safe to run 'mlflow gc'" in text


def test_a_tracking_server_is_judged_without_printing_its_credentials(
    make_project: Any, mlflow_server: str, postgres: str
) -> None:
    from mlflow.tracking import MlflowClient

    root = make_project()
    planted = "planted-gc-tracking-password"
    uri = mlflow_server.replace("http://", f"http://planted-user:{planted}@")
    experiment = f"gc-{uuid.uuid4().hex[:8]}"
    env = {"DVFLOW_TRACKING_URI": uri, "DVFLOW_EXPERIMENT": experiment}
    ran = cli("run", cwd=root, env=env)
    assert ran.returncode == 0, ran.stderr
    client = MlflowClient(tracking_uri=mlflow_server)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    train = client.search_runs([experiment_id], "tags.`dvflow.stage` = 'train'")[0].info.run_id
    name = f"gc-model-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    version = client.create_model_version(name, f"runs:/{train}/model", run_id=train)
    client.set_registered_model_alias(name, "production", version.version)
    stray = client.create_run(experiment_id).info.run_id
    client.delete_run(train)
    client.delete_run(stray)

    plan = _plan(root, env=env)
    assert _ids(plan["refused"]) == {train}
    assert _ids(plan["deletable"]) == {stray}
    assert any("--backend-store-uri" in reason for reason in plan["blocked"])

    database = postgres.replace("postgres@", "postgres:planted-gc-db-password@")
    for args in (("--json",), ()):
        shown = cli("gc", "mlflow", "--backend-store-uri", database, *args, cwd=root, env=env)
        assert shown.returncode == 0, shown.stderr
        assert planted not in shown.stdout + shown.stderr
        assert "planted-gc-db-password" not in shown.stdout + shown.stderr
    with_db = _plan(root, "--backend-store-uri", database, env=env)
    command = with_db["command"]
    assert command[command.index("--run-ids") + 1] == stray
    assert command[command.index("--backend-store-uri") + 1].startswith("postgresql+psycopg2://")
    assert not any("--backend-store-uri" in reason for reason in with_db["blocked"])


def test_a_deleted_experiment_holding_the_production_lineage_is_refused(project: Path) -> None:
    client = tracking_client(project)
    v2 = client.get_model_version(MODEL, "2")
    experiment = client.get_run(v2.run_id).info.experiment_id
    name = client.get_experiment(experiment).name
    unrelated = _sibling(client, str(v2.run_id), "evaluate")
    client.delete_run(unrelated)
    client.delete_experiment(experiment)

    plan = _plan(project)
    assert plan["experiments"] == [{"id": experiment, "name": name, "deleted": True}]
    refused = {e["id"]: e for e in plan["refused"]}
    assert refused[experiment]["kind"] == "experiment"
    assert refused[experiment]["restore"].endswith(
        f"mlflow experiments restore --experiment-id {experiment}"
    )
    # MLflow deletes an experiment's runs with it: the lineage's are refused, the rest may go.
    production = client.get_model_version_by_alias(MODEL, "production")
    assert refused[str(production.run_id)]["kind"] == "run"
    assert unrelated in _ids(plan["deletable"])
    assert experiment not in _ids(plan["deletable"])
    # 'mlflow gc' without --experiment-ids would take the experiment and every run in it.
    assert any("without --experiment-ids" in reason for reason in plan["blocked"])
