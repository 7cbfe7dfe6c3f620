"""Settings of the HTTP server (kept apart from the app so the CLI imports no web stack)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runplane.server.auth import ApiKeys

#: Request bodies above this many bytes are refused with 413 (``--max-body-bytes``).
DEFAULT_MAX_BODY_BYTES = 1 << 20
#: Seconds between comment-line heartbeats on a quiet stream (``--sse-heartbeat``).
DEFAULT_SSE_HEARTBEAT = 5.0


@dataclass(frozen=True)
class ServerSettings:
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    sse_heartbeat: float = DEFAULT_SSE_HEARTBEAT
    #: None: no keys, every caller sees everything (loopback only, unless --insecure).
    api_keys: ApiKeys | None = None
    #: Origins allowed by CORS (empty: loopback origins on any port).
    cors_origins: tuple[str, ...] = ()
    #: ``Host`` values answered (empty: the loopback names).
    allowed_hosts: tuple[str, ...] = ()
