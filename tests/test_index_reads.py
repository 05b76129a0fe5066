"""The read commands answer from the lineage index, without importing MLflow, while it is fresh.

``dvflow run`` writes what it recorded through to the index; a store that
moved since (another process wrote to it) is read again first; an index row
that does not match its run's record is never trusted.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import cli, git, run_commit_push, tracking_client

# Runs the CLI in this interpreter and says, last, whether MLflow was imported.
PROBE = (
    "import atexit, sys\n"
    "atexit.register(lambda: sys.stderr.write("
    "'\\nmlflow imported: %s\\n' % ('mlflow' in sys.modules)))\n"
    "from dvflow.cli._main import main\n"
    "sys.argv = ['dvflow', *sys.argv[1:]]\n"
    "main()\n"
)


def probe(
    root: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], bool]:
    """``dvflow ARGS -C root``, and whether it imported MLflow."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args, "-C", str(root)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
        check=False,
    )
    said = result.stderr.rstrip().rpartition("mlflow imported: ")[2]
    assert said in ("True", "False"), result.stderr
    return result, said == "True"


@pytest.fixture
def twice(make_project: Callable[..., Path]) -> Path:
    """The basic project run twice (a param changed between), committed and pushed."""
    root = run_commit_push(make_project("basic"))
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("lr: 0.1", "lr: 0.2"))
    return run_commit_push(root)


def train_runs(root: Path) -> list[str]:
    client = tracking_client(root)
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        "tags.`dvflow.stage` = 'train'",
        order_by=["attributes.start_time ASC"],
    )
    return [r.info.run_id for r in runs]


def index_db(root: Path) -> sqlite3.Connection:
    return sqlite3.connect(root / ".dvflow" / "index.sqlite", isolation_level=None)


def test_read_commands_after_a_run_do_not_import_mlflow(twice: Path) -> None:
    first, second = train_runs(twice)
    commands = [
        ("show", second),
        ("show", second, "--json"),
        ("diff", first, second),
        ("verify", second),
        ("lineage", "model.txt"),
        ("impact", "data/raw.txt"),
        ("check",),
    ]
    for args in commands:
        result, imported = probe(twice, *args)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        assert not imported, (args, result.stderr)
    shown, _ = probe(twice, "show", second)
    assert "train.lr = 0.2" in shown.stdout
    assert ": intact" in shown.stderr
    changed, _ = probe(twice, "diff", first, second)
    assert "train.lr  0.1 -> 0.2" in changed.stdout


def test_the_sync_flag_reads_the_store(twice: Path) -> None:
    run_id = train_runs(twice)[-1]
    for args in (("show", run_id), ("verify", run_id), ("diff", run_id, run_id), ("check",)):
        result, imported = probe(twice, *args, "--sync")
        assert result.returncode == 0, (args, result.stderr)
        assert imported, args


def test_a_run_another_process_wrote_is_seen_once_the_store_moved(twice: Path) -> None:
    """A script's own MLflow run, with a record: the index reads it when the store moved."""
    client = tracking_client(twice)
    source = client.get_run(train_runs(twice)[-1])
    made = "fedcba9876543210fedcba9876543210"
    tags = {k: v for k, v in source.data.tags.items() if k.startswith("dvflow.")}
    tags["dvflow.io"] = json.dumps({"in": [], "out": [["elsewhere.bin", made]]})
    other = client.create_run(source.info.experiment_id, tags=tags)
    record = Path(source.info.artifact_uri.removeprefix("file://")) / "dvflow" / "record.json"
    client.log_artifact(other.info.run_id, str(record), "dvflow")
    client.set_terminated(other.info.run_id)
    run_id = other.info.run_id

    found, imported = probe(twice, "lineage", made)
    assert found.returncode == 0, found.stderr
    assert run_id[:12] in found.stdout
    assert imported  # the store moved: read again
    shown, imported = probe(twice, "show", run_id)
    assert shown.returncode == 0, shown.stderr
    assert not imported  # and now the index holds it


