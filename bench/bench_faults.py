"""Fault injection: dvflow killed (run, sync, rebuild, checkout), its server, remote or disk gone.

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
    diskfull  the project and its remote live on a small tmpfs, and a file
            takes every free byte of it (root only: without a tmpfs this
            fault is left out, and the run says so)
    kill9-sync      the run spools (server stopped), then SIGKILL to the
                    ``dvflow sync`` that uploads it, 0.2-3 s after its start
    kill9-rebuild   after a run, SIGKILL to ``dvflow verify --rebuild`` of
                    its train run, 0.3-8 s after its start
    kill9-checkout  after a run, SIGKILL to ``dvflow checkout`` of its train
                    run, 0.2-4 s after its start
    none    a control

A server or remote fault comes 0.3-3 s after the start, or 0-1 s into the
prepare or the train stage (picked at random; the stage's own progress line
starts the clock), so that faults land in every phase however fast the
machine is.

Then it recovers as a user would: restart the server if it was stopped,
``dvflow sync`` (must exit 0), restore the remote, ``dvflow run --push`` again
(must exit 0), and commits. After a killed rebuild it runs the same
``dvflow verify --rebuild`` again (must exit 0); after a killed checkout,
``dvflow checkout`` again (must exit 0) and ``git worktree remove`` as it
says. Counted over all trials:

- records lost: a stage or pipeline run that a faulted run reported as done
  (exit 0: the ids it printed, mapped through what ``dvflow sync`` printed),
  or a run of a recovery run, that is not on the server FINISHED with an
  intact record (``dvflow show ID`` exits 0 and says intact);
- repositories left inconsistent: after recovery, ``dvc status`` not clean,
  ``.dvflow/spool`` still there, the run lock held, a DVC output untracked
  by git and not ignored, ``dvflow verify`` of the recovery's train run not
  0, a RUNNING run on the server that is not a killed run's, a Git
  worktree left besides the project's own, or a recovery step that failed;
- files touched outside the project: a file that appeared, vanished or
  changed in a neighbour folder, in the base folder, or in TMPDIR (debris a
  killed command left there and no later command removed).

kill -9 leaves the killed run's MLflow runs RUNNING until the recovery's
``dvflow run`` ends them as KILLED; those still RUNNING after recovery are
counted as runs left RUNNING. Targets: 0 records lost, 0 repositories
inconsistent, 0 runs left RUNNING, 0 files touched outside the project, 0
errors (a traceback, or an exit code the fault does not explain). The exit
status is 1 when one is missed.

Usage: python bench/bench_faults.py [--trials 64] [--seed 0] [--faults kill9 server ...]
"""

from __future__ import annotations

import argparse
import contextlib
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
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from _common import BIN, isolated_env
from _faults_kit import (
    Disk,
    Outcome,
    Outside,
    Store,
    Trigger,
    ids_printed,
    last_line,
    lock_held,
    stage_at,
    sync_mapping,
    tags,
    wait_for_group,
)
from _servers import MlflowServer, postgres_mlflow

DVFLOW, DVC = str(BIN / "dvflow"), str(BIN / "dvc")
# The commands killed by the kill9-* faults, after a run that prepares them.
COMMANDS = {"kill9-sync": "sync", "kill9-rebuild": "verify", "kill9-checkout": "checkout"}
FAULTS = ("kill9", "server", "remote", "diskfull", *COMMANDS, "none")
# Exit codes each fault explains; a kill that comes after the command ended leaves 0.
# A full disk stops a stage (6), DVC (3), the store (4) or the machine (7).
EXPECTED_EXITS = {
    "kill9": {-9, 0},
    "server": {0},
    "remote": {3, 0},
    "diskfull": {0, 3, 4, 6, 7},
    **{kind: {-9, 0} for kind in COMMANDS},
    "none": {0},
}
EXPERIMENT = "faults"
# The stages' outputs that DVC caches, so git must ignore them. metrics.json is
# ``cache: false``: git tracks it (committed with the first run's results).
CACHED_OUTPUTS = ("clean.txt", "model/")
# A traceback through dvflow's own code (a stage script's traceback is its stderr).
DVFLOW_TRACEBACK = re.compile(r'^\s+File "[^"]*/dvflow/(\w+/)?_\w+\.py"', re.MULTILINE)

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
    outside: list[str] = field(default_factory=list)  # files touched outside the project
    target: str = ""  # the train run a killed rebuild or checkout works on
    recovery_seconds: float = 0.0


