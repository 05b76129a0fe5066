"""Fault injection: ``dvflow run --push`` killed, cut off from its server, or its remote.

One PostgreSQL + ``mlflow server`` (bench/_servers.py) and one project: two
stages, prepare -> train, each sleeping ~1 s so that faults land mid-run, a
model artifact, a DVC remote in a local folder, committed with git. Each
trial changes a param, commits, and runs ``dvflow run --push`` with one fault,
at a random moment:

    kill9   SIGKILL to the ``dvflow run`` process, 0.3-5 s after it started
    server  the mlflow server stops; it starts again once the run has ended
            (the run must still exit 0, recording to the local spool)
    remote  the DVC remote fails: its folder is renamed away and a regular
            file takes its path (chmod stops nothing for root); exit 3 expected
    none    a control

A server or remote fault comes 0.3-3 s after the start, or 0-1 s into the
prepare or the train stage (picked at random; the stage's own progress line
starts the clock), so that faults land in every phase however fast the
machine is.

Then it recovers as a user would: restart the server if it was stopped,
``dvflow sync`` (must exit 0), restore the remote, ``dvflow run --push`` again
(must exit 0), and commits. Counted over all trials:

- records lost: a stage or pipeline run that a faulted run reported as done
  (exit 0: the ids it printed, mapped through what ``dvflow sync`` printed),
  or a run of a recovery run, that is not on the server FINISHED with an
  intact record (``dvflow show ID`` exits 0 and says intact);
- repositories left inconsistent: after recovery, ``dvc status`` not clean,
  ``.dvflow/spool`` still there, the run lock held, a DVC output untracked
  by git and not ignored, ``dvflow verify`` of the recovery's train run not
  0, a RUNNING run on the server that is not a killed run's, or a recovery
  step that failed.

kill -9 leaves the killed run's MLflow runs RUNNING until the recovery's
``dvflow run`` ends them as KILLED; those still RUNNING after recovery are
counted apart, as runs left open by kill -9 (expected 0). Targets: 0
records lost, 0 repositories inconsistent, 0 errors (a traceback, or an exit
code the fault does not explain). The exit status is 1 when one is missed.

Usage: python bench/bench_faults.py [--trials 12] [--seed 0] [--faults kill9 server remote none]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import math
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import BIN, isolated_env
from _servers import MlflowServer, postgres_mlflow

DVFLOW, DVC = str(BIN / "dvflow"), str(BIN / "dvc")
FAULTS = ("kill9", "server", "remote", "none")
# Exit codes each fault explains; a kill that comes after the run ended leaves 0.
EXPECTED_EXITS = {"kill9": {-9, 0}, "server": {0}, "remote": {3, 0}, "none": {0}}
EXPERIMENT = "faults"
# The stages' outputs that DVC caches, so git must ignore them. metrics.json is
# ``cache: false``: git tracks it (committed with the first run's results).
CACHED_OUTPUTS = ("clean.txt", "model/")
# A traceback through dvflow's own code (a stage script's traceback is its stderr).
DVFLOW_TRACEBACK = re.compile(r'^\s+File "[^"]*/dvflow/_\w+\.py"', re.MULTILINE)

PIPELINE = """\
stages:
  prepare:
    cmd: python prepare.py
    deps: [prepare.py, data/raw.txt]
    params: [prepare]
    outs: [clean.txt]
  train:
    cmd: python train.py
    deps: [train.py, clean.txt]
    params: [train]
    outs: [model/model.bin]
    metrics:
      - metrics.json:
          cache: false

artifacts:
  fault-model:
    path: model/model.bin
    type: model
"""
PREPARE = """\
import time
from pathlib import Path

import yaml

time.sleep(1)  # long enough for a fault to land in the stage
params = yaml.safe_load(Path("params.yaml").read_text())["prepare"]
lines = Path("data/raw.txt").read_text().split()
if params["upper"]:
    lines = [line.upper() for line in lines]
