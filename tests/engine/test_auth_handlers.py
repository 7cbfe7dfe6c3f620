"""A project's LangGraph auth handlers in the service, on both stores: what a handler adds
is stored, its filter narrows every read and write of the resource (searches and counts in
SQL, one object in Python, alike), a refusal is a typed error that changes nothing, and
the owner rule still holds underneath (one isolation rule for keys and handlers)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langgraph.graph import END, START, StateGraph
from langgraph_sdk import Auth
from typing_extensions import TypedDict

from runplane import Context, Runplane
from runplane.auth_handlers import Handlers, Unauthenticated
from runplane.clock import ManualClock
from runplane.errors import (
    AccessDenied,
    AssistantNotFound,
    CronNotFound,
    RunNotFound,
    ThreadNotFound,
    UnknownWorkflow,
)
from runplane.models import Caller
from runplane.server.wire import cron_body

from support import AppFactory

#: token -> who the authenticate handler says it is
USERS = {
    "alice-token": {"identity": "alice", "team": "red", "permissions": ["write"]},
    "bob-token": {"identity": "bob", "team": "red", "permissions": []},
}


async def authenticate_tokens(authorization: str | None) -> Auth.types.MinimalUserDict:
    user = USERS.get((authorization or "").removeprefix("Bearer "))
    if user is None:
        raise Auth.exceptions.HTTPException(401, "unknown token")
    return user  # type: ignore[return-value]


def project_auth() -> Auth:
    """An auth module as a LangGraph project writes one: threads, runs, assistants and
    crons carry their team, stamped on creation and required on every other action; store
    items live under the user's own namespace; deleting a thread needs ``write``."""
    auth = Auth()
    auth.authenticate(authenticate_tokens)

    @auth.on
    async def same_team(ctx: Auth.types.AuthContext, value: Any) -> Auth.types.FilterType:
        metadata = value.get("metadata") if isinstance(value, dict) else None
        if ctx.action in ("create", "create_run") and isinstance(metadata, dict):
            metadata["team"] = ctx.user["team"]
        return {"team": ctx.user["team"]}

    @auth.on.threads.delete
    async def writers_delete(ctx: Auth.types.AuthContext, value: Any) -> Any:
        if "write" not in ctx.permissions:  # an assert, as handlers write (pytest rewrites
            # a test module's asserts, adding to their words)
            raise AssertionError("deleting a thread needs the write permission")
        return {"team": ctx.user["team"]}

    @auth.on.store
    async def own_space(ctx: Auth.types.AuthContext, value: Any) -> Any:
        value["namespace"] = (ctx.user.identity, *(value.get("namespace") or ()))
        if ctx.action == "search":
            return {"kind": "note"}
        return None

    return auth


async def caller(handlers: Handlers, token: str) -> Caller:
    """Whom the authenticate handler says ``token`` is, as a request's scope shows it."""
    return await handlers.authenticate({
        "type": "http", "method": "GET", "path": "/threads", "query_string": b"",
        "headers": [(b"authorization", f"Bearer {token}".encode())]})


class _State(TypedDict, total=False):
    n: int
    who: Any


def one_node(node: Any) -> Any:
    """A compiled graph of one node."""
    builder = StateGraph(_State)
    builder.add_node("node", node)
    builder.add_edge(START, "node")
    builder.add_edge("node", END)
    return builder.compile()


def auth_app(make_app: AppFactory) -> Runplane:
    app = make_app()

    @app.workflow("echo")
    async def echo(ctx: Context, input: Any) -> Any:
        return await ctx.step("echo", asyncio.sleep, 0, input)

    @app.workflow("family")
    async def family(ctx: Context, input: Any) -> Any:
        return await (await ctx.spawn("echo", input))

    return app


async def test_the_authenticate_handler_names_the_caller_or_refuses():
    handlers = Handlers(project_auth())
    alice = await caller(handlers, "alice-token")
    assert (alice.owner, alice.admin, alice.permissions) == ("alice", False, ("write",))
    assert (alice.user.identity, alice.user["team"], alice.user.display_name) == \
        ("alice", "red", "alice")
    with pytest.raises(Unauthenticated) as refused:
        await caller(handlers, "mallory-token")
    assert (refused.value.status, refused.value.detail) == (401, "unknown token")


