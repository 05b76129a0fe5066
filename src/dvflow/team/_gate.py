"""``check``: the CI gate. May this commit (or release) merge?

Each check has its own exit code, so a CI log says which drift stopped it:

    10  stale       the pipeline is not up to date with its code and params (dvc status)
    11  remote      outputs in dvc.lock are not in the DVC remote
    12  recorded    outputs at HEAD that no recorded run made
    13  release     a release tag's model version differs from the tag's dvc.lock
    14  attested    (with trusted keys) a model at HEAD has no attestation that verifies
    15  pii         an alias points at a model version personal-data marks taint

When several fail, the exit code is 15 when ``pii`` failed, else the first in
that order; all are printed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dvflow.core import _git, _history
from dvflow.core._dvcfiles import model_artifacts
from dvflow.core._exceptions import DvcError
from dvflow.core._yaml import load_yaml_file
from dvflow.proof._checks import Check

if TYPE_CHECKING:
    from dvflow.core._config import Config
    from dvflow.stores._dvc import DvcProject
    from dvflow.stores._tracking import Tracker

# 'pii' first: a model made from personal data behind an alias outranks any drift (and an
# erasure deletes the runs 'recorded' looks for).
EXIT_CODES = {"pii": 15, "stale": 10, "remote": 11, "recorded": 12, "release": 13, "attested": 14}
_ALWAYS = "always changed"  # what 'dvc status' says of an always_changed stage


@dataclass(frozen=True)
class GateResult:
    checks: tuple[Check, ...]
    mermaid: str = ""
    release_tags: tuple[str, ...] = field(default=())

    @property
    def exit_code(self) -> int:
        for name, code in EXIT_CODES.items():
            if any(c.name == name and not c.ok for c in self.checks):
                return code
        return 0


def check_project(
    path: str | os.PathLike[str] = ".",
    *,
    release: Sequence[str] = (),
    alias: str = "production",
    tracking_uri: str | None = None,
    sync: bool | None = None,
    require_attestation: Sequence[str] = (),
) -> GateResult:
    """Run the gate on the work tree at ``path``; ``release`` tags default to those at HEAD.

    Runs and model versions come from the lineage index while the store has
    not moved (``sync=True``: from the store). With ``require_attestation``
    (public key files), every model declared at HEAD must have a version
    with dvc.lock's md5 whose attestation verifies with one of them.
    """
    from dvflow.export._gates import attestation_gate
    from dvflow.trace._records import close_tracker, open_project_indexed

    gate = (
        attestation_gate(require_attestation, path, tracking_uri) if require_attestation else None
    )
    top, config, tracker = open_project_indexed(path, tracking_uri, sync=sync)
    try:
        result = _check(path, top, config, tracker, release=release, alias=alias)
        if gate is None:
            return result
        attested = _attested(Path(path).resolve(), top, tracker, gate)
        return GateResult((*result.checks, attested), result.mermaid, result.release_tags)
    finally:
        close_tracker(tracker)


def _attested(start: Path, top: Path, tracker: Tracker, gate: Callable[[str], Check]) -> Check:
    """The ``attested`` check of every model declared at HEAD, as dvc.lock has it."""
    from dvflow.core._roots import settings_root
    from dvflow.export._gates import models_attested

    root = settings_root(start, top)
    outs = {path: md5 for e in _worktree_entries(root) for path, md5 in e.outs}
    versions: dict[str, str | None] = {}
    for dvcfile in _git.files_named(root, "HEAD", "dvc.yaml") if _git.head_commit(root) else []:
        for name, model_path in model_artifacts(root, dvcfile).items():
            md5 = outs.get(model_path)
            found = tracker.version_with_tag(name, "dvflow.model_md5", md5) if md5 else None
            versions[name] = str(found) if found else None
    return models_attested(versions, gate)


def _check(
    path: str | os.PathLike[str],
    top: Path,
    config: Config,
    tracker: Tracker,
    *,
    release: Sequence[str],
    alias: str,
) -> GateResult:
    from dvflow.core._roots import settings_root
    from dvflow.stores._dvc import DvcProject

    # 'dvc init --subdir' puts several DVC projects in one Git repository
    # (DESIGN trap 16): check the one holding the folder.
    root = settings_root(Path(path).resolve(), top)
    for name in ("dvc.yaml", "dvc.lock"):  # a line and column, not DVC's parser dump
        if (root / name).is_file():
            load_yaml_file(root / name)
    entries = _worktree_entries(root)
    tags = list(release) or _tags_at_head(root)
    project = DvcProject(root)
    try:
        checks = [
            _stale(project),
            _remote(project, entries),
            _recorded(tracker, config.experiment, _lock_keys(root, top)),
            _release(root, tracker, tags, alias),
        ]
    finally:
        project.close()
    pii, read_notes = _pii(root, config.tracking_uri)
    checks.append(pii)
    mermaid, notes = _diagram(root, config.tracking_uri)
    # Whichever opened the index first read history and heard its warnings.
    notes = list(dict.fromkeys([*read_notes, *notes]))
    if notes:  # e.g. a committed file refused as an alias bomb: skipped, said
        checks.append(Check("lineage", "warn", "; ".join(notes)))
    return GateResult(tuple(checks), mermaid, tuple(tags))


def _pii(root: Path, tracking_uri: str) -> tuple[Check, list[str]]:
    """No alias may point at a version made from personal data without a sanitiser between.

    Also the warnings of reading the lineage index, when this opened it.
    """
    from dvflow.core._governance import read_governance
    from dvflow.governance._pii import pii_status
    from dvflow.trace._taint import model_line

    if not read_governance(root).marks:
        return Check("pii", "pass", "no data version is marked as holding personal data"), []
    status = pii_status(root, tracking_uri=tracking_uri, sync=False)
    warnings = list(status.taint.graph.warnings)
    tainted = [m for m in status.taint.models() if m.attrs.get("aliases")]
    if tainted:
        marked = ", ".join(sorted({m.path for m in status.marks}))
        return Check(
            "pii",
            "fail",
            "; ".join(f"{model_line(m)} is tainted" for m in tainted)
            + f" (made from {marked} with no sanitiser stage between)",
            "Retrain through a sanitiser stage (governance.sanitisers in dvflow.yaml) and move "
            "the alias, or 'dvflow erase plan' the marked data; 'dvflow pii status' shows the "
            "taint.",
        ), warnings
    return Check(
        "pii", "pass", f"no alias points at a version tainted by {len(status.marks)} mark(s)"
    ), warnings


def _lock_keys(root: Path, top: Path) -> dict[str, str]:
    """Stage -> outputs key of every dvc.lock of the DVC project at ``root``, as runs are tagged.

    Stages are named from the git root ``top`` (``sub/dvc.yaml:train`` in a
    subdirectory project), as ``dvflow run`` names them.
    """
    from dvflow.core._dvcfiles import read_lock
    from dvflow.runs._bind import lock_keys

    listed = _git._git(
        root, "ls-files", "-z", "--full-name", "--cached", "--others", "--exclude-standard"
    )
    keys: dict[str, str] = {}
    for rel in listed.split("\0"):
        if rel.split("/")[-1] == "dvc.lock" and (top / rel).is_file():
            keys.update(lock_keys(rel, read_lock(top / rel)))
    return keys


def _worktree_entries(root: Path) -> list[_history.Entry]:
    from dvflow.trace._lineage import _worktree_entries as entries

    return list(entries(root))


def _tags_at_head(root: Path) -> list[str]:
    return _git._git(root, "tag", "--points-at", "HEAD").split()


def _stale(project: DvcProject) -> Check:
    changed, missing = project.status()
    # An always_changed stage (or one with no deps) is never "up to date" by
    # design: a standard DVC feature, reported rather than failing every gate.
    always = sorted(s for s, why in changed.items() if set(why) == {_ALWAYS})
    changed = {s: [w for w in why if w != _ALWAYS] for s, why in changed.items() if s not in always}
    note = f" ({missing} path(s) not in the work tree or cache, not compared)" if missing else ""
    if always:
        note += f"; {', '.join(always)} always run(s) (always_changed), not compared"
    if changed:
        shown = "; ".join(f"{stage}: {', '.join(why)}" for stage, why in sorted(changed.items()))
        return Check(
            "stale",
            "fail",
            f"not up to date with its code and params: {shown}",
            "Run 'dvflow run' and commit dvc.lock.",
        )
    return Check("stale", "pass", f"dvc.lock is up to date with the code and params{note}")


def _remote(project: DvcProject, entries: list[_history.Entry]) -> Check:
    # Outputs with 'cache: false' never go to a remote, and 'dvc push' leaves
    # imports to their source repository.
    cached = project.tracked_paths()
    outs = {
        md5: path for e in entries if e.kind != "import" for path, md5 in e.outs if path in cached
    }
    if not outs:
        return Check("remote", "pass", "no DVC outputs to check")
    if not project.remote_url():
        return Check("remote", "fail", "no DVC remote is set", "Add one: 'dvc remote add -d'.")
    try:
        missing = project.missing_in_remote(sorted(outs))
    except DvcError as exc:  # no credentials, refused, no answer, no bucket
        return Check("remote", "fail", exc.message, exc.hint)
    if missing:
        named = sorted({outs.get(m, "files of a directory") for m in missing})
        return Check(
            "remote",
            "fail",
            f"{len(missing)} object(s) of dvc.lock not in the DVC remote: {', '.join(named)}",
            "Push the data from where it was made: 'dvc push'.",
        )
    return Check("remote", "pass", f"all {len(outs)} output(s) of dvc.lock are in the DVC remote")


def _recorded(tracker: Tracker, experiment: str, keys: dict[str, str]) -> Check:
    # Only a finished run that ran the command made the outputs: an
    # 'up-to-date' (or restored) run over outputs plain 'dvc repro' made has
    # no producer to link to, and proves nothing.
    exp = tracker.experiment_id(experiment)
    unrecorded = [
        stage for stage, key in keys.items() if not tracker.find_producer(exp, stage, key)
    ]
    if unrecorded:
        return Check(
            "recorded",
            "fail",
            f"no recorded run made the outputs of: {', '.join(sorted(unrecorded))}",
            "Run the pipeline with 'dvflow run' (not 'dvc repro'; 'dvflow run -f' if they "
            "are already up to date) and commit its dvc.lock.",
        )
    return Check("recorded", "pass", f"every stage's outputs ({len(keys)}) have a recorded run")


def _release(root: Path, tracker: Tracker, tags: Sequence[str], alias: str) -> Check:
    if not tags:
        return Check("release", "pass", "no release tag at HEAD")
    problems, checked = [], 0
    for tag in tags:
        if not _git.is_commit(root, f"{tag}^{{commit}}"):
            problems.append(f"no tag or commit named {tag!r}")
            continue
        commit = _git.rev_parse(root, tag)
        files = _history.tree_files(root, commit)
        blobs = _history.read_blobs(root, files.values())
        outs = {
            p: m
            for f, b in files.items()
            for e in _history.parse_file(f, blobs.get(b, b""))
            for p, m in e.outs
        }
        for dvcfile in _git.files_named(root, commit, "dvc.yaml"):
            for name, model_path in _tag_artifacts(root, tag, dvcfile).items():
                checked += 1
                problems += _release_problem(tracker, tag, name, alias, outs.get(model_path))
    if problems:
        return Check(
            "release",
            "fail",
            "; ".join(problems),
            "Promote the version built from the tag: "
            f"'dvflow promote NAME VERSION --alias {alias}'.",
        )
    return Check("release", "pass", f"{checked} model(s) of {', '.join(tags)} match @{alias}")


def _tag_artifacts(root: Path, tag: str, dvcfile: str) -> dict[str, str]:
    import tempfile

    # './': relative to the DVC project's folder, as ls-tree listed it (dvc init --subdir).
    text = _git.show_file(root, tag, f"./{dvcfile}")
    with tempfile.TemporaryDirectory(prefix="dvflow-") as tmp:
        target = Path(tmp) / dvcfile
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        return model_artifacts(Path(tmp), dvcfile)


def _release_problem(
    tracker: Tracker, tag: str, name: str, alias: str, md5: str | None
) -> list[str]:
    from dvflow.core._exceptions import ModelNotFoundError

    if md5 is None:
        return [f"{tag}: dvc.lock has no output for model {name}"]
    try:
        version = tracker.version_by_alias(name, alias)
    except ModelNotFoundError:
        return [f"{tag}: model {name} has no @{alias} version"]
    actual = (version.tags or {}).get("dvflow.model_md5")
    if actual != md5:
        return [
            f"{tag}: {name}@{alias} is version {version.version} (md5 {actual}), "
            f"the tag's dvc.lock has md5 {md5}"
        ]
    return []


def _diagram(root: Path, tracking_uri: str) -> tuple[str, list[str]]:
    """A Mermaid lineage diagram of the models declared at HEAD (empty when none), and warnings."""
    from dvflow.trace._queries import lineage
    from dvflow.trace._render import to_mermaid

    blocks, notes = [], []
    for dvcfile in _git.files_named(root, "HEAD", "dvc.yaml") if _git.head_commit(root) else []:
        for model_path in model_artifacts(root, dvcfile).values():
            try:
                graph = lineage(model_path, root, tracking_uri=tracking_uri)
            except Exception:  # noqa: S112 - a summary diagram is best effort
                continue
            blocks.append(to_mermaid(graph))
            notes += [w for w in graph.warnings if w not in notes]
    return "\n".join(blocks), notes


def summary_markdown(result: GateResult) -> str:
    """Markdown for ``$GITHUB_STEP_SUMMARY``: the checks, then the lineage diagram."""
    marks = {"pass": "✅", "warn": "⚠️", "fail": "❌"}
    lines = ["## dvflow check", "", "| | check | result |", "|---|---|---|"]
    for check in result.checks:
        detail = check.detail.replace("|", "\\|")
        lines.append(f"| {marks[check.level]} | {check.name} | {detail} |")
    if result.mermaid:
        lines += [
            "",
            "### Lineage of the models at HEAD",
            "",
            "```mermaid",
            result.mermaid.rstrip(),
            "```",
        ]
    return "\n".join(lines) + "\n"
