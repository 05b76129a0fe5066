"""DVC in-process: the one place dvflow imports DVC and translates its errors.

``reproduce`` drives DVC's own ``repro`` (same change detection, same
run-cache, same ``dvc.lock`` writing) and calls ``around_stage`` for each
stage, so dvflow can open an MLflow run before the command starts and
hand it the run id through DVC's ``run_env``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dvflow.core._capture import logger_level
from dvflow.core._exceptions import (
    DvcError,
    DvflowError,
    InvalidFileError,
    ProjectError,
    RemoteError,
)
from dvflow.core._printable import escape_logs

from ._remote import (
    check_bucket,
    classify,
    describe,
    quiet_clients,
    raise_if_unanswered,
    remote_errors,
    remote_listing,
)

if TYPE_CHECKING:
    from dvflow.core._dvcfiles import CloudVersions

    from ._repro import ReproFlags

_POINTER_FILES = (":(glob)**/dvc.lock", ":(glob)**/*.dvc")


@dataclass(frozen=True)
class StageInfo:
    """What dvflow needs to know about one planned stage."""

    name: str
    cmd: str
    dvcfile: str
    lock_key: str
    wdir: str
    outs: tuple[str, ...]
    cached_outs: tuple[str, ...]
    metrics: tuple[str, ...]
    plots: tuple[str, ...]
    deps: tuple[str, ...]


@contextlib.contextmanager
def dvc_errors() -> Iterator[None]:
    """Translate DvcException (and its causes) into DvflowErrors."""
    from dvc.exceptions import DvcException, NoOutputOrStageError, NotDvcRepoError
    from dvc.exceptions import StageNotFoundError as MissingStageError
    from dvc.stage.exceptions import StageNotFound

    try:
        with quiet_clients():
            yield
    except DvflowError:
        raise
    except (StageNotFound, MissingStageError, NoOutputOrStageError) as exc:
        raise DvcError(str(exc), hint="List the pipeline's stages with 'dvc stage list'.") from exc
    except NotDvcRepoError as exc:
        raise ProjectError(
            "this git repository is not a DVC project",
            hint="Run 'dvflow init' to set up DVC and MLflow here.",
        ) from exc
    except DvcException as exc:
        cause = exc.__cause__
        if isinstance(cause, DvflowError):
            raise cause from exc
        if cause is not None and classify(cause) != "error":  # e.g. a pull without credentials
            raise RemoteError(None, classify(cause), describe(cause)) from exc
        raise DvcError(str(cause or exc)) from exc
    except Exception as exc:
        # DVC lets its remote's client errors through unwrapped (repro --pull,
        # fetching the run-cache): they are the remote's problem, not a bug.
        if classify(exc) == "error":
            raise
        raise RemoteError(None, classify(exc), describe(exc)) from exc


@contextlib.contextmanager
def quiet_dvc() -> Iterator[None]:
    """Hide DVC's INFO chatter ("You can now commit...") for set-up calls."""
    with logger_level("dvc", logging.WARNING):
        yield


@contextlib.contextmanager
def in_repo(root: Path) -> Iterator[None]:
    """DVC resolves targets against the working directory, as its CLI does."""
    with contextlib.chdir(root), dvc_errors():
        yield


def _rel(root: Path, path: str) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


