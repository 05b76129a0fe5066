"""Every error dvflow raises on purpose.

Each error carries the facts a user needs (``path``, ``run_id``, ...), builds
its message in ``__init__``, offers a ``hint`` and maps to one documented exit
code (see ``docs/cli.md``)::

    DvflowError                      exit 1
    ├── RecordTamperedError          exit 1  a record does not match its digest
    ├── UnsafeRecordError            exit 1  a record would write outside its worktree
    ├── LineageIncompleteError       exit 1  promote refused: the lineage has gaps
    ├── InvalidArgumentError         exit 2  a name or alias the registry would refuse
    ├── RebuildError                 exit 2  verify --rebuild could not re-run the stage
    ├── VerificationFailedError      exit 1  verify: a check failed or the rebuild diverged
    ├── ProjectError                 exit 3  the folder is not a usable project
    │   ├── NotAGitRepoError
    │   ├── NoPipelineError
    │   ├── InvalidFileError         broken YAML, wrong shape
    │   ├── ConfigError
    │   ├── LockedError              another dvflow run holds this work tree
    │   └── IndexFileError           the lineage index cannot be opened
    ├── GitError                     exit 3  a git command failed
    ├── DvcError                     exit 3  DVC refused (translated DvcException)
    │   └── RemoteError              the DVC remote: no credentials, refused, no answer, no bucket
    ├── TrackingError                exit 4  the MLflow store cannot be used
    │   └── StoreEnvironmentError    exit 7  (also an EnvironmentProblemError, below)
    ├── NotFoundError                exit 5  unknown run id, missing record
    │   ├── TargetNotFoundError      nothing in Git or MLflow matches a target
    │   └── ModelNotFoundError       no such registered model version or alias
    ├── StageFailedError             exit 6  a pipeline stage failed
    ├── ErasedError                  exit 9  verify: the target's data was erased (tombstoned)
    ├── ProtectedVersionsError       exit 32 erase apply would touch protected model versions
    ├── PlanStaleError               exit 30 gc/erase apply: the plan was edited, or an
    │                                        object it deletes is referenced now
    ├── ConfirmationError            exit 31 gc/erase apply: --confirm missing or not the
    │                                        plan's sha256
    ├── EnvironmentProblemError      exit 7  the machine, not the project: disk full,
    │   │                                    a file locked by another process
    │   └── StoreEnvironmentError    the store's file is a folder, not a database or
    │                                locked; a database URI without its database or
    │                                driver; no space left where the store writes
    └── InterruptedRunError          exit 130 Ctrl-C or SIGTERM

An OSError saying the disk is full, wherever it escapes from (DVC's cache,
git, the spool), is reported by the CLI as an EnvironmentProblemError (exit
7). Anything else that escapes is a bug: the CLI reports it in one line and
exits 70.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class DvflowError(Exception):
    """Root of every error dvflow raises on purpose."""

    exit_code = 1
    hint: str | None = None

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint


class RecordTamperedError(DvflowError):
    """A run's record no longer matches the sha256 tagged when it was written."""

    exit_code = 1

    def __init__(self, run_id: str, expected: str, actual: str) -> None:
        self.run_id, self.expected, self.actual = run_id, expected, actual
        super().__init__(
            f"record of run {run_id} was tampered with: its sha256 is {actual}, "
            f"the run's tag says {expected}",
            hint="Do not trust this run; re-run the pipeline to get a sound record.",
        )


class ProjectError(DvflowError):
    """The folder cannot be used as a dvflow project as it is."""

    exit_code = 3


class NoSuchFolderError(ProjectError):
    """The folder a command was pointed at does not exist."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(f"no such folder: {path}", hint="Pass -C the project's folder.")


class NotAGitRepoError(ProjectError):
    """The path is not inside a git work tree."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(
            f"{path} is not inside a git repository",
            hint="Run 'dvflow init' there first (it runs 'git init' and 'dvc init').",
        )


