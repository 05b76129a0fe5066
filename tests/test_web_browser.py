"""dvflow ui in a real browser: Debian's Chromium, headless, against ``dvflow ui`` on 127.0.0.1.

The model page draws its graph (the page sets ``data-graph-nodes`` once the
drawing is in the DOM), a click on a run node opens that run's page, names
that try to be markup never run, and ``lineage --html`` opens from a file.
Each page's screenshot is written under the test's tmp folder; the paths
are listed at the end of the test session's output.

Chromium comes from the system (``apt-get install chromium``, as .ci/run
does): missing, these tests fail in CI and are skipped elsewhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from browser import Browser, find_chromium
from conftest import DVFLOW, cli, stage_runs
from test_web import HOSTILE_MODEL, HOSTILE_PARAM, HOSTILE_PATH, _hostile_project

Record = Callable[[str, object], None]


@pytest.fixture(scope="module")
def chromium() -> str:
    found = find_chromium()
    if found is None:
        reason = "Chromium is not installed ('apt-get install -y chromium' installs it)"
        if os.environ.get("CI"):
            pytest.fail(reason + ": CI must run the browser tests")
        pytest.skip(reason)
    return found


@pytest.fixture
def browser(chromium: str, tmp_path: Path) -> Iterator[Browser]:
    opened = Browser(chromium, tmp_path / "profile", tmp_path / "chromium.log")
    try:
        yield opened
    finally:
        opened.close()


class Served:
    def __init__(self, root: Path, log: Path) -> None:
        self._log = log.open("w")
        self.proc = subprocess.Popen(
            [str(DVFLOW), "ui", "-C", str(root), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert "serving" in line, log.read_text()
        self.url = line.split(" at ", 1)[1].split()[0].rstrip("/")
        assert self.url.startswith("http://127.0.0.1:")

    def get(self, path: str) -> str:
        with urllib.request.urlopen(self.url + path, timeout=30) as answer:  # noqa: S310 - loopback
            return str(answer.read().decode())

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self._log.close()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[Path], Served]]:
    started: list[Served] = []

    def start(root: Path) -> Served:
        started.append(Served(root, tmp_path / f"ui-{len(started)}.log"))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def shot(browser: Browser, tmp_path: Path, name: str, record_property: Record) -> Path:
    path = browser.screenshot(tmp_path / f"{name}.png")
    assert path.stat().st_size > 1000
    record_property("screenshot", str(path))
    return path


def test_the_model_page_draws_its_graph_and_a_click_opens_the_run(
    demo: Path,
    browser: Browser,
    serve: Callable[[Path], Served],
    tmp_path: Path,
    record_property: Record,
) -> None:
    server = serve(demo)
    lineage = json.loads(server.get("/api/models/wine-classifier/versions/1/lineage"))
    browser.open(server.url + "/")
    assert "wine-classifier" in browser.evaluate("document.body.innerText")
    shot(browser, tmp_path, "home", record_property)

    browser.open(server.url + "/models/wine-classifier/versions/1")
    drawn = browser.evaluate("document.documentElement.getAttribute('data-graph-nodes')")
    assert drawn == str(len(lineage["nodes"]))
    # Laid out: every node box has a size on the screen.
    sizes = browser.evaluate(
        "Array.from(document.querySelectorAll('#lineage-graph g.node rect'))"
        ".map(function(r){var b=r.getBoundingClientRect();return b.width*b.height;})"
    )
    assert len(sizes) == len(lineage["nodes"]) and all(s > 0 for s in sizes)
    shot(browser, tmp_path, "model", record_property)

    run_id = next(n["attrs"]["run_id"] for n in lineage["nodes"] if n["label"] == "train")
    browser.click(f'#lineage-graph g.node[data-id="run:{run_id}"]')
    browser.wait_for("Page.loadEventFired")
    assert browser.evaluate("location.pathname") == f"/runs/{run_id}"
    state = browser.evaluate("document.getElementById('digest').dataset.state")
    assert state == "intact"
    assert run_id in browser.evaluate("document.body.innerText")
    shot(browser, tmp_path, "run", record_property)

    prepare = stage_runs(demo)["prepare"]
    browser.open(server.url + f"/diff?a={prepare}&b={run_id}")
    assert "Params" in browser.evaluate("document.body.innerText")
    shot(browser, tmp_path, "diff", record_property)
    assert browser.dialogs == []


def test_hostile_names_show_as_text_and_never_run_in_the_browser(
    browser: Browser,
    serve: Callable[[Path], Served],
    tmp_path: Path,
    template_db: Path,
    record_property: Record,
) -> None:
    root = _hostile_project(tmp_path / "hostile", template_db)
    server = serve(root)
    browser.open(server.url + "/")
    text = browser.evaluate("document.body.innerText")
    assert HOSTILE_MODEL in text  # shown literally, as text
    shot(browser, tmp_path, "hostile-home", record_property)

    browser.open(server.url + f"/models/{quote(HOSTILE_MODEL, safe='')}/versions/1")
    assert browser.evaluate("document.documentElement.getAttribute('data-graph-nodes')") != "0"
    assert HOSTILE_PATH in browser.evaluate("document.body.innerText")
    shot(browser, tmp_path, "hostile-model", record_property)

    run_id = stage_runs(root)["make"]
    browser.click(f'#lineage-graph g.node[data-id="run:{run_id}"]')
    browser.wait_for("Page.loadEventFired")
    text = browser.evaluate("document.body.innerText")
    assert HOSTILE_PARAM in text and HOSTILE_PATH in text
    shot(browser, tmp_path, "hostile-run", record_property)

    browser.click("#inputs a")  # the hostile path's data page
    browser.wait_for("Page.loadEventFired")
    assert browser.evaluate("location.pathname").startswith("/data/")
    shot(browser, tmp_path, "hostile-data", record_property)

    injected = browser.evaluate(
        "document.querySelectorAll('img, script:not(:last-of-type), [onerror]').length"
    )
    assert injected == 0
    assert browser.dialogs == []


def test_lineage_html_opens_offline_from_a_file(
    demo: Path, browser: Browser, tmp_path: Path, record_property: Record
) -> None:
    page = tmp_path / "lineage.html"
    result = cli(
        "lineage", "models:/wine-classifier@production", "--html", str(page), "-C", str(demo)
    )
    assert result.returncode == 0, result.stderr
    browser.call("Network.enable", session=True)
    browser.open(page.as_uri())
    assert browser.evaluate("document.documentElement.getAttribute('data-graph-nodes')") == "8"
    assert browser.requests and all(url.startswith("file:") for url in browser.requests)
    browser.click('#lineage-graph g.node[data-id^="model:"]')
    assert browser.evaluate("location.hash").startswith("#n")
    shot(browser, tmp_path, "lineage-html", record_property)
