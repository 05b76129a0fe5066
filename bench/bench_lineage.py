"""Lineage and impact at scale: dvflow's index against the naive walk, in one run.

Generates a repository of ``--commits`` commits (one branch forks off; a tag
every 100 commits) whose ``dvc.lock`` chains ``--stages`` stages after a
``dvc add``ed file; every commit changes one stage's param, so that stage
and every later one get new output md5s. Every other commit also has a
recorded pipeline in an MLflow SQLite store (``--stages`` stage runs each,
10,000 in all by default), and every commit's last output is a registered
model version (1,000 by default).

Measured (process wall and CPU time, medians):
- cold: ``dvflow index --rebuild`` (Git history + the whole store);
- warm: ``dvflow lineage models:/bench-model/N`` and ``dvflow impact <raw md5>``;
- naive: ``git log`` then ``git show`` per commit, walking ``dvc.lock``,
  plus one MLflow search per data version, as a script would do it.

Targets: warm queries under 0.5 s (DESIGN: 0.3 s of process time), cold build under 30 s.
Usage: python bench/bench_lineage.py [--commits 1000] [--stages 20] [--repeat 5]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from _common import BIN, ENV, Timing, median, row, timed

DVFLOW = str(BIN / "dvflow")
MODEL = "bench-model"


def md5(*parts: object) -> str:
    return hashlib.md5("/".join(map(str, parts)).encode()).hexdigest()  # noqa: S324 - ids


RAW = md5("raw")


class History:
    """The generated commits: the lock of each, and which change made it."""

    def __init__(self, commits: int, stages: int) -> None:
        self.stages = stages
        self.outs: list[list[str]] = []  # per commit, per stage output md5
        self.params: list[list[int]] = []
        self.changed: list[int] = []
        outs = [md5("init", i) for i in range(stages)]
        params = [0] * stages
        for c in range(commits):
            k = (c * 7) % stages
            params = [*params]
            params[k] += 1
            outs = outs[:k] + [md5(c, i) for i in range(k, stages)]
            self.outs.append(outs)
            self.params.append(params)
            self.changed.append(k)

    def lock(self, c: int) -> str:
        lines = ["schema: '2.0'", "stages:"]
        for i in range(self.stages):
            dep = ("data/raw.csv", RAW) if i == 0 else (f"out/s{i - 1:02}.bin", self.outs[c][i - 1])
            lines += [
                f"  s{i:02}:",
                f"    cmd: python src/s{i:02}.py",
                "    deps:",
                f"    - path: src/s{i:02}.py\n      md5: {md5('code', i)}\n      size: 10",
                f"    - path: {dep[0]}\n      md5: {dep[1]}\n      size: 100",
                "    params:",
                f"      params.yaml:\n        s{i:02}.p: {self.params[c][i]}",
                "    outs:",
                f"    - path: out/s{i:02}.bin\n      md5: {self.outs[c][i]}\n      size: 100",
            ]
        return "\n".join(lines) + "\n"


def make_repo(root: Path, history: History, fork: int) -> list[str]:
    """Write the history with one ``git fast-import``; returns the commit ids in order.

    After ``fork``, every tenth commit goes to branch ``exp`` instead of ``main``.
    """
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    stream: list[bytes] = []
    dvc_file = f"outs:\n- md5: {RAW}\n  size: 100\n  hash: md5\n  path: raw.csv\n".encode()
    tips = {"main": 0, "exp": 0}
    for c in range(len(history.outs)):
        branch = "exp" if c > fork and c % 10 == 0 else "main"
        parent = tips[branch] or tips["main"]
        message = f"change s{history.changed[c]:02}".encode()
        lock = history.lock(c).encode()
        stream.append(
            f"commit refs/heads/{branch}\nmark :{c + 1}\n"
            f"committer bench <b@b> {1_700_000_000 + c} +0000\n"
            f"data {len(message)}\n".encode()
            + message
            + b"\n"
        )
        if parent:
            stream.append(f"from :{parent}\n".encode())
        stream.append(f"M 100644 inline dvc.lock\ndata {len(lock)}\n".encode() + lock + b"\n")
        if c == 0:
            stream.append(
                f"M 100644 inline data/raw.csv.dvc\ndata {len(dvc_file)}\n".encode()
                + dvc_file
                + b"\n"
            )
        stream.append(b"\n")
        tips[branch] = c + 1
        if branch == "main" and c % 100 == 99:
            stream.append(f"reset refs/tags/v{c // 100}\nfrom :{c + 1}\n\n".encode())
    marks = root / ".git" / "bench-marks"
    subprocess.run(
        ["git", "fast-import", "--quiet", f"--export-marks={marks}"],
        cwd=root,
        input=b"".join(stream),
        check=True,
    )
    subprocess.run(["git", "checkout", "-q", "main"], cwd=root, check=True)
    by_mark = dict(line.split() for line in marks.read_text().splitlines())
    return [by_mark[f":{c + 1}"] for c in range(len(history.outs))]


def make_store(root: Path, history: History, commits: list[str]) -> tuple[int, int]:
    """Runs for every other commit and one model version per commit, in a SQLite store."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.create_experiment("bench", artifact_location=(root / "mlartifacts").as_uri())
    runs = _bulk_runs(client, exp, history, commits)
    client.create_registered_model(MODEL)
    last = history.stages - 1
    for c, sha in enumerate(commits):
        model_md5 = history.outs[c][last]
        client.create_model_version(
            MODEL,
            f"file:///remote/files/md5/{model_md5[:2]}/{model_md5[2:]}",
            run_id=runs.get((c, last)),
            tags={"dvflow.model_md5": model_md5, "dvflow.git_commit": sha},
        )
    client.set_registered_model_alias(MODEL, "production", str(len(commits)))
    return len(runs), len(commits)


