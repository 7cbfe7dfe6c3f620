"""The HTTP API: a FastAPI app over a :class:`Runplane`, in the LangGraph Agent Server protocol.

Routes translate and nothing more; every rule is the RunService's. Errors map
here, in one place, to a status code and a JSON ``detail`` that the SDK turns
into its typed errors (``NotFoundError``, ``ConflictError``, ...).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager, nullcontext
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import make_asgi_app
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Match

from runplane import __version__
from runplane.app import Runplane
from runplane.auth_handlers import Handlers
from runplane.console.routes import mount_console
from runplane.errors import (
    AccessDenied,
    Conflict,
    InvalidInput,
    NotFound,
    RunConflict,
    RunplaneError,
    StoreClosed,
    StoreUnavailable,
    ThreadBusy,
    UnknownWorkflow,
)
from runplane.server import assistants, crons, protocol, runs, store, threads
from runplane.server.auth import (
    OPEN_PATHS,
    Authenticate,
    BrowserGuard,
    HostCheck,
    Origins,
    allowed_hosts,
)
from runplane.server.custom_routes import CustomRoutes
from runplane.server.docs import mount_docs
from runplane.server.settings import ServerSettings


def create_app(rp: Runplane, settings: ServerSettings | None = None, *,
               custom: Starlette | None = None, handlers: Handlers | None = None) -> FastAPI:
    """An ASGI app serving ``rp``; it opens ``rp`` on start-up and closes it on shutdown.
    ``custom`` is a project's own app, its routes served beside runplane's (see
    :mod:`runplane.server.custom_routes`), its lifespan run inside runplane's;
    ``handlers``, a project's auth (:mod:`runplane.auth_handlers`)."""
    settings = settings or ServerSettings.load()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with rp, (custom.router.lifespan_context(custom) if custom is not None
                        else nullcontext()):
            yield
            background: set[asyncio.Task[Any]] = app.state.background
            if background:  # cancels started for clients that went away
                await asyncio.wait(background, timeout=5.0)

    app = FastAPI(
        title="runplane",
        version=__version__,
        summary="Durable runs of AI agents and workflows; LangGraph Agent Server protocol.",
        lifespan=lifespan,
        docs_url=None,  # served with its own assets: runplane.server.docs
        redoc_url=None,
    )
    app.state.runplane = rp
    app.state.settings = settings
    app.state.started_at = datetime.now(UTC)
    app.state.background = set()
    app.state.shutting_down = False
    app.state.auth_handlers = handlers
    if custom is not None:  # the innermost: behind every guard
        app.add_middleware(CustomRoutes, custom=custom)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    # the last added runs first: Host, then CORS (preflights carry no key), then the rest
    origins = Origins(settings.cors_origins)
    app.add_middleware(Authenticate, keys=settings.api_keys, handlers=handlers, custom=custom)
    app.add_middleware(BrowserGuard, origins=origins)
    app.add_middleware(CORSMiddleware, **origins.cors_options())
    app.add_middleware(HostCheck, allowed=allowed_hosts(settings.allowed_hosts))
    _error_handlers(app)

    @app.get("/ok", tags=["system"])
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/info", tags=["system"])
    async def info() -> dict[str, Any]:
        return {"version": __version__, "flags": {
            "assistants": True, "crons": True, "store": True,
            "auth": settings.api_keys is not None or handlers is not None,
            "auth_handlers": handlers is not None}}

    app.include_router(assistants.router)
    app.include_router(threads.router)
    app.include_router(store.router)
    app.include_router(protocol.router)
    mount_docs(app)
    mount_console(app)
    app.include_router(crons.router)  # before /runs/{run_id}
    app.include_router(runs.router)
    app.mount("/metrics", make_asgi_app())
    _document_guards(app)
    return app


