"""``runplane serve``: uvicorn around :func:`create_app`, with a shutdown that keeps runs.

A client that goes away cancels its run (``on_disconnect="cancel"``), but a
server that shuts down is not a client going away: from SIGTERM on, streams
end at their next heartbeat without cancelling anything, and the embedded
worker hands its running runs back to the queue (the SDK reconnects with
``Last-Event-ID`` once a server is back).
"""

from __future__ import annotations

import asyncio
import dataclasses
from types import FrameType

import uvicorn
from starlette.applications import Starlette

from runplane.app import Runplane
from runplane.auth_handlers import Handlers
from runplane.server.app import create_app
from runplane.server.auth import allowed_hosts
from runplane.server.settings import ServerSettings


def run_server(rp: Runplane, settings: ServerSettings | None = None, *,
               log_level: str = "info", custom: Starlette | None = None,
               handlers: Handlers | None = None) -> None:
    """Open ``rp``, then serve it on ``settings.host`` and ``settings.port`` until
    SIGTERM/SIGINT, with ``custom``'s routes beside its own and ``handlers`` (a project's
    auth) deciding who calls (see :func:`create_app`). A
    database that cannot be opened raises here, before uvicorn starts (its lifespan would
    log the error as a traceback)."""
    settings = settings or ServerSettings.load()
    hosts = tuple(allowed_hosts(settings.allowed_hosts, settings.host))
    api = create_app(rp, dataclasses.replace(settings, allowed_hosts=hosts), custom=custom,
                     handlers=handlers)

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            api.state.shutting_down = True
            super().handle_exit(sig, frame)

    config = uvicorn.Config(
        api, host=settings.host, port=settings.port, log_level=log_level.lower(), lifespan="on",
        # open streams end at their next heartbeat once shutting down
        timeout_graceful_shutdown=int(settings.sse_heartbeat) + 5,
    )
    server = Server(config)

    async def serve() -> None:
        await rp.open()  # the lifespan's own open is then a no-op
        try:
            await server.serve()
        finally:
            await rp.close()

    factory = getattr(config, "get_loop_factory", lambda: None)()  # uvicorn >= 0.36
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve())