def _bulk_runs(
    client: object, exp: str, history: History, commits: list[str]
) -> dict[tuple[int, int], str]:
    """Insert the stage runs through MLflow's own SQL models, in one transaction.

    Creating 10,000 runs one client call at a time takes minutes; what the
    benchmark measures is reading them back, through the real client.
    """
    from mlflow.store.tracking.dbmodels.models import SqlParam, SqlRun, SqlTag

    store = client._tracking_client.store  # type: ignore[attr-defined]
    runs: dict[tuple[int, int], str] = {}
    objects: list[object] = []
    orm = (SqlRun, SqlTag)
    start = 1_700_000_000_000
    for c in range(0, len(commits), 2):
        parent = uuid.uuid4().hex
        objects += _run_rows(
            orm,
            exp,
            parent,
            start + c * 1000,
            {
                "dvflow.kind": "pipeline",
                "dvflow.status": "finished",
                "dvflow.git_commit": commits[c],
                "dvflow.record_sha256": md5("rec", c),
            },
        )
        for i in range(history.stages):
            run_id = uuid.uuid4().hex
            runs[(c, i)] = run_id
            dep = (
                ("data/raw.csv", RAW)
                if i == 0
                else (f"out/s{i - 1:02}.bin", history.outs[c][i - 1])
            )
            io = {
                "in": [[f"src/s{i:02}.py", md5("code", i)], list(dep)],
                "out": [[f"out/s{i:02}.bin", history.outs[c][i]]],
            }
            status = "ran" if i >= history.changed[c] else "up-to-date"
            objects += _run_rows(
                orm,
                exp,
                run_id,
                start + c * 1000 + i,
                {
                    "dvflow.kind": "stage",
                    "dvflow.stage": f"s{i:02}",
                    "dvflow.status": status,
                    "dvflow.git_commit": commits[c],
                    "dvflow.git_dirty": "false",
                    "dvflow.record_sha256": md5("rec", c, i),
                    "dvflow.io": json.dumps(io),
                    "mlflow.parentRunId": parent,
                },
            )
            objects.append(
                SqlParam(key=f"s{i:02}.p", value=str(history.params[c][i]), run_uuid=run_id)
            )
    with store.ManagedSessionMaker() as session:
        session.add_all(objects)
    return runs


def _run_rows(
    orm: tuple[type, type], exp: str, run_id: str, t: int, tags: dict[str, str]
) -> list[object]:
    sql_run, sql_tag = orm
    run = sql_run(
        run_uuid=run_id,
        name=tags.get("dvflow.stage", "pipeline"),
        source_type="LOCAL",
        source_name="dvflow run",
        entry_point_name="",
        user_id="bench",
        status="FINISHED",
        start_time=t,
        end_time=t + 500,
        source_version="",
        lifecycle_stage="active",
        artifact_uri=f"file:///artifacts/{run_id}",
        experiment_id=int(exp),
    )
    return [run, *(sql_tag(key=k, value=v, run_uuid=run_id) for k, v in tags.items())]


