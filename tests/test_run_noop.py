"""A no-op ``dvflow run`` records nothing, does not open MLflow, and names the producers."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import dvflow
from conftest import cli, tracking_client


def _runs(root: Path) -> list:
    client = tracking_client(root)
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


def _set_param(root: Path, old: str, new: str) -> None:
    params = root / "params.yaml"
    params.write_text(params.read_text().replace(old, new))


def test_second_run_without_changes_records_nothing_and_names_the_earlier_runs(
    make_project,
) -> None:
    root = make_project()
    first = dvflow.run_pipeline(root)
    assert cli("index", cwd=root).returncode == 0  # the lineage index reads the store
    before = len(_runs(root))

    again = cli("run", cwd=root)

    assert again.returncode == 0, again.stderr
    assert len(_runs(root)) == before
    assert "up to date: nothing ran, nothing recorded" in again.stdout
    for stage in first.stages:
        assert f"{stage.name}" in again.stdout
        assert f"outputs made by run {stage.run_id}" in again.stdout


def test_no_op_result_has_no_run_and_links_each_stage_to_its_producer(make_project) -> None:
    root = make_project()
    first = dvflow.run_pipeline(root)
    assert cli("index", cwd=root).returncode == 0

    again = dvflow.run_pipeline(root)

    assert again.noop and again.run_id is None and again.experiment_id is None
    assert [(s.name, s.status, s.run_id) for s in again.stages] == [
        ("prepare", "up-to-date", None),
        ("train", "up-to-date", None),
    ]
    assert [s.produced_by for s in again.stages] == [s.run_id for s in first.stages]


def test_no_op_run_says_when_the_index_does_not_know_the_producers(make_project) -> None:
    root = make_project()
    assert cli("run", cwd=root).returncode == 0
    for leftover in (root / ".dvflow").glob("index.sqlite*"):
        leftover.unlink()  # an index that was never built (or was deleted: only a cache)
    before = len(_runs(root))

    again = cli("run", cwd=root)

    assert again.returncode == 0, again.stderr
    assert len(_runs(root)) == before
    assert "no run known" in again.stdout
    assert "dvflow lineage" in again.stdout and "--record-noop" in again.stdout


def test_record_noop_records_an_up_to_date_run_per_stage(make_project) -> None:
    root = make_project()
    assert cli("run", cwd=root).returncode == 0
    before = len(_runs(root))

    again = cli("run", "--record-noop", cwd=root)

    assert again.returncode == 0, again.stderr
    assert len(_runs(root)) == before + 3  # the pipeline run and its two stage runs
    assert again.stdout.count("up-to-date") == 2 and "pipeline run " in again.stdout


def test_a_changed_param_is_recorded(make_project) -> None:
    root = make_project()
    dvflow.run_pipeline(root)
    before = len(_runs(root))
    _set_param(root, "lr: 0.1", "lr: 0.3")

    again = dvflow.run_pipeline(root)

    assert not again.noop and again.run_id is not None
    assert [s.status for s in again.stages] == ["up-to-date", "ran"]
    assert len(_runs(root)) == before + 3


def test_a_partly_up_to_date_pipeline_records_every_stage(make_project) -> None:
    root = make_project()
    dvflow.run_pipeline(root)
    before = len(_runs(root))
    (root / "train.py").write_text((root / "train.py").read_text() + "\n# changed\n")

    again = cli("run", cwd=root)

    assert again.returncode == 0, again.stderr
    assert len(_runs(root)) == before + 3
    assert "pipeline run " in again.stdout and "up-to-date" in again.stdout


def test_an_always_changed_stage_is_never_a_no_op(make_project) -> None:
    root = make_project("always")
    dvflow.run_pipeline(root)

    again = dvflow.run_pipeline(root)

    assert not again.noop and again.run_id is not None


def test_force_records_even_when_nothing_changed(make_project) -> None:
    root = make_project()
    dvflow.run_pipeline(root)

    again = cli("run", "-f", cwd=root)

    assert again.returncode == 0, again.stderr
    assert "pipeline run " in again.stdout and again.stdout.count(" ran ") == 2


def test_no_op_run_does_not_import_mlflow(make_project) -> None:
    root = make_project()
    assert cli("run", cwd=root).returncode == 0
    code = (
        "import sys; from dvflow.cli._main import main; sys.argv = ['dvflow', 'run']\n"
        "code = 0\ntry:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'mlflow')\n"
        "print('MLFLOW-MODULES', loaded, 'EXIT', code, file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=False
    )

    assert "MLFLOW-MODULES [] EXIT 0" in done.stderr, done.stderr
    assert "nothing recorded" in done.stdout


def test_a_no_op_run_of_a_subdir_project_names_its_runs_from_its_own_index(
    tmp_path: Path, template_db: Path
) -> None:
    from test_subdir import _monorepo

    root = _monorepo(tmp_path, template_db)
    assert cli("run", "-C", "proj-a", cwd=root).returncode == 0
    assert cli("index", "-C", "proj-a", cwd=root).returncode == 0
    (made,) = [r.info.run_id for r in _runs(root / "proj-a") if r.data.tags.get("dvflow.stage")]

    again = cli("run", "-C", "proj-a", cwd=root)

    assert again.returncode == 0, again.stderr
    assert "nothing recorded" in again.stdout
    assert re.search(
        rf"proj-a/dvc.yaml:prepare\s+up-to-date\s+outputs made by run {made}", again.stdout
    )


def test_no_op_run_says_no_outputs_for_stages_without_any(make_project) -> None:
    # Real projects (iterative's pipeline-config examples) have stages that only
    # read params and print: no run "made" their outputs, and none is unknown.
    root = make_project("nouts")
    first = dvflow.run_pipeline(root)

    again = cli("run", cwd=root)

    assert again.returncode == 0, again.stderr
    lines = {line.split()[0]: line for line in again.stdout.splitlines()[1:4]}
    assert lines["data_load"].endswith("no outputs")
    assert lines["train"].endswith("no outputs")
    report = next(s.run_id for s in first.stages if s.name == "report")
    assert lines["report"].endswith(f"outputs made by run {report}")
    assert "knows no run" not in again.stdout


def test_no_op_run_with_push_pushes_the_current_outputs_and_records_nothing(
    make_project,
) -> None:
    root = make_project()
    dvflow.run_pipeline(root, push=False)
    before = len(_runs(root))
    missing = subprocess.run(
        [sys.executable, "-m", "dvc", "status", "-c", "-q"], cwd=root, check=False
    )
    assert missing.returncode != 0  # the outputs are not on the remote yet

    again = cli("run", "--push", cwd=root)

    assert again.returncode == 0, again.stderr
    assert "nothing recorded" in again.stdout
    assert re.search(r"pushed \d+ object\(s\) of the current outputs", again.stdout + again.stderr)
    assert len(_runs(root)) == before
    on_remote = subprocess.run(
        [sys.executable, "-m", "dvc", "status", "-c", "-q"], cwd=root, check=False
    )
    assert on_remote.returncode == 0
