"""What routes take from the app: the service, the workflows, the server settings, the
caller (whom the API key names; None without keys)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from runplane.app import Runplane
from runplane.models import Caller
from runplane.service import RunService


def _runplane(request: Request) -> Runplane:
    return request.app.state.runplane


def _service(request: Request) -> RunService:
    return request.app.state.runplane.service


def _settings(request: Request) -> Any:
    return request.app.state.settings


def _caller(request: Request) -> Caller | None:
    return getattr(request.state, "caller", None)


App = Annotated[Runplane, Depends(_runplane)]
Service = Annotated[RunService, Depends(_service)]
Settings = Annotated[Any, Depends(_settings)]
Who = Annotated[Caller | None, Depends(_caller)]
