"""``run_pipeline``: DVC's repro, with every stage recorded as an MLflow run."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dvflow.core import _git
from dvflow.core._config import STATE_DIR, Config, load_config
from dvflow.core._declared import (
    MetricPoint,
    declared_now,
    files_under,
    histories,
    metric_points,
    owned,
    read_metrics,
)
from dvflow.core._dvcfiles import (
    LOCK_FILE,
    Pointer,
    outputs_key,
    params_from_lock,
    pointer_from_entry,
    read_lock,
)
from dvflow.core._environment import INTERPRETERS_FILE, StageInterpreter
from dvflow.core._exceptions import DvflowError, InterruptedRunError, StageFailedError
from dvflow.core._mlnames import mlflow_params, renamed_notices
from dvflow.core._record import (
    DIGEST_TAG,
    PACKAGES_ARTIFACT,
    PATCH_ARTIFACT,
    RECORD_ARTIFACT,
    STDERR_ARTIFACT,
    ProvenanceRecord,
    canonical_json,
    parse_record,
    sha256_hex,
)
from dvflow.core._redact import Redactor, redactor_for
from dvflow.core._roots import preflight
from dvflow.core._scratch import sweep
from dvflow.export._emit import LiveLineage, live_lineage
from dvflow.stores._dvc import DvcProject, StageInfo
from dvflow.stores._dvcstage import StageLogWatcher as _Watcher
from dvflow.stores._dvcstage import command_path, command_status, is_command_failure
from dvflow.stores._interrupt import Interrupted, killed_by_signal, sigterm_interrupts
from dvflow.stores._leftover import end_left_open
from dvflow.stores._repro import ReproFlags
from dvflow.stores._spool import FallbackTracker
from dvflow.stores._tracking import display_uri
from dvflow.trace._reader import io_params, io_tags
from dvflow.trace._records import note_store

from ._lock import STAGE_ENV, run_lock
from ._noop import up_to_date_run
from ._push import Pusher, check_remote_for_push
from ._recording import PointerReader, code_info, log_values, run_tags
from ._results import PipelineRun, Progress, ProgressCallback, StageRun

if TYPE_CHECKING:
    from dvflow._registry import Registration


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _now_ms() -> int:
    return int(time.time() * 1000)


def run_pipeline(
    path: str | os.PathLike[str] = ".",
    targets: Sequence[str] = (),
    *,
    tracking_uri: str | None = None,
    experiment: str | None = None,
    all_pipelines: bool = False,
    push: bool | None = None,
    require_tracking: bool | None = None,
    on_progress: ProgressCallback | None = None,
    flags: ReproFlags | None = None,
    stage_path: str | None = None,
    record_noop: bool = False,
) -> PipelineRun:
    """Run the DVC pipeline at ``path`` like ``dvc repro`` and record every stage.

    ``targets`` are stage names or dvc.yaml paths, as for ``dvc repro``;
    ``all_pipelines`` runs every dvc.yaml of the repository (``dvc repro -P``).
    ``push`` (default: ``push`` in dvflow.yaml) pushes each stage's outputs
    to the DVC remote before its run is marked finished. When the tracking
    server does not answer, the run records to the local spool (``dvflow
    sync`` uploads it later) unless ``require_tracking`` (default:
    ``require_tracking`` in dvflow.yaml), which raises TrackingError instead.
    ``flags`` are ``dvc repro``'s (``dry_run`` does ``--dry``). Stage
    commands get the caller's PATH, as under ``dvc repro``, unless
    ``stage_path`` replaces it.

    When every targeted stage is up to date, nothing is recorded and MLflow
    is not opened: the result has ``noop`` set and names, per stage, the
    recorded run that made its outputs (from the lineage index).
    ``record_noop`` records such a run anyway, an ``up-to-date`` run per stage.

    Raises StageFailedError when a stage fails, InterruptedRunError on
    SIGTERM or Ctrl-C; in both cases the MLflow runs are ended as FAILED or
    KILLED and the repository is left consistent.
    """
    if flags is not None and flags.dry:
        raise ValueError("a dry run records nothing: call dry_run()")
    root, pipeline = preflight(Path(path))
    config = load_config(root, tracking_uri=tracking_uri, experiment=experiment)
    if push is not None:
        config = dataclasses.replace(config, push=push)
    if require_tracking is not None:
        config = dataclasses.replace(config, require_tracking=require_tracking)
    emit = on_progress or (lambda p: None)
    with run_lock(root):
        warn = lambda text: emit(Progress("notice", 0, 0, message=text))  # noqa: E731
        end_left_open(root, config.tracking_uri, warn)
        sweep()  # the temporary folders a killed dvflow left
        project = DvcProject(root)
        session: _Session | None = None
        try:
            if not record_noop and not (flags is not None and flags.force):
                noop = up_to_date_run(
                    root,
                    config,
                    project,
                    targets,
                    all_pipelines=all_pipelines,
                    flags=flags,
                    warn=warn,
                )
                if noop is not None:
                    return noop
            # Ask the stages' python about itself while the store opens.
            interpreter = StageInterpreter(
                stage_path or command_path(), cache=root / STATE_DIR / INTERPRETERS_FILE
            )
            tracker = FallbackTracker(
                config.tracking_uri,
                root,
                required=config.require_tracking,
                warn=warn,
            )
            if config.push or (flags is not None and flags.pull):
                check_remote_for_push(project, "push" if config.push else "pull")
            session = _Session(
                root,
                config,
                project,
                pipeline,
                emit,
                tracker=tracker,
                interpreter=interpreter,
                flags=flags or ReproFlags(),
                stage_path=stage_path,
            )
            session.lineage = live_lineage(root, config, session.redactor)
            result = session.run(targets, all_pipelines=all_pipelines)
            # Write-through: the read commands then answer from the index (trace/_records).
            note_store(root, None if tracker.spooled else tracker.server)
            if tracker.server is not None and not tracker.spooled and result.registered:
                from dvflow._registry import publish_lineage

                for warning in publish_lineage(tracker.server, root, result.registered):
                    emit(Progress("notice", 0, 0, message=warning))
                note_store(root, tracker.server)  # the descriptions moved the store again
            return result
        finally:
            if session is not None and (notice := session.close_lineage()):
                emit(Progress("notice", 0, 0, message=notice))
            project.close()
            if session is not None and session.project is not project:
                session.project.close()  # the fresh one after a lost server


class _Session:
    """The state of one ``dvflow run``."""

    def __init__(
        self,
        root: Path,
        config: Config,
        project: DvcProject,
        pipeline: Mapping[str, Any],
        emit: ProgressCallback,
        *,
        tracker: FallbackTracker,
        interpreter: StageInterpreter,
        flags: ReproFlags,
        stage_path: str | None,
    ) -> None:
        self.root, self.config, self.project, self.emit = root, config, project, emit
        self.tracker, self.interpreter, self.flags = tracker, interpreter, flags
        self.stage_path = stage_path  # None: the caller's PATH, as under dvc repro
        self.redactor: Redactor = redactor_for(root)
        self.results: list[StageRun] = []
        self.failure: tuple[str, BaseException, str | None] | None = None
        self.open_run: str | None = None  # the stage run not yet ended
        self.ignored: list[str] = []
        self.stage_io: list[tuple[list[Pointer], list[Pointer]]] = []
        self.registered: list[Registration] = []
        self.pusher = Pusher(self.redactor, emit)
        # (stage, run id) of the stage whose script lost the tracking server.
        self.lost: tuple[str, str] | None = None
        self.lineage: LiveLineage | None = None  # OpenLineage events sent as they happen
        self.published: dict[str, tuple[bytes, str]] = {}  # run id -> its record, digest

    # -- the run ------------------------------------------------------------

    def run(self, targets: Sequence[str], *, all_pipelines: bool = False) -> PipelineRun:
        planned = self.project.plan(targets, all_pipelines=all_pipelines, flags=self.flags)
        plan = [s for s in planned if self.project.is_tracked_stage(s)]
        self.infos = {self.project.stage_name(s): self.project.describe(s) for s in plan}
        self.project.check_params(plan)
        self.top_metrics = self.project.declared_files(plan, "metrics")
        self.top_plots = self.project.declared_files(plan, "plots")
        self.total = len(plan)
        self.experiment_id = self.tracker.experiment_id(
            self.config.experiment, self.config.artifact_location
        )
        self.git_root = _git.find_root(self.root)
        prefix = Path(os.path.relpath(self.root, self.git_root)).as_posix()
        self.io = PointerReader(self.project, self.redactor, "" if prefix == "." else prefix)
        deps = sorted({self.io.in_repo(d) for info in self.infos.values() for d in info.deps})
        deps = [d for d in deps if not self.io.external(d)]  # no patch of files outside
        self.code = _git.code_state(self.git_root, deps)
        self.patch = self.redactor.redact_bytes(self.code.patch) if self.code.patch else b""
        self.stage_code: dict[str, tuple[_git.CodeState, bytes]] = {}
        for notice in _git.untracked_notices(self.code):
            self.emit(Progress("notice", 0, 0, message=notice))
        self.stage_env = self.interpreter.environment()
        self.environment = self.stage_env.info
        self._create_parent()
        status = "FINISHED"
        try:
            with sigterm_interrupts():
                self._log_parent_artifacts()
                self.emit(Progress("plan", 0, self.total, stages=tuple(self.infos)))
                self._reproduce(targets, all_pipelines=all_pipelines)
        except (Interrupted, KeyboardInterrupt) as exc:
            self._ignore_outputs()
            self._end_open_run("KILLED")
            self._finish_parent("KILLED")
            name = exc.signal_name if isinstance(exc, Interrupted) else "SIGINT"
            raise InterruptedRunError(name) from None
        except BaseException:
            self._ignore_outputs()
            if self.failure is None:
                # dvflow itself failed (the store went away...): end what is open.
                self._end_open_run("FAILED")
                self._finish_parent("FAILED")
                if self.pusher.error is not None:
                    raise self.pusher.error from None
                raise
            stage, error, run_id = self.failure
            if killed_by_signal(error):
                self._finish_parent("KILLED")
                raise InterruptedRunError("SIGINT") from None
            self._finish_parent("FAILED")
            raise StageFailedError(stage, self._reason(error), run_id) from None
        self._finish_parent(status)
        return self._result(status)

    def _reproduce(self, targets: Sequence[str], *, all_pipelines: bool) -> None:
        """DVC's repro; once more, in a fresh DVC repo, when a stage lost the server.

        The retry is a new repro, as if the user ran again: stages done already
        are up to date (and not recorded twice), the stage that failed runs
        again under its run, now with the spool as its tracking store. Calling
        the failed stage again inside the first repro would reuse DVC's stale
        stage state and could restore an old output from the run-cache.
        """
        try:
            self.project.reproduce(targets, self._around_stage, **self._repro_args(all_pipelines))
        except BaseException:
            if self.lost is None:
                raise
        else:
            return
        self.project.close()
        self.project = DvcProject(self.root)
        self.project.reproduce(targets, self._around_stage, **self._repro_args(all_pipelines))

    def _create_parent(self) -> None:
        self.started, self.start_ms = _now_iso(), _now_ms()
        self.parent_id = self.tracker.create_run(
            self.experiment_id, self._run_name(), self._tags("pipeline"), None, self.start_ms
        )
        if self.lineage is not None:
            record = self._record(
                kind="pipeline", mlflow_status="RUNNING", run_id=self.parent_id, status="running"
            )
            self.lineage.started(record, self.start_ms)

    def close_lineage(self) -> str | None:
        """Let the last OpenLineage events go (a second at most); a notice of those kept."""
        return self.lineage.close() if self.lineage is not None else None

    def _repro_args(self, all_pipelines: bool) -> dict[str, Any]:
        return {"all_pipelines": all_pipelines, "flags": self.flags}

    def _reason(self, exc: BaseException) -> str:
        if is_command_failure(exc):
            status = command_status(exc)
            reason = f"its command exited with {status}" if status is not None else str(exc)
            if status == 127:
                reason += " (command not found)"
        else:
            text = str(exc).strip()
            reason = self.redactor.redact(text.splitlines()[0] if text else repr(exc))
        if self.ignored:
            reason += "; git-ignored its outputs so 'git add -A' cannot commit data: " + ", ".join(
                self.ignored
            )
        return reason

    def _result(self, status: str) -> PipelineRun:
        return PipelineRun(
            root=self.root,
            run_id=self.parent_id,
            experiment_id=self.experiment_id,
            experiment=self.config.experiment,
            tracking_uri=display_uri(self.config.tracking_uri),
            status=status,
            commit=self.code.commit,
            dirty=self.code.dirty,
            stages=tuple(self.results),
            ignored_outputs=tuple(self.ignored),
            registered=tuple(self.registered),
            spooled=self.tracker.spooled,
        )

    def _run_name(self) -> str:
        short = (self.code.commit or "no-commit")[:8]
        return f"pipeline@{short}{'+dirty' if self.code.dirty else ''}"

    # -- one stage ----------------------------------------------------------

    def _around_stage(self, stage: Any, call: Callable[..., Any]) -> Any:
        from dvflow.core._capture import StderrTail

        if not self.project.is_tracked_stage(stage):
            return call()
        name = self.project.stage_name(stage)
        if any(r.name == name for r in self.results):
            return call()  # the repro after a lost server: done and recorded already
        info = self.infos.get(name) or self.project.describe(stage)
        index = len(self.results) + 1
        if self.lost and self.lost[0] == name:
            run_id, self.lost = self.lost[1], None
        else:
            tags = self._tags("stage", info)
            tags |= {"dvflow.stage": info.name, "dvflow.status": "running"}
            start_ms = _now_ms()
            run_id = self.tracker.create_run(
                self.experiment_id, info.name, tags, self.parent_id, start_ms
            )
            if self.lineage is not None:
                record = self._record(
                    kind="stage",
                    mlflow_status="RUNNING",
                    run_id=run_id,
                    info=info,
                    status="running",
                )
                self.lineage.started(record, start_ms, (self.parent_id, self.start_ms))
        self.open_run = run_id
        if index == 1 and (notice := self.stage_env.notice()):
            self.emit(Progress("notice", 0, 0, message=notice))
        self.emit(Progress("stage-start", index, self.total, info.name, run_id=run_id))
        on_server = not self.tracker.spooled
        # As under dvc repro: the caller's PATH and environment, plus MLflow's run.
        env = self.tracker.stage_env(self.experiment_id, run_id) | {STAGE_ENV: str(self.root)}
        if self.stage_path is not None:
            env["PATH"] = self.stage_path
        watcher, tail = _Watcher(), StderrTail()
        start = time.monotonic()
        try:
            with watcher.attached(), tail:
                returned = call(run_env=env)
        except BaseException as exc:
            if on_server and self._server_went_away(exc, info.name):
                self.lost = (name, run_id)
                raise
            attempted = self.project.attempted_entry(stage)
            self._stage_failed(
                info,
                run_id,
                exc,
                stderr=tail.text,
                seconds=time.monotonic() - start,
                attempted=attempted,
            )
            raise
        status = watcher.status or ("ran" if returned else "up-to-date")
        self._stage_finished(info, run_id, status, time.monotonic() - start)
        return returned

    def _server_went_away(self, exc: BaseException, stage: str) -> bool:
        """Did the stage fail because the tracking server stopped answering under it?

        A script that logs to MLflow itself fails when the server goes away
        while it runs. Then the stage runs once more, its MLflow calls going
        to the local spool with the rest of the run.
        """
        if not is_command_failure(exc) or not self.tracker.lost_server():
            return False
        self.emit(
            Progress(
                "notice",
                0,
                0,
                message=f"stage '{stage}' failed while the tracking server stopped answering; "
                "running it again, recording to the local spool",
            )
        )
        return True

    def _stage_finished(self, info: StageInfo, run_id: str, status: str, seconds: float) -> None:
        lock = read_lock(self.root / Path(info.dvcfile).parent / LOCK_FILE)
        entry = lock.get(info.lock_key) or {}
        inputs = self.io.pointers(entry.get("deps"), info.wdir)
        outputs = self.io.pointers(entry.get("outs"), info.wdir)
        params = {k: self.redactor.redact(v) for k, v in params_from_lock(entry).items()}
        if status == "ran":  # DVCLive declares its metrics and plots during a first run
            self.top_metrics |= declared_now(self.root, info.dvcfile, "metrics")
            self.top_plots |= declared_now(self.root, info.dvcfile, "plots")
        metrics = self._metrics(info)
        outs = [e for e in entry.get("outs") or [] if isinstance(e, dict)]
        key = outputs_key([pointer_from_entry(e) for e in outs])
        producer = None
        if status != "ran" and key:
            producer = self.tracker.find_producer(self.experiment_id, info.name, key)
        # Params and metrics go with the record's tags, in one request; with
        # --push before it, so a push that fails leaves them on the run.
        values = (self._mlflow_params(info, params), self._metric_points(info, metrics))
        skipped: list[str] = []
        if self.config.push:
            skipped, values = (
                log_values(self.tracker, run_id, *values, notice=self._notice),
                ({}, []),
            )
        self._log_plots(run_id, info)
        self._log_inputs(run_id, inputs)
        if patch := self._code_for(info)[1]:
            self.tracker.log_bytes(run_id, patch, PATCH_ARTIFACT)
        record = self._record(
            kind="stage",
            mlflow_status="FINISHED",
            run_id=run_id,
            info=info,
            status=status,
            producer=producer,
            inputs=inputs,
            outputs=outputs,
            params=params,
            metrics=metrics,
        )
        tags = {"dvflow.status": status} | io_tags(inputs, outputs)
        if key:
            tags["dvflow.outputs_key"] = key
        if producer:
            tags["dvflow.produced_by"] = producer
        if self.config.push:
            self.pusher.push_outputs(self.project, info.name, self.io.local(outputs))
            self.pusher.push_inputs(self.project, self.io.local(inputs))
        digest, published, refused = self._publish(run_id, record, tags, *values)
        skipped += refused
        self.stage_io.append((inputs, outputs))
        from dvflow._registry import register_stage_models  # not on a no-op run's path

        registered = register_stage_models(
            self.tracker,
            self.git_root,
            dvcfile=self.io.in_repo(info.dvcfile),
            record=parse_record(published),
            record_sha=digest,
            stage_io=self.stage_io,
        )
        self.registered += registered
        end_ms = _now_ms()
        self.tracker.terminate(run_id, "FINISHED", end_ms)
        self.open_run = None
        if self.lineage is not None:
            models = [(r.name, r.version) for r in registered if r.created]
            self.lineage.finished(parse_record(published), digest, end_ms, models)
        result = StageRun(
            info.name, status, run_id, producer, seconds, tuple(outputs), metrics, tuple(skipped)
        )
        self.results.append(result)
        self._emit_end(info.name, status, run_id, seconds)

    def _emit_end(self, stage: str, status: str, run_id: str, seconds: float) -> None:
        self.emit(
            Progress(
                "stage-end", len(self.results), self.total, stage, status, run_id, seconds=seconds
            )
        )

    def _stage_failed(
        self,
        info: StageInfo,
        run_id: str,
        exc: BaseException,
        *,
        stderr: str,
        seconds: float,
        attempted: Mapping[str, Any],
    ) -> None:
        killed = isinstance(exc, (Interrupted, KeyboardInterrupt)) or killed_by_signal(exc)
        status, mlflow_status = ("killed", "KILLED") if killed else ("failed", "FAILED")
        self.failure = (info.name, exc, run_id)
        # Best effort: a store (or anything else) failing now must not hide the
        # stage's own error, nor leave its run open.
        with contextlib.suppress(Exception):
            if stderr:
                self.tracker.log_bytes(
                    run_id, self.redactor.redact(stderr).encode(), STDERR_ARTIFACT
                )
            inputs = self.io.pointers(attempted.get("deps"), info.wdir)
            params = {k: self.redactor.redact(v) for k, v in params_from_lock(attempted).items()}
            self._log_params(run_id, info, params)
            self._log_inputs(run_id, inputs)
            record = self._record(
                kind="stage",
                mlflow_status=mlflow_status,
                run_id=run_id,
                info=info,
                status=status,
                inputs=inputs,
                params=params,
            )
            digest, published, _ = self._publish(
                run_id, record, {"dvflow.status": status} | io_tags(inputs, [])
            )
            self.published[run_id] = (published, digest)
        self._end_open_run(mlflow_status)
        self.results.append(StageRun(info.name, status, run_id, seconds=seconds))
        self._emit_end(info.name, status, run_id, seconds)

    def _ignore_outputs(self) -> None:
        """Git-ignore every cached output in the work tree (DESIGN trap 4).

        When repro fails, DVC takes back the .gitignore entries it added during
        the run, also those of stages that succeeded and are in dvc.lock, and
        the failed stage's partial outputs were never ignored: ``git add -A``
        would then commit data.
        """
        outs = sorted({o for info in self.infos.values() for o in info.cached_outs})
        try:
            self.ignored += _git.ignore_untracked(self.root, outs)
        except Exception as exc:  # a clean-up must not hide the run's own error
            text = str(exc).strip().splitlines()
            self._notice(
                "could not git-ignore the outputs left in the work tree ("
                + self.redactor.redact(text[0] if text else repr(exc))
                + "): check 'git status' before 'git add -A'"
            )

    def _notice(self, text: str) -> None:
        self.emit(Progress("notice", 0, 0, message=text))

    # -- pieces -------------------------------------------------------------

    def _metric_files(self, info: StageInfo) -> list[str]:
        """The stage's own metrics files and the top-level ones inside its outputs."""
        return sorted(set(info.metrics) | set(owned(self.top_metrics, info.outs)))

    def _metrics(self, info: StageInfo) -> dict[str, float]:
        """The stage's metrics; with several files, keys are prefixed ``file:key``."""
        notice = lambda text: self.emit(Progress("notice", 0, 0, message=text))  # noqa: E731
        return read_metrics(self.root, self._metric_files(info), self.io.prefix, notice)

    def _plot_files(self, info: StageInfo) -> list[str]:
        """Every file of the stage's plots (a declared directory gives all its files)."""
        declared = set(info.plots) | set(owned(self.top_plots, info.outs))
        return files_under(self.root, declared)

    def _metric_points(self, info: StageInfo, metrics: Mapping[str, float]) -> list[MetricPoint]:
        """The final values, and DVCLive's step histories under the same keys."""
        now = int(time.time() * 1000)
        files = self._metric_files(info)
        history = histories(self.root, self._plot_files(info), files, now, self.io.prefix)
        for text in renamed_notices("metric", {*metrics, *(p.key for p in history)}):
            self._notice(f"stage '{info.name}': {text}")
        return list(metric_points(metrics, history, now))

    def _mlflow_params(self, info: StageInfo, params: Mapping[str, str]) -> dict[str, str]:
        """Params as MLflow takes them (the record keeps them as they are)."""
        logged, notices = mlflow_params(params)
        for text in notices:
            self._notice(f"stage '{info.name}': {text}")
        return dict(logged)

    def _log_params(self, run_id: str, info: StageInfo, params: Mapping[str, str]) -> list[str]:
        return self.tracker.log_params(run_id, self._mlflow_params(info, params))

    def _log_plots(self, run_id: str, info: StageInfo) -> None:
        for name in self._plot_files(info):
            # Named from the Git root, as records name paths (a --subdir project).
            folder = str(Path("plots") / self.io.prefix / Path(name).parent).rstrip("/.")
            self.tracker.log_file(run_id, self.root / name, folder or "plots")

    def _log_inputs(self, run_id: str, inputs: Sequence[Pointer]) -> None:
        from dvflow.stores._dataset import dataset_for

        repo = self.redactor.redact(self.code.remote_url or str(self.git_root))
        datasets = [dataset_for(p, repo, self.code.commit) for p in inputs if p.md5]
        self.tracker.log_datasets(run_id, datasets)

    def _tags(self, kind: str, info: StageInfo | None = None) -> dict[str, str]:
        return run_tags(kind, *self._code_for(info), self.redactor)

    def _code_for(self, info: StageInfo | None) -> tuple[_git.CodeState, bytes]:
        """The code and redacted patch of a stage: the untracked files it reads, no others.

        The pipeline run (``info`` None) holds every untracked file a stage reads.
        """
        if info is None:
            return self.code, self.patch
        if info.name not in self.stage_code:
            code = self.code.for_paths(self.io.in_repo(d) for d in info.deps)
            patch = self.redactor.redact_bytes(code.patch) if code.patch else b""
            self.stage_code[info.name] = (code, patch)
        return self.stage_code[info.name]

    def _record(
        self,
        *,
        kind: Literal["stage", "pipeline"],
        mlflow_status: str,
        run_id: str,
        status: str,
        info: StageInfo | None = None,
        producer: str | None = None,
        inputs: Sequence[Pointer] = (),
        outputs: Sequence[Pointer] = (),
        params: Mapping[str, str] | None = None,
        metrics: Mapping[str, float] | None = None,
    ) -> ProvenanceRecord:
        return ProvenanceRecord(
            kind=kind,
            status=mlflow_status,
            code=code_info(*self._code_for(info), self.redactor, self.io.prefix),
            stage={"name": info.name, "cmd": info.cmd, "status": status, "produced_by": producer}
            if info
            else None,
            inputs=tuple(inputs),
            outputs=tuple(outputs),
            params=dict(params or {}),
            metrics=dict(metrics or {}),
            environment=self.environment,
            mlflow={
                "tracking_uri": display_uri(self.config.tracking_uri),
                "experiment_id": self.experiment_id,
                "run_id": run_id,
                "parent_run_id": None if kind == "pipeline" else self.parent_id,
            },
            started=self.started,
            ended=_now_iso(),
            stages=tuple(
                {"name": r.name, "status": r.status, "run_id": r.run_id or ""} for r in self.results
            )
            if kind == "pipeline"
            else (),
        )

    def _publish(
        self,
        run_id: str,
        record: ProvenanceRecord,
        tags: Mapping[str, str],
        params: Mapping[str, str] | None = None,
        points: Sequence[MetricPoint] = (),
    ) -> tuple[str, bytes, list[str]]:
        """Log the redacted record and its digest; the digest is over the exact bytes.

        ``params`` and ``points`` go in the same request as the tags; returns
        the digest, the record's bytes and the params MLflow skipped.
        """
        data = canonical_json(self.redactor.redact_obj(record.to_dict()))
        self.tracker.log_bytes(run_id, data, RECORD_ARTIFACT)
        digest = sha256_hex(data)
        # The dvflow.io param pins the dvflow.io tag: params never change.
        params = {**(params or {}), **io_params(tags)}
        tags = {**tags, DIGEST_TAG: digest}
        skipped = log_values(self.tracker, run_id, params, points, tags, notice=self._notice)
        return digest, data, skipped

    def _log_parent_artifacts(self) -> None:
        if self.patch:
            self.tracker.log_bytes(self.parent_id, self.patch, PATCH_ARTIFACT)
        packages = "\n".join(self.stage_env.packages) + "\n"
        self.tracker.log_bytes(self.parent_id, packages.encode(), PACKAGES_ARTIFACT)

    def _end_open_run(self, mlflow_status: str) -> None:
        """End the stage run in flight, if any, without hiding the error at hand."""
        if self.open_run is None:
            return
        run_id, self.open_run = self.open_run, None
        end_ms = _now_ms()
        with contextlib.suppress(DvflowError):
            self.tracker.set_tags(run_id, {"dvflow.status": mlflow_status.lower()})
            self.tracker.terminate(run_id, mlflow_status, end_ms)
        if self.lineage is not None:
            if run_id in self.published:
                published, digest = self.published[run_id]
                self.lineage.finished(parse_record(published), digest, end_ms)
            else:
                self.lineage.ended_without_record(run_id, mlflow_status, end_ms)

    def _finish_parent(self, mlflow_status: str) -> None:
        # After a failure the stage's error matters more than a store error;
        # after success a store error must surface, not leave the run RUNNING.
        quiet = mlflow_status != "FINISHED"
        with contextlib.suppress(DvflowError) if quiet else contextlib.nullcontext():
            record = self._record(
                kind="pipeline",
                mlflow_status=mlflow_status,
                run_id=self.parent_id,
                status=mlflow_status.lower(),
            )
            digest, published, _ = self._publish(
                self.parent_id, record, {"dvflow.status": mlflow_status.lower()}
            )
            end_ms = _now_ms()
            self.tracker.terminate(self.parent_id, mlflow_status, end_ms)
            if self.lineage is not None:
                self.lineage.finished(parse_record(published), digest, end_ms)
