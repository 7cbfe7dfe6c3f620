"""``/threads`` (``runplane.server.threads``): create, get (with ``include=ttl``), update,
search, state, status, time to live and delete."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import ConflictError, NotFoundError

from acceptance.http.helpers import (
    new_thread,
    start_parked,
    wait_mark,
)


async def test_thread_create_get_and_duplicate_id_conflicts(client: LangGraphClient) -> None:
    thread_id = str(uuid.uuid4())
    made = await client.threads.create(thread_id=thread_id, metadata={"owner": "a"})
    assert made["thread_id"] == thread_id and made["metadata"] == {"owner": "a"}
    assert made["status"] == "idle"
    for key in ("created_at", "updated_at", "values"):
        assert key in made
    got = await client.threads.get(thread_id)
    assert got["thread_id"] == thread_id and got["metadata"] == {"owner": "a"}
    with pytest.raises(ConflictError):
        await client.threads.create(thread_id=thread_id, metadata={"owner": "b"})
    with pytest.raises(ConflictError):
        await client.threads.create(thread_id=thread_id, if_exists="raise")
    same = await client.threads.create(thread_id=thread_id, metadata={"owner": "c"},
                                       if_exists="do_nothing")
    assert same["thread_id"] == thread_id and same["metadata"] == {"owner": "a"}
    assert same["created_at"] == made["created_at"]


async def test_thread_update_merges_metadata(client: LangGraphClient) -> None:
    thread_id = await new_thread(client, a=1, b=2)
    updated = await client.threads.update(thread_id, metadata={"b": 3, "c": 4})
    assert updated["metadata"] == {"a": 1, "b": 3, "c": 4}
    assert (await client.threads.get(thread_id))["metadata"] == {"a": 1, "b": 3, "c": 4}


async def test_thread_search_filters_by_metadata_status_and_pages(
        client: LangGraphClient, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex
    idle = await new_thread(client, tag=tag, kind="idle")
    busy = await new_thread(client, tag=tag, kind="busy")
    await new_thread(client, tag="other")
    parked = await start_parked(client, tmp_path, busy)
    try:
        found = await client.threads.search(metadata={"tag": tag}, limit=10)
        assert sorted(t["thread_id"] for t in found) == sorted([idle, busy])
        found = await client.threads.search(metadata={"tag": tag}, status="busy")
        assert [t["thread_id"] for t in found] == [busy]
        found = await client.threads.search(metadata={"tag": tag}, status="idle")
        assert [t["thread_id"] for t in found] == [idle]
        first = await client.threads.search(metadata={"tag": tag}, limit=1, offset=0)
        second = await client.threads.search(metadata={"tag": tag}, limit=1, offset=1)
        assert len(first) == 1 and len(second) == 1
        assert {first[0]["thread_id"], second[0]["thread_id"]} == {idle, busy}
    finally:
        await client.runs.cancel(parked.thread_id, parked.run_id)


async def test_thread_state_holds_the_last_runs_output(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    out = await client.runs.wait(thread_id, "echo", input={"x": 1})
    assert out == {"echo": {"x": 1}}
    state = await client.threads.get_state(thread_id)
    assert state["values"] == out
    assert state["next"] == []
    assert isinstance(state["checkpoint"], dict)
    thread = await client.threads.get(thread_id)
    assert thread["values"] == out and thread["status"] == "idle"


async def test_thread_status_follows_its_last_run(client: LangGraphClient,
                                                  tmp_path: Path) -> None:
    thread_id = await new_thread(client)
    parked = await start_parked(client, tmp_path, thread_id)
    assert (await client.threads.get(thread_id))["status"] == "busy"
    await client.runs.cancel(thread_id, parked.run_id, wait=True)
    assert (await client.threads.get(thread_id))["status"] == "interrupted"
    with pytest.raises(Exception, match="boom"):
        await client.runs.wait(thread_id, "fails", input={})
    assert (await client.threads.get(thread_id))["status"] == "error"
    await client.runs.wait(thread_id, "echo", input={})
    assert (await client.threads.get(thread_id))["status"] == "idle"


async def test_thread_delete_cancels_its_active_run_first(client: LangGraphClient,
                                                          tmp_path: Path) -> None:
    parked = await start_parked(client, tmp_path)
    await client.threads.delete(parked.thread_id)
    with pytest.raises(NotFoundError):
        await client.threads.get(parked.thread_id)
    # The run's task was stopped: its cleanup ran (it would otherwise park forever).
    await wait_mark(parked.marker, "cleanup-done")


async def test_unknown_thread_is_not_found(client: LangGraphClient) -> None:
    with pytest.raises(NotFoundError):
        await client.threads.get(str(uuid.uuid4()))
    with pytest.raises(NotFoundError):
        await client.threads.delete(str(uuid.uuid4()))


async def test_a_thread_ttl_is_kept_and_shown_with_include(
        client: LangGraphClient, http: httpx.AsyncClient) -> None:
    made = await client.threads.create(ttl=30)
    assert "ttl" not in made
    got = await client.threads.get(made["thread_id"], include=["ttl"])
    ttl = got["ttl"]
    assert ttl["strategy"] == "delete" and ttl["ttl_minutes"] == 30
    expires = datetime.fromisoformat(ttl["expires_at"])
    assert expires - datetime.fromisoformat(got["updated_at"]) == timedelta(minutes=30)
    await client.threads.update(made["thread_id"], metadata={},
                                ttl={"ttl": 5, "strategy": "keep_latest"})
    got = await client.threads.get(made["thread_id"], include=["ttl"])
    assert got["ttl"]["strategy"] == "keep_latest" and got["ttl"]["ttl_minutes"] == 5
    plain = await client.threads.create()
    assert "ttl" not in await client.threads.get(plain["thread_id"], include=["ttl"])

    count = await client.threads.count()
    for body, says in [({"ttl": -5}, "positive number of minutes"),
                       ({"ttl": {"ttl": 5, "strategy": "archive"}}, "archive"),
                       ({"supersteps": [{"updates": []}]}, "supersteps")]:
        answer = await http.post("/threads", json=body)
        assert answer.status_code == 422, answer.text
        assert says in answer.text
    answer = await http.get(f"/threads/{plain['thread_id']}", params={"include": "ttl,bogus"})
    assert answer.status_code == 422 and "bogus" in answer.json()["detail"]
    assert await client.threads.count() == count  # the refused ones created nothing
