"""Nothing lost when the network fails: the local spool and ``dvflow sync``.

A real ``mlflow server`` on PostgreSQL is stopped in the middle of a run and
started again; the store must then hold exactly what an uninterrupted run
of the same pipeline writes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import DVFLOW, cli, dvc, free_port, git, predict_with
from servers import stop, wait_until_answering


class Server:
    """An ``mlflow server`` that a test can stop and start again on the same port."""

    def __init__(self, backend: str, folder: Path) -> None:
        self.backend, self.folder = backend, folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [str(Path(sys.executable).with_name("mlflow")), "server"]
        command += ["--backend-store-uri", self.backend]
        command += ["--artifacts-destination", str(self.folder / "artifacts")]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        log = self.folder / "server.log"
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
                start_new_session=True,
            )
        wait_until_answering(f"{self.url}/health", self.proc, log)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None


@pytest.fixture
def server(postgres: str, tmp_path: Path) -> Iterator[Server]:
    """A server of its own, on a database of its own, so stopping it disturbs no other test."""
    import psycopg2

    name = f"spool_{os.getpid()}_{free_port()}"
    admin = psycopg2.connect(postgres.replace("postgresql+psycopg2", "postgresql"))
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    folder = tmp_path / "server"
    folder.mkdir()
    backend = postgres.rsplit("/", 1)[0] + "/" + name
    srv = Server(backend, folder)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def _team_remote(root: Path, remote: Path) -> None:
    pull = ("pull", "data/raw.txt.dvc")
    for args in (("remote", "add", "--local", "-d", "-f", "team", str(remote)), pull):
        done = dvc(root, *args)
        assert done.returncode == 0, done.stderr


def _clone(origin: Path, where: Path, remote: Path) -> Path:
    """A team member's clone: the origin's Git history, the team's DVC remote."""
    git(where.parent, "clone", "-q", str(origin), str(where))
    assert cli("init", str(where)).returncode == 0
    _team_remote(where, remote)
    return where


def _ids(stdout: str) -> dict[str, str]:
    found = dict(re.findall(r"^\s+(\w+)\s+\S+\s+run ([0-9a-f]{32})", stdout, re.MULTILINE))
    pipeline = re.search(r"pipeline run ([0-9a-f]{32})", stdout)
    assert pipeline, stdout
    return {"pipeline": pipeline[1], **found}