Path("clean.txt").write_text("\\n".join([*lines, str(params["tag"])]) + "\\n")
"""
TRAIN = """\
import json
import time
from pathlib import Path

import mlflow
import yaml

time.sleep(1)
repeat = yaml.safe_load(Path("params.yaml").read_text())["train"]["repeat"]
lines = Path("clean.txt").read_text().split()
Path("model").mkdir(exist_ok=True)
Path("model/model.bin").write_bytes(("|".join(lines) * repeat).encode())
Path("metrics.json").write_text(json.dumps({"lines": len(lines), "size": len(lines) * repeat}))
with mlflow.start_run():  # joins the stage run dvflow opened, as scripts do
    mlflow.log_metric("script_words", len(lines), step=0)
"""


def params_yaml(number: int) -> str:
    """Params for trial ``number``: both change, so both stages run (no run-cache hit)."""
    return f"prepare:\n  upper: true\n  tag: {number}\ntrain:\n  repeat: {number + 2}\n"


@dataclass
class Trial:
    number: int
    fault: str
    anchor: str  # "start", or the stage whose start the delay counts from
    delay: float
    landed: bool = False  # the fault came while the run was still going
    during: str = ""  # where the run was when the fault came
    exit_code: int | None = None
    orphans: bool = False  # the killed run's stage command outlived it
    records: int = 0  # records checked: the faulted run's (when done) and the recovery's
    lost: list[str] = field(default_factory=list)
    inconsistent: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    left_open: int = 0  # RUNNING runs of a run killed by SIGKILL
    unrecorded_finished: int = 0  # killed runs FINISHED by the script, without a record
    recovery_seconds: float = 0.0


@dataclass
class Outcome:
    code: int
    out: str
    err: str


def ids_printed(stdout: str) -> list[str]:
    """The pipeline run's id and its stage runs' ids, as ``dvflow run`` prints them."""
    pipeline = re.findall(r"^pipeline run ([0-9a-f]{32})", stdout, re.MULTILINE)
    stages = re.findall(r"^  \S+\s+\S+\s+run ([0-9a-f]{32})", stdout, re.MULTILINE)
    return pipeline + stages


def sync_mapping(stdout: str) -> dict[str, str]:
    """Spool id -> server id, from ``dvflow sync``'s output (a completed run keeps its id)."""
    mapping = dict(re.findall(r"^  run ([0-9a-f]{32}) -> ([0-9a-f]{32})$", stdout, re.MULTILINE))
    for run_id in re.findall(r"^  run ([0-9a-f]{32}): completed$", stdout, re.MULTILINE):
        mapping[run_id] = run_id
    return mapping


