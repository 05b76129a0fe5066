"""OpenLineage: exporting a large store, and what live emission adds to ``dvflow run``.

Export: the lineage benchmark's repository and store (``bench_lineage.py``:
1,000 commits, 10,000 stage runs, 1,000 model versions), each run given a
real provenance record where MLflow keeps its artifacts, with its sha256 as
the run's digest tag; the index is built first. Measured: ``dvflow export
openlineage -o FILE`` over every run (a START and a terminal event each),
in events per second; baseline, in the same run: reading the same records
as a script would with MLflow's client (``download_artifacts`` per run, on
a sample of ``--sample`` runs, scaled to the whole store).

Live: one 3-stage pipeline, every stage forced (``dvflow run -f``), paired
and alternating: emission off; on, with a consumer on 127.0.0.1 that answers
201 as Marquez does; one that answers 500; one whose port is closed; one
that accepts the connection and never answers (the worst case: dvflow's
budget of one second). Medians and the difference from "off".

Targets (issue 14): a consumer that fails or hangs adds at most 1 s to a run.
Usage: python bench/bench_export.py [--commits 1000] [--stages 20] [--repeat 5] [--sample 500]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from _common import BIN, Timing, isolated_env, median, row, timed
from bench_lineage import History, make_repo, make_store
from bench_run import chain

from dvflow.core._record import DIGEST_TAG, RECORD_ARTIFACT, canonical_json, sha256_hex

DVFLOW = str(BIN / "dvflow")
REPO_URL = "https://github.com/org/bench.git"


# -- export ------------------------------------------------------------------------


def give_records(root: Path) -> int:
    """Write a real record for every run of the generated store; returns how many."""
    db = sqlite3.connect(root / "mlflow.db")
    tags: dict[str, dict[str, str]] = {}
    for run_id, key, value in db.execute("SELECT run_uuid, key, value FROM tags"):
        tags.setdefault(run_id, {})[key] = value
    params: dict[str, dict[str, str]] = {}
    for run_id, key, value in db.execute("SELECT run_uuid, key, value FROM params"):
        params.setdefault(run_id, {})[key] = value
    rows = db.execute("SELECT run_uuid, experiment_id FROM runs").fetchall()
    for run_id, experiment in rows:
        folder = root / "mlartifacts" / run_id / "artifacts"
        data = canonical_json(_record(run_id, str(experiment), tags[run_id], params.get(run_id)))
        (folder / RECORD_ARTIFACT).parent.mkdir(parents=True, exist_ok=True)
        (folder / RECORD_ARTIFACT).write_bytes(data)
        db.execute("UPDATE runs SET artifact_uri = ? WHERE run_uuid = ?", (folder.as_uri(), run_id))
        db.execute(
            "UPDATE tags SET value = ? WHERE run_uuid = ? AND key = ?",
            (sha256_hex(data), run_id, DIGEST_TAG),
        )
    db.commit()
    db.close()
    return len(rows)


def _record(
    run_id: str, experiment: str, tags: dict[str, str], params: dict[str, str] | None
) -> dict[str, object]:
    stage = tags.get("dvflow.stage")
    io = json.loads(tags.get("dvflow.io", '{"in": [], "out": []}'))

    def pointers(pairs: list[list[str]]) -> list[dict[str, object]]:
        return [
            {
                "path": p,
                "md5": m,
                "size": 100,
                "nfiles": None,
                "cache_path": None,
                "remote_uri": f"s3://bench-bucket/files/md5/{m[:2]}/{m[2:]}",
            }
            for p, m in pairs
        ]

    return {
        "schema_version": 1,
        "kind": "stage" if stage else "pipeline",
        "status": "FINISHED",
        "code": {
            "branch": "main",
            "commit": tags["dvflow.git_commit"],
            "dirty": False,
            "repo_url": REPO_URL,
        },
        "stage": {
            "name": stage,
            "cmd": f"python src/{stage}.py",
            "status": tags["dvflow.status"],
            "produced_by": None,
        }
        if stage
        else None,
        "inputs": pointers(io["in"]),
        "outputs": pointers(io["out"]),
        "params": params or {},
        "metrics": {"loss": 0.5},
        "environment": {"dvc": "3.67.1", "mlflow": "3.17.2", "python": "3.11", "platform": "linux"},
        "mlflow": {
            "experiment_id": experiment,
            "run_id": run_id,
            "parent_run_id": tags.get("mlflow.parentRunId"),
            "tracking_uri": "sqlite:///mlflow.db",
        },
        "times": {
            "started": "2026-01-01T00:00:00.000+00:00",
            "ended": "2026-01-01T00:00:01.000+00:00",
        },
        "stages": [],
    }


NAIVE = """
import sys
from mlflow.tracking import MlflowClient
import json, tempfile
uri, sample = sys.argv[1], int(sys.argv[2])
client = MlflowClient(tracking_uri=uri)
exps = [e.experiment_id for e in client.search_experiments()]
runs = client.search_runs(exps, max_results=sample)
with tempfile.TemporaryDirectory() as tmp:
    for run in runs:
        path = client.download_artifacts(run.info.run_id, "dvflow/record.json", tmp)
        json.loads(open(path).read())
