"""OpenLineage events sent live by ``dvflow run``, the outbox, and ``sync`` sending it.

A small OpenLineage consumer runs on 127.0.0.1 in the test: it answers 201
as Marquez does, then 500, then nothing at all (its port closed). The events
go through openlineage-python's real HTTP transport; the run, the store and
the DVC project are real.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from referencing import Registry

import dvflow
from conftest import cli, dvc, git
from dvflow.core._redact import Redactor
from dvflow.export import _emit
from dvflow.export._naming import location
from test_openlineage import check_event, registry  # noqa: F401 (the fixture)

KEY = "olk-Pl4nt3dApiKey-0123456789"  # an OpenLineage API key that must appear nowhere


class Receiver:
    """An OpenLineage consumer: POST /api/v1/lineage, one event per request."""

    def __init__(self) -> None:
        self.answer = 201
        self.events: list[dict[str, Any]] = []
        self.bodies: list[bytes] = []
        self.authorizations: list[str | None] = []
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.attempts += 1
                if receiver.answer == 0:  # hangs: takes the request, never answers
                    time.sleep(3)
                    self.close_connection = True
                    return
                if self.path != "/api/v1/lineage":
                    self.send_response(404)
                elif receiver.answer == 201:
                    receiver.bodies.append(body)
                    receiver.events.append(json.loads(body))
                    receiver.authorizations.append(self.headers.get("Authorization"))
                    self.send_response(201)
                else:
                    self.send_response(receiver.answer)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def down(self) -> None:
        """Stop answering at all: the port is closed."""
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    consumer = Receiver()
    yield consumer
    consumer.down()


@pytest.fixture(autouse=True)
def _only_our_consumer(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OpenLineage setting of the machine running the tests leaks in."""
    for name in ("OPENLINEAGE_URL", "OPENLINEAGE_CONFIG", "OPENLINEAGE_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENLINEAGE_API_KEY", KEY)


def _configure(root: Path, url: str, **more: str) -> None:
    settings = "".join(f"  {key}: {value}\n" for key, value in {"url": url, **more}.items())
    with (root / "dvflow.yaml").open("a", encoding="utf-8") as handle:
        handle.write(f"openlineage:\n{settings}")
    git(root, "commit", "-qam", "send lineage live")


def _project(make_project: Callable[..., Path], url: str) -> Path:
    root = make_project()
    git(root, "remote", "add", "origin", "https://alice:Sup3rS3cretT0ken@github.com/org/repo.git")
    _configure(root, url)
    return root


def _outbox(root: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in _emit.outbox_lines(root)]


def _by_run(events: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["run"]["runId"], "START" if e["eventType"] == "START" else "END"): e for e in events}


def test_a_live_run_sends_each_event_as_it_happens_and_they_match_the_export(
    make_project: Callable[..., Path],
    receiver: Receiver,
    registry: Registry,  # type: ignore[type-arg]  # noqa: F811
) -> None:
    root = _project(make_project, receiver.url)
    notices: list[str] = []
    first = dvflow.run_pipeline(root, on_progress=lambda p: notices.append(p.message))
    assert first.status == "FINISHED"
    assert not any("OpenLineage" in n for n in notices), notices
    assert not (root / _emit.OUTBOX).exists()

    got = receiver.events
    assert len(got) == 6  # the pipeline and two stages, START and terminal each
    per_run = Counter((e["run"]["runId"], e["eventType"]) for e in got)
    assert set(per_run.values()) == {1}
    assert got[0]["job"]["name"] == "dvc.yaml" and got[0]["eventType"] == "START"
    assert got[-1]["job"]["name"] == "dvc.yaml" and got[-1]["eventType"] == "COMPLETE"
    for event in got:
        check_event(registry, event)
    # Sent as it happened: each stage's START came before its terminal event, and
    # the first stage ended before the second started.
    names = [(e["job"]["name"], e["eventType"]) for e in got]
    assert names.index(("dvc.yaml:prepare", "START")) < names.index(
        ("dvc.yaml:prepare", "COMPLETE")
    )
    assert names.index(("dvc.yaml:prepare", "COMPLETE")) < names.index(("dvc.yaml:train", "START"))

    # The same runs as 'dvflow export openlineage' names them: terminal events byte
    # for byte (as JSON), START events with the same run, job and time.
    exported = _by_run([json.loads(line) for line in dvflow.export_openlineage(path=root)])
    live = _by_run(got)
    assert set(live) == set(exported)
    for key, event in live.items():
        if key[1] == "END":
            assert event == exported[key]
        else:
            for field in ("eventTime", "job", "producer", "schemaURL"):
                assert event[field] == exported[key][field]
            assert event["run"]["runId"] == exported[key]["run"]["runId"]

    # The API key went to the consumer in the header, and into no event.
    assert receiver.authorizations == [f"Bearer {KEY}"] * 6
    for body in receiver.bodies:
        for secret in (KEY, "Sup3rS3cretT0ken", "alice"):
            assert secret.encode() not in body


