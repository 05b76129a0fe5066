"""Pieces of the records ``dvflow run`` writes: pointers, code info and run tags.

Every path in a record is relative to the git root. A DVC project made with
``dvc init --subdir`` lives in a subfolder of its git repository; its
``dvc.lock`` paths are relative to that folder, so they are prefixed with it
here, the one place records get their paths. Lineage reads ``dvc.lock`` files
from git history the same way (relative to their folder), so both agree.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dvflow.core._dvcfiles import Pointer, pointer_from_entry
from dvflow.core._exceptions import StoreEnvironmentError, TrackingError
from dvflow.core._mlnames import shown
from dvflow.stores._dvc import DvcProject

if TYPE_CHECKING:
    from dvflow.core._declared import MetricPoint
    from dvflow.stores._tracking import RunWriter
from dvflow.core._git import CodeState
from dvflow.core._record import PATCH_ARTIFACT, CodeInfo, sha256_hex
from dvflow.core._redact import Redactor


class PointerReader:
    """Pointers of ``dvc.lock`` entries, in the record's spelling."""

    def __init__(self, project: DvcProject, redactor: Redactor, prefix: str) -> None:
        self.prefix = prefix  # the DVC project's folder in the git repository, or ""
        self.tracked = project.tracked_paths()
        # A cloud-versioned remote keeps files at their own paths under version
        # ids, not at files/md5/...
        self.versioned = project.remote_is_versioned()
        url = project.remote_url()
        self.remote = redactor.redact(url) if url else None
        cache = project.cache_dir()
        self.cache_dir = self.in_repo(cache) if cache and not posixpath.isabs(cache) else cache

    def in_repo(self, path: str) -> str:
        """``path`` relative to the DVC project, made relative to the git root.

        A URL or an absolute path (an external dependency) stays as it is; a
        path leaving the repository keeps its leading ``..``.
        """
        if not self.prefix or "://" in path or posixpath.isabs(path):
            return path
        return posixpath.normpath(posixpath.join(self.prefix, path))

    @staticmethod
    def external(path: str) -> bool:
        """Is ``path`` (as ``in_repo`` spells it) outside the git repository?"""
        return "://" in path or posixpath.isabs(path) or path.split("/", 1)[0] == ".."

    def pointers(self, entries: Any, wdir: str) -> list[Pointer]:
        if not isinstance(entries, list):
            return []
        pointers = []
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            pointer = pointer_from_entry(entry, wdir=wdir)
            if self._in_dvc(pointer.path):
                pointer = pointer_from_entry(
                    entry,
                    wdir=wdir,
                    cache_dir=self.cache_dir,
                    remote_url=self.remote,
                    versioned=self.versioned,
                )
            if self.prefix:
                pointer = _moved(pointer, self.in_repo(pointer.path))
            pointers.append(pointer)
        return pointers

    def local(self, pointers: list[Pointer]) -> list[Pointer]:
        """The same pointers with paths relative to the DVC project, as DVC takes them."""
        cut = len(self.prefix) + 1 if self.prefix else 0
        return [_moved(p, p.path[cut:]) for p in pointers]

    def _in_dvc(self, path: str) -> bool:
        """Is ``path`` stored by DVC (an output or .dvc-tracked), not code in git?"""
        return any(path == t or path.startswith(t.rstrip("/") + "/") for t in self.tracked)


def _moved(pointer: Pointer, path: str) -> Pointer:
    import dataclasses

    return dataclasses.replace(pointer, path=path)


def code_info(code: CodeState, patch: bytes, redactor: Redactor, prefix: str) -> CodeInfo:
    info: CodeInfo = {
        "commit": code.commit,
        "branch": code.branch,
        "dirty": code.dirty,
        "patch_sha256": sha256_hex(patch) if patch else None,
        "patch_artifact": PATCH_ARTIFACT if patch else None,
        "repo_url": redactor.redact(code.remote_url) if code.remote_url else None,
    }
    if prefix:
        info["dvc_root"] = prefix
    return info


def run_tags(kind: str, code: CodeState, patch: bytes, redactor: Redactor) -> dict[str, str]:
    from dvflow.core._version import __version__

    tags = {
        "dvflow.kind": kind,
        "dvflow.version": __version__,
        "dvflow.git_dirty": str(code.dirty).lower(),
        "mlflow.source.name": "dvflow run",
        "mlflow.source.type": "LOCAL",
    }
    if code.commit:
        tags["dvflow.git_commit"] = tags["mlflow.source.git.commit"] = code.commit
    if code.branch:
        tags["dvflow.git_branch"] = tags["mlflow.source.git.branch"] = code.branch
    if patch:
        tags["dvflow.patch_sha256"] = sha256_hex(patch)
    return {k: redactor.redact(v) for k, v in tags.items()}


def log_points(
    store: RunWriter, run_id: str, points: Sequence[MetricPoint], notice: Callable[[str], None]
) -> None:
    """Log metric points; a metric the store refuses is named and left out, not fatal."""
    try:
        store.log_metric_points(run_id, points)
        return
    except TrackingError as exc:
        if exc.unreachable:
            raise
    for key in sorted({p.key for p in points}):
        try:
            store.log_metric_points(run_id, [p for p in points if p.key == key])
        except TrackingError as refused:
            if refused.unreachable:
                raise
            notice(
                f"metric {shown(key)} not logged: MLflow refused it ({refused.problem}); "
                "the record keeps it"
            )


def log_values(
    store: RunWriter,
    run_id: str,
    params: Mapping[str, str],
    points: Sequence[MetricPoint],
    tags: Mapping[str, str] | None = None,
    *,
    notice: Callable[[str], None],
) -> list[str]:
    """Params, metrics and tags in one request; one kind at a time when MLflow refuses one.

    Returns the params skipped because the stage's script logged another value.
    """
    try:
        if store.log_batch(run_id, params, points, tags or {}):
            return []
    except TrackingError as exc:
        if exc.unreachable or isinstance(exc, StoreEnvironmentError):
            raise
    skipped = store.log_params(run_id, params)
    log_points(store, run_id, points, notice)
    if tags:
        store.set_tags(run_id, tags)
    return skipped
