"""verify: the quick checks and the rebuild, on a real pipeline, store and remote."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import DVFLOW, PROJECTS, cli, dvc, git, run_commit_push, stage_runs, tracking_client

PICKY = {"DVFLOW_TEST_PICKY": "1"}


def artifacts(root: Path, run_id: str) -> Path:
    uri = tracking_client(root).get_run(run_id).info.artifact_uri
    return Path(uri.removeprefix("file://"))


def remote_object(root: Path, path: str) -> Path:
    lock = (root / "dvc.lock").read_text()
    md5 = lock.split(f"path: {path}\n")[1].split("md5: ")[1].split()[0]
    config = (root / ".dvc" / "config.local").read_text()
    url = config.split("url = ")[1].split()[0]
    return Path(url) / "files" / "md5" / md5[:2] / md5[2:]


@pytest.fixture
def recorded(make_project: Callable[..., Path]) -> Path:
    """The rebuild project, run by dvflow, committed and pushed."""
    return run_commit_push(make_project("rebuild"), env=PICKY)


def worktrees(root: Path) -> int:
    return git(root, "worktree", "list").count("\n")


def test_a_deterministic_stage_rebuilds_identical(recorded: Path, tmp_path: Path) -> None:
    run_id = stage_runs(recorded)["steady"]
    quick = cli("verify", run_id, "-C", str(recorded))
    assert quick.returncode == 0, quick.stderr
    assert [line.split()[1] for line in quick.stdout.splitlines()[1:6]] == [
        "record",
        "commit",
        "code",
        "data",
        "env",
    ]
    temp = tmp_path / "tmp"
    temp.mkdir()
    result = cli("verify", run_id, "--rebuild", "-C", str(recorded), env={"TMPDIR": str(temp)})
    assert result.returncode == 0, result.stderr
    assert "identical  steady.txt" in result.stdout
    assert result.stdout.rstrip().endswith("identical")
    tags = tracking_client(recorded).get_run(run_id).data.tags
    assert tags["dvflow.verify.verdict"] == "identical"
    assert worktrees(recorded) == 1 and not list(temp.iterdir())


def test_unseeded_randomness_is_diverged_or_equivalent_within_tolerance(recorded: Path) -> None:
    run_id = stage_runs(recorded)["noisy"]
    strict = cli("verify", run_id, "--rebuild", "-C", str(recorded))
    assert strict.returncode == 1, strict.stderr
    assert "diverged   noisy.bin  recorded " in strict.stdout
    assert "OUTSIDE tolerance" in strict.stdout
    assert "rebuild of stage noisy diverged" in strict.stderr
    loose = cli("verify", run_id, "--rebuild", "--rtol", "0.01", "-C", str(recorded))
    assert loose.returncode == 0, loose.stderr
    assert "equivalent noisy.bin" in loose.stdout and "within tolerance" in loose.stdout
    tags = tracking_client(recorded).get_run(run_id).data.tags
    assert tags["dvflow.verify.verdict"] == "equivalent"


def test_a_dirty_runs_patch_is_applied_on_rebuild(recorded: Path) -> None:
    params = recorded / "params.yaml"
    params.write_text(params.read_text().replace("n: 3", "n: 5"))
    result = cli("run", "steady", "-C", str(recorded))
    assert result.returncode == 0, result.stderr
    assert dvc(recorded, "push", "-q").returncode == 0
    run_id = stage_runs(recorded)["steady"]
    rebuilt = cli("verify", run_id, "--rebuild", "-C", str(recorded))
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "dirty work tree; its patch is stored" in rebuilt.stdout
    assert "patch applied" in rebuilt.stdout and "identical  steady.txt" in rebuilt.stdout


def test_a_removed_remote_object_fails_the_quick_check(recorded: Path) -> None:
    remote_object(recorded, "steady.txt").unlink()
    result = cli("verify", stage_runs(recorded)["steady"], "--rebuild", "-C", str(recorded))
    assert result.returncode == 1
    assert "FAIL  data" in result.stdout
    assert "missing from the DVC remote: steady.txt" in result.stdout
    assert "rebuild skipped: a check failed" in result.stdout


def test_a_tampered_record_fails_the_quick_check(recorded: Path) -> None:
    run_id = stage_runs(recorded)["steady"]
    record = artifacts(recorded, run_id) / "dvflow" / "record.json"
    record.write_bytes(record.read_bytes().replace(b"steady", b"stEady"))
    result = cli("verify", run_id, "-C", str(recorded))
    assert result.returncode == 1
    assert "does not match its digest" in result.stdout


def test_a_missing_patch_fails_the_quick_check(recorded: Path) -> None:
    (recorded / "steady.py").write_text((recorded / "steady.py").read_text() + "# changed\n")
    assert cli("run", "steady", "-C", str(recorded)).returncode == 0
    run_id = stage_runs(recorded)["steady"]
    (artifacts(recorded, run_id) / "dvflow" / "code.patch").unlink()
    result = cli("verify", run_id, "-C", str(recorded))
    assert result.returncode == 1
    assert "dirty work tree and no intact patch stored" in result.stdout


def test_a_commit_on_no_remote_branch_fails_until_pushed(recorded: Path, tmp_path: Path) -> None:
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(recorded, "remote", "add", "origin", str(bare))
    run_id = stage_runs(recorded)["steady"]
    unpushed = cli("verify", run_id, "-C", str(recorded))
    assert unpushed.returncode == 1
    assert "is on no remote branch or tag" in unpushed.stdout
    git(recorded, "push", "-q", "origin", "HEAD:refs/heads/main")
    pushed = cli("verify", run_id, "-C", str(recorded))
    assert pushed.returncode == 0, pushed.stdout
    assert "is on origin/main" in pushed.stdout


def test_the_worktree_is_removed_when_the_stage_fails_on_rebuild(
    recorded: Path, tmp_path: Path
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {"TMPDIR": str(temp), "DVFLOW_TEST_PICKY": ""}
    result = cli("verify", stage_runs(recorded)["picky"], "--rebuild", "-C", str(recorded), env=env)
    assert result.returncode == 2, result.stderr
    assert "stage picky failed when re-run" in result.stderr
    assert "DVFLOW_TEST_PICKY is not set" in result.stderr
    assert worktrees(recorded) == 1 and not list(temp.iterdir())


def test_the_worktree_is_removed_when_interrupted(recorded: Path, tmp_path: Path) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, **PICKY, "TMPDIR": str(temp), "DVFLOW_TEST_SLEEP": "60"}
    proc = subprocess.Popen(
        [str(DVFLOW), "verify", stage_runs(recorded)["picky"], "--rebuild", "-C", str(recorded)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while worktrees(recorded) < 2 or not list(temp.glob("*/tree/picky.py")):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    time.sleep(2)  # let the stage command start
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "the rebuild worktree was removed" in err
    assert worktrees(recorded) == 1 and not list(temp.iterdir())


def test_verify_of_an_unknown_model_is_not_found(recorded: Path) -> None:
    result = cli("verify", "models:/nothing/1", "-C", str(recorded))
    assert result.returncode == 5
    assert "no registered model 'nothing'" in result.stderr


def test_checkout_gives_the_exact_code_and_byte_identical_data(
    recorded: Path, tmp_path: Path
) -> None:
    import hashlib

    params = recorded / "params.yaml"
    params.write_text(params.read_text().replace("n: 3", "n: 4"))
    assert cli("run", "steady", "-C", str(recorded)).returncode == 0
    record = json.loads(
        cli("show", stage_runs(recorded)["steady"], "--json", "-C", str(recorded)).stdout
    )
    target = tmp_path / "exact"
    result = cli("checkout", record["mlflow"]["run_id"], "--into", str(target), "-C", str(recorded))
    assert result.returncode == 0, result.stderr
    assert f"cd {target}" in result.stdout
    assert "n: 4" in (target / "params.yaml").read_text()  # the dirty patch, applied
    assert git(target, "rev-parse", "HEAD").strip() == record["code"]["commit"]
    out = next(p for p in record["outputs"] if p["path"] == "steady.txt")
    assert hashlib.md5((target / "steady.txt").read_bytes()).hexdigest() == out["md5"]  # noqa: S324
    again = cli("checkout", record["mlflow"]["run_id"], "--into", str(target), "-C", str(recorded))
    assert again.returncode == 3 and "is not empty" in again.stderr


def test_targets_a_user_copies_from_dvflow_output_or_gets_wrong(recorded: Path) -> None:
    run_id = stage_runs(recorded)["steady"]
    short = cli("verify", run_id[:12], "-C", str(recorded))
    assert short.returncode == 0, short.stdout + short.stderr
    assert f"(run {run_id})" in short.stdout
    unknown = cli("verify", "0" * 32, "-C", str(recorded))
    assert unknown.returncode == 5 and "no run" in unknown.stderr
    for bad in ("models:/steady", "models:/steady@", "models:/"):
        result = cli("verify", bad, "-C", str(recorded))
        assert result.returncode == 2, (bad, result.stderr)
    parent = tracking_client(recorded).get_run(run_id).data.tags["mlflow.parentRunId"]
    pipeline = cli("verify", parent, "-C", str(recorded))
    assert pipeline.returncode == 2 and "it is a pipeline run" in pipeline.stderr
    assert run_id in pipeline.stderr
    loose = cli("verify", run_id, "--rtol", "0.1", "-C", str(recorded))
    assert loose.returncode == 2 and "apply to --rebuild only" in loose.stderr


def test_a_rebuild_leaves_the_projects_cache_and_run_cache_untouched(recorded: Path) -> None:
    cache = recorded / ".dvc" / "cache"
    before = sorted(p.relative_to(cache) for p in cache.rglob("*"))
    assert any(p.parts[0] == "runs" for p in before)
    run_id = stage_runs(recorded)["noisy"]
    result = cli("verify", run_id, "--rebuild", "-C", str(recorded))
    assert result.returncode == 1, result.stderr  # noisy: new bytes every time
    # Its throwaway output is not in the run-cache, where the next dvc repro
    # would restore it in place of the recorded one.
    assert sorted(p.relative_to(cache) for p in cache.rglob("*")) == before


def _subdir_project(
    tmp_path: Path, template_db: Path, sub: str, source: Path = PROJECTS / "monorepo"
) -> tuple[Path, Path]:
    """A copy of ``source`` with ``sub`` a DVC project of its own, run by dvflow and pushed."""
    root = tmp_path / "monorepo"
    shutil.copytree(source, root)
    git(root, "init", "-q")
    project = root / sub
    for args in (("init", "--subdir", "-q"), ("remote", "add", "-d", "s", str(tmp_path / "r"))):
        assert dvc(project, *args).returncode == 0
    shutil.copy(template_db, project / "mlflow.db")
    if (project / "data" / "raw.txt").exists():
        assert dvc(project, "add", "data/raw.txt").returncode == 0
    git(root, "add", "-A")
    git(root, "commit", "-qm", "a DVC project in a folder")
    ran = cli("run", "-C", sub, cwd=root)
    assert ran.returncode == 0, ran.stderr
    git(root, "add", "-A")
    git(root, "commit", "-qm", "results")
    assert dvc(project, "push", "-q").returncode == 0
    return root, project


def test_a_subdir_projects_stage_rebuilds_identical(tmp_path: Path, template_db: Path) -> None:
    root, project = _subdir_project(tmp_path, template_db, "proj-a")
    run_id = stage_runs(project)["proj-a/dvc.yaml:prepare"]
    result = cli("verify", run_id, "--rebuild", "-C", "proj-a", cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "identical  proj-a/clean.txt" in result.stdout


def test_a_subdir_projects_templated_foreach_metrics_rebuild_within_tolerance(
    tmp_path: Path, template_db: Path
) -> None:
    # pipeline-conifguration's shape: a foreach stage whose own metrics path is
    # templated, in a 'dvc init --subdir' project. DVC opened at the top of the
    # worktree found the subproject's dvc.yaml dvc-ignored.
    source = tmp_path / "src"
    shutil.copytree(PROJECTS / "monorepo", source)
    (source / "proj-b" / "params.yaml").write_text("reports: reports\nsets: [ab, abc]\n")
    (source / "proj-b" / "score.py").write_text(
        "import json, pathlib, sys\n"
        "pathlib.Path('reports').mkdir(exist_ok=True)\n"
        "item = sys.argv[1]\n"
        "pathlib.Path(f'reports/metrics_{item}.json').write_text(json.dumps({'n': len(item)}))\n"
    )
    (source / "proj-b" / "dvc.yaml").write_text(
        "stages:\n  score:\n    foreach: ${sets}\n    do:\n"
        "      cmd: python score.py ${item}\n      deps: [score.py]\n"
        "      metrics:\n        - ${reports}/metrics_${item}.json:\n            cache: false\n"
    )
    root, project = _subdir_project(tmp_path, template_db, "proj-b", source)
    run_id = stage_runs(project)["proj-b/dvc.yaml:score@abc"]
    result = cli("verify", run_id, "--rebuild", "-C", "proj-b", cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "metric     n: recorded 3.0, rebuilt 3.0 (within tolerance)" in result.stdout
    assert result.stdout.rstrip().endswith("identical")
