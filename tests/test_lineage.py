"""lineage and impact over a real repository with real history (tests/history_repo.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import cli, git, tracking_client
from history_repo import HistoryRepo, dvflow, set_param

ROOT = Path(__file__).parent.parent
SCHEMA = json.loads((ROOT / "docs" / "lineage.schema.json").read_text())


def graph(root: Path, command: str, target: str, *extra: str) -> dict[str, Any]:
    result = cli(command, target, "--json", "-C", str(root), *extra)
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    import jsonschema

    jsonschema.validate(data, SCHEMA)
    return data


def nodes(data: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [n for n in data["nodes"] if n["kind"] == kind]


def node(data: dict[str, Any], node_id: str) -> dict[str, Any]:
    return next(n for n in data["nodes"] if n["id"] == node_id)


def edges(data: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(e["source"], e["target"], e["kind"]) for e in data["edges"]}


def lock_md5(root: Path, rev: str, path: str) -> str:
    """The md5 dvc.lock at ``rev`` gives an output (read with git and yaml, not dvflow)."""
    import yaml

    lock = yaml.safe_load(git(root, "show", f"{rev}:dvc.lock"))
    for stage in lock["stages"].values():
        for out in stage.get("outs", []):
            if out["path"] == path:
                return str(out["md5"])
    raise AssertionError(f"{path} not in dvc.lock at {rev}")


def version_run(root: Path, name: str, version: str) -> str:
    return str(tracking_client(root).get_model_version(name, version).run_id)


def test_lineage_of_a_model_version_walks_back_to_added_and_imported_roots(
    history: HistoryRepo,
) -> None:
    data = graph(history.root, "lineage", "models:/lin-model/2")
    model_md5 = lock_md5(history.root, history.experiment, "model/model.bin")
    features = lock_md5(history.root, history.experiment, "features")
    train_run = version_run(history.root, "lin-model", "2")
    assert data["roots"] == ["model:lin-model/2"]
    assert node(data, "model:lin-model/2")["attrs"]["md5"] == model_md5
    train = node(data, f"run:{train_run}")
    assert train["attrs"]["status"] == "ran"
    assert train["attrs"]["params_changed"] == {"train.alpha": ["0.5", "0.9"]}
    assert train["attrs"]["commit"] == history.results and train["attrs"]["dirty"] is True
    assert features.endswith(".dir")
    assert (f"run:{train_run}", "model:lin-model/2", "registered-from") in edges(data)
    assert (f"data:{features}:features", f"run:{train_run}", "consumed") in edges(data)
    # The producer followed is the featurize run of train's own pipeline run
    # (up to date), which leads on to the run that made the bytes.
    featurize = {
        n["attrs"]["status"]: n["id"] for n in nodes(data, "run") if n["label"] == "featurize"
    }
    assert set(featurize) == {"up-to-date", "ran"}
    assert (featurize["up-to-date"], f"data:{features}:features", "produced") in edges(data)
    assert (featurize["ran"], featurize["up-to-date"], "restored-from") in edges(data)
    sources = {n["label"]: n["attrs"] for n in nodes(data, "source")}
    assert sources["data/raw.txt.dvc"]["how"] == "dvc add"
    assert sources["data/raw.txt.dvc"]["commit"] == history.first
    imported = sources["data/words.txt.dvc"]
    assert imported["how"] == "dvc import"
    assert imported["source"]["url"] == str(history.upstream)
    assert imported["source"]["rev_lock"] == history.upstream_rev
    raw = next(n for n in nodes(data, "data") if n["label"] == "data/raw.txt")
    assert raw["attrs"]["refs"] == ["experiment", "main", "v1.0"]


def test_lineage_of_a_run_id_and_of_an_md5_agree(history: HistoryRepo) -> None:
    run_id = version_run(history.root, "lin-model", "1")
    by_run = graph(history.root, "lineage", run_id)
    assert by_run["roots"] == [f"run:{run_id}"]
    model_md5 = lock_md5(history.root, history.results, "model/model.bin")
    by_md5 = graph(history.root, "lineage", model_md5)
    assert by_md5["roots"] == [f"data:{model_md5}:model/model.bin"]
    assert (f"run:{run_id}", f"data:{model_md5}:model/model.bin", "produced") in edges(by_md5)
    assert {n["id"] for n in by_run["nodes"]} <= {n["id"] for n in by_md5["nodes"]}


def test_lineage_of_a_path_at_a_tag_finds_the_run_that_made_it(history: HistoryRepo) -> None:
    data = graph(history.root, "lineage", "model/model.bin@v1.0")
    model_md5 = lock_md5(history.root, "v1.0", "model/model.bin")
    assert data["roots"] == [f"data:{model_md5}:model/model.bin"]
    producer = version_run(history.root, "lin-model", "1")
    assert (f"run:{producer}", f"data:{model_md5}:model/model.bin", "produced") in edges(data)


def test_lineage_where_the_pipeline_ran_without_dvflow_comes_from_git_history(
    history: HistoryRepo,
) -> None:
    data = graph(history.root, "lineage", "model/model.bin")  # the work tree: main
    md5 = lock_md5(history.root, "main", "model/model.bin")
    assert data["roots"] == [f"data:{md5}:model/model.bin"]
    assert not nodes(data, "run")
    stages = {n["label"]: n["attrs"] for n in nodes(data, "stage")}
    assert set(stages) == {"featurize", "train"}
    assert stages["featurize"]["commit"] == history.plain
    assert stages["featurize"]["params_changed"] == {"featurize.n": ["2", "3"]}
    assert stages["train"]["params_changed"] == {}
    assert {n["label"] for n in nodes(data, "source")} == {
        "data/raw.txt.dvc",
        "data/words.txt.dvc",
    }


def test_impact_of_raw_data_reaches_every_branch_run_model_and_alias(
    history_copy: HistoryRepo,
) -> None:
    root = history_copy.root
    tracking_client(root).set_registered_model_alias("lin-model", "production", "1")
    data = graph(root, "impact", "data/raw.txt")
    assert data["direction"] == "downstream"
    models = {n["label"] for n in nodes(data, "model")}
    assert models == {"lin-model v1", "lin-model v2"}
    alias = node(data, "alias:lin-model@production")
    assert alias["attrs"] == {
        "name": "lin-model",
        "alias": "production",
        "version": "1",
        "in_use": True,
    }
    versions = {n["attrs"]["md5"]: n["attrs"]["refs"] for n in nodes(data, "data")}
    assert versions[lock_md5(root, "experiment", "model/model.bin")] == ["experiment"]
    assert versions[lock_md5(root, "v1.0", "model/model.bin")] == ["experiment", "main", "v1.0"]
    assert versions[lock_md5(root, "main", "model/model.bin")] == ["main"]
    runs = {(n["label"], n["attrs"]["status"]) for n in nodes(data, "run")}
    assert runs == {
        ("featurize", "ran"),
        ("featurize", "up-to-date"),
        ("train", "ran"),
    } or runs >= {("featurize", "ran"), ("train", "ran")}
    assert len([n for n in nodes(data, "run") if n["label"] == "train"]) == 2
    # The commit made without dvflow shows as stages from Git history.
    assert {n["label"] for n in nodes(data, "stage")} == {"featurize", "train"}


def test_impact_tree_flags_the_alias_in_use(history_copy: HistoryRepo) -> None:
    root = history_copy.root
    tracking_client(root).set_registered_model_alias("lin-model", "production", "2")
    result = cli("impact", "data/words.txt", "-C", str(root))
    assert result.returncode == 0, result.stderr
    assert "lin-model v2  @production" in result.stdout
    assert "alias lin-model@production  -> v2  (in use)" in result.stdout


def test_dot_output_parses_with_graphviz_parser_and_matches_json(history: HistoryRepo) -> None:
    import pydot

    data = graph(history.root, "lineage", "models:/lin-model/2")
    result = cli("lineage", "models:/lin-model/2", "--dot", "-C", str(history.root))
    assert result.returncode == 0, result.stderr
    (parsed,) = pydot.graph_from_dot_data(result.stdout)
    names = {n.get_name().strip('"') for n in parsed.get_nodes()} - {"node"}
    assert names == {n["id"] for n in data["nodes"]}
    dot_edges = {
        (e.get_source().strip('"'), e.get_destination().strip('"'), e.get("label").strip('"'))
        for e in parsed.get_edges()
    }
    assert dot_edges == edges(data)


def test_mermaid_output_declares_every_node_and_edge(history: HistoryRepo) -> None:
    data = graph(history.root, "impact", "data/raw.txt")
    result = cli("impact", "data/raw.txt", "--mermaid", "-C", str(history.root))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "flowchart LR"
    declared = {}
    arrows = []
    for line in lines[1:]:
        if match := re.fullmatch(r'    (n\d+)(\["|\(\[")([^"]*)("\]|"\]\))', line):
            declared[match[1]] = match[3]
        elif match := re.fullmatch(r"    (n\d+) -->\|([a-z-]+)\| (n\d+)", line):
            arrows.append((match[1], match[2], match[3]))
        else:
            raise AssertionError(f"not Mermaid flowchart syntax: {line!r}")
    assert len(declared) == len(data["nodes"])
    assert len(arrows) == len(data["edges"])
    assert all(a in declared and b in declared for a, _, b in arrows)


def test_index_updates_incrementally_and_a_rebuild_gives_the_same_answers(
    history_copy: HistoryRepo,
) -> None:
    root = history_copy.root
    first = cli("index", "-C", str(root))
    assert first.returncode == 0, first.stderr
    assert "read 4 new commit(s)" in first.stdout
    again = cli("index", "-C", str(root))
    # Nothing moved and the store's file did not change: neither is read again.
    assert "read 0 new commit(s), 0 updated ref(s), 0 new run(s), store unchanged" in again.stdout

    git(root, "checkout", "-q", "experiment")
    subprocess.run([sys.executable, "-m", "dvc", "checkout", "-q"], cwd=root, check=True)
    set_param(root, "train", "alpha", "0.7")
    dvflow(root, "run")
    git(root, "commit", "-qam", "alpha 0.7")
    update = cli("index", "-C", str(root))
    # One new commit, one moved branch (and HEAD); 'dvflow run' wrote its pipeline
    # run and two stage runs through to the index (trace/_records): none left to read.
    assert "read 1 new commit(s), 2 updated ref(s), 0 new run(s), store unchanged" in (
        update.stdout
    ), update.stdout
    runs = [int(re.findall(r"(\d+) runs", out)[0]) for out in (again.stdout, update.stdout)]
    assert runs[1] == runs[0] + 3, (again.stdout, update.stdout)
    new_md5 = lock_md5(root, "experiment", "model/model.bin")
    answers = {
        target: graph(root, command, target, "--offline")
        for command, target in (
            ("impact", "data/raw.txt"),
            ("lineage", "models:/lin-model/3"),
            ("lineage", new_md5),
        )
    }
    assert node(answers["models:/lin-model/3"], "model:lin-model/3")["attrs"]["md5"] == new_md5
    rebuilt = cli("index", "--rebuild", "-C", str(root))
    assert rebuilt.returncode == 0, rebuilt.stderr
    for target, before in answers.items():
        command = "impact" if target == "data/raw.txt" else "lineage"
        after = graph(root, command, target, "--offline")
        assert sorted(map(json.dumps, after["nodes"])) == sorted(map(json.dumps, before["nodes"]))
        assert edges(after) == edges(before)


def test_two_index_updates_at_once_both_succeed(history_copy: HistoryRepo) -> None:
    root = history_copy.root
    procs = [
        subprocess.Popen(
            [str(Path(sys.executable).with_name("dvflow")), "index", "--rebuild", "-C", str(root)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert "6 runs, 2 model versions" in out


def test_a_warm_query_imports_neither_mlflow_nor_dvc(history: HistoryRepo) -> None:
    assert cli("index", "-C", str(history.root)).returncode == 0
    code = (
        "import sys\n"
        "from dvflow.trace._queries import lineage\n"
        f"g = lineage('models:/lin-model/1', {str(history.root)!r})\n"
        "assert g.of_kind('model'), g\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('mlflow', 'dvc'))\n"
        "print(heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_a_broken_index_file_is_rebuilt_not_reported(history_copy: HistoryRepo) -> None:
    root = history_copy.root
    (root / ".dvflow").mkdir(exist_ok=True)
    (root / ".dvflow" / "index.sqlite").write_bytes(b"this is not a database" * 100)
    result = cli("lineage", "models:/lin-model/1", "-C", str(root))
    assert result.returncode == 0, result.stderr
    assert "model lin-model v1" in result.stdout


@pytest.mark.parametrize(
    ("target", "needle"),
    [
        ("models:/lin-model/9", "Model 'lin-model' has versions 1, 2."),
        ("models:/lin-model@nope", "no alias @nope (its aliases: none)"),
        ("models:/nope@production", "No registered model 'nope'"),
        ("no/such/file.txt", "No DVC-tracked path"),
        ("0123456789abcdef0123456789abcdef", "nothing in Git history"),
        ("model/model.bin@no-such-rev", "No commit, branch or tag named 'no-such-rev'"),
    ],
)
def test_an_unknown_target_is_one_clear_error(
    history: HistoryRepo, target: str, needle: str
) -> None:
    result = cli("lineage", target, "-C", str(history.root), "--offline")
    assert result.returncode == 5, result.stderr
    assert needle in result.stderr
    assert "Traceback" not in result.stderr


def test_a_repository_made_without_dvflow_or_mlflow_still_answers(history: HistoryRepo) -> None:
    # The upstream repository: git + dvc add, no MLflow store at all.
    up = graph(history.upstream, "lineage", "words.txt")
    assert [n["attrs"]["how"] for n in nodes(up, "source")] == ["dvc add"]
    down = graph(history.upstream, "impact", "words.txt")
    assert down["nodes"] == [n for n in down["nodes"] if n["kind"] == "data"]
    assert not (history.upstream / "mlflow.db").exists()
    assert ".dvflow" not in git(history.upstream, "status", "--porcelain")


def test_impact_of_a_model_file_lists_the_versions_registered_from_it(
    history: HistoryRepo,
) -> None:
    data = graph(history.root, "impact", "model/model.bin@v1.0")
    assert {n["label"] for n in nodes(data, "model")} == {"lin-model v1"}
    tree = cli("impact", "model/model.bin@experiment", "-C", str(history.root))
    assert tree.stdout.rstrip().endswith("model versions: lin-model v2"), tree.stdout


def test_short_ids_as_printed_by_the_tree_are_targets(history: HistoryRepo) -> None:
    run_id = version_run(history.root, "lin-model", "1")
    by_prefix = graph(history.root, "lineage", run_id[:12])
    assert by_prefix["roots"] == [f"run:{run_id}"]
    md5 = lock_md5(history.root, "v1.0", "model/model.bin")
    assert graph(history.root, "lineage", md5[:8])["roots"] == [f"data:{md5}:model/model.bin"]


def test_paths_may_be_written_from_the_current_folder(history: HistoryRepo) -> None:
    inside = cli("lineage", "raw.txt", "--json", cwd=history.root / "data")
    dotted = cli("lineage", "./data/raw.txt", "--json", cwd=history.root)
    assert inside.returncode == 0 and dotted.returncode == 0, inside.stderr + dotted.stderr
    assert json.loads(inside.stdout)["roots"] == json.loads(dotted.stdout)["roots"]


def test_two_output_formats_at_once_are_a_usage_error(history: HistoryRepo) -> None:
    result = cli("lineage", "data/raw.txt", "--json", "--dot", "-C", str(history.root))
    assert result.returncode == 2
    assert "one output format" in result.stderr


def test_the_runs_of_another_store_are_never_shown(history_copy: HistoryRepo) -> None:
    root = history_copy.root
    assert cli("index", "-C", str(root)).returncode == 0
    other = f"sqlite:///{root / 'elsewhere.db'}"
    result = cli(
        "lineage", "model/model.bin@v1.0", "--json", "--tracking-uri", other, "-C", str(root)
    )
    assert result.returncode == 0, result.stderr
    assert "another store" in result.stderr
    assert not [n for n in json.loads(result.stdout)["nodes"] if n["kind"] in ("run", "model")]
