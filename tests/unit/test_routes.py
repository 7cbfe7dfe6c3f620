"""The route table's shape: nothing a request goes through runs in a worker thread."""

from __future__ import annotations

import inspect
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from runplane import Runplane
from runplane.server.app import create_app


def _api_routes(routes: list[Any]) -> list[APIRoute]:
    """The API routes, those of included routers too."""
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):  # an included router (FastAPI >= 0.165)
            found += _api_routes(route.original_router.routes)
    return found


def _calls(dependant: Dependant) -> list[Any]:
    found = [dependant.call] if dependant.call is not None else []
    for sub in dependant.dependencies:
        found += _calls(sub)
    return found


def test_every_route_and_dependency_is_a_coroutine_function() -> None:
    """FastAPI runs a plain ``def`` endpoint or dependency in a worker thread: a thread hop
    per request (it was a sixth of a served graph run's CPU)."""
    app = Runplane("sqlite:///:memory:", worker=False)
    routes = _api_routes(create_app(app).routes)
    assert len(routes) > 30
    sync = sorted({f"{route.path}: {call.__qualname__}" for route in routes
                   for call in _calls(route.dependant)
                   if not inspect.iscoroutinefunction(call)})
    assert sync == []