class Store:
    """What the server holds, read through MLflow's REST API (no MLflow import here)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def call(self, endpoint: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(  # noqa: S310 - loopback
            f"{self.url}/api/2.0/mlflow/{endpoint}",
            data=data,
            headers={"Content-Type": "application/json"},
            method="POST" if data is not None else "GET",
        )
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - loopback
            result: dict[str, Any] = json.loads(answer.read() or b"{}")
            return result

    def runs(self) -> dict[str, dict[str, Any]]:
        """Every run of every experiment, by id."""
        experiments = self.call("experiments/search", {"max_results": 1000})
        ids = [e["experiment_id"] for e in experiments.get("experiments", [])]
        found: dict[str, dict[str, Any]] = {}
        token = None
        while True:
            query: dict[str, Any] = {"experiment_ids": ids, "max_results": 1000}
            if token:
                query["page_token"] = token
            page = self.call("runs/search", query)
            found |= {r["info"]["run_id"]: r for r in page.get("runs", [])}
            token = page.get("next_page_token")
            if not token:
                return found

    def status(self, run_id: str) -> str:
        try:
            run = self.call(f"runs/get?run_id={run_id}")
        except urllib.error.HTTPError:
            return "absent"
        return str(run["run"]["info"]["status"])


def tags(run: dict[str, Any]) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run.get("data", {}).get("tags", [])}


class Bench:
    """The project, its remote and server, and the commands a user would type."""

    def __init__(self, base: Path, server: MlflowServer, log: Path | None = None) -> None:
        self.base, self.server, self.log = base, server, log
        self.project, self.remote = base / "project", base / "remote"
        self.store = Store(server.url)
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVFLOW_"))}
        self.env = clean | isolated_env(base / "home")
        self.env |= {"DVFLOW_TRACKING_URI": server.url, "DVFLOW_EXPERIMENT": EXPERIMENT}

    def command(self, *args: str, timeout: float = 600) -> Outcome:
        done = subprocess.run(
            args,
            cwd=self.project,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Outcome(done.returncode, done.stdout, done.stderr)

    def must(self, *args: str) -> Outcome:
        done = self.command(*args)
        if done.code != 0:
            raise RuntimeError(f"{' '.join(args)} exited {done.code}:\n{done.err}{done.out}")
        return done

    def dvflow(self, *args: str) -> Outcome:
        return self.command(DVFLOW, *args)

    def set_up(self) -> float:
        """Write and commit the project, push its data, run it once; that run's seconds."""
        self.project.mkdir()
        self.remote.mkdir()
        self.must(DVFLOW, "init", str(self.project), "--remote", str(self.remote))
        files = {
            "dvc.yaml": PIPELINE,
            "prepare.py": PREPARE,
            "train.py": TRAIN,
            "params.yaml": params_yaml(0),
            "data/raw.txt": "alpha\nbeta\ngamma\ndelta\n",
        }
        for name, text in files.items():
            (self.project / name).parent.mkdir(exist_ok=True)
            (self.project / name).write_text(text)
        self.must(DVC, "add", "data/raw.txt")
        self.must(DVC, "push")
        self.commit("project")
        start = time.monotonic()
        self.must(DVFLOW, "run", "--push")
        seconds = time.monotonic() - start
        self.commit("results")
        return seconds

    def commit(self, message: str) -> None:
        self.must("git", "add", "-A")
        self.must("git", "commit", "-qm", message, "--allow-empty")

    # -- one trial ------------------------------------------------------------

    def trial(self, trial: Trial) -> None:
        (self.project / "params.yaml").write_text(params_yaml(trial.number))
        self.commit(f"trial {trial.number}: {trial.fault}")
        before = set(self.store.runs())
        faulted, killed = self.faulted_run(trial)
        clock = time.monotonic()
        synced, recovery = self.recover(trial)
        trial.recovery_seconds = time.monotonic() - clock
        for name, done in (("faulted run", faulted), ("sync", synced), ("recovery", recovery)):
            self.keep(trial, name, done)
            if DVFLOW_TRACEBACK.search(done.err):
                trial.errors.append(f"{name}: a traceback from dvflow on stderr")
        self.check_exit(trial, faulted)
        reported = [] if faulted.code != 0 else ids_printed(faulted.out)
        mapping = sync_mapping(synced.out)
        completed = [mapping.get(run_id, run_id) for run_id in reported]
        recovered = ids_printed(recovery.out) if recovery.code == 0 else []
        self.check_records(trial, completed + recovered)
        self.check_repository(trial, recovery)
        self.check_open_runs(trial, before, set(completed + recovered), killed)
        self.commit(f"trial {trial.number}: results")

    def keep(self, trial: Trial, name: str, done: Outcome) -> None:
        if self.log is None:
            return
        self.log.mkdir(parents=True, exist_ok=True)
        text = f"exit {done.code}\n--- stdout\n{done.out}\n--- stderr\n{done.err}"
        path = self.log / f"trial{trial.number:02}-{trial.fault}-{name.replace(' ', '-')}.txt"
        path.write_text(text)

    def faulted_run(self, trial: Trial) -> tuple[Outcome, bool]:
        """Run ``dvflow run --push`` and inject the fault; whether SIGKILL ended it."""
        out_path, err_path = self.base / "faulted.out", self.base / "faulted.err"
        with out_path.open("w") as out, err_path.open("w") as err:
            proc = subprocess.Popen(
                [DVFLOW, "run", "--push"],
                cwd=self.project,
                env=self.env,
                stdout=out,
                stderr=err,
                start_new_session=True,  # its own group: orphaned stage commands can be seen
            )
            trigger = Trigger(trial.anchor, trial.delay, err_path)
            while proc.poll() is None:
                if trial.fault != "none" and not trial.landed and trigger.due():
                    trial.landed = True
                    self.inject(trial.fault, proc)
                time.sleep(0.02)
            code = proc.wait()
        outcome = Outcome(code, out_path.read_text(), err_path.read_text())
        if trial.landed:
            trial.during = stage_at(outcome.err, trial.fault)
        killed = trial.fault == "kill9" and code == -signal.SIGKILL
        if killed:
            trial.orphans = wait_for_group(proc.pid)
        return outcome, killed

    def inject(self, fault: str, proc: subprocess.Popen[bytes]) -> None:
        if fault == "kill9":
            proc.send_signal(signal.SIGKILL)
        elif fault == "server":
            self.server.stop()
        elif fault == "remote":
            self.remote.rename(self.remote.with_name("remote.away"))
            self.remote.write_text("not a folder: the remote is broken\n")

    def recover(self, trial: Trial) -> tuple[Outcome, Outcome]:
        """Restart the server, sync, restore the remote, run again."""
        if not self.server.running:
            self.server.start()
        synced = self.dvflow("sync")
        away = self.remote.with_name("remote.away")
        if away.exists():
            self.remote.unlink()
            away.rename(self.remote)
        recovery = self.dvflow("run", "--push")
        for name, done in (("dvflow sync", synced), ("recovery dvflow run --push", recovery)):
            if done.code != 0:
                trial.inconsistent.append(f"{name} exited {done.code}: {last_line(done.err)}")
        return synced, recovery

    # -- checks ---------------------------------------------------------------

    def check_exit(self, trial: Trial, faulted: Outcome) -> None:
        trial.exit_code = faulted.code
        if faulted.code not in EXPECTED_EXITS[trial.fault]:
            trial.errors.append(f"faulted run exited {faulted.code}: {last_line(faulted.err)}")
        elif faulted.code == 3 and "could not push" not in faulted.err:
            trial.errors.append(f"exit 3 without naming the push: {last_line(faulted.err)}")
        if trial.fault == "server" and trial.landed and "local spool" not in faulted.err:
            trial.errors.append("the server stopped but the run did not say it spooled")

    def check_records(self, trial: Trial, run_ids: list[str]) -> None:
        """Each run FINISHED on the server, its record intact (``dvflow show``)."""
        trial.records += len(run_ids)
        with ThreadPoolExecutor(max_workers=3) as pool:
            shown = list(pool.map(lambda run_id: self.dvflow("show", run_id), run_ids))
        for run_id, done in zip(run_ids, shown, strict=True):
            status = self.store.status(run_id)
            if status != "FINISHED":
                trial.lost.append(f"run {run_id} is {status} on the server")
            elif done.code != 0 or "intact" not in done.err:
                trial.lost.append(f"dvflow show {run_id} exited {done.code}: {last_line(done.err)}")

    def check_repository(self, trial: Trial, recovery: Outcome) -> None:
        problems = trial.inconsistent
        status = self.command(DVC, "status", "--json")
        if status.code != 0 or json.loads(status.out or "null") != {}:
            problems.append(f"dvc status not clean: {status.out.strip() or status.err.strip()}")
        if (self.project / ".dvflow" / "spool").exists():
            problems.append(".dvflow/spool is still there")
        if lock_held(self.project / ".dvflow" / "run.lock"):
            problems.append("the run lock is held")
        porcelain = self.must("git", "status", "--porcelain", "--untracked-files=all").out
        for line in porcelain.splitlines():
            if line.startswith("??") and line[3:].startswith(CACHED_OUTPUTS):
                problems.append(f"git sees an untracked DVC output: {line[3:]}")
        if recovery.code == 0:
            train = re.search(r"^  train\s+\S+\s+run ([0-9a-f]{32})", recovery.out, re.MULTILINE)
            verified = self.dvflow("verify", train[1]) if train else None
            if verified is None or verified.code != 0:
                detail = last_line(verified.err + verified.out) if verified else "no train run"
                problems.append(f"dvflow verify of the recovery's train run: {detail}")

    def check_open_runs(
        self, trial: Trial, before: set[str], completed: set[str], killed: bool
    ) -> None:
        """RUNNING runs the trial left: a SIGKILLed run's are expected, others are not."""
        for run_id, run in self.store.runs().items():
            if run_id in before:
                continue
            status, run_tags = run["info"]["status"], tags(run)
            if killed and run_id not in completed:
                if status == "RUNNING":
                    trial.left_open += 1
                elif status == "FINISHED" and "dvflow.record_sha256" not in run_tags:
                    trial.unrecorded_finished += 1
            elif status == "RUNNING":
                trial.inconsistent.append(f"run {run_id} left RUNNING on the server")


