"""dvflow: one provenance record per ML result, binding Git, DVC and MLflow.

Importing dvflow is cheap: MLflow and DVC are imported only by the calls
that need them.

The names in ``__all__`` are the whole public API. Behind them the code is
grouped in wings, internal subpackages with no stability promise (core,
stores, trace, proof, the registry, runs, team, cli); docs/architecture.md
draws them and which wing may import which.
"""

from ._registry import Promotion, Registration, promote, register_model
from .cli._demo import DemoResult, run_demo
from .core._config import Config, load_config
from .core._dvcfiles import Pointer
from .core._exceptions import (
    ConfigError,
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

__all__ = [
    "BindResult",
    "Check",
    "Config",
    "ConfigError",
    "DemoResult",
    "DvcError",
    "DvflowError",
    "EnvironmentProblemError",
    "GitError",
    "Graph",
    "IndexFileError",
    "IndexStatus",
    "InitResult",
    "InterruptedRunError",
    "InvalidFileError",
    "LineageIncompleteError",
    "LockedError",
    "ModelNotFoundError",
    "NoPipelineError",
    "NotAGitRepoError",
    "NotFoundError",
    "PipelineRun",
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
    "StageFailedError",
    "StageRun",
    "StoreEnvironmentError",
    "SyncResult",
    "TargetNotFoundError",
    "TrackingError",
    "Verification",
    "VerificationFailedError",
    "__version__",
    "bind_commit",
    "check_record",
    "dry_run",
    "impact",
    "init_project",
    "lineage",
    "load_config",
    "load_record",
    "promote",
    "register_model",
    "run_demo",
    "run_pipeline",
    "sync_spool",
    "update_index",
    "verify",
]
