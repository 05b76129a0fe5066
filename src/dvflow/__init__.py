"""dvflow: one provenance record per ML result, binding Git, DVC and MLflow.

Importing dvflow is cheap: MLflow and DVC are imported only by the calls
that need them.
"""

__version__ = "0.1.0"

from ._bind import BindResult, bind_commit
from ._config import Config, load_config
from ._demo import DemoResult, run_demo
from ._dvcfiles import Pointer
from ._exceptions import (
    ConfigError,
    DvcError,
    DvflowError,
    GitError,
    InterruptedRunError,
    InvalidFileError,
    NoPipelineError,
    NotAGitRepoError,
    NotFoundError,
    ProjectError,
    RecordNotFoundError,
    RecordTamperedError,
    RunNotFoundError,
    StageFailedError,
    TrackingError,
)
from ._pipeline import run_pipeline
from ._project import InitResult, init_project
from ._record import ProvenanceRecord
from ._results import PipelineRun, Progress, StageRun
from ._show import RecordCheck, check_record, load_record

__all__ = [
    "BindResult",
    "Config",
    "ConfigError",
    "DemoResult",
    "DvcError",
    "DvflowError",
    "GitError",
    "InitResult",
    "InterruptedRunError",
    "InvalidFileError",
    "NoPipelineError",
    "NotAGitRepoError",
    "NotFoundError",
    "PipelineRun",
    "Pointer",
    "Progress",
    "ProjectError",
    "ProvenanceRecord",
    "RecordCheck",
    "RecordNotFoundError",
    "RecordTamperedError",
    "RunNotFoundError",
    "StageFailedError",
    "StageRun",
    "TrackingError",
    "__version__",
    "bind_commit",
    "check_record",
    "init_project",
    "load_config",
    "load_record",
    "run_demo",
    "run_pipeline",
]
