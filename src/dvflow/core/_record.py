"""The provenance record: one canonical JSON document per stage or pipeline run."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NotRequired, TypedDict

from ._dvcfiles import Pointer
from ._exceptions import InvalidFileError

SCHEMA_VERSION = 1
RECORD_ARTIFACT = "dvflow/record.json"
PATCH_ARTIFACT = "dvflow/code.patch"
STDERR_ARTIFACT = "dvflow/stderr.txt"
PACKAGES_ARTIFACT = "dvflow/packages.txt"
DIGEST_TAG = "dvflow.record_sha256"

StageStatus = Literal["ran", "restored", "up-to-date", "failed", "killed", "skipped"]


class CodeInfo(TypedDict):
    commit: str | None
    branch: str | None
    dirty: bool
    patch_sha256: str | None
    patch_artifact: str | None
    repo_url: str | None
    # The DVC project's folder when it is not the git root (dvc init --subdir);
    # every path in a record is relative to the git root.
    dvc_root: NotRequired[str]


class StageInfo(TypedDict):
    name: str
    cmd: str
    status: str
    produced_by: str | None


class MlflowInfo(TypedDict):
    tracking_uri: str
    experiment_id: str
    run_id: str
    parent_run_id: str | None


class EnvironmentInfo(TypedDict):
    python: str
    platform: str
    dvc: str
    mlflow: str
    packages_sha256: str


def canonical_json(data: Mapping[str, Any]) -> bytes:
    """Sorted keys, no insignificant whitespace, UTF-8: equal data, equal bytes."""
    return json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class ProvenanceRecord:
    """What made one result: code, stage, data, params, metrics, environment."""

    kind: Literal["stage", "pipeline"]
    status: str
    code: CodeInfo
    environment: EnvironmentInfo
    mlflow: MlflowInfo
    started: str
    ended: str
    stage: StageInfo | None = None
    inputs: tuple[Pointer, ...] = ()
    outputs: tuple[Pointer, ...] = ()
    params: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    stages: tuple[Mapping[str, str], ...] = ()
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "kind": self.kind,
            "status": self.status,
            "code": dict(self.code),
            "stage": dict(self.stage) if self.stage else None,
            "inputs": [p.to_dict() for p in self.inputs],
            "outputs": [p.to_dict() for p in self.outputs],
            "params": dict(self.params),
            "metrics": dict(self.metrics),
            "environment": dict(self.environment),
            "mlflow": dict(self.mlflow),
            "times": {"started": self.started, "ended": self.ended},
            "stages": [dict(s) for s in self.stages],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProvenanceRecord:
        try:
            version = data["schema_version"]
            if version != SCHEMA_VERSION:
                raise ValueError(f"unsupported schema_version {version!r}")
            times = data["times"]
            return cls(
                schema_version=version,
                kind=data["kind"],
                status=data["status"],
                code=data["code"],
                stage=data.get("stage"),
                inputs=tuple(Pointer.from_dict(p) for p in data.get("inputs", [])),
                outputs=tuple(Pointer.from_dict(p) for p in data.get("outputs", [])),
                params=dict(data.get("params", {})),
                metrics=dict(data.get("metrics", {})),
                environment=data["environment"],
                mlflow=data["mlflow"],
                started=times["started"],
                ended=times["ended"],
                stages=tuple(data.get("stages", [])),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidFileError(RECORD_ARTIFACT, f"not a dvflow record: {exc}") from exc

    def to_json(self) -> bytes:
        return canonical_json(self.to_dict())

    @property
    def sha256(self) -> str:
        return sha256_hex(self.to_json())


def parse_record(raw: bytes) -> ProvenanceRecord:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidFileError(RECORD_ARTIFACT, f"not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidFileError(RECORD_ARTIFACT, "not a JSON object")
    return ProvenanceRecord.from_dict(data)
