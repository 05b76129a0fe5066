"""The model registry with lineage: register, and promote behind a lineage gate.

A model version is tagged with everything that identifies what made it:
the code (commit, dirty flag), the stage run's record digest, the model's
own DVC md5 and the md5 of every upstream dataset. A new version is made
only for an md5 no version of that model has yet.

Registry stages (Staging/Production) are deprecated in MLflow: dvflow moves
aliases, and transitions stages only when asked.

A wing of one module, between runs (which registers a changed model) and
proof (whose checks gate ``promote``). May import: export, proof, trace, stores, core.
"""

from __future__ import annotations

import getpass
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .core._dvcfiles import Pointer, object_suffix
from .core._exceptions import (
    InvalidArgumentError,
    InvalidFileError,
    LineageIncompleteError,
    NotFoundError,
)
from .core._record import RECORD_ARTIFACT, ProvenanceRecord
from .proof._checks import Check, RunChecks

if TYPE_CHECKING:
    from .stores._tracking import RunWriter, Tracker

MD5_TAG = "dvflow.model_md5"
UPSTREAM_TAG = "dvflow.upstream"
_TAG_LIMIT = 7500


@dataclass(frozen=True)
class Registration:
    """One model version dvflow registered (``created``) or found already there."""

    name: str
    version: str
    created: bool
    run_id: str | None
    md5: str | None
    source: str
    alias: str | None = None


@dataclass(frozen=True)
class Promotion:
    name: str
    version: str
    alias: str
    checks: tuple[Check, ...]
    forced: bool
    stage: str | None = None

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]


def check_name(name: str) -> None:
    """Refuse a model name MLflow would refuse, before any work is done."""
    if not name.strip() or any(c in name for c in "/:"):
        raise InvalidArgumentError("model name", name, "it must be non-empty, without '/' or ':'")


def check_alias(alias: str) -> None:
    """Refuse an alias MLflow would refuse (after creating a version), up front."""
    if not re.fullmatch(r"[\w\-]+", alias):
        raise InvalidArgumentError("alias", alias, "use letters, digits, '_' and '-' only")
    if alias.lower() == "latest" or re.fullmatch(r"[vV]\d+", alias):
        raise InvalidArgumentError("alias", alias, "'latest' and v<number> are reserved")


def version_tags(
    record: ProvenanceRecord, record_sha: str, model: Pointer, upstream: Mapping[str, str]
) -> dict[str, str]:
    """The tags that carry a version's lineage."""
    code = record.code
    tags = {
        "dvflow.git_commit": code.get("commit") or "",
        "dvflow.git_dirty": str(bool(code.get("dirty"))).lower(),
        "dvflow.record_sha256": record_sha,
        "dvflow.run_id": record.mlflow.get("run_id") or "",
        "dvflow.stage": record.stage["name"] if record.stage else "",
        "dvflow.model_path": model.path,
        MD5_TAG: model.md5 or "",
    }
    text = json.dumps(dict(sorted(upstream.items())), separators=(",", ":"))
    tags[UPSTREAM_TAG] = text if len(text) <= _TAG_LIMIT else "see the run's record"
    return tags


def register_version(
    tracker: RunWriter,
    name: str,
    *,
    model: Pointer,
    run_id: str | None,
    tags: Mapping[str, str],
    logged_model: str | None = None,
) -> Registration:
    """Make a version of ``name`` for ``model`` unless one with its md5 exists."""
    if model.md5:
        existing = tracker.version_with_tag(name, MD5_TAG, model.md5)
        if existing:
            return Registration(name, existing, False, run_id, model.md5, "")
    source = f"models:/{logged_model}" if logged_model else dvc_object(model)
    source = portable_source(source, tracker.uri, model.path, model.md5 or "")
    version = tracker.create_version(name, source, run_id, tags, model_id=logged_model)
    return Registration(name, version, True, run_id, model.md5, source)


