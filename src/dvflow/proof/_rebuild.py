"""``verify --rebuild``: re-run a recorded stage from its recorded code and data.

In a temporary Git worktree at the recorded commit (with the recorded patch
applied), the recorded inputs are fetched from the DVC remote into the
shared cache and copied in, the stage runs again with DVC's run-cache off,
and the new outputs' md5s are compared with the recorded ones. The
worktree is removed afterwards: after success, failure, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import math
import os
import posixpath
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from dvflow.core._declared import normalize, owned, read_metrics
from dvflow.core._dvcfiles import Pointer, declared_paths
from dvflow.core._exceptions import RebuildError, UnsafeRecordError
from dvflow.core._record import ProvenanceRecord
from dvflow.core._yaml import load_yaml_file
from dvflow.stores._confine import (
    check_declared,
    check_record_paths,
    checked_commit,
    checked_listing,
    checked_md5,
    clean_leftovers,
    confined,
    new_holder,
    patch_notice,
    patch_paths,
    recorded_patch,
    worktree_config,
)

if TYPE_CHECKING:
    from dvflow.stores._dvc import DvcProject
    from dvflow.stores._tracking import Tracker

Verdict = Literal["identical", "equivalent", "diverged"]


@dataclass(frozen=True)
class OutputVerdict:
    path: str
    recorded: str | None
    rebuilt: str | None
    verdict: Verdict


@dataclass(frozen=True)
class MetricDelta:
    name: str
    recorded: float
    rebuilt: float | None
    within: bool


@dataclass(frozen=True)
class Rebuild:
    """The outcome of a rebuild: one verdict per output, and the metrics compared."""

    stage: str
    verdict: Verdict
    outputs: tuple[OutputVerdict, ...]
    metrics: tuple[MetricDelta, ...] = ()
    seconds: float = 0.0
    patch_applied: bool = False
    stderr_tail: str = field(default="", repr=False)


def rebuild(
    root: Path,
    tracker: Tracker,
    project: DvcProject,
    record: ProvenanceRecord,
    *,
    rtol: float = 1e-9,
    atol: float = 0.0,
    on_step: Callable[[str], None] | None = None,
    stage_path: str | None = None,
) -> Rebuild:
    """Re-run the stage of ``record`` and judge its outputs against the recorded ones."""
    step = on_step or (lambda message: None)
    stage = record.stage["name"] if record.stage else ""
    commit = record.code.get("commit")
    if not stage or not commit:
        raise RebuildError("the record names no stage or no commit to rebuild from")
    run_id = record.mlflow["run_id"]
    checked_commit(commit, run_id)
    # Refused before anything is made: a patch that is not the one the record names.
    patch, notice = recorded_patch(tracker, record, run_id)
    clean_leftovers(root)
    start = time.monotonic()
    with _worktree(root, commit) as tree:
        check_record_paths(record, tree)
        if notice:
            step(notice)
        if patch:
            step(patch_notice(patch, patch_paths(tree, patch, run_id)))
            apply_patch(tree, patch)
        step("fetching the recorded inputs")
        # A 'dvc init --subdir' project is a folder of the worktree; DVC runs there.
        sub = str(record.code.get("dvc_root") or "")
        prepare_dvc(project.root, tree / sub, project)
        cached = [p for p in record.inputs if p.cache_path and p.md5]
        uncached = [p for p in record.inputs if not p.cache_path]
        # Only what the commit's own dvc.yaml declares for the stage is written.
        written = [*cached, *(p for p in uncached if p.md5 and not _external(p.path))]
        declared = stage_io(tree, stage, run_id, commit)
        check_declared(
            tree, run_id, stage=stage, commit=commit, pointers=written, declared=declared
        )
        materialize(project, tree, cached, run_id)
        # What came from DVC's cache is right by construction: hash only the rest.
        restore_inputs(project, root, tree, uncached, run_id)
        step(f"re-running stage {stage} (run-cache off)")
        target = stage.removeprefix(f"{sub}/") if sub else stage
        tail = _run_stage(tree / sub, target, stage_path)
        rebuilt = _outputs(tree, stage)
        metrics = _metrics(tree, stage, rebuilt)
    outputs = tuple(
        OutputVerdict(
            p.path,
            p.md5,
            rebuilt.get(p.path),
            "identical" if p.md5 and rebuilt.get(p.path) == p.md5 else "diverged",
        )
        for p in record.outputs
    )
    deltas = _compare(record.metrics, metrics, rtol, atol)
    verdict: Verdict = "identical"
    if any(o.verdict != "identical" for o in outputs):
        equivalent = bool(deltas) and all(d.within for d in deltas)
        verdict = "equivalent" if equivalent else "diverged"
        outputs = tuple(
            OutputVerdict(o.path, o.recorded, o.rebuilt, verdict) if o.verdict != "identical" else o
            for o in outputs
        )
    return Rebuild(stage, verdict, outputs, deltas, time.monotonic() - start, bool(patch), tail)


@contextmanager
def _worktree(root: Path, commit: str) -> Iterator[Path]:
    """A detached worktree at ``commit``, removed however the block ends."""
    from dvflow.stores._interrupt import sigterm_interrupts

    # Marked with this process: a later rebuild removes it if this one is killed.
    holder = new_holder(root)
    tree = holder / "tree"
    try:
        with sigterm_interrupts():
            _git(root, "worktree", "add", "--detach", "-q", str(tree), commit)
            yield tree
    finally:
        remove_worktree(root, tree)
        shutil.rmtree(holder, ignore_errors=True)


def remove_worktree(root: Path, tree: Path) -> None:
    """Drop a worktree and its folder, whatever state a failure left them in."""
    subprocess.run(
        ["git", "worktree", "remove", "--force", str(tree)],
        cwd=root,
        capture_output=True,
        check=False,
    )
    shutil.rmtree(tree, ignore_errors=True)
    subprocess.run(["git", "worktree", "prune"], cwd=root, capture_output=True, check=False)


def _git(cwd: Path, *args: str, stdin: bytes | None = None) -> None:
    proc = subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True, check=False)
    if proc.returncode != 0:
        message = proc.stderr.decode(errors="replace").strip()
        raise RebuildError(f"'git {args[0]}' failed: {message}")


def apply_patch(tree: Path, patch: bytes) -> None:
    try:
        _git(tree, "apply", "--binary", "--whitespace=nowarn", "-", stdin=patch)
    except RebuildError as exc:
        raise RebuildError(
            f"the recorded patch does not apply to the recorded commit: {exc.message}",
            hint="The record and its patch disagree; re-run the pipeline for a sound record.",
        ) from None


def prepare_dvc(root: Path, tree: Path, project: DvcProject) -> None:
    """The project's cache (no second copy) and remotes, without its credentials.

    Data is fetched through the project itself, which has them.
    """
    local = root / ".dvc" / "config.local"
    (tree / ".dvc").mkdir(exist_ok=True)
    cache = project.object_path("00" * 16).parents[3]
    (tree / ".dvc" / "config.local").write_text(worktree_config(local, cache), encoding="utf-8")


def stage_io(tree: Path, stage: str, run_id: str, commit: str) -> frozenset[str]:
    """The deps and outs the worktree's ``dvc.yaml`` declares for ``stage``, from its root."""
    from dvflow.core._exceptions import DvflowError
    from dvflow.stores._dvc import dvc_errors
    from dvflow.stores._repro import ReproFlags

    problem = "it is not defined there"
    try:
        with _stage_project(tree, stage) as (project, sub, target), dvc_errors():
            for found in project.plan([target], flags=ReproFlags(single_item=True)):
                if project.stage_name(found) == stage:
                    info = project.describe(found)
                    return frozenset(normalize(p, sub) for p in (*info.deps, *info.outs))
    except DvflowError as exc:
        problem = exc.message
    raise UnsafeRecordError(
        run_id, f"it names stage {stage!r}, which commit {commit[:12]} cannot give: {problem}"
    )


