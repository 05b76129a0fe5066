"""``dvflow attest`` and ``dvflow verify --pubkey`` against ``sha256sum``, in one run.

A project whose stage writes two models: one file of ``--mib`` MiB (1 GiB by
default, random bytes) and a folder of ``--files`` small files (10,000 by
default), both declared in ``artifacts:`` so ``dvflow run`` registers them.
Then, ``--repeat`` times each, medians:

- the baseline: ``sha256sum`` of the model file (DVC's cache copy, the bytes
  dvflow hashes), and ``find | xargs sha256sum`` over the folder's files;
- dvflow's hashing alone, in-process: sha256 with the DVC md5 checked on the
  same read (what ``attest`` and online ``verify`` do), and sha256 alone
  (offline ``verify --files``);
- the whole commands: ``dvflow attest``, ``dvflow verify --pubkey`` (online:
  subjects, records and inputs) and ``dvflow verify --pubkey --files`` (offline).

Ratios are against the baseline of the same run; files are read once before
timing, so every figure is from the page cache.

Usage: python bench/bench_attest.py [--mib 1024] [--files 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import BIN, isolated_env, median, row, timed

DVFLOW, DVC = str(BIN / "dvflow"), str(BIN / "dvc")
PIPELINE = """\
stages:
  train:
    cmd: python make_models.py {mib} {files}
    deps: [make_models.py, data/raw.txt]
    outs: [models/big.bin, models/many]
artifacts:
  big:
    path: models/big.bin
    type: model
  many:
    path: models/many
    type: model
"""
MAKE_MODELS = """\
import os, sys
mib, files = int(sys.argv[1]), int(sys.argv[2])
os.makedirs("models/many", exist_ok=True)
with open("models/big.bin", "wb") as out:
    for _ in range(mib):
        out.write(os.urandom(1 << 20))
for i in range(files):
    with open(f"models/many/w{i:05}.bin", "wb") as out:
        out.write(os.urandom(512))
"""


def run(root: Path, env: dict[str, str], *args: str) -> str:
    return subprocess.run(
        args, cwd=root, env={**os.environ, **env}, check=True, capture_output=True, text=True
    ).stdout


def make_project(root: Path, env: dict[str, str], mib: int, files: int) -> None:
    run(root.parent, env, DVFLOW, "init", str(root))
    (root / "data").mkdir()
    (root / "data" / "raw.txt").write_text("raw\n")
    (root / "make_models.py").write_text(MAKE_MODELS)
    (root / "dvc.yaml").write_text(PIPELINE.format(mib=mib, files=files))
    run(root, env, DVC, "add", "-q", "data/raw.txt")
    run(root, env, "git", "add", "-A")
    run(root, env, "git", "commit", "-qm", "bench")
    run(root, env, DVFLOW, "run")
    run(root, env, "git", "add", "-A")
    run(root, env, "git", "commit", "-qm", "results")
    run(root, env, DVFLOW, "keygen", "--out", str(root.parent / "keys"))


def in_process(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return median(times)


def command(args: list[str], root: Path, env: dict[str, str], repeat: int) -> float:
    return median([timed(args, cwd=root, env=env).wall for _ in range(repeat)])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-attest-") as tmp:
        root = Path(tmp) / "project"
        env = isolated_env(Path(tmp) / "home")
        started = time.perf_counter()
        make_project(root, env, args.mib, args.files)
        print(f"project with a {args.mib} MiB model and a {args.files}-file model folder "
              f"made in {time.perf_counter() - started:.0f} s; load {os.getloadavg()[0]:.1f} "
              f"on {os.cpu_count()} cores; medians of {args.repeat}")  # fmt: skip
        report(root, env, args)


def report(root: Path, env: dict[str, str], args: argparse.Namespace) -> None:
    from dvflow.export._hashing import file_digests, many_file_digests

    big = max(
        (p for p in (root / ".dvc" / "cache" / "files" / "md5").rglob("*") if p.is_file()),
        key=lambda p: p.stat().st_size,
    )
    many = sorted((root / "models" / "many").iterdir())
    keys = root.parent / "keys"
    key, pub = str(keys / "dvflow-attest.key"), str(keys / "dvflow-attest.pub")
    file_digests(big)  # into the page cache
    many_file_digests(many)

    size = big.stat().st_size / (1 << 20)
    base = command(["sha256sum", str(big)], root, env, args.repeat)
    both = in_process(lambda: file_digests(big), args.repeat)
    sha = in_process(lambda: file_digests(big, md5=False), args.repeat)
    envelope = str(root.parent / "big.json")
    attest = command([DVFLOW, "attest", "models:/big/1", "--key", key, "-o", envelope],
                     root, env, args.repeat)  # fmt: skip
    verify = command([DVFLOW, "verify", "models:/big/1", "--attestation", envelope,
                      "--pubkey", pub], root, env, args.repeat)  # fmt: skip
    offline = command([DVFLOW, "verify", "models:/big/1", "--attestation", envelope,
                       "--pubkey", pub, "--files", str(root)], root, env, args.repeat)  # fmt: skip
    print(f"\none model file of {size:.0f} MiB")
    print(row("", "seconds", "MiB/s", "x sha256sum"))
    for label, seconds in [
        ("sha256sum (baseline)", base),
        ("sha256 + md5 check, in-process", both),
        ("sha256 alone, in-process", sha),
        ("dvflow attest", attest),
        ("dvflow verify --pubkey", verify),
        ("dvflow verify --pubkey --files", offline),
    ]:
        print(row(label, f"{seconds:.2f}", f"{size / seconds:.0f}", f"{seconds / base:.2f}"))

    find = ["sh", "-c", "find models/many -type f -print0 | xargs -0 sha256sum > /dev/null"]
    base = command(find, root, env, args.repeat)
    both = in_process(lambda: many_file_digests(many), args.repeat)
    envelope = str(root.parent / "many.json")
    attest = command([DVFLOW, "attest", "models:/many/1", "--key", key, "-o", envelope],
                     root, env, args.repeat)  # fmt: skip
    verify = command([DVFLOW, "verify", "models:/many/1", "--attestation", envelope,
                      "--pubkey", pub], root, env, args.repeat)  # fmt: skip
    offline = command([DVFLOW, "verify", "models:/many/1", "--attestation", envelope,
                       "--pubkey", pub, "--files", str(root)], root, env, args.repeat)  # fmt: skip
    print(f"\na model folder of {len(many)} files")
    print(row("", "seconds", "files/s", "x sha256sum"))
    for label, seconds in [
        ("find | xargs sha256sum (baseline)", base),
        ("sha256 + md5 check, in-process", both),
        ("dvflow attest", attest),
        ("dvflow verify --pubkey", verify),
        ("dvflow verify --pubkey --files", offline),
    ]:
        rate = f"{len(many) / seconds:.0f}"
        print(row(label, f"{seconds:.2f}", rate, f"{seconds / base:.2f}"))
    startup = command([DVFLOW, "--help"], root, env, args.repeat)
    print(f"\n(dvflow --help alone: {startup:.2f} s; each command also opens the MLflow "
          "store, except verify --files)")  # fmt: skip


if __name__ == "__main__":
    main()
