"""API keys, owners and browser safety end to end: a real ``runplane serve --api-keys``.

The key file names alice, bob (given as a SHA-256 digest) and an admin. Alice's threads,
runs and trees are tried by bob on every route the server has: the route table below must
name every route of the app's OpenAPI document, so a route added without an owner check
fails here until it gets a probe. Clients are ``langgraph_sdk.get_client(url, api_key=...)``
and, where the SDK cannot express the request (raw status codes, headers), httpx.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import AuthenticationError

from http_app import marks

from support import eventually, free_port
from support.databases import STORES, database_for_processes
from support.processes import Processes

ALICE_KEY = "alice-key-" + "a" * 24
BOB_KEY = "bob-key-" + "b" * 24
ADMIN_KEY = "admin-key-" + "c" * 24
#: ``runplane serve`` of the app under test, but for its database and keys.
SERVE = ("http_app:app", "--poll-interval", "0.02")
KEY_FILE = f"""# runplane API keys: KEY OWNER [admin]
{ALICE_KEY} alice
sha256:{hashlib.sha256(BOB_KEY.encode()).hexdigest()} bob   # bob's key, as its digest
{ADMIN_KEY} ops admin
"""


# --------------------------------------------------------------------------- #
# the server under test                                                       #
# --------------------------------------------------------------------------- #


@contextlib.contextmanager
def keyed_server(request: pytest.FixtureRequest, folder: Path, key_file: str,
                 *args: str) -> Iterator[str]:
    """``runplane serve`` of SERVE and ``args`` with ``key_file`` as its API keys, on a
    fresh database of the store ``request.param``; the admin key cancels what is left
    running before it stops."""
    keys = folder / "keys.txt"
    keys.write_text(key_file)
    with (database_for_processes(request, request.param, folder, "auth") as database,
          Processes(folder) as procs):
        url = procs.serve("server", *SERVE, *args, "--database", database,
                          "--api-keys", str(keys)).url
        try:
            yield url
        finally:
            with contextlib.suppress(httpx.HTTPError):  # leftover parked runs hold a shutdown
                httpx.post(f"{url}/runs/cancel", json={"status": "all"},
                           headers={"x-api-key": ADMIN_KEY}, timeout=10)


@contextlib.asynccontextmanager
async def sdk_clients(server: str, keys: dict[str, str]
                      ) -> AsyncIterator[dict[str, LangGraphClient]]:
    """A ``langgraph_sdk`` client per name, each with its key."""
    made = {who: get_client(url=server, api_key=key) for who, key in keys.items()}
    try:
        yield made
    finally:
        for client in made.values():
            await client.aclose()


async def sdk_without_a_key_is_refused(server: str) -> None:
    """The SDK with no key at all gets its AuthenticationError (a 401)."""
    nobody = get_client(url=server, api_key=None)
    try:
        with pytest.raises(AuthenticationError):
            await nobody.threads.search()
    finally:
        await nobody.aclose()


@pytest.fixture(scope="module", params=STORES)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[str]:
    with keyed_server(request, tmp_path_factory.mktemp(f"auth_{request.param}"),
                      KEY_FILE) as url:
        yield url


@pytest.fixture
async def clients(server: str) -> AsyncIterator[dict[str, LangGraphClient]]:
    async with sdk_clients(server, {"alice": ALICE_KEY, "bob": BOB_KEY,
                                    "admin": ADMIN_KEY}) as made:
        yield made


def http_as(server: str, key: str | None) -> httpx.AsyncClient:
    headers = {} if key is None else {"x-api-key": key}
    return httpx.AsyncClient(base_url=server, headers=headers, timeout=30.0)


# --------------------------------------------------------------------------- #
# alice's objects, and bob trying every route on them                         #
# --------------------------------------------------------------------------- #


@dataclass
class Alice:
    """What alice owns: a thread with a finished run, a thread with a parked run, a
    thread-less tree (a ``family`` root with one parked child), and an assistant of
    ``echo``."""

    done_thread: str
    done_run: str
    park_thread: str
    park_run: str
    tree_root: str
    tree_child: str
    assistant: str
    cron: str

    @property
    def run_ids(self) -> set[str]:
        return {self.done_run, self.park_run, self.tree_root, self.tree_child}


async def alice_objects(alice: LangGraphClient, tmp_path: Path) -> Alice:
    done_thread = (await alice.threads.create(metadata={"v": 1}))["thread_id"]
    done = await alice.runs.create(done_thread, "echo", input={"x": 1})
    await alice.runs.join(done_thread, done["run_id"])
    park_thread = (await alice.threads.create(metadata={"v": 1}))["thread_id"]
    marker = tmp_path / "park.log"
    park = await alice.runs.create(park_thread, "parks", input={"marker": str(marker)})
    child_marker = tmp_path / "child.log"
    root = await alice.runs.create(None, "family", input={"markers": [str(child_marker)]})
    await eventually(lambda: "parked" in marks(marker) and "parked" in marks(child_marker))
    tree = await alice.http.get(f"/runs/{root['run_id']}/tree")
    assistant = await alice.assistants.create("echo", name="alice's", metadata={"v": 1})
    await alice.store.put_item(ALICES_ITEM, "k", {"v": 1})
    cron = await alice.crons.create("echo", schedule="0 0 1 1 *", metadata={"v": 1})
    return Alice(done_thread, done["run_id"], park_thread, park["run_id"], root["run_id"],
                 tree["children"][0]["run_id"], assistant["assistant_id"], cron["cron_id"])


RUN_BODY = {"assistant_id": "echo", "input": {"from": "bob"}}
Probe = Callable[[httpx.AsyncClient, Alice], Awaitable[None]]


def not_found(path: str, *, method: str = "GET", done: bool = False,
              body: Any = None, params: dict[str, str] | None = None) -> Probe:
    """Bob names alice's object in ``path`` (the parked run and its thread, or with
    ``done`` the finished ones) and is answered 404, exactly as for an unknown id."""

    async def probe(bob: httpx.AsyncClient, a: Alice) -> None:
        ids = {"thread_id": a.done_thread if done else a.park_thread,
               "run_id": a.done_run if done else a.park_run, "assistant_id": a.assistant,
               "cron_id": a.cron}
        r = await bob.request(method, path.format(**ids), params=params,
                              json=body)
        assert r.status_code == 404, (method, path, r.status_code, r.text)
        assert "not found" in r.json()["detail"]

    return probe


async def sees_nothing_of_alices_threads(bob: httpx.AsyncClient, a: Alice) -> None:
    found = (await bob.post("/threads/search", json={"limit": 1000})).json()
    assert not {t["thread_id"] for t in found} & {a.done_thread, a.park_thread}
    by_id = await bob.post("/threads/search", json={"ids": [a.done_thread, a.park_thread]})
    assert by_id.json() == []


async def counts_only_its_own_threads(bob: httpx.AsyncClient, a: Alice) -> None:
    own = (await bob.post("/threads/search", json={"limit": 1000})).json()
    assert (await bob.post("/threads/count", json={})).json() == len(own)
    assert (await bob.post("/threads/count", json={"metadata": {"v": 1}})).json() == \
        len([t for t in own if t["metadata"].get("v") == 1])


async def cannot_take_alices_thread_id(bob: httpx.AsyncClient, a: Alice) -> None:
    for if_exists in ("raise", "do_nothing"):
        r = await bob.post("/threads", json={"thread_id": a.done_thread, "if_exists": if_exists,
                                             "metadata": {"v": 2}})
        assert r.status_code == 409, r.text
        assert "metadata" not in r.json()


async def lists_none_of_alices_runs(bob: httpx.AsyncClient, a: Alice) -> None:
    listed = (await bob.get("/runs", params={"limit": 1000})).json()
    assert not {r["run_id"] for r in listed} & a.run_ids


async def bulk_cancel_skips_alices_runs(bob: httpx.AsyncClient, a: Alice) -> None:
    named = await bob.post("/runs/cancel", json={"run_ids": [a.park_run, a.tree_child]})
    assert named.json()["counts"] == {"not_found": 2}
    every = await bob.post("/runs/cancel", json={"status": "all"})
    assert not {r["run_id"] for r in every.json()["runs"]} & a.run_ids
    by_thread = await bob.post("/runs/cancel", json={"thread_id": a.park_thread})
    assert by_thread.status_code == 404


async def prunes_none_of_alices_threads(bob: httpx.AsyncClient, a: Alice) -> None:
    for strategy in ("keep_latest", "delete"):
        r = await bob.post("/threads/prune", json={
            "thread_ids": [a.done_thread, a.park_thread], "strategy": strategy})
        assert r.json() == {"pruned_count": 0}, r.text  # alice's threads: checked after


async def batch_runs_are_its_own(bob: httpx.AsyncClient, a: Alice) -> None:
    r = await bob.post("/runs/batch", json=[RUN_BODY])
    assert r.status_code == 200, r.text
    [run] = r.json()
    async with http_as(str(bob.base_url), ALICE_KEY) as alice:
        assert (await alice.get(f"/runs/{run['run_id']}")).status_code == 404
    assert (await bob.get(f"/runs/{run['run_id']}")).status_code == 200


def creates_its_own_run(path: str) -> Probe:
    """A thread-less run bob creates is bob's: the admin sees it as bob's, alice not."""

    async def probe(bob: httpx.AsyncClient, a: Alice) -> None:
        r = await bob.post(path, json={**RUN_BODY, "on_disconnect": "continue"})
        assert r.status_code == 200, r.text
        run_path = r.headers["content-location"]
        async with http_as(str(bob.base_url), ALICE_KEY) as alice:
            assert (await alice.get(run_path)).status_code == 404
        assert (await bob.get(run_path)).status_code == 200

    return probe


async def sees_none_of_alices_assistants(bob: httpx.AsyncClient, a: Alice) -> None:
    found = (await bob.post("/assistants/search", json={"limit": 1000})).json()
    assert found and a.assistant not in {x["assistant_id"] for x in found}  # the code's only
    assert all(x["metadata"] == {"created_by": "system"} for x in found)
    assert (await bob.post("/assistants/count", json={})).json() == len(found)
    assert (await bob.post("/assistants/count", json={"metadata": {"v": 1}})).json() == 0


async def cannot_take_alices_assistant_id(bob: httpx.AsyncClient, a: Alice) -> None:
    for if_exists in ("raise", "do_nothing"):
        r = await bob.post("/assistants", json={"graph_id": "echo", "if_exists": if_exists,
                                                "assistant_id": a.assistant})
        assert r.status_code == 409, r.text
        assert "name" not in r.json()
    mine = await bob.post("/assistants", json={"graph_id": "echo", "name": "bob's"})
    async with http_as(str(bob.base_url), ALICE_KEY) as alice:
        path = f"/assistants/{mine.json()['assistant_id']}"
        assert (await alice.get(path)).status_code == 404
    assert (await bob.delete(path)).status_code == 204


#: The namespace of alice's item in the memory store (each owner has a space of its own).
ALICES_ITEM = ["alice-notes"]


async def reads_none_of_alices_items(bob: httpx.AsyncClient, a: Alice) -> None:
    r = await bob.get("/store/items", params={"namespace": ALICES_ITEM[0], "key": "k"})
    assert (r.status_code, r.json()) == (200, None)


async def searches_none_of_alices_items(bob: httpx.AsyncClient, a: Alice) -> None:
    r = await bob.post("/store/items/search", json={"namespace_prefix": ALICES_ITEM})
    assert r.json() == {"items": []}


async def lists_none_of_alices_namespaces(bob: httpx.AsyncClient, a: Alice) -> None:
    r = await bob.post("/store/namespaces", json={})
    assert ALICES_ITEM not in r.json()["namespaces"]


async def writes_its_own_items_only(bob: httpx.AsyncClient, a: Alice) -> None:
    r = await bob.put("/store/items", json={"namespace": ALICES_ITEM, "key": "k",
                                            "value": {"v": "bob's"}})
    assert r.status_code == 204, r.text  # into bob's space: alice's is checked after


async def deletes_its_own_items_only(bob: httpx.AsyncClient, a: Alice) -> None:
    r = await bob.request("DELETE", "/store/items", json={"namespace": ALICES_ITEM,
                                                          "key": "k"})
    assert r.status_code == 204, r.text


async def sees_none_of_alices_crons(bob: httpx.AsyncClient, a: Alice) -> None:
    found = (await bob.post("/runs/crons/search", json={"limit": 1000})).json()
    assert a.cron not in {c["cron_id"] for c in found}
    assert (await bob.post("/runs/crons/count", json={"metadata": {"v": 1}})).json() == 0


async def makes_its_own_crons(bob: httpx.AsyncClient, a: Alice) -> None:
    r = await bob.post("/runs/crons", json={"assistant_id": "echo", "schedule": "0 0 1 1 *"})
    assert r.status_code == 200, r.text
    cron_id = r.json()["cron_id"]
    async with http_as(str(bob.base_url), ALICE_KEY) as alice:
        assert (await alice.delete(f"/runs/crons/{cron_id}")).status_code == 404
    assert (await bob.delete(f"/runs/crons/{cron_id}")).status_code == 204


def codes_own_only(path: str) -> Probe:
    """A workflow's own assistant is described to every key, alice's to nobody else."""

    async def probe(bob: httpx.AsyncClient, a: Alice) -> None:
        await open_to_every_key(path.format(assistant_id="echo"))(bob, a)
        await not_found(path)(bob, a)

    return probe


def open_to_every_key(path: str, method: str = "GET", body: Any = None) -> Probe:
    """Routes about no owned object (health, server info, the code's own assistants)."""

    async def probe(bob: httpx.AsyncClient, a: Alice) -> None:
        r = await bob.request(method, path, json=body)
        assert r.status_code == 200, (path, r.text)

    return probe


THREAD = "/threads/{thread_id}"
ASSISTANT = "/assistants/{assistant_id}"
THREAD_RUN = "/threads/{thread_id}/runs/{run_id}"
ROUTES: dict[tuple[str, str], Probe] = {
    ("GET", "/ok"): open_to_every_key("/ok"),
    ("GET", "/info"): open_to_every_key("/info"),
    ("POST", "/assistants/search"): sees_none_of_alices_assistants,
    ("POST", "/assistants/count"): open_to_every_key("/assistants/count", "POST", {}),
    ("GET", ASSISTANT): not_found(ASSISTANT),
    ("GET", ASSISTANT + "/graph"): codes_own_only(ASSISTANT + "/graph"),
    ("GET", ASSISTANT + "/schemas"): codes_own_only(ASSISTANT + "/schemas"),
    ("GET", ASSISTANT + "/subgraphs"): codes_own_only(ASSISTANT + "/subgraphs"),
    ("GET", ASSISTANT + "/subgraphs/{namespace}"):
        codes_own_only(ASSISTANT + "/subgraphs/inner"),
    ("POST", "/assistants"): cannot_take_alices_assistant_id,
    ("GET", "/store/items"): reads_none_of_alices_items,
    ("POST", "/runs/crons"): makes_its_own_crons,
    ("POST", THREAD + "/runs/crons"): not_found(THREAD + "/runs/crons", method="POST",
                                                body={"assistant_id": "echo",
                                                      "schedule": "0 0 1 1 *"}),
    ("PATCH", "/runs/crons/{cron_id}"): not_found("/runs/crons/{cron_id}", method="PATCH",
                                                  body={"enabled": False}),
    ("DELETE", "/runs/crons/{cron_id}"): not_found("/runs/crons/{cron_id}", method="DELETE"),
    ("POST", "/runs/crons/search"): sees_none_of_alices_crons,
    ("POST", "/runs/crons/count"): open_to_every_key("/runs/crons/count", "POST", {}),
    ("PUT", "/store/items"): writes_its_own_items_only,
    ("DELETE", "/store/items"): deletes_its_own_items_only,
    ("POST", "/store/items/search"): searches_none_of_alices_items,
    ("POST", "/store/namespaces"): lists_none_of_alices_namespaces,
    ("PATCH", ASSISTANT): not_found(ASSISTANT, method="PATCH", body={"name": "bob's"}),
    ("DELETE", ASSISTANT): not_found(ASSISTANT, method="DELETE"),
    ("POST", ASSISTANT + "/versions"): not_found(ASSISTANT + "/versions", method="POST",
                                                 body={}),
    ("POST", ASSISTANT + "/latest"): not_found(ASSISTANT + "/latest", method="POST",
                                               body={"version": 1}),
    ("POST", "/threads"): cannot_take_alices_thread_id,
    ("POST", "/threads/search"): sees_nothing_of_alices_threads,
    ("POST", "/threads/count"): counts_only_its_own_threads,
    ("GET", THREAD): not_found(THREAD),
    ("PATCH", THREAD): not_found(THREAD, method="PATCH", body={"metadata": {"v": 2}}),
    ("DELETE", THREAD): not_found(THREAD, method="DELETE", done=True),
    ("GET", THREAD + "/state"): not_found(THREAD + "/state"),
    ("GET", THREAD + "/state/{checkpoint_id}"): not_found(THREAD + "/state/any-checkpoint"),
    ("POST", THREAD + "/history"): not_found(THREAD + "/history", method="POST", body={}),
    ("POST", THREAD + "/state"):
        not_found(THREAD + "/state", method="POST", body={"values": {"v": 2}}),
    ("POST", THREAD + "/state/checkpoint"):
        not_found(THREAD + "/state/checkpoint", method="POST", body={"checkpoint": {}}),
    ("POST", THREAD + "/copy"): not_found(THREAD + "/copy", method="POST", done=True),
    ("POST", "/threads/prune"): prunes_none_of_alices_threads,
    ("GET", THREAD + "/stream"): not_found(THREAD + "/stream"),
    ("POST", THREAD + "/commands"): not_found(THREAD + "/commands", method="POST", body={
        "id": 1, "method": "run.start", "params": {"assistant_id": "echo", "input": {}}}),
    ("POST", THREAD + "/stream/events"):
        not_found(THREAD + "/stream/events", method="POST", body={"channels": ["values"]}),
    ("POST", THREAD + "/runs"): not_found(THREAD + "/runs", method="POST", body=RUN_BODY),
    ("GET", THREAD + "/runs"): not_found(THREAD + "/runs"),
    ("POST", THREAD + "/runs/stream"):
        not_found(THREAD + "/runs/stream", method="POST", done=True, body=RUN_BODY),
    ("POST", THREAD + "/runs/wait"):
        not_found(THREAD + "/runs/wait", method="POST", done=True, body=RUN_BODY),
    ("GET", THREAD_RUN): not_found(THREAD_RUN),
    ("DELETE", THREAD_RUN): not_found(THREAD_RUN, method="DELETE", done=True),
    ("GET", THREAD_RUN + "/join"): not_found(THREAD_RUN + "/join", done=True),
    ("GET", THREAD_RUN + "/stream"): not_found(THREAD_RUN + "/stream", done=True),
    ("POST", THREAD_RUN + "/cancel"):
        not_found(THREAD_RUN + "/cancel", method="POST", params={"scope": "tree"}),
    ("POST", "/runs"): creates_its_own_run("/runs"),
    ("POST", "/runs/stream"): creates_its_own_run("/runs/stream"),
    ("POST", "/runs/wait"): creates_its_own_run("/runs/wait"),
    ("POST", "/runs/batch"): batch_runs_are_its_own,
    ("GET", "/runs"): lists_none_of_alices_runs,
    ("POST", "/runs/cancel"): bulk_cancel_skips_alices_runs,
    ("GET", "/runs/{run_id}"): not_found("/runs/{run_id}", done=True),
    ("GET", "/runs/{run_id}/join"): not_found("/runs/{run_id}/join", done=True),
    ("GET", "/runs/{run_id}/stream"): not_found("/runs/{run_id}/stream", done=True),
    ("GET", "/runs/{run_id}/tree"): not_found("/runs/{run_id}/tree"),
    ("GET", "/runs/{run_id}/webhooks"): not_found("/runs/{run_id}/webhooks", done=True),
    ("POST", "/runs/{run_id}/resume"):
        not_found("/runs/{run_id}/resume", method="POST", done=True),
    ("POST", "/runs/{run_id}/cancel"):
        not_found("/runs/{run_id}/cancel", method="POST", params={"wait": "true"}),
}


async def test_the_route_table_names_every_route_of_the_app(server: str):
    """A new route fails here until it is in ROUTES, i.e. until bob has tried it."""
    async with http_as(server, ADMIN_KEY) as admin:
        paths = (await admin.get("/openapi.json")).json()["paths"]
    served = {(method.upper(), path) for path, ops in paths.items() for method in ops}
    assert served == set(ROUTES)


async def bob_tries_every_route(server: str, alice: LangGraphClient, tmp_path: Path
                                ) -> tuple[Alice, dict[str, Any]]:
    """Alice's objects, after bob (``BOB_KEY``) tried every route of ROUTES on them; with
    alice's threads as they were before."""
    a = await alice_objects(alice, tmp_path)
    before = {t: await alice.threads.get(t) for t in (a.done_thread, a.park_thread)}
    async with http_as(server, BOB_KEY) as bob:
        for probe in ROUTES.values():
            await probe(bob, a)
        # the tree's child too: a cancel of any run of the tree, by id, with scope=tree
        r = await bob.post(f"/runs/{a.tree_child}/cancel", params={"scope": "tree"})
        assert r.status_code == 404
    return a, before


async def admin_stops_alices_runs(admin: LangGraphClient, alice: LangGraphClient,
                                  a: Alice) -> None:
    """The admin key sees alice's parked run and stops it and her tree."""
    assert (await admin.runs.get(a.park_thread, a.park_run))["run_id"] == a.park_run
    await admin.runs.cancel(a.park_thread, a.park_run)
    await admin.http.post(f"/runs/{a.tree_root}/cancel", json=None, params={"scope": "tree"})
    assert (await alice.runs.get(a.park_thread, a.park_run))["status"] == "interrupted"


async def test_no_owner_reads_or_changes_another_owners_threads_runs_or_streams(
    server: str, clients: dict[str, LangGraphClient], tmp_path: Path,
):
    alice = clients["alice"]
    a, before = await bob_tries_every_route(server, alice, tmp_path)
    for thread_id, was in before.items():  # nothing of alice's changed
        now = await alice.threads.get(thread_id)
        assert now["metadata"] == was["metadata"] == {"v": 1}
    assert [r["run_id"] for r in await alice.runs.list(a.done_thread)] == [a.done_run]
    mine = await alice.assistants.get(a.assistant)
    assert (mine["name"], mine["version"]) == ("alice's", 1)
    assert (await alice.store.get_item(ALICES_ITEM, "k"))["value"] == {"v": 1}
    [cron] = await alice.crons.search(metadata={"v": 1})
    assert (cron["cron_id"], cron["enabled"]) == (a.cron, True)
    assert [r["run_id"] for r in await alice.runs.list(a.park_thread)] == [a.park_run]
    assert (await alice.runs.get(a.done_thread, a.done_run))["status"] == "success"
    assert (await alice.runs.get(a.park_thread, a.park_run))["status"] == "running"
    tree = await alice.http.get(f"/runs/{a.tree_root}/tree")
    assert [tree["status"], tree["children"][0]["status"]] == ["running", "running"]

    await admin_stops_alices_runs(clients["admin"], alice, a)  # admins: everyone's


async def test_the_sdk_with_an_api_key_sees_its_own_only(
    server: str, clients: dict[str, LangGraphClient],
):
    alice, bob = clients["alice"], clients["bob"]
    thread = await alice.threads.create(metadata={"sdk": True})
    run = await alice.runs.wait(thread["thread_id"], "echo", input={"hi": 1})
    assert run == {"echo": {"hi": 1}}
    run_id = (await alice.runs.list(thread["thread_id"]))[0]["run_id"]
    for attempt in (bob.threads.get(thread["thread_id"]),
                    bob.threads.get_state(thread["thread_id"]),
                    bob.runs.get(thread["thread_id"], run_id),
                    bob.runs.cancel(thread["thread_id"], run_id),
                    bob.runs.join(thread["thread_id"], run_id)):
        with pytest.raises(httpx.HTTPStatusError) as refused:  # NotFoundError, but for join
            await attempt
        assert refused.value.response.status_code == 404
    assert await bob.threads.search(metadata={"sdk": True}) == []
    assert [t["thread_id"] for t in await alice.threads.search(metadata={"sdk": True})] == \
        [thread["thread_id"]]
    await sdk_without_a_key_is_refused(server)


async def test_keys_are_required_everywhere_but_ok(server: str):
    async with http_as(server, None) as anyone:
        assert (await anyone.get("/ok")).status_code == 200
        for path in ("/threads/x", "/runs", "/metrics", "/metrics/", "/docs", "/openapi.json",
                     "/info", "/assistants/echo"):
            r = await anyone.get(path)
            assert r.status_code == 401, (path, r.status_code)
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert "missing API key" in r.json()["detail"]
        # Swagger UI's assets are public files: /docs itself needs a key
        assert (await anyone.get("/docs/assets/swagger-ui.css")).status_code == 200
        wrong = await anyone.get("/runs", headers={"x-api-key": ALICE_KEY + "x"})
        assert (wrong.status_code, wrong.json()) == (401, {"detail": "invalid API key"})
        bearer = await anyone.get("/runs", headers={"Authorization": f"Bearer {BOB_KEY}"})
        assert bearer.status_code == 200
        metrics = await anyone.get("/metrics/", headers={"x-api-key": BOB_KEY})
        assert metrics.status_code == 200 and "runplane" in metrics.text


# --------------------------------------------------------------------------- #
# browsers                                                                    #
# --------------------------------------------------------------------------- #


def preflight(origin: str) -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-api-key"}


async def test_a_chat_ui_on_another_local_port_works_and_other_sites_do_not(server: str):
    async with http_as(server, None) as browser:
        ui = await browser.options("/threads/search", headers=preflight("http://localhost:3000"))
        assert ui.status_code == 200
        assert ui.headers["access-control-allow-origin"] == "http://localhost:3000"
        assert "x-api-key" in ui.headers["access-control-allow-headers"].lower()
        evil = await browser.options("/threads/search",
                                     headers=preflight("https://evil.example"))
        assert evil.status_code == 400
        assert "access-control-allow-origin" not in evil.headers

        headers = {"Origin": "http://localhost:3000", "x-api-key": ALICE_KEY}
        post = await browser.post("/threads/search", json={}, headers=headers)
        assert post.status_code == 200
        assert post.headers["access-control-allow-origin"] == "http://localhost:3000"
        assert "content-location" in post.headers["access-control-expose-headers"].lower()


async def test_what_a_foreign_page_can_send_without_a_preflight_is_refused(
    server: str, clients: dict[str, LangGraphClient], tmp_path: Path,
):
    alice = clients["alice"]
    thread = (await alice.threads.create())["thread_id"]
    marker = tmp_path / "park.log"
    run = await alice.runs.create(thread, "parks", input={"marker": str(marker)})
    await eventually(lambda: "parked" in marks(marker))
    cancel = f"/threads/{thread}/runs/{run['run_id']}/cancel"
    async with http_as(server, ALICE_KEY) as browser:  # as if the browser held the key
        for content_type in ("application/x-www-form-urlencoded", "multipart/form-data",
                             "text/plain;charset=UTF-8"):
            r = await browser.post(cancel, content=b"a=b",
                                   headers={"Content-Type": content_type})
            assert r.status_code == 415, r.text
            assert "send JSON" in r.json()["detail"]
        r = await browser.post(cancel, headers={"Origin": "https://evil.example"})
        assert r.status_code == 403 and "evil.example" in r.json()["detail"]
        r = await browser.post(cancel, headers={"Sec-Fetch-Site": "cross-site",
                                                "Sec-Fetch-Mode": "no-cors"})
        assert r.status_code == 403
        r = await browser.get(f"/threads/{thread}", headers={"Host": "evil.example"})
        assert r.status_code == 400 and "evil.example" in r.json()["detail"]
        assert (await alice.runs.get(thread, run["run_id"]))["status"] == "running"
        own = await browser.post(cancel, headers={"Origin": server})  # same origin
        assert own.status_code == 202, own.text


# --------------------------------------------------------------------------- #
# the command line                                                            #
# --------------------------------------------------------------------------- #


def test_a_public_bind_without_keys_is_refused_in_one_line(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "runplane.cli", "serve", "--host", "0.0.0.0",
         "--port", str(free_port()), "--database", f"sqlite:///{tmp_path}/x.db"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "without API keys" in lines[0] and "--insecure" in lines[0]


@pytest.mark.parametrize("content, error", [
    ("short alice\n", "at least 16 characters"),
    (f"{ALICE_KEY}\n", "expected 'KEY OWNER'"),
    (f"{ALICE_KEY} alice root\n", "expected 'KEY OWNER'"),
    (f"{ALICE_KEY} alice\n{ALICE_KEY} bob\n", "line 2: this key is already configured"),
    ("# nothing\n", "configures no API keys"),
])
def test_a_bad_key_file_is_refused_in_one_line(tmp_path: Path, content: str, error: str):
    keys = tmp_path / "keys.txt"
    keys.write_text(content)
    proc = subprocess.run(
        [sys.executable, "-m", "runplane.cli", "serve", "--port", str(free_port()),
         "--database", f"sqlite:///{tmp_path}/x.db"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={**os.environ, "RUNPLANE_API_KEYS": str(keys)})
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and error in lines[0], proc.stderr


async def test_insecure_serves_a_public_bind_and_loopback_says_it_has_no_keys(
    tmp_path: Path,
):
    for host, extra, says in (("0.0.0.0", ["--insecure"], "no API keys, --insecure"),
                              ("127.0.0.1", [], "no API keys: loopback only")):
        with Processes(tmp_path) as procs:
            served = await asyncio.to_thread(
                procs.serve, f"server-{host}", *SERVE, *extra,
                "--database", f"sqlite:///{tmp_path}/{uuid.uuid4().hex}.db", host=host)
            async with http_as(served.url, None) as anyone:
                assert (await anyone.get("/runs")).status_code == 200  # no keys: open
        assert says in served.process.output()


async def test_the_runs_command_sends_runplane_api_key(
    server: str, clients: dict[str, LangGraphClient],
):
    await clients["alice"].runs.wait(None, "echo", input={"cli": 1})
    run = (await clients["alice"].http.get("/runs", params={"limit": 1}))[0]

    def runs_cli(key: str | None, *args: str) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k != "RUNPLANE_API_KEY"}
        return subprocess.run(
            [sys.executable, "-m", "runplane.cli", "runs", *args, "--url", server, "--json"],
            capture_output=True, text=True, timeout=60,
            env=env if key is None else {**env, "RUNPLANE_API_KEY": key})

    shown = await asyncio.to_thread(runs_cli, ALICE_KEY, "get", run["run_id"])
    assert shown.returncode == 0 and json.loads(shown.stdout)["run_id"] == run["run_id"]
    hidden = await asyncio.to_thread(runs_cli, BOB_KEY, "get", run["run_id"])
    assert hidden.returncode == 1 and "404" in hidden.stderr
    keyless = await asyncio.to_thread(runs_cli, None, "tail", run["run_id"])
    assert keyless.returncode == 1 and "401: missing API key" in keyless.stderr


def test_the_key_file_format_is_documented_by_its_parser():
    from runplane.server.auth import ApiKeys

    keys = ApiKeys.parse(KEY_FILE)
    assert keys.owners == ["alice", "bob", "ops"]
    assert keys.caller(BOB_KEY) is not None and keys.caller(BOB_KEY).owner == "bob"
    assert keys.caller(ADMIN_KEY).admin and not keys.caller(ALICE_KEY).admin
    assert keys.caller("sha256:" + hashlib.sha256(BOB_KEY.encode()).hexdigest()) is None
    assert keys.caller("") is None
    assert json.dumps(keys.owners)  # owners only; the keys themselves are not kept
