"""A project's ``http.app`` beside runplane's routes: its routes win a clash (as LangGraph's
custom routes do), its lifespan runs inside runplane's, and runplane's guards cover it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from langgraph_sdk import Auth

from runplane import Runplane
from runplane.auth_handlers import Handlers
from runplane.server.app import create_app
from runplane.server.auth import ApiKeys
from runplane.server.settings import ServerSettings

KEY = "k" * 32


def custom_app(events: list[str]) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        events.append("started")
        yield
        events.append("stopped")

    app = FastAPI(lifespan=lifespan)

    @app.get("/hello")
    def hello() -> dict[str, str]:
        return {"hello": "world"}

    @app.get("/info")
    def info() -> dict[str, bool]:
        return {"mine": True}

    return app


def test_the_projects_routes_answer_beside_runplanes_and_win_a_clash() -> None:
    events: list[str] = []
    api = create_app(Runplane("sqlite:///:memory:", worker=False), custom=custom_app(events))
    with TestClient(api, base_url="http://localhost") as client:
        assert events == ["started"]
        assert client.get("/hello").json() == {"hello": "world"}
        assert client.get("/info").json() == {"mine": True}
        assert client.get("/ok").json() == {"ok": True}
        assert client.post("/assistants/search", json={}).status_code == 200
        assert client.get("/nowhere").status_code == 404
    assert events == ["started", "stopped"]


def test_the_projects_routes_sit_behind_runplanes_guards() -> None:
    settings = ServerSettings.load(api_keys=ApiKeys.parse(f"{KEY} ann"))
    api = create_app(Runplane("sqlite:///:memory:", worker=False), settings,
                     custom=custom_app([]))
    with TestClient(api, base_url="http://localhost") as client:
        assert client.get("/hello").status_code == 401
        assert client.get("/hello", headers={"x-api-key": KEY}).json() == {"hello": "world"}
        assert client.get("/hello", headers={"host": "evil.example"}).status_code == 400


def token_auth() -> Auth:
    auth = Auth()

    @auth.authenticate
    async def authenticate(authorization: str | None) -> str:
        if authorization != f"Bearer {KEY}":
            raise Auth.exceptions.HTTPException(401, "who are you?")
        return "ann"

    return auth


@pytest.mark.parametrize("guarded", [False, True])
def test_a_projects_auth_handlers_guard_its_routes_only_when_asked(guarded: bool) -> None:
    """As on the LangGraph server: ``http.enable_custom_route_auth`` hands the project's
    routes to its authenticate handler; without it they are open (runplane's are not)."""
    handlers = Handlers(token_auth(), custom_routes=guarded)
    api = create_app(Runplane("sqlite:///:memory:", worker=False), custom=custom_app([]),
                     handlers=handlers)
    with TestClient(api, base_url="http://localhost") as client:
        hello = client.get("/hello")
        assert hello.status_code == (401 if guarded else 200)
        signed = client.get("/hello", headers={"Authorization": f"Bearer {KEY}"})
        assert signed.json() == {"hello": "world"}
        refused = client.post("/threads/search", json={})
        assert (refused.status_code, refused.json()) == (401, {"detail": "who are you?"})
