"""``dvflow export openlineage``: events every OpenLineage consumer accepts, checked offline.

Each exported event, and each standard facet on its own, validates against
the official OpenLineage JSON schemas (kept beside the repository in
shared/openlineage-spec, never copied into it); the ``dvflow_provenance``
facet against the schema dvflow ships. Real git, DVC and MLflow stores.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource

import dvflow
from conftest import cli, dvc, git
from dvflow.export._naming import location, normalise_git_remote, strip_userinfo
from dvflow.export._openlineage import PROVENANCE_SCHEMA_ID, run_uuid

OPENLINEAGE = "https://openlineage.io/spec/2-0-2/OpenLineage.json"
OWN_SCHEMA = Path(dvflow.__file__).parent / "export" / "dvflow_provenance.schema.json"


def _spec_folder() -> Path:
    """shared/openlineage-spec beside the repository (CI's clone, the main checkout, a worktree)."""
    for folder in Path(__file__).resolve().parents[1:]:
        spec = folder / "shared" / "openlineage-spec"
        if (spec / "2-0-2" / "OpenLineage.json").is_file():
            return spec
    pytest.fail("no shared/openlineage-spec beside the repository: the schemas are test data")


@pytest.fixture(scope="module")
def registry() -> Registry:  # type: ignore[type-arg]
    resources = []
    for path in sorted(_spec_folder().rglob("*.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        resources.append((contents["$id"], Resource.from_contents(contents)))
    own = json.loads(OWN_SCHEMA.read_text(encoding="utf-8"))
    resources.append((own["$id"], Resource.from_contents(own)))
    return Registry().with_resources(resources)


def _validator(registry: Registry, ref: str) -> Draft202012Validator:  # type: ignore[type-arg]
    return Draft202012Validator(
        {"$ref": ref}, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def check_event(registry: Registry, event: dict[str, Any]) -> None:  # type: ignore[type-arg]
    """The event against RunEvent, then every facet against its own schema; raises if invalid."""
    _validator(registry, f"{OPENLINEAGE}#/$defs/RunEvent").validate(event)
    for key, facet in _facets(event):
        schema = facet["_schemaURL"].partition("#")[0]
        assert schema.startswith("https://openlineage.io/spec/facets/") or schema == (
            PROVENANCE_SCHEMA_ID
        ), facet["_schemaURL"]
        _validator(registry, schema).validate({key: facet})


def _facets(event: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield from event["job"].get("facets", {}).items()
    yield from event["run"].get("facets", {}).items()
    for dataset in [*event.get("inputs", []), *event.get("outputs", [])]:
        yield from dataset.get("facets", {}).items()


def _events(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines]


# -- the harness itself ---------------------------------------------------------


GOOD: dict[str, Any] = {
    "eventType": "START",
    "eventTime": "2026-01-01T00:00:00.000Z",
    "producer": "urn:dvflow:test",
    "schemaURL": f"{OPENLINEAGE}#/$defs/RunEvent",
    "run": {"runId": run_uuid("abc", 1_700_000_000_000), "facets": {}},
    "job": {"namespace": "ns", "name": "dvc.yaml:train", "facets": {}},
    "inputs": [],
    "outputs": [],
}


def _broken(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    event = json.loads(json.dumps(GOOD))
    change(event)
    return event


def test_the_harness_accepts_a_valid_event_and_checks_formats(registry: Registry) -> None:  # type: ignore[type-arg]
    check_event(registry, GOOD)
    # jsonschema[format-nongpl] is installed: uri and uuid are really checked.
    assert {"uri", "uuid", "date-time"} <= set(Draft202012Validator.FORMAT_CHECKER.checkers)


@pytest.mark.parametrize(
    "change",
    [
        lambda e: e["job"].pop("name"),
        lambda e: e.update(eventType="FINISHED"),
        lambda e: e["run"].update(runId="not-a-uuid"),
        lambda e: e.update(producer="not a uri"),
        lambda e: e.update(eventTime="yesterday"),
        lambda e: e["run"]["facets"].update(
            parent={
                "_schemaURL": "https://openlineage.io/spec/facets/1-1-0/ParentRunFacet.json",
                "run": {"runId": GOOD["run"]["runId"]},
                "job": {"namespace": "ns", "name": "dvc.yaml"},
            }
        ),
        lambda e: e["run"]["facets"].update(
            parent={
                "_producer": "urn:dvflow:test",
                "_schemaURL": "https://openlineage.io/spec/facets/1-1-0/ParentRunFacet.json",
                "run": {"runId": GOOD["run"]["runId"]},
            }
        ),
    ],
    ids=[
        "no job name",
        "bad eventType",
        "bad runId",
        "producer not a uri",
        "bad time",
        "facet without _producer",
        "parent without job",
    ],
)
def test_the_harness_rejects_broken_events(
    registry: Registry,  # type: ignore[type-arg]
    change: Callable[[dict[str, Any]], None],
) -> None:
    with pytest.raises(ValidationError):
        check_event(registry, _broken(change))


def test_run_uuids_are_stable_version_7_and_distinct() -> None:
    a = run_uuid("0123456789abcdef", 1_700_000_000_000)
    assert a == run_uuid("0123456789abcdef", 1_700_000_000_000)
    assert a != run_uuid("0123456789abcdee", 1_700_000_000_000)
    assert a[14] == "7" and a[19] in "89ab"
    assert a.replace("-", "")[:12] == f"{1_700_000_000_000:012x}"


# -- naming ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://bucket/dvc/files/md5/ab/cdef", ("s3://bucket", "dvc/files/md5/ab/cdef")),
        ("gs://bucket/files/md5/ab/cdef", ("gs://bucket", "files/md5/ab/cdef")),
        (
            "azure://container/store/files/md5/ab/cd",
            ("wasbs://container@acct.dfs.core.windows.net", "store/files/md5/ab/cd"),
        ),
        (
            "abfss://container@acct.dfs.core.windows.net/store/x",
            ("abfss://container@acct.dfs.core.windows.net", "store/x"),
        ),
        ("/srv/dvc-remote/files/md5/ab/cd", ("file", "/srv/dvc-remote/files/md5/ab/cd")),
        ("file:///srv/remote/x", ("file", "/srv/remote/x")),
        ("https://bob:pw@dvc.example.com/store/x", ("https://dvc.example.com", "/store/x")),
    ],
)
def test_remote_objects_are_named_as_the_naming_spec_says(
    uri: str, expected: tuple[str, str]
) -> None:
    assert location(uri, {"container": "acct"}) == expected


def test_git_remotes_normalise_to_host_org_repo_without_credentials() -> None:
    for url in (
        "git@github.com:org/repo.git",
        "ssh://git@github.com/org/repo",
        "https://alice:t0ken@GitHub.com/org/repo.git",
    ):
        assert normalise_git_remote(url) == "github.com/org/repo"
    assert normalise_git_remote("/srv/git/repo.git") is None
    assert strip_userinfo("http://u:p@127.0.0.1:5000/x") == "http://127.0.0.1:5000/x"


# -- a real project -------------------------------------------------------------


def _project_with_runs(make_project: Callable[..., Path]) -> tuple[Path, Any]:
    root = make_project()
    git(root, "remote", "add", "origin", "https://alice:Sup3rS3cretT0ken@github.com/org/repo.git")
    first = dvflow.run_pipeline(root)
    dvflow.register_model(first.stages[1].run_id, "clf", root, output="model.txt")
    return root, first


def test_every_event_and_facet_of_a_real_run_validates(
    make_project: Callable[..., Path],
    registry: Registry,  # type: ignore[type-arg]
) -> None:
    root, first = _project_with_runs(make_project)
    events = _events(dvflow.export_openlineage(path=root))
    assert len(events) == 6  # pipeline + 2 stages, START and COMPLETE each
    for event in events:
        check_event(registry, event)
    kinds = {k for e in events for k, _ in _facets(e)}
    assert {"jobType", "sourceCodeLocation", "processing_engine", "parent"} <= kinds
    assert {"dvflow_provenance", "version", "datasetType"} <= kinds

    raw_md5 = dvflow.load_record(first.stages[0].run_id, root).inputs
    md5s = {p.md5 for p in raw_md5 if p.path == "data/raw.txt"}
    inputs = [d for e in events for d in e["inputs"] if d["name"] == "data/raw.txt"]
    assert inputs and {d["facets"]["version"]["datasetVersion"] for d in inputs} == md5s
    assert inputs[0]["namespace"] == "dvc://github.com/org/repo"
    models = [d for e in events for d in e["outputs"] if d["name"] == "clf/1"]
    assert models and models[0]["facets"]["datasetType"]["datasetType"] == "MODEL"
    train = next(e for e in events if e["job"]["name"] == "dvc.yaml:train")
    assert train["job"]["namespace"] == "github.com/org/repo"
    code = train["job"]["facets"]["sourceCodeLocation"]
    assert code["repoUrl"] == "https://github.com/org/repo.git"


def test_each_run_has_one_start_and_one_end_and_stages_point_at_their_pipeline(
    make_project: Callable[..., Path],
) -> None:
    root, first = _project_with_runs(make_project)
    events = _events(dvflow.export_openlineage(path=root))
    per_run = Counter((e["run"]["runId"], e["eventType"]) for e in events)
    runs = {run for run, _ in per_run}
    assert len(runs) == 3
    for run in runs:
        assert per_run[(run, "START")] == 1 and per_run[(run, "COMPLETE")] == 1
    pipeline = next(e for e in events if e["job"]["name"] == "dvc.yaml")
    assert pipeline["eventType"] == "START" and events[0] is pipeline  # the pipeline starts first
    assert events[-1]["job"]["name"] == "dvc.yaml" and events[-1]["eventType"] == "COMPLETE"
    for event in events:
        if event["job"]["name"] != "dvc.yaml":
            parent = event["run"]["facets"]["parent"]
            assert parent["run"]["runId"] == pipeline["run"]["runId"]
            assert parent["job"] == {"namespace": pipeline["job"]["namespace"], "name": "dvc.yaml"}
            assert event["job"]["facets"]["jobType"]["jobType"] == "TASK"
    provenance = pipeline["run"]["facets"]["dvflow_provenance"]
    assert provenance["runId"] == first.run_id


def test_a_restored_and_a_failed_stage_export_as_they_ended(
    make_project: Callable[..., Path],
    registry: Registry,  # type: ignore[type-arg]
) -> None:
    root = make_project()
    first = dvflow.run_pipeline(root)
    params = root / "params.yaml"
    text = params.read_text()
    params.write_text(text.replace("lr: 0.1", "lr: 0.2"))
    dvflow.run_pipeline(root)
    params.write_text(text)
    third = dvflow.run_pipeline(root)
    restored = third.stages[1]
    assert restored.status == "restored"
    (root / "train.py").write_text("import sys\nsys.exit(3)\n")
    git(root, "commit", "-qam", "a broken train stage")
    with pytest.raises(dvflow.StageFailedError):
        dvflow.run_pipeline(root)

    events = _events(dvflow.export_openlineage(path=root))
    for event in events:
        check_event(registry, event)
    ends = {
        e["run"]["facets"]["dvflow_provenance"]["runId"]: e
        for e in events
        if e["eventType"] != "START"
    }
    assert ends[restored.run_id]["eventType"] == "COMPLETE"
    assert ends[restored.run_id]["run"]["facets"]["dvflow_provenance"]["status"] == "restored"
    failed = [e for e in ends.values() if e["eventType"] == "FAIL"]
    assert {e["job"]["name"] for e in failed} == {"dvc.yaml:train", "dvc.yaml"}
    stage = next(e for e in failed if e["job"]["name"] == "dvc.yaml:train")
    assert "python train.py" in stage["run"]["facets"]["errorMessage"]["message"]

    # A target's lineage: the runs that made the first model, and their pipeline run.
    targeted = _events(dvflow.export_openlineage(first.stages[1].run_id, root))
    ids = {e["run"]["facets"]["dvflow_provenance"]["runId"] for e in targeted}
    assert ids == {first.run_id, first.stages[0].run_id, first.stages[1].run_id}


def test_planted_credentials_appear_in_no_event(make_project: Callable[..., Path]) -> None:
    root = make_project()
    git(root, "remote", "add", "origin", "https://alice:Sup3rS3cretT0ken@github.com/org/repo.git")
    added = dvc(
        root, "remote", "add", "-d", "-f", "web", "https://bob:Pa55w0rdXyzzy@dvc.example.com/store"
    )
    assert added.returncode == 0, added.stderr
    (root / ".dvc" / "config.local").write_text(
        "['remote \"web\"']\n    password = Pa55w0rdXyzzy\n", encoding="utf-8"
    )
    git(root, "commit", "-qam", "a remote with a password")
    dvflow.run_pipeline(root)
    text = "\n".join(dvflow.export_openlineage(path=root))
    assert "dvc.example.com" in text  # the remote's objects are named...
    for secret in ("Sup3rS3cretT0ken", "alice", "Pa55w0rdXyzzy", "bob:"):
        assert secret not in text  # ...without their credentials


def test_the_cli_writes_the_same_bytes_twice_and_says_what_it_cannot(
    make_project: Callable[..., Path], tmp_path: Path
) -> None:
    root, _ = _project_with_runs(make_project)
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for out in (first, second):
        result = cli("export", "openlineage", "-o", str(out), "-C", str(root))
        assert result.returncode == 0, result.stderr
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes().count(b"\n") == 6
    shown = cli("export", "openlineage", "-C", str(root))
    assert shown.stdout.encode() == first.read_bytes()

    unknown = cli("export", "openlineage", "no-such-thing", "-C", str(root))
    assert unknown.returncode == 5
    assert unknown.stderr.startswith("error: ") and "hint: " in unknown.stderr
    sending = cli("export", "openlineage", "--url", "http://127.0.0.1:9/", "-C", str(root))
    assert sending.returncode == 8 and "no consumer" not in sending.stderr
    assert sending.stderr.startswith(
        "error: OpenLineage consumer http://127.0.0.1:9/api/v1/lineage"
    )
    assert "(sent 0 of 6 event(s))" in sending.stderr and "Traceback" not in sending.stderr


@pytest.mark.parametrize("cloud", ["s3", "gs", "azure"])
def test_a_cloud_remote_and_a_tracking_server_are_named_as_the_spec_says_without_credentials(
    cloud: str,
    *,
    make_project: Callable[..., Path],
    mlflow_server: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    registry: Registry,  # type: ignore[type-arg]
) -> None:
    from servers import AZURITE_KEY
    from test_cloud import CLOUDS, PLANTED

    fixture, configure = CLOUDS[cloud]
    bucket = request.getfixturevalue(fixture)
    root = make_project("basic")
    configure(root, bucket, monkeypatch)
    git(root, "commit", "-qm", "cloud remote", "--", ".dvc/config")
    planted = "planted-tracking-password"
    env = {
        "DVFLOW_TRACKING_URI": mlflow_server.replace("http://", f"http://me:{planted}@"),
        # Other tests' runs of the same fixture project are on the same server.
        "DVFLOW_EXPERIMENT": f"ol-{cloud}-{bucket.name}",
    }
    ran = cli("run", "--push", "-C", str(root), env=env)
    assert ran.returncode == 0, ran.stderr
    registered = cli(
        "register", "train", "--name", f"ol-{cloud}-{bucket.name}", "-C", str(root), env=env
    )
    assert registered.returncode == 0, registered.stderr

    # The server holds other tests' runs too: the model's lineage is this project's.
    model = f"models:/ol-{cloud}-{bucket.name}/1"
    exported = cli("export", "openlineage", model, "-C", str(root), env=env)
    assert exported.returncode == 0, exported.stderr
    for secret in [*PLANTED.values(), AZURITE_KEY, planted, "me:"]:
        assert secret not in exported.stdout + exported.stderr
    events = _events(exported.stdout.splitlines())
    for event in events:
        check_event(registry, event)
    links = {
        (link["namespace"], link["name"].partition("/files/")[0])
        for e in events
        for d in e["outputs"]
        for link in d["facets"].get("symlinks", {}).get("identifiers", [])
    }
    expected = {
        "s3": f"s3://{bucket.name}",
        "gs": f"gs://{bucket.name}",
        "azure": f"wasbs://{bucket.name}@devstoreaccount1.dfs.core.windows.net",
    }[cloud]
    assert links == {(expected, "store")}
    models = [d for e in events for d in e["outputs"] if d["name"].startswith(f"ol-{cloud}")]
    assert models and models[0]["namespace"] == mlflow_server  # http://127.0.0.1:PORT
    provenance = events[0]["run"]["facets"]["dvflow_provenance"]
    assert provenance["trackingUri"] in (mlflow_server, mlflow_server.replace("//", "//***@"))


def test_a_tampered_record_stops_the_export_with_exit_1(make_project: Callable[..., Path]) -> None:
    root, first = _project_with_runs(make_project)
    assert cli("index", "-C", str(root)).returncode == 0
    record = next(root.rglob(f"{first.stages[0].run_id}/artifacts/dvflow/record.json"))
    record.write_bytes(record.read_bytes().replace(b'"kind":"stage"', b'"kind":"stage" '))
    result = cli("export", "openlineage", "-C", str(root))
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("error: ") and first.stages[0].run_id in result.stderr


def test_a_dvc_import_keeps_its_source_repository_and_rev_lock(
    make_project: Callable[..., Path],
    tmp_path: Path,
    registry: Registry,  # type: ignore[type-arg]
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    git(source, "init", "-q")
    (source / "words.txt").write_text("alpha beta\n")
    git(source, "add", "words.txt")
    git(source, "commit", "-qm", "words")
    rev_lock = git(source, "rev-parse", "HEAD").strip()
    root = make_project()
    imported = dvc(root, "import", str(source), "words.txt", "-o", "data/words.txt")
    assert imported.returncode == 0, imported.stderr
    with (root / "dvc.yaml").open("a") as pipeline:
        pipeline.write(
            "  count:\n    cmd: python -c \"open('n.txt','w').write('0')\"\n"
            "    deps:\n      - data/words.txt\n    outs:\n      - n.txt\n"
        )
    git(root, "add", "-A")
    git(root, "commit", "-qm", "import words")
    dvflow.run_pipeline(root)
    events = _events(dvflow.export_openlineage(path=root))
    for event in events:
        check_event(registry, event)
    words = [d for e in events for d in e["inputs"] if d["name"] == "data/words.txt"]
    assert words
    found = words[0]["facets"]["dvflow_import"]
    assert (found["url"], found["path"], found["revLock"]) == (str(source), "words.txt", rev_lock)


def test_a_run_without_a_record_is_left_out_and_the_others_exported(
    make_project: Callable[..., Path],
) -> None:
    root, first = _project_with_runs(make_project)
    # What a run killed before its record was written looks like.
    next(root.rglob(f"{first.stages[1].run_id}/artifacts/dvflow/record.json")).unlink()
    events = _events(dvflow.export_openlineage(path=root))
    exported = {e["run"]["facets"]["dvflow_provenance"]["runId"] for e in events}
    assert exported == {first.run_id, first.stages[0].run_id}


def test_a_subproject_s_jobs_are_named_from_the_repository_root_once(
    tmp_path: Path, template_db: Path
) -> None:
    # Found on iterative's pipeline-configuration monorepo (dvc init --subdir):
    # the stage names already start at the repository root, and the export
    # put the subproject's folder in front a second time.
    from test_subdir import _monorepo

    root = _monorepo(tmp_path, template_db)
    run = dvflow.run_pipeline(root / "proj-a")
    events = _events(dvflow.export_openlineage(path=root / "proj-a"))
    assert {e["job"]["name"] for e in events} == {"proj-a/dvc.yaml", "proj-a/dvc.yaml:prepare"}
    stage = next(e for e in events if e["job"]["name"] == "proj-a/dvc.yaml:prepare")
    assert stage["run"]["facets"]["parent"]["job"]["name"] == "proj-a/dvc.yaml"
    assert stage["run"]["facets"]["dvflow_provenance"]["runId"] == run.stages[0].run_id
    assert {d["name"] for d in stage["inputs"]} == {"proj-a/prepare.py", "proj-a/data/raw.txt"}