class NoPipelineError(ProjectError):
    """The project has no dvc.yaml."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(
            f"no dvc.yaml in {path}",
            hint="Describe your pipeline in dvc.yaml (see 'dvc stage add --help'), "
            "or try 'dvflow demo' for a working example.",
        )


class InvalidFileError(ProjectError):
    """A file dvflow reads is broken: bad YAML, wrong shape, missing values."""

    def __init__(self, path: Path | str, problem: str, hint: str | None = None) -> None:
        self.path, self.problem = Path(path), problem
        super().__init__(
            f"{path}: {problem}",
            hint=hint or f"Fix {Path(path).name} and run the command again.",
        )


class UnsafeFileError(InvalidFileError):
    """A YAML file dvflow refuses to read: too large, too deep, or an alias bomb."""


class LockedError(ProjectError):
    """Another ``dvflow run`` is running in the same work tree."""

    def __init__(self, root: Path, holder: str, hint: str | None = None) -> None:
        self.root, self.holder = root, holder
        super().__init__(
            f"{root} is locked by another dvflow run ({holder}); nothing was changed",
            hint=hint
            or "Wait for it to finish, or stop it (it ends its runs as KILLED); a run in "
            "another clone of the repository does not need this lock.",
        )


class ConfigError(ProjectError):
    """dvflow's own settings are unusable."""


class IndexFileError(ProjectError):
    """The lineage index file cannot be opened or written."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path, self.problem = path, problem
        super().__init__(
            f"lineage index {path}: {problem}",
            hint="The index is only a cache: delete that file or run "
            "'dvflow index --rebuild' to build it again from Git and MLflow.",
        )


class GitError(DvflowError):
    """A git command failed."""

    exit_code = 3

    def __init__(self, args: list[str], stderr: str) -> None:
        self.args_, self.stderr = args, stderr.strip()
        super().__init__(
            f"'git {' '.join(args)}' failed: {self.stderr or 'no message'}",
            hint="Check the repository with 'git status'.",
        )


class DvcError(DvflowError):
    """DVC refused an operation (a translated DvcException)."""

    exit_code = 3

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(f"DVC: {message}", hint=hint or "Run 'dvc status' to see what DVC sees.")


_REMOTE_PROBLEMS = {
    "no-credentials": "found no credentials",
    "refused": "refused the credentials",
    "unreachable": "does not answer",
    "missing-bucket": "has no such bucket or container",
    "error": "failed",
}
_REMOTE_HINTS = {
    "no-credentials": "Give the remote credentials: 'dvc remote modify --local NAME "
    "access_key_id ...' (or account_key, credentialpath...), or the cloud's environment "
    "variables (AWS_ACCESS_KEY_ID, GOOGLE_APPLICATION_CREDENTIALS, "
    "AZURE_STORAGE_CONNECTION_STRING).",
    "refused": "Check the keys that resolve ('.dvc/config.local', then the environment) "
    "and that they may read and write the bucket.",
    "unreachable": "Check the remote's URL and endpoint ('endpointurl'), the network and "
    "any proxy; 'dvflow doctor' checks the remote.",
    "missing-bucket": "Create the bucket or container first (DVC does not), or fix the "
    "remote's URL: 'dvc remote modify NAME url URL'.",
    "error": "Check the remote with 'dvflow doctor'.",
}


class RemoteError(DvcError):
    """The DVC remote cannot be used; ``reason`` says why (see ``_remote``)."""

    def __init__(self, url: str | None, reason: str, detail: str) -> None:
        from ._redact import Redactor

        redact = Redactor().redact
        self.url, self.reason, self.detail = url, reason, redact(detail)
        self.problem = _REMOTE_PROBLEMS.get(reason, "failed")
        where = f"the DVC remote {redact(url)}" if url else "the DVC remote"
        DvflowError.__init__(
            self,
            f"{where} {self.problem}: {self.detail}",
            hint=_REMOTE_HINTS.get(reason, _REMOTE_HINTS["error"]),
        )


class TrackingError(DvflowError):
    """The MLflow tracking store is unreachable or refused a request."""

    exit_code = 4

    def __init__(
        self, uri: str, problem: str, hint: str | None = None, *, unreachable: bool = False
    ) -> None:
        # unreachable: the request never got an answer (network, server down),
        # as opposed to a store that answered with a refusal.
        self.uri, self.problem, self.unreachable = uri, problem, unreachable
        super().__init__(
            f"MLflow tracking store {uri}: {problem}",
            hint=hint
            or "Start the tracking server, or point dvflow at another store: --tracking-uri, "
            "DVFLOW_TRACKING_URI, MLFLOW_TRACKING_URI or 'tracking_uri' in dvflow.yaml.",
        )


class ConsumerError(DvflowError):
    """The OpenLineage consumer did not take an event (down, or it answered an error)."""

    exit_code = 8

    def __init__(self, endpoint: str, problem: str, hint: str) -> None:
        self.endpoint, self.problem = endpoint, problem
        super().__init__(f"OpenLineage consumer {endpoint}: {problem}", hint=hint)


class EnvironmentProblemError(DvflowError):
    """Something outside the project and outside dvflow stops the command (exit 7).

    A full disk, a file another process holds locked, a missing database
    driver: fixing it needs no change to the project and is not a dvflow bug.
    """

    exit_code = 7


class StoreEnvironmentError(EnvironmentProblemError, TrackingError):
    """The tracking store cannot be used for a reason of the machine it lives on.

    A TrackingError too, so code that falls back or reports on a store that
    cannot be used treats it as one; never ``unreachable``: the store answered.
    """

    exit_code = 7

    def __init__(self, uri: str, problem: str, hint: str) -> None:
        TrackingError.__init__(self, uri, problem, hint)


class NotFoundError(DvflowError):
    """Something named by the user does not exist."""

    exit_code = 5


class RunNotFoundError(NotFoundError):
    """No run with this id in the tracking store."""

    def __init__(self, run_id: str, uri: str, hint: str | None = None) -> None:
        self.run_id, self.uri = run_id, uri
        super().__init__(
            f"no run {run_id!r} in the tracking store {uri}",
            hint=hint or "List runs with 'mlflow ui', or check DVFLOW_TRACKING_URI.",
        )


class RecordNotFoundError(NotFoundError):
    """The run exists but carries no dvflow record."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(
            f"run {run_id} has no dvflow provenance record",
            hint="Only runs made by 'dvflow run' carry a record.",
        )


