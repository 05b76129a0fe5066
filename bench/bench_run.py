"""``dvflow run`` against plain ``dvc repro`` on the same pipelines, in one run.

Two pipelines, each generated twice (one project per tool): a chain of 3
stages and a 7-stage pipeline with a ``foreach`` (prepare, 5 trainings,
report). Every stage sleeps; ``--seconds`` is the stage work of one full run.
Three cases, paired (the tools alternate which goes first):

- fresh: never run (no outputs, no dvc.lock, no run-cache), every stage runs;
- param change: a new ``seed`` in params.yaml, which the first stage reads,
  so every stage runs again (a value never used before: no run-cache hit);
- no-op: nothing changed, every stage is up to date.

Each project's MLflow store is created beforehand (a SQLite schema is made
once, not per run). Python's bytecode goes to a folder of the benchmark's
own (``PYTHONPYCACHEPREFIX``) and one warm-up run of each tool fills it, so
dvflow's and DVC's modules load alike from compiled files.

The overhead of a run that does work is also stated as "MLflow client
start-up + X s": the client start-up is measured alone, in the same run (a
Python process that imports MLflow and asks the same kind of SQLite store
for its experiments, minus ``python -c pass``).

Targets (issue 13): a run that does work adds at most one MLflow client
start-up + 0.3 s; a no-op run stays within 1.3x of a no-op dvc repro and
records nothing (the runs in the store are counted).
Usage: python bench/bench_run.py [--seconds 20] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import BIN, ENV, Timing, median, row, timed

DVFLOW, DVC = str(BIN / "dvflow"), str(BIN / "dvc")
TOOLS = {"dvc": [DVC, "repro"], "dvflow": [DVFLOW, "run"]}


def chain(stages: int, seconds: float) -> str:
    """``stages`` stages in a line; the first reads the param ``seed``."""
    per_stage = seconds / stages
    lines = ["stages:"]
    for i in range(stages):
        source = "grep seed params.yaml" if i == 0 else f"cat out{i - 1}.txt"
        deps = f"\n    deps: [out{i - 1}.txt]" if i else "\n    params: [seed]"
        lines.append(
            f"  s{i}:\n    cmd: sleep {per_stage:.2f} && {source} > out{i}.txt && echo {i} >> "
            f"out{i}.txt{deps}\n    outs: [out{i}.txt]"
        )
    return "\n".join(lines) + "\n"


def fanout(seconds: float) -> str:
    """prepare, then a ``foreach`` of 5 trainings on its output, then a report: 7 stages."""
    per_stage = seconds / 7
    items = ["a", "b", "c", "d", "e"]
    models = ", ".join(f"model_{i}.txt" for i in items)
    return (
        "stages:\n"
        "  prepare:\n"
        f"    cmd: sleep {per_stage:.2f} && grep seed params.yaml > data.txt\n"
        "    params: [seed]\n"
        "    outs: [data.txt]\n"
        "  train:\n"
        f"    foreach: [{', '.join(items)}]\n"
        "    do:\n"
        f"      cmd: sleep {per_stage:.2f} && cat data.txt > model_${{item}}.txt "
        "&& echo ${item} >> model_${item}.txt\n"
        "      deps: [data.txt]\n"
        "      outs: ['model_${item}.txt']\n"
        "  report:\n"
        f"    cmd: sleep {per_stage:.2f} && cat {' '.join(f'model_{i}.txt' for i in items)} "
        "> report.txt\n"
        f"    deps: [{models}]\n"
        "    outs: [report.txt]\n"
    )


def _make_project(root: Path, pipeline: str, env: dict[str, str]) -> None:
    subprocess.run(
        [DVFLOW, "init", str(root)],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, **env},
    )
    (root / "dvc.yaml").write_text(pipeline)
    (root / "params.yaml").write_text("seed: 0\n")
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(
        ["git", "commit", "-qm", "bench"], cwd=root, check=True, env={**os.environ, **env}
    )
    subprocess.run([sys.executable, "-c", _client_code(root)], check=True)


def _client_code(root: Path) -> str:
    return (
        f"from mlflow.tracking import MlflowClient as C; C('sqlite:///{root}/mlflow.db')"
        ".search_experiments(max_results=1)"
    )


def _reset(root: Path) -> None:
    """Back to a never-run state: no outputs, no lock, no run-cache."""
    subprocess.run(
        ["git", "clean", "-qfdx", "-e", "mlflow.db", "-e", "mlartifacts"], cwd=root, check=True
    )
    subprocess.run(["git", "checkout", "-q", "--", "."], cwd=root, check=True)
    shutil.rmtree(root / ".dvc" / "cache", ignore_errors=True)


def _runs_in_store(root: Path) -> int:
    with sqlite3.connect(root / "mlflow.db") as db:
        return int(db.execute("SELECT count(*) FROM runs").fetchone()[0])


class Pair:
    """One pipeline as two projects, ``dvc repro`` in one and ``dvflow run`` in the other."""

    def __init__(self, folder: Path, pipeline: str, env: dict[str, str]) -> None:
        self.env = env
        self.roots = {"dvc": folder / "plain", "dvflow": folder / "tracked"}
        for root in self.roots.values():
            _make_project(root, pipeline, env)
        self.times: dict[str, dict[str, list[Timing]]] = {}
        self.seed = 0

    def measure(self, case: str, repeat: int, prepare: Callable[[Path, int], None]) -> None:
        found = self.times.setdefault(case, {"dvc": [], "dvflow": []})
        for i in range(repeat):
            order = list(self.roots.items())
            for tool, root in order if i % 2 == 0 else order[::-1]:
                prepare(root, i)
                found[tool].append(timed(TOOLS[tool], root, self.env))

    def fresh(self, repeat: int) -> None:
        self.measure("fresh (every stage runs)", repeat, lambda root, i: _reset(root))

    def param_change(self, repeat: int) -> None:
        def new_seed(root: Path, i: int) -> None:  # both tools read the same new value
            (root / "params.yaml").write_text(f"seed: {self.seed + i + 1}\n")

        for root in self.roots.values():  # a first run, so the next ones change a param
            _reset(root)
            timed(TOOLS["dvc" if root == self.roots["dvc"] else "dvflow"], root, self.env)
        self.measure("param change (every stage)", repeat, new_seed)
        self.seed += repeat

    def noop(self, repeat: int) -> int:
        """No-op runs; returns how many runs they added to dvflow's store."""
        before = _runs_in_store(self.roots["dvflow"])
        self.measure("no-op (every stage up to date)", repeat, lambda root, i: None)
        return _runs_in_store(self.roots["dvflow"]) - before


