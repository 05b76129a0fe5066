"""check: the CI gate, on the real history repository, one drift at a time."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import PROJECTS, cli, git, tracking_client
from history_repo import HistoryRepo, dvc, set_param


@pytest.fixture
def experiment(history_copy: HistoryRepo, tmp_path: Path) -> Path:
    """Branch experiment checked out, its data pushed to a remote of its own."""
    root = history_copy.root
    git(root, "checkout", "-q", "experiment")
    dvc(root, "checkout", "-q")
    dvc(root, "remote", "modify", "--local", "storage", "url", str(tmp_path / "remote"))
    dvc(root, "push", "-q", "--all-commits")
    return root


def test_check_passes_on_a_clean_recorded_repo_and_writes_a_summary(
    experiment: Path, tmp_path: Path
) -> None:
    summary = tmp_path / "summary.md"
    result = cli("check", "--summary", str(summary), "-C", str(experiment))
    assert result.returncode == 0, result.stdout + result.stderr
    # stale, remote, recorded, release, pii (no data version marked as personal data)
    assert result.stdout.count("  pass  ") == 5 and "check passed" in result.stdout
    assert "pass  pii       no data version is marked" in result.stdout
    text = summary.read_text()
    assert text.startswith("## dvflow check")
    assert "| ✅ | remote |" in text
    assert "```mermaid\nflowchart LR" in text  # the lineage of model/model.bin


def test_check_fails_with_10_when_params_drift(experiment: Path) -> None:
    set_param(experiment, "train", "alpha", "0.1")
    result = cli("check", "-C", str(experiment))
    assert result.returncode == 10, result.stdout
    assert "FAIL  stale" in result.stdout and "params.yaml" in result.stdout


def test_check_fails_with_11_when_an_output_is_not_in_the_remote(
    experiment: Path, tmp_path: Path
) -> None:
    lock = (experiment / "dvc.lock").read_text()
    md5 = lock.split("path: model/model.bin\n")[1].split("md5: ")[1].split()[0]
    (tmp_path / "remote" / "files" / "md5" / md5[:2] / md5[2:]).unlink()
    result = cli("check", "-C", str(experiment))
    assert result.returncode == 11
    assert "not in the DVC remote: model/model.bin" in result.stdout


def test_check_fails_with_12_when_outputs_have_no_recorded_run(
    history_copy: HistoryRepo, tmp_path: Path
) -> None:
    # main's last commit ran the pipeline with plain 'dvc repro'.
    root = history_copy.root
    dvc(root, "remote", "modify", "--local", "storage", "url", str(tmp_path / "remote"))
    dvc(root, "push", "-q")
    result = cli("check", "-C", str(root))
    assert result.returncode == 12, result.stdout
    assert "FAIL  recorded" in result.stdout
    assert "no recorded run made the outputs of: featurize, train" in result.stdout


def test_check_fails_with_13_when_a_release_tag_does_not_match_the_alias(
    experiment: Path,
) -> None:
    git(experiment, "tag", "v2.0")
    client = tracking_client(experiment)
    client.set_registered_model_alias("lin-model", "production", "1")
    wrong = cli("check", "-C", str(experiment))
    assert wrong.returncode == 13, wrong.stdout
    assert "v2.0: lin-model@production is version 1" in wrong.stdout
    client.set_registered_model_alias("lin-model", "production", "2")
    right = cli("check", "-C", str(experiment))
    assert right.returncode == 0, right.stdout
    assert "1 model(s) of v2.0 match @production" in right.stdout


def test_init_ci_writes_a_valid_workflow_with_no_secret_in_it(
    make_project: Callable[..., Path],
) -> None:
    import yaml

    root = make_project("lineage", commit=False)
    planted = "planted-secret-for-the-workflow"
    local = root / ".dvc" / "config.local"
    local.write_text(
        local.read_text()
        + f"['remote \"backup\"']\n    url = s3://bucket/x\n    secret_access_key = {planted}\n"
    )
    result = cli("init", str(root), "--ci", env={"AWS_SECRET_ACCESS_KEY": planted})
    assert result.returncode == 0, result.stderr
    text = (root / ".github" / "workflows" / "dvflow.yml").read_text()
    assert planted not in text
    workflow = yaml.safe_load(text)
    steps = workflow["jobs"]["check"]["steps"]
    runs = "\n".join(step.get("run", "") for step in steps)
    assert "dvc pull" in runs and 'dvflow check --summary "$GITHUB_STEP_SUMMARY"' in runs
    assert "dvflow verify models:/lin-model@production" in runs
    # Every credential is a reference to a repository secret, never a value.
    for key, value in workflow["jobs"]["check"]["env"].items():
        assert value == f"${{{{ secrets.{key} }}}}", key
    again = cli("init", str(root), "--ci")
    assert "kept: .github/workflows/dvflow.yml" in again.stdout


def test_verify_does_not_count_an_imported_input_as_missing(experiment: Path) -> None:
    client = tracking_client(experiment)
    (featurize, *_) = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        "tags.`dvflow.stage` = 'featurize' and tags.`dvflow.status` = 'ran'",
    )
    inputs = [d.dataset.name for d in featurize.inputs.dataset_inputs]
    assert "data/words.txt" in inputs  # imported from the upstream repository
    result = cli("verify", featurize.info.run_id, "-C", str(experiment))
    assert result.returncode == 0, result.stdout
    assert "pass  data" in result.stdout


def test_an_unwritable_summary_is_a_warning_and_keeps_the_gate_code(experiment: Path) -> None:
    set_param(experiment, "train", "alpha", "0.2")
    result = cli("check", "--summary", "/nonexistent/summary.md", "-C", str(experiment))
    assert result.returncode == 10, result.stderr
    assert "warning: cannot write the summary" in result.stderr


def _committed_and_pushed(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-qm", message)
    dvc(root, "push", "-q")  # raises if it fails


def test_an_always_changed_stage_is_reported_not_failed(make_project: Callable[..., Path]) -> None:
    root = make_project("always")
    ran = cli("run", "-C", str(root))
    assert ran.returncode == 0, ran.stderr
    _committed_and_pushed(root, "results")
    result = cli("check", "-C", str(root))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "pass  stale" in result.stdout
    assert "snapshot always run(s) (always_changed), not compared" in result.stdout


def test_an_up_to_date_run_over_outputs_dvc_repro_made_is_not_a_recorded_run(
    make_project: Callable[..., Path],
) -> None:
    root = make_project("basic")
    dvc(root, "repro", "-q")
    _committed_and_pushed(root, "made by plain dvc repro")
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("epochs: 3", "epochs: 4"))
    # train runs; prepare is up to date, recorded with no run that made its outputs.
    ran = cli("run", "-C", str(root))
    assert ran.returncode == 0, ran.stderr
    _committed_and_pushed(root, "more epochs")
    result = cli("check", "-C", str(root))
    assert result.returncode == 12, result.stdout + result.stderr
    assert "no recorded run made the outputs of: prepare\n" in result.stdout
    forced = cli("run", "-f", "-C", str(root))  # what the hint says
    assert forced.returncode == 0, forced.stderr
    assert not git(root, "status", "--porcelain")  # same bytes, now made by a recorded run
    assert cli("check", "-C", str(root)).returncode == 0


def test_check_in_a_subdir_project_checks_that_dvc_project(
    tmp_path: Path, template_db: Path
) -> None:
    root = tmp_path / "monorepo"  # one git repository, two 'dvc init --subdir' projects
    shutil.copytree(PROJECTS / "monorepo", root)
    git(root, "init", "-q")
    for sub in ("proj-a", "proj-b"):
        dvc(root / sub, "init", "--subdir", "-q")
        dvc(root / sub, "remote", "add", "-d", "storage", str(tmp_path / f"remote-{sub}"))
        shutil.copy(template_db, root / sub / "mlflow.db")
    dvc(root / "proj-a", "add", "data/raw.txt")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "two DVC projects")
    ran = cli("run", "-C", "proj-a", cwd=root)
    assert ran.returncode == 0, ran.stderr
    _committed_and_pushed(root / "proj-a", "proj-a results")
    result = cli("check", "-C", "proj-a", cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "every stage's outputs (1) have a recorded run" in result.stdout
    other = cli("check", "-C", str(root / "proj-b"))
    assert other.returncode == 10, other.stdout + other.stderr  # proj-b never ran
    assert "FAIL  stale" in other.stdout and "count" in other.stdout
    # A release tag's models are read from the project's own dvc.yaml.
    with (root / "proj-a" / "dvc.yaml").open("a") as pipeline:
        pipeline.write("artifacts:\n  cleaner:\n    path: clean.txt\n    type: model\n")
    git(root, "commit", "-qam", "a model")
    git(root, "tag", "v1")
    release = cli("check", "-C", "proj-a", cwd=root)
    assert release.returncode == 13, release.stdout + release.stderr
    assert "v1: model cleaner has no @production version" in release.stdout


def test_data_present_in_the_work_tree_but_not_in_the_cache_is_not_stale(
    experiment: Path,
) -> None:
    # A CI checkout that got its data another way (an artifact, a mount) has
    # no DVC cache: 'not in cache' says nothing about code or params.
    shutil.rmtree(experiment / ".dvc" / "cache")
    result = cli("check", "-C", str(experiment))
    assert "pass  stale" in result.stdout, result.stdout + result.stderr
    assert result.returncode == 0, result.stdout + result.stderr


def test_broken_yaml_in_dvc_yaml_is_one_line_with_its_position(
    make_project: Callable[..., Path],
) -> None:
    root = make_project("basic")
    (root / "dvc.yaml").write_text("stages:\n  prepare:\n    cmd: [unclosed\n")
    result = cli("check", "-C", str(root))
    assert result.returncode == 3, result.stdout + result.stderr
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "dvc.yaml" in error and "line " in error, result.stderr
    assert "while parsing" not in result.stderr and "Traceback" not in result.stderr
