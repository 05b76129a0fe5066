"""Tamper-evident is not tamper-proof: what a rewritten store can and cannot make dvflow say.

A run's ``dvflow.io`` tag (its inputs and outputs, read by lineage and
impact) is covered by no digest, and any tag can be rewritten by whoever can
write to the store. ``dvflow run`` pins it with the param ``dvflow.io_sha256``,
which MLflow refuses to change: a rewritten tag is reported and never
followed. A record rewritten together with its digest cannot be caught
without signatures: verify must not claim more than integrity.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import cli, run_commit_push, stage_runs, tracking_client
from history_repo import HistoryRepo
from test_lineage import SCHEMA, edges, nodes, version_run

IO_TAG = "dvflow.io"
IO_PARAM = "dvflow.io_sha256"


def read_io(root: Path, run_id: str) -> dict[str, list[list[str]]]:
    data: dict[str, list[list[str]]] = json.loads(
        tracking_client(root).get_run(run_id).data.tags[IO_TAG]
    )
    return data


def write_io(root: Path, run_id: str, io: dict[str, list[list[str]]]) -> None:
    """What an attacker with write access to the store does: one MLflow client call."""
    tracking_client(root).set_tag(run_id, IO_TAG, json.dumps(io))


def query(root: Path, command: str, target: str) -> tuple[dict[str, Any], str]:
    """The graph (as ``--json`` prints it) and the warnings of ``command target``."""
    import jsonschema

    result = cli(command, target, "--json", "-C", str(root))
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    jsonschema.validate(data, SCHEMA)
    return data, result.stderr


def test_a_model_output_dropped_from_the_io_tag_is_still_followed_and_reported(
    history_copy: HistoryRepo,
) -> None:
    root = history_copy.root
    run_id = version_run(root, "lin-model", "1")
    io = read_io(root, run_id)
    model = next(pair for pair in io["out"] if pair[0] == "model/model.bin")
    write_io(root, run_id, {"in": io["in"], "out": [p for p in io["out"] if p != model]})

    data, warnings = query(root, "impact", "data/raw.txt")
    produced = f"data:{model[1]}:model/model.bin"
    assert (f"run:{run_id}", produced, "produced") in edges(data)
    assert f"run {run_id} was tampered with" in warnings
    assert f"its {IO_TAG} tag was changed after the run" in warnings
    assert "its inputs and outputs come from its record" in warnings


def test_a_false_input_added_to_the_io_tag_is_not_followed(history_copy: HistoryRepo) -> None:
    root = history_copy.root
    run_id = version_run(root, "lin-model", "1")
    io = read_io(root, run_id)
    false = ["data/poisoned.csv", "0123456789abcdef0123456789abcdef"]
    write_io(root, run_id, {"in": [*io["in"], false], "out": io["out"]})

    data, warnings = query(root, "lineage", "models:/lin-model/1")
    assert not [n for n in nodes(data, "data") if n["attrs"].get("path") == false[0]]
    assert not any(false[1] in n["id"] for n in data["nodes"])
    assert f"run {run_id} was tampered with" in warnings


def test_hiding_a_model_by_emptying_its_runs_io_tag_does_not_hide_it(
    history_copy: HistoryRepo,
) -> None:
    root = history_copy.root
    run_id = version_run(root, "lin-model", "2")
    io = read_io(root, run_id)
    features = next(pair for pair in io["in"] if pair[0] == "features")
    write_io(root, run_id, {"in": [], "out": []})

    data, warnings = query(root, "impact", f"{features[1]}")
    assert f"run:{run_id}" in {n["id"] for n in nodes(data, "run")}
    assert "model:lin-model/2" in {n["id"] for n in nodes(data, "model")}
    assert f"run {run_id} was tampered with" in warnings


def test_the_param_that_pins_the_io_tag_cannot_be_rewritten(history_copy: HistoryRepo) -> None:
    from mlflow.exceptions import MlflowException

    root = history_copy.root
    run_id = version_run(root, "lin-model", "1")
    client = tracking_client(root)
    with pytest.raises(MlflowException, match="Changing param values is not allowed"):
        client.log_param(run_id, IO_PARAM, "0" * 64)


def test_a_record_rewritten_with_its_digest_and_tag_cannot_change_the_pinned_io(
    history_copy: HistoryRepo,
) -> None:
    """The whole story rewritten (record, digest, io tag): the param still disagrees."""
    import hashlib

    root = history_copy.root
    run_id = version_run(root, "lin-model", "1")
    client = tracking_client(root)
    uri = client.get_run(run_id).info.artifact_uri
    record_file = Path(uri.removeprefix("file://")) / "dvflow" / "record.json"
    record = json.loads(record_file.read_text())
    record["outputs"] = []
    raw = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    record_file.write_bytes(raw)
    client.set_tag(run_id, "dvflow.record_sha256", hashlib.sha256(raw).hexdigest())
    io = read_io(root, run_id)
    write_io(root, run_id, {"in": io["in"], "out": []})

    _, warnings = query(root, "impact", "data/raw.txt")
    assert f"run {run_id} was tampered with" in warnings
    assert f"its record does not hold the inputs and outputs the param {IO_PARAM}" in warnings


def test_a_run_older_than_the_pinning_param_is_read_from_its_tag_as_before(
    history_copy: HistoryRepo,
) -> None:
    root = history_copy.root
    client = tracking_client(root)
    source = client.get_run(version_run(root, "lin-model", "1"))
    made = "fedcba9876543210fedcba9876543210"
    tags = {k: v for k, v in source.data.tags.items() if k.startswith("dvflow.")}
    inputs = read_io(root, source.info.run_id)["in"]
    tags[IO_TAG] = json.dumps({"in": inputs, "out": [["old.bin", made]]})
    old = client.create_run(source.info.experiment_id, tags=tags)  # no param: an older dvflow
    client.set_terminated(old.info.run_id)

    data, warnings = query(root, "lineage", made)
    assert (f"run:{old.info.run_id}", f"data:{made}:old.bin", "produced") in edges(data)
    assert "tampered" not in warnings


@pytest.fixture
def recorded(make_project: Callable[..., Path]) -> Path:
    return run_commit_push(make_project("rebuild"), env={"DVFLOW_TEST_PICKY": "1"})


def test_verify_fails_the_io_check_of_a_rewritten_io_tag(recorded: Path) -> None:
    run_id = stage_runs(recorded)["steady"]
    io = read_io(recorded, run_id)
    write_io(recorded, run_id, {"in": io["in"], "out": []})
    result = cli("verify", run_id, "-C", str(recorded))
    assert result.returncode == 1
    assert f"FAIL  io        run {run_id}: its {IO_TAG} tag was changed" in result.stdout


def test_a_record_rewritten_with_its_digest_passes_verify_which_claims_no_authenticity(
    recorded: Path,
) -> None:
    """Cannot be prevented without signatures: verify says what its digest proves."""
    import hashlib

    run_id = stage_runs(recorded)["steady"]
    client = tracking_client(recorded)
    uri = client.get_run(run_id).info.artifact_uri
    record_file = Path(uri.removeprefix("file://")) / "dvflow" / "record.json"
    record = json.loads(record_file.read_text())
    record["stage"]["cmd"] = "python steady.py  # approved by the security team"
    raw = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    record_file.write_bytes(raw)
    client.set_tag(run_id, "dvflow.record_sha256", hashlib.sha256(raw).hexdigest())

    result = cli("verify", run_id, "-C", str(recorded))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout.lower()
    assert "integrity within the tracking store, not authenticity" in out
    assert "signed attestations" in out
    for claim in ("authentic record", "is authentic", "authenticated", "tamper-proof", "genuine"):
        assert claim not in out