NAIVE = """
import sys, subprocess, yaml
from mlflow.tracking import MlflowClient
root, target, uri = sys.argv[1], sys.argv[2], sys.argv[3]
commits = subprocess.run(["git", "log", "--all", "--format=%H", "--", "dvc.lock"], cwd=root,
                         capture_output=True, text=True, check=True).stdout.split()
derived = {target}
for sha in commits:
    text = subprocess.run(["git", "show", f"{sha}:dvc.lock"], cwd=root, capture_output=True,
                          text=True, check=True).stdout
    stages = yaml.load(text, Loader=yaml.CSafeLoader)["stages"]
    for stage in stages.values():
        if any(d["md5"] in derived for d in stage["deps"]):
            derived |= {o["md5"] for o in stage["outs"]}
client = MlflowClient(tracking_uri=uri)
exps = [e.experiment_id for e in client.search_experiments()]
runs = set()
for value in derived:
    for run in client.search_runs(exps, f"tags.`dvflow.io` LIKE '%{value}%'", max_results=50000):
        runs.add(run.info.run_id)
versions = client.search_model_versions(f"name = '{sys.argv[4]}'")
models = [v for v in versions if v.tags.get("dvflow.model_md5") in derived]
print(len(derived), len(runs), len(models))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--commits", type=int, default=1000)
    parser.add_argument("--stages", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", metavar="DIR", help="Build the repository here and keep it.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dvflow-bench-") as tmp:
        root = Path(args.keep or tmp) / "repo"
        history = History(args.commits, args.stages)
        t0 = time.perf_counter()
        commits = make_repo(root, history, fork=args.commits // 2)
        runs, versions = make_store(root, history, commits)
        print(
            f"generated {len(commits)} commits, {args.stages} stages, {runs} stage runs, "
            f"{versions} model versions in {time.perf_counter() - t0:.0f} s\n"
        )
        uri = f"sqlite:///{root / 'mlflow.db'}"
        env = {**ENV, "DVFLOW_TRACKING_URI": uri}
        cold = timed([DVFLOW, "index", "--rebuild"], root, env)
        lineage = [
            timed([DVFLOW, "lineage", f"models:/{MODEL}/{versions}", "--json"], root, env)
            for _ in range(args.repeat)
        ]
        impact = [timed([DVFLOW, "impact", RAW, "--json"], root, env) for _ in range(args.repeat)]
        impact_tree = [timed([DVFLOW, "impact", RAW], root, env) for _ in range(args.repeat)]
        # Mid-history: the middle stage's output at a commit that re-made it.
        c = args.commits // 2
        while history.changed[c] > args.stages // 2:
            c += 1
        mid = md5(c, args.stages // 2)
        impact_mid = [
            timed([DVFLOW, "impact", mid, "--json"], root, env) for _ in range(args.repeat)
        ]
        script = root.parent / "naive.py"
        script.write_text(NAIVE)
        naive = timed([sys.executable, str(script), str(root), mid, uri, MODEL], root, env)
        answer = subprocess.run(
            [DVFLOW, "impact", mid, "--json"],
            cwd=root,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        graph = json.loads(answer)
        kinds = {
            k: sum(1 for n in graph["nodes"] if n["kind"] == k) for k in ("data", "run", "model")
        }
    print(row("", "wall s", "cpu s", "target"))
    print(row("cold index build", f"{cold.wall:.2f}", f"{cold.cpu:.2f}", "< 30 s"))
    _line("warm lineage (model, --json)", lineage)
    _line("warm impact (raw data, --json)", impact)
    _line("warm impact (raw data, tree)", impact_tree)
    _line("warm impact (mid-history, --json)", impact_mid)
    print(row("naive impact (mid-history)", f"{naive.wall:.2f}", f"{naive.cpu:.2f}", "baseline"))
    ratio = naive.wall / median([t.wall for t in impact_mid])
    print(f"\nmid-history impact answer: {kinds}; naive walk / warm index = {ratio:.0f}x")


def _line(label: str, timings: list[Timing]) -> None:
    wall, cpu = median([t.wall for t in timings]), median([t.cpu for t in timings])
    print(row(label, f"{wall:.2f}", f"{cpu:.2f}", "< 0.5 s"))


if __name__ == "__main__":
    main()