def test_a_failing_consumer_never_fails_the_run_and_sync_delivers_each_event_once(
    make_project: Callable[..., Path], receiver: Receiver
) -> None:
    # Planted: a password in the consumer's URL, and a DVC remote with one.
    root = _project(make_project, receiver.url.replace("://", "://olu:0lPassw0rdXyz@"))
    added = dvc(
        root, "remote", "add", "-d", "-f", "web", "https://bob:Pa55w0rdXyzzy@dvc.example.com/s"
    )
    assert added.returncode == 0, added.stderr
    (root / ".dvc" / "config.local").write_text(
        "['remote \"web\"']\n    password = Pa55w0rdXyzzy\n", encoding="utf-8"
    )
    git(root, "commit", "-qam", "a remote with a password")
    receiver.answer = 500
    notices: list[str] = []
    run = dvflow.run_pipeline(root, on_progress=lambda p: notices.append(p.message))
    assert run.status == "FINISHED"
    assert receiver.attempts == 1  # after the first failure the rest go straight to the outbox
    written = (root / _emit.OUTBOX).read_text() + "\n".join(notices)
    assert "dvc.example.com" in written
    for secret in ("0lPassw0rdXyz", "olu:", "Pa55w0rdXyzzy", "bob:", KEY, "Sup3rS3cretT0ken"):
        assert secret not in written
    kept = _outbox(root)
    assert len(kept) == 6
    assert any("6 event(s) wait in .dvflow/openlineage-outbox.jsonl" in n for n in notices)
    assert any("500" in n and "dvflow sync" in n for n in notices), notices
    assert KEY not in (root / _emit.OUTBOX).read_text()
    doctor = cli("doctor", "-C", str(root))
    line = next(x for x in doctor.stdout.splitlines() if "openlineage" in x)
    assert line.split()[0] == "warn" and "answers; 6 event(s) wait" in line, doctor.stdout

    receiver.answer = 201
    synced = cli("sync", "-C", str(root))
    assert synced.returncode == 0, synced.stderr
    assert "0lPassw0rdXyz" not in synced.stdout + synced.stderr
    assert f"sent 6 OpenLineage event(s) to {receiver.url}/api/v1/lineage" in synced.stdout
    assert receiver.events == kept  # in order, each once
    assert not (root / _emit.OUTBOX).exists()
    again = cli("sync", "-C", str(root))
    assert again.returncode == 0 and "nothing to sync" in again.stdout
    assert len(receiver.events) == 6

    exported = {
        (e["run"]["runId"], e["eventType"])
        for e in map(json.loads, dvflow.export_openlineage(path=root))
    }
    assert {(e["run"]["runId"], e["eventType"]) for e in receiver.events} == exported


def test_a_consumer_that_never_answers_keeps_every_event_in_order(
    make_project: Callable[..., Path], receiver: Receiver
) -> None:
    root = _project(make_project, receiver.url)
    receiver.answer = 0
    notices: list[str] = []
    run = dvflow.run_pipeline(root, on_progress=lambda p: notices.append(p.message))
    assert run.status == "FINISHED"
    kept = _outbox(root)
    assert len(kept) == 6 and not receiver.events
    assert kept[0]["job"]["name"] == "dvc.yaml" and kept[0]["eventType"] == "START"
    assert kept[-1]["job"]["name"] == "dvc.yaml" and kept[-1]["eventType"] == "COMPLETE"
    assert any("6 event(s) wait" in n for n in notices), notices

    receiver.answer = 201
    synced = cli("sync", "-C", str(root))
    assert synced.returncode == 0, synced.stderr
    assert receiver.events == kept


