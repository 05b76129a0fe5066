"""dvflow ui at scale: server time of its pages and API against the same query by the CLI.

Builds the lineage benchmark's repository and store (bench_lineage.py:
``--commits`` commits, a ``--stages``-stage pipeline, 10,000 stage runs and
1,000 model versions by default), warms the index with ``dvflow index
--rebuild``, starts ``dvflow ui --port 0`` on it, and times, in one run:

- server: GET of the newest model version's page, its lineage JSON
  (``/api/.../lineage``), the home page (every version listed) and the
  raw data's impact JSON, each ``--requests`` times over one keep-alive-less
  HTTP connection per request (median and 95th percentile, wall);
- baseline: the same query through the CLI (``dvflow lineage
  models:/bench-model/N --json``, ``dvflow impact RAW --json``), a process
  each, ``--repeat`` times (median wall).

Prints the ratio CLI / server for each query: the server keeps Python, the
templates and the index open, so it should answer faster than a process.
Usage: python bench/bench_ui.py [--commits 1000] [--stages 20] [--requests 30] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from _common import ENV, median, row, timed
from bench_lineage import DVFLOW, MODEL, RAW, History, make_repo, make_store


def p95(values: list[float]) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def fetch(url: str) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=300) as answer:  # noqa: S310 - our own loopback server
        answer.read()
        assert answer.status == 200, url
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--commits", type=int, default=1000)
    parser.add_argument("--stages", type=int, default=20)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dvflow-bench-ui-") as tmp:
        root = Path(tmp) / "repo"
        history = History(args.commits, args.stages)
        t0 = time.perf_counter()
        commits = make_repo(root, history, fork=args.commits // 2)
        runs, versions = make_store(root, history, commits)
        print(
            f"generated {len(commits)} commits, {runs} stage runs, {versions} model versions "
            f"in {time.perf_counter() - t0:.0f} s; load average {os.getloadavg()[0]:.1f}\n"
        )
        env = {**ENV, "DVFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}
        timed([DVFLOW, "index", "--rebuild"], root, env)
        target = f"models:/{MODEL}/{versions}"
        cli = {
            "lineage": [
                timed([DVFLOW, "lineage", target, "--json"], root, env).wall
                for _ in range(args.repeat)
            ],
            "impact": [
                timed([DVFLOW, "impact", RAW, "--json"], root, env).wall for _ in range(args.repeat)
            ],
        }
        server = subprocess.Popen(
            [DVFLOW, "ui", "--port", "0"],
            cwd=root,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert server.stdout is not None
            base = server.stdout.readline().split(" at ", 1)[1].split()[0].rstrip("/")
            pages = {
                "model version page": f"/models/{MODEL}/versions/{versions}",
                "model lineage API (JSON)": f"/api/models/{MODEL}/versions/{versions}/lineage",
                "home page (all versions)": "/",
                "raw data impact API (JSON)": f"/api/impact?target={RAW}",
            }
            served = {}
            for label, path in pages.items():
                fetch(base + path)  # the first request of each kind warms the templates
                served[label] = [fetch(base + path) for _ in range(args.requests)]
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(row("", "median s", "p95 s", "CLI median s", "CLI / server"))
    baseline = {
        "model version page": "lineage",
        "model lineage API (JSON)": "lineage",
        "raw data impact API (JSON)": "impact",
    }
    for label, times in served.items():
        cells = [f"{median(times):.3f}", f"{p95(times):.3f}"]
        query = baseline.get(label)
        if query:
            cli_median = median(cli[query])
            cells += [f"{cli_median:.3f}", f"{cli_median / median(times):.1f}x"]
        else:
            cells += ["-", "-"]
        print(row(label, *cells))
    print(
        f"\n{args.requests} requests per page, {args.repeat} CLI runs per query; "
        "the CLI column is 'dvflow lineage TARGET --json' or 'dvflow impact RAW --json'"
    )


if __name__ == "__main__":
    main()