def portable_source(source: str, store_uri: str, path: str, md5: str) -> str:
    """A version source the store accepts.

    A tracking server refuses a local path as a source (it cannot read the
    client's disk), so a model in a local DVC cache or remote is named by its
    DVC pointer instead; a logged model's ``models:/m-...`` stays.
    ``dvflow.model_path`` and ``dvflow.model_md5`` say where to get it
    either way.
    """
    scheme = source.partition(":")[0] if ":" in source else ""
    local = len(scheme) <= 1 or scheme == "file"  # a path (C: too), or file:
    if local and store_uri.startswith(("http://", "https://")):
        return dvc_source(path, md5)
    return source


def dvc_object(model: Pointer) -> str:
    """Where the model's DVC object is: its remote object, cache file, or pointer.

    A remote object by md5 is this model for good; on a version-aware remote
    the URI is a path whose content the next push replaces, so it is not used.
    """
    by_md5 = bool(model.md5) and (model.remote_uri or "").endswith(object_suffix(model.md5 or ""))
    if by_md5 and model.remote_uri:
        return model.remote_uri
    return model.cache_path or dvc_source(model.path, model.md5 or "")


def dvc_source(path: str, md5: str) -> str:
    """``dvc:///PATH@MD5``: the model as DVC tracks it in the project.

    The path goes after a third slash, never where a host would be: a server
    refuses a source whose URL path is empty or relative, and
    ``dvc://model.pkl@md5`` would read as a user at a host.
    """
    return f"dvc:///{path.lstrip('/')}@{md5}"


def upstream_of(
    model_md5: str, stages: Sequence[tuple[Sequence[Pointer], Sequence[Pointer]]]
) -> dict[str, str]:
    """``{path: md5}`` of every DVC-tracked dataset upstream of ``model_md5``.

    ``stages`` are the (inputs, outputs) of the stages that ran, so the walk
    follows outputs back to the inputs that made them. Code (files git
    tracks, without a cache path) is not a dataset.
    """
    made_by = {o.md5: inputs for inputs, outputs in stages for o in outputs if o.md5}
    found: dict[str, str] = {}
    todo = [model_md5]
    while todo:
        for pointer in made_by.pop(todo.pop(), ()):
            if pointer.md5 and pointer.cache_path and pointer.path not in found:
                found[pointer.path] = pointer.md5
                todo.append(pointer.md5)
    return found


def register_stage_models(
    tracker: RunWriter,
    root: Path,
    *,
    dvcfile: str,
    record: ProvenanceRecord,
    record_sha: str,
    stage_io: Sequence[tuple[Sequence[Pointer], Sequence[Pointer]]],
) -> list[Registration]:
    """Register the ``artifacts:`` of ``type: model`` a finished stage run holds.

    A model the stage also logged through MLflow (``log_model``, autolog) is
    registered from that logged model, so ``mlflow.pyfunc.load_model`` works
    on the version; otherwise the version's source is the DVC object.
    """
    from .core._dvcfiles import model_artifacts

    run_id = record.mlflow["run_id"]
    found = []
    for name, path in sorted(model_artifacts(root, dvcfile).items()):
        model = _model_pointer(root, record.outputs, path)
        if model is None or not model.md5:
            continue
        container = next(p for p in record.outputs if _holds(p.path, path))
        upstream = upstream_of(container.md5 or "", stage_io)
        tags = version_tags(record, record_sha, model, upstream)
        ran = bool(record.stage and record.stage["status"] == "ran")
        logged = (
            tracker.logged_model_of_run(record.mlflow["experiment_id"], run_id) if ran else None
        )
        found.append(
            register_version(
                tracker, name, model=model, run_id=run_id, tags=tags, logged_model=logged
            )
        )
    return found


def _holds(output: str, path: str) -> bool:
    return path == output or path.startswith(output.rstrip("/") + "/")