def materialize(project: DvcProject, tree: Path, inputs: list[Pointer], run_id: str) -> None:
    """Copy each pointer's object from the cache (fetched first) to its path in ``tree``.

    Every path, md5 and ``.dir`` listing is checked before anything is fetched
    or written; a listing is checked again as it is copied.
    """
    for pointer in inputs:
        confined(tree, pointer.path, run_id, "the data path")
        md5 = checked_md5(pointer.md5, run_id, f"the data path {pointer.path!r}")
        if md5.endswith(".dir"):
            listing = project.listing(md5)
            entries = [{"relpath": rel, "md5": m} for rel, m in listing.items()]
            checked_listing(entries, run_id, f"{pointer.path} (md5 {md5})")
    missing = project.fetch([p.md5 for p in inputs if p.md5])
    if missing:
        raise RebuildError(
            f"{len(missing)} recorded input object(s) are neither in the cache nor the remote",
            hint="Push them from a clone that has them ('dvc push --all-commits').",
        )
    for pointer in inputs:
        assert pointer.md5 is not None
        dest = confined(tree, pointer.path, run_id, "the data path")
        copy_object(project, pointer.md5, dest, run_id, pointer.path)


def restore_inputs(
    project: DvcProject, root: Path, tree: Path, inputs: Sequence[Pointer], run_id: str
) -> None:
    """Make every recorded input hold its recorded md5 in ``tree``, or refuse.

    The commit does not always hold the inputs a run read: a ``cache: false``
    output tracked by Git may have been rewritten by an upstream stage of
    the same run (DESIGN trap 15). Such an input is taken from DVC's cache
    or the project's work tree when either holds exactly the recorded bytes;
    otherwise re-running would judge the stage on inputs it never saw.
    """
    wrong = []
    for pointer in inputs:
        if not pointer.md5 or _external(pointer.path):
            continue
        dest = confined(tree, pointer.path, run_id, "the input")
        md5 = checked_md5(pointer.md5, run_id, f"the input {pointer.path!r}")
        if _matches(dest, md5):
            continue
        if not _restore(project, root / pointer.path, dest, md5, run_id=run_id, name=pointer.path):
            wrong.append(pointer)
    if wrong:
        named = ", ".join(f"{p.path} (md5 {p.md5})" for p in wrong)
        raise RebuildError(
            f"cannot restore the input(s) the run read: {named}; the recorded commit, "
            "DVC's cache and the work tree hold other content",
            hint="Rebuild a run whose inputs are committed or cached "
            "(for a 'cache: false' output, commit it after the run that wrote it).",
        )


