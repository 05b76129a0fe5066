"""Recording throughput against one ``mlflow server``, with 1, 4 and 8 clients at once.

Each client is a clone of one small project (two stages) running
``dvflow run`` against the same server, as a team's set-up has it: an
``mlflow server`` on PostgreSQL (bench/_servers.py; ``--backend sqlite`` for
the SQLite-backed server this benchmark used before). Every round changes a
param in every clone so that all stages run. Reported: wall time of a round,
pipelines recorded per minute, and that rate against the first row's.

Usage: python bench/bench_team.py [--clients 1 4 8] [--rounds 2] [--backend postgresql]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from _common import BIN, isolated_env, median
from _servers import MlflowServer, mlflow_server, postgres

DVFLOW = str(BIN / "dvflow")
PIPELINE = """\
stages:
  make:
    cmd: python make.py
    deps: [make.py]
    params: [n]
    outs: [a.txt]
  use:
    cmd: python -c "open('b.txt', 'w').write(open('a.txt').read() * 2)"
    deps: [a.txt]
    outs: [b.txt]
"""
MAKE = "import yaml\nopen('a.txt', 'w').write(str(yaml.safe_load(open('params.yaml'))['n']))\n"


@contextlib.contextmanager
def team_server(backend: str, folder: Path) -> Iterator[MlflowServer]:
    """The server every client records to, on a fresh database."""
    if backend == "sqlite":
        with mlflow_server(f"sqlite:///{folder / 'server.db'}", folder) as server:
            yield server
        return
    with postgres() as cluster, mlflow_server(cluster.create_database(), folder) as server:
        yield server


def run(cwd: Path, env: dict[str, str], *args: str) -> None:
    subprocess.run(args, cwd=cwd, env={**os.environ, **env}, check=True, capture_output=True)


def make_origin(origin: Path, env: dict[str, str]) -> None:
    run(origin.parent, env, DVFLOW, "init", str(origin))
    (origin / "dvc.yaml").write_text(PIPELINE)
    (origin / "params.yaml").write_text("n: 0\n")
    (origin / "make.py").write_text(MAKE)
    run(origin, env, "git", "add", "-A")
    run(origin, env, "git", "commit", "-qm", "bench")


def make_clones(origin: Path, clients: int, env: dict[str, str]) -> list[Path]:
    """One clone per client, each a dvflow project with its own DVC remote."""
    clones = []
    for i in range(clients):
        clone = origin.parent / f"c{clients}-{i}"
        run(origin.parent, env, "git", "clone", "-q", str(origin), str(clone))
        run(origin.parent, env, DVFLOW, "init", str(clone))
        clones.append(clone)
    return clones


def round_seconds(clones: list[Path], number: int, env: dict[str, str]) -> float:
    """Change a param in every clone, run them all at once; the wall time until all ended."""
    for i, clone in enumerate(clones):
        (clone / "params.yaml").write_text(f"n: {number * 100 + i + 1}\n")
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [DVFLOW, "run", "-C", str(clone)],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for clone in clones
    ]
    failed = []
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            failed.append(err.decode())
    if failed:
        raise RuntimeError("\n".join(failed))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--backend", choices=["postgresql", "sqlite"], default="postgresql")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dvflow-bench-") as tmp:
        base = Path(tmp)
        env = isolated_env(base / "home")
        with team_server(args.backend, base / "server") as server:
            env["DVFLOW_TRACKING_URI"] = server.url
            make_origin(base / "origin", env)
            print(f"mlflow server on {args.backend}, {args.rounds} round(s) per row (median)")
            print(f"{'clients':<10}{'round s':>10}{'pipelines/min':>16}{'vs first row':>14}")
            first = None
            for clients in args.clients:
                clones = make_clones(base / "origin", clients, env)
                wall = median([round_seconds(clones, r, env) for r in range(args.rounds)])
                rate = clients / wall * 60
                first = first or rate
                print(f"{clients:<10}{wall:>10.1f}{rate:>16.1f}{rate / first:>13.2f}x")
    print(f"\n{os.cpu_count()} CPU(s): several clients share them, so a round's wall time grows.")


if __name__ == "__main__":
    main()
