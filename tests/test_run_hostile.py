"""``dvflow run`` against awkward projects: its own errors never hide the real one.

Names MLflow refuses, outputs outside the repository, killed runs, stage
names with quotes and control characters: each run ends with a final
status and one clear message.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import dvflow
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


LONG = "x" * 260
ODD_METRICS_TRAIN = f"""\
import json
from pathlib import Path
Path("model.txt").write_text("weights\\n")
Path("metrics.json").write_text(json.dumps({{"loss": 0.5, "bad?key": 1.0, "{LONG}": 2.0}}))
Path("plot.csv").write_text("step,loss\\n0,1\\n")
"""


def test_metric_and_param_names_mlflow_refuses_are_logged_renamed_and_the_stage_succeeds(
    make_project,
) -> None:
    root = make_project()
    (root / "train.py").write_text(ODD_METRICS_TRAIN)
    params = (root / "params.yaml").read_text()
    (root / "params.yaml").write_text(params + f"odd:\n  'bad?p': 1\n  long: '{'v' * 7000}'\n")
    dvc_yaml = (root / "dvc.yaml").read_text()
    (root / "dvc.yaml").write_text(
        dvc_yaml.replace("      - train\n", "      - train\n      - odd\n")
    )
    git(root, "add", "-A")
    git(root, "commit", "-qm", "metrics and params MLflow refuses")

    result = cli("run", cwd=root)
    _assert_renamed_with_notices(result)
    train = _by_stage(root)["train"]
    assert train.info.status == "FINISHED"
    assert train.data.tags["dvflow.status"] == "ran"
    metrics = train.data.metrics
    assert metrics["loss"] == 0.5 and metrics["bad_key"] == 1.0
    long = [k for k in metrics if k.startswith("xxxx")]
    assert len(long) == 1 and len(long[0]) == 250 and metrics[long[0]] == 2.0
    assert train.data.params["odd.bad_p"] == "1"
    assert len(train.data.params["odd.long"]) == 6000
    record = dvflow.load_record(train.info.run_id, root)
    assert record.metrics["bad?key"] == 1.0 and record.metrics[LONG] == 2.0
    assert record.params["odd.long"] == "v" * 7000
    # A rerun (every stage up to date, recorded anyway) logs the same names again, as well.
    _assert_renamed_with_notices(cli("run", "--record-noop", cwd=root))


def _assert_renamed_with_notices(result) -> None:  # type: ignore[no-untyped-def]
    assert result.returncode == 0, result.stderr
    assert "Start the tracking server" not in result.stderr
    assert "metric 'bad?key'" in result.stderr
    assert "param 'odd.bad?p'" in result.stderr
    assert "longer than 250 characters" in result.stderr


def test_a_value_the_store_refuses_is_not_reported_as_a_server_that_is_down(
    make_project,
) -> None:
    from dvflow.stores._tracking import Tracker

    root = make_project()
    store = Tracker(f"sqlite:///{root / 'mlflow.db'}")
    run_id = store.create_run(store.experiment_id("refusals"), "r", {}, None)
    with pytest.raises(dvflow.TrackingError) as caught:
        store.log_metrics(run_id, {LONG: 1.0}, 0)
    assert not caught.value.unreachable
    assert "Start the tracking server" not in str(caught.value.hint)
    assert "refused" in str(caught.value.hint)


def test_the_runs_of_a_kill_9ed_run_are_ended_killed_with_their_status_tag(make_project) -> None:
    import os
    import signal
    import subprocess
    import time

    from conftest import DVFLOW

    root = make_project()
    train = (root / "train.py").read_text()
    (root / "train.py").write_text(
        "import time\nfrom pathlib import Path\nPath('started').write_text('1')\ntime.sleep(600)\n"
    )
    first = subprocess.Popen(
        [str(DVFLOW), "run", "-C", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # one group: dvflow and its stage, killed together
    )
    deadline = time.monotonic() + 120
    while not (root / "started").exists():
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.1)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=60)
    left = {r.data.tags.get("dvflow.stage", "pipeline"): r for r in _runs(root)}
    assert left["train"].data.tags["dvflow.status"] == "running"

    (root / "train.py").write_text(train)
    result = cli("run", cwd=root)
    assert result.returncode == 0, result.stderr
    assert "ended them as KILLED" in result.stderr
    by_id = {r.info.run_id: r for r in _runs(root)}
    for name in ("train", "pipeline"):
        run = by_id[left[name].info.run_id]
        assert run.info.status == "KILLED"
        assert run.data.tags["dvflow.status"] == "killed"


def test_init_with_an_empty_path_is_a_usage_error_and_creates_nothing(tmp_path: Path) -> None:
    result = cli("init", "", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "error: Invalid value for PATH: is empty" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="path is empty"):
        dvflow.init_project("")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["it's", 'it\'s "quoted"'])
def test_produced_by_is_found_for_a_stage_name_with_quotes(make_project, name: str) -> None:
    root = make_project()
    _add_stage(
        root,
        f"  '{name.replace(chr(39), chr(39) * 2)}':\n"
        "    cmd: python -c \"open('quoted.txt', 'w').write('q')\"\n"
        "    deps:\n      - prepare.py\n    outs:\n      - quoted.txt\n",
    )
    first = cli("run", cwd=root)
    assert first.returncode == 0, first.stderr
    made = _by_stage(root)[name].info.run_id
    git(root, "add", "-A")
    git(root, "commit", "-qm", "ran")
    again = cli("run", "--record-noop", cwd=root)
    assert again.returncode == 0, again.stderr
    runs = [r for r in _runs(root) if r.data.tags.get("dvflow.stage") == name]
    second = next(r for r in runs if r.info.run_id != made)
    assert second.data.tags["dvflow.status"] == "up-to-date"
    assert second.data.tags["dvflow.produced_by"] == made
    assert dvflow.load_record(second.info.run_id, root).stage["produced_by"] == made


def test_control_characters_in_a_stage_name_are_printed_escaped(make_project) -> None:
    root = make_project()
    # ESC ] 0 ; ... BEL retitles a terminal; ESC [ 2 J clears it.
    _add_stage(
        root,
        '  "evil\\e]0;pwned\\a\\e[2J":\n'
        "    cmd: python -c \"open('evil.txt', 'w').write('e')\"\n"
        "    deps:\n      - prepare.py\n    outs:\n      - evil.txt\n",
    )
    escaped = "evil\\x1b]0;pwned\\x07\\x1b[2J"
    name = "evil\x1b]0;pwned\x07\x1b[2J"
    run = cli("run", cwd=root)
    assert run.returncode == 0, run.stderr
    made = _by_stage(root)[name].info.run_id
    git(root, "add", "-A")
    git(root, "commit", "-qm", "ran")
    show = cli("show", made, cwd=root)
    assert show.returncode == 0, show.stderr
    lineage = cli("lineage", "evil.txt", cwd=root)
    assert lineage.returncode == 0, lineage.stderr
    for result in (run, show, lineage):
        printed = result.stdout + result.stderr
        assert "\x1b" not in printed and "\x07" not in printed, printed
        assert escaped in printed


def test_a_dependency_outside_the_repository_is_recorded_as_dvc_repro_accepts_it(
    make_project, tmp_path: Path
) -> None:
    root = make_project()
    outside = tmp_path / "shared"
    outside.mkdir()
    (outside / "table.csv").write_text("a,b\n1,2\n")
    _add_stage(
        root,
        "  copy:\n"
        "    cmd: python -c \"open('copy.csv', 'w').write(open('../shared/table.csv').read())\"\n"
        "    deps:\n      - ../shared/table.csv\n    outs:\n      - copy.csv\n",
    )
    result = cli("run", "copy", cwd=root)
    assert result.returncode == 0, result.stderr
    assert "outside repository" not in result.stderr
    run = _by_stage(root)["copy"]
    record = dvflow.load_record(run.info.run_id, root)
    inputs = {p.path: p.md5 for p in record.inputs}
    assert inputs["../shared/table.csv"] == {p.path: p.md5 for p in record.outputs}["copy.csv"]
    assert not record.code["dirty"]


def test_an_empty_project_folder_is_a_usage_error_not_the_current_folder(
    make_project,
) -> None:
    root = make_project()
    result = cli("doctor", "-C", "", cwd=root)
    assert result.returncode == 2, result.stderr
    assert "an empty folder name" in result.stderr
    assert "Traceback" not in result.stderr
