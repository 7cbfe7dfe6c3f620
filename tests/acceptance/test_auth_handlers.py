"""A LangGraph project's own auth (``auth.path``) end to end: a real ``runplane serve
--config langgraph.json`` whose ``auth.py`` authenticates tokens and stamps and filters
what each identity owns, as LangGraph's documentation writes one.

Alice's threads, runs, trees, assistants, crons and items are tried by bob, authenticated
by the project's handler, on every route of the app (the route table of
:mod:`acceptance.test_auth`, which must name every route); an API key file configures
only an admin key, which the server honours beside the handlers.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient

from acceptance.test_auth import (
    ADMIN_KEY,
    ALICE_KEY,
    ALICES_ITEM,
    BOB_KEY,
    admin_stops_alices_runs,
    bob_tries_every_route,
    http_as,
    keyed_server,
    sdk_clients,
    sdk_without_a_key_is_refused,
)

from support.databases import STORES

CAROL_KEY = "carol-token-" + "d" * 20
AUTH_PY = f'''
from langgraph_sdk import Auth

auth = Auth()
TOKENS = {{{ALICE_KEY!r}: "alice", {BOB_KEY!r}: "bob", {CAROL_KEY!r}: "carol"}}


@auth.authenticate
async def authenticate(headers: dict) -> Auth.types.MinimalUserDict:
    token = (headers.get(b"x-api-key") or b"").decode()
    scheme, _, bearer = (headers.get(b"authorization") or b"").decode().partition(" ")
    token = token or (bearer if scheme.lower() == "bearer" else "")
    if not token:
        raise Auth.exceptions.HTTPException(401, "send a token")
    if token not in TOKENS:
        raise Auth.exceptions.HTTPException(401, "unknown token")
    who = TOKENS[token]
    return {{"identity": who, "permissions": [] if who == "carol" else ["write"]}}


@auth.on
async def owner(ctx: Auth.types.AuthContext, value: dict):
    metadata = value.get("metadata") if isinstance(value, dict) else None
    if ctx.action in ("create", "create_run") and isinstance(metadata, dict):
        metadata["owner"] = ctx.user.identity
    return {{"owner": ctx.user.identity}}


@auth.on.threads.create
async def writers_only(ctx: Auth.types.AuthContext, value: dict):
    if "write" not in ctx.permissions:
        raise Auth.exceptions.HTTPException(403, f"{{ctx.user.identity}} may only read")
    value.setdefault("metadata", {{}})["owner"] = ctx.user.identity
    return {{"owner": ctx.user.identity}}


@auth.on.store
async def own_space(ctx: Auth.types.AuthContext, value: dict):
    value["namespace"] = (ctx.user.identity, *(value.get("namespace") or ()))
'''


@pytest.fixture(scope="module", params=STORES)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[str]:
    folder = tmp_path_factory.mktemp(f"auth_handlers_{request.param}")
    (folder / "auth.py").write_text(AUTH_PY)
    (folder / "langgraph.json").write_text(json.dumps(
        {"graphs": {}, "auth": {"path": "./auth.py:auth"}}))
    with keyed_server(request, folder, f"{ADMIN_KEY} ops admin\n",
                      "--config", str(folder / "langgraph.json")) as url:
        yield url  # only the admin's key: alice, bob and carol are the handler's


@pytest.fixture
async def clients(server: str) -> AsyncIterator[dict[str, LangGraphClient]]:
    async with sdk_clients(server, {"alice": ALICE_KEY, "bob": BOB_KEY, "carol": CAROL_KEY,
                                    "admin": ADMIN_KEY}) as made:
        yield made


async def test_no_identity_reads_or_changes_what_another_owns_on_any_route(
    server: str, clients: dict[str, LangGraphClient], tmp_path: Path,
):
    alice = clients["alice"]
    a, before = await bob_tries_every_route(server, alice, tmp_path)
    for thread_id, was in before.items():  # nothing of alice's changed; her stamp is kept
        now = await alice.threads.get(thread_id)
        assert now["metadata"] == was["metadata"] == {"v": 1, "owner": "alice"}
    assert [r["run_id"] for r in await alice.runs.list(a.done_thread)] == [a.done_run]
    mine = await alice.assistants.get(a.assistant)
    assert (mine["name"], mine["version"], mine["metadata"]) == \
        ("alice's", 1, {"v": 1, "owner": "alice"})
    assert (await alice.store.get_item(ALICES_ITEM, "k"))["value"] == {"v": 1}
    [item] = (await alice.store.search_items(ALICES_ITEM))["items"]
    assert item["namespace"] == ["alice", *ALICES_ITEM]  # where the handler put it
    [cron] = await alice.crons.search()
    assert (cron["cron_id"], cron["enabled"], cron["metadata"]) == \
        (a.cron, True, {"v": 1, "owner": "alice"})
    assert (await alice.runs.get(a.park_thread, a.park_run))["status"] == "running"

    # the admin key: everyone's, beside the handlers
    await admin_stops_alices_runs(clients["admin"], alice, a)


async def test_the_handlers_refusals_reach_the_client_with_their_status(
    server: str, clients: dict[str, LangGraphClient],
):
    async with http_as(server, None) as anyone:
        assert (await anyone.get("/ok")).status_code == 200
        for headers, detail in (({}, "send a token"),
                                ({"x-api-key": "nobody"}, "unknown token"),
                                ({"Authorization": "Bearer nobody"}, "unknown token")):
            r = await anyone.get("/threads/x", headers=headers)
            assert (r.status_code, r.json()) == (401, {"detail": detail})
        info = (await anyone.get("/info", headers={"x-api-key": CAROL_KEY})).json()
        assert info["flags"] | {"auth": True, "auth_handlers": True, "store": True} \
            == info["flags"]
    carol = clients["carol"]
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await carol.threads.create(metadata={"x": 1})
    answer = refused.value.response
    assert (answer.status_code, answer.json()) == (403, {"detail": "carol may only read"})
    assert await carol.threads.search() == []
    assert (await clients["admin"].threads.count(metadata={"x": 1})) == 0
    await sdk_without_a_key_is_refused(server)


async def test_the_sdk_sees_what_the_handler_stamped_and_the_console_signs_in_a_token(
    server: str, clients: dict[str, LangGraphClient],
):
    alice, bob = clients["alice"], clients["bob"]
    thread = await alice.threads.create(metadata={"sdk": True})
    assert thread["metadata"] == {"sdk": True, "owner": "alice"}
    run = await alice.runs.create(None, "echo", input={"hi": 1})
    assert run["metadata"] == {"owner": "alice"}
    await alice.http.get(f"/runs/{run['run_id']}/join")
    assert [t["thread_id"] for t in await alice.threads.search(metadata={"sdk": True})] == \
        [thread["thread_id"]]
    assert await bob.threads.search(metadata={"sdk": True}) == []
    async with http_as(server, BOB_KEY) as bob_http:
        assert (await bob_http.get(f"/runs/{run['run_id']}")).status_code == 404

    async with http_as(server, None) as person:
        wrong = await person.post("/ui/login", json={"key": "nobody"})
        assert (wrong.status_code, wrong.json()["message"]) == (401, "unknown token")
        signed = await person.post("/ui/login", json={"key": ALICE_KEY})
        assert signed.json() == {"ok": True, "message": "signed in as alice"}
        page = await person.get(f"/ui/runs/{run['run_id']}")  # the cookie, from its page
        assert page.status_code == 200 and run["run_id"] in page.text
        person.cookies.set("runplane_key", BOB_KEY)
        assert (await person.get(f"/ui/runs/{run['run_id']}")).status_code == 404