class Trigger:
    """When a fault is due: ``delay`` seconds after the start or after a stage started."""

    def __init__(self, anchor: str, delay: float, stderr: Path) -> None:
        self.anchor, self.delay, self.stderr = anchor, delay, stderr
        self.since = time.monotonic() if anchor == "start" else None

    def due(self) -> bool:
        if self.since is None and f"] {self.anchor}: starting" in self.stderr.read_text():
            self.since = time.monotonic()
        return self.since is not None and time.monotonic() - self.since >= self.delay


def stage_at(stderr: str, fault: str) -> str:
    """The stage the run was in when the fault came, from its progress lines."""
    if fault == "server" and "local spool" in stderr:
        stderr = stderr[: stderr.index("local spool")]
    started = re.findall(r"^\[\d+/\d+\] (\S+): starting", stderr, re.MULTILINE)
    ended = re.findall(r"^\[\d+/\d+\] (\S+): (?!starting)", stderr, re.MULTILINE)
    if not started:
        return "before any stage"
    if len(ended) >= len(started):
        return f"after stage {ended[-1]}"
    return f"in stage {started[-1]}"


def wait_for_group(pgid: int, timeout: float = 60) -> bool:
    """Wait until the process group is gone; whether any process was left in it."""
    deadline = time.monotonic() + timeout
    left = False
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return left
        left = True
        time.sleep(0.1)
    return left