class TargetNotFoundError(NotFoundError):
    """A lineage target names nothing the index knows."""

    def __init__(self, target: str, hint: str | None = None) -> None:
        self.target = target
        super().__init__(
            f"nothing in Git history or the tracking store matches {target!r}",
            hint=hint
            or "Give models:/NAME/VERSION, models:/NAME@ALIAS, a run id, a path "
            "(optionally path@rev) or a DVC md5. 'dvflow index --rebuild' re-reads everything.",
        )


class ModelNotFoundError(NotFoundError):
    """No such registered model, version or alias."""

    def __init__(self, name: str, version: str | None = None, alias: str | None = None) -> None:
        self.name, self.version, self.alias = name, version, alias
        what = f"@{alias}" if alias else f"version {version}" if version else ""
        super().__init__(
            f"no registered model {name!r} {what}".rstrip(),
            hint="List models with 'mlflow ui' (Models tab) or 'dvflow register --help'.",
        )


class LineageIncompleteError(DvflowError):
    """promote refused to move an alias: some lineage checks failed.

    ``checks`` holds every check (``name``, ``ok``, ``detail``, ``hint``), passed or not.
    """

    exit_code = 1

    def __init__(
        self, name: str, version: str, failures: list[str], checks: tuple[Any, ...] = ()
    ) -> None:
        self.name, self.version, self.failures, self.checks = name, version, failures, checks
        hints = [c.hint for c in checks if not c.ok and getattr(c, "hint", None)]
        super().__init__(
            f"model {name} version {version} has an incomplete lineage: " + "; ".join(failures),
            hint=" ".join(hints)
            + (" " if hints else "")
            + "Or pass --force to promote anyway; the override is recorded on the version.",
        )


class RebuildError(DvflowError):
    """The stage could not be re-run at all: no verdict on the result (exit 2)."""

    exit_code = 2


class VerificationFailedError(DvflowError):
    """verify found a failed check, or a rebuild whose outputs diverged."""

    exit_code = 1

    def __init__(self, target: str, reasons: list[str], hints: list[str] | None = None) -> None:
        self.target, self.reasons = target, reasons
        super().__init__(
            f"{target} does not verify: " + "; ".join(reasons),
            hint=" ".join(dict.fromkeys(hints or []))
            or "A diverged rebuild means the stage is not deterministic: seed it, or accept "
            "metric differences with --rtol/--atol.",
        )


class InvalidArgumentError(DvflowError):
    """A model name or alias the registry would refuse, caught before any work."""

    exit_code = 2

    def __init__(self, what: str, value: str, rule: str, hint: str | None = None) -> None:
        self.what, self.value = what, value
        super().__init__(
            f"invalid {what} {value!r}: {rule}", hint=hint or f"Choose another {what}."
        )


