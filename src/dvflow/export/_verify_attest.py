"""``dvflow verify TARGET --pubkey PUB``: check a signed attestation, with or without the stores.

In order, each failure with its own error and exit code (``_errors``):

1. the envelope is a DSSE envelope of a dvflow statement (20), of in-toto's
   payload type (21), signed by one of the trusted keys (22; the ``keyid``
   picks nothing);
2. the builder is on the allow-list, when one is given (25);
3. the statement is about TARGET, and each subject's sha256 is that of the
   model's bytes now: the files in ``--files DIR``, else DVC's cache (23);
4. with the stores (not with ``--files``): the records the statement names
   still have their digests, the lineage closure is the same runs, and every
   dependency has the md5 the records name and, where its bytes are at hand,
   the sha256 attested (24).

``--files`` needs neither network nor tracking server: only the envelope,
the keys and the files are read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dvflow.core._exceptions import NotFoundError, RecordTamperedError
from dvflow.core._record import sha256_hex
from dvflow.proof._checks import Check

from ._bundle import check_walk, split_bundle
from ._content import ContentProblem, digest
from ._dsse import keyid, load_public_key, parse_envelope, verify_envelope
from ._errors import (
    AttestationError,
    BuilderNotAllowedError,
    DependencyDriftError,
    EnvelopeUnreadableError,
    SubjectMismatchError,
)
from ._hashing import many_file_digests
from ._statement import BUILD_TYPE, PREDICATE_TYPE, STATEMENT_TYPE

if TYPE_CHECKING:
    from dvflow.stores._dvc import DvcProject
    from dvflow.stores._tracking import Tracker

    from ._attest import Target


@dataclass(frozen=True)
class AttestationVerification:
    target: str
    source: str
    keyid: str
    offline: bool
    statement: Mapping[str, Any]
    checks: tuple[Check, ...]


class MissingAttestationError(AttestationError):
    """The version (or run) has no attestation in the store: the gates refuse it (exit 1)."""

    exit_code = 1

    def __init__(self, target: str) -> None:
        super().__init__(
            target,
            "no attestation is recorded for it in the tracking store",
            f"Sign it with 'dvflow attest {target} --key KEY' ('verify' also takes "
            "--attestation FILE).",
        )


def verify_attestation(
    target: str,
    path: str | os.PathLike[str] = ".",
    *,
    pubkeys: Sequence[str | os.PathLike[str]],
    attestation: str | os.PathLike[str] | None = None,
    builders: Sequence[str] = (),
    files: str | os.PathLike[str] | None = None,
    tracking_uri: str | None = None,
) -> AttestationVerification:
    """Verify the attestation of ``target``; raises an ``AttestationError`` subclass on failure."""
    trusted = [load_public_key(p) for p in pubkeys]
    if files is not None:
        if attestation is None:
            raise NotFoundError(
                "--files needs --attestation FILE: offline, no store holds the envelope",
                hint="Pass the envelope you were given with --attestation.",
            )
        raw, source = _read_file(attestation), str(attestation)
        return _verify(
            target,
            raw,
            source=source,
            trusted=trusted,
            builders=builders,
            where=_Offline(Path(files)),
        )
    from dvflow.core._roots import settings_root
    from dvflow.stores._dvc import DvcProject
    from dvflow.trace._records import close_tracker, open_project_indexed

    from ._attest import resolve_target

    root, _, tracker = open_project_indexed(path, tracking_uri, sync=True)
    project = DvcProject(settings_root(Path(path).resolve(), root))
    try:
        resolved = resolve_target(tracker, target)
        if attestation is not None:
            raw, source = _read_file(attestation), str(attestation)
        else:
            raw, source = _from_store(tracker, resolved)
        online = _Online(
            tracker,
            project=project,
            root=root,
            target=resolved,
            path=path,
            tracking_uri=tracking_uri,
        )
        return _verify(target, raw, source=source, trusted=trusted, builders=builders, where=online)
    finally:
        project.close()
        close_tracker(tracker)


def _read_file(path: str | os.PathLike[str]) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise NotFoundError(
            f"attestation {path}: {exc.strerror or 'cannot be read'}",
            hint="Pass the envelope 'dvflow attest' wrote (-o FILE).",
        ) from None


def _from_store(tracker: Tracker, target: Target) -> tuple[bytes, str]:
    from ._attest import ATTESTATION_ARTIFACT_TAG

    artifact = target.tag(ATTESTATION_ARTIFACT_TAG)
    if artifact is None and target.model_name is None:
        artifact = tracker.get_run(target.run_id).data.tags.get(ATTESTATION_ARTIFACT_TAG)
    if not artifact:
        raise MissingAttestationError(target.text)
    try:
        raw = tracker.read_artifact(target.run_id, artifact)
    except NotFoundError:
        raise MissingAttestationError(target.text) from None
    return raw, f"runs:/{target.run_id}/{artifact}"


def _verify(
    target: str,
    raw: bytes,
    *,
    source: str,
    trusted: Sequence[Any],
    builders: Sequence[str],
    where: _Offline | _Online,
) -> AttestationVerification:
    first, *more = split_bundle(raw)
    envelope = parse_envelope(first, source)
    key = verify_envelope(envelope, trusted, source)
    statement = _statement(envelope.payload, source)
    checks = [
        Check("signature", "pass", f"signed by keyid {keyid(key)[:16]} (a trusted key)"),
        Check("statement", "pass", f"in-toto Statement v1, SLSA provenance v1 ({BUILD_TYPE})"),
    ]
    builder = statement["predicate"]["runDetails"]["builder"]["id"]
    if builders and builder not in builders:
        raise BuilderNotAllowedError(source, builder, builders)
    checks.append(Check("builder", "pass", builder + (" (allowed)" if builders else "")))
    checks.extend(where.check(target, statement, source))
    if more:
        checks.append(_stages(statement, more, source, trusted, builders))
    return AttestationVerification(
        target, source, keyid(key), isinstance(where, _Offline), statement, tuple(checks)
    )


def _stages(
    statement: Mapping[str, Any],
    lines: Sequence[bytes],
    source: str,
    trusted: Sequence[Any],
    builders: Sequence[str],
) -> Check:
    """The bundle's stage statements: signed, well formed, allowed, linked to the model's."""
    stages = []
    for number, line in enumerate(lines, start=2):
        where = f"{source} (line {number})"
        envelope = parse_envelope(line, where)
        verify_envelope(envelope, trusted, where)
        stage = _statement(envelope.payload, where)
        builder = stage["predicate"]["runDetails"]["builder"]["id"]
        if builders and builder not in builders:
            raise BuilderNotAllowedError(where, builder, builders)
        stages.append(stage)
    return check_walk(statement, stages, source)


def _statement(payload: bytes, source: str) -> dict[str, Any]:
    """The payload as a dvflow statement; EnvelopeUnreadableError when it is not one.

    Every field the checks below read is checked here first, explicitly (not
    with ``assert``, which ``python -O`` drops): a signed but malformed
    statement is exit 20, never a traceback.
    """
    try:
        data = json.loads(payload.decode("utf-8"))
        problem = _shape_problem(data)
    except (ValueError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as exc:
        problem = f"{type(exc).__name__} {exc}"
    if problem:
        raise EnvelopeUnreadableError(source, f"not a dvflow statement ({problem})")
    return data  # type: ignore[no-any-return]


def _shape_problem(data: Any) -> str | None:
    build = data["predicate"]["buildDefinition"]
    details = data["predicate"]["runDetails"]
    subjects, deps = data["subject"], build["resolvedDependencies"]
    byproducts = details["byproducts"]
    checks = (
        (data["_type"] == STATEMENT_TYPE, f"_type is not {STATEMENT_TYPE}"),
        (data["predicateType"] == PREDICATE_TYPE, f"predicateType is not {PREDICATE_TYPE}"),
        (build["buildType"] == BUILD_TYPE, f"buildType is not {BUILD_TYPE}"),
        (isinstance(build["externalParameters"], dict), "no externalParameters"),
        (isinstance(details["builder"]["id"], str), "no builder id"),
        (isinstance(details["metadata"]["invocationId"], str), "no invocationId"),
        (isinstance(subjects, list) and bool(subjects), "no subject"),
        (all(_resource(s, "name") for s in subjects), "a subject without name or sha256"),
        (isinstance(deps, list), "no resolvedDependencies"),
        (all(_dependency(d) for d in deps), "a dependency without name, sha256 or dvc_md5"),
        (isinstance(byproducts, list), "no byproducts"),
        (all(_resource(b, "run_id") for b in byproducts), "a byproduct without run_id"),
    )
    return next((reason for ok, reason in checks if not ok), None)


def _resource(entry: Any, needs: str) -> bool:
    """A resource descriptor with a sha256 and, as ``needs`` says, a name or a run id."""
    if not isinstance(entry, dict) or not isinstance(entry.get("digest"), dict):
        return False
    notes = entry.get("annotations", {})
    if not isinstance(notes, dict):
        return False
    named = entry.get("name") if needs == "name" else notes.get("run_id")
    return isinstance(entry["digest"].get("sha256"), str) and isinstance(named, str)


def _dependency(entry: Any) -> bool:
    """A data dependency (it has ``dvc_md5``) is fully named; a commit or patch need not be."""
    if not isinstance(entry, dict) or not isinstance(entry.get("annotations", {}), dict):
        return False
    if "dvc_md5" not in entry.get("annotations", {}):
        return True
    return _resource(entry, "name") and isinstance(entry["annotations"]["dvc_md5"], str)


# -- the target and its bytes ----------------------------------------------------


def _subject_note(statement: Mapping[str, Any], key: str) -> set[str]:
    return {str(s.get("annotations", {}).get(key, "")) for s in statement["subject"]}


def _about(statement: Mapping[str, Any]) -> str:
    uris = sorted(_subject_note(statement, "mlflow_model_uri") - {""})
    run = statement["predicate"]["runDetails"]["metadata"].get("invocationId")
    return f"{', '.join(uris) or 'a stage run'} (run {run})"


class _Offline:
    """Only the files in ``folder``: no store, no network."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def check(self, target: str, statement: Mapping[str, Any], source: str) -> list[Check]:
        from ._attest import parse_target

        kind, first, second = parse_target(target)
        named = {
            "version": f"models:/{first}/{second}" in _subject_note(statement, "mlflow_model_uri"),
            "run": statement["predicate"]["runDetails"]["metadata"].get("invocationId") == first,
            "alias": first
            in {u.split("/")[1] for u in _subject_note(statement, "mlflow_model_uri") if "/" in u},
        }[kind]
        if not named:
            raise SubjectMismatchError(source, [f"it is about {_about(statement)}, not {target}"])
        problems, located = [], []
        for subject in statement["subject"]:
            found = self._locate(subject)
            if found is None:
                problems.append(f"{subject['name']}: not in {self.folder}")
            else:
                located.append((subject, found))
        digests = many_file_digests((path for _, path in located), md5=False)
        for (subject, _), (_, sha) in zip(located, digests, strict=True):
            if sha != subject["digest"]["sha256"]:
                problems.append(
                    f"{subject['name']}: sha256 {sha}, attested {subject['digest']['sha256']}"
                )
        count = len(located)
        if problems:
            raise SubjectMismatchError(source, problems)
        checks = [
            Check("subjects", "pass", f"{count} file(s) in {self.folder} have the attested sha256"),
            Check("drift", "warn", "not checked offline (--files): no store to compare with"),
        ]
        if kind == "alias":
            checks.insert(
                0, Check("target", "warn", f"an alias is not resolved offline: {_about(statement)}")
            )
        return checks

    def _locate(self, subject: Mapping[str, Any]) -> Path | None:
        """``DIR/NAME``, else the file's path below the model (a folder's files), else its name."""
        name = str(subject["name"])
        folder = str(subject.get("annotations", {}).get("dvc_path") or "")
        candidates = [name]
        if folder and name.startswith(folder + "/"):
            rel = name[len(folder) + 1 :]
            candidates += [rel, f"{Path(folder).name}/{rel}"]
        else:
            candidates.append(Path(name).name)
        for candidate in candidates:
            relative = Path(candidate)
            if relative.is_absolute() or ".." in relative.parts:
                continue  # a name from the statement never leaves DIR
            if (self.folder / relative).is_file():
                return self.folder / relative
        return None


