"""Typed errors of the public API; adapters map them to status codes in one place."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runplane.models import Run


class RunplaneError(Exception):
    """Base class of every error runplane raises on purpose."""


class StoreClosed(RunplaneError):
    """The app (or store) was closed while, or before, this call used it."""


class StoreUnavailable(RunplaneError):
    """The database could not answer: connection lost or refused, server restarting,
    SQLite busy or failing I/O (HTTP 503 with ``Retry-After``). Transient: the same call
    may succeed in a moment. A write that failed with it may or may not have been stored
    (the connection can drop after the commit): whoever retries it must cope with both."""

    #: Seconds a client should wait before trying again.
    retry_after = 1

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"the database is unavailable ({type(cause).__name__}: {cause}); "
                         f"try again in {self.retry_after}s")
        self.__cause__ = cause


#: What a worker takes for the store failing under it, not for the workflow failing.
STORE_FAULTS: tuple[type[RunplaneError], ...] = (StoreUnavailable, StoreClosed)


class ConfigError(RunplaneError):
    """A project's configuration (``langgraph.json``) cannot be served: a missing file, a bad
    path, an attribute that is no graph. The message is one line naming the file and the key;
    the CLI prints it and exits 2. Not a ValueError: the CLI's ValueErrors are other faults."""


class NotFound(RunplaneError, LookupError):
    """The thing named by an id does not exist (HTTP 404)."""


class RunNotFound(NotFound):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id!r} not found")
        self.run_id = run_id


class ThreadNotFound(NotFound):
    def __init__(self, thread_id: str) -> None:
        super().__init__(f"thread {thread_id!r} not found")
        self.thread_id = thread_id


class AssistantNotFound(NotFound):
    def __init__(self, assistant_id: str, version: int | None = None) -> None:
        what = f"assistant {assistant_id!r}" if version is None \
            else f"version {version} of assistant {assistant_id!r}"
        super().__init__(f"{what} not found")
        self.assistant_id = assistant_id
        self.version = version


class CronNotFound(NotFound):
    def __init__(self, cron_id: str) -> None:
        super().__init__(f"cron {cron_id!r} not found")
        self.cron_id = cron_id


class Conflict(RunplaneError):
    """The request is valid but the current state forbids it (HTTP 409)."""


class RunConflict(Conflict):
    """The run's status does not allow the operation; ``status`` is its current status."""

    def __init__(self, run_id: str, status: str, message: str | None = None) -> None:
        super().__init__(message or f"run {run_id!r} is already {status}")
        self.run_id = run_id
        self.status = status


class ThreadBusy(Conflict):
    """``multitask_strategy='reject'`` and the thread already has an active run."""

    def __init__(self, thread_id: str, active_run_ids: list[str]) -> None:
        super().__init__(
            f"thread {thread_id!r} already has an active run ({', '.join(active_run_ids)}); "
            "multitask_strategy='reject' refuses a second one"
        )
        self.thread_id = thread_id
        self.active_run_ids = active_run_ids


class ThreadActive(Conflict):
    """The thread's state cannot be edited while it has a pending or running run."""

    def __init__(self, thread_id: str, active_run_ids: list[str]) -> None:
        super().__init__(
            f"thread {thread_id!r} has an active run ({', '.join(active_run_ids)}): its state "
            "can be edited once no run is pending or running on it")
        self.thread_id = thread_id
        self.active_run_ids = active_run_ids