async def test_what_a_handler_adds_is_stored_and_its_filter_narrows_threads_and_runs(
    make_app: AppFactory,
):
    app = auth_app(make_app)
    async with app:
        s = app.service
        handlers = Handlers(project_auth())
        alice = await caller(handlers, "alice-token")
        plain = Caller("alice")  # alice by an API key: the same owner, no handlers
        red = await s.create_thread(metadata={"topic": "x"}, caller=alice)
        assert red.metadata == {"topic": "x", "team": "red"}
        blue = await s.create_thread(metadata={"team": "blue"}, caller=plain)
        untagged = await s.create_thread(caller=plain)
        red_run = await s.create_run(red.thread_id, "echo", 1, caller=alice)
        assert red_run.metadata == {"team": "red"}
        blue_run = await s.create_run(blue.thread_id, "echo", 2, caller=plain)
        loose = await s.create_run(None, "echo", 3, caller=alice)  # its own metadata counts
        for run in (red_run, blue_run, loose):
            await s.settled(run.run_id)

        assert [t.thread_id for t in await s.search_threads(caller=alice)] == [red.thread_id]
        assert await s.count_threads(caller=alice) == 1
        assert await s.count_threads(caller=plain) == 3  # handlers narrow their callers only
        assert {r.run_id for r in await s.list_runs(caller=alice)} == \
            {red_run.run_id, loose.run_id}
        assert sum((await s.count_runs(caller=alice)).values()) == 2
        for hidden in (blue, untagged):
            for call in (s.get_thread(hidden.thread_id, caller=alice),
                         s.get_state(hidden.thread_id, caller=alice),
                         s.update_thread(hidden.thread_id, metadata={"team": "red"},
                                         caller=alice),
                         s.list_runs(hidden.thread_id, caller=alice),
                         s.create_run(hidden.thread_id, "echo", 4, caller=alice)):
                with pytest.raises(ThreadNotFound):
                    await call
        for call in (s.get_run(blue_run.run_id, caller=alice),
                     s.delete_run(blue_run.run_id, caller=alice),
                     s.cancel(blue_run.run_id, caller=alice)):
            with pytest.raises(RunNotFound):
                await call
        assert (await s.get_run(red_run.run_id, caller=alice)).run_id == red_run.run_id
        assert (await s.get_thread(blue.thread_id)).metadata == {"team": "blue"}  # unchanged
        assert len(await s.list_runs(blue.thread_id)) == 1

        bob = await caller(handlers, "bob-token")  # bob is red too: the owner rule holds
        assert await s.search_threads(caller=bob) == []
        with pytest.raises(ThreadNotFound):
            await s.get_thread(red.thread_id, caller=bob)


async def test_a_graphs_thread_made_by_a_run_carries_the_runs_metadata(make_app: AppFactory):
    """A thread-less run's new thread gets the run's metadata (as on the LangGraph server),
    so the thread a handler-stamped run made is its caller's to read."""
    app = make_app()
    app.add_graph("counter", one_node(lambda state: {"n": state["n"] + 1}))
    async with app:
        s = app.service
        alice = await caller(Handlers(project_auth()), "alice-token")
        run = await s.create_run(None, "counter", {"n": 1}, caller=alice)
        await s.settled(run.run_id)
        assert run.thread_id is not None
        thread = await s.get_thread(run.thread_id, caller=alice)
        assert thread.metadata["team"] == "red" and thread.metadata["graph_id"] == "counter"
        assert [t.thread_id for t in await s.search_threads(caller=alice)] == [run.thread_id]


def sharing_auth(found: Any) -> Auth:
    auth = Auth()

    @auth.authenticate
    async def authenticate(authorization: str | None) -> str:
        return (authorization or "").removeprefix("Bearer ")

    @auth.on.threads
    async def shared(ctx: Auth.types.AuthContext, value: Any) -> Any:
        return found

    return auth


