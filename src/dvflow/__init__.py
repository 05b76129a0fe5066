"""dvflow: one provenance record per ML result, binding Git, DVC and MLflow.

Importing dvflow is cheap: MLflow and DVC are imported only by the calls
that need them.
"""

from ._bind import BindResult, bind_commit
from ._checks import Check
from ._config import Config, load_config
from ._demo import DemoResult, run_demo
from ._dry import PlannedStage, dry_run
from ._dvcfiles import Pointer
from ._exceptions import (
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
from ._graph import Graph
from ._pipeline import run_pipeline
from ._project import InitResult, init_project
from ._queries import IndexStatus, impact, lineage, update_index
from ._rebuild import Rebuild
from ._record import ProvenanceRecord
from ._registry import Promotion, Registration, promote, register_model
from ._repro import ReproFlags
from ._results import PipelineRun, Progress, StageRun
from ._show import RecordCheck, check_record, load_record
from ._sync import SyncResult, sync_spool
from ._verify import Verification, verify
from ._version import __version__

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
