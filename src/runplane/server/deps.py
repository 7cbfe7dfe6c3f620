"""What routes take from the app: the service, the workflows, the server settings, the
caller (whom the API key names; None without keys).

Each is ``async def``: FastAPI runs a plain ``def`` dependency in a worker thread, a
thread hop per dependency per request for a lookup."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from runplane.app import Runplane
from runplane.models import Caller
from runplane.service import RunService


async def _runplane(request: Request) -> Runplane:
    return request.app.state.runplane


async def _service(request: Request) -> RunService:
    return request.app.state.runplane.service


async def _settings(request: Request) -> Any:
    return request.app.state.settings


async def _caller(request: Request) -> Caller | None:
    return getattr(request.state, "caller", None)


App = Annotated[Runplane, Depends(_runplane)]
Service = Annotated[RunService, Depends(_service)]
Settings = Annotated[Any, Depends(_settings)]
Who = Annotated[Caller | None, Depends(_caller)]