def _client_startup(root: Path, env: dict[str, str], repeat: int) -> Timing:
    """Median wall and CPU seconds of creating one MLflow client for a SQLite store, alone."""
    bare = [timed([sys.executable, "-c", "pass"], root, env) for _ in range(repeat)]
    code = _client_code(root)
    client = [timed([sys.executable, "-c", code], root, env) for _ in range(repeat)]
    return Timing(
        median([t.wall for t in client]) - median([t.wall for t in bare]),
        median([t.cpu for t in client]) - median([t.cpu for t in bare]),
    )


def _report(label: str, dvc: list[Timing], ours: list[Timing], client: Timing) -> None:
    base, mine = median([t.wall for t in dvc]), median([t.wall for t in ours])
    cpu_base, cpu_mine = median([t.cpu for t in dvc]), median([t.cpu for t in ours])
    over, cpu_over = mine - base, cpu_mine - cpu_base
    print(
        row(
            label,
            f"{base:.2f}",
            f"{mine:.2f}",
            f"{mine / base:.2f}x",
            f"{over:+.2f}",
            f"client {over - client.wall:+.2f}",
            f"{cpu_over:+.2f}",
            f"client {cpu_over - client.cpu:+.2f}",
        )
    )


def http_requests(seconds: float, env: dict[str, str]) -> None:
    """HTTP requests one fresh ``dvflow run`` of the 3-stage chain makes to a tracking server.

    The server is ``mlflow server`` on PostgreSQL (bench/_servers.py); its
    access log (one line per request) is read before and after the run.
    """
    import collections
    import re

    from _servers import postgres_mlflow

    with tempfile.TemporaryDirectory(prefix="dvflow-bench-http-") as tmp:
        root = Path(tmp) / "project"
        _make_project(root, chain(3, seconds), env)
        with postgres_mlflow(Path(tmp) / "server") as server:
            run_env = {**env, "DVFLOW_TRACKING_URI": server.url}
            # The experiment exists already, as in a team's everyday runs.
            timed([DVFLOW, "run"], root, run_env)
            _reset(root)
            start = len(server.log.read_text(errors="replace").splitlines())
            timed([DVFLOW, "run"], root, run_env)
            time.sleep(1)  # the last lines reach the log
            lines = server.log.read_text(errors="replace").splitlines()[start:]
    calls = collections.Counter(
        f"{m.group(1)} {re.sub(r'/[0-9a-f]{32}/', '/RUN/', m.group(2).split('?')[0])}"
        for line in lines
        if (m := re.search(r'"(GET|POST|PUT|PATCH|DELETE) (\S+) HTTP', line))
        and "/health" not in m.group(2)
    )
    total = sum(calls.values())
    print(
        "\nHTTP requests of one fresh dvflow run (3 stages) to mlflow server on PostgreSQL: "
        f"{total}"
    )
    print(f"per stage run (parent's share included): {total / 3:.1f}")
    for call, count in calls.most_common():
        print(f"  {count:>4}  {call}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="stage work of one run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--http", action="store_true", help="only count HTTP requests against a tracking server"
    )
    args = parser.parse_args()
    if args.http:
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        http_requests(1.0, ENV)
        return
    with tempfile.TemporaryDirectory(prefix="dvflow-bench-") as tmp:
        env = {**ENV, "PYTHONPYCACHEPREFIX": str(Path(tmp) / "pycache")}
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        pipelines = {
            "3-stage chain": chain(3, args.seconds),
            "7-stage foreach": fanout(args.seconds),
        }
        pairs = {
            name: Pair(Path(tmp) / str(i), text, env)
            for i, (name, text) in enumerate(pipelines.items())
        }
        for pair in pairs.values():  # warm-up: compiled bytecode, file cache
            pair.fresh(1)
            pair.times.clear()
        recorded = {}
        for name, pair in pairs.items():
            pair.fresh(args.repeat)
            pair.param_change(args.repeat)
            recorded[name] = pair.noop(args.repeat + 2)
        client = _client_startup(pairs["3-stage chain"].roots["dvflow"], env, args.repeat + 2)
        load = os.getloadavg()
    print(
        f"{args.seconds:.0f} s of stage work per run; medians of {args.repeat} runs with work and "
        f"{args.repeat + 2} no-op runs; {os.cpu_count()} cores, load average "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}"
    )
    print(
        "MLflow client start-up alone (import + SQLite store, minus python -c pass): "
        f"{client.wall:.2f} s wall, {client.cpu:.2f} s CPU"
    )
    for name, pair in pairs.items():
        print(f"\n{name}")
        print(
            row(
                "",
                "dvc repro s",
                "dvflow run s",
                "ratio",
                "overhead s",
                "over client",
                "cpu extra s",
                "cpu o. client",
            )
        )
        for label, times in pair.times.items():
            _report(label, times["dvc"], times["dvflow"], client)
        print(f"runs the no-op dvflow runs added to the store: {recorded[name]}")
    print(
        "\ntargets: with work, overhead <= client start-up + 0.30 s ('over client' <= +0.30, "
        "in wall and in CPU time); no-op ratio <= 1.30x and no runs added"
    )


if __name__ == "__main__":
    main()
