"""Small pieces on their own: redaction, pointers, config, the record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dvflow import InvalidFileError, ProvenanceRecord, load_config
from dvflow.core._dvcfiles import flatten, params_from_lock, pointer_from_entry, read_metrics_file
from dvflow.core._record import canonical_json, parse_record
from dvflow.core._redact import Redactor, redactor_for, secrets_from_dvc_config


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://user:pa55@host/x", "https://***@host/x"),
        ("s3://AKIA:secret@bucket", "s3://***@bucket"),
        ("https://h/p?sv=1&sig=abcdef&se=2", "https://h/p?sv=1&sig=***&se=2"),
        ("AccountName=a;AccountKey=zzzz==;Suffix=x", "AccountName=a;AccountKey=***;Suffix=x"),
        ("sorted(items, key=len)", "sorted(items, key=len)"),
        ("plain text", "plain text"),
    ],
)
def test_redactor_masks_credential_shapes(text: str, expected: str) -> None:
    assert Redactor().redact(text) == expected


def test_redactor_masks_known_values_everywhere() -> None:
    redactor = Redactor()
    redactor.add(["topsecret-value", "ab"])  # too short to mask safely: ignored
    assert redactor.redact("x topsecret-value y ab") == "x *** y ab"
    assert redactor.redact_obj({"k": ["topsecret-value"]}) == {"k": ["***"]}


def test_secrets_are_read_from_dvc_config_and_environment(tmp_path: Path) -> None:
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc" / "config.local").write_text(
        "['remote \"s3\"']\n    url = s3://b\n    secret_access_key = s3cr3t-key\n"
    )
    redactor = redactor_for(tmp_path, {"MY_API_TOKEN": "tok-123456", "HOME": "/home/me"})
    assert redactor.redact("s3cr3t-key tok-123456 /home/me") == "*** *** /home/me"
    assert secrets_from_dvc_config("url = s3://b\npassword = hunter22\n") == ["hunter22"]


def test_pointer_from_lock_entry_with_remote_and_cache() -> None:
    entry = {"path": "model.pkl", "md5": "ab" + "c" * 30, "size": 10, "hash": "md5"}
    pointer = pointer_from_entry(
        entry, wdir="sub", cache_dir=".dvc/cache/files/md5", remote_url="s3://b/r"
    )
    assert pointer.path == "sub/model.pkl"
    assert pointer.remote_uri == "s3://b/r/files/md5/ab/" + "c" * 30
    assert pointer.cache_path == ".dvc/cache/files/md5/ab/" + "c" * 30


def test_pointer_from_version_aware_entry_gets_the_dir_md5_dvc_computes() -> None:
    # DESIGN trap 6: cloud-versioned remotes write per-file version ids instead.
    entry = {
        "path": "data",
        "files": [
            {
                "relpath": "a.csv",
                "md5": "1" * 32,
                "size": 3,
                "cloud": {"s3": {"version_id": "v1", "etag": "e1"}},
            },
            {
                "relpath": "b.csv",
                "md5": "2" * 32,
                "size": 4,
                "cloud": {"s3": {"version_id": "v2", "etag": "e2"}},
            },
        ],
    }
    pointer = pointer_from_entry(entry, remote_url="s3://b")
    # The md5 DVC itself computes for this listing, when it loads such an entry.
    from dvc_data.hashfile.tree import Tree

    tree = Tree.from_list(entry["files"], hash_name="md5")
    tree.digest()
    assert pointer.md5 == tree.hash_info.value == "29733550099f414eb45b59eca5d2d368.dir"
    # Objects live at work-tree paths by version id, not at files/md5/...
    assert pointer.remote_uri is None  # not on this (plain) remote
    assert (pointer.size, pointer.nfiles, pointer.version_ids) == (7, 2, 2)
    on_versioned = pointer_from_entry(entry, wdir="sub", remote_url="s3://b/r/", versioned=True)
    assert on_versioned.remote_uri == "s3://b/r/sub/" + entry["path"]
    assert on_versioned.md5 == pointer.md5


def test_params_are_flattened_and_prefixed_by_file() -> None:
    entry = {
        "params": {
            "params.yaml": {"train": {"lr": 0.1, "layers": [1, 2]}},
            "other.yaml": {"seed": 1},
        }
    }
    assert params_from_lock(entry) == {
        "train.lr": "0.1",
        "train.layers": "[1, 2]",
        "other.yaml:seed": "1",
    }
    assert flatten({"a": {"b": {"c": 1}}, "d": {}}) == {"a.b.c": 1, "d": {}}


def test_metrics_files_keep_only_finite_numbers(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text('{"a": 1, "b": {"c": 0.5, "d": "x", "e": true}, "f": NaN}')
    assert read_metrics_file(path) == {"a": 1.0, "b.c": 0.5}
    toml = tmp_path / "m.toml"
    toml.write_text("[eval]\nacc = 0.9\n")
    assert read_metrics_file(toml) == {"eval.acc": 0.9}


def test_config_precedence_flags_then_environment_then_file(tmp_path: Path) -> None:
    (tmp_path / "dvflow.yaml").write_text("tracking_uri: sqlite:///store.db\nexperiment: file\n")
    from_file = load_config(tmp_path, environ={})
    assert from_file.tracking_uri == f"sqlite:///{tmp_path.resolve()}/store.db"
    assert from_file.experiment == "file"
    env = {"MLFLOW_TRACKING_URI": "http://mlflow:5000", "DVFLOW_EXPERIMENT": "env"}
    from_env = load_config(tmp_path, environ=env)
    assert (from_env.tracking_uri, from_env.experiment) == ("http://mlflow:5000", "env")
    env["DVFLOW_TRACKING_URI"] = "http://dvflow:5000"
    assert load_config(tmp_path, environ=env).tracking_uri == "http://dvflow:5000"
    flagged = load_config(tmp_path, tracking_uri="http://flag:1", experiment="flag", environ=env)
    assert (flagged.tracking_uri, flagged.experiment) == ("http://flag:1", "flag")


def test_config_defaults_without_a_file(tmp_path: Path) -> None:
    config = load_config(tmp_path, environ={})
    assert config.tracking_uri == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert config.experiment == tmp_path.name


def test_canonical_json_is_stable_and_record_round_trips() -> None:
    assert canonical_json({"b": 1, "a": [1, "é"]}) == '{"a":[1,"é"],"b":1}'.encode()
    record = ProvenanceRecord(
        kind="stage",
        status="FINISHED",
        code={
            "commit": "c",
            "branch": "main",
            "dirty": False,
            "patch_sha256": None,
            "patch_artifact": None,
            "repo_url": None,
        },
        environment={
            "python": "3.11",
            "platform": "linux",
            "dvc": "3",
            "mlflow": "3",
            "packages_sha256": "p",
        },
        mlflow={"tracking_uri": "u", "experiment_id": "1", "run_id": "r", "parent_run_id": "p"},
        started="t0",
        ended="t1",
        stage={"name": "s", "cmd": "c", "status": "ran", "produced_by": None},
        params={"a": "1"},
        metrics={"m": 1.0},
    )
    again = parse_record(record.to_json())
    assert again == record and again.sha256 == record.sha256


@pytest.mark.parametrize("raw", [b"[]", b"{}", b'{"schema_version": 99}', b"\xff", b"{"])
def test_malformed_records_raise_a_dvflow_error(raw: bytes) -> None:
    with pytest.raises(InvalidFileError):
        parse_record(raw)


def test_a_model_source_for_a_server_passes_the_servers_own_source_check() -> None:
    from mlflow.server.handlers import _validate_source_run

    from dvflow._registry import portable_source

    for path in ("model.txt", "models/m.pkl", "data/clean"):
        source = portable_source("/srv/p/.dvc/cache/ab/cd", "http://h:5000", path, "ab" * 16)
        assert source == f"dvc:///{path}@{'ab' * 16}"
        _validate_source_run(source, "")  # raises what the server answers for a refused source
    # What the server can read stays as it is.
    for source in ("models:/m-0123", "s3://b/r/files/md5/ab/cd", "runs:/0123/model"):
        assert portable_source(source, "https://h", "model.txt", "ab" * 16) == source
    assert portable_source("file:///srv/m", "https://h", "m", "ab" * 16) == f"dvc:///m@{'ab' * 16}"


def test_a_models_version_source_is_its_object_by_md5_never_a_path_the_next_push_replaces() -> None:
    from dvflow._registry import dvc_object
    from dvflow.core._dvcfiles import pointer_from_entry

    entry = {"path": "model.pkl", "md5": "ab" + "c" * 30, "size": 3}
    plain = pointer_from_entry(entry, cache_dir=".dvc/cache/files/md5", remote_url="s3://b/r")
    assert dvc_object(plain) == "s3://b/r/files/md5/ab/" + "c" * 30
    versioned = pointer_from_entry(
        entry, cache_dir=".dvc/cache/files/md5", remote_url="s3://b/r", versioned=True
    )
    assert versioned.remote_uri == "s3://b/r/model.pkl"
    assert dvc_object(versioned) == ".dvc/cache/files/md5/ab/" + "c" * 30


def test_runs_left_open_stay_noted_beside_the_next_runs_own(tmp_path: Path) -> None:
    from dvflow.stores._openruns import OPEN_RUNS, OpenRuns

    OpenRuns(tmp_path, ["left-by-a-killed-run"]).save()
    journal = OpenRuns(tmp_path)
    journal.opened("mine")
    assert json.loads((tmp_path / OPEN_RUNS).read_text()) == ["left-by-a-killed-run", "mine"]
    journal.ended("mine")
    assert json.loads((tmp_path / OPEN_RUNS).read_text()) == ["left-by-a-killed-run"]
