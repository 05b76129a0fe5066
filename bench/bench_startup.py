"""Start-up: ``dvflow --help`` against ``dvc --help`` and ``mlflow --help``, in one run.

Process time (CPU seconds of the child, user + system) of each command,
median over --repeat runs after one warm-up run, and its ratio to
``dvc --help`` measured in the same run. Then ``python -X importtime``: what
each entry point imports (modules, import time, the top-level packages that
cost most), median over the same repeats.

Target (issue 13): ``dvflow --help`` <= ``dvc --help`` in process time.
Usage: python bench/bench_startup.py [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections import Counter

from _common import BIN, median, row, timed

# The import each console script starts with (its entry point's module).
ENTRY_IMPORTS = {
    "dvflow --help": "import dvflow.cli._main",
    "import dvflow": "import dvflow",
    "dvc --help": "import dvc.cli",
    "mlflow --help": "import mlflow.cli",
}


def import_profile(statement: str) -> tuple[int, float, Counter[str]]:
    """Modules imported by ``statement``, their total import seconds, seconds by package."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        capture_output=True,
        text=True,
        check=True,
    )
    by_package: Counter[str] = Counter()
    modules = 0
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = (cell.strip() for cell in line[len("import time:") :].split("|"))
        by_package[name.split(".")[0]] += int(self_us) / 1e6
        modules += 1
    return modules, sum(by_package.values()), by_package


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    commands = {
        "python -c pass (interpreter)": [sys.executable, "-c", "pass"],
        "python -c 'import dvflow'": [sys.executable, "-c", "import dvflow"],
        "dvflow --help": [str(BIN / "dvflow"), "--help"],
        "dvflow run --help": [str(BIN / "dvflow"), "run", "--help"],
        "dvc --help (baseline)": [str(BIN / "dvc"), "--help"],
        "mlflow --help": [str(BIN / "mlflow"), "--help"],
    }
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(row("command", "cpu s (med)", "wall s (med)", "cpu / dvc"))
    cpu: dict[str, list[float]] = {label: [] for label in commands}
    wall: dict[str, list[float]] = {label: [] for label in commands}
    for command in commands.values():
        timed(command)  # warm the file cache
    # Interleaved rounds: a load spike on the shared machine hits every command alike.
    for _ in range(args.repeat):
        for label, command in commands.items():
            timing = timed(command)
            cpu[label].append(timing.cpu)
            wall[label].append(timing.wall)
    results = {label: median(values) for label, values in cpu.items()}
    dvc = results["dvc --help (baseline)"]
    for label in commands:
        print(
            row(
                label,
                f"{results[label]:.3f}",
                f"{median(wall[label]):.3f}",
                f"{results[label] / dvc:.2f}",
            )
        )

    print(f"\npython -X importtime, median of {args.repeat}:")
    print(row("entry point", "modules", "import s") + "   costliest packages (s)")
    for label, statement in ENTRY_IMPORTS.items():
        profiles = [import_profile(statement) for _ in range(args.repeat)]
        modules = int(median([p[0] for p in profiles]))
        total = median([p[1] for p in profiles])
        packages = sorted(profiles, key=lambda p: p[1])[len(profiles) // 2][2]
        top = ", ".join(f"{name} {s:.3f}" for name, s in packages.most_common(4))
        print(f"{label:<34}{modules:>14}{total:>14.3f}   {top}")

    ours = results["dvflow --help"]
    bare = results["python -c 'import dvflow'"]
    verdict = "met" if ours <= dvc else "MISSED"
    print(
        f"\ndvflow --help: {ours:.3f} s process time = {ours / dvc:.2f}x dvc --help "
        f"({dvc:.3f} s; target <= 1.00x: {verdict}), "
        f"{ours / results['mlflow --help']:.3f}x mlflow --help; "
        f"import dvflow {bare / dvc:.2f}x dvc --help"
    )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