def test_a_consumer_that_is_down_keeps_the_events_and_sync_says_so_with_exit_8(
    make_project: Callable[..., Path], receiver: Receiver
) -> None:
    root = _project(make_project, receiver.url)
    receiver.down()
    run = dvflow.run_pipeline(root)
    assert run.status == "FINISHED"
    assert len(_outbox(root)) == 6

    synced = cli("sync", "-C", str(root))
    assert synced.returncode == 8
    assert synced.stderr.startswith(f"error: OpenLineage consumer {receiver.url}/api/v1/lineage")
    assert "6 OpenLineage event(s) still wait" in synced.stderr and "hint: " in synced.stderr
    assert "Traceback" not in synced.stderr
    assert len(_outbox(root)) == 6  # nothing lost

    doctor = cli("doctor", "-C", str(root))
    line = next(x for x in doctor.stdout.splitlines() if "openlineage" in x)
    assert "FAIL" in line and receiver.url in line and "dvflow.yaml" in line, doctor.stdout
    assert KEY not in doctor.stdout + doctor.stderr


def test_events_wait_with_a_hint_when_openlineage_python_is_missing(
    make_project: Callable[..., Path], receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing(endpoint: _emit.Endpoint) -> Any:
        raise ImportError("No module named 'openlineage'")

    monkeypatch.setattr(_emit, "make_transport", missing)
    root = _project(make_project, receiver.url)
    notices: list[str] = []
    run = dvflow.run_pipeline(root, on_progress=lambda p: notices.append(p.message))
    assert run.status == "FINISHED"
    assert len(_outbox(root)) == 6 and not receiver.events
    assert any("pip install 'dvflow[openlineage]'" in n for n in notices), notices


def test_openlineage_s_own_configuration_is_honoured_and_disabled_means_nothing_sent(
    make_project: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project()
    events = tmp_path / "events.jsonl"
    (root / "openlineage.yml").write_text(
        f"transport:\n  type: file\n  log_file_path: {events}\n  append: true\n", encoding="utf-8"
    )
    git(root, "add", "openlineage.yml")
    git(root, "commit", "-qm", "OpenLineage's own config file")
    monkeypatch.setenv("OPENLINEAGE_DISABLED", "true")
    dvflow.run_pipeline(root)
    assert not events.exists()

    monkeypatch.delenv("OPENLINEAGE_DISABLED")
    dvflow.run_pipeline(root, record_noop=True)
    lines = events.read_text().splitlines()
    assert len(lines) == 6
    assert all(json.loads(line)["producer"].startswith("urn:dvflow:") for line in lines)


def test_a_broken_openlineage_setting_stops_the_run_before_it_starts(
    make_project: Callable[..., Path],
) -> None:
    root = make_project()
    with (root / "dvflow.yaml").open("a", encoding="utf-8") as handle:
        handle.write(f"openlineage:\n  url: http://127.0.0.1:9\n  api_key: {KEY}\n")
    git(root, "commit", "-qam", "an API key in the file")
    result = cli("run", "-C", str(root))
    assert result.returncode == 3
    assert "unknown openlineage setting(s): api_key" in result.stderr
    assert "OPENLINEAGE_API_KEY" in result.stderr
    assert KEY not in result.stderr + result.stdout


def test_export_url_sends_every_event_and_a_refusal_is_exit_8(
    make_project: Callable[..., Path], receiver: Receiver
) -> None:
    root = make_project()
    dvflow.run_pipeline(root)
    sent = cli("export", "openlineage", "--url", receiver.url, "-C", str(root))
    assert sent.returncode == 0, sent.stderr
    assert f"sent 6 event(s) to {receiver.url}/api/v1/lineage" in sent.stderr
    assert [json.loads(line) for line in dvflow.export_openlineage(path=root)] == receiver.events
    assert receiver.authorizations == [f"Bearer {KEY}"] * 6

    receiver.answer = 500
    refused = cli("export", "openlineage", "--url", receiver.url, "-C", str(root))
    assert refused.returncode == 8
    assert "(sent 0 of 6 event(s))" in refused.stderr and "hint: " in refused.stderr


def test_dataset_names_agree_with_openlineage_python_s_naming_helpers() -> None:
    from openlineage.client.naming import dataset as naming

    expected = {
        "s3://bucket/files/md5/ab/cdef": naming.S3("bucket", "files/md5/ab/cdef"),
        "gs://bucket/store/ab/cdef": naming.GCS("bucket", "store/ab/cdef"),
        "azure://models/files/md5/ab/cdef": naming.WASBS("models", "acct", "files/md5/ab/cdef"),
        "/srv/dvc-store/files/md5/ab/cdef": naming.LocalFileSystem(
            "/srv/dvc-store/files/md5/ab/cdef"
        ),
    }
    for uri, helper in expected.items():
        assert location(uri, {"models": "acct"}) == (helper.get_namespace(), helper.get_name())


@pytest.mark.slow
def test_the_demo_sends_its_lineage_live_and_exports_the_raw_md5_and_the_model_version(
    tmp_path: Path,
    receiver: Receiver,
    registry: Registry,  # type: ignore[type-arg]  # noqa: F811
) -> None:
    import yaml

    demo = cli("demo", cwd=tmp_path, env={"OPENLINEAGE_URL": receiver.url})
    assert demo.returncode == 0, demo.stderr
    assert "OpenLineage" not in demo.stderr  # every event was taken
    root = tmp_path / "dvflow-demo"
    out = tmp_path / "events.jsonl"
    exported = cli("export", "openlineage", "-o", str(out), "-C", str(root))
    assert exported.returncode == 0, exported.stderr
    events = [json.loads(line) for line in out.read_text().splitlines()]
    for event in events:
        check_event(registry, event)

    raw = yaml.safe_load((root / "data" / "raw.csv.dvc").read_text())["outs"][0]["md5"]
    inputs = {
        (d["name"], d["facets"]["version"]["datasetVersion"]) for e in events for d in e["inputs"]
    }
    assert ("data/raw.csv", raw) in inputs
    models = [d for e in events for d in e["outputs"] if d["name"] == "wine-classifier/1"]
    assert models and models[0]["facets"]["datasetType"]["datasetType"] == "MODEL"

    # Three pipeline runs of three stages, each START and terminal, all sent live.
    assert len(receiver.events) == len(events) == 24
    live = _by_run(receiver.events)
    assert set(live) == set(_by_run(events))
    for key, event in _by_run(events).items():
        if key[1] == "END":
            assert live[key] == event


def test_a_send_still_in_flight_when_the_budget_ends_is_kept_in_its_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A transport slower than the budget (our seam: make_transport): the first event
    # is still being sent when close() gives up, two more wait in the queue.
    class Slow:
        def __init__(self) -> None:
            self.sent: list[dict[str, Any]] = []

        def emit(self, event: dict[str, Any]) -> None:
            time.sleep(2 * _emit.SEND_BUDGET)
            self.sent.append(event)

        def close(self) -> None:
            pass

    slow = Slow()
    monkeypatch.setattr(_emit, "make_transport", lambda endpoint: slow)
    names = _emit.Names(None, None, "p", "sqlite:///mlflow.db", "sqlite:///mlflow.db", {})
    endpoint = _emit.Endpoint({"type": "http", "url": "http://127.0.0.1:9"}, "consumer", "test")
    live = _emit.LiveLineage(tmp_path, endpoint, names, Redactor())
    for n in range(3):
        live._put({"n": n})
    time.sleep(0.2)  # the worker has taken the first
    notice = live.close()
    assert notice is not None and "3 event(s) wait" in notice and "no answer within 1 s" in notice
    assert [e["n"] for e in _outbox(tmp_path)] == [0, 1, 2]
