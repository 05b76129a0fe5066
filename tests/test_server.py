"""dvflow against a real `mlflow server` on PostgreSQL, on 127.0.0.1 (a team's shared store)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import cli, free_port, git, predict_with


def test_two_clones_recording_to_one_server_see_each_others_runs(
    make_project: Callable[..., Path], mlflow_server: str, tmp_path: Path
) -> None:
    origin = make_project("rebuild")
    clones = []
    for name in ("alice", "bob"):
        clone = tmp_path / name
        git(tmp_path, "clone", "-q", str(origin), str(clone))
        assert cli("init", str(clone)).returncode == 0
        clones.append(clone)
    alice, bob = clones
    env = {"DVFLOW_TRACKING_URI": mlflow_server, "DVFLOW_TEST_PICKY": "1"}
    ran = cli("run", "steady", "-C", str(alice), env=env)
    assert ran.returncode == 0, ran.stderr
    assert f"store: {mlflow_server}" in ran.stdout
    stage_run = re.search(r"steady\s+ran\s+run ([0-9a-f]{32})", ran.stdout)
    assert stage_run, ran.stdout
    shown = cli("show", stage_run[1], "--json", "-C", str(alice), env=env)
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    run_id = record["mlflow"]["run_id"]
    code = next(p for p in record["inputs"] if p["path"] == "steady.py")

    # Bob never ran it: his index reads Alice's run from the server.
    seen = cli("lineage", run_id, "--json", "-C", str(bob), env=env)
    assert seen.returncode == 0, seen.stderr
    nodes = {n["id"]: n for n in json.loads(seen.stdout)["nodes"]}
    assert nodes[f"run:{run_id}"]["attrs"]["status"] == "ran"
    impact = cli("impact", code["md5"], "--json", "-C", str(bob), env=env)
    assert impact.returncode == 0, impact.stderr
    assert f"run:{run_id}" in {n["id"] for n in json.loads(impact.stdout)["nodes"]}


def test_eight_runs_at_once_in_eight_clones_stay_apart(
    make_project: Callable[..., Path], mlflow_server: str, tmp_path: Path
) -> None:
    import subprocess

    from mlflow.tracking import MlflowClient

    from conftest import DVFLOW

    origin = make_project("rebuild")
    clones = []
    for i in range(8):
        clone = tmp_path / f"clone{i}"
        git(tmp_path, "clone", "-q", str(origin), str(clone))
        assert cli("init", str(clone)).returncode == 0
        params = clone / "params.yaml"
        params.write_text(params.read_text().replace("n: 3", f"n: {10 + i}"))
        clones.append(clone)
    env = {**os.environ, "DVFLOW_TRACKING_URI": mlflow_server}
    procs = [
        subprocess.Popen(
            [str(DVFLOW), "run", "steady", "-C", str(clone)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for clone in clones
    ]
    results = [(proc, *proc.communicate(timeout=300)) for proc in procs]
    for proc, _, err in results:
        assert proc.returncode == 0, err
    client = MlflowClient(tracking_uri=mlflow_server)
    for i, ((_, out, _), clone) in enumerate(zip(results, clones, strict=True)):
        parent_id = re.search(r"pipeline run ([0-9a-f]{32})", out)
        assert parent_id, out
        children = client.search_runs(
            [e.experiment_id for e in client.search_experiments()],
            f"tags.`mlflow.parentRunId` = '{parent_id[1]}'",
        )
        assert [c.data.tags["dvflow.stage"] for c in children] == ["steady"]
        child = children[0]
        assert child.data.params["steady.n"] == str(10 + i)  # its own clone's params
        assert child.info.status == "FINISHED"
        lock_md5 = (clone / "dvc.lock").read_text().split("md5: ")[-1].split()[0]
        outputs = json.loads(child.data.tags["dvflow.io"])["out"]
        assert outputs == [["steady.txt", lock_md5]]


def test_a_model_the_stage_logged_is_registered_on_the_server_and_loads_from_it(
    make_project: Callable[..., Path], mlflow_server: str
) -> None:
    root = make_project("logged")
    ran = cli("run", "-C", str(root), env={"DVFLOW_TRACKING_URI": mlflow_server})
    assert ran.returncode == 0, ran.stderr
    from mlflow.tracking import MlflowClient

    (version,) = MlflowClient(mlflow_server).search_model_versions("name = 'logged-model'")
    assert version.source.startswith("models:/m-")  # not replaced by a DVC pointer
    assert "7" in predict_with(mlflow_server, f"models:/logged-model/{version.version}")


def laptop(make_project: Callable[..., Path], experiment: str) -> Path:
    """A project with two pipelines in its own mlflow.db, an alias, and a deleted run."""
    from mlflow.tracking import MlflowClient

    root = make_project("spool")
    # Its own model and experiment names: the server is shared by the session.
    dvc_yaml = root / "dvc.yaml"
    dvc_yaml.write_text(dvc_yaml.read_text().replace("spool-model:", "laptop-model:"))
    for repeat in ("3", "4", "5"):  # prepare is up to date after the first time
        params = root / "params.yaml"
        params.write_text(re.sub(r"repeat: \d+", f"repeat: {repeat}", params.read_text()))
        ran = cli("run", "-C", str(root), env={"DVFLOW_EXPERIMENT": experiment})
        assert ran.returncode == 0, ran.stderr
    store = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    store.set_registered_model_alias("laptop-model", "champion", "2")
    # The last pipeline's runs go to the bin, as in MLflow's UI: they stay behind.
    last = store.search_runs(
        [store.get_experiment_by_name(experiment).experiment_id],
        "tags.`dvflow.kind` = 'pipeline'",
        order_by=["attributes.start_time DESC"],
    )[0]
    for run in store.search_runs([last.info.experiment_id]):
        if last.info.run_id in (run.info.run_id, run.data.tags.get("mlflow.parentRunId")):
            store.delete_run(run.info.run_id)
    return root


def active_runs(uri: str) -> list[Any]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


def test_a_laptops_runs_move_to_the_team_server_with_sync_from(
    make_project: Callable[..., Path], mlflow_server: str
) -> None:
    from mlflow.tracking import MlflowClient

    root = laptop(make_project, "laptop-move")
    laptop_uri = f"sqlite:///{root / 'mlflow.db'}"
    moved = cli(
        "sync", "--from", "sqlite:///mlflow.db", "--tracking-uri", mlflow_server, "-C", str(root)
    )
    assert moved.returncode == 0, moved.stderr
    mapping = dict(re.findall(r"run ([0-9a-f]{32}) -> ([0-9a-f]{32})", moved.stdout))
    assert set(mapping) == {r.info.run_id for r in active_runs(laptop_uri)}
    assert f"synced {len(mapping)} run(s)" in moved.stdout
    assert (root / "mlflow.db").is_file()  # the laptop's store stays

    team = MlflowClient(mlflow_server)
    champion = team.get_model_version_by_alias("laptop-model", "champion")
    local = MlflowClient(laptop_uri).get_model_version("laptop-model", "2")
    assert champion.run_id == mapping[local.run_id]
    for old, new in mapping.items():
        shown = cli("show", old, "--tracking-uri", mlflow_server, "-C", str(root))
        assert shown.returncode == 0 and "intact" in shown.stderr, shown.stderr
        assert f"as run {new}" in shown.stderr
    graph = cli(
        "lineage",
        "models:/laptop-model@champion",
        "--json",
        "--tracking-uri",
        mlflow_server,
        "-C",
        str(root),
    )
    assert graph.returncode == 0, graph.stderr
    runs = {n["attrs"].get("run_id") for n in json.loads(graph.stdout)["nodes"]}
    assert champion.run_id in runs and not runs & set(mapping)

    again = cli(
        "sync", "--from", "sqlite:///mlflow.db", "--tracking-uri", mlflow_server, "-C", str(root)
    )
    assert again.returncode == 0, again.stderr
    assert f"synced 0 run(s) to {mlflow_server} ({len(mapping)} copied before)" in again.stdout
    experiment = team.get_experiment_by_name("laptop-move")
    assert len(team.search_runs([experiment.experiment_id])) == len(mapping)


def test_sync_from_copies_to_each_store_it_is_given_and_refuses_what_is_not_a_store(
    make_project: Callable[..., Path], tmp_path: Path
) -> None:
    root = laptop(make_project, "laptop-two")
    laptop_uri = f"sqlite:///{root / 'mlflow.db'}"
    wanted = {r.info.run_id for r in active_runs(laptop_uri)}
    for name in ("first", "second"):  # a second store is not 'copied before'
        target = f"sqlite:///{tmp_path / name}.db"
        moved = cli("sync", "--from", "mlflow.db", "--tracking-uri", target, "-C", str(root))
        assert moved.returncode == 0, moved.stderr
        assert f"synced {len(wanted)} run(s)" in moved.stdout
        assert len(active_runs(target)) == len(wanted)
    # Nothing of where the runs went reaches the stores they went to.
    copied = active_runs(f"sqlite:///{tmp_path / 'second'}.db")
    assert not [k for r in copied for k in r.data.tags if k.startswith("dvflow.copied.")]

    down = f"http://127.0.0.1:{free_port()}"
    waiting = cli("sync", "--from", "mlflow.db", "--tracking-uri", down, "-C", str(root))
    assert waiting.returncode == 4 and "Nothing was changed" in waiting.stderr, waiting.stderr
    gone = cli("sync", "--from", f"http://alice:s3cret@{down[7:]}", "-C", str(root))
    assert gone.returncode == 4 and "s3cret" not in gone.stdout + gone.stderr, gone.stderr

    for source, why in (
        ("nope.db", "there is no such file or folder"),
        (laptop_uri, "it is the store runs are copied to"),
    ):
        refused = cli("sync", "--from", source, "--tracking-uri", laptop_uri, "-C", str(root))
        assert refused.returncode == 2, refused.stderr
        assert why in refused.stderr and "Traceback" not in refused.stderr


def test_sync_from_stopped_before_it_noted_what_it_copied_copies_nothing_twice(
    make_project: Callable[..., Path], tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    root = make_project("logged")  # a stage that logs its model with log_model
    assert cli("run", "-C", str(root)).returncode == 0
    target = f"sqlite:///{tmp_path / 'team.db'}"
    first = cli("sync", "--from", "mlflow.db", "--tracking-uri", target, "-C", str(root))
    assert first.returncode == 0, first.stderr
    # As if killed between copying and noting: the source forgets it was synced.
    laptop = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiments = [e.experiment_id for e in laptop.search_experiments()]
    for run in laptop.search_runs(experiments):
        for key in [k for k in run.data.tags if k.endswith(".synced")]:
            laptop.delete_tag(run.info.run_id, key)
    for model in laptop.search_logged_models(experiments):
        for key in [k for k in model.tags if k.endswith(".synced")]:
            laptop.delete_logged_model_tag(model.model_id, key)
    for version in laptop.search_model_versions():
        for key in [k for k in version.tags if k.endswith(".synced")]:
            laptop.delete_model_version_tag(version.name, version.version, key)

    again = cli("sync", "--from", "mlflow.db", "--tracking-uri", target, "-C", str(root))
    assert again.returncode == 0, again.stderr
    team = MlflowClient(target)
    team_experiments = [e.experiment_id for e in team.search_experiments()]
    assert len(team.search_runs(team_experiments)) == len(laptop.search_runs(experiments))
    (model,) = team.search_logged_models(team_experiments)
    (version,) = team.search_model_versions("name = 'logged-model'")
    assert version.source == f"models:/{model.model_id}"
    fit = team.get_run(model.source_run_id)
    assert [o.model_id for o in fit.outputs.model_outputs] == [model.model_id]
