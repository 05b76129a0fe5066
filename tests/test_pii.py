"""Personal-data marks and their taint, on a real project (git, DVC, MLflow SQLite).

The project (tests/pii_repo.py): raw data with e-mail addresses feeds an
unsanitised chain (prepare -> train -> pii-model v1 @production, v2) and a
sanitised one (sanitise, declared in dvflow.yaml -> train_clean ->
clean-model v1 @production).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from referencing import Registry

import pii_repo
from conftest import _isolate, cli, git, tracking_client
from pii_repo import PiiRepo
from test_openlineage import check_event, registry  # noqa: F401 - the schemas' fixture


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory, session_home: Path, template_db: Path
) -> PiiRepo:
    with pytest.MonkeyPatch.context() as monkeypatch:
        _isolate(monkeypatch, session_home)
        return pii_repo.build(tmp_path_factory.mktemp("pii"), template_db)


@pytest.fixture
def repo(built: PiiRepo, tmp_path: Path) -> PiiRepo:
    return pii_repo.copy(built, tmp_path / "repo")


def runs_by_stage(root: Path) -> dict[str, set[str]]:
    client = tracking_client(root)
    found: dict[str, set[str]] = {}
    for run in client.search_runs(
        [e.experiment_id for e in client.search_experiments()], "tags.`dvflow.kind` = 'stage'"
    ):
        found.setdefault(run.data.tags["dvflow.stage"], set()).add(run.info.run_id)
    return found


def lock_outs(root: Path, rev: str = "HEAD") -> dict[str, str]:
    import yaml

    lock = yaml.safe_load(git(root, "show", f"{rev}:dvc.lock"))["stages"]
    return {o["path"]: o["md5"] for stage in lock.values() for o in stage.get("outs", [])}


def raw_md5(root: Path) -> str:
    import yaml

    return str(yaml.safe_load((root / "data" / "raw.csv.dvc").read_text())["outs"][0]["md5"])


def status_json(root: Path) -> dict[str, set[str]]:
    result = cli("pii", "status", "--json", "-C", str(root))
    assert result.returncode == 0, result.stderr
    by: dict[str, set[str]] = {}
    for node in json.loads(result.stdout)["nodes"]:
        by.setdefault(node["pii"], set()).add(node["id"])
    return by


def test_marking_the_raw_data_taints_the_prepared_data_both_runs_and_both_model_versions(
    repo: PiiRepo,
) -> None:
    root = repo.root
    marked = cli(
        "pii",
        "mark",
        "data/raw.csv",
        "--fields",
        "email,name",
        "--basis",
        "contract",
        "-C",
        str(root),
    )
    assert marked.returncode == 0, marked.stderr
    first, second = lock_outs(root, repo.first), lock_outs(root, repo.second)
    runs = runs_by_stage(root)
    by = status_json(root)
    assert by["marked"] == {f"data:{raw_md5(root)}:data/raw.csv"}
    tainted = by["tainted"]
    assert {n for n in tainted if n.startswith("data:")} == {
        f"data:{first['data/prepared']}:data/prepared",
        f"data:{first['model.txt']}:model.txt",
        f"data:{second['model.txt']}:model.txt",
    }
    assert {n for n in tainted if n.startswith("run:")} == {
        f"run:{r}" for r in runs["prepare"] | runs["train"]
    }
    assert {n for n in tainted if n.startswith("model:")} == {
        "model:pii-model/1",
        "model:pii-model/2",
    }
    # The sanitised chain is known to derive from the marked data, but is not tainted.
    assert by["sanitiser"] == {f"run:{r}" for r in runs["sanitise"]}
    assert {
        f"data:{first['data/clean.csv']}:data/clean.csv",
        f"data:{first['clean_model.txt']}:clean_model.txt",
        "model:clean-model/1",
        *(f"run:{r}" for r in runs["train_clean"]),
    } <= by["derived"]
    assert not any("clean" in n for n in tainted)
    text = cli("pii", "status", "-C", str(root)).stdout
    assert "pii-model v1 @production is tainted" in text
    assert "pii-model v2 is tainted" in text
    assert "clean-model v1 @production derives from it, not tainted" in text
    written = (root / "dvflow.governance.yaml").read_text()
    assert "email" in written and "ann@" not in written and "Ann" not in written


def test_impact_pii_names_the_tainted_model_versions_with_their_aliases(repo: PiiRepo) -> None:
    root = repo.root
    plain = cli("impact", "data/prepared", "-C", str(root))
    assert "pii:" not in plain.stdout
    unmarked = cli("impact", "data/prepared", "--pii", "-C", str(root))
    assert unmarked.returncode == 0, unmarked.stderr
    assert "pii: nothing in this impact is tainted" in unmarked.stdout
    cli("pii", "mark", "data/raw.csv", "--basis", "contract", "-C", str(root))
    result = cli("impact", "data/prepared", "--pii", "-C", str(root))
    assert result.returncode == 0, result.stderr
    assert "pii: tainted  model pii-model v1 @production is tainted" in result.stdout
    assert "clean-model" not in result.stdout  # not in the impact of data/prepared
    as_json = json.loads(cli("impact", "data/prepared", "--pii", "--json", "-C", str(root)).stdout)
    statuses = {n["id"]: n["attrs"].get("pii") for n in as_json["nodes"]}
    assert statuses["model:pii-model/2"] == "tainted"


def test_a_folder_version_and_a_file_inside_a_tracked_folder_can_be_marked(
    repo: PiiRepo,
) -> None:
    root = repo.root
    outs = lock_outs(root)
    folder = cli("pii", "mark", "data/prepared", "--basis", "b", "-C", str(root))
    assert folder.returncode == 0, folder.stderr
    assert outs["data/prepared"] in folder.stdout and ".dir" in folder.stdout
    by = status_json(root)
    assert "model:pii-model/2" in by["tainted"]
    assert cli("pii", "unmark", "data/prepared", "-C", str(root)).returncode == 0
    inside = cli("pii", "mark", "data/prepared/rows.csv", "--basis", "b", "-C", str(root))
    assert inside.returncode == 0, inside.stderr
    by = status_json(root)
    (marked,) = by["marked"]
    assert marked.endswith(":data/prepared/rows.csv") and ".dir" not in marked
    # The folder version holding the file, and what was made of it, are tainted.
    assert f"data:{outs['data/prepared']}:data/prepared" in by["tainted"]
    assert {"model:pii-model/1", "model:pii-model/2"} <= by["tainted"]
    md5 = marked.split(":")[1]
    again = cli("pii", "mark", f"data/prepared/rows.csv@{md5}", "--basis", "b", "-C", str(root))
    assert again.returncode == 0, again.stderr


def test_an_unknown_path_rev_or_md5_is_exit_5_with_a_hint(repo: PiiRepo) -> None:
    root = repo.root
    for target in ("data/nope.csv", "data/raw.csv@no-such-rev", f"data/raw.csv@{'0' * 32}"):
        result = cli("pii", "mark", target, "--basis", "b", "-C", str(root))
        assert result.returncode == 5, (target, result.stderr)
        assert result.stderr.startswith("error: ") and "hint: " in result.stderr
        assert "Traceback" not in result.stderr
    assert "known versions" in result.stderr
    assert not (root / "dvflow.governance.yaml").exists()
    unmark = cli("pii", "unmark", "data/raw.csv", "-C", str(root))
    assert unmark.returncode == 5 and "hint: " in unmark.stderr


def test_a_mark_at_a_rev_and_unmark_leave_the_file_consistent(repo: PiiRepo) -> None:
    root = repo.root
    at_rev = cli("pii", "mark", f"data/prepared@{repo.first}", "--basis", "b", "-C", str(root))
    assert at_rev.returncode == 0, at_rev.stderr
    assert lock_outs(root, repo.first)["data/prepared"] in at_rev.stdout
    # An md5 cut short, as storage and lineage print it, names the same version.
    first_md5 = lock_outs(root, repo.first)["data/prepared"]
    short = cli("pii", "mark", f"data/prepared@{first_md5[:12]}", "--basis", "b", "-C", str(root))
    assert short.returncode == 0, short.stderr
    assert first_md5 in short.stdout
    cli("pii", "mark", "data/raw.csv", "--basis", "b", "-C", str(root))
    removed = cli("pii", "unmark", "data/prepared", "-C", str(root))
    assert removed.returncode == 0, removed.stderr
    by = status_json(root)
    assert by["marked"] == {f"data:{raw_md5(root)}:data/raw.csv"}


def test_openlineage_tags_the_tainted_datasets_pii_and_the_events_validate(
    repo: PiiRepo,
    registry: Registry,  # type: ignore[type-arg]  # noqa: F811 - the imported fixture
) -> None:
    root = repo.root
    cli("pii", "mark", "data/raw.csv", "--fields", "email", "--basis", "b", "-C", str(root))
    result = cli("export", "openlineage", "-C", str(root))
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    tagged: dict[str, list[dict[str, str]]] = {}
    untagged: set[str] = set()
    for event in events:
        check_event(registry, event)
        for dataset in [*event["inputs"], *event["outputs"]]:
            if "tags" in dataset["facets"]:
                tagged[dataset["name"]] = dataset["facets"]["tags"]["tags"]
            else:
                untagged.add(dataset["name"])
    assert set(tagged) == {
        "data/raw.csv",
        "data/prepared",
        "model.txt",
        "pii-model/1",
        "pii-model/2",
    }
    assert {"key": "pii", "value": "true", "source": "DVFLOW", "field": "email"} in tagged[
        "data/raw.csv"
    ]
    assert {"data/clean.csv", "clean_model.txt", "clean-model/1"} <= untagged


def test_a_malformed_governance_file_is_exit_3_naming_it(repo: PiiRepo) -> None:
    root = repo.root
    (root / "dvflow.governance.yaml").write_text("pii:\n- path: data/raw.csv\n  md5: nope\n")
    result = cli("pii", "status", "-C", str(root))
    assert result.returncode == 3, result.stderr
    assert "dvflow.governance.yaml" in result.stderr and "'nope' is not a DVC md5" in result.stderr
    assert "Traceback" not in result.stderr