def test_a_tampered_index_row_is_not_trusted(twice: Path) -> None:
    run_id = train_runs(twice)[-1]
    with index_db(twice) as db:
        (facts,) = db.execute("SELECT facts FROM run_facts WHERE run_id=?", (run_id,)).fetchone()
        forged = json.loads(facts)
        forged["tags"]["dvflow.record_sha256"] = "0" * 64
        forged["params"]["train.lr"] = "0.9"
        db.execute("UPDATE run_facts SET facts=? WHERE run_id=?", (json.dumps(forged), run_id))
    shown, imported = probe(twice, "show", run_id)
    assert shown.returncode == 0, shown.stderr
    assert ": intact" in shown.stderr
    assert imported  # the store was asked, and it holds the true run
    verified, _ = probe(twice, "verify", run_id)
    assert verified.returncode == 0, verified.stdout
    assert "does not match its digest" not in verified.stdout


def test_a_record_rewritten_in_the_store_is_still_reported(twice: Path) -> None:
    run_id = train_runs(twice)[-1]
    uri = tracking_client(twice).get_run(run_id).info.artifact_uri
    record = Path(uri.removeprefix("file://")) / "dvflow" / "record.json"
    record.write_bytes(record.read_bytes().replace(b'"0.2"', b'"0.3"'))
    shown, _ = probe(twice, "show", run_id)
    assert shown.returncode == 1
    assert "tampered" in shown.stderr
    verified, _ = probe(twice, "verify", run_id)
    assert verified.returncode == 1
    assert "does not match its digest" in verified.stdout


def test_an_unknown_run_id_still_exits_5_with_its_hint(twice: Path) -> None:
    result = cli("show", "0123456789abcdef0123456789abcdef", "-C", str(twice))
    assert result.returncode == 5, result.stderr
    assert "error: no run '0123456789abcdef0123456789abcdef'" in result.stderr
    assert "hint:" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_deleted_index_is_rebuilt(twice: Path) -> None:
    run_id = train_runs(twice)[-1]
    for name in ("index.sqlite", "index.sqlite-wal", "index.sqlite-shm"):
        (twice / ".dvflow" / name).unlink(missing_ok=True)
    shown, imported = probe(twice, "show", run_id)
    assert shown.returncode == 0, shown.stderr
    assert imported
    again, imported = probe(twice, "show", run_id)
    assert again.returncode == 0, again.stderr
    assert not imported
    assert git(twice, "status", "--porcelain", "--ignored", ".dvflow").strip() == "!! .dvflow/"


def test_against_a_server_reads_answer_from_the_index_until_it_moves(
    make_project: Callable[..., Path], mlflow_server: str
) -> None:
    """A team server: a few REST requests tell whether it moved, without MLflow."""
    from mlflow.tracking import MlflowClient

    root = make_project("rebuild")
    env = {"DVFLOW_TRACKING_URI": mlflow_server, "DVFLOW_TEST_PICKY": "1"}
    ran = cli("run", "steady", "-C", str(root), env=env)
    assert ran.returncode == 0, ran.stderr
    found = re.search(r"steady\s+ran\s+run ([0-9a-f]{32})", ran.stdout)
    assert found, ran.stdout
    for args in (("show", found[1]), ("lineage", "steady.txt")):
        result, imported = probe(root, *args, env=env)
        assert result.returncode == 0, (args, result.stderr)
        assert not imported, args

    client = MlflowClient(mlflow_server)
    other = client.create_run("0", tags={"written.by": "a script"})
    client.set_terminated(other.info.run_id)
    moved, imported = probe(root, "lineage", "steady.txt", env=env)
    assert moved.returncode == 0, moved.stderr
    assert imported  # the server moved: read again
    again, imported = probe(root, "lineage", "steady.txt", env=env)
    assert again.returncode == 0, again.stderr
    assert not imported
