"""lineage and impact on the shapes real DVC projects have (issue 10).

Fixture projects: tests/projects/folders (iterative/example-dvc-experiments:
a file ``dvc add``ed inside a folder dependency, code folders, a ``wdir``
stage) and tests/projects/twins (two paths with the same bytes). History
questions use the session's history repository (tests/history_repo.py),
cloned the way CI checks a repository out.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import cli, dvc, git, tracking_client
from history_repo import HistoryRepo
from test_lineage import SCHEMA, edges, graph, lock_md5, nodes


def _commit(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-qm", message)


def _ok(result: Any) -> None:
    assert result.returncode == 0, result.stdout + result.stderr


def _labels(data: dict[str, Any], *kinds: str) -> set[str]:
    return {n["label"] for n in data["nodes"] if n["kind"] in kinds}


def _root(data: dict[str, Any]) -> dict[str, Any]:
    (root,) = data["roots"]
    return next(n for n in data["nodes"] if n["id"] == root)


# -- two paths, one content ------------------------------------------------------


def _twins(make_project: Callable[..., Path]) -> Path:
    root = make_project("twins")
    _ok(dvc(root, "repro", "-q"))
    _commit(root, "split, fit and audit")
    return root


def test_a_path_with_the_same_bytes_as_another_keeps_its_own_name_and_consumers(
    make_project: Callable[..., Path],
) -> None:
    root = _twins(make_project)
    train = graph(root, "impact", "data/train.csv", "--offline")
    assert _labels(train, "stage") == {"fit"}
    config = graph(root, "impact", "conf/a.yaml", "--offline")
    assert _labels(config, "stage") == {"fit"}
    backup = graph(root, "lineage", "data/backup.csv", "--offline")
    assert _root(backup)["label"] == "data/backup.csv"
    assert _root(backup)["attrs"]["same_content_as"] == ["data/train.csv"]
    assert _labels(backup, "stage") == {"split"}
    tree = cli("lineage", "data/backup.csv", "--offline", "-C", str(root))
    assert tree.stdout.splitlines()[0].startswith("data data/backup.csv  md5 ")
    assert "same content as data/train.csv" in tree.stdout


def test_runs_of_two_paths_with_the_same_bytes_are_told_apart(
    make_project: Callable[..., Path],
) -> None:
    root = make_project("twins")
    _ok(cli("run", "-C", str(root)))
    _commit(root, "results")
    train = graph(root, "impact", "data/train.csv")
    assert _labels(train, "run") == {"fit"}
    backup = graph(root, "impact", "data/backup.csv")
    assert _labels(backup, "run") == {"audit"}


# -- folders: a file inside a directory, code folders, wdir ------------------------


def _folders(make_project: Callable[..., Path]) -> Path:
    root = make_project("folders", commit=False)
    (root / "data").mkdir(exist_ok=True)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name in ("images/cat.png", "images/dog.png"):
            info = tarfile.TarInfo(name)
            info.size = len(name)
            info.mtime = 0
            archive.addfile(info, io.BytesIO(name.encode()))
    (root / "data" / "images.tar.gz").write_bytes(buffer.getvalue())
    _ok(dvc(root, "add", "-q", "data/images.tar.gz"))
    _ok(dvc(root, "repro", "-q"))
    _commit(root, "data, train and evaluate")
    return root


def test_a_file_added_inside_a_folder_dependency_reaches_the_stages_using_the_folder(
    make_project: Callable[..., Path],
) -> None:
    root = _folders(make_project)
    data = graph(root, "impact", "data/images.tar.gz", "--offline")
    assert _labels(data, "stage") == {"train", "evaluate"}
    folder = next(n for n in nodes(data, "data") if n["label"] == "data")
    assert (data["roots"][0], folder["id"], "contained-in") in edges(data)
    tree = cli("impact", "data/images.tar.gz", "--offline", "-C", str(root))
    assert "0 stage run(s), 2 stage(s) from Git history" in tree.stdout, tree.stdout
    assert "└── in folder: data data  md5 " in tree.stdout


def test_a_fresh_clone_without_data_links_the_file_to_its_folder_from_git_alone(
    make_project: Callable[..., Path], tmp_path: Path
) -> None:
    # As on a CI runner: no DVC cache, no data; the folder's listing comes
    # from the files Git has and the md5 in data/images.tar.gz.dvc.
    root = _folders(make_project)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(root), str(clone))
    assert not (clone / "data" / "images.tar.gz").exists()
    data = graph(clone, "impact", "data/images.tar.gz", "--offline")
    assert _labels(data, "stage") == {"train", "evaluate"}


def test_a_fresh_clone_reads_an_output_folders_listing_from_a_local_remote(
    make_project: Callable[..., Path], tmp_path: Path
) -> None:
    root = _folders(make_project)
    _ok(dvc(root, "push", "-q"))
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(root), str(clone))
    assert not (clone / ".dvc" / "cache").exists()
    # The team's remote, as its .dvc/config would name it (dvflow init keeps
    # its default one in config.local).
    # Not parsed from 'dvc remote list': DVC wraps a long URL at the terminal's width.
    name = dvc(root, "remote", "default").stdout.strip()
    url = dvc(root, "config", f"remote.{name}.url").stdout.strip()
    _ok(dvc(clone, "remote", "add", "-d", "team", url))
    data = graph(clone, "lineage", "models/model.bin", "--offline")
    assert _labels(data, "stage") == {"train"}


def test_lineage_of_a_file_inside_an_output_folder_finds_the_folders_producer(
    make_project: Callable[..., Path],
) -> None:
    root = _folders(make_project)
    data = graph(root, "lineage", "models/model.bin", "--offline")
    assert _root(data)["label"] == "models/model.bin"
    models = next(n for n in nodes(data, "data") if n["label"] == "models")
    assert (models["id"], data["roots"][0], "contains") in edges(data)
    assert _labels(data, "stage") == {"train"}
    assert "data/images.tar.gz.dvc" in _labels(data, "source")


def test_wdir_stages_speak_repo_relative_paths(make_project: Callable[..., Path]) -> None:
    root = _folders(make_project)
    data = graph(root, "lineage", "results/score.txt", "--offline")
    assert _root(data)["label"] == "results/score.txt"
    assert _labels(data, "stage") == {"evaluate", "train"}
    paths = {n["attrs"]["path"] for n in data["nodes"] if n["kind"] in ("data", "code")}
    assert {"models", "src/evaluate.py", "results/score.txt"} <= paths
    assert not [p for p in paths if p.startswith("..")]
    down = graph(root, "impact", "models", "--offline")
    assert _labels(down, "stage") == {"evaluate"}


def test_code_dependencies_are_drawn_as_code_not_data(
    make_project: Callable[..., Path],
) -> None:
    root = _folders(make_project)
    data = graph(root, "lineage", "models", "--offline")
    kinds = {n["label"]: n["kind"] for n in data["nodes"]}
    assert kinds["src"] == "code"
    assert kinds["data"] == "data" and kinds["models"] == "data"
    tree = cli("lineage", "models", "--offline", "-C", str(root)).stdout
    assert "code src  md5 " in tree


# -- producers ------------------------------------------------------------------


def _stage_runs(root: Path, stage: str) -> list[Any]:
    client = tracking_client(root)
    experiments = [e.experiment_id for e in client.search_experiments()]
    return list(
        client.search_runs(
            experiments,
            f"tags.`dvflow.stage` = '{stage}'",
            order_by=["attributes.start_time ASC"],
        )
    )


def test_a_run_made_after_its_consumer_is_not_offered_as_its_producer(
    make_project: Callable[..., Path],
) -> None:
    root = make_project("basic")
    _ok(cli("run", "-C", str(root)))
    _commit(root, "results")
    # The same bytes again, made by a later run (a comment changed the code).
    with (root / "prepare.py").open("a") as handle:
        handle.write("# same output\n")
    _ok(cli("run", "-C", str(root)))
    _commit(root, "results again")
    first, second = _stage_runs(root, "prepare")
    assert second.data.tags["dvflow.status"] == "ran"
    train = _stage_runs(root, "train")[0]
    data = graph(root, "lineage", train.info.run_id)
    clean = next(n for n in nodes(data, "data") if n["label"] == "data/clean")
    producers = {s for s, t, kind in edges(data) if t == clean["id"] and kind == "produced"}
    assert producers == {f"run:{first.info.run_id}"}
    assert f"run:{second.info.run_id}" in clean["attrs"]["also_produced_by"]


@pytest.mark.parametrize("bind", [False, True], ids=["committed", "bound"])
def test_the_dvc_lock_entry_a_run_wrote_is_not_named_as_another_producer(
    make_project: Callable[..., Path], bind: bool
) -> None:
    root = make_project("basic")
    _ok(cli("run", "-C", str(root)))
    _commit(root, "results")
    if bind:
        _ok(cli("bind", "-C", str(root)))
    train = _stage_runs(root, "train")[0]
    for target in (train.info.run_id, "model.txt"):
        data = graph(root, "lineage", target)
        clean = next(n for n in nodes(data, "data") if n["label"] == "data/clean")
        assert any(s.startswith("run:") for s, t, _ in edges(data) if t == clean["id"])
        assert [n["label"] for n in nodes(data, "data") if n["attrs"].get("also_produced_by")] == []
        tree = cli("lineage", target, "-C", str(root))
        _ok(tree)
        assert "also produced by" not in tree.stdout


def test_runs_that_made_nothing_are_not_named_as_other_producers(
    make_project: Callable[..., Path],
) -> None:
    root = make_project("basic")
    _ok(cli("run", "-C", str(root)))
    # Every stage up to date, recorded anyway: two runs made nothing.
    _ok(cli("run", "--record-noop", "-C", str(root)))
    data = graph(root, "lineage", "model.txt")
    assert [n["label"] for n in nodes(data, "data") if n["attrs"].get("also_produced_by")] == []
    assert "also produced by" not in cli("lineage", "model.txt", "-C", str(root)).stdout


def test_a_stage_committed_before_a_run_that_made_the_same_bytes_is_still_named(
    make_project: Callable[..., Path],
) -> None:
    root = make_project("basic")
    first = git(root, "rev-parse", "--abbrev-ref", "HEAD").strip()
    # Another branch made the same bytes earlier, without dvflow.
    git(root, "checkout", "-q", "-b", "early")
    with (root / "prepare.py").open("a") as handle:
        handle.write("# the same rows\n")
    _ok(dvc(root, "repro", "-q"))
    git(root, "add", "-A")
    earlier = {"GIT_COMMITTER_DATE": "2020-01-01T00:00:00 +0000"}
    subprocess.run(
        ["git", "commit", "-qm", "early"], cwd=root, env={**os.environ, **earlier}, check=True
    )
    git(root, "checkout", "-q", first)
    _ok(cli("run", "-C", str(root)))
    _commit(root, "results")
    data = graph(root, "lineage", _stage_runs(root, "train")[0].info.run_id)
    clean = next(n for n in nodes(data, "data") if n["label"] == "data/clean")
    (other,) = clean["attrs"]["also_produced_by"]
    assert other.startswith("entry:")
    tree = cli("lineage", "model.txt", "-C", str(root))
    assert f"same content also produced by stage entry {other[6:18]}" in tree.stdout


def test_a_stage_from_git_history_is_given_the_producer_of_its_own_dvc_lock(
    make_project: Callable[..., Path],
) -> None:
    root = _twins(make_project)
    first = git(root, "rev-parse", "--abbrev-ref", "HEAD").strip()
    # Another branch makes the same bytes with another command line.
    git(root, "checkout", "-q", "-b", "other")
    with (root / "split.py").open("a") as handle:
        handle.write("# the same rows\n")
    _ok(dvc(root, "repro", "-q"))
    git(root, "add", "-A")
    later = {"GIT_COMMITTER_DATE": "2030-01-01T00:00:00 +0000"}
    subprocess.run(
        ["git", "commit", "-qm", "split again"], cwd=root, env={**os.environ, **later}, check=True
    )
    git(root, "checkout", "-q", first)
    _ok(dvc(root, "checkout", "-q"))
    data = graph(root, "lineage", "fit.txt", "--offline")
    train = next(n for n in nodes(data, "data") if n["label"] == "data/train.csv")
    producers = [s for s, t, kind in edges(data) if t == train["id"] and kind == "produced"]
    assert len(producers) == 1
    split = next(n for n in data["nodes"] if n["id"] == producers[0])
    assert split["attrs"]["commit"] == git(root, "rev-parse", first).strip()
    assert len(train["attrs"]["also_produced_by"]) == 1
    # The target itself, at a rev: that rev's dvc.lock names its producer.
    for rev in (first, "other"):
        at = graph(root, "lineage", f"data/train.csv@{rev}", "--offline")
        made = [s for s, t, kind in edges(at) if t == at["roots"][0] and kind == "produced"]
        (split,) = [n for n in at["nodes"] if n["id"] in made]
        assert split["attrs"]["commit"] == git(root, "rev-parse", rev).strip()


# -- branches and the index ---------------------------------------------------------


def test_a_fresh_clone_reads_branches_that_exist_only_on_the_remote(
    history: HistoryRepo, tmp_path: Path
) -> None:
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(history.root), str(clone))
    assert "experiment" not in git(clone, "branch")
    data = graph(clone, "impact", "data/raw.txt", "--offline")
    versions = {n["attrs"]["md5"]: n["attrs"]["refs"] for n in nodes(data, "data")}
    experiment = lock_md5(clone, "origin/experiment", "model/model.bin")
    assert versions[experiment] == ["origin/experiment"]
    assert not [r for refs in versions.values() for r in refs if r.endswith("/HEAD")]


def _answers(root: Path) -> dict[str, Any]:
    found = {}
    for command, target in (("impact", "data/raw.txt"), ("lineage", "data/raw.txt")):
        data = graph(root, command, target, "--offline")
        found[command] = (sorted(map(json.dumps, data["nodes"])), sorted(edges(data)))
    return found


def _same_as_rebuild(root: Path) -> dict[str, Any]:
    incremental = _answers(root)
    _ok(cli("index", "--rebuild", "--offline", "-C", str(root)))
    assert _answers(root) == incremental
    return incremental


def _lock_with_model(origin: Path, branch: str, md5: str, start: str = "main") -> None:
    """A commit on ``branch`` whose dvc.lock says the model has ``md5``."""
    git(origin, "checkout", "-q", "-B", branch, start)
    lock = origin / "dvc.lock"
    old = lock_md5(origin, "HEAD", "model/model.bin")
    lock.write_text(lock.read_text().replace(old, md5))
    git(origin, "commit", "-qam", f"model {md5[:6]} on {branch}")
    git(origin, "checkout", "-q", "main")


def test_the_incremental_index_answers_as_a_rebuild_when_branches_come_and_go(
    history: HistoryRepo, tmp_path: Path
) -> None:
    origin = tmp_path / "origin"
    git(tmp_path, "clone", "-q", str(history.root), str(origin))
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    _same_as_rebuild(clone)

    side, moved = "a" * 32, "b" * 32
    _lock_with_model(origin, "side", side)
    git(clone, "fetch", "-q", "--prune")
    _lock_with_model(clone, "local", "c" * 32)
    answer = _same_as_rebuild(clone)
    assert any(side in n for n in answer["impact"][0])

    git(origin, "branch", "-q", "-D", "side")
    _lock_with_model(origin, "main", moved, start="main~1")  # a force-push of main
    git(clone, "fetch", "-q", "--prune", "--force")
    git(clone, "branch", "-q", "-D", "local")
    answer = _same_as_rebuild(clone)
    flat = json.dumps(answer)
    assert side not in flat and "c" * 32 not in flat and moved in flat


def test_a_tree_names_a_long_ref_list_once(history_copy: HistoryRepo) -> None:
    root = history_copy.root
    for n in range(6):
        git(root, "tag", f"t{n}", history_copy.results)
    tree = cli("lineage", "model/model.bin@v1.0", "--offline", "-C", str(root)).stdout
    listed = "experiment, main, t0, t1, t2, t3, t4, t5, v1.0"
    assert tree.count(listed) == 1, tree
    assert tree.splitlines()[0] == f"refs A: {listed}"
    assert "[refs A]" in tree


# -- MLflow dataset sources -------------------------------------------------------


def test_dataset_sources_have_no_double_slash_and_old_ones_still_parse() -> None:
    from dvflow.stores._dataset import DvcDatasetSource

    source = DvcDatasetSource("https://github.com/o/r", "data/raw.csv", "abc", "0" * 32)
    assert "//" not in source.uri.removeprefix("dvc://")
    assert DvcDatasetSource._resolve(source.uri).to_dict() == source.to_dict()
    old = DvcDatasetSource._resolve(f"dvc://https://github.com/o/r//data/raw.csv?md5={'1' * 32}")
    assert (old.repo, old.path, old.md5) == ("https://github.com/o/r", "data/raw.csv", "1" * 32)


def test_the_schema_names_code_nodes_and_folder_edges() -> None:
    kinds = SCHEMA["$defs"]["node"]["properties"]["kind"]["enum"]
    assert "code" in kinds
    assert {"contains", "contained-in"} <= set(
        SCHEMA["$defs"]["edge"]["properties"]["kind"]["enum"]
    )
    assert shutil.which("git")
