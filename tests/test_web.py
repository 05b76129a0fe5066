"""dvflow ui's pages and API through Starlette's TestClient, on real projects and stores.

The demo's lineage as the API gives it, the record pages and their digest
state (a rewritten record shows as tampered), 404s, names that try to be
markup, and credentials that must appear on no page.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from conftest import cli, dvc, git, stage_runs, tracking_client
from dvflow.trace._html import MARKER_SCRIPT
from dvflow.web._app import create_app

HOSTILE_PATH = "data/<img src=x onerror=alert(1)>.csv"
HOSTILE_PARAM = "</td><script>alert(2)</script>"
HOSTILE_MODEL = "<img src=x onerror=alert(3)>"
PLANTED = "planted-Secret-8f3a2b"


@pytest.fixture
def client(demo: Path) -> Iterator[TestClient]:
    with TestClient(create_app(demo)) as test_client:
        yield test_client


def graph_sets(data: dict[str, Any]) -> tuple[set[str], set[tuple[str, str, str]]]:
    return (
        {n["id"] for n in data["nodes"]},
        {(e["source"], e["target"], e["kind"]) for e in data["edges"]},
    )


def test_the_api_gives_the_demo_lineage_with_the_cli_node_ids(
    demo: Path, client: TestClient
) -> None:
    answer = client.get("/api/models/wine-classifier/versions/1/lineage")
    assert answer.status_code == 200
    printed = cli("lineage", "models:/wine-classifier/1", "--json", "-C", str(demo))
    assert printed.returncode == 0, printed.stderr
    assert graph_sets(answer.json()) == graph_sets(json.loads(printed.stdout))
    node_ids, edges = graph_sets(answer.json())
    runs = stage_runs(demo)  # the newest run of each stage; v1 came from the first train
    assert "model:wine-classifier/1" in node_ids
    assert any(i.startswith("data:") and i.endswith(":data/raw.csv") for i in node_ids)
    assert {i.partition(":")[0] for i in node_ids} == {"model", "run", "data", "entry"}
    assert any(e[2] == "registered-from" for e in edges)
    # The same ids through the generic query and the impact of the raw data.
    same = client.get("/api/lineage", params={"target": "models:/wine-classifier@production"})
    assert graph_sets(same.json()) == graph_sets(answer.json())
    impact = client.get("/api/impact", params={"target": "data/raw.csv"}).json()
    assert {"model:wine-classifier/1", "model:wine-classifier/2"} <= graph_sets(impact)[0]
    assert f"run:{runs['evaluate']}" in graph_sets(impact)[0]


def test_the_home_page_lists_versions_aliases_lineage_state_and_pipeline_runs(
    demo: Path, client: TestClient
) -> None:
    page = client.get("/")
    assert page.status_code == 200
    text = page.text
    assert "wine-classifier" in text and "@production" in text
    assert text.count('class="ok">complete<') == 2  # both versions
    assert "identical" in text  # the demo's verify --rebuild verdict on v1's run
    parents = {
        r.data.tags.get("mlflow.parentRunId") for r in _runs(demo) if "dvflow.stage" in r.data.tags
    }
    for parent in parents:
        assert f"/runs/{parent}" in text
    models = client.get("/api/models").json()["models"]
    versions = {v["version"]: v for v in models[0]["versions"]}
    assert versions["1"]["aliases"] == ["production"] and versions["2"]["aliases"] == []
    assert versions["1"]["verdict"] == "identical"


def _runs(root: Path) -> list[Any]:
    client = tracking_client(root)
    return list(client.search_runs([e.experiment_id for e in client.search_experiments()]))


def test_the_model_page_draws_every_node_and_links_runs_to_their_pages(
    client: TestClient,
) -> None:
    page = client.get("/models/wine-classifier/versions/1")
    assert page.status_code == 200
    lineage = client.get("/api/models/wine-classifier/versions/1/lineage").json()
    assert f'data-node-count="{len(lineage["nodes"])}"' in page.text
    # The drawing shrinks to the page's width (not below 70% of its size) to show
    # the demo's whole chain, model included, without scrolling.
    assert '<svg id="lineage-graph" class="lineage fit" style="min-width: ' in page.text
    for node in lineage["nodes"]:
        assert f'data-id="{node["id"]}"' in page.text
        if node["kind"] == "run":
            assert f'<a href="/runs/{node["attrs"]["run_id"]}">' in page.text
    assert 'id="record-state"' in page.text and ">intact<" in page.text
    assert "Content-Security-Policy" in page.headers
    assert "script-src 'sha256-" in page.headers["Content-Security-Policy"]


def test_a_run_page_shows_its_record_intact_with_inputs_outputs_params_and_metrics(
    demo: Path, client: TestClient
) -> None:
    run_id = stage_runs(demo)["train"]
    page = client.get(f"/runs/{run_id}")
    assert page.status_code == 200
    assert 'data-state="intact"' in page.text
    assert "data/prepared" in page.text and "models/model.pkl" in page.text
    assert "train.n_estimators" in page.text
    record = client.get(f"/api/runs/{run_id}").json()
    assert record["intact"] is True and record["state"] == "intact"
    shown = cli("show", run_id, "--json", "-C", str(demo)).stdout
    assert record["record"] == json.loads(shown)
    assert "MLflow UI" not in page.text  # a SQLite store has no server to link to


def test_data_and_diff_pages_answer_as_impact_and_diff_do(demo: Path, client: TestClient) -> None:
    md5 = (demo / "data" / "raw.csv.dvc").read_text().split("md5: ")[1].split()[0]
    page = client.get(f"/data/{md5}/data/raw.csv")
    assert page.status_code == 200
    assert "wine-classifier v1" in page.text and "wine-classifier v2" in page.text
    api = client.get(f"/api/data/{md5}/data/raw.csv").json()
    printed = json.loads(cli("impact", md5, "--json", "-C", str(demo)).stdout)
    assert graph_sets(api)[0] <= graph_sets(printed)[0]
    assert api["roots"] == [f"data:{md5}:data/raw.csv"]

    diff = client.get(
        "/api/diff", params={"a": "models:/wine-classifier/1", "b": "models:/wine-classifier/2"}
    )
    printed = cli(
        "diff", "models:/wine-classifier/1", "models:/wine-classifier/2", "--json", "-C", str(demo)
    )
    assert diff.json() == json.loads(printed.stdout)
    page = client.get(
        "/diff", params={"a": "models:/wine-classifier/1", "b": "models:/wine-classifier/2"}
    )
    assert page.status_code == 200 and "train.n_estimators" in page.text


def test_unknown_pages_runs_models_and_data_answer_404_with_a_clear_page(
    client: TestClient,
) -> None:
    for url in (
        "/nothing-here",
        "/runs/0123456789abcdef0123456789abcdef",
        "/models/no-such-model/versions/1",
        "/models/wine-classifier/versions/99",
        "/data/0123456789abcdef0123456789abcdef/data/raw.csv",
        "/lineage?target=no/such/path.csv",
    ):
        page = client.get(url)
        assert page.status_code == 404, url
        assert 'id="error" data-status="404"' in page.text
        assert "Not found" in page.text
    api = client.get("/api/runs/0123456789abcdef0123456789abcdef")
    assert api.status_code == 404 and "error" in api.json()
    assert client.get("/api/nothing").status_code == 404


def test_the_server_is_read_only_and_answers_only_loopback_host_names(client: TestClient) -> None:
    assert client.post("/").status_code == 405
    assert client.delete("/runs/x").status_code == 405
    assert client.get("/", headers={"Host": "attacker.example"}).status_code == 400
    assert client.get("/", headers={"Host": "127.0.0.1:8765"}).status_code == 200


def test_a_rewritten_record_shows_as_tampered(
    make_project: Callable[..., Path],
) -> None:
    root = make_project()
    assert cli("run", "-C", str(root)).returncode == 0
    run_id = stage_runs(root)["train"]
    uri = tracking_client(root).get_run(run_id).info.artifact_uri
    record = Path(uri.removeprefix("file://")) / "dvflow" / "record.json"
    raw = record.read_bytes()
    assert b"train.lr" in raw
    record.write_bytes(raw.replace(b"train.lr", b"train.LR"))
    with TestClient(create_app(root)) as client:
        page = client.get(f"/runs/{run_id}")
        assert page.status_code == 200
        assert 'data-state="tampered"' in page.text and "do not trust this run" in page.text
        answer = client.get(f"/api/runs/{run_id}").json()
        assert answer["intact"] is False and answer["state"] == "tampered"
        assert answer["expected_sha256"] != answer["actual_sha256"]


def _hostile_project(root: Path, template_db: Path) -> Path:
    from dvflow import init_project

    (root / "data").mkdir(parents=True)
    (root / HOSTILE_PATH).write_text("a,b\n1,2\n")
    (root / "make.py").write_text(
        "import pathlib\n"
        "src = next(pathlib.Path('data').glob('*.csv'))\n"
        "pathlib.Path('model.txt').write_text(src.read_text().upper())\n"
    )
    (root / "params.yaml").write_text(json.dumps({"hostile": {"note": HOSTILE_PARAM}}))
    stage = {"cmd": "python make.py", "deps": ["make.py", HOSTILE_PATH]}
    stage |= {"params": ["hostile.note"], "outs": ["model.txt"]}
    (root / "dvc.yaml").write_text(json.dumps({"stages": {"make": stage}}))
    init_project(root)
    shutil.copy(template_db, root / "mlflow.db")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "hostile names")
    assert cli("run", "-C", str(root)).returncode == 0
    registered = cli("register", "make", "--name", HOSTILE_MODEL, "-C", str(root))
    assert registered.returncode == 0, registered.stderr
    return root


def every_page(client: TestClient, root: Path) -> dict[str, str]:
    """The body of every page and API answer about the project's runs, models and data."""
    urls = ["/", "/api/models", "/diff", "/lineage"]
    for run in _runs(root):
        urls += [f"/runs/{run.info.run_id}", f"/api/runs/{run.info.run_id}"]
    for model in client.get("/api/models").json()["models"]:
        for version in model["versions"]:
            base = f"/models/{_q(model['name'])}/versions/{version['version']}"
            urls += [base, f"/api{base}", f"/api{base}/lineage"]
    bodies = {}
    for url in urls:
        answer = client.get(url)
        assert answer.status_code == 200, (url, answer.text[:300])
        bodies[url] = answer.text
    for found in re.findall(r'href="(/data/[^"]+)"', "".join(bodies.values())):
        bodies[found] = client.get(found.replace("&amp;", "&")).text
    return bodies