class StageFailedError(DvflowError):
    """A pipeline stage failed; its run and the pipeline run ended FAILED."""

    exit_code = 6

    def __init__(self, stage: str, reason: str, run_id: str | None = None) -> None:
        self.stage, self.reason, self.run_id = stage, reason, run_id
        super().__init__(
            f"stage '{stage}' failed: {reason}",
            hint="Its stderr tail is stored as the artifact dvflow/stderr.txt of run "
            f"{run_id}; fix the stage and run 'dvflow run' again."
            if run_id
            else "Fix the stage and run 'dvflow run' again.",
        )


class InterruptedRunError(DvflowError):
    """Ctrl-C or SIGTERM stopped the pipeline; its runs ended KILLED."""

    exit_code = 130

    def __init__(
        self,
        signal_name: str,
        what: str = "the runs were marked KILLED",
        hint: str = "Run 'dvflow run' again to finish the pipeline.",
    ) -> None:
        self.signal_name = signal_name
        super().__init__(f"interrupted by {signal_name}; {what}", hint=hint)


class UnsafeRecordError(DvflowError):
    """A record, or a ``.dir`` listing or patch it leads to, would make ``checkout`` or
    ``verify --rebuild`` write outside its worktree, or names data its commit does not
    declare or a patch it does not match: refused before anything is written (exit 1)."""

    exit_code = 1

    def __init__(self, run_id: str, problem: str) -> None:
        self.run_id, self.problem = run_id, problem
        super().__init__(
            f"refusing the record of run {run_id}: {problem}",
            hint="Do not trust this run: its record, patch or data listing was altered "
            "(anyone who can write to the tracking store or the DVC remote can). Nothing was "
            "written outside the worktree; re-run the pipeline for a sound record.",
        )


class ErasedError(DvflowError):
    """verify: data the target was made from was erased for a request (a tombstone says so).

    Not missing, not corrupt: deleted on purpose, with the request's id and time.
    """

    exit_code = 9

    def __init__(self, target: str, erased: list[tuple[str, str, str]]) -> None:
        # erased: (md5, request id, time) of the tombstones the target meets
        self.target, self.erased = target, erased
        shown = ", ".join(f"{md5} (request {req}, {at})" for md5, req, at in erased[:5])
        more = f" and {len(erased) - 5} more" if len(erased) > 5 else ""
        super().__init__(
            f"{target} is erased: its data was deleted for an erasure request: {shown}{more}",
            hint="This is not a fault: the model cannot be verified or rebuilt from data that "
            "was erased on purpose. Retrain it without that data ('dvflow erase plan' listed "
            "the stages to re-run).",
        )


class ProtectedVersionsError(DvflowError):
    """erase apply would touch protected model versions that were not acknowledged."""

    exit_code = 32

    def __init__(self, versions: list[str]) -> None:
        self.versions = versions
        named = " ".join(f"--acknowledge {v}" for v in versions)
        super().__init__(
            "the erasure touches protected model version(s) not acknowledged: "
            + ", ".join(versions)
            + "; nothing was deleted",
            hint=f"Name each one to go on: {named} (they will need retraining).",
        )


class PlanStaleError(DvflowError):
    """A plan no longer holds: edited since it was written, or the keep set grew (exit 30)."""

    exit_code = 30

    def __init__(self, plan: str, problem: str, hint: str | None = None) -> None:
        self.plan, self.problem = plan, problem
        super().__init__(
            f"plan {plan} is stale: {problem}; nothing was deleted",
            hint=hint or "Make a new plan ('dvflow gc plan') and review it.",
        )


class ConfirmationError(DvflowError):
    """``--confirm`` is missing or is not the plan's own sha256 (exit 31)."""

    exit_code = 31

    def __init__(self, plan: str, given: str | None, kind: str = "gc") -> None:
        self.plan, self.given = plan, given
        what = "no --confirm given" if not given else f"--confirm {given} is not its sha256"
        super().__init__(
            f"plan {plan}: {what}; nothing was deleted",
            hint="Read the plan, then pass the plan_sha256 it prints: "
            f"'dvflow {kind} apply {plan} --confirm SHA'.",
        )
