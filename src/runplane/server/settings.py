"""Settings of the HTTP server (kept apart from the app so the CLI imports no web stack),
read like every setting by :func:`runplane.config.load`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runplane.config import Problems, check_port, load

if TYPE_CHECKING:
    from runplane.server.auth import ApiKeys

#: Request bodies above this many bytes are refused with 413 (``--max-body-bytes``).
DEFAULT_MAX_BODY_BYTES = 1 << 20
#: Seconds between comment-line heartbeats on a quiet stream (``--sse-heartbeat``).
DEFAULT_SSE_HEARTBEAT = 5.0
#: The shortest heartbeat interval accepted.
MIN_SSE_HEARTBEAT = 0.01


def _api_keys(path: str) -> ApiKeys:
    from runplane.server.auth import ApiKeys

    return ApiKeys.load(path)


@dataclass(frozen=True)
class ServerSettings:
    #: Address and port ``runplane serve`` binds.
    host: str = "127.0.0.1"
    port: int = 8123
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    sse_heartbeat: float = DEFAULT_SSE_HEARTBEAT
    #: None: no keys, every caller sees everything (loopback only, unless --insecure). Its
    #: variable names the key file.
    api_keys: ApiKeys | None = field(default=None, metadata={"parse": _api_keys})
    #: Origins allowed by CORS (empty: loopback origins on any port).
    cors_origins: tuple[str, ...] = ()
    #: ``Host`` values answered (empty: the loopback names).
    allowed_hosts: tuple[str, ...] = ()

    @classmethod
    def load(cls, **overrides: Any) -> ServerSettings:
        return load(cls, overrides)

    def problems(self) -> Problems:
        yield from check_port("port", self.port)
        if self.max_body_bytes < 1:
            yield ("max_body_bytes",), f"max_body_bytes must be >= 1, got {self.max_body_bytes}"
        if not self.sse_heartbeat >= MIN_SSE_HEARTBEAT:
            yield ("sse_heartbeat",), (f"sse_heartbeat must be >= {MIN_SSE_HEARTBEAT}, "
                                       f"got {self.sse_heartbeat}")
