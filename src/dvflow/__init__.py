"""dvflow: one provenance record per ML result, binding Git, DVC and MLflow.

Importing dvflow is cheap: it imports none of its wings. Each name below is
imported on first use (``dvflow.verify`` loads the proof wing, not the runs
wing), and MLflow and DVC only by the calls that need them.

The names in ``__all__`` are the whole public API. Behind them the code is
grouped in wings, internal subpackages with no stability promise (core,
stores, trace, proof, the registry, runs, export, team, web, cli); docs/architecture.md
draws them and which wing may import which.
"""

from __future__ import annotations

from importlib import import_module

# typing's own TYPE_CHECKING costs an import of typing; type checkers read this one alike.
TYPE_CHECKING = False
if TYPE_CHECKING:  # what type checkers and editors see; at run time __getattr__ imports
    from ._registry import Promotion, Registration, promote, register_model
    from .cli._demo import DemoResult, run_demo
    from .core._config import Config, load_config
    from .core._dvcfiles import Pointer
    from .core._exceptions import (
        ConfigError,
        ConfirmationError,
        ConsumerError,
        DvcError,
        DvflowError,
        EnvironmentProblemError,
        GitError,
        IndexFileError,
        InterruptedRunError,
        InvalidFileError,
        LineageIncompleteError,
        LockedError,
        ModelNotFoundError,
        NoPipelineError,
        NotAGitRepoError,
        NotFoundError,
        PlanStaleError,
        ProjectError,
        RebuildError,
        RecordNotFoundError,
        RecordTamperedError,
        RemoteError,
        RunNotFoundError,
        StageFailedError,
        StoreEnvironmentError,
        TargetNotFoundError,
        TrackingError,
        VerificationFailedError,
    )
    from .core._record import ProvenanceRecord
    from .core._version import __version__
    from .export._attest import Attestation, attest
    from .export._dsse import KeyPair, generate_keypair
    from .export._errors import AttestationError, KeyFileError
    from .export._export import export_openlineage
    from .export._verify_attest import AttestationVerification, verify_attestation
    from .governance._gc import GcApplied, GcOptions, GcPlan, apply_gc, plan_gc
    from .governance._keep import Scopes
    from .governance._storage import StorageReport, storage_report
    from .proof._checks import Check
    from .proof._rebuild import Rebuild
    from .proof._show import RecordCheck, check_record, load_record
    from .proof._verify import Verification, verify
    from .runs._bind import BindResult, bind_commit
    from .runs._dry import PlannedStage, dry_run
    from .runs._pipeline import run_pipeline
    from .runs._results import PipelineRun, Progress, StageRun
    from .stores._repro import ReproFlags
    from .team._project import InitResult, init_project
    from .team._sync import SyncResult, sync_spool
    from .trace._graph import Graph
    from .trace._queries import IndexStatus, impact, lineage, update_index
    from .web._app import create_app

__all__ = [
    "Attestation",
    "AttestationError",
    "AttestationVerification",
    "BindResult",
    "Check",
    "Config",
    "ConfigError",
    "ConfirmationError",
    "ConsumerError",
    "DemoResult",
    "DvcError",
    "DvflowError",
    "EnvironmentProblemError",
    "GcApplied",
    "GcOptions",
    "GcPlan",
    "GitError",
    "Graph",
    "IndexFileError",
    "IndexStatus",
    "InitResult",
    "InterruptedRunError",
    "InvalidFileError",
    "KeyFileError",
    "KeyPair",
    "LineageIncompleteError",
    "LockedError",
    "ModelNotFoundError",
    "NoPipelineError",
    "NotAGitRepoError",
    "NotFoundError",
    "PipelineRun",
    "PlanStaleError",
    "PlannedStage",
    "Pointer",
    "Progress",
    "ProjectError",
    "Promotion",
    "ProvenanceRecord",
    "Rebuild",
    "RebuildError",
    "RecordCheck",
    "RecordNotFoundError",
    "RecordTamperedError",
    "Registration",
    "RemoteError",
    "ReproFlags",
    "RunNotFoundError",
    "Scopes",
    "StageFailedError",
    "StageRun",
    "StorageReport",
    "StoreEnvironmentError",
    "SyncResult",
    "TargetNotFoundError",
    "TrackingError",
    "Verification",
    "VerificationFailedError",
    "__version__",
    "apply_gc",
    "attest",
    "bind_commit",
    "check_record",
    "create_app",
    "dry_run",
    "export_openlineage",
    "generate_keypair",
    "impact",
    "init_project",
    "lineage",
    "load_config",
    "load_record",
    "plan_gc",
    "promote",
    "register_model",
    "run_demo",
    "run_pipeline",
    "storage_report",
    "sync_spool",
    "update_index",
    "verify",
    "verify_attestation",
]

