"""dvflow run --push: outputs reach the remote before their run is marked finished."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from conftest import cli, dvc, tracking_client


def object_of(root: Path, remote: Path, path: str) -> Path:
    lock = (root / "dvc.lock").read_text()
    md5 = lock.split(f"path: {path}\n")[1].split("md5: ")[1].split()[0]
    return remote / "files" / "md5" / md5[:2] / md5[2:]


def own_remote(root: Path, remote: Path) -> None:
    assert dvc(root, "remote", "modify", "--local", "storage", "url", str(remote)).returncode == 0


def test_run_push_puts_outputs_in_the_remote(
    make_project: Callable[..., Path], tmp_path: Path
) -> None:
    root = make_project("rebuild")
    own_remote(root, tmp_path / "remote")
    result = cli("run", "steady", "--push", "-C", str(root))
    assert result.returncode == 0, result.stderr
    assert object_of(root, tmp_path / "remote", "steady.txt").is_file()
    client = tracking_client(root)
    (run,) = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], "tags.`dvflow.stage` = 'steady'"
    )
    verified = cli("verify", run.info.run_id, "-C", str(root))
    assert "pass  data" in verified.stdout, verified.stdout


def test_push_true_in_dvflow_yaml_is_the_default_and_no_push_overrides_it(
    make_project: Callable[..., Path], tmp_path: Path
) -> None:
    root = make_project("rebuild")
    own_remote(root, tmp_path / "remote")
    (root / "dvflow.yaml").write_text((root / "dvflow.yaml").read_text() + "push: true\n")
    skipped = cli("run", "steady", "--no-push", "-C", str(root))
    assert skipped.returncode == 0, skipped.stderr
    assert not object_of(root, tmp_path / "remote", "steady.txt").exists()
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("n: 3", "n: 6"))
    pushed = cli("run", "steady", "-C", str(root))
    assert pushed.returncode == 0, pushed.stderr
    assert object_of(root, tmp_path / "remote", "steady.txt").is_file()


def test_a_failed_push_never_leaves_a_finished_run(
    make_project: Callable[..., Path], tmp_path: Path
) -> None:
    root = make_project("rebuild")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the remote folder should be")
    own_remote(root, blocker / "remote")
    result = cli("run", "steady", "--push", "-C", str(root))
    assert result.returncode == 3
    assert "could not push the outputs of stage 'steady'" in result.stderr
    assert "its run was marked FAILED" in result.stderr and "Traceback" not in result.stderr
    client = tracking_client(root)
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], "tags.`dvflow.stage` = 'steady'"
    )
    assert [r.info.status for r in runs] == ["FAILED"]


def test_run_push_also_pushes_a_dvc_added_input(
    make_project: Callable[..., Path], tmp_path: Path
) -> None:
    root = make_project("basic")
    own_remote(root, tmp_path / "remote")
    result = cli("run", "--push", "-C", str(root))
    assert result.returncode == 0, result.stderr
    raw = (root / "data" / "raw.txt.dvc").read_text().split("md5: ")[1].split()[0]
    assert (tmp_path / "remote" / "files" / "md5" / raw[:2] / raw[2:]).is_file()
    client = tracking_client(root)
    (run,) = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], "tags.`dvflow.stage` = 'prepare'"
    )
    verified = cli("verify", run.info.run_id, "-C", str(root))
    assert verified.returncode == 0, verified.stdout + verified.stderr
