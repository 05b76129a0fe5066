"""Pushing a stage's data to the DVC remote while ``dvflow run`` records it.

Outputs are pushed before the stage's run is marked FINISHED, so a
finished run's pointers always resolve; ``dvc add``ed inputs are pushed
too, best effort.
"""

from __future__ import annotations

from collections.abc import Sequence

from dvflow.core._dvcfiles import Pointer
from dvflow.core._exceptions import DvcError, DvflowError, RemoteError
from dvflow.core._redact import Redactor, redactor_for
from dvflow.stores._dvc import DvcProject

from ._results import Progress, ProgressCallback


class Pusher:
    """Pushes through the DVC project it is given: after a lost server, the
    session repeats its repro in a fresh one, and the first one's lock is gone."""

    def __init__(self, redactor: Redactor, emit: ProgressCallback) -> None:
        self.redactor, self.emit = redactor, emit
        self.error: DvcError | None = None  # an output push that failed the run
        self.pushed: set[str] = set()  # paths pushed in this run

    def push_outputs(self, project: DvcProject, stage: str, outputs: Sequence[Pointer]) -> None:
        """Push before the run is FINISHED, so a finished run's pointers always resolve."""
        try:
            project.push_paths([p.path for p in outputs if p.cache_path])
            self.pushed.update(p.path for p in outputs)
        except Exception as exc:  # whatever the remote raised, say it plainly
            # DVC wraps what its stage callback raises; run() surfaces this one.
            fix = exc.hint if isinstance(exc, RemoteError) else None
            self.error = DvcError(
                f"could not push the outputs of stage '{stage}' to the DVC remote "
                f"({self._reason(exc)}); its run was marked FAILED",
                hint=(fix or "Check the remote with 'dvflow doctor'.")
                + " The outputs are in the local cache: push them with "
                "'dvc push' once the remote works, or run again.",
            )
            raise self.error from exc

    def push_inputs(self, project: DvcProject, inputs: Sequence[Pointer]) -> None:
        """Push the DVC-tracked inputs too (a ``dvc add``ed file), so the record resolves.

        Best effort: an input DVC cannot push (an import, say) is reported, and the
        run goes on; 'dvflow verify' names whatever the remote lacks.
        """
        paths = [p.path for p in inputs if p.cache_path and p.path not in self.pushed]
        try:
            project.push_paths(paths)
        except Exception as exc:  # whatever the remote raised
            self.emit(
                Progress(
                    "notice",
                    0,
                    0,
                    message=f"could not push the inputs {', '.join(paths)} to the DVC remote "
                    f"({self._reason(exc)}); push them with 'dvc push'",
                )
            )
        self.pushed.update(paths)

    def _reason(self, exc: Exception) -> str:
        if isinstance(exc, RemoteError):  # the sentence already names the remote
            return self.redactor.redact(f"it {exc.problem}: {exc.detail}")
        reason = exc.message if isinstance(exc, DvflowError) else str(exc)
        return self.redactor.redact(reason.removeprefix("DVC: "))


def check_remote_for_push(project: DvcProject, action: str = "push") -> None:
    """With push (or pull) on, a remote that cannot serve fails now, not after a stage."""
    url = project.remote_url()
    if url is None:
        raise DvcError(
            f"{action} is on but the project has no default DVC remote",
            hint="Add one ('dvc remote add -d storage URL'), or run with "
            + ("--no-push." if action == "push" else "no --pull."),
        )
    redact = redactor_for(project.root).redact
    try:
        state = project.remote_state()
    except RemoteError:  # it names the remote and the cause already
        raise
    except DvcError as exc:
        raise DvcError(
            f"{action} is on but the DVC remote {redact(url)} cannot be used: "
            f"{redact(exc.message)}",
            hint=exc.hint,
        ) from None
    if state == "missing" and "://" in url and not url.startswith(("http://", "https://")):
        raise DvcError(
            f"{action} is on but the DVC remote's bucket or container does not exist "
            f"({redact(url)})",
            hint="Create it first (DVC does not), or fix the URL: 'dvflow doctor' checks it.",
        )