def _external(path: str) -> bool:
    """Is ``path`` an external dependency (outside the repository, or a URL) as DVC writes it?

    Such a dependency is read where it is, never written. Anything else is
    written in the worktree, and must stay inside it (``confined``).
    """
    return "://" in path or posixpath.isabs(path) or path == ".." or path.startswith("../")


def _restore(
    project: DvcProject, local: Path, dest: Path, md5: str, *, run_id: str, name: str
) -> bool:
    """Copy ``md5`` to ``dest`` from DVC's cache or the project's work tree, if either has it."""
    if not project.missing_in_cache([md5]):
        copy_object(project, md5, dest, run_id, name)
    elif _matches(local, md5):
        _replace(dest)
        if local.is_dir():
            shutil.copytree(local, dest, symlinks=False)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local, dest)
    return _matches(dest, md5)


def _matches(path: Path, md5: str) -> bool:
    """Does ``path`` hold ``md5``, as DVC hashes it (DVC 3, or DVC 2's text-normalised md5)?"""
    # The legacy hash only when the plain one differs: large data is read once.
    return md5 == tree_md5(path) or md5 == tree_md5(path, legacy=True)


def tree_md5(path: Path, *, legacy: bool = False) -> str | None:
    """DVC's md5 of a file (its bytes), or of a directory (``.dir``, from its files' md5s).

    ``legacy``: DVC 2 hashed text files with CRLF line ends turned into LF.
    """
    from dvflow.core._dvcfiles import dir_md5

    if path.is_file():
        return _file_md5(path, legacy)
    if not path.is_dir():
        return None
    files = [
        {"relpath": f.relative_to(path).as_posix(), "md5": _file_md5(f, legacy)}
        for f in sorted(path.rglob("*"))
        if f.is_file()
    ]
    return dir_md5(files)


def _file_md5(path: Path, legacy: bool) -> str:
    import hashlib

    digest = hashlib.md5(usedforsecurity=False)
    if legacy:
        data = path.read_bytes()
        digest.update(data if b"\0" in data[:8000] else data.replace(b"\r\n", b"\n"))
        return digest.hexdigest()
    with path.open("rb") as handle:  # in chunks: inputs can be large
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _replace(dest: Path) -> None:
    if dest.is_dir() and not dest.is_symlink():
        shutil.rmtree(dest)
    elif dest.exists() or dest.is_symlink():
        dest.unlink()


