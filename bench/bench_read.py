"""The read commands against ``dvflow --help``, on the demo project, measured in one run.

``show``, ``diff``, quick ``verify``, ``check``, ``lineage`` and ``impact``:
process time (CPU of the command and its children) and wall time, warm (the
same command again) and right after a new ``dvflow run`` (the first read
after it), each as a ratio to ``dvflow --help``'s process time in the same
run. Target: each within 2x of ``dvflow --help``, warm.

Usage: python bench/bench_read.py [--repeat N] [--after N] [--src DIR]
  --src   a dvflow source tree to measure instead of the installed one
          (its ``src`` folder, e.g. of a worktree at an older commit)
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
from pathlib import Path

from _common import BIN, Timing, isolated_env, median, row, timed

DVFLOW = str(BIN / "dvflow")


def train_runs(project: Path) -> list[str]:
    """The stage runs of 'train', oldest first, read from the demo's SQLite store."""
    db = sqlite3.connect(project / "mlflow.db")
    try:
        rows = db.execute(
            "SELECT r.run_uuid FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
            "WHERE t.key = 'dvflow.stage' AND t.value = 'train' ORDER BY r.start_time"
        ).fetchall()
    finally:
        db.close()
    return [str(r[0]) for r in rows]


def commands(project: Path) -> dict[str, list[str]]:
    first, *_, last = train_runs(project)
    where = ["-C", str(project)]
    return {
        "show RUN": [DVFLOW, "show", last, *where],
        "diff RUN RUN": [DVFLOW, "diff", first, last, *where],
        "verify RUN (quick)": [DVFLOW, "verify", last, *where],
        "check": [DVFLOW, "check", *where],
        "lineage models/model.pkl": [DVFLOW, "lineage", "models/model.pkl", *where],
        "impact data/raw.csv": [DVFLOW, "impact", "data/raw.csv", *where],
    }


def lenient(command: list[str], env: dict[str, str]) -> Timing:
    """``timed``, for commands whose exit code is a verdict (check, verify): 0 or not."""
    wrapper = ["sh", "-c", '"$@" || true', "sh", *command]
    return timed(wrapper, env=env)


def new_run(project: Path, env: dict[str, str], round_: int) -> None:
    params = project / "params.yaml"
    text = params.read_text(encoding="utf-8")
    params.write_text(
        text.replace("n_estimators:", f"n_estimators: {20 + round_}  #", 1), encoding="utf-8"
    )
    timed([DVFLOW, "run", "-C", str(project)], env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5, help="warm samples per command")
    parser.add_argument("--after", type=int, default=2, help="new runs per command")
    parser.add_argument("--src", help="a dvflow source tree to measure (its src folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dvflow-bench-read-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        env = isolated_env(home)
        if args.src:
            env["PYTHONPATH"] = str(Path(args.src).resolve())
        project = Path(tmp) / "demo"
        print(f"load: {os.getloadavg()[0]:.2f} (1-min average, {os.cpu_count()} cores)")
        print("setting up the demo project (dvflow demo)...", flush=True)
        timed([DVFLOW, "demo", str(project)], env=env)
        help_runs = [timed([DVFLOW, "--help"], env=env) for _ in range(args.repeat + 1)][1:]
        base = median([t.cpu for t in help_runs])
        wall = median([t.wall for t in help_runs])
        print(f"dvflow --help: {base:.3f} s process time, {wall:.3f} s wall\n")
        print(row("command", "warm cpu s", "x --help", "after-run cpu", "x --help", "warm wall s"))
        for label, command in commands(project).items():
            after = []
            for n in range(args.after):
                new_run(project, env, n + 100 * len(label))
                after.append(lenient(command, env))
            warm = [lenient(command, env) for _ in range(args.repeat + 1)][1:]
            cpu, first = median([t.cpu for t in warm]), median([t.cpu for t in after])
            print(
                row(
                    label,
                    f"{cpu:.3f}",
                    f"{cpu / base:.1f}x",
                    f"{first:.3f}",
                    f"{first / base:.1f}x",
                    f"{median([t.wall for t in warm]):.3f}",
                ),
                flush=True,
            )
        print(f"\ntarget: each within 2x of dvflow --help ({2 * base:.3f} s), warm")


if __name__ == "__main__":
    main()