@pytest.mark.parametrize("found, visible", [
    ({"$or": [{"owner": "alice"}, {"shared_with": {"$contains": "alice"}}]}, {0, 1, 5}),
    ({"shared_with": {"$contains": ["alice", "carol"]}}, {1}),
    ({"owner": {"$eq": "alice"}, "level": 2}, {5}),
    ({"$and": [{"owner": "alice"}, {"owner": "bob"}]}, set()),
    ({"nested": {"a": 1}}, {6}),
    ({}, {0, 1, 2, 3, 4, 5, 6}),
])
async def test_contains_or_and_filters_match_alike_in_sql_and_in_python(
    make_app: AppFactory, found: Any, visible: set[int],
):
    app = auth_app(make_app)
    async with app:
        s = app.service
        plain = Caller("alice")
        tagged = [await s.create_thread(metadata=m, caller=plain) for m in (
            {"owner": "alice"}, {"shared_with": ["bob", "alice", "carol"]},
            {"shared_with": "alice"}, {"owner": "bob"}, {}, {"owner": "alice", "level": 2.0},
            {"nested": {"a": 1, "b": 2}})]
        tagged[0] = await s.update_thread(tagged[0].thread_id, metadata={"level": True},
                                          caller=plain)  # true is not the number 2
        alice = await caller(Handlers(sharing_auth(found)), "alice")
        listed = {t.thread_id for t in await s.search_threads(limit=100, caller=alice)}
        assert listed == {tagged[k].thread_id for k in visible}
        assert await s.count_threads(caller=alice) == len(visible)
        for k, thread in enumerate(tagged):  # one object: the same answer in Python
            try:
                await s.get_thread(thread.thread_id, caller=await caller(
                    Handlers(sharing_auth(found)), "alice"))
                seen = True
            except ThreadNotFound:
                seen = False
            assert seen == (k in visible)


async def test_a_handlers_refusal_is_its_status_and_changes_nothing(make_app: AppFactory):
    auth = project_auth()

    @auth.on.threads.update
    async def slow_down(ctx: Auth.types.AuthContext, value: Any) -> Any:
        raise Auth.exceptions.HTTPException(429, "slow down", headers={"Retry-After": "9"})

    @auth.on.threads.search
    async def nobody_searches(ctx: Auth.types.AuthContext, value: Any) -> bool:
        return False

    app = auth_app(make_app)
    async with app:
        s = app.service
        handlers = Handlers(auth)
        alice, bob = await caller(handlers, "alice-token"), await caller(handlers, "bob-token")
        thread = await s.create_thread(metadata={"v": 1}, caller=alice)
        with pytest.raises(AccessDenied) as refused:
            await s.update_thread(thread.thread_id, metadata={"v": 2}, caller=alice)
        assert (refused.value.status, str(refused.value), refused.value.headers) == \
            (429, "slow down", {"Retry-After": "9"})
        with pytest.raises(AccessDenied) as refused:
            await s.search_threads(caller=alice)
        assert (refused.value.status, str(refused.value)) == (403, "Forbidden")
        bobs = await s.create_thread(caller=bob)
        with pytest.raises(AccessDenied) as refused:  # an assertion: 403 with its words
            await s.delete_thread(bobs.thread_id, caller=bob)
        assert (refused.value.status, str(refused.value)) == \
            (403, "deleting a thread needs the write permission")
        assert (await s.get_thread(thread.thread_id)).metadata == {"v": 1, "team": "red"}
        assert (await s.get_thread(bobs.thread_id)).thread_id == bobs.thread_id
        await s.delete_thread(thread.thread_id, caller=alice)  # alice may write


async def test_store_handlers_move_items_into_the_users_space_and_filter_searches(
    make_app: AppFactory,
):
    app = auth_app(make_app)
    async with app:
        s = app.service
        alice = await caller(Handlers(project_auth()), "alice-token")
        await s.put_item(("docs",), "a", {"kind": "note", "text": "hi"}, caller=alice)
        await s.put_item(("docs",), "b", {"kind": "todo"}, caller=alice)
        assert (await s.get_item(("docs",), "a", caller=alice)).namespace == ("alice", "docs")
        stored = await s.get_item(("alice", "docs"), "a", caller=Caller("alice"))
        assert stored is not None and stored.value["text"] == "hi"
        assert [i.key for i in await s.search_items(("docs",), caller=alice)] == ["a"]
        assert len(await s.search_items(("alice",), caller=Caller("alice"))) == 2
        assert await s.list_namespaces(caller=alice) == [("alice", "docs")]
        await s.delete_item(("docs",), "a", caller=alice)
        assert await s.get_item(("alice", "docs"), "a", caller=Caller("alice")) is None


