"""The in-toto Statement v1 with a SLSA provenance v1 predicate, built from dvflow's records.

Pure data: the records, the digests and the builder go in, a dict comes out
(docs/attestations.md describes every field). No store, no key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dvflow.core._record import RECORD_ARTIFACT, ProvenanceRecord
from dvflow.core._redact import Redactor

from ._content import Digested

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
# dvflow has no web home to name: its build type is a URN, described in docs/attestations.md.
BUILD_TYPE = "urn:dvflow:build-type:dvc-stage:v1"
LOCAL_BUILDER = "urn:dvflow:builder:local"


@dataclass(frozen=True)
class Subject:
    """A model file (or an output of a stage run) and what names it in the stores."""

    digested: Digested
    annotations: Mapping[str, str]


def subjects_json(subjects: Sequence[Subject]) -> list[dict[str, Any]]:
    """One in-toto subject per file; a directory's files each get their own."""
    out = []
    for subject in subjects:
        d = subject.digested
        files = d.files or {"": d.sha256}
        for rel, sha in sorted(files.items()):
            name = f"{d.path}/{rel}" if rel else d.path
            annotations = {**subject.annotations, "dvc_md5": d.md5}
            if rel:
                annotations["dvc_path"] = d.path
            out.append({"name": name, "digest": {"sha256": sha}, "annotations": annotations})
    return out


def dependency_json(d: Digested, consumers: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """A data version the closure read: sha256 as digest, DVC md5 and its readers as annotations."""
    annotations: dict[str, Any] = {
        "dvc_md5": d.md5,
        "consumed_by": [{"stage": s, "run_id": r} for s, r in sorted(set(consumers))],
    }
    if d.files:
        annotations["nfiles"] = len(d.files)
    return {"name": d.path, "digest": {"sha256": d.sha256}, "annotations": annotations}


def builder_id(env: Mapping[str, str] | None = None) -> str:
    """Where ``dvflow attest`` runs: the CI workflow's identity, else local."""
    env = os.environ if env is None else env
    if env.get("GITHUB_ACTIONS") == "true" and env.get("GITHUB_WORKFLOW_REF"):
        server = env.get("GITHUB_SERVER_URL") or "https://github.com"
        return Redactor().redact(f"{server}/{env['GITHUB_WORKFLOW_REF']}")
    if env.get("GITLAB_CI") == "true" and env.get("CI_PROJECT_URL"):
        config = env.get("CI_CONFIG_PATH") or ".gitlab-ci.yml"
        ref = env.get("CI_COMMIT_REF_NAME") or "unknown"
        return Redactor().redact(f"{env['CI_PROJECT_URL']}/-/ci/{config}@{ref}")
    return LOCAL_BUILDER


def statement(
    *,
    subjects: Sequence[Subject],
    record: ProvenanceRecord,
    record_sha256: str,
    closure: Sequence[tuple[ProvenanceRecord, str]],
    dependencies: Sequence[dict[str, Any]],
    builder: str,
    dvflow_version: str,
) -> dict[str, Any]:
    """The statement of ``record``'s stage run; ``closure``: it and every stage run upstream."""
    code = record.code
    stage = record.stage or {"name": "", "cmd": "", "status": "", "produced_by": None}
    external: dict[str, Any] = {
        "repository": code.get("repo_url"),
        "commit": code.get("commit"),
        "stage": stage["name"],
        "command": stage["cmd"],
        "params": dict(sorted(record.params.items())),
    }
    if code.get("dvc_root"):
        external["dvc_root"] = code["dvc_root"]
    env = record.environment
    internal = {
        "python": env["python"],
        "platform": env["platform"],
        "dvc": env["dvc"],
        "mlflow": env["mlflow"],
        "packages_sha256": env["packages_sha256"],
        "dvflow": dvflow_version,
    }
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects_json(subjects),
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": external,
                "internalParameters": internal,
                "resolvedDependencies": [*_code_dependencies(closure), *dependencies],
            },
            "runDetails": {
                "builder": {"id": builder, "version": {"dvflow": dvflow_version}},
                "metadata": {
                    "invocationId": record.mlflow["run_id"],
                    "startedOn": _rfc3339(record.started),
                    "finishedOn": _rfc3339(record.ended),
                },
                "byproducts": [_record_json(r, sha) for r, sha in closure],
            },
        },
    }


def _code_dependencies(closure: Sequence[tuple[ProvenanceRecord, str]]) -> list[dict[str, Any]]:
    """Every commit of the closure (``gitCommit``), and the patch of each dirty run."""
    found: dict[str, dict[str, Any]] = {}
    for record, _ in closure:
        code = record.code
        commit = code.get("commit")
        if commit and commit not in found:
            entry: dict[str, Any] = {"name": "git", "digest": {"gitCommit": commit}}
            if code.get("repo_url"):
                entry["uri"] = f"git+{code['repo_url']}@{commit}"
            found[commit] = entry
        if code.get("dirty") and code.get("patch_sha256"):
            run_id = record.mlflow["run_id"]
            found[f"patch:{run_id}"] = {
                "name": f"runs:/{run_id}/{code.get('patch_artifact') or 'dvflow/code.patch'}",
                "digest": {"sha256": code["patch_sha256"]},
                "annotations": {"run_id": run_id, "kind": "uncommitted patch"},
            }
    return list(found.values())


def _record_json(record: ProvenanceRecord, sha: str) -> dict[str, Any]:
    run_id = record.mlflow["run_id"]
    stage = record.stage["name"] if record.stage else ""
    return {
        "name": f"runs:/{run_id}/{RECORD_ARTIFACT}",
        "digest": {"sha256": sha},
        "annotations": {"run_id": run_id, "stage": stage},
    }


def _rfc3339(stamp: str) -> str:
    """The record's ISO times with a UTC offset are RFC 3339 already; 'Z' for +00:00."""
    return stamp.replace("+00:00", "Z") if stamp.endswith("+00:00") else stamp
