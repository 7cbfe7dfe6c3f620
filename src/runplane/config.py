"""Settings: keyword arguments (the command line's options among them), else ``RUNPLANE_*``
environment variables, else defaults.

Every setting runplane has is a field of one of the dataclasses below (the HTTP server's
are in :mod:`runplane.server.settings`) and is read by :func:`load`: one default, one
variable (``RUNPLANE_`` and the field's name in capitals), one check. A bad value, given or
from the environment, is refused at start-up by a ValueError that names it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, TypeVar

from runplane.limits import MAX_ATTEMPTS

DEFAULT_DATABASE_URL = "sqlite:///./runplane.db"

#: What a settings class says is wrong with it: the fields at fault and why.
Problems = Iterator[tuple[tuple[str, ...], str]]


class _Checked(Protocol):
    def problems(self) -> Problems: ...


S = TypeVar("S", bound=_Checked)


def env_name(name: str) -> str:
    """The environment variable of the setting ``name``."""
    return f"RUNPLANE_{name.upper()}"


def words(raw: str) -> tuple[str, ...]:
    """A list setting in a variable: comma-separated."""
    return tuple(word.strip() for word in raw.split(",") if word.strip())


def flag(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected one of 1, true, yes, on, 0, false, no, off")


def load(cls: type[S], overrides: Mapping[str, Any]) -> S:
    """``cls`` from ``overrides`` (None: not given), else the environment, else defaults;
    checked. Unknown overrides are a TypeError; bad values a ValueError naming them (with
    the variable they came from)."""
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    unknown = set(overrides) - set(known)
    if unknown:
        raise TypeError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    from_env: dict[str, str] = {}
    for name, f in known.items():
        raw = os.environ.get(env_name(name))
        if overrides.get(name) is not None:
            values[name] = overrides[name]
        elif raw:
            values[name] = _parse(f, raw)
            from_env[name] = raw
    settings = cls(**values)
    for names, problem in settings.problems():
        sources = [f"{env_name(n)}={from_env[n]!r}" for n in names if n in from_env]
        raise ValueError(f"{', '.join(sources)}: {problem}" if sources else problem)
    return settings


def _parse(f: dataclasses.Field[Any], raw: str) -> Any:
    """``raw`` read by the field's ``parse`` metadata, else by the type of its default."""
    parse: Callable[[str], Any] = f.metadata.get("parse") or type(f.default)
    if parse is bool:
        parse = flag
    elif parse is tuple:
        parse = words
    try:
        return parse(raw)
    except ValueError as exc:
        if isinstance(parse, type):
            raise ValueError(f"{env_name(f.name)}={raw!r} is not a valid "
                             f"{parse.__name__}") from None
        raise ValueError(f"{env_name(f.name)}={raw!r}: {exc}") from None


def _positive(settings: object, *names: str) -> Problems:
    for name in names:
        if getattr(settings, name) <= 0:
            yield (name,), f"{name} must be > 0, got {getattr(settings, name)}"


def check_port(name: str, port: int | None) -> Problems:
    if port is not None and not 0 <= port <= 65535:
        yield (name,), f"{name} must be between 0 and 65535, got {port}"


@dataclass(frozen=True, slots=True)
class Settings:
    """An app's settings (``Runplane(...)``'s keyword arguments): its store and worker."""

    database_url: str = DEFAULT_DATABASE_URL
    #: Whether the app runs an embedded worker (False: a pure client of the store).
    worker: bool = True
    #: Runs one worker executes at once.
    concurrency: int = 16
    #: How often a worker checks the store for cancels of its runs and for new runs, and
    #: waiters for runs changed by other processes: the fallback for what no signal brings
    #: (PostgreSQL: NOTIFY; SQLite: its check for other processes' commits).
    poll_interval: float = 0.05
    #: A lease not renewed for this long is taken to belong to a dead worker.
    lease_ttl: float = 30.0
    heartbeat_interval: float = 10.0
    #: How often the worker looks for runs whose lease expired.
    reap_interval: float = 5.0
    #: How often a worker fires the crons that are due (their runs start this late at most).
    cron_interval: float = 1.0
    #: How often a worker delivers the webhooks that are due.
    webhook_interval: float = 1.0
    #: Seconds a webhook's receiver gets to answer one attempt.
    webhook_timeout: float = 10.0
    #: Attempts at a webhook before its delivery is ``failed``.
    webhook_attempts: int = 5
    #: The hosts a run's webhook may name (none: any host).
    webhook_hosts: tuple[str, ...] = ()
    #: Claims (first start plus crash recoveries) before a run ends ``error``.
    max_attempts: int = 3
    #: Seconds running runs get to finish when the app closes; then they go back to the
    #: queue, to resume elsewhere.
    shutdown_grace: float = 10.0
    worker_id: str = ""

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        settings = load(cls, overrides)
        if not settings.worker_id:
            worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
            settings = dataclasses.replace(settings, worker_id=worker_id)
        return settings

    def problems(self) -> Problems:
        if self.concurrency < 1:
            yield ("concurrency",), f"concurrency must be >= 1, got {self.concurrency}"
        if not 1 <= self.max_attempts <= MAX_ATTEMPTS:
            yield ("max_attempts",), (f"max_attempts must be between 1 and {MAX_ATTEMPTS}, "
                                      f"got {self.max_attempts}")
        yield from _positive(self, "poll_interval", "lease_ttl", "heartbeat_interval",
                             "reap_interval", "cron_interval", "webhook_interval",
                             "webhook_timeout")
        if not 1 <= self.webhook_attempts <= MAX_ATTEMPTS:
            yield ("webhook_attempts",), (f"webhook_attempts must be between 1 and "
                                          f"{MAX_ATTEMPTS}, got {self.webhook_attempts}")
        if self.shutdown_grace < 0:
            yield ("shutdown_grace",), f"shutdown_grace must be >= 0, got {self.shutdown_grace}"
        if self.heartbeat_interval >= self.lease_ttl:
            yield ("heartbeat_interval", "lease_ttl"), (
                f"heartbeat_interval ({self.heartbeat_interval}) must be shorter than "
                f"lease_ttl ({self.lease_ttl})")


@dataclass(frozen=True, slots=True)
class ProcessSettings:
    """What a ``runplane serve`` or ``runplane worker`` process sets up around its app."""

    #: debug, info, warning or error (any name of Python's logging levels).
    log_level: str = "info"
    #: ``runplane worker``: serve Prometheus metrics on this port (None: not at all).
    metrics_port: int | None = field(default=None, metadata={"parse": int})
    metrics_host: str = "127.0.0.1"

    @classmethod
    def load(cls, **overrides: Any) -> ProcessSettings:
        return load(cls, overrides)

    def problems(self) -> Problems:
        if not isinstance(logging.getLevelName(self.log_level.upper()), int):
            yield ("log_level",), f"unknown log level {self.log_level!r}"
        yield from check_port("metrics_port", self.metrics_port)


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """``runplane runs ...``: the server it talks to, and the API key it sends."""

    url: str = "http://127.0.0.1:8123"
    api_key: str = ""

    @classmethod
    def load(cls, **overrides: Any) -> ClientSettings:
        return load(cls, overrides)

    def problems(self) -> Problems:
        return iter(())


def default_help(cls: type, name: str) -> str:
    """Where the setting ``name`` of ``cls`` comes from when its option is not given (for
    the CLI's help)."""
    default = {f.name: f.default for f in fields(cls)}[name]
    return f" Default: {env_name(name)}, else {default}."