class _Online:
    """The model's bytes from DVC's cache, the records from the tracking store."""

    def __init__(
        self,
        tracker: Tracker,
        *,
        project: DvcProject,
        root: Path,
        target: Target,
        path: str | os.PathLike[str],
        tracking_uri: str | None,
    ) -> None:
        self.tracker, self.project, self.root, self.target = tracker, project, root, target
        self.path, self.tracking_uri = path, tracking_uri

    def check(self, target: str, statement: Mapping[str, Any], source: str) -> list[Check]:
        self._same_target(statement, source)
        count = self._subjects(statement, source)
        checks = [
            Check("target", "pass", f"the statement is about {_about(statement)}"),
            Check("subjects", "pass", f"{count} model file(s) have the attested sha256"),
        ]
        return checks + self._drift(statement, source)

    def _same_target(self, statement: Mapping[str, Any], source: str) -> None:
        t = self.target
        run = statement["predicate"]["runDetails"]["metadata"].get("invocationId")
        same = run == t.run_id
        if t.model_name is not None:
            same = same and t.model_uri in _subject_note(statement, "mlflow_model_uri")
            same = same and t.model_md5 in _subject_note(statement, "dvc_md5")
        if not same:
            about = t.model_uri or f"run {t.run_id}"
            raise SubjectMismatchError(source, [f"it is about {_about(statement)}, not {about}"])

    def _subjects(self, statement: Mapping[str, Any], source: str) -> int:
        """Hash each attested model object once (a folder's files together)."""
        commit = statement["predicate"]["buildDefinition"]["externalParameters"].get("commit")
        objects: dict[tuple[str, str], dict[str, str]] = {}
        for s in statement["subject"]:
            notes = s.get("annotations", {})
            folder = notes.get("dvc_path")
            key = (folder or s["name"], str(notes.get("dvc_md5", "")))
            rel = s["name"][len(folder) + 1 :] if folder else ""
            objects.setdefault(key, {})[rel] = s["digest"]["sha256"]
        problems = []
        for (name, md5), attested in sorted(objects.items()):
            try:
                found = digest(self.project, self.root, name, md5, commit)
            except ContentProblem as exc:
                problems.append(str(exc))
                continue
            now = found.files or {"": found.sha256}
            for rel in sorted(set(now) | set(attested)):
                if now.get(rel) != attested.get(rel):
                    label = f"{name}/{rel}" if rel else name
                    problems.append(
                        f"{label}: sha256 {now.get(rel) or 'absent'}, "
                        f"attested {attested.get(rel) or 'absent'}"
                    )
        if problems:
            raise SubjectMismatchError(source, problems)
        return sum(len(v) for v in objects.values())

    def _drift(self, statement: Mapping[str, Any], source: str) -> list[Check]:
        from dvflow.proof._show import intact_record

        from ._attest import closure_records, stage_record

        problems: list[str] = []
        attested_records = {
            b["annotations"]["run_id"]: b["digest"]["sha256"]
            for b in statement["predicate"]["runDetails"]["byproducts"]
        }
        for run_id, sha in sorted(attested_records.items()):
            try:
                _, _, now = intact_record(self.tracker, run_id)
            except (RecordTamperedError, NotFoundError) as exc:
                problems.append(exc.message)
                continue
            if now != sha:
                problems.append(f"record of run {run_id}: sha256 {now}, attested {sha}")
        if problems:
            raise DependencyDriftError(source, problems)
        record, sha = stage_record(self.tracker, self.target)
        closure = closure_records(self.tracker, record, sha, self.path, self.tracking_uri)
        runs_now = {r.mlflow["run_id"] for r, _ in closure}
        if runs_now != set(attested_records):
            added = sorted(runs_now - set(attested_records))
            gone = sorted(set(attested_records) - runs_now)
            problems.append(
                f"the lineage's stage runs changed (now also {added}, no longer {gone})"
            )
        drifted, inputs = self._dependencies(statement, closure)
        if problems + drifted:
            raise DependencyDriftError(source, problems + drifted)
        records = f"{len(attested_records)} record(s) still have their digests"
        return [Check("records", "pass", records), inputs]

    def _dependencies(
        self, statement: Mapping[str, Any], closure: Sequence[Any]
    ) -> tuple[list[str], Check]:
        attested = {
            (d["name"], d["annotations"]["dvc_md5"]): d["digest"]["sha256"]
            for d in statement["predicate"]["buildDefinition"]["resolvedDependencies"]
            if "dvc_md5" in d.get("annotations", {})
        }
        now: dict[tuple[str, str], str | None] = {}
        for record, _ in closure:
            for p in record.inputs:
                if p.md5:
                    now.setdefault((p.path, p.md5), record.code.get("commit"))
        problems = [
            f"{name}: the records name md5 {md5}, the attestation does not"
            for name, md5 in sorted(set(now) - set(attested))
        ] + [
            f"{name}: attested md5 {md5}, no record of the lineage reads it now"
            for name, md5 in sorted(set(attested) - set(now))
        ]
        checked = skipped = 0
        for (name, md5), sha in sorted(attested.items()):
            if (name, md5) not in now:
                continue
            try:
                found = digest(self.project, self.root, name, md5, now[(name, md5)], fetch=False)
            except ContentProblem as exc:
                if "other bytes" in str(exc) or "was changed" in str(exc):
                    problems.append(str(exc))
                else:
                    skipped += 1
                continue
            checked += 1
            if found.sha256 != sha:
                problems.append(f"{name}: sha256 {found.sha256} now, attested {sha}")
        check = Check(
            "inputs",
            "pass" if not skipped else "warn",
            f"{len(attested)} input(s) match the records; {checked} rehashed"
            + (f", {skipped} not at hand (not in DVC's cache)" if skipped else ""),
        )
        return problems, check


def envelope_sha256(raw: bytes) -> str:
    return sha256_hex(raw)
