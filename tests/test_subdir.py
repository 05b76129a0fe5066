"""DVC projects in subfolders of one git repository (dvc init --subdir): run each where it is."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from conftest import PROJECTS, cli, dvc, git, stage_runs, tracking_client
from dvflow.core._record import RECORD_ARTIFACT


def _monorepo(tmp_path: Path, template_db: Path) -> Path:
    root = tmp_path / "monorepo"
    shutil.copytree(PROJECTS / "monorepo", root)
    git(root, "init", "-q")
    for sub in ("proj-a", "proj-b"):
        made = dvc(root / sub, "init", "--subdir", "-q")
        assert made.returncode == 0, made.stderr
        shutil.copy(template_db, root / sub / "mlflow.db")
    added = dvc(root / "proj-a", "add", "data/raw.txt")
    assert added.returncode == 0, added.stderr
    git(root, "add", "-A")
    git(root, "commit", "-qm", "two DVC projects")
    return root


def _record(project: Path, run_id: str) -> dict:
    local = tracking_client(project).download_artifacts(
        run_id, RECORD_ARTIFACT, str(project.parent.parent / run_id)
    )
    return json.loads(Path(local).read_text())


def test_run_with_cwd_flag_runs_the_subproject_and_records_repo_relative_paths(
    tmp_path: Path, template_db: Path
) -> None:
    root = _monorepo(tmp_path, template_db)
    result = cli("run", "-C", "proj-a", cwd=root)
    assert result.returncode == 0, result.stderr
    project = root / "proj-a"
    assert (project / "clean.txt").read_text() == "ALPHA\nBETA\n"
    assert not (root / "proj-b" / "count.txt").exists()

    runs = stage_runs(project)
    assert set(runs) == {"proj-a/dvc.yaml:prepare"}
    record = _record(project, runs["proj-a/dvc.yaml:prepare"])
    assert record["code"]["commit"] == git(root, "rev-parse", "HEAD").strip()
    assert record["code"]["dirty"] is False
    assert record["code"]["dvc_root"] == "proj-a"
    inputs = {p["path"]: p for p in record["inputs"]}
    assert set(inputs) == {"proj-a/prepare.py", "proj-a/data/raw.txt"}
    assert (root / inputs["proj-a/data/raw.txt"]["cache_path"]).is_file()
    (output,) = record["outputs"]
    assert output["path"] == "proj-a/clean.txt"
    assert (root / output["cache_path"]).is_file()
    assert output["md5"] in (project / "dvc.lock").read_text()


def test_run_from_inside_a_subproject_runs_that_project(tmp_path: Path, template_db: Path) -> None:
    root = _monorepo(tmp_path, template_db)
    result = cli("run", cwd=root / "proj-b")
    assert result.returncode == 0, result.stderr
    assert (root / "proj-b" / "count.txt").read_text() == "1 2 3\n"
    assert set(stage_runs(root / "proj-b")) == {"proj-b/dvc.yaml:count"}

    nested = cli("run", cwd=root / "proj-a" / "data")
    assert nested.returncode == 0, nested.stderr
    assert set(stage_runs(root / "proj-a")) == {"proj-a/dvc.yaml:prepare"}
    assert "proj-a/dvc.yaml:prepare" in nested.stdout and "ran" in nested.stdout


def test_show_and_bind_find_a_subproject_runs_in_its_own_store(
    tmp_path: Path, template_db: Path
) -> None:
    root = _monorepo(tmp_path, template_db)
    assert cli("run", "-C", "proj-a", cwd=root).returncode == 0
    (run_id,) = stage_runs(root / "proj-a").values()
    git(root, "add", "-A")
    git(root, "commit", "-qm", "results")

    shown = cli("show", run_id, "-C", "proj-a", cwd=root)
    assert shown.returncode == 0, shown.stderr
    assert "output    proj-a/clean.txt" in shown.stdout and "intact" in shown.stderr
    bound = cli("bind", "-C", "proj-a", cwd=root)
    assert bound.returncode == 0, bound.stderr
    assert bound.stdout.startswith("bound 2 run(s)")  # the stage run and its pipeline run


def _ran_and_committed(root: Path) -> str:
    """proj-a run once and committed; the id of its stage run."""
    ran = cli("run", "-C", "proj-a", cwd=root)
    assert ran.returncode == 0, ran.stderr
    (run_id,) = stage_runs(root / "proj-a").values()
    git(root, "add", "-A")
    git(root, "commit", "-qm", "results")
    return run_id


def _graph(*args: str, cwd: Path) -> dict:
    result = cli(*args, "--json", cwd=cwd)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _producers(graph: dict) -> set[str]:
    return {e["source"] for e in graph["edges"] if e["kind"] == "produced"}


def test_lineage_and_impact_read_the_subproject_store_and_its_paths(
    tmp_path: Path, template_db: Path
) -> None:
    root = _monorepo(tmp_path, template_db)
    run_id = _ran_and_committed(root)
    run_node = f"run:{run_id}"

    by_run = _graph("lineage", run_id, "-C", "proj-a", cwd=root)
    assert run_node in {n["id"] for n in by_run["nodes"]}
    for args, where in (
        (("proj-a/clean.txt", "-C", "proj-a"), root),
        (("clean.txt", "-C", "proj-a"), root),
        (("proj-a/clean.txt",), root / "proj-a"),
        (("clean.txt",), root / "proj-a"),
        (("../clean.txt",), root / "proj-a" / "data"),
    ):
        assert run_node in _producers(_graph("lineage", *args, cwd=where)), (args, where)

    impact = _graph("impact", "data/raw.txt", cwd=root / "proj-a")
    assert run_node in {n["id"] for n in impact["nodes"]}

    index = cli("index", cwd=root / "proj-a")
    assert index.returncode == 0, index.stderr
    assert " 2 runs" in index.stdout, index.stdout  # the stage run and its pipeline run
    assert (root / "proj-a" / ".dvflow" / "index.sqlite").is_file()
    assert not (root / ".dvflow").exists()


def test_lineage_from_the_git_root_says_the_subprojects_have_stores_of_their_own(
    tmp_path: Path, template_db: Path
) -> None:
    root = _monorepo(tmp_path, template_db)
    _ran_and_committed(root)
    top = cli("lineage", "proj-a/clean.txt", cwd=root)
    assert top.returncode == 0, top.stderr
    assert "from Git history alone" in top.stderr and "(proj-a, proj-b)" in top.stderr
    inside = cli("lineage", "clean.txt", cwd=root / "proj-a")
    assert inside.returncode == 0, inside.stderr
    assert "Git history alone" not in inside.stderr


def test_register_takes_a_subproject_stage_by_its_name_or_as_recorded(
    tmp_path: Path, template_db: Path
) -> None:
    root = _monorepo(tmp_path, template_db)
    run_id = _ran_and_committed(root)
    for name, stage in (("cleaned", "prepare"), ("recorded", "proj-a/dvc.yaml:prepare")):
        made = cli("register", stage, "--name", name, "-C", "proj-a", cwd=root)
        assert made.returncode == 0, made.stderr
        mv = tracking_client(root / "proj-a").get_model_version(name, "1")
        assert mv.run_id == run_id
    unknown = cli("register", "count", "--name", "counted", cwd=root / "proj-a")
    assert unknown.returncode == 5, unknown.stderr


def test_sync_uploads_the_subproject_spool_to_its_store(tmp_path: Path, template_db: Path) -> None:
    from conftest import free_port

    root = _monorepo(tmp_path, template_db)
    down = f"http://127.0.0.1:{free_port()}"
    ran = cli("run", "--tracking-uri", down, "-C", "proj-a", cwd=root)
    assert ran.returncode == 0, ran.stderr
    assert (root / "proj-a" / ".dvflow" / "spool").is_dir()
    assert stage_runs(root / "proj-a") == {}
    spooled = re.search(r"prepare +ran +run ([0-9a-f]{32})", ran.stdout)
    assert spooled, ran.stdout
    shown = cli("show", spooled[1], "--tracking-uri", down, cwd=root / "proj-a")
    assert shown.returncode == 0, shown.stderr
    assert "in the local spool, not on the server yet" in shown.stderr

    synced = cli("sync", cwd=root / "proj-a" / "data")
    assert synced.returncode == 0, synced.stderr
    assert set(stage_runs(root / "proj-a")) == {"proj-a/dvc.yaml:prepare"}
    assert not (root / "proj-a" / ".dvflow" / "spool").exists()


def test_verify_takes_a_short_run_id_from_the_subproject_index(
    tmp_path: Path, template_db: Path
) -> None:
    root = _monorepo(tmp_path, template_db)
    run_id = _ran_and_committed(root)
    checked = cli("verify", run_id[:8], "-C", "proj-a", cwd=root)
    assert checked.returncode == 0, checked.stderr
    assert run_id in checked.stdout + checked.stderr


def test_diff_takes_short_run_ids_from_the_subproject_index(
    tmp_path: Path, template_db: Path
) -> None:
    root = _monorepo(tmp_path, template_db)
    first = _ran_and_committed(root)
    (root / "proj-a" / "data" / "raw.txt").write_text("alpha\nbeta\ngamma\n")
    assert dvc(root / "proj-a", "add", "data/raw.txt").returncode == 0
    second = _ran_and_committed(root)
    assert second != first
    compared = cli("diff", first[:8], second[:8], cwd=root / "proj-a")
    assert compared.returncode == 0, compared.stderr
    assert "proj-a/data/raw.txt" in compared.stdout and "proj-a/clean.txt" in compared.stdout


def test_checkout_of_a_subproject_run_puts_its_data_in_that_folder_of_the_worktree(
    tmp_path: Path, template_db: Path
) -> None:
    root = _monorepo(tmp_path, template_db)
    run_id = _ran_and_committed(root)
    done = cli("checkout", run_id[:8], "-C", "proj-a", cwd=root)
    assert done.returncode == 0, done.stderr
    tree = root / "proj-a" / ".dvflow" / "checkouts" / run_id[:12]
    assert (tree / "proj-a" / "clean.txt").read_text() == "ALPHA\nBETA\n"
    assert (tree / "proj-a" / "data" / "raw.txt").read_text() == (
        root / "proj-a" / "data" / "raw.txt"
    ).read_text()
    assert "cache" in (tree / "proj-a" / ".dvc" / "config.local").read_text()