async def test_assistant_and_cron_filters_hide_what_does_not_match(make_app: AppFactory):
    app = auth_app(make_app)
    async with app:
        s = app.service
        alice = await caller(Handlers(project_auth()), "alice-token")
        plain = Caller("alice")
        mine = await s.create_assistant("echo", name="red", caller=alice)
        assert mine.metadata == {"team": "red"}
        other = await s.create_assistant("echo", name="blue", caller=plain)
        found = await s.search_assistants(limit=100, caller=alice)
        assert {a.assistant_id for a in found} == {"echo", "family", mine.assistant_id}
        assert await s.count_assistants(caller=alice) == 3  # the code's are everyone's
        for call in (s.get_assistant(other.assistant_id, caller=alice),
                     s.update_assistant(other.assistant_id, name="taken", caller=alice),
                     s.set_latest_assistant_version(other.assistant_id, 1, caller=alice),
                     s.delete_assistant(other.assistant_id, caller=alice),
                     s.assistant_versions(other.assistant_id, caller=alice)):
            with pytest.raises(AssistantNotFound):
                await call
        with pytest.raises(UnknownWorkflow):  # as an unknown assistant
            await s.create_run(None, other.assistant_id, {}, caller=alice)
        assert (await s.get_assistant(other.assistant_id)).name == "blue"

        cron = await s.create_cron("echo", schedule="0 0 1 1 *", caller=alice)
        assert cron.metadata == {"team": "red"}
        hidden = await s.create_cron("echo", schedule="0 0 1 1 *", caller=plain)
        assert [c.cron_id for c in await s.search_crons(caller=alice)] == [cron.cron_id]
        assert await s.count_crons(caller=alice) == 1
        for call in (s.update_cron(hidden.cron_id, enabled=False, caller=alice),
                     s.delete_cron(hidden.cron_id, caller=alice)):
            with pytest.raises(CronNotFound):
                await call
        assert len(await s.search_crons(caller=plain)) == 2