"""


def export_bench(args: argparse.Namespace, tmp: Path) -> None:
    root = tmp / "repo"
    history = History(args.commits, args.stages)
    commits = make_repo(root, history, fork=args.commits // 2)
    subprocess.run(["git", "remote", "add", "origin", REPO_URL], cwd=root, check=True)
    runs, versions = make_store(root, history, commits)
    recorded = give_records(root)
    env = {**isolated_env(tmp / "home"), "DVFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}
    built = timed([DVFLOW, "index", "--rebuild"], root, env)
    print(
        f"store: {runs} stage runs, {recorded - runs} pipeline runs, {versions} model versions; "
        f"index built in {built.wall:.1f} s"
    )
    out = tmp / "events.jsonl"
    first = subprocess.run(
        [DVFLOW, "export", "openlineage", "-o", str(out)],
        cwd=root,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if first.returncode != 0:
        sys.exit(f"dvflow export openlineage failed:\n{first.stderr}")
    timings = [
        timed([DVFLOW, "export", "openlineage", "-o", str(out)], root, env)
        for _ in range(args.repeat)
    ]
    events = sum(1 for _ in out.open())
    script = tmp / "naive_export.py"
    script.write_text(NAIVE)
    naive = timed(
        [sys.executable, str(script), env["DVFLOW_TRACKING_URI"], str(args.sample)], root, env
    )
    wall = median([t.wall for t in timings])
    per_run_naive = naive.wall / args.sample
    print(row("", "wall s", "cpu s", "events/s"))
    print(
        row(
            "dvflow export openlineage",
            f"{wall:.2f}",
            f"{median([t.cpu for t in timings]):.2f}",
            f"{events / wall:,.0f}",
        )
    )
    print(
        row(
            f"MLflow client, {args.sample} records",
            f"{naive.wall:.2f}",
            f"{naive.cpu:.2f}",
            f"{2 * args.sample / naive.wall:,.0f}",
        )
    )
    print(
        f"\n{events} events from {recorded} runs; per run: export {1000 * wall / recorded:.2f} ms, "
        f"reading the record through MLflow's client alone {1000 * per_run_naive:.2f} ms "
        f"(export / client = {wall / recorded / per_run_naive:.2f}x)\n"
    )


# -- live emission --------------------------------------------------------------------


class _Consumer(BaseHTTPRequestHandler):
    answer = 201

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(self.answer)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def consumer(mode: str) -> Iterator[str | None]:
    """The URL of a consumer that behaves as ``mode`` says (None: emission off)."""
    if mode == "off":
        yield None
        return
    if mode in ("201", "500"):
        handler = type("Handler", (_Consumer,), {"answer": int(mode)})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()
        return
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    if mode == "down":
        listener.close()  # nothing listens: connection refused
        yield f"http://127.0.0.1:{port}"
        return
    listener.listen(64)  # "hang": the kernel accepts, nobody ever answers
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        listener.close()


def live_bench(args: argparse.Namespace, tmp: Path) -> None:
    env = isolated_env(tmp / "home-live")
    root = tmp / "live"
    subprocess.run(
        [DVFLOW, "init", str(root)],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, **env},
    )
    (root / "dvc.yaml").write_text(chain(3, 0.0))
    (root / "params.yaml").write_text("seed: 0\n")
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(
        ["git", "commit", "-qm", "bench"], cwd=root, check=True, env={**os.environ, **env}
    )
    modes = ["off", "201", "500", "down", "hang"]
    results: dict[str, list[Timing]] = {m: [] for m in modes}
    timed([DVFLOW, "run", "-f"], root, env)  # warm-up: the store, the bytecode
    for i in range(args.repeat):
        for mode in modes[i % len(modes) :] + modes[: i % len(modes)]:
            with consumer(mode) as url:
                run_env = {**env, **({"OPENLINEAGE_URL": url} if url else {})}
                results[mode].append(timed([DVFLOW, "run", "-f"], root, run_env))
            (root / ".dvflow" / "openlineage-outbox.jsonl").unlink(missing_ok=True)
    off = median([t.wall for t in results["off"]])
    print(row("dvflow run -f, 3 stages", "wall s", "cpu s", "vs off"))
    labels = {
        "off": "emission off",
        "201": "consumer answers 201",
        "500": "consumer answers 500",
        "down": "consumer down (port closed)",
        "hang": "consumer never answers",
    }
    for mode in modes:
        wall = median([t.wall for t in results[mode]])
        cpu = median([t.cpu for t in results[mode]])
        extra = "" if mode == "off" else f"{wall - off:+.2f} s"
        print(row(labels[mode], f"{wall:.2f}", f"{cpu:.2f}", extra))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--commits", type=int, default=1000)
    parser.add_argument("--stages", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sample", type=int, default=500)
    parser.add_argument("--only", choices=["export", "live"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dvflow-bench-") as tmp:
        started = time.perf_counter()
        if args.only != "live":
            export_bench(args, Path(tmp))
        if args.only != "export":
            live_bench(args, Path(tmp))
        print(f"\n(benchmark took {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