class DvcProject:
    """An open DVC repository."""

    def __init__(self, root: Path) -> None:
        from dvc.repo import Repo

        self.root = root
        self._plans: dict[tuple[Any, ...], list[Any]] = {}
        escape_logs("dvc", "dvc_objects", "dvc_data")  # names from dvc.yaml, printed
        with in_repo(root):
            self.repo = Repo(str(root))
        # dvflow reports what happened itself; DVC's "git add ..." advice is noise here.
        self.repo.scm_context.quiet = True
        # Stages are named from the git root: a 'dvc init --subdir' project's
        # stages are 'sub/dvc.yaml:name', as lineage reads them from history.
        top = getattr(self.repo.scm, "root_dir", None) or root
        self.prefix = _rel(Path(os.path.realpath(top)), os.path.realpath(root))  # "." at the top

    def close(self) -> None:
        self.repo.close()

    def plan(
        self,
        targets: Sequence[str],
        *,
        all_pipelines: bool = False,
        flags: ReproFlags | None = None,
    ) -> list[Any]:
        """Stages ``dvc repro TARGETS`` (``-P``, ``-s``, ``--downstream``) would visit, in order.

        Asked twice by one run (is it a no-op? then what to record): the
        second answer is the first one's, the pipeline files unchanged.
        """
        key = (tuple(targets), all_pipelines, flags)
        if key not in self._plans:
            self._plans[key] = self._plan(targets, all_pipelines=all_pipelines, flags=flags)
        return list(self._plans[key])

    def _plan(
        self, targets: Sequence[str], *, all_pipelines: bool, flags: ReproFlags | None
    ) -> list[Any]:
        from dvc.repo.reproduce import collect_stages, get_active_graph, plan_repro

        single, downstream = (flags.single_item, flags.downstream) if flags else (False, False)
        with in_repo(self.root):
            stages = (
                [] if all_pipelines else collect_stages(self.repo, list(targets) or ["dvc.yaml"])
            )
            if single and not all_pipelines:
                return stages
            graph = get_active_graph(self.repo.index.graph)
            return list(plan_repro(graph, stages, downstream=downstream and not all_pipelines))

    def first_changed(self, stages: Sequence[Any]) -> Any | None:
        """The first of ``stages`` that ``dvc repro`` would run or restore, or None.

        DVC's own test (``Stage.changed``: its command, dependencies and
        outputs against dvc.lock), stopping at the first stage that changed.
        None means a repro of these stages would do nothing.
        """
        with dvc_errors(), in_repo(self.root), quiet_dvc(), self.repo.lock:
            for stage in stages:
                if stage.changed():
                    return stage
        return None

    def stage_name(self, stage: Any) -> str:
        """``train`` for the git root's dvc.yaml, ``sub/dvc.yaml:train`` elsewhere.

        Independent of the working directory, unlike DVC's ``addressing``.
        """
        dvcfile = _rel(self.root, stage.dvcfile.path)
        if self.prefix != ".":
            dvcfile = f"{self.prefix}/{dvcfile}"
        return stage.name if dvcfile == "dvc.yaml" else f"{dvcfile}:{stage.name}"

    def describe(self, stage: Any) -> StageInfo:
        outs = list(stage.outs)
        return StageInfo(
            name=self.stage_name(stage),
            cmd=" && ".join(stage.cmd) if isinstance(stage.cmd, list) else str(stage.cmd),
            dvcfile=_rel(self.root, stage.dvcfile.path),
            lock_key=stage.name,
            wdir=_rel(self.root, stage.wdir),
            outs=tuple(_rel(self.root, o.fs_path) for o in outs),
            cached_outs=tuple(_rel(self.root, o.fs_path) for o in outs if o.use_cache),
            metrics=tuple(_rel(self.root, o.fs_path) for o in outs if o.metric),
            plots=tuple(_rel(self.root, o.fs_path) for o in outs if o.plot),
            deps=tuple(_rel(self.root, d.fs_path) for d in stage.deps if _is_local(d)),
        )

    def cached_outputs(self, stages: Sequence[Any]) -> list[str]:
        """The cached outputs of these stages, ``.dvc`` data included (imports are not ours)."""
        return sorted(
            {
                _rel(self.root, out.fs_path)
                for stage in stages
                if not stage.is_import
                for out in stage.outs
                if out.use_cache
            }
        )

    @staticmethod
    def is_tracked_stage(stage: Any) -> bool:
        """Stages from dvc.yaml with a command; .dvc data sources are not runs."""
        return bool(getattr(stage, "cmd", None)) and not stage.is_data_source

    def check_params(self, stages: Sequence[Any]) -> None:
        """Every param a stage names must exist before anything runs.

        Left to DVC, a missing param fails the stage after its outputs were
        already removed from the work tree.
        """
        from dvc.dependency.param import ParamsDependency

        produced = {o for stage in stages for o in self.describe(stage).outs}
        for stage in stages:
            for dep in stage.deps:
                if not isinstance(dep, ParamsDependency) or not dep.params:
                    continue
                path = _rel(self.root, dep.fs_path)
                if path in produced:
                    continue  # written by an upstream stage: DVC checks it in time
                if not Path(dep.fs_path).exists():
                    raise InvalidFileError(
                        self.root / path,
                        f"stage '{self.stage_name(stage)}' reads params from it, "
                        "but it does not exist",
                    )
                with in_repo(self.root):
                    found = dep.read_params()
                missing = sorted(set(dep.params) - set(found))
                if missing:
                    raise InvalidFileError(
                        self.root / path,
                        f"stage '{self.stage_name(stage)}' uses {', '.join(missing)}, "
                        "which it does not define",
                        hint=f"Add them to {path} or remove them from the stage's params.",
                    )

    def tracked_paths(self) -> frozenset[str]:
        """Paths whose versions DVC stores in its cache: cached outputs and .dvc files."""
        with in_repo(self.root):
            outs = self.repo.index.outs
            return frozenset(_rel(self.root, out.fs_path) for out in outs if out.use_cache)

    def declared_files(self, stages: Sequence[Any], section: str) -> frozenset[str]:
        """Top-level ``metrics:`` or ``plots:`` paths of the dvc.yaml files of ``stages``.

        Templates resolved by DVC (``${dirs.eval}/metrics.json``); paths from
        the repository root, normalised.
        """
        from dvflow.core._declared import normalize
        from dvflow.core._dvcfiles import declared_paths

        files = {str(stage.dvcfile.path): stage.dvcfile for stage in stages}
        found: set[str] = set()
        for path, dvcfile in files.items():
            if not Path(path).is_file() or not hasattr(dvcfile, section):
                continue  # a .dvc file: no top level
            with dvc_errors():
                entries = getattr(dvcfile, section)
            folder = _rel(self.root, str(Path(path).parent))
            found.update(normalize(p, folder) for p in declared_paths(entries))
        return frozenset(found)

    @staticmethod
    def attempted_entry(stage: Any) -> dict[str, Any]:
        """The deps and params a stage ran with, when it failed before dvc.lock knew them."""
        from dvc.dependency.param import ParamsDependency

        deps: list[dict[str, Any]] = []
        params: dict[str, Any] = {}
        for dep in stage.deps:
            try:
                if isinstance(dep, ParamsDependency):
                    params[dep.def_path] = dep.read_params()
                    continue
                info, meta = dep.hash_info, dep.meta
                deps.append(
                    {
                        "path": dep.def_path,
                        "md5": info.value if info else None,
                        "size": getattr(meta, "size", None),
                        "nfiles": getattr(meta, "nfiles", None),
                    }
                )
            except Exception:  # noqa: S112 - a best-effort account of a failure
                continue
        return {"deps": deps, "params": params}

    def remote_config(self) -> dict[str, Any]:
        """The default remote's settings (``.dvc/config`` merged with ``--local``); {} if none."""
        with dvc_errors():
            config = self.repo.config
            name = config["core"].get("remote")
            return dict(config["remote"].get(name) or {}) if name else {}

    def remote_url(self) -> str | None:
        url = self.remote_config().get("url")
        return str(url) if url else None

    def remote_is_versioned(self) -> bool:
        """Is the default remote cloud-versioned (``version_aware`` or ``worktree``)?

        Such a remote keeps each file at its work-tree path, under the version
        id ``dvc push`` wrote into dvc.lock or the .dvc file, not at
        ``files/md5/...``: DVC's own ``status -c`` refuses it.
        """
        remote = self.remote_config()
        return bool(remote.get("version_aware") or remote.get("worktree"))

    def missing_in_remote(self, md5s: Sequence[str], jobs: int | None = None) -> list[str]:
        """The objects among ``md5s`` the default remote lacks.

        A directory counts as present only when its ``.dir`` listing and every
        file in it are. DVC checks in batches, concurrently.
        """
        if self.remote_is_versioned():
            return self._missing_in_versioned_remote(md5s, jobs)
        with dvc_errors(), in_repo(self.root), remote_errors(self.remote_url()):
            odb = self.repo.cloud.get_remote_odb(None, "status")
            wanted = set(md5s)
            for md5 in sorted(m for m in wanted if m.endswith(".dir")):
                wanted |= self._dir_files(md5, odb)
            missing = sorted(wanted - set(odb.oids_exist(sorted(wanted), jobs=jobs)))
            if missing:
                check_bucket(self.repo.cloud.get_remote(None, "status"), self.remote_url())
        return missing

    def _missing_in_versioned_remote(self, md5s: Sequence[str], jobs: int | None) -> list[str]:
        """``missing_in_remote`` for a cloud-versioned remote.

        A file is there when one of the versions DVC's pointer files (in the
        work tree or any commit) record for its md5 still exists. A directory
        has no ``.dir`` object there: it is missing when one of its files is.
        """
        versions = self.cloud_versions()
        needed: dict[str, set[str]] = {}
        for md5 in md5s:
            if md5.endswith(".dir"):
                listing = versions.dirs.get(md5) or self._listing(md5, None)
                needed[md5] = set(listing.values()) if listing else {md5}
            else:
                needed[md5] = {md5}
        files = sorted({f for group in needed.values() for f in group})
        candidates = [(md5, where) for md5 in files for where in versions.files.get(md5, ())]
        with dvc_errors(), in_repo(self.root), remote_errors(self.remote_url()):
            remote = self.repo.cloud.get_remote(None, "status")
            fs = remote.fs
            paths = [fs.version_path(fs.join(remote.path, p), v) for _, (p, v) in candidates]
            found = fs.exists(paths, batch_size=jobs) if paths else []
            if not all(found):
                check_bucket(self.repo.cloud.get_remote(None, "status"), self.remote_url())
        present = {md5 for (md5, _), ok in zip(candidates, found, strict=True) if ok}
        return sorted(md5 for md5, group in needed.items() if not group <= present)

    def cloud_versions(self) -> CloudVersions:
        """The version ids of the default remote in every dvc.lock and .dvc file.

        Read from the work tree (``dvc push`` rewrites it) and from every
        commit on every branch and tag, so older runs' data is found too.
        """
        from dvflow.core import _git, _history
        from dvflow.core._dvcfiles import CloudVersions

        with dvc_errors():
            versions = CloudVersions(str(self.repo.config["core"].get("remote") or ""))
        # HEAD too: CI checks out a detached commit that may be on no local branch.
        tips = {*_history.refs(self.root).values(), _git.head_commit(self.root)} - {None}
        changes = _history.changes(self.root, sorted(str(t) for t in tips))[1]
        blobs = _history.read_blobs(self.root, [c.blob for c in changes if c.blob])
        for change in changes:
            if change.blob in blobs:
                versions.add_document(change.path, _safe_yaml(blobs[change.blob]))
        listed = subprocess.run(
            ["git", "ls-files", "-z", "-co", "--exclude-standard", "--", *_POINTER_FILES],
            cwd=self.root,
            capture_output=True,
            check=False,
        )
        for name in filter(None, listed.stdout.decode().split("\0")):
            path = self.root / name
            if path.is_file():
                versions.add_document(name, _safe_yaml(path.read_bytes()))
        return versions

    def fetch(self, md5s: Sequence[str]) -> list[str]:
        """Pull the objects the local cache lacks from the default remote.

        A ``.dir`` listing comes first, then the files it names. Returns what
        is still missing (the remote lacks it too).
        """
        from dvc_data.hashfile.hash_info import HashInfo

        if self.remote_url() and self.remote_is_versioned():
            return self._fetch_versions(md5s)
        url = self.remote_url()
        with dvc_errors(), in_repo(self.root), quiet_dvc(), remote_errors(url):
            for _ in range(2):
                missing = self.missing_in_cache(md5s)
                if not missing or not url:
                    break
                self.repo.cloud.pull([HashInfo("md5", m) for m in missing])
            return self.missing_in_cache(md5s)

    def _fetch_versions(self, md5s: Sequence[str]) -> list[str]:
        """``fetch`` from a cloud-versioned remote, which holds no ``.dir`` objects.

        A directory's ``.dir`` object is written from the pointer files that
        list it file by file; each file comes from a version DVC recorded for
        its md5.
        """
        import json
        import tempfile

        versions = self.cloud_versions()
        odb = self.repo.cache.local
        with (
            dvc_errors(),
            in_repo(self.root),
            remote_errors(self.remote_url()),
            tempfile.TemporaryDirectory() as tmp,
        ):
            for md5 in md5s:
                listing = versions.dirs.get(md5)
                if listing and not Path(odb.oid_to_path(md5)).is_file():
                    entries = [{"md5": m, "relpath": r} for r, m in sorted(listing.items())]
                    made = Path(tmp) / md5
                    made.write_text(json.dumps(entries, sort_keys=True), encoding="utf-8")
                    odb.add(str(made), odb.fs, md5)  # the cache's own, local, file system
            remote = self.repo.cloud.get_remote(None, "fetch")
            fs = remote.fs
            for md5 in self.missing_in_cache(md5s):
                for where, version in sorted(versions.files.get(md5, ())):
                    source = fs.version_path(fs.join(remote.path, where), version)
                    try:
                        odb.add(source, fs, md5)
                    except FileNotFoundError:
                        continue
                    break
        return self.missing_in_cache(md5s)

    def object_path(self, md5: str) -> Path:
        return Path(self.repo.cache.local.oid_to_path(md5))

    def missing_in_cache(self, md5s: Sequence[str]) -> list[str]:
        """The objects among ``md5s`` the local cache lacks (directories: and their files)."""
        with dvc_errors():
            odb = self.repo.cache.local
            wanted = set(md5s)
            for md5 in sorted(m for m in wanted if m.endswith(".dir")):
                wanted |= self._dir_files(md5, odb)
            return sorted(m for m in wanted if not Path(odb.oid_to_path(m)).is_file())

    def _dir_files(self, md5: str, odb: Any) -> set[str]:
        """The md5s listed in a ``.dir`` object (none when it cannot be read)."""
        return set(self._listing(md5, odb).values())

    def listing(self, md5: str) -> dict[str, str]:
        """``{relpath: md5}`` of a ``.dir`` object, from the cache or else the default remote.

        A cloud-versioned remote holds no ``.dir`` objects: the listing comes
        from the pointer files that list the directory file by file.
        """
        with dvc_errors(), in_repo(self.root):
            local = self._listing(md5, None)
            if local or not self.remote_url():
                return local
            if self.remote_is_versioned():
                return self.cloud_versions().dirs.get(md5, {})
            with remote_errors(self.remote_url()):
                found = self._listing(md5, self.repo.cloud.get_remote_odb(None, "diff"))
                if not found:
                    check_bucket(self.repo.cloud.get_remote(None, "diff"), self.remote_url())
                return found

    def _listing(self, md5: str, odb: Any) -> dict[str, str]:
        import json

        local = Path(self.repo.cache.local.oid_to_path(md5))
        if not local.is_file():
            listing = remote_listing(odb, md5) if odb is not None else []
        else:
            try:
                listing = json.loads(local.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return {}  # the .dir object itself is then reported missing
        if not isinstance(listing, list):
            return {}
        return {
            str(e["relpath"]): str(e["md5"])
            for e in listing
            if isinstance(e, dict) and e.get("md5") and e.get("relpath")
        }

    def status(self) -> tuple[dict[str, list[str]], int]:
        """What ``dvc status`` finds changed, per stage, and how many paths are absent.

        An output or data dependency missing from the work tree or from the
        cache (not pulled, as in a fresh CI clone) is counted, not reported as
        a change: the
        question is whether dvc.lock still matches the code and params.
        """
        with dvc_errors(), in_repo(self.root), quiet_dvc():
            raw = self.repo.status()
        changed: dict[str, list[str]] = {}
        missing = 0
        for stage, items in raw.items():
            for item in items if isinstance(items, list) else [items]:
                if isinstance(item, str):
                    changed.setdefault(stage, []).append(item)
                    continue
                for kind, paths in item.items():
                    if not isinstance(paths, dict):
                        changed.setdefault(stage, []).append(kind)
                        continue
                    for path, state in paths.items():
                        if state in ("deleted", "not in cache"):
                            # Data not pulled, or present without DVC's cache (a
                            # CI checkout): says nothing about code or params.
                            missing += 1
                        elif isinstance(state, dict):  # params: {file: {key: state}}
                            changed.setdefault(stage, []).extend(
                                f"{path}:{key} {value}" for key, value in sorted(state.items())
                            )
                        else:
                            changed.setdefault(stage, []).append(f"{path} {state}")
        return changed, missing

    def remote_state(self) -> str:
        """The default remote, asked with the credentials that resolve.

        ``exists``; ``empty``: its bucket (or container) answers but holds
        nothing under the remote's path yet, as before the first ``dvc push``;
        ``missing``: the folder or bucket does not exist. No credentials,
        refused ones or an endpoint that does not answer raise a RemoteError.
        """
        from dvc_objects.fs.base import ObjectFileSystem

        with dvc_errors(), in_repo(self.root), remote_errors(self.remote_url()):
            remote = self.repo.cloud.get_remote(None, "doctor")
            fs = remote.fs
            bucket = str(remote.path).split("/", maxsplit=1)[0]
            if fs.exists(remote.path):
                return "exists"
            raise_if_unanswered(fs, remote.path)
            if isinstance(fs, ObjectFileSystem) and bucket != remote.path:
                return "empty" if fs.exists(bucket) else "missing"
            return "missing"

    def bucket_versioning(self) -> str:
        """S3 bucket versioning status of the default remote: Enabled, Suspended or ''."""
        with dvc_errors(), in_repo(self.root), remote_errors(self.remote_url()):
            remote = self.repo.cloud.get_remote(None, "doctor")
            bucket = str(remote.path).split("/")[0]
            answer = remote.fs.fs.call_s3("get_bucket_versioning", Bucket=bucket)
            return str(answer.get("Status", ""))

    def push_paths(self, paths: Sequence[str]) -> int:
        """Push these outputs to the default remote (a DvcError when it refuses)."""
        if not paths:
            return 0
        with dvc_errors(), in_repo(self.root), quiet_dvc(), remote_errors(self.remote_url()):
            return int(self.repo.push(targets=[str(self.root / p) for p in paths]) or 0)

    def push(self, *, all_commits: bool = False) -> int:
        """Push cached outputs to the default remote; returns how many objects went."""
        with dvc_errors(), in_repo(self.root), quiet_dvc(), remote_errors(self.remote_url()):
            return int(self.repo.push(all_commits=all_commits) or 0)

    def cache_dir(self) -> str | None:
        """DVC's local object folder (``.dvc/cache/files/md5``), relative when inside."""
        path = getattr(getattr(self.repo.cache, "local", None), "path", None)
        return _rel(self.root, path) if path and str(path).startswith(str(self.root)) else path

    def reproduce(
        self,
        targets: Sequence[str],
        around_stage: Callable[[Any, Callable[..., Any]], Any],
        *,
        all_pipelines: bool = False,
        flags: ReproFlags | None = None,
    ) -> None:
        """Run ``dvc repro`` in-process, wrapping each stage with ``around_stage``."""
        from dvc.repo.reproduce import _reproduce_stage

        def repro_fn(stage: Any, **kwargs: Any) -> Any:
            return around_stage(stage, lambda **extra: _reproduce_stage(stage, **kwargs, **extra))

        with in_repo(self.root):
            self.repo.reproduce(
                None if all_pipelines else list(targets) or None,
                all_pipelines=all_pipelines,
                repro_fn=repro_fn,
                **(flags.dvc_kwargs() if flags else {}),
            )


def _safe_yaml(data: bytes) -> Any:
    """A committed file's YAML, or None when it does not parse or is refused.

    History keeps broken files, and hostile ones (an alias bomb): neither
    may stop the others from being read.
    """
    from dvflow.core._yaml import load_yaml_text

    try:
        return load_yaml_text(data, "dvc file")
    except InvalidFileError:
        return None


def _is_local(dep: Any) -> bool:
    return getattr(getattr(dep, "fs", None), "protocol", "local") in ("local", "file")
