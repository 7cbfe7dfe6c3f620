"""Settings of the HTTP server (kept apart from the app so the CLI imports no web stack)."""

from __future__ import annotations

from dataclasses import dataclass

#: Request bodies above this many bytes are refused with 413 (``--max-body-bytes``).
DEFAULT_MAX_BODY_BYTES = 1 << 20
#: Seconds between comment-line heartbeats on a quiet stream (``--sse-heartbeat``).
DEFAULT_SSE_HEARTBEAT = 5.0


@dataclass(frozen=True)
class ServerSettings:
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    sse_heartbeat: float = DEFAULT_SSE_HEARTBEAT
