"""``dvflow run`` against plain ``dvc repro`` on the same pipeline, in one run.

Two identical projects are generated (a chain of stages that each sleep, ~20 s
in all). Each project's MLflow store is created beforehand: making a SQLite
schema is a one-time cost, not a per-run one. Fresh runs alternate which tool
goes first; no-op runs (nothing changed) are repeated.

Targets (DESIGN.md): a run that does work adds at most one MLflow client
start-up + 0.3 s; a no-op run stays within 1.3x of a no-op dvc repro and
records nothing. Neither is met yet: the README states what this measures.
Usage: python bench/bench_run.py [--stages 3] [--seconds 20] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import BIN, ENV, Timing, median, row, timed

DVFLOW, DVC = str(BIN / "dvflow"), str(BIN / "dvc")


def _pipeline(stages: int, seconds: float) -> str:
    per_stage = seconds / stages
    lines = ["stages:"]
    for i in range(stages):
        dep = f"\n    deps: [out{i - 1}.txt]" if i else ""
        lines.append(
            f"  s{i}:\n    cmd: sleep {per_stage:.2f} && echo {i} > out{i}.txt{dep}\n"
            f"    outs: [out{i}.txt]"
        )
    return "\n".join(lines) + "\n"


def _make_project(root: Path, stages: int, seconds: float) -> None:
    subprocess.run(
        [DVFLOW, "init", str(root)],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, **ENV},
    )
    (root / "dvc.yaml").write_text(_pipeline(stages, seconds))
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(
        ["git", "commit", "-qm", "bench"],
        cwd=root,
        check=True,
        env={**os.environ, **ENV},
    )
    code = (
        f"from mlflow.tracking import MlflowClient as C; C('sqlite:///{root}/mlflow.db')"
        ".search_experiments()"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _reset(root: Path) -> None:
    """Back to a never-run state: no outputs, no lock, no run-cache."""
    subprocess.run(
        ["git", "clean", "-qfdx", "-e", "mlflow.db", "-e", "mlartifacts"], cwd=root, check=True
    )
    subprocess.run(["git", "checkout", "-q", "--", "."], cwd=root, check=True)
    shutil.rmtree(root / ".dvc" / "cache", ignore_errors=True)


def _report(label: str, dvc: list[Timing], ours: list[Timing]) -> None:
    base, mine = median([t.wall for t in dvc]), median([t.wall for t in ours])
    cpu_base, cpu_mine = median([t.cpu for t in dvc]), median([t.cpu for t in ours])
    print(
        row(
            label,
            f"{base:.2f}",
            f"{mine:.2f}",
            f"{mine - base:+.2f}",
            f"{(mine / base - 1) * 100:+.1f}%",
            f"{cpu_mine - cpu_base:+.2f}",
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stages", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dvflow-bench-") as tmp:
        plain, tracked = Path(tmp) / "plain", Path(tmp) / "tracked"
        for root in (plain, tracked):
            _make_project(root, args.stages, args.seconds)
        fresh: dict[str, list[Timing]] = {"dvc": [], "dvflow": []}
        for i in range(args.repeat):
            order = [("dvc", plain), ("dvflow", tracked)]
            for tool, root in order if i % 2 == 0 else order[::-1]:
                _reset(root)
                command = [DVC, "repro"] if tool == "dvc" else [DVFLOW, "run"]
                fresh[tool].append(timed(command, root, ENV))
        noop = {
            "dvc": [timed([DVC, "repro"], plain, ENV) for _ in range(args.repeat + 1)],
            "dvflow": [timed([DVFLOW, "run"], tracked, ENV) for _ in range(args.repeat + 1)],
        }
    print(
        f"{args.stages} stages, {args.seconds:.0f} s of stage work, medians of "
        f"{args.repeat} fresh and {args.repeat + 1} no-op runs\n"
    )
    print(row("", "dvc repro s", "dvflow run s", "overhead s", "overhead", "cpu extra s"))
    _report("fresh (every stage runs)", fresh["dvc"], fresh["dvflow"])
    _report("no-op (every stage up to date)", noop["dvc"], noop["dvflow"])
    print("\ntarget: overhead at most +1.5 s and +5 % on the fresh run")


if __name__ == "__main__":
    main()
