"""runplane: durable runs of AI-agent workflows whose stop button always works."""

from importlib.metadata import PackageNotFoundError, version

from runplane.app import Runplane
from runplane.context import ChildHandle, Context
from runplane.errors import (
    ChildCancelled,
    ChildFailed,
    InvalidInput,
    NothingToResume,
    PausedElsewhere,
    RunCancelled,
    RunConflict,
    RunFailed,
    RunNotFound,
    RunplaneError,
    StepResultNotSerializable,
    StoreClosed,
    StoreUnavailable,
    ThreadActive,
    ThreadBusy,
    ThreadNotFound,
    UnknownWorkflow,
    UnstorableValue,
)
from runplane.hooks import Hooks
from runplane.models import CancelResult, Event, Run, RunNode, RunStatus, Step, Thread

try:
    __version__ = version("runplane")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "CancelResult",
    "ChildCancelled",
    "ChildFailed",
    "ChildHandle",
    "Context",
    "Event",
    "Hooks",
    "InvalidInput",
    "NothingToResume",
    "PausedElsewhere",
    "Run",
    "RunCancelled",
    "RunConflict",
    "RunFailed",
    "RunNode",
    "RunNotFound",
    "RunStatus",
    "Runplane",
    "RunplaneError",
    "Step",
    "StepResultNotSerializable",
    "StoreClosed",
    "StoreUnavailable",
    "Thread",
    "ThreadActive",
    "ThreadBusy",
    "ThreadNotFound",
    "UnknownWorkflow",
    "UnstorableValue",
]