def _model_pointer(root: Path, outputs: Sequence[Pointer], path: str) -> Pointer | None:
    """The pointer of ``path``: an output itself, or a file inside a directory output."""
    for out in outputs:
        if out.path == path:
            return out
        if _holds(out.path, path) and out.md5 and out.md5.endswith(".dir") and out.cache_path:
            md5 = _file_in_dir(root / out.cache_path, path[len(out.path.rstrip("/")) + 1 :])
            if md5:
                return Pointer(
                    path=path,
                    md5=md5,
                    cache_path=_swap_object(out.cache_path, out.md5, md5),
                    remote_uri=_swap_object(out.remote_uri, out.md5, md5),
                )
    return None


def _file_in_dir(listing: Path, relpath: str) -> str | None:
    try:
        entries = json.loads(listing.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("relpath") == relpath:
            return str(entry.get("md5") or "") or None
    return None


def _swap_object(location: str | None, old: str, new: str) -> str | None:
    """The same object store location, for another md5."""
    tail = f"{old[:2]}/{old[2:]}"
    if not location or not location.endswith(tail):
        return None
    return f"{location[: -len(tail)]}{new[:2]}/{new[2:]}"


# -- dvflow register ------------------------------------------------------------


def register_model(
    target: str,
    name: str,
    path: str | os.PathLike[str] = ".",
    *,
    output: str | None = None,
    alias: str | None = None,
    tracking_uri: str | None = None,
) -> Registration:
    """Register an output of a recorded stage run (a run id, or a stage's current run)."""
    from .stores._tracking import open_project
    from .trace._records import note_store

    check_name(name)
    if alias:
        check_alias(alias)
    from .core._roots import settings_root

    root, config, tracker = open_project(path, tracking_uri)
    # A 'dvc init --subdir' project: its dvc.lock and index are in its folder.
    project = settings_root(Path(path).resolve(), root)
    run_id = _run_of(tracker, root, project, config.experiment, target)
    record, record_sha = _stage_record(tracker, run_id)
    model = _pick_output(record, output, run_id)
    upstream = _upstream_from_index(project, config.tracking_uri, run_id, model.md5)
    tags = version_tags(record, record_sha, model, upstream)
    experiment = record.mlflow.get("experiment_id") or ""
    logged = tracker.logged_model_of_run(experiment, run_id) if experiment else None
    result = register_version(
        tracker, name, model=model, run_id=run_id, tags=tags, logged_model=logged
    )
    if alias:
        tracker.set_alias(name, alias, result.version)
    note_store(project, tracker)  # write-through: the lineage index has the version
    if result.created:
        publish_lineage(tracker, project, [result])
        note_store(project, tracker)  # its description moved the store again
    return Registration(**{**result.__dict__, "alias": alias})


def _run_of(tracker: Tracker, root: Path, project: Path, experiment: str, target: str) -> str:
    """A run id as given, or the recorded run that made a stage's current outputs.

    A stage is named as in ``project``'s dvc.lock (``prepare``) or as runs
    record it, from the git root ``root`` (``proj-a/dvc.yaml:prepare``).
    """
    text = target.strip()
    if len(text) == 32 and all(c in "0123456789abcdef" for c in text):
        return text
    from .core._dvcfiles import LOCK_FILE, outputs_key, pointer_from_entry, read_lock

    folder = project.relative_to(root).as_posix()
    name = text.removeprefix(f"{folder}/dvc.yaml:") if folder != "." else text
    entry = read_lock(project / LOCK_FILE).get(name)
    if not isinstance(entry, dict):
        raise NotFoundError(
            f"{text!r} is neither a run id nor a stage in dvc.lock",
            hint="Give a stage run's id, or the name of a stage 'dvflow run' has run.",
        )
    outs = [pointer_from_entry(o) for o in entry.get("outs") or [] if isinstance(o, dict)]
    key = outputs_key(outs)
    exp = tracker.experiment_id(experiment)
    # Runs are tagged with the stage as it is named from the git root.
    stage = name if folder == "." else f"{folder}/dvc.yaml:{name}"
    producer = tracker.find_producer(exp, stage, key) if key else None
    if not producer:
        raise NotFoundError(
            f"no recorded run made the current outputs of stage {text!r}",
            hint="Run 'dvflow run' to record it, or give a run id.",
        )
    return producer


def _stage_record(tracker: Tracker, run_id: str) -> tuple[ProvenanceRecord, str]:
    from .proof._show import intact_record

    record, _, digest = intact_record(tracker, run_id)
    if record.kind != "stage":
        raise InvalidFileError(
            RECORD_ARTIFACT,
            f"run {run_id} is a pipeline run; register a stage run",
            hint="Use the id of the stage run that made the model (see 'dvflow show').",
        )
    return record, digest


def _pick_output(record: ProvenanceRecord, output: str | None, run_id: str) -> Pointer:
    """The output ``--path`` names, or the run's one output DVC caches.

    A ``cache: false`` output (a metrics file, say) is no model: it does not
    make the choice ambiguous.
    """
    outs = [p for p in record.outputs if p.md5]
    if output:
        wanted = output.rstrip("/")
        for pointer in outs:
            if pointer.path == wanted:
                return pointer
        raise NotFoundError(
            f"run {run_id}: no output {output!r}",
            hint=f"Pass --path with one of its outputs: {_listed(outs)}.",
        )
    cached = [p for p in outs if p.cache_path]
    if len(cached) == 1:
        return cached[0]
    raise InvalidArgumentError(
        "target",
        run_id,
        "its run has several outputs DVC caches" if cached else "its run has no cached output",
        hint=f"Pass --path with one of its outputs: {_listed(cached or outs)}.",
    )


def _listed(outs: Sequence[Pointer]) -> str:
    return ", ".join(p.path for p in outs) or "none"


def _upstream_from_index(
    root: Path, tracking_uri: str, run_id: str, model_md5: str | None
) -> dict[str, str]:
    """Datasets upstream of the run, from the lineage index (anything with a producer)."""
    from .trace._queries import lineage

    graph = lineage(run_id, root, tracking_uri=tracking_uri, sync=True)
    produced = {e.target for e in graph.edges if e.kind in ("produced", "imported", "added")}
    return {
        node.attrs["path"]: node.attrs["md5"]
        for node in graph.of_kind("data")
        if node.id in produced and node.attrs["md5"] != model_md5
    }


# -- the lineage of a new version, where MLflow's UI shows it -------------------

LINEAGE_ARTIFACT = "dvflow/lineage.html"


def publish_lineage(
    tracker: Tracker, project: Path, registered: Sequence[Registration]
) -> list[str]:
    """Give each new version its lineage in MLflow's UI; returns warnings, never fails.

    The version's run gets ``dvflow/lineage.html`` (the self-contained page of
    ``lineage --html``, which MLflow's artifact viewer shows) and the version
    a Markdown description: the producing run, the commit, the data versions
    with their md5s, and the ``dvflow`` commands that say more. Read from the
    lineage index, so call it after the index has the version (``note_store``).
    """
    from .core._exceptions import DvflowError
    from .trace._html import lineage_page
    from .trace._queries import lineage

    warnings = []
    for version in registered:
        if not version.created or not version.run_id:
            continue
        target = f"models:/{version.name}/{version.version}"
        try:
            graph = lineage(target, project, tracking_uri=tracker.uri, sync=False)
            page = lineage_page(graph, command=f"dvflow lineage {target}", path=project)
            tracker.log_bytes(version.run_id, page.encode("utf-8"), LINEAGE_ARTIFACT)
            tracker.describe_version(version.name, version.version, version_summary(graph, target))
        except DvflowError as exc:
            warnings.append(
                f"{target}: its lineage page and description were not written: {exc.message}"
            )
    return warnings


def version_summary(graph: Any, target: str) -> str:
    """The Markdown description of a model version: what made it, in a few lines."""
    model = next((n for n in graph.of_kind("model")), None)
    attrs = model.attrs if model is not None else {}
    lines = ["**Lineage recorded by dvflow**", ""]
    runs = [n for n in graph.of_kind("run") if n.attrs.get("run_id") == attrs.get("run_id")]
    if runs:
        run = runs[0].attrs
        lines.append(
            f"- produced by run `{_md(run['run_id'])}` (stage `{_md(run.get('stage') or '')}`, "
            f"{_md(run.get('status') or '')})"
        )
    commit = attrs.get("commit")
    dirty = " with uncommitted changes (patch stored)" if attrs.get("dirty") else ""
    lines.append(f"- commit `{_md(commit)}`{dirty}" if commit else "- no commit recorded")
    if attrs.get("md5"):
        lines.append(f"- model md5 `{_md(attrs['md5'])}`")
    data = sorted(graph.of_kind("data"), key=lambda n: n.label)
    if data:
        lines.append("- data versions:")
        lines += [f"  - `{_md(n.label)}` md5 `{_md(n.attrs.get('md5') or '')}`" for n in data[:20]]
        if len(data) > 20:
            lines.append(f"  - and {len(data) - 20} more")
    lines += [
        f"- the graph: artifact `{LINEAGE_ARTIFACT}` of the run",
        "",
        f"More: `dvflow lineage {_md(target)}`, `dvflow verify {_md(target)}`, or `dvflow ui`.",
    ]
    return "\n".join(lines)


def _md(text: object) -> str:
    """Text for a Markdown code span: no backquote or line break can end it early."""
    return str(text).replace("`", "'").replace("\n", " ").replace("\r", " ")


# -- dvflow promote -------------------------------------------------------------


def promote(
    name: str,
    version: str,
    alias: str,
    path: str | os.PathLike[str] = ".",
    *,
    force: bool = False,
    stage: str | None = None,
    tracking_uri: str | None = None,
    gate: Callable[[str], Check] | None = None,
) -> Promotion:
    """Move ``alias`` to ``version`` if its lineage is complete (or ``force``, recorded).

    ``gate``: one more check of ``models:/NAME/VERSION`` that must pass, such
    as a verified attestation (``export``'s ``attestation_gate``; the
    registry sits below the export wing, so it is handed in).
    """
    from .core._roots import settings_root
    from .stores._dvc import DvcProject
    from .stores._tracking import open_project
    from .trace._records import note_store

    check_name(name)
    check_alias(alias)
    root, _, tracker = open_project(path, tracking_uri)
    mv = tracker.model_version(name, version)
    run_id = mv.run_id or mv.tags.get("dvflow.run_id")
    model = _version_model(mv) if mv.tags.get(MD5_TAG) else None
    checks = RunChecks(tracker, root, run_id, model)
    checks.record_sha = mv.tags.get("dvflow.record_sha256")
    checks.run_all(DvcProject)
    if gate is not None:
        checks.checks.append(gate(f"models:/{name}/{mv.version}"))
    result = Promotion(
        name, str(mv.version), alias, tuple(checks.checks), forced=False, stage=stage
    )
    if result.failures and not force:
        raise LineageIncompleteError(
            name, version, [c.detail for c in result.failures], result.checks
        )
    if result.failures:
        override = {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "by": _who(root),
            "failed": [c.detail for c in result.failures],
        }
        tracker.set_version_tags(name, version, {f"dvflow.forced.{alias}": json.dumps(override)})
        result = Promotion(**{**result.__dict__, "forced": True})
    tracker.set_alias(name, alias, version)
    if stage:
        tracker.transition_stage(name, version, stage)
    note_store(settings_root(Path(path).resolve(), root), tracker)  # the alias, in the index
    return result


def _version_model(mv: Any) -> Pointer:
    return Pointer(path=mv.tags.get("dvflow.model_path") or "the model", md5=mv.tags.get(MD5_TAG))


def _who(root: Path) -> str:
    """Who forced a promotion: git's author identity (config or GIT_AUTHOR_*), else the user."""
    from .core._git import _git

    ident = _git(root, "var", "GIT_AUTHOR_IDENT", ok_codes=(0, 128)).split("<")[0].strip()
    try:
        return ident or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
