"""``dvflow verify`` against the plain tools, in one run.

1. Remote presence: a stage consumes a ``dvc add``ed directory of
   ``--files`` files (20,000 by default) pushed to a local remote. The
   quick check's scan (``DvcProject.missing_in_remote``, timed in-process
   after DVC is loaded) and the whole ``dvflow verify RUN`` are compared
   with ``dvc status -c`` and ``dvc data status --not-in-remote`` on the same
   data and remote. Target: the scan at most as slow as ``dvc status -c``.
2. Rebuild overhead: ``dvflow verify RUN --rebuild`` of a stage that works
   ``--seconds`` seconds, against running the same stage by hand
   (``dvc repro --single-item --force --no-run-cache``).

Usage: python bench/bench_verify.py [--files 20000] [--seconds 5] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import BIN, ENV, Timing, median, row, timed

DVFLOW, DVC = str(BIN / "dvflow"), str(BIN / "dvc")
PIPELINE = """\
stages:
  count:
    cmd: python -c "import os; open('count.txt', 'w').write(str(len(os.listdir('data/many'))))"
    deps: [data/many]
    outs: [count.txt]
  work:
    cmd: sleep {seconds} && echo done > work.txt
    outs: [work.txt]
"""


def run(root: Path, *args: str) -> str:
    return subprocess.run(
        args, cwd=root, env={**os.environ, **ENV}, check=True, capture_output=True, text=True
    ).stdout


def make_project(root: Path, files: int, seconds: float) -> dict[str, str]:
    run(root.parent, DVFLOW, "init", str(root), "--remote", str(root.parent / "remote"))
    many = root / "data" / "many"
    many.mkdir(parents=True)
    for i in range(files):
        (many / f"f{i:05}.txt").write_text(f"file {i}\n")
    (root / "dvc.yaml").write_text(PIPELINE.format(seconds=seconds))
    run(root, DVC, "add", "-q", "data/many")
    run(root, "git", "add", "-A")
    run(root, "git", "commit", "-qm", "bench")
    run(root, DVFLOW, "run")
    run(root, "git", "add", "-A")
    run(root, "git", "commit", "-qm", "results")
    run(root, DVC, "push", "-q")
    code = (
        "import sys; from mlflow.tracking import MlflowClient as C; c = C(sys.argv[1]); "
        "print(' '.join(r.data.tags['dvflow.stage'] + '=' + r.info.run_id for r in "
        "c.search_runs([e.experiment_id for e in c.search_experiments()], "
        "\"tags.`dvflow.kind` = 'stage'\")))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, f"sqlite:///{root / 'mlflow.db'}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(item.split("=") for item in out.split())


def scan_in_process(root: Path) -> float:
    """Seconds of the quick check's remote scan alone (DVC already imported)."""
    code = (
        "import sys, time, json; from pathlib import Path\n"
        "from dvflow.stores._dvc import DvcProject\n"
        "p = DvcProject(Path(sys.argv[1])); md5 = sys.argv[2]\n"
        "t = time.perf_counter(); missing = p.missing_in_remote([md5])\n"
        "print(time.perf_counter() - t, len(missing))\n"
    )
    dvc_file = (root / "data" / "many.dvc").read_text()
    md5 = dvc_file.split("md5: ")[1].split()[0]
    out = subprocess.run(
        [sys.executable, "-c", code, str(root), md5], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[1] == "0", f"objects missing: {out[1]}"
    return float(out[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dvflow-bench-") as tmp:
        root = Path(tmp) / "project"
        t0 = time.perf_counter()
        runs = make_project(root, args.files, args.seconds)
        print(
            f"project with {args.files} files made and pushed in {time.perf_counter() - t0:.0f} s"
        )
        status = [
            timed([DVC, "status", "-c", "data/many.dvc"], root, ENV) for _ in range(args.repeat)
        ]
        data_status = [
            timed([DVC, "data", "status", "--not-in-remote"], root, ENV) for _ in range(args.repeat)
        ]
        scan = [scan_in_process(root) for _ in range(args.repeat)]
        quick = [timed([DVFLOW, "verify", runs["count"]], root, ENV) for _ in range(args.repeat)]
        by_hand = []
        rebuilt = []
        for _ in range(args.repeat):
            by_hand.append(
                timed(
                    [DVC, "repro", "--single-item", "--force", "--no-run-cache", "work"], root, ENV
                )
            )
            rebuilt.append(timed([DVFLOW, "verify", runs["work"], "--rebuild"], root, ENV))
    print(f"\nmedians of {args.repeat}\n")
    print(row("remote presence, 1 dir of N files", "wall s", "cpu s"))
    _line("dvc status -c", status)
    _line("dvc data status --not-in-remote", data_status)
    print(row("dvflow scan alone (in-process)", f"{median(scan):.2f}", "-"))
    _line("dvflow verify RUN (whole quick check)", quick)
    print(f"\nscan / dvc status -c = {median(scan) / median([t.wall for t in status]):.2f}")
    print(f"\n{row('rebuild', 'wall s', 'cpu s')}")
    _line(f"stage by hand ({args.seconds:.0f} s of work)", by_hand)
    _line("dvflow verify --rebuild", rebuilt)
    extra = median([t.wall for t in rebuilt]) - median([t.wall for t in by_hand])
    print(f"\nrebuild overhead over the stage by hand: {extra:+.2f} s")


def _line(label: str, timings: list[Timing]) -> None:
    print(
        row(
            label,
            f"{median([t.wall for t in timings]):.2f}",
            f"{median([t.cpu for t in timings]):.2f}",
        )
    )


if __name__ == "__main__":
    main()