def _run_stopping_server(
    root: Path, env: dict[str, str], gate: Path, server: Server
) -> tuple[str, str, int]:
    """``dvflow run`` in ``root``; the server stops while a stage waits at ``gate``."""
    proc = subprocess.Popen(
        [str(DVFLOW), "run", "-C", str(root)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not Path(f"{gate}.started").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    server.stop()
    gate.touch()
    out, err = proc.communicate(timeout=300)
    return out, err, proc.returncode


def snapshot(url: str, pipeline_id: str) -> dict[str, Any]:
    """Everything the store holds about one pipeline run, with ids and times abstracted."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=url)
    parent = client.get_run(pipeline_id)
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{pipeline_id}'"
    )
    runs = {"pipeline": parent} | {c.data.tags["dvflow.stage"]: c for c in children}
    names = {run.info.run_id: role for role, run in runs.items()}
    names[parent.info.experiment_id] = "experiment"

    def abstract(value: Any) -> Any:
        if isinstance(value, str):
            return names.get(value, value)
        if isinstance(value, list):
            return [abstract(v) for v in value]
        if isinstance(value, dict):
            return {k: abstract(v) for k, v in value.items() if k not in {"started", "ended"}}
        return value

    def artifacts(run_id: str, folder: str | None = None) -> list[str]:
        found = []
        for item in client.list_artifacts(run_id, folder):
            found += artifacts(run_id, item.path) if item.is_dir else [item.path]
        return sorted(found)

    out = {}
    for role, run in runs.items():
        run_id = run.info.run_id
        record = json.loads(
            Path(client.download_artifacts(run_id, "dvflow/record.json")).read_text()
        )
        volatile = {"dvflow.record_sha256", "dvflow.synced_at", "dvflow.spooled_as"}
        out[role] = {
            "status": run.info.status,
            "name": run.info.run_name,
            "tags": abstract({k: v for k, v in run.data.tags.items() if k not in volatile}),
            "params": dict(run.data.params),
            "metrics": {
                key: [(m.step, m.value) for m in client.get_metric_history(run_id, key)]
                for key in sorted(run.data.metrics)
            },
            "datasets": sorted(
                (d.dataset.name, d.dataset.digest) for d in run.inputs.dataset_inputs
            ),
            "artifacts": artifacts(run_id),
            "record": abstract(record),
        }
    return out


def test_a_server_stopped_mid_run_loses_nothing_after_sync(
    make_project: Callable[..., Path], server: Server, tmp_path: Path
) -> None:
    origin, remote = make_project("spool"), tmp_path / "remote"
    assert dvc(origin, "remote", "add", "--local", "-d", "-f", "team", str(remote)).returncode == 0
    assert dvc(origin, "push", "data/raw.txt.dvc").returncode == 0
    cut, whole = (_clone(origin, tmp_path / name, remote) for name in ("cut", "whole"))
    gate = tmp_path / "gate"
    env = {**os.environ, "DVFLOW_TRACKING_URI": server.url, "DVFLOW_EXPERIMENT": "team"}

    # The first stage is running: its run and the pipeline's are open.
    out, err, code = _run_stopping_server(cut, {**env, "SPOOL_GATE": str(gate)}, gate, server)
    assert code == 0, err
    assert "recording to the local spool" in err and "dvflow sync" in err
    assert "spooled:" in out
    spooled = _ids(out)

    # Still down: sync says so and keeps the spool.
    down = cli("sync", "-C", str(cut), env={"DVFLOW_TRACKING_URI": server.url})
    assert down.returncode == 4 and "unreachable" in down.stderr, down.stderr
    assert "Traceback" not in down.stderr
    assert (cut / ".dvflow" / "spool" / "mlflow.db").is_file()

    server.start()
    before_sync = int(time.time() * 1000)
    synced = cli("sync", "-C", str(cut), env={"DVFLOW_TRACKING_URI": server.url})
    assert synced.returncode == 0, synced.stderr
    assert not (cut / ".dvflow" / "spool").exists()
    mapping = dict(re.findall(r"run ([0-9a-f]{32}) -> ([0-9a-f]{32})", synced.stdout))
    # The pipeline and the first stage began on the server and keep their ids.
    for role in ("pipeline", "prepare"):
        assert f"run {spooled[role]}: completed" in synced.stdout
    assert list(mapping) == [spooled["train"]]
    train_id = mapping[spooled["train"]]
    again = cli("sync", "-C", str(cut), env={"DVFLOW_TRACKING_URI": server.url})
    assert again.returncode == 0 and "nothing to sync" in again.stdout

    ran = cli("run", "-C", str(whole), env=env)
    assert ran.returncode == 0, ran.stderr
    assert "local spool" not in ran.stderr and "spooled:" not in ran.stdout
    uninterrupted = _ids(ran.stdout)

    after_sync = snapshot(server.url, spooled["pipeline"])
    expected = snapshot(server.url, uninterrupted["pipeline"])
    assert after_sync.keys() == expected.keys() == {"pipeline", "prepare", "train"}
    for role, facts in expected.items():
        for field, value in facts.items():
            assert after_sync[role][field] == value, (role, field)

    _assert_synced_run(server.url, train_id, before_sync)
    for run_id in (spooled["pipeline"], train_id):
        shown = cli("show", run_id, "-C", str(cut), env={"DVFLOW_TRACKING_URI": server.url})
        assert shown.returncode == 0 and "intact" in shown.stderr, shown.stderr
    # The id 'dvflow run' printed while spooled still finds the run.
    shown = cli("show", spooled["train"], "-C", str(cut), env={"DVFLOW_TRACKING_URI": server.url})
    assert shown.returncode == 0 and "intact" in shown.stderr, shown.stderr
    assert f"copied here by 'dvflow sync' as run {train_id}" in shown.stderr
    assert train_id in shown.stdout


def _assert_synced_run(url: str, train_id: str, before_sync: int) -> None:
    """Original times, no spool tags, and the model version linked to the synced run."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=url)
    train = client.get_run(train_id)
    assert train.info.start_time < before_sync and train.info.end_time < before_sync
    assert not [k for k in train.data.tags if k.startswith("dvflow.spool.")]
    # One model version, linked to the synced run and its rewritten record.
    (version,) = client.search_model_versions("name = 'spool-model'")
    assert version.run_id == train_id
    assert version.tags["dvflow.run_id"] == train_id
    assert version.tags["dvflow.record_sha256"] == train.data.tags["dvflow.record_sha256"]


def test_an_unreachable_server_spools_the_whole_run_unless_tracking_is_required(
    make_project: Callable[..., Path], mlflow_server: str
) -> None:
    root = make_project("spool")
    down = f"http://127.0.0.1:{free_port()}"
    required = cli("run", "--require-tracking", "--tracking-uri", down, "-C", str(root))
    assert required.returncode == 4, required.stderr
    assert "unreachable" in required.stderr and "Traceback" not in required.stderr
    assert not (root / "clean.txt").exists() and not (root / ".dvflow" / "spool").exists()

    ran = cli("run", "--tracking-uri", down, "-C", str(root))
    assert ran.returncode == 0, ran.stderr
    assert "recording to the local spool" in ran.stderr
    assert (root / "model" / "model.bin").exists()
    spooled = _ids(ran.stdout)
    reminded = cli("run", "--tracking-uri", mlflow_server, "-C", str(root))
    assert reminded.returncode == 0, reminded.stderr
    assert "still holds runs" in reminded.stderr and "dvflow sync" in reminded.stderr

    # Offline, a spooled run is read from the spool.
    offline = cli("show", spooled["train"], "--tracking-uri", down, "-C", str(root))
    assert offline.returncode == 0 and "intact" in offline.stderr, offline.stderr
    assert "in the local spool, not on the server yet" in offline.stderr
    assert spooled["train"] in offline.stdout

    waiting = cli("doctor", "--tracking-uri", mlflow_server, "-C", str(root))
    assert "3 run(s) recorded to the local spool" in waiting.stdout, waiting.stdout

    synced = cli("sync", "--tracking-uri", mlflow_server, "-C", str(root))
    assert synced.returncode == 0, synced.stderr
    assert "were meant for" in synced.stderr
    done = cli("doctor", "--tracking-uri", mlflow_server, "-C", str(root))
    assert "no runs waiting in the local spool" in done.stdout, (
        done.stdout
    )  # another store than the one the run aimed at
    mapping = dict(re.findall(r"run ([0-9a-f]{32}) -> ([0-9a-f]{32})", synced.stdout))
    assert set(mapping) == set(spooled.values())
    shown = cli("show", spooled["train"], "--tracking-uri", mlflow_server, "-C", str(root))
    assert shown.returncode == 0 and "intact" in shown.stderr, shown.stderr
    assert f"copied here by 'dvflow sync' as run {mapping[spooled['train']]}" in shown.stderr

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server)
    parent = client.get_run(mapping[spooled["pipeline"]])
    assert parent.info.status == "FINISHED"
    record = json.loads(
        Path(client.download_artifacts(parent.info.run_id, "dvflow/record.json")).read_text()
    )
    assert {s["run_id"] for s in record["stages"]} == {
        mapping[spooled["prepare"]],
        mapping[spooled["train"]],
    }
    assert record["mlflow"]["experiment_id"] == parent.info.experiment_id
    train = client.get_run(mapping[spooled["train"]])
    assert train.data.tags["mlflow.parentRunId"] == parent.info.run_id
    # What the script logged through MLflow itself went to the spool, and on.
    history = client.get_metric_history(train.info.run_id, "script_words")
    assert [(m.step, m.value) for m in history] == [(0, 4.0), (1, 8.0)]

    # Synced runs keep their old start times; an index that read the store
    # after they started still finds them, by their dvflow.synced_at tag.
    from dvflow.stores._tracking import Tracker
    from dvflow.trace._reader import StoreReader

    assert "dvflow.synced_at" in train.data.tags
    assert train.data.tags["dvflow.spooled_as"] == spooled["train"]
    later = int(time.time() * 1000) + 3_600_000
    found = {r["run_id"] for r in StoreReader(Tracker(mlflow_server)).runs(later)}
    assert found >= set(mapping.values())


def test_a_script_that_loses_the_server_is_run_again_against_the_spool(
    make_project: Callable[..., Path], server: Server, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    root = make_project("spool")
    first = cli("run", "-C", str(root), env={"DVFLOW_TRACKING_URI": server.url})
    assert first.returncode == 0, first.stderr
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("repeat: 3", "repeat: 5"))
    # Pushing too: the retry's fresh DVC repo must push, not the first one.
    with (root / "dvflow.yaml").open("a") as config:
        config.write("push: true\n")
    gate = tmp_path / "gate"
    env = {**os.environ, "DVFLOW_TRACKING_URI": server.url, "TRAIN_GATE": str(gate)}
    # train.py is about to call MLflow: its first attempt fails.
    out, err, code = _run_stopping_server(root, env, gate, server)
    assert code == 0, err
    assert "stage 'train' failed while the tracking server stopped answering" in err
    ids = _ids(out)
    assert re.search(r"train\s+ran\s+run", out)
    # The second attempt really ran with the new params: no output of the
    # first run came back from DVC's run-cache.
    model = (root / "model" / "model.bin").read_text()
    assert model == "|".join(["ALPHA", "BETA", "GAMMA", "DELTA"]) * 5
    status = dvc(root, "status")
    assert status.returncode == 0 and "up to date" in status.stdout, status.stdout
    remote = dvc(root, "status", "--cloud", "model/model.bin")
    assert remote.returncode == 0 and "in sync" in remote.stdout, remote.stdout

    server.start()
    synced = cli("sync", "-C", str(root), env={"DVFLOW_TRACKING_URI": server.url})
    assert synced.returncode == 0, synced.stderr
    client = MlflowClient(tracking_uri=server.url)
    train = client.get_run(ids["train"])  # begun on the server: it keeps its id
    assert train.info.status == "FINISHED" and train.data.tags["dvflow.status"] == "ran"
    history = client.get_metric_history(ids["train"], "script_words")
    assert [(m.step, m.value) for m in history] == [(0, 4.0), (1, 8.0)]
    shown = cli("show", ids["train"], "-C", str(root), env={"DVFLOW_TRACKING_URI": server.url})
    assert shown.returncode == 0 and "intact" in shown.stderr, shown.stderr


def test_models_a_script_logged_while_spooled_reach_the_server_and_load_from_it(
    make_project: Callable[..., Path], mlflow_server: str
) -> None:
    root = make_project("logged")
    down = f"http://127.0.0.1:{free_port()}"
    # Its own experiment and model name: the server is shared by the session.
    dvc_yaml = root / "dvc.yaml"
    dvc_yaml.write_text(dvc_yaml.read_text().replace("logged-model:", "lost-model:"))
    ran = cli("run", "--tracking-uri", down, "-C", str(root), env={"DVFLOW_EXPERIMENT": "lost"})
    assert ran.returncode == 0, ran.stderr
    assert "recording to the local spool" in ran.stderr
    fit = _ids(ran.stdout)["fit"]

    # A sync stopped (Ctrl-C) once the first run is copied resumes without
    # a second copy of anything.
    from dvflow import sync_spool
    from dvflow.runs._results import Progress

    def stop_after_one(progress: Progress) -> None:
        if progress.event == "synced":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sync_spool(root, tracking_uri=mlflow_server, on_progress=stop_after_one)
    assert (root / ".dvflow" / "spool" / "mlflow.db").is_file()
    synced = cli("sync", "--tracking-uri", mlflow_server, "-C", str(root))
    assert synced.returncode == 0, synced.stderr
    assert "[1/1] synced run" in synced.stderr  # the other one was done already
    (old_model, new_model), *more = re.findall(
        r"logged model (m-[0-9a-f]+) -> (m-[0-9a-f]+)", synced.stdout
    )
    assert not more and old_model != new_model, synced.stdout
    assert not list((root / ".dvflow").glob("spool*")), "the spool is gone once all is copied"
    mapping = dict(re.findall(r"run ([0-9a-f]{32}) -> ([0-9a-f]{32})", synced.stdout))

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server)
    model = client.get_logged_model(new_model)
    assert (model.source_run_id, str(model.status)) == (mapping[fit], "READY")
    assert model.tags["dvflow.spooled_as"] == old_model
    assert len(client.search_logged_models([model.experiment_id])) == 1
    assert len(client.search_runs([model.experiment_id])) == len(mapping) == 2
    run = client.get_run(mapping[fit])
    assert [o.model_id for o in run.outputs.model_outputs] == [new_model]
    (version,) = client.search_model_versions("name = 'lost-model'")
    assert version.source == f"models:/{new_model}"
    assert version.run_id == mapping[fit]
    assert "7" in predict_with(mlflow_server, "models:/lost-model/1")
