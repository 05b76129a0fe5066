"""README command 1's install, runtime lock against dev lock, from fresh venvs in one run.

Each round makes a fresh venv and runs ``pip install -r LOCK -e .`` (README
commands 1 and 2 without the demo and the tests): once with
``requirements.lock`` (what command 1 installs), once with
``requirements-dev.lock`` (what command 2 installs, and what command 1
installed before the locks were split: the same packages). One warm-up install
of the dev lock first, so pip's cache is warm for both. Wall and CPU seconds
(pip and its children), medians over --repeat rounds, and the packages each
venv ends with.

Usage: python bench/bench_install.py [--repeat N] [--python python3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from _common import median, row, timed

ROOT = Path(__file__).resolve().parent.parent
LOCKS = {
    "requirements.lock (command 1)": "requirements.lock",
    "requirements-dev.lock (command 2)": "requirements-dev.lock",
}


def install(python: str, lock: str, venv: Path) -> tuple[float, float, int]:
    """Wall and CPU seconds of venv + pip install, and how many packages it installed."""
    shutil.rmtree(venv, ignore_errors=True)
    pip = str(venv / "bin" / "pip")
    made = timed([python, "-m", "venv", str(venv)])
    installed = timed([pip, "install", "-q", "-r", str(ROOT / lock), "-e", str(ROOT)])
    freeze = subprocess.run(
        [pip, "freeze", "--all", "--exclude", "pip", "--exclude", "dvflow"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    count = sum(1 for line in freeze.splitlines() if "==" in line)
    return made.wall + installed.wall, made.cpu + installed.cpu, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--python", default="python3", help="The interpreter the venvs use.")
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="dvflow-bench-install-") as scratch:
        venv = Path(scratch) / "venv"
        install(args.python, "requirements-dev.lock", venv)  # warm pip's cache
        print("  warm-up install done", flush=True)
        wall: dict[str, list[float]] = {label: [] for label in LOCKS}
        cpu: dict[str, list[float]] = {label: [] for label in LOCKS}
        counts: dict[str, int] = {}
        for _ in range(args.repeat):
            for label, lock in LOCKS.items():
                w, c, counts[label] = install(args.python, lock, venv)
                wall[label].append(w)
                cpu[label].append(c)
                print(f"  {label}: {w:.1f} s wall, {c:.1f} s cpu", flush=True)
    print(row("pip install -r LOCK -e .", "packages", "wall s (med)", "cpu s (med)"))
    for label in LOCKS:
        print(
            row(
                label, str(counts[label]), f"{median(wall[label]):.1f}", f"{median(cpu[label]):.1f}"
            )
        )
    runtime, dev = LOCKS
    print(
        f"\ncommand 1 now installs {counts[runtime]} packages instead of {counts[dev]}: "
        f"{median(wall[runtime]) / median(wall[dev]):.2f}x the wall time, "
        f"{median(cpu[runtime]) / median(cpu[dev]):.2f}x the CPU time"
    )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
