"""``dvflow --help`` process time against the tools it wraps, measured in one run.

Target: under 0.3 s of process time (MLflow and DVC are imported lazily).
Usage: python bench/bench_startup.py [--repeat N]
"""

from __future__ import annotations

import argparse
import sys

from _common import BIN, median, row, timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    commands = {
        "python -c pass (interpreter)": [sys.executable, "-c", "pass"],
        "dvflow --help": [str(BIN / "dvflow"), "--help"],
        "python -c 'import dvflow'": [sys.executable, "-c", "import dvflow"],
        "dvc --help (baseline)": [str(BIN / "dvc"), "--help"],
        "mlflow --help (baseline)": [str(BIN / "mlflow"), "--help"],
    }
    print(row("command", "cpu s (med)", "wall s (med)"))
    results = {}
    for label, command in commands.items():
        timed(command)  # warm the file cache
        runs = [timed(command) for _ in range(args.repeat)]
        results[label] = median([r.cpu for r in runs])
        print(row(label, f"{results[label]:.3f}", f"{median([r.wall for r in runs]):.3f}"))
    ours = results["dvflow --help"]
    print(
        f"\ndvflow --help: {ours:.3f} s process time (target < 0.300 s); "
        f"{results['dvc --help (baseline)'] / ours:.1f}x less than dvc --help, "
        f"{results['mlflow --help (baseline)'] / ours:.1f}x less than mlflow --help"
    )


if __name__ == "__main__":
    main()