class Bench:
    """The project, its remote and server, and the commands a user would type."""

    def __init__(
        self, base: Path, server: MlflowServer, disk: Disk | None, log: Path | None = None
    ) -> None:
        self.base, self.server, self.disk, self.log = base, server, disk, log
        home = disk.folder if disk is not None and disk.mounted else base
        self.project, self.remote = home / "project", home / "remote"
        self.store = Store(server.url)
        inside = {"project", "remote", "disk", "server", "home", "faulted.out", "faulted.err"}
        self.outside = Outside(base, inside)
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVFLOW_"))}
        self.env = clean | isolated_env(base / "home") | {"TMPDIR": str(self.outside.tmp)}
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
        self.outside.snapshot()
        before = set(self.store.runs())
        if trial.fault in COMMANDS:
            prepared, faulted, killed = self.command_fault(trial)
            reported = ids_printed(prepared.out) if prepared.code == 0 else []
        else:
            prepared = None
            faulted, killed = self.faulted(["run", "--push"], trial)
            reported = [] if faulted.code != 0 else ids_printed(faulted.out)
        clock = time.monotonic()
        synced, recovery, extra = self.recover(trial, prepared, faulted)
        trial.recovery_seconds = time.monotonic() - clock
        steps = [("prepared run", prepared), ("faulted", faulted), ("sync", synced)]
        for name, done in [*steps, ("recovery", recovery), *extra]:
            if done is None:
                continue
            self.keep(trial, name, done)
            if DVFLOW_TRACEBACK.search(done.err):
                trial.errors.append(f"{name}: a traceback from dvflow on stderr")
        self.check_exit(trial, faulted)
        # A killed sync may have finished and printed its ids before the kill
        # landed: then the recovery's sync has nothing left to map.
        killed_sync = sync_mapping(faulted.out) if trial.fault == "kill9-sync" else {}
        mapping = killed_sync | sync_mapping(synced.out)
        completed = [mapping.get(run_id, run_id) for run_id in reported]
        recovered = ids_printed(recovery.out) if recovery.code == 0 else []
        self.check_records(trial, completed + recovered)
        self.check_repository(trial, recovery)
        self.check_open_runs(trial, before, set(completed + recovered), killed)
        trial.outside = self.outside.changes()
        self.commit(f"trial {trial.number}: results")

    def command_fault(self, trial: Trial) -> tuple[Outcome, Outcome, bool]:
        """The run that prepares a killed command, then that command and its kill."""
        if trial.fault == "kill9-sync":
            self.server.stop()  # the run spools; the killed sync uploads it
            prepared = self.dvflow("run", "--push")
            self.server.start()
            if "local spool" not in prepared.err:
                trial.errors.append("the server stopped but the run did not say it spooled")
            args = ["sync"]
        else:
            prepared = self.dvflow("run", "--push")
            args = [COMMANDS[trial.fault], *self.rebuild_args(trial, prepared)]
        if prepared.code != 0:
            detail = last_line(prepared.err)
            trial.errors.append(f"the preparing run exited {prepared.code}: {detail}")
        faulted, killed = self.faulted(args, trial)
        return prepared, faulted, killed

    def rebuild_args(self, trial: Trial, prepared: Outcome) -> list[str]:
        train = re.search(r"^  train\s+\S+\s+run ([0-9a-f]{32})", prepared.out, re.MULTILINE)
        trial.target = train[1] if train else "no-train-run"
        return ["--rebuild", trial.target] if trial.fault == "kill9-rebuild" else [trial.target]

    def keep(self, trial: Trial, name: str, done: Outcome) -> None:
        if self.log is None:
            return
        self.log.mkdir(parents=True, exist_ok=True)
        text = f"exit {done.code}\n--- stdout\n{done.out}\n--- stderr\n{done.err}"
        path = self.log / f"trial{trial.number:02}-{trial.fault}-{name.replace(' ', '-')}.txt"
        path.write_text(text)

    def faulted(self, args: list[str], trial: Trial) -> tuple[Outcome, bool]:
        """Run ``dvflow ARGS`` and inject the fault; whether SIGKILL ended it."""
        out_path, err_path = self.base / "faulted.out", self.base / "faulted.err"
        with out_path.open("w") as out, err_path.open("w") as err:
            proc = subprocess.Popen(
                [DVFLOW, *args],
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
            in_run = args[0] == "run"
            trial.during = stage_at(outcome.err, trial.fault) if in_run else f"in dvflow {args[0]}"
        killed = trial.fault.startswith("kill9") and code == -signal.SIGKILL
        if killed:
            trial.orphans = wait_for_group(proc.pid)
        return outcome, killed

    def inject(self, fault: str, proc: subprocess.Popen[bytes]) -> None:
        if fault.startswith("kill9"):
            proc.send_signal(signal.SIGKILL)
        elif fault == "diskfull" and self.disk is not None:
            self.disk.fill()
        elif fault == "server":
            self.server.stop()
        elif fault == "remote":
            self.remote.rename(self.remote.with_name("remote.away"))
            self.remote.write_text("not a folder: the remote is broken\n")

    def recover(
        self, trial: Trial, prepared: Outcome | None, faulted: Outcome
    ) -> tuple[Outcome, Outcome, list[tuple[str, Outcome]]]:
        """Free the disk, restart the server, sync, restore the remote, run again.

        After a killed rebuild or checkout, that command again (and the
        worktree removal a checkout prints, also that of a checkout that
        ended before its kill). Returns those extra steps too.
        """
        steps: list[tuple[str, Outcome]] = []
        if trial.fault == "kill9-checkout":
            steps += self.remove_checkout(faulted)
        if self.disk is not None:
            self.disk.free()
        if not self.server.running:
            self.server.start()
        synced = self.dvflow("sync")
        away = self.remote.with_name("remote.away")
        if away.exists():
            self.remote.unlink()
            away.rename(self.remote)
        recovery = self.dvflow("run", "--push")
        steps += [("dvflow sync", synced), ("recovery dvflow run --push", recovery)]
        if trial.fault in {"kill9-rebuild", "kill9-checkout"} and prepared is not None:
            again = self.dvflow(COMMANDS[trial.fault], *self.rebuild_args(trial, prepared))
            steps.append((f"dvflow {COMMANDS[trial.fault]} again", again))
            steps += self.remove_checkout(again)
        for name, done in steps:
            if done.code != 0:
                trial.inconsistent.append(f"{name} exited {done.code}: {last_line(done.err)}")
        return synced, recovery, [s for s in steps if s[1] is not synced and s[1] is not recovery]

    def remove_checkout(self, done: Outcome) -> list[tuple[str, Outcome]]:
        """``git worktree remove``, as a checkout that ended prints it; none if it printed none."""
        folder = re.search(r"^remove it:\s+(git worktree remove .*)$", done.out, re.MULTILINE)
        if not folder:
            return []
        return [("git worktree remove", self.command(*folder[1].split()))]

    # -- checks ---------------------------------------------------------------

    def check_exit(self, trial: Trial, faulted: Outcome) -> None:
        trial.exit_code = faulted.code
        if faulted.code not in EXPECTED_EXITS[trial.fault]:
            trial.errors.append(f"faulted run exited {faulted.code}: {last_line(faulted.err)}")
        elif faulted.code == 3 and trial.fault == "remote" and "could not push" not in faulted.err:
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
        worktrees = self.must("git", "worktree", "list", "--porcelain").out
        for line in worktrees.splitlines()[1:]:
            if line.startswith("worktree "):
                problems.append(f"a Git worktree is left: {line[9:]}")
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


def plan(trials: int, faults: list[str], rng: random.Random) -> list[Trial]:
    """Every fault equally often (shuffled), each at a random moment."""
    kinds = (faults * math.ceil(trials / len(faults)))[:trials]
    rng.shuffle(kinds)
    return [Trial(i + 1, kind, *moment(kind, rng)) for i, kind in enumerate(kinds)]


# When a SIGKILL comes, in seconds after the command started.
KILL_WINDOWS = {
    "kill9": (0.3, 5.0),
    "none": (0.3, 5.0),
    "kill9-sync": (0.2, 3.0),
    "kill9-rebuild": (0.3, 8.0),
    "kill9-checkout": (0.2, 4.0),
}


def moment(fault: str, rng: random.Random) -> tuple[str, float]:
    if fault in KILL_WINDOWS:
        return "start", round(rng.uniform(*KILL_WINDOWS[fault]), 2)
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
        f"trial {trial.number:>2}/{total} {trial.fault:<14} {when:<38} "
        f"exit {trial.exit_code!s:>3}  records {trial.records}, lost {len(trial.lost)}, "
        f"{state}, left RUNNING {trial.left_open}, outside {len(trial.outside)}, "
        f"recovery {trial.recovery_seconds:.1f}s",
        flush=True,
    )
    notes = [f"LOST: {x}" for x in trial.lost] + [f"INCONSISTENT: {x}" for x in trial.inconsistent]
    notes += [f"OUTSIDE: {x}" for x in trial.outside]
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
        f"{'fault':<15}{'trials':>7}{'landed':>7}  {'faulted exits':<16}{'records':>8}"
        f"{'lost':>6}{'inconsistent':>13}{'errors':>7}{'RUNNING':>8}{'outside':>8}"
        f"{'recovery s':>17}"
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
            f"{kind:<15}{len(group):>7}{sum(t.landed for t in group):>7}  {seen:<16}"
            f"{sum(t.records for t in group):>8}{sum(len(t.lost) for t in group):>6}"
            f"{sum(bool(t.inconsistent) for t in group):>13}"
            f"{sum(bool(t.errors) for t in group):>7}"
            f"{sum(t.left_open for t in group):>8}{sum(len(t.outside) for t in group):>8}"
            f"{timing:>17}"
        )
    totals = {
        "records lost": sum(len(t.lost) for t in trials),
        "repositories left inconsistent": sum(bool(t.inconsistent) for t in trials),
        "runs left RUNNING": sum(t.left_open for t in trials),
        "files touched outside": sum(len(t.outside) for t in trials),
        "trials with errors": sum(bool(t.errors) for t in trials),
    }
    print()
    for label, value in totals.items():
        print(f"{label:<32}{value:>4}   target 0   {'met' if value == 0 else 'MISSED'}")
    injected = sum(t.fault != "none" for t in trials)
    landed = sum(t.landed for t in trials)
    print(f"{'faults injected':<32}{injected:>4}   ({landed} landed mid-command)")
    return not any(totals.values())


@contextlib.contextmanager
def workspace() -> Iterator[tuple[Path, Disk]]:
    base = Path(tempfile.mkdtemp(prefix="dvflow-bench-faults-"))
    disk = Disk(base / "disk")
    try:
        yield base, disk
    finally:
        disk.unmount()
        shutil.rmtree(base, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--faults", nargs="+", choices=FAULTS, default=list(FAULTS))
    parser.add_argument("--log", type=Path, help="keep every command's output of each trial here")
    args = parser.parse_args()
    started = time.monotonic()
    with workspace() as (base, disk), postgres_mlflow(base / "server") as server:
        if "diskfull" in args.faults and not disk.mounted:
            print(f"no tmpfs ({disk.why}): the diskfull fault is left out", flush=True)
            args.faults.remove("diskfull")
        trials = plan(args.trials, args.faults, random.Random(args.seed))  # noqa: S311 - repeatable, not secret
        bench = Bench(base, server, disk if disk.mounted else None, args.log)
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