def docs_auth(calls: list[str] | None = None) -> Auth:
    """The handler LangGraph's documentation writes: stamp the owner on whatever has
    metadata (``setdefault``, so every value must be a dict), filter by it."""
    auth = Auth()
    auth.authenticate(authenticate_tokens)

    @auth.on
    async def add_owner(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> Any:
        if calls is not None:
            calls.append(f"{ctx.resource}.{ctx.action}")
        filters = {"owner": ctx.user.identity}
        value.setdefault("metadata", {}).update(filters)
        return filters

    return auth


async def test_the_documented_handler_works_on_every_change(make_app: AppFactory):
    app = auth_app(make_app)
    async with app:
        s = app.service
        alice = await caller(Handlers(docs_auth()), "alice-token")
        assistant = await s.create_assistant("echo", caller=alice)
        updated = await s.update_assistant(assistant.assistant_id, name="renamed", caller=alice)
        assert (updated.name, updated.metadata) == ("renamed", {"owner": "alice"})
        cron = await s.create_cron("echo", schedule="0 0 1 1 *", caller=alice)
        changed = await s.update_cron(cron.cron_id, enabled=False, caller=alice)
        assert (changed.enabled, changed.metadata) == (False, {"owner": "alice"})
        thread = await s.create_thread(caller=alice)
        run = await s.create_run(thread.thread_id, "echo", 1, caller=alice)
        assert run.metadata == {"owner": "alice"}


async def test_a_stream_polling_asks_the_read_handler_once(make_app: AppFactory):
    app = auth_app(make_app)
    async with app:
        s = app.service
        calls: list[str] = []
        alice = await caller(Handlers(docs_auth(calls)), "alice-token")
        thread = await s.create_thread(caller=alice)
        calls.clear()
        for _ in range(5):  # what a thread's stream does every poll, in one request
            assert await s.next_thread_run(thread.thread_id, None, caller=alice) is None
        assert calls == ["threads.search"]


async def test_deleting_an_assistants_threads_asks_the_threads_handler(make_app: AppFactory):
    auth = Auth()
    auth.authenticate(authenticate_tokens)

    @auth.on.threads.delete
    async def only_red(ctx: Auth.types.AuthContext, value: Any) -> Any:
        return {"team": "red"}

    app = auth_app(make_app)
    async with app:
        s = app.service
        alice = await caller(Handlers(auth), "alice-token")
        plain = Caller("alice")
        assistant = await s.create_assistant("echo", caller=alice)
        tag = {"assistant_id": assistant.assistant_id}
        red = await s.create_thread(metadata={**tag, "team": "red"}, caller=plain)
        blue = await s.create_thread(metadata={**tag, "team": "blue"}, caller=plain)
        await s.delete_assistant(assistant.assistant_id, delete_threads=True, caller=alice)
        with pytest.raises(ThreadNotFound):
            await s.get_thread(red.thread_id)
        assert (await s.get_thread(blue.thread_id)).thread_id == blue.thread_id  # hidden: kept

        refusing = Auth()
        refusing.authenticate(authenticate_anyone)

        @refusing.on.threads.delete
        async def never(ctx: Auth.types.AuthContext, value: Any) -> bool:
            return False

        kept = await s.create_assistant("echo", caller=plain)
        await s.create_thread(metadata={"assistant_id": kept.assistant_id}, caller=plain)
        with pytest.raises(AccessDenied):
            await s.delete_assistant(kept.assistant_id, delete_threads=True,
                                     caller=await caller(Handlers(refusing), "alice"))
        assert (await s.get_assistant(kept.assistant_id)).assistant_id == kept.assistant_id


async def authenticate_anyone(authorization: str | None) -> str:
    return (authorization or "").removeprefix("Bearer ")


async def test_a_graph_reads_its_user_from_the_handler_never_from_the_client(
    make_app: AppFactory,
):
    from langchain_core.runnables import RunnableConfig
    def whoami(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        c = config["configurable"]
        user = c.get("langgraph_auth_user")
        return {"who": [c.get("langgraph_auth_user_id"), c.get("langgraph_auth_permissions"),
                        None if user is None else (user.identity, user["team"])]}

    clock = ManualClock(1_800_000_000.0)
    app = make_app(clock=clock, cron_interval=3600.0)
    app.add_graph("whoami", one_node(whoami))
    async with app:
        s = app.service
        alice = await caller(Handlers(project_auth()), "alice-token")
        forged = {"configurable": {"langgraph_auth_user_id": "bob",
                                   "langgraph_auth_permissions": ["admin"]}}
        mine = await s.create_run(None, "whoami", {}, config=forged, caller=alice)
        theirs = await s.create_run(None, "whoami", {}, config=forged)  # no handlers
        assert (await s.join(mine.run_id))["who"] == ["alice", ["write"], ["alice", "red"]]
        assert (await s.join(theirs.run_id))["who"] == [None, None, None]

        cron = await s.create_cron("whoami", schedule="* * * * *", input={}, config=forged,
                                   caller=alice)
        assert "auth" not in cron_body(cron)["payload"]
        clock.advance(60)  # a cron's runs are its maker's: their graph reads alice too
        [fired] = await s.fire_crons()
        assert (await s.join(fired.run_id))["who"] == ["alice", ["write"], ["alice", "red"]]


async def test_what_a_store_handler_changes_in_a_search_is_what_runs(make_app: AppFactory):
    auth = Auth()
    auth.authenticate(authenticate_anyone)

    @auth.on.store.search
    async def at_most_one(ctx: Auth.types.AuthContext, value: Any) -> Any:
        value["limit"] = 1
        return {"n": {"$gt": 1}}

    app = auth_app(make_app)
    async with app:
        s = app.service
        alice = await caller(Handlers(auth), "alice")
        for n in (1, 2, 3):
            await s.put_item(("docs",), f"k{n}", {"n": n}, caller=alice)
        found = await s.search_items(("docs",), limit=10, caller=alice)
        assert len(found) == 1 and found[0].value["n"] > 1


async def test_a_child_run_takes_its_parents_metadata_and_stays_visible(make_app: AppFactory):
    app = auth_app(make_app)
    async with app:
        s = app.service
        alice = await caller(Handlers(project_auth()), "alice-token")
        parent = await s.create_run(None, "family", {"x": 1}, caller=alice)
        assert await s.join(parent.run_id, caller=alice) == {"x": 1}
        tree = await s.tree(parent.run_id, caller=alice)
        [child] = tree.children
        found = await s.get_run(child.run.run_id, caller=alice)
        assert found.metadata == {"team": "red"}
        assert {r.run_id for r in await s.list_runs(caller=alice)} == \
            {parent.run_id, child.run.run_id}
