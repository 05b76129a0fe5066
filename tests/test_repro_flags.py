"""dvc repro's everyday flags on dvflow run: -f, -s, --downstream, --keep-going, --pull, --dry."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from conftest import cli, dvc, stage_runs, tracking_client

_STAGE_LINE = re.compile(r"^  (\S+)\s+(ran|restored|up-to-date|failed|killed)\s+run (\w+)", re.M)


def _statuses(stdout: str) -> dict[str, str]:
    """Each stage's status in one 'dvflow run' summary, in order."""
    return {name: status for name, status, _ in _STAGE_LINE.findall(stdout)}


def _run(root: Path, *args: str) -> dict[str, str]:
    result = cli("run", *args, cwd=root)
    assert result.returncode == 0, result.stderr
    return _statuses(result.stdout)


def _set_param(root: Path, old: str, new: str) -> None:
    params = root / "params.yaml"
    text = params.read_text()
    assert old in text
    params.write_text(text.replace(old, new))


def _set_b(root: Path) -> None:
    text = (root / "params.yaml").read_text()
    (root / "params.yaml").write_text(text.replace("b:\n  n: 1", "b:\n  n: 2"))


def test_force_reruns_up_to_date_stages_and_records_them_as_ran(make_project) -> None:
    root = make_project("branches")
    _run(root)
    assert set(_run(root, "--record-noop").values()) == {"up-to-date"}
    forced = _run(root, "-f", "b")
    assert forced == {"a": "ran", "b": "ran"}
    client = tracking_client(root)
    assert client.get_run(stage_runs(root)["b"]).data.tags["dvflow.status"] == "ran"


def test_single_item_runs_only_the_target(make_project) -> None:
    root = make_project("branches")
    _run(root)
    _set_b(root)
    assert _run(root, "--single-item", "b") == {"b": "ran"}
    assert dvc(root, "status").stdout.startswith("c:")  # c did not run: its input changed


def test_downstream_runs_the_target_and_the_stages_below_it(make_project) -> None:
    root = make_project("branches")
    _run(root)
    _set_b(root)
    assert _run(root, "--downstream", "b") == {"b": "ran", "c": "ran"}


def test_keep_going_runs_independent_stages_after_a_failure_and_records_it(
    make_project,
) -> None:
    root = make_project("branches")
    _set_param(root, "fail: false", "fail: true")
    stopped = cli("run", cwd=root)
    assert stopped.returncode == 6, stopped.stderr
    assert not (root / "c.txt").exists()  # without the flag, the first failure stops all

    went_on = cli("run", "--keep-going", cwd=root)
    assert went_on.returncode == 6, went_on.stderr
    assert "flaky" in went_on.stderr
    client = tracking_client(root)
    runs = {name: client.get_run(run_id) for name, run_id in stage_runs(root).items()}
    assert {n: r.data.tags["dvflow.status"] for n, r in runs.items()} == {
        "flaky": "failed",
        "a": "ran",
        "b": "ran",
        "c": "ran",
    }
    assert runs["flaky"].info.status == "FAILED"
    parent = client.get_run(runs["a"].data.tags["mlflow.parentRunId"])
    assert parent.info.status == "FAILED"
    assert (root / "c.txt").exists() and not (root / "after.txt").exists()


def test_dry_prints_the_plan_and_records_nothing(make_project) -> None:
    root = make_project("branches")
    result = cli("run", "--dry", cwd=root)
    assert result.returncode == 0, result.stderr
    assert re.search(r"^  b\s+would run\s+python step.py b.txt a.txt$", result.stdout, re.M)
    assert "nothing recorded" in result.stdout
    assert not (root / "dvc.lock").exists() and not (root / "a.txt").exists()
    assert stage_runs(root) == {}
    assert tracking_client(root).get_experiment_by_name(root.name) is None

    _run(root)
    _set_b(root)
    again = cli("run", "--dry", cwd=root)
    assert re.search(r"^  a\s+up to date", again.stdout, re.M)
    assert re.search(r"^  b\s+would run", again.stdout, re.M)


def test_pull_restores_outputs_from_the_remote_instead_of_running(make_project) -> None:
    root = make_project("branches")
    first = cli("run", "--push", cwd=root)
    assert first.returncode == 0, first.stderr
    produced = stage_runs(root)
    for name in ("a.txt", "b.txt", "c.txt", "flaky.txt", "after.txt"):
        (root / name).unlink()
    shutil.rmtree(root / ".dvc" / "cache")

    assert set(_run(root, "--pull").values()) == {"restored"}
    assert (root / "c.txt").read_text().startswith("c.txt")
    client = tracking_client(root)
    c = client.get_run(stage_runs(root)["c"])
    assert c.data.tags["dvflow.produced_by"] == produced["c"]
