"""``dvflow storage`` and ``dvflow gc plan`` on a large S3 remote, against the plain tools.

A moto S3 server (127.0.0.1, stopped by PID) holds ``--objects`` DVC
objects (100,000 by default: random bodies of 16-256 bytes under
``files/md5/ab/cdef...``, written with boto3 directly, a few ``.dir``
listings among them). A DVC project's ``dvc.lock`` references a share of
them (``--referenced``, through ``.dir`` outputs and plain files). Timed in
the same run, ``--repeat`` times each (medians):

- ``dvc gc -w -c --dry -f``: what DVC's gc would delete from the remote;
- the full listing: ``list_objects_v2`` paginated in a fresh Python (the
  equivalent of ``aws s3 ls --recursive``), and ``aws s3 ls --recursive``
  itself when the AWS CLI is on PATH;
- ``dvflow storage`` and ``dvflow gc plan -w`` (grace period 0, so every
  unreferenced object is planned), taken from PATH / PYTHONPATH, so another
  checkout's dvflow can be measured (``PYTHONPATH=src``).

Usage: python bench/bench_governance.py [--objects 100000] [--referenced 0.3] [--repeat 3]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from _common import BIN, Timing, isolated_env, median, row
from _servers import free_port

DVC = str(BIN / "dvc")
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
BUCKET = "bench-governance"
DIRS = 5  # .dir outputs in dvc.lock
FILES = 100  # plain file outputs in dvc.lock
LISTING = """\
import boto3, sys
client = boto3.client("s3", endpoint_url=sys.argv[1])
count = 0
for page in client.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[2]):
    count += len(page.get("Contents", []))
print(count)
"""


@contextlib.contextmanager
def moto_server(folder: Path) -> Iterator[str]:
    """moto's S3 on a free port; yields its endpoint, stops it by PID."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (folder / "moto.log").open("wb")
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=2):  # noqa: S310
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def s3(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=endpoint, config=Config(max_pool_connections=32), **_keys()
    )


def _keys() -> dict[str, str]:
    return {
        "aws_access_key_id": AWS_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        "region_name": AWS_ENV["AWS_DEFAULT_REGION"],
    }


def object_key(md5: str) -> str:
    return f"files/md5/{md5[:2]}/{md5[2:]}"


