"""Settings: keyword arguments, else ``RUNPLANE_*`` environment variables, else defaults."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, fields
from typing import Any

from runplane.limits import MAX_ATTEMPTS

DEFAULT_DATABASE_URL = "sqlite:///./runplane.db"


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
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
    #: Claims (first start plus crash recoveries) before a run ends ``error``.
    max_attempts: int = 3
    worker_id: str = ""

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for f in fields(cls):
            env = os.environ.get(f"RUNPLANE_{f.name.upper()}")
            if overrides.get(f.name) is not None:
                values[f.name] = overrides[f.name]
            elif env:
                kind: type[Any] = type(f.default)  # every setting has a default
                try:
                    values[f.name] = kind(env)
                except ValueError:
                    raise ValueError(
                        f"RUNPLANE_{f.name.upper()}={env!r} is not a valid {kind.__name__}"
                    ) from None
        settings = cls(**values)
        if not settings.worker_id:
            worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
            settings = cls(**{**values, "worker_id": worker_id})
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
        if not 1 <= self.max_attempts <= MAX_ATTEMPTS:
            raise ValueError(f"max_attempts must be between 1 and {MAX_ATTEMPTS}, "
                             f"got {self.max_attempts}")
        for name in ("poll_interval", "lease_ttl", "heartbeat_interval", "reap_interval"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.heartbeat_interval >= self.lease_ttl:
            raise ValueError(
                f"heartbeat_interval ({self.heartbeat_interval}) must be shorter than "
                f"lease_ttl ({self.lease_ttl})"
            )
