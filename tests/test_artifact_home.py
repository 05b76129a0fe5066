"""Artifacts of what dvflow creates in a local store live beside that store.

MLflow's own default for a SQLite store is ``./mlruns`` under whatever folder
the process happens to run in: a sync started from a checkout once left 84
files of run artifacts there.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import cli


def test_sync_from_puts_the_artifacts_of_new_experiments_beside_the_store_not_in_cwd(
    make_project: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    root = make_project()
    source = tmp_path / "laptop" / "laptop.db"
    source.parent.mkdir()
    # MLflow itself puts the laptop's Default experiment under the current folder.
    monkeypatch.chdir(source.parent)
    laptop = MlflowClient(f"sqlite:///{source}")
    note = tmp_path / "note.txt"
    note.write_text("kept\n")
    # One run in an experiment of its own, one in the store's Default experiment.
    for experiment in (
        laptop.create_experiment("elsewhere", (source.parent / "art").as_uri()),
        "0",
    ):
        run = laptop.create_run(experiment)
        laptop.log_artifact(run.info.run_id, str(note), "notes")
        laptop.set_terminated(run.info.run_id)

    team = tmp_path / "team" / "team.db"
    team.parent.mkdir()
    cwd = tmp_path / "elsewhere-cwd"
    cwd.mkdir()
    synced = cli(
        "sync",
        "--from",
        str(source),
        "--tracking-uri",
        f"sqlite:///{team}",
        "-C",
        str(root),
        cwd=cwd,
    )
    assert synced.returncode == 0, synced.stderr

    assert list(cwd.iterdir()) == []
    store = MlflowClient(f"sqlite:///{team}")
    runs = store.search_runs([e.experiment_id for e in store.search_experiments()])
    assert len(runs) == 2
    beside = (team.parent / "mlartifacts").as_uri()
    for run in runs:
        assert run.info.artifact_uri.startswith(beside + "/"), run.info.artifact_uri
        copied = Path(store.download_artifacts(run.info.run_id, "notes/note.txt", str(tmp_path)))
        assert copied.read_text() == "kept\n"
    assert len(list((team.parent / "mlartifacts").rglob("note.txt"))) == 2