def copy_object(project: DvcProject, md5: str, dest: Path, run_id: str, name: str) -> None:
    """Write the file (or directory, from its ``.dir`` listing) ``md5`` names at ``dest``.

    ``dest`` is a confined path; ``name`` names it in errors. A listing is
    checked whole before anything is removed or written.
    """
    import json

    checked_md5(md5, run_id, f"the data path {name!r}")
    source = project.object_path(md5)
    if not md5.endswith(".dir"):
        _replace(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
        return
    try:
        entries = json.loads(source.read_text(encoding="utf-8"))
    except ValueError:
        entries = None
    files = checked_listing(entries, run_id, f"{name} (md5 {md5})")
    _replace(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for relpath, file_md5 in files:
        target = confined(dest, relpath, run_id, f"the file of {name}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(project.object_path(file_md5), target)
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            raise UnsafeRecordError(
                run_id, f"the .dir listing of {name} names {relpath!r} as a file and a folder"
            ) from None


def _run_stage(tree: Path, stage: str, stage_path: str | None = None) -> str:
    env = {
        # The caller's PATH, as 'dvflow run' and 'dvc repro' use it: the stage's
        # interpreter is the user's (its packages), not dvflow's.
        **os.environ,
        **({"PATH": stage_path} if stage_path is not None else {}),
        # A script that logs to MLflow logs into a throwaway store, not the real one.
        "MLFLOW_TRACKING_URI": (tree.parent / "mlruns").as_uri(),
        "MLFLOW_ALLOW_FILE_STORE": "true",
    }
    for key in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        env.pop(key, None)
    proc = subprocess.run(
        # --no-commit: a rebuild's throwaway outputs must not reach the project's
        # cache, nor its run-cache, where a later 'dvc repro' would restore them.
        [
            sys.executable,
            "-m",
            "dvc",
            "repro",
            "--single-item",
            "--force",
            "--no-run-cache",
            "--no-commit",
            stage,
        ],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-20:])
    if proc.returncode != 0:
        raise RebuildError(
            f"stage {stage} failed when re-run (exit {proc.returncode}):\n{tail}",
            hint="Fix what the output says (a missing tool, package or file), then retry.",
        )
    return tail


def _lock_entry(tree: Path, stage: str) -> Mapping[str, object]:
    dvcfile, _, name = stage.rpartition(":")
    folder = posixpath.dirname(dvcfile) if dvcfile else ""
    lock = load_yaml_file(tree / folder / "dvc.lock") or {}
    stages = lock.get("stages") if isinstance(lock, dict) else None
    entry = stages.get(name) if isinstance(stages, dict) else None
    return entry if isinstance(entry, dict) else {}


def stage_body(tree: Path, stage: str) -> Mapping[str, object]:
    """The ``dvc.yaml`` definition of dvflow's stage name (``train``, ``train@0``,
    ``sub/dvc.yaml:train``); for ``foreach``/``matrix`` items, their template."""
    dvcfile, _, name = stage.rpartition(":")
    path = tree / (dvcfile or "dvc.yaml")
    pipeline = load_yaml_file(path) if path.is_file() else None
    stages = pipeline.get("stages") if isinstance(pipeline, dict) else None
    body = stages.get(name.partition("@")[0]) if isinstance(stages, dict) else None
    if isinstance(body, dict) and "foreach" in body and isinstance(body.get("do"), dict):
        body = body["do"]
    return body if isinstance(body, dict) else {}


def stage_wdir(tree: Path, stage: str) -> str:
    """The folder, from the repository root, that a stage's paths are relative to.

    Its ``dvc.yaml``'s folder joined with its ``wdir`` (DESIGN trap 12); ``""``
    for the repository root.
    """
    from dvflow.core._dvcfiles import repo_path

    folder = posixpath.dirname(stage.rpartition(":")[0])
    wdir = str(stage_body(tree, stage).get("wdir") or ".")
    if "${" in wdir:
        wdir = _resolved_wdir(tree, stage)
        return "" if wdir == "." else wdir
    path = repo_path(folder, wdir)
    return "" if path == "." else path


def _resolved_wdir(tree: Path, stage: str) -> str:
    """A templated ``wdir``, as DVC resolves it."""
    with _stage_project(tree, stage) as (project, sub, target):
        for found in project.plan([target]):
            if project.stage_name(found) == stage:
                return posixpath.normpath(posixpath.join(sub, project.describe(found).wdir))
    raise RebuildError(f"stage {stage} is not in the recorded commit's dvc.yaml")


def _outputs(tree: Path, stage: str) -> dict[str, str]:
    from dvflow.core._dvcfiles import pointer_from_entry

    wdir = stage_wdir(tree, stage)
    outs = _lock_entry(tree, stage).get("outs")
    found: dict[str, str] = {}
    for entry in outs if isinstance(outs, list) else []:
        if isinstance(entry, dict):
            pointer = pointer_from_entry(entry, wdir=wdir)
            if pointer.md5:
                found[pointer.path] = pointer.md5
    return found


def _metrics(tree: Path, stage: str, outputs: Mapping[str, str]) -> dict[str, float]:
    """The rebuilt stage's metrics, keyed as ``dvflow run`` recorded them.

    Its own ``metrics:`` (relative to its ``wdir``) and the top-level ones of
    its dvc.yaml that lie inside its outputs (DVCLive's layout).
    """
    top = owned(_top_level_metrics(tree, stage), outputs)
    return read_metrics(tree, [*_own_metrics(tree, stage), *top])


def _own_metrics(tree: Path, stage: str) -> list[str]:
    """The stage's own ``metrics:``, from the repository root.

    Templated ones (``${reports_dir}/metrics_${item}.json`` in a ``foreach``
    item) are resolved by DVC, as ``dvflow run`` read them.
    """
    declared = declared_paths(stage_body(tree, stage).get("metrics"))
    if not any("${" in p for p in declared):
        wdir = stage_wdir(tree, stage)
        return [normalize(p, wdir) for p in declared]
    with _stage_project(tree, stage) as (project, sub, target):
        for found in project.plan([target]):
            if project.stage_name(found) == stage:
                return [normalize(p, sub) for p in project.describe(found).metrics]
    return []


def _top_level_metrics(tree: Path, stage: str) -> list[str]:
    """The top-level ``metrics:`` of the stage's dvc.yaml, from the repository root."""
    dvcfile = stage.rpartition(":")[0] or "dvc.yaml"
    pipeline = load_yaml_file(tree / dvcfile) if (tree / dvcfile).is_file() else None
    declared = declared_paths(pipeline.get("metrics") if isinstance(pipeline, dict) else None)
    if not any("${" in p for p in declared):
        return [normalize(p, posixpath.dirname(dvcfile)) for p in declared]
    with _stage_project(tree, stage) as (project, sub, target):  # templated: as DVC resolves them
        found = project.declared_files(project.plan([target]), "metrics")
        return sorted(normalize(p, sub) for p in found)


@contextmanager
def _stage_project(tree: Path, stage: str) -> Iterator[tuple[DvcProject, str, str]]:
    """The DVC project in the worktree that holds dvflow's ``stage``.

    Yields it, its folder from the worktree's root (``""`` at the top; a
    ``dvc init --subdir`` project's folder otherwise) and the stage as DVC
    addresses it from that folder. Opening DVC at the top of such a
    repository would find the subproject's files dvc-ignored.
    """
    from dvflow.core._roots import nearest_dvc_root
    from dvflow.stores._dvc import DvcProject

    dvcfile = stage.rpartition(":")[0] or "dvc.yaml"
    root = nearest_dvc_root((tree / dvcfile).parent, tree) or tree
    sub = "" if root == tree else root.relative_to(tree).as_posix()
    project = DvcProject(root)
    try:
        yield project, sub, stage.removeprefix(f"{sub}/") if sub else stage
    finally:
        project.close()


def _compare(
    recorded: Mapping[str, float], rebuilt: Mapping[str, float], rtol: float, atol: float
) -> tuple[MetricDelta, ...]:
    return tuple(
        MetricDelta(
            key,
            value,
            rebuilt.get(key),
            key in rebuilt and math.isclose(value, rebuilt[key], rel_tol=rtol, abs_tol=atol),
        )
        for key, value in sorted(recorded.items())
    )
