"""A project's own app (``langgraph.json``'s ``http.app``) served beside runplane's routes.

A request that one of the app's routes matches goes to that app, with its own middleware
and exception handlers; every other request goes to runplane's. The project's routes thus
win a clash, as LangGraph's custom routes shadow the Agent Server's own (an app mounted at
``/`` answers everything). The app sits inside runplane's guards: the Host check, CORS, the
browser rules, the body limit and, when API keys are configured, the key; a project's
authenticate handler guards them only with ``http.enable_custom_route_auth`` (as on the
LangGraph server: a project's own login or webhook route must be reachable).
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
        if scope["type"] in ("http", "websocket") and custom_route(self.custom, scope):
            await self.custom(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def custom_route(custom: Starlette, scope: Scope) -> bool:
    """Whether one of ``custom``'s routes answers the request."""
    return any(route.matches(scope)[0] is Match.FULL for route in custom.router.routes)
