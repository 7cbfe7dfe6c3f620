"""A project's own app (``langgraph.json``'s ``http.app``) served beside runplane's routes.

A request that one of the app's routes matches goes to that app, with its own middleware
and exception handlers; every other request goes to runplane's. The project's routes thus
win a clash, as LangGraph's custom routes shadow the Agent Server's own (an app mounted at
``/`` answers everything). The app sits inside runplane's guards: the Host check, CORS, the
browser rules, the body limit and, when API keys are configured, the key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.applications import Starlette
from starlette.routing import Match

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class CustomRoutes:
    """Middleware: the requests ``custom``'s routes match go to ``custom``."""

    def __init__(self, app: ASGIApp, custom: Starlette) -> None:
        self.app = app
        self.custom = custom

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and self.matches(scope):
            await self.custom(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def matches(self, scope: Scope) -> bool:
        return any(route.matches(scope)[0] is Match.FULL for route in self.custom.router.routes)
