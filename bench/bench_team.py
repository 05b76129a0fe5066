"""Recording throughput against one ``mlflow server``, with 1, 4 and 8 clients at once.

Each client is a clone of one small project (two stages) running
``dvflow run`` against the same server (SQLite backend for now; the
PostgreSQL backend comes with the team set-up). Every round changes a
param in every clone so that all stages run. Reported: wall time of a round
and pipelines recorded per minute.

Usage: python bench/bench_team.py [--clients 1 4 8] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from _common import BIN, ENV, median

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            str(BIN / "mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{folder / 'server.db'}",
            "--artifacts-destination",
            str(folder / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):  # noqa: S310 - loopback
                return proc, url
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("mlflow server did not start")


def run(cwd: Path, *args: str) -> None:
    subprocess.run(args, cwd=cwd, env={**os.environ, **ENV}, check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dvflow-bench-") as tmp:
        base = Path(tmp)
        server, url = start_server(base)
        try:
            origin = base / "origin"
            run(base, DVFLOW, "init", str(origin))
            (origin / "dvc.yaml").write_text(PIPELINE)
            (origin / "params.yaml").write_text("n: 0\n")
            (origin / "make.py").write_text(MAKE)
            run(origin, "git", "add", "-A")
            run(origin, "git", "commit", "-qm", "bench")
            print(f"{'clients':<10}{'round s':>10}{'pipelines/min':>16}")
            for clients in args.clients:
                clones = []
                for i in range(clients):
                    clone = base / f"c{clients}-{i}"
                    run(base, "git", "clone", "-q", str(origin), str(clone))
                    run(base, DVFLOW, "init", str(clone))
                    clones.append(clone)
                times = []
                for r in range(args.rounds):
                    for i, clone in enumerate(clones):
                        (clone / "params.yaml").write_text(f"n: {r * 100 + i + 1}\n")
                    start = time.perf_counter()
                    procs = [
                        subprocess.Popen(
                            [DVFLOW, "run", "-C", str(clone)],
                            env={**os.environ, **ENV, "DVFLOW_TRACKING_URI": url},
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE,
                        )
                        for clone in clones
                    ]
                    for proc in procs:
                        _, err = proc.communicate()
                        if proc.returncode != 0:
                            raise RuntimeError(err.decode())
                    times.append(time.perf_counter() - start)
                wall = median(times)
                print(f"{clients:<10}{wall:>10.1f}{clients / wall * 60:>16.1f}")
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    print(f"\n{os.cpu_count()} CPU(s): several clients share them, so a round's wall time grows.")


if __name__ == "__main__":
    main()