def _q(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


def test_hostile_names_are_shown_as_text_never_as_markup(tmp_path: Path, template_db: Path) -> None:
    root = _hostile_project(tmp_path / "hostile", template_db)
    with TestClient(create_app(root)) as client:
        bodies = every_page(client, root)
    html = {url: body for url, body in bodies.items() if not url.startswith("/api/")}
    # The one script of every page is the marker's; nothing else may be markup.
    joined = "".join(html.values()).replace(f"<script>{MARKER_SCRIPT}</script>", "")
    for hostile in (HOSTILE_PATH, HOSTILE_PARAM, HOSTILE_MODEL, "<script>", "<img"):
        assert hostile not in joined
    assert "&lt;img src=x onerror=alert(1)&gt;" in joined  # the path, as text
    assert "&lt;/td&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in joined  # the param
    assert "&lt;img src=x onerror=alert(3)&gt;" in joined  # the model's name
    assert any(url.startswith("/data/") for url in html)  # the hostile path's own page
    api = json.loads(bodies["/api/models"])
    assert api["models"][0]["name"] == HOSTILE_MODEL  # JSON keeps the name as it is


def test_lineage_html_is_one_offline_page_with_hostile_names_as_text(
    tmp_path: Path, template_db: Path
) -> None:
    root = _hostile_project(tmp_path / "hostile", template_db)
    out = tmp_path / "lineage.html"
    result = cli("lineage", f"models:/{HOSTILE_MODEL}/1", "--html", str(out), "-C", str(root))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and "wrote" in result.stderr
    page = out.read_text()
    assert "<svg" in page and 'data-node-count="' in page
    assert HOSTILE_PATH not in page and HOSTILE_MODEL not in page and "<script>alert" not in page
    assert page.count("<script>") == 1 and f"<script>{MARKER_SCRIPT}</script>" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    # Nothing to fetch: no URL at all (a SQLite store has no server to link to).
    assert not re.search(r"(?i)(https?:)?//[a-z0-9]", page)
    assert not re.search(r"(?i)\b(src|href)=\"(?!#)", page)


def test_no_page_shows_a_credential_of_the_tracking_uri_or_a_remote(
    make_project: Callable[..., Path],
) -> None:
    root = make_project()
    # A param holds the value before it becomes the remote's password: the record has it.
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("  lr: 0.1", f"  lr: 0.1\n  comment: {PLANTED}"))
    git(root, "commit", "-qam", "a comment")
    assert cli("run", "-C", str(root)).returncode == 0
    for args in (
        ("remote", "add", "--local", "team", "s3://team-bucket/dvc"),
        ("remote", "modify", "--local", "team", "secret_access_key", PLANTED),
    ):
        planted = dvc(root, *args)
        assert planted.returncode == 0, planted.stderr
    run_id = stage_runs(root)["train"]
    with TestClient(create_app(root)) as client:
        bodies = {url: client.get(url).text for url in ("/", f"/runs/{run_id}")}
    assert "train.comment" in bodies[f"/runs/{run_id}"]
    uri = f"http://alice:{PLANTED}@127.0.0.1:9/"  # nothing answers there
    with TestClient(create_app(root, tracking_uri=uri)) as client:
        for url in ("/", "/api/models", "/lineage?target=data/raw.txt", f"/runs/{run_id}"):
            bodies[f"server {url}"] = client.get(url).text
    for url, body in bodies.items():
        assert PLANTED not in body, url
        assert "alice" not in body, url
    assert "unreachable" in bodies["server /"]  # it said why it answers from Git history


