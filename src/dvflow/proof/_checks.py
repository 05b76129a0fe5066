"""The checks that prove a run's result is still reproducible, without re-running it.

``promote`` moves an alias only when they pass; ``verify`` prints them all:

- record: the stored record matches its digest (the run's tag, the version's tag);
- commit: the commit exists, and is on a remote branch or tag when the repo has a remote;
- code: the tree was clean, or its stored patch matches the record;
- data: every DVC-tracked input (and output, for verify) is in the DVC remote,
  or in the local cache when no remote is set;
- environment: Python, DVC, MLflow and packages then and now (warnings only).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dvflow.core._dvcfiles import Pointer
from dvflow.core._exceptions import DvflowError, InvalidFileError, RemoteError
from dvflow.core._record import (
    DIGEST_TAG,
    PACKAGES_ARTIFACT,
    PATCH_ARTIFACT,
    RECORD_ARTIFACT,
    ProvenanceRecord,
    parse_record,
    sha256_hex,
)

if TYPE_CHECKING:
    from dvflow.stores._tracking import Tracker

Level = Literal["pass", "warn", "fail"]


@dataclass(frozen=True)
class Check:
    """One check: ``pass``, ``warn`` or ``fail``, what was found, and how to fix it."""

    name: str
    level: Level
    detail: str
    hint: str | None = None

    @property
    def ok(self) -> bool:
        return self.level != "fail"


@dataclass
class RunChecks:
    """The checks of one stage run; ``model`` adds a registered model's object."""

    tracker: Tracker
    root: Path
    run_id: str | None
    model: Pointer | None = None
    record_sha: str | None = None
    record: ProvenanceRecord | None = None
    run: Any = None
    checks: list[Check] = field(default_factory=list)
    stage_path: str | None = None  # PATH the stages run with; None: the caller's

    def add(self, name: str, level: Level, detail: str, hint: str | None = None) -> None:
        self.checks.append(Check(name, level, detail, hint))

    def run_all(
        self, project_class: Any, *, outputs: bool = False, extended: bool = False
    ) -> list[Check]:
        """Run the checks; ``extended`` adds remote reachability and the environment."""
        if not self.run_id:
            self.add("record", "fail", "linked to no run", "Register versions from dvflow runs.")
            return self.checks
        self._record(self.run_id)
        if self.record is None:
            return self.checks
        self._commit(self.record, pushed=extended)
        self._code(self.run_id, self.record)
        self._data(project_class, self.record, outputs=outputs)
        if extended:
            self._environment(self.record)
        return self.checks

    def _record(self, run_id: str) -> None:
        self.run = self.tracker.get_run(run_id)  # an unknown run is "not found" (exit 5)
        try:
            raw = self.tracker.read_artifact(run_id, RECORD_ARTIFACT)
        except DvflowError as exc:
            self.add("record", "fail", exc.message, exc.hint)
            return
        actual = sha256_hex(raw)
        tagged = {self.run.data.tags.get(DIGEST_TAG), self.record_sha} - {None}
        if tagged != {actual}:
            self.add(
                "record",
                "fail",
                f"record of run {run_id} does not match its digest",
                "Do not trust this run; re-run the pipeline to get a sound record.",
            )
            return
        try:
            self.record = parse_record(raw)
        except InvalidFileError as exc:
            self.add("record", "fail", exc.message)
            return
        self.add("record", "pass", f"record of run {run_id} matches sha256 {actual[:12]}")

    def _commit(self, record: ProvenanceRecord, *, pushed: bool) -> None:
        commit = record.code.get("commit")
        if not commit or not _git_ok(self.root, "cat-file", "-e", f"{commit}^{{commit}}"):
            self.add(
                "commit",
                "fail",
                f"commit {commit or '(none)'} is not in this repository",
                "Fetch the branch that holds it ('git fetch --all'), or push it from "
                "the clone that made the run.",
            )
            return
        if not pushed or not _git_out(self.root, "remote").strip():
            self.add("commit", "pass", f"commit {commit[:12]} exists")
            return
        holders = _git_out(
            self.root,
            "for-each-ref",
            "--contains",
            commit,
            "--format=%(refname:short)",
            "refs/remotes",
            "refs/tags",
        ).split()
        if holders:
            self.add("commit", "pass", f"commit {commit[:12]} is on {', '.join(holders[:3])}")
        else:
            self.add(
                "commit",
                "fail",
                f"commit {commit[:12]} is on no remote branch or tag",
                "Push it ('git push'), or others cannot reproduce this run.",
            )

    def _code(self, run_id: str, record: ProvenanceRecord) -> None:
        if not record.code.get("dirty"):
            self.add("code", "pass", "the work tree was clean")
            return
        expected = record.code.get("patch_sha256")
        try:
            patch = self.tracker.read_artifact(run_id, PATCH_ARTIFACT)
        except DvflowError:
            patch = None
        if patch is None or not expected or sha256_hex(patch) != expected:
            self.add(
                "code",
                "fail",
                "dirty work tree and no intact patch stored",
                "The run's code cannot be rebuilt; commit and re-run the pipeline.",
            )
        else:
            self.add("code", "pass", "dirty work tree; its patch is stored")

    def _data(self, project_class: Any, record: ProvenanceRecord, *, outputs: bool) -> None:
        pointers = [*record.inputs, *(record.outputs if outputs else ())]
        imported = _imports_at(self.root, record.code.get("commit"))
        # 'dvc push' leaves imports to their source repository: not a gap here.
        paths = {
            p.md5: p.path for p in pointers if p.md5 and p.cache_path and p.path not in imported
        }
        if self.model is not None and self.model.md5:
            paths[self.model.md5] = self.model.path
        if not paths:
            self.add("data", "pass", "no DVC data to check")
            return
        project = project_class(self.root)
        try:
            where = "DVC remote" if project.remote_url() else "local DVC cache (no remote set)"
            missing = (
                project.missing_in_remote(sorted(paths))
                if project.remote_url()
                else project.missing_in_cache(sorted(paths))
            )
        except RemoteError as exc:  # it names the remote and what went wrong
            self.add("data", "fail", exc.message, exc.hint)
            return
        except DvflowError as exc:
            self.add("data", "fail", f"cannot check the DVC remote: {exc.message}", exc.hint)
            return
        finally:
            project.close()
        if missing:
            # Files inside a missing directory have no path of their own here.
            named = sorted({paths.get(m, "files of a directory") for m in missing})
            self.add(
                "data",
                "fail",
                f"{len(missing)} object(s) missing from the {where}: {', '.join(named)}",
                "Push them from a clone that has them: 'dvc push --all-commits' pushes "
                "the data of every commit, not only the work tree's.",
            )
        else:
            self.add("data", "pass", f"{len(paths)} DVC object(s) are in the {where}")

    def _environment(self, record: ProvenanceRecord) -> None:
        from dvflow.core._environment import StageInterpreter
        from dvflow.stores._dvcstage import command_path

        # The record describes the stages' interpreter: compare with today's.
        stage = StageInterpreter(self.stage_path or command_path()).environment()
        then, now = record.environment, stage.info
        changed = [
            f"{key} {then.get(key)} -> {now.get(key)}"
            for key in ("python", "dvc", "mlflow")
            if then.get(key) != now.get(key)
        ]
        packages = self._package_changes(stage.packages)
        if packages:
            changed.append(f"{len(packages)} package(s) changed: {', '.join(packages[:5])}")
        if changed:
            self.add(
                "env",
                "warn",
                "; ".join(changed),
                "Recreate the environment the run used (its packages are the artifact "
                f"{PACKAGES_ARTIFACT} of the pipeline run) before a rebuild.",
            )
        else:
            self.add("env", "pass", "same Python, DVC, MLflow and packages")

    def _package_changes(self, current: Sequence[str]) -> list[str]:
        parent = self.run.data.tags.get("mlflow.parentRunId") if self.run else None
        if not parent:
            return []
        try:
            listed = self.tracker.read_artifact(parent, PACKAGES_ARTIFACT).decode()
        except DvflowError:
            return []
        then = dict(split_requirement(line) for line in listed.splitlines() if line.strip())
        now = dict(split_requirement(line) for line in current)
        names = sorted(set(then) | set(now))
        return [
            package_change(n, then.get(n), now.get(n)) for n in names if then.get(n) != now.get(n)
        ]


def _imports_at(root: Path, commit: str | None) -> set[str]:
    """Paths that ``dvc import`` brought in, as committed at ``commit``."""
    from dvflow.core import _history

    if not commit or not _git_ok(root, "cat-file", "-e", f"{commit}^{{commit}}"):
        return set()
    files = {p: b for p, b in _history.tree_files(root, commit).items() if p.endswith(".dvc")}
    blobs = _history.read_blobs(root, files.values())
    return {
        path
        for name, blob in files.items()
        for entry in _history.parse_file(name, blobs.get(blob, b""))
        if entry.kind == "import"
        for path, _ in entry.outs
    }


def package_change(name: str, then: str | None, now: str | None) -> str:
    if then is None:
        return f"+{name} {now}"
    if now is None:
        return f"-{name} {then}"
    return f"{name} {then} -> {now}"


def split_requirement(line: str) -> tuple[str, str]:
    name, _, version = line.partition("==")
    return name.strip().lower(), version.strip()


def _git_ok(root: Path, *args: str) -> bool:
    return (
        subprocess.run(["git", *args], cwd=root, capture_output=True, check=False).returncode == 0
    )


def _git_out(root: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    return proc.stdout if proc.returncode == 0 else ""