def _document_guards(app: FastAPI) -> None:
    """Complete the OpenAPI document where FastAPI cannot see: what the middleware answers
    on any route (a Host not allowed 400, no or a wrong key 401, a foreign origin 403, a
    form post 415), and the errors of stream routes, which are JSON like any other's."""
    generate = app.openapi
    error = {"content": {"application/json": {"schema": {
        "$ref": "#/components/schemas/ErrorAnswer"}}}}
    guards = {
        "400": "The Host is not allowed (--allowed-host), or the body is not valid JSON.",
        "401": "API keys (or a project's auth handlers) are configured and the request has "
               "none, or an unknown one.",
        "403": "The request comes from an origin that is not allowed (--cors-origin), or a "
               "project's auth handler refused it.",
        "415": "A form content type: send JSON.",
    }

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            for path, ops in generate()["paths"].items():
                for method, op in ops.items():
                    answers = op["responses"]
                    for code, answer in answers.items():
                        content = answer.get("content", {})
                        if code[0] in "45" and "text/event-stream" in content:
                            content["application/json"] = content.pop("text/event-stream")
                    for code, why in guards.items():
                        if code == "415" and method in ("get", "head", "options"):
                            continue
                        if code == "401" and path in OPEN_PATHS:
                            continue
                        answers.setdefault(code, {**error, "description": why})
        return generate()

    app.openapi = openapi  # type: ignore[method-assign]


def _detail(exc: BaseException) -> str:
    return str(exc.args[0]) if exc.args else type(exc).__name__


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return JSONResponse({"detail": f"malformed JSON body: {errors[0].get('msg')}"}, 400)
        # the offending value is not echoed back: NaN, a lone surrogate or a deep value
        # would make the answer itself unserialisable
        errors = [{k: v for k, v in e.items() if k != "input"} for e in errors]
        parts = []
        for e in errors:
            where = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
            parts.append(f"{where}: {e.get('msg')}" if where else str(e.get("msg")))
        return JSONResponse({"detail": "; ".join(parts),
                             "errors": json.loads(json.dumps(errors, default=str))}, 422)

    @app.exception_handler(RunplaneError)
    async def domain(request: Request, exc: RunplaneError) -> JSONResponse:
        body: dict[str, Any] = {"detail": _detail(exc)}
        if isinstance(exc, InvalidInput):
            return JSONResponse({**body, "field": exc.field}, 422)
        if isinstance(exc, AccessDenied):
            return JSONResponse(body, exc.status, exc.headers)
        if isinstance(exc, UnknownWorkflow):
            return JSONResponse(body, 404)
        if isinstance(exc, NotFound):
            return JSONResponse(body, 404)
        if isinstance(exc, RunConflict):
            return JSONResponse({**body, "run_id": exc.run_id, "status": exc.status}, 409)
        if isinstance(exc, ThreadBusy):
            return JSONResponse({**body, "active_run_ids": exc.active_run_ids}, 409)
        if isinstance(exc, Conflict):
            return JSONResponse(body, 409)
        if isinstance(exc, StoreUnavailable):
            return JSONResponse(body, 503, {"Retry-After": str(exc.retry_after)})
        if isinstance(exc, StoreClosed):  # shutting down: another node, or this one restarted
            return JSONResponse(body, 503, {"Retry-After": "1"})
        return JSONResponse(body, 400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # every method of the path, not only the first route's
            headers["Allow"] = ", ".join(_methods(request.app, request.scope))
        return JSONResponse({"detail": exc.detail}, exc.status_code, headers=headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        """A bug: a JSON 500 rather than the server's plain text. Starlette re-raises the
        exception after this answer, and the server logs its traceback once. A ValueError
        is one too: what a client sent wrong is an InvalidInput (422), decided before."""
        return JSONResponse({"detail": f"internal server error ({type(exc).__name__})"}, 500)


def _methods(app: FastAPI, scope: Scope) -> list[str]:
    """The methods some route of ``app`` answers on the request's path."""
    return [method for method in ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
            if any(route.matches({**scope, "method": method})[0] is Match.FULL
                   for route in app.router.routes)]


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413 before any route reads them."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]],
                 max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        # Read the body up to the limit now (chunked bodies declare no length) and replay it.
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
        body = b"".join(chunks)
        replayed = False

        async def replay() -> MutableMapping[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            {"detail": f"request body larger than {self.max_bytes} bytes"}, 413)
        await response(scope, receive, send)
