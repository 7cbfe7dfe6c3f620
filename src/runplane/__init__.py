"""runplane: durable runs of AI-agent workflows whose stop button always works.

The names below are imported when first used (PEP 562): the command line's client
commands (``runplane runs get``, ...) then start without the engine, the web stack and
LangGraph.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
        RunExists,
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

#: Where each public name lives.
_HOMES = {
    "CancelResult": "runplane.models",
    "ChildCancelled": "runplane.errors",
    "ChildFailed": "runplane.errors",
    "ChildHandle": "runplane.context",
    "Context": "runplane.context",
    "Event": "runplane.models",
    "Hooks": "runplane.hooks",
    "InvalidInput": "runplane.errors",
    "NothingToResume": "runplane.errors",
    "PausedElsewhere": "runplane.errors",
    "Run": "runplane.models",
    "RunCancelled": "runplane.errors",
    "RunConflict": "runplane.errors",
    "RunExists": "runplane.errors",
    "RunFailed": "runplane.errors",
    "RunNode": "runplane.models",
    "RunNotFound": "runplane.errors",
    "RunStatus": "runplane.models",
    "Runplane": "runplane.app",
    "RunplaneError": "runplane.errors",
    "Step": "runplane.models",
    "StepResultNotSerializable": "runplane.errors",
    "StoreClosed": "runplane.errors",
    "StoreUnavailable": "runplane.errors",
    "Thread": "runplane.models",
    "ThreadActive": "runplane.errors",
    "ThreadBusy": "runplane.errors",
    "ThreadNotFound": "runplane.errors",
    "UnknownWorkflow": "runplane.errors",
    "UnstorableValue": "runplane.errors",
}

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
    "RunExists",
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


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        value = getattr(import_module(_HOMES[name]), name)
        globals()[name] = value  # once: later lookups find it here
        return value
    raise AttributeError(f"module 'runplane' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