def lock_held(path: Path) -> bool:
    """Whether another ``dvflow run`` would be refused: the lock's flock is taken."""
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def last_line(text: str) -> str:
    """The ``error:`` line of a dvflow command's stderr, else its last line."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or ["(no output)"])[-1][:300]


def plan(trials: int, faults: list[str], rng: random.Random) -> list[Trial]:
    """Every fault equally often (shuffled), each at a random moment."""
    kinds = (faults * math.ceil(trials / len(faults)))[:trials]
    rng.shuffle(kinds)
    return [Trial(i + 1, kind, *moment(kind, rng)) for i, kind in enumerate(kinds)]


def moment(fault: str, rng: random.Random) -> tuple[str, float]:
    if fault in {"kill9", "none"}:
        return "start", round(rng.uniform(0.3, 5.0), 2)
    anchor = rng.choice(["start", "prepare", "train"])
    low, high = (0.3, 3.0) if anchor == "start" else (0.0, 1.0)
    return anchor, round(rng.uniform(low, high), 2)


def progress(trial: Trial, total: int) -> None:
    if trial.fault == "none":
        when = "control"
    else:
        since = "after start" if trial.anchor == "start" else f"into {trial.anchor}"
        when = f"{trial.delay:.1f}s {since}, "
        when += trial.during if trial.landed else "run ended first"
    state = "consistent" if not trial.inconsistent else "INCONSISTENT"
    print(
        f"trial {trial.number:>2}/{total} {trial.fault:<6} {when:<38} exit {trial.exit_code!s:>3}"
        f"  records {trial.records}, lost {len(trial.lost)}, {state}, open by kill -9 "
        f"{trial.left_open}, recovery {trial.recovery_seconds:.1f}s",
        flush=True,
    )
    notes = [f"LOST: {x}" for x in trial.lost] + [f"INCONSISTENT: {x}" for x in trial.inconsistent]
    notes += [f"ERROR: {x}" for x in trial.errors]
    if trial.orphans:
        notes.append("note: the killed run's stage command outlived it (waited for it to end)")
    if trial.unrecorded_finished:
        notes.append(
            f"note: {trial.unrecorded_finished} killed run(s) FINISHED by the stage script's "
            "own mlflow.start_run(), without a record"
        )
    for note in notes:
        print(f"    {note}", flush=True)


def report(trials: list[Trial], faults: list[str]) -> bool:
    """Print the table and the targets; whether every target was met."""
    header = (
        f"{'fault':<8}{'trials':>7}{'landed':>7}  {'faulted exits':<16}{'records':>8}"
        f"{'lost':>6}{'inconsistent':>13}{'errors':>7}{'open by -9':>11}{'recovery s':>17}"
    )
    print("\n" + header)
    print("-" * len(header))
    for kind in [*faults, "total"]:
        group = [t for t in trials if kind in {t.fault, "total"}]
        if not group:
            continue
        exits = Counter(t.exit_code for t in group)
        seen = " ".join(f"{code}x{n}" for code, n in sorted(exits.items(), key=str))
        seconds = [t.recovery_seconds for t in group]
        timing = f"{statistics.median(seconds):.1f} (max {max(seconds):.1f})"
        print(
            f"{kind:<8}{len(group):>7}{sum(t.landed for t in group):>7}  {seen:<16}"
            f"{sum(t.records for t in group):>8}{sum(len(t.lost) for t in group):>6}"
            f"{sum(bool(t.inconsistent) for t in group):>13}"
            f"{sum(bool(t.errors) for t in group):>7}"
            f"{sum(t.left_open for t in group):>11}{timing:>17}"
        )
    lost = sum(len(t.lost) for t in trials)
    inconsistent = sum(bool(t.inconsistent) for t in trials)
    errors = sum(bool(t.errors) for t in trials)
    print()
    for label, value in (
        ("records lost", lost),
        ("repositories left inconsistent", inconsistent),
        ("trials with errors", errors),
    ):
        print(f"{label:<32}{value:>4}   target 0   {'met' if value == 0 else 'MISSED'}")
    print(
        f"{'runs left open by kill -9':<32}{sum(t.left_open for t in trials):>4}"
        "   (expected 0: the next dvflow run ends them as KILLED)"
    )
    return lost == inconsistent == errors == 0


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="dvflow-bench-faults-"))
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--faults", nargs="+", choices=FAULTS, default=list(FAULTS))
    parser.add_argument("--log", type=Path, help="keep every command's output of each trial here")
    args = parser.parse_args()
    trials = plan(args.trials, args.faults, random.Random(args.seed))  # noqa: S311 - repeatable, not secret
    started = time.monotonic()
    with workspace() as base, postgres_mlflow(base / "server") as server:
        bench = Bench(base, server, args.log)
        seconds = bench.set_up()
        print(f"set-up done; an undisturbed dvflow run --push takes {seconds:.1f}s", flush=True)
        for trial in trials:
            bench.trial(trial)
            progress(trial, len(trials))
    met = report(trials, args.faults)
    print(f"\n{len(trials)} trials, seed {args.seed}, {time.monotonic() - started:.0f}s in all")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