# Where each public name lives, imported by __getattr__ on first use.
_HOMES = {
    "Attestation": "dvflow.export._attest",
    "AttestationError": "dvflow.export._errors",
    "AttestationVerification": "dvflow.export._verify_attest",
    "BindResult": "dvflow.runs._bind",
    "Check": "dvflow.proof._checks",
    "Config": "dvflow.core._config",
    "ConfigError": "dvflow.core._exceptions",
    "ConsumerError": "dvflow.core._exceptions",
    "DemoResult": "dvflow.cli._demo",
    "DvcError": "dvflow.core._exceptions",
    "DvflowError": "dvflow.core._exceptions",
    "EnvironmentProblemError": "dvflow.core._exceptions",
    "GitError": "dvflow.core._exceptions",
    "Graph": "dvflow.trace._graph",
    "IndexFileError": "dvflow.core._exceptions",
    "IndexStatus": "dvflow.trace._queries",
    "InitResult": "dvflow.team._project",
    "InterruptedRunError": "dvflow.core._exceptions",
    "InvalidFileError": "dvflow.core._exceptions",
    "KeyFileError": "dvflow.export._errors",
    "KeyPair": "dvflow.export._dsse",
    "LineageIncompleteError": "dvflow.core._exceptions",
    "LockedError": "dvflow.core._exceptions",
    "ModelNotFoundError": "dvflow.core._exceptions",
    "NoPipelineError": "dvflow.core._exceptions",
    "NotAGitRepoError": "dvflow.core._exceptions",
    "NotFoundError": "dvflow.core._exceptions",
    "PipelineRun": "dvflow.runs._results",
    "PlannedStage": "dvflow.runs._dry",
    "Pointer": "dvflow.core._dvcfiles",
    "Progress": "dvflow.runs._results",
    "ProjectError": "dvflow.core._exceptions",
    "Promotion": "dvflow._registry",
    "ProvenanceRecord": "dvflow.core._record",
    "Rebuild": "dvflow.proof._rebuild",
    "RebuildError": "dvflow.core._exceptions",
    "RecordCheck": "dvflow.proof._show",
    "RecordNotFoundError": "dvflow.core._exceptions",
    "RecordTamperedError": "dvflow.core._exceptions",
    "Registration": "dvflow._registry",
    "RemoteError": "dvflow.core._exceptions",
    "ReproFlags": "dvflow.stores._repro",
    "RunNotFoundError": "dvflow.core._exceptions",
    "StageFailedError": "dvflow.core._exceptions",
    "StageRun": "dvflow.runs._results",
    "StoreEnvironmentError": "dvflow.core._exceptions",
    "SyncResult": "dvflow.team._sync",
    "TargetNotFoundError": "dvflow.core._exceptions",
    "TrackingError": "dvflow.core._exceptions",
    "Verification": "dvflow.proof._verify",
    "VerificationFailedError": "dvflow.core._exceptions",
    "__version__": "dvflow.core._version",
    "attest": "dvflow.export._attest",
    "bind_commit": "dvflow.runs._bind",
    "check_record": "dvflow.proof._show",
    "dry_run": "dvflow.runs._dry",
    "export_openlineage": "dvflow.export._export",
    "create_app": "dvflow.web._app",
    "generate_keypair": "dvflow.export._dsse",
    "impact": "dvflow.trace._queries",
    "init_project": "dvflow.team._project",
    "lineage": "dvflow.trace._queries",
    "load_config": "dvflow.core._config",
    "load_record": "dvflow.proof._show",
    "promote": "dvflow._registry",
    "register_model": "dvflow._registry",
    "run_demo": "dvflow.cli._demo",
    "run_pipeline": "dvflow.runs._pipeline",
    "sync_spool": "dvflow.team._sync",
    "update_index": "dvflow.trace._queries",
    "verify": "dvflow.proof._verify",
    "verify_attestation": "dvflow.export._verify_attest",
    "ConfirmationError": "dvflow.core._exceptions",
    "PlanStaleError": "dvflow.core._exceptions",
    "GcApplied": "dvflow.governance._gc",
    "GcOptions": "dvflow.governance._gc",
    "GcPlan": "dvflow.governance._gc",
    "apply_gc": "dvflow.governance._gc",
    "plan_gc": "dvflow.governance._gc",
    "Scopes": "dvflow.governance._keep",
    "StorageReport": "dvflow.governance._storage",
    "storage_report": "dvflow.governance._storage",
}

# The wings (internal subpackages), importable as attributes like any subpackage.
_WINGS = (
    "cli",
    "core",
    "export",
    "governance",
    "proof",
    "runs",
    "stores",
    "team",
    "trace",
    "web",
)


# Only at run time: a module __getattr__ seen by a type checker would make every
# misspelt name (``from dvflow import veirfy``) pass as its return type.
if not TYPE_CHECKING:

    def __getattr__(name: str) -> object:
        """Import a public name's module on first use (PEP 562) and keep the name."""
        home = _HOMES.get(name)
        if home is not None:
            value = getattr(import_module(home), name)
        elif name in _WINGS:
            value = import_module(f"{__name__}.{name}")
        else:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    """The public API, the wings and the module's own dunders, loaded or not."""
    return sorted({*__all__, *_WINGS, *(n for n in globals() if n.startswith("__"))})