def fill_remote(client: Any, count: int, referenced: float, seed: int) -> dict[str, Any]:
    """Write ``count`` objects (the ``.dir`` listings among them); say what dvc.lock uses."""
    rng = random.Random(seed)  # noqa: S311 - test bodies, not secrets
    bodies = [rng.randbytes(rng.randint(16, 256)) for _ in range(count - DIRS)]
    md5s = [hashlib.md5(b, usedforsecurity=False).hexdigest() for b in bodies]
    sizes = {m: len(b) for m, b in zip(md5s, bodies, strict=True)}
    used = max(FILES + DIRS, int(len(md5s) * referenced))
    plain = [(f"data/f{i}.bin", md5s[i], len(bodies[i])) for i in range(FILES)]
    dirs = []
    in_dirs = md5s[FILES:used]
    share = -(-len(in_dirs) // DIRS)
    listings: dict[str, bytes] = {}
    for d in range(DIRS):
        part = in_dirs[d * share : (d + 1) * share]
        entries = [{"md5": m, "relpath": f"part-{i:06d}.bin"} for i, m in enumerate(part)]
        data = json.dumps(entries, separators=(",", ":")).encode()
        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest() + ".dir"
        listings[md5] = data
        dirs.append((f"data/d{d}", md5, sum(sizes[m] for m in part), len(part)))
    uploads = [(object_key(m), b) for m, b in zip(md5s, bodies, strict=True)]
    uploads += [(object_key(m), b) for m, b in listings.items()]
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        put = pool.map(lambda kv: client.put_object(Bucket=BUCKET, Key=kv[0], Body=kv[1]), uploads)
        for done, _ in enumerate(put, 1):
            if done % 20000 == 0:
                print(f"  {done:,} objects written", file=sys.stderr)
    return {"plain": plain, "dirs": dirs, "listings": listings, "total": len(uploads)}


def write_project(root: Path, endpoint: str, used: dict[str, Any], env: dict[str, str]) -> None:
    """A dvflow project whose dvc.lock references ``used``, its remote the bucket."""
    dvflow = shutil.which("dvflow") or str(BIN / "dvflow")
    run(root.parent, env, dvflow, "init", str(root))
    stages: dict[str, Any] = {}
    lock: dict[str, Any] = {"schema": "2.0", "stages": {}}
    plain_outs = [p for p, _, _ in used["plain"]]
    stages["files"] = {"cmd": "true", "outs": plain_outs}
    lock["stages"]["files"] = {
        "cmd": "true",
        "outs": [{"path": p, "hash": "md5", "md5": m, "size": s} for p, m, s in used["plain"]],
    }
    for path, md5, size, nfiles in used["dirs"]:
        name = path.replace("/", "_")
        stages[name] = {"cmd": "true", "outs": [path]}
        out = {"path": path, "hash": "md5", "md5": md5, "size": size, "nfiles": nfiles}
        lock["stages"][name] = {"cmd": "true", "outs": [out]}
    (root / "dvc.yaml").write_text(json.dumps({"stages": stages}, indent=1))
    (root / "dvc.lock").write_text(json.dumps(lock, indent=1))
    cache = root / ".dvc" / "cache" / "files" / "md5"
    for md5, data in used["listings"].items():
        # DVC and dvflow expand a .dir from the local cache, as after a pull.
        (cache / md5[:2]).mkdir(parents=True, exist_ok=True)
        (cache / md5[:2] / md5[2:]).write_bytes(data)
    # Written as 'dvc remote add -d' + 'dvc remote modify' would write it; dvflow
    # init's default local remote (in config.local) is dropped.
    (root / ".dvc" / "config.local").unlink(missing_ok=True)
    (root / ".dvc" / "config").write_text(
        f"[core]\n    remote = storage\n['remote \"storage\"']\n"
        f"    url = s3://{BUCKET}\n    endpointurl = {endpoint}\n"
    )
    settings = root / "dvflow.yaml"
    settings.write_text(settings.read_text() + "governance:\n  grace_days: 0\n")
    run(root, env, "git", "add", "-A")
    run(root, env, "git", "commit", "-qm", "bench project")


def run(cwd: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        args, cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def timed_ok(command: Sequence[str], cwd: Path, env: dict[str, str]) -> tuple[Timing, str] | str:
    """``timed`` with its output; a failure is reported (its last stderr line), not raised."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        command, cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        return f"exit {done.returncode}: {lines[-1] if lines else ''}"
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timing(wall, cpu), done.stdout + done.stderr


def counted(label: str, output: str, root: Path) -> str:
    """How many objects a command listed or would delete, from what it printed."""
    if label.startswith("list_objects"):
        return output.strip().splitlines()[-1]
    if label.startswith("aws"):
        return str(sum(1 for line in output.splitlines() if "files/md5/" in line))
    if label.startswith("dvc gc"):
        found = re.search(r"Removed (\d+) objects from remote", output)
        return found.group(1) if found else "0"
    if label.startswith("dvflow gc"):
        plan = re.search(r"^plan (.+)$", output, re.MULTILINE)
        if plan:
            data = json.loads((root / plan.group(1)).read_text())  # absolute stays absolute
            return str(data["totals"]["remote_objects"])
    return ""


def dvflow_command() -> str | None:
    """The dvflow on PATH (else this venv's), if it has the governance commands."""
    found = shutil.which("dvflow") or str(BIN / "dvflow")
    probe = subprocess.run([found, "gc", "plan", "--help"], capture_output=True, check=False)
    return found if probe.returncode == 0 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--referenced", type=float, default=0.3)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dvflow-bench-gov-") as tmp:
        base = Path(tmp)
        env = {**isolated_env(base / "home"), **AWS_ENV}
        env.pop("PATH")  # keep the caller's PATH: dvflow may come from another checkout
        env["PATH"] = os.environ.get("PATH", "") + os.pathsep + str(BIN)
        with moto_server(base) as endpoint:
            client = s3(endpoint)
            client.create_bucket(Bucket=BUCKET)
            start = time.perf_counter()
            used = fill_remote(client, args.objects, args.referenced, args.seed)
            made = time.perf_counter() - start
            referenced = len(used["plain"]) + sum(d[3] for d in used["dirs"]) + len(used["dirs"])
            print(
                f"moto S3: {used['total']:,} objects written in {made:.0f} s "
                f"({used['total'] / made:,.0f}/s); dvc.lock references {referenced:,} "
                f"({DIRS} .dir listings, {FILES} plain files)"
            )
            root = base / "project"
            write_project(root, endpoint, used, env)
            measure(root, endpoint, env, args.repeat)


def measure(root: Path, endpoint: str, env: dict[str, str], repeat: int) -> None:
    commands: list[tuple[str, list[str]]] = [
        ("dvc gc -w -c --dry -f", [DVC, "gc", "-w", "-c", "--dry", "-f"]),
        ("list_objects_v2 (fresh python)", [sys.executable, "-c", LISTING, endpoint, BUCKET]),
    ]
    aws = shutil.which("aws")
    if aws and subprocess.run([aws, "--version"], capture_output=True, check=False).returncode == 0:
        ls = [aws, "s3", "ls", "--recursive", f"s3://{BUCKET}", "--endpoint-url", endpoint]
        commands.append(("aws s3 ls --recursive", ls))
    dvflow = dvflow_command()
    if dvflow:
        commands += [
            ("dvflow storage", [dvflow, "storage", "-C", str(root)]),
            ("dvflow gc plan -w", [dvflow, "gc", "plan", "-w", "-C", str(root)]),
        ]
    load = os.getloadavg()
    print(f"load average before: {load[0]:.2f} ({os.cpu_count()} CPU(s)); {repeat} run(s) each")
    results: dict[str, list[Timing]] = {}
    failures: dict[str, str] = {}
    said: dict[str, str] = {}
    for _ in range(repeat):
        for label, command in commands:
            timing = timed_ok(command, root, env)
            if isinstance(timing, str):
                failures[label] = timing
            else:
                results.setdefault(label, []).append(timing[0])
                said[label] = timing[1]
    base_wall = median([t.wall for t in results.get(commands[0][0], [])] or [float("nan")])
    print(row("command", "wall s", "cpu s", "vs dvc gc", "objects"))
    for label, _ in commands:
        if label in failures and label not in results:
            print(row(label, "failed", "", "") + f"  {failures[label]}")
            continue
        wall = median([t.wall for t in results[label]])
        cpu = median([t.cpu for t in results[label]])
        count = counted(label, said[label], root)
        print(row(label, f"{wall:.2f}", f"{cpu:.2f}", f"{wall / base_wall:.2f}x", count))
    print("objects: listed (listings), or to delete from the remote (gc)")
    if not dvflow:
        print("dvflow on PATH/PYTHONPATH has no 'gc plan': baselines only")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