def _version_page(root: Path, name: str, version: str) -> tuple[str, str]:
    """A version's description, and the lineage page logged to its run."""
    client = tracking_client(root)
    mv = client.get_model_version(name, version)
    folder = root.parent / "downloads" / f"{name}-{version}"
    local = client.download_artifacts(mv.run_id, "dvflow/lineage.html", str(folder))
    return mv.description or "", Path(local).read_text()


def test_dvflow_run_gives_each_new_version_its_lineage_in_the_mlflow_ui(demo: Path) -> None:
    for version in ("1", "2"):
        description, page = _version_page(demo, "wine-classifier", version)
        lineage = json.loads(
            cli("lineage", f"models:/wine-classifier/{version}", "--json", "-C", str(demo)).stdout
        )
        model = next(n for n in lineage["nodes"] if n["kind"] == "model")["attrs"]
        assert f"produced by run `{model['run_id']}` (stage `train`" in description
        assert f"commit `{model['commit']}`" in description
        for node in lineage["nodes"]:
            if node["kind"] == "data":
                assert f"`{node['attrs']['path']}` md5 `{node['attrs']['md5']}`" in description
        assert f"dvflow lineage models:/wine-classifier/{version}" in description
        assert f'data-node-count="{len(lineage["nodes"])}"' in page
        assert {f'data-id="{n["id"]}"' for n in lineage["nodes"]} <= set(
            re.findall(r'data-id="[^"]+"', page)
        )