class AccessDenied(RunplaneError, PermissionError):
    """A project's auth handler refused the request (HTTP ``status``: 403 unless the
    handler raised an ``HTTPException`` with another)."""

    def __init__(self, detail: str, status: int = 403,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.headers = dict(headers or {})


class NothingToResume(Conflict):
    """A run's ``command`` resumes a thread that is not waiting at an interrupt."""

    def __init__(self, thread_id: str | None) -> None:
        where = "a new thread" if thread_id is None else f"thread {thread_id!r}"
        super().__init__(f"{where} has no pending interrupt: command.resume has nothing to "
                         "resume (send input, or command.update/goto, instead)")
        self.thread_id = thread_id


class PausedElsewhere(Conflict):
    """A run resumes a thread paused by another workflow (or by a graph): only a run of
    the paused one can take up where it stopped."""

    def __init__(self, thread_id: str, paused_by: str, assistant_id: str) -> None:
        super().__init__(f"thread {thread_id!r} is paused in {paused_by}, not in "
                         f"{assistant_id!r}: resume it with a run of that one")
        self.thread_id = thread_id
        self.paused_by = paused_by


class RunExists(Conflict):
    """A run was asked for under an id another run has."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id!r} already exists")
        self.run_id = run_id


class ThreadExists(Conflict):
    def __init__(self, thread_id: str) -> None:
        super().__init__(f"thread {thread_id!r} already exists")
        self.thread_id = thread_id


class AssistantExists(Conflict):
    def __init__(self, assistant_id: str) -> None:
        super().__init__(f"assistant {assistant_id!r} already exists (if_exists='do_nothing' "
                         "answers it instead)")
        self.assistant_id = assistant_id


class AssistantBusy(Conflict):
    """An assistant with a pending or running run cannot be deleted."""

    def __init__(self, assistant_id: str, active_run_ids: list[str]) -> None:
        super().__init__(
            f"assistant {assistant_id!r} has active runs ({', '.join(active_run_ids)}): cancel "
            "them, or wait until they end, before deleting it")
        self.assistant_id = assistant_id
        self.active_run_ids = active_run_ids


class BuiltinAssistant(Conflict):
    """A workflow's or a graph's own assistant is the code's: it cannot be changed or
    deleted through the API (an assistant made for its graph can)."""

    def __init__(self, assistant_id: str, doing: str) -> None:
        super().__init__(
            f"assistant {assistant_id!r} is a workflow's or graph's own and cannot be "
            f"{doing}; create an assistant of its graph (POST /assistants) to configure it")
        self.assistant_id = assistant_id


class InvalidInput(RunplaneError, ValueError):
    """A value outside runplane's bounds (see :mod:`runplane.limits`); nothing was written.
    ``field`` names the argument (the wire field) that holds it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class UnknownWorkflow(RunplaneError, ValueError):
    """No workflow (assistant) is registered under this name."""

    def __init__(self, name: str, known: list[str] | None = None) -> None:
        hint = f"; known workflows: {', '.join(sorted(known))}" if known else ""
        super().__init__(f"unknown workflow {name!r}{hint}")
        self.name = name


class RunFailed(RunplaneError):
    """``join`` of a run that ended ``error`` or ``timeout``."""

    def __init__(self, run: Run) -> None:
        super().__init__(f"run {run.run_id} ended {run.status}: {run.error}")
        self.run = run


class RunCancelled(RunplaneError):
    """``join`` of a run that ended ``interrupted``."""

    def __init__(self, run: Run) -> None:
        reason = f" ({run.cancel_reason})" if run.cancel_reason else ""
        super().__init__(f"run {run.run_id} was interrupted{reason}")
        self.run = run


class ChildCancelled(RunplaneError):
    """A workflow awaited a child run that ended ``interrupted``."""

    def __init__(self, run_id: str, status: str, reason: str | None = None) -> None:
        why = f" ({reason})" if reason else ""
        super().__init__(f"child run {run_id} was cancelled{why}")
        self.run_id = run_id
        self.status = status


class ChildFailed(RunplaneError):
    """A workflow awaited a child run that ended ``error`` or ``timeout``."""

    def __init__(self, run_id: str, status: str, error: str | None) -> None:
        super().__init__(f"child run {run_id} ended {status}: {error}")
        self.run_id = run_id
        self.status = status
        self.error = error


class UnstorableValue(InvalidInput, TypeError):
    """A workflow handed runplane a value no store could keep (see
    :func:`runplane.limits.check_result`): an event's data, a child's input. Nothing was
    written. A ValueError like every out-of-bounds value, and a TypeError as a value that
    is no JSON at all always was."""


class StepResultNotSerializable(RunplaneError, TypeError):
    """A step returned a value that cannot be stored (no JSON, or outside the bounds of
    :mod:`runplane.limits`): the step failed, its result was not stored."""

    def __init__(self, step: str, cause: Exception) -> None:
        super().__init__(f"step {step!r} returned a value that cannot be stored: {cause}")
        self.step = step


class NonDeterministicReplay(RunplaneError):
    """On resume the workflow asked for a different step than the one stored at that index."""

    def __init__(self, index: int, stored: str, requested: str) -> None:
        super().__init__(
            f"step #{index} was stored as {stored!r} but the workflow now calls {requested!r}; "
            "workflow code must call its steps in the same order on every attempt"
        )