def test_dvflow_register_gives_the_new_version_its_lineage_in_the_mlflow_ui(
    make_project: Callable[..., Path],
) -> None:
    root = make_project()
    assert cli("run", "-C", str(root)).returncode == 0
    result = cli("register", "train", "--name", "basic-model", "-C", str(root))
    assert result.returncode == 0, result.stderr
    description, page = _version_page(root, "basic-model", "1")
    assert f"produced by run `{stage_runs(root)['train']}`" in description
    assert "`data/raw.txt` md5 `" in description and "`data/clean` md5 `" in description
    assert "Lineage of models:/basic-model/1" in page
    # Written through: the index knows the description's change of the store.
    assert "store unchanged" in cli("index", "-C", str(root)).stdout
    # Registering the same model again makes no version and writes nothing new.
    again = cli("register", "train", "--name", "basic-model", "-C", str(root))
    assert "already registered as basic-model version 1" in again.stdout


def test_ui_listens_on_loopback_prints_its_url_and_refuses_a_busy_port(demo: Path) -> None:
    import socket
    import subprocess
    import urllib.request

    from conftest import DVFLOW

    proc = subprocess.Popen(
        [str(DVFLOW), "ui", "-C", str(demo), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = line.split(" at ", 1)[1].split()[0]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/")
        with urllib.request.urlopen(url + "api/models", timeout=30) as answer:  # noqa: S310
            assert json.loads(answer.read())["models"][0]["name"] == "wine-classifier"
        port = int(url.rsplit(":", 1)[1].strip("/"))
        busy = cli("ui", "-C", str(demo), "--port", str(port), timeout=60)
        assert busy.returncode == 2
        assert f"cannot listen on 127.0.0.1:{port}" in busy.stderr
        assert "hint: Pick another port with --port N" in busy.stderr
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    with socket.socket() as probe:  # the server let go of its port (TIME_WAIT aside)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))


def test_ui_warns_that_a_host_beyond_loopback_has_no_authentication(
    demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from dvflow.cli._cli import cli as dvflow_cli
    from dvflow.web import _serve

    served: list[tuple[str, bool]] = []

    def fake_serve(path: str, bound: _serve.Bound, **_: object) -> None:  # our own seam
        served.append((bound.url, bound.loopback))
        bound.sock.close()

    monkeypatch.setattr(_serve, "serve", fake_serve)
    monkeypatch.setattr(
        _serve,
        "bind",
        lambda host, port: _serve.Bound(
            _FakeSocket(), f"http://{host}:{port}/", _serve.is_loopback(host)
        ),
    )
    result = CliRunner().invoke(dvflow_cli, ["ui", "-C", str(demo), "--host", "192.0.2.7"])
    assert result.exit_code == 0, result.output
    assert "warning: the server has no authentication" in result.stderr
    assert served == [("http://192.0.2.7:8765/", False)]
    result = CliRunner().invoke(dvflow_cli, ["ui", "-C", str(demo)])
    assert "warning" not in result.stderr
    assert served[-1] == ("http://127.0.0.1:8765/", True)
    assert _serve.is_loopback("::1") and _serve.is_loopback("127.0.0.2")
    assert not _serve.is_loopback("0.0.0.0")  # noqa: S104 - every address, not loopback


class _FakeSocket:
    def close(self) -> None:
        pass


def test_a_search_lists_the_matching_nodes_and_outlines_them_in_the_drawing(
    demo: Path, client: TestClient
) -> None:
    md5 = (demo / "data" / "raw.csv.dvc").read_text().split("md5: ")[1].split()[0]
    page = client.get(f"/data/{md5}/data/raw.csv", params={"q": "EVALUATE"})
    assert page.status_code == 200
    rows = re.findall(r'<td class="mono">(run:[0-9a-f]+|data:[^<]+|model:[^<]+)</td>', page.text)
    evaluate = {
        f"run:{r.info.run_id}" for r in _runs(demo) if r.data.tags.get("dvflow.stage") == "evaluate"
    }
    assert set(rows) == evaluate and len(evaluate) == 3
    assert page.text.count(' hit" data-id=') == 3
    assert 'value="EVALUATE"' in page.text  # the box keeps the search
