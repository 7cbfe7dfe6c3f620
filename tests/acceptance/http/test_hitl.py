"""Human in the loop on a served LangGraph project, through ``langgraph_sdk`` as on the
LangGraph server: a graph stops at ``interrupt()`` (the run ends ``success``, the thread
is ``interrupted`` with its pending interrupts), a ``command`` resumes it without running
a completed node again, several interrupts are resumed by id, breakpoints stop before or
after nodes and input ``None`` continues; a resume with nothing to resume is a 409. And
what a person does with a thread's history: ``update_state`` (refused while a run is
active), forks from an earlier checkpoint (a rollback puts the head back), copies and
prunes, a thread's stream across runs with a reconnect; batches of runs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import APIStatusError

from acceptance.http.helpers import Server, serve_graph_project

from support import eventually
from support.databases import STORES


@pytest.fixture(scope="module", params=STORES)
def server(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The graph project, served for this module (``client`` and ``http`` talk to it)."""
    yield from serve_graph_project(request, tmp_path_factory, "hitl")


async def _asked(client: LangGraphClient) -> tuple[str, dict[str, Any]]:
    """A thread whose ``approval`` graph waits for a person; the first run's output."""
    thread = (await client.threads.create())["thread_id"]
    output = await client.runs.wait(thread, "approval", input={"to": "Ada"})
    return thread, output


async def test_an_interrupt_ends_the_run_and_leaves_the_thread_waiting(
        client: LangGraphClient):
    thread, output = await _asked(client)
    [asked] = output["__interrupt__"]
    assert asked["value"] == {"question": "send this email?",
                              "draft": "Dear Ada, the run is done."}
    [run] = await client.runs.list(thread)
    assert run["status"] == "success"
    waiting = await client.threads.get(thread)
    assert waiting["status"] == "interrupted"
    [(task_id, [pending])] = waiting["interrupts"].items()
    assert pending["id"] == asked["id"] and pending["value"] == asked["value"]
    assert "__interrupt__" not in waiting["values"]
    state = await client.threads.get_state(thread)
    assert state["next"] == ["review"]
    [task] = state["tasks"]
    assert task["id"] == task_id and task["interrupts"][0]["id"] == asked["id"]


@pytest.mark.parametrize(("answer", "expected"), [
    ("approve", {"sent": True, "runs": ["draft", "review", "send"]}),
    ("reject", {"runs": ["draft", "review"]}),
])
async def test_a_resume_goes_on_from_the_interrupt_without_rerunning_a_node(
        client: LangGraphClient, answer: str, expected: dict[str, Any]):
    thread, _ = await _asked(client)
    output = await client.runs.wait(thread, "approval", command={"resume": answer})
    assert output["decision"] == answer
    assert {k: output.get(k) for k in expected} == expected
    assert output.get("sent") is expected.get("sent")
    done = await client.threads.get(thread)
    assert done["status"] == "idle" and done["interrupts"] == {}
    assert (await client.threads.get_state(thread))["next"] == []


async def test_a_resume_with_nothing_to_resume_is_a_409_and_creates_no_run(
        client: LangGraphClient):
    thread = (await client.threads.create())["thread_id"]
    with pytest.raises(APIStatusError) as refused:
        await client.runs.create(thread, "approval", command={"resume": "approve"})
    assert refused.value.response.status_code == 409
    assert "no pending interrupt" in refused.value.response.json()["detail"]
    assert await client.runs.list(thread) == []
    with pytest.raises(APIStatusError) as threadless:
        await client.runs.create(None, "approval", command={"resume": "approve"})
    assert threadless.value.response.status_code == 409


async def test_two_pending_interrupts_are_resumed_by_id(client: LangGraphClient):
    thread = (await client.threads.create())["thread_id"]
    output = await client.runs.wait(thread, "parallel", input={})
    asked = {i["value"]: i["id"] for i in output["__interrupt__"]}
    assert set(asked) == {"legal, do you agree?", "finance, do you agree?"}
    waiting = await client.threads.get(thread)
    assert len(waiting["interrupts"]) == 2  # one per task
    output = await client.runs.wait(thread, "parallel", command={"resume": {
        asked["legal, do you agree?"]: "yes", asked["finance, do you agree?"]: "no"}})
    assert sorted(output["votes"]) == ["finance:no", "legal:yes"]
    assert (await client.threads.get(thread))["status"] == "idle"


async def test_streams_carry_the_interrupt_in_values_and_in_updates(client: LangGraphClient):
    thread = (await client.threads.create())["thread_id"]
    values = [part.data async for part in client.runs.stream(
        thread, "approval", input={"to": "Ada"}, stream_mode="values")
        if part.event == "values"]
    assert values[-1]["__interrupt__"][0]["value"]["question"] == "send this email?"
    updates = [part.data async for part in client.runs.stream(
        thread, "approval", command={"resume": "reject"}, stream_mode="updates")
        if part.event == "updates"]
    assert {"review"} <= {key for update in updates for key in update}
    other = (await client.threads.create())["thread_id"]
    updates = [part.data async for part in client.runs.stream(
        other, "approval", input={"to": "Bo"}, stream_mode="updates")
        if part.event == "updates"]
    assert updates[-1]["__interrupt__"][0]["value"]["draft"] == "Dear Bo, the run is done."


@pytest.mark.parametrize(("where", "nodes", "stopped_after"), [
    ("interrupt_before", ["b"], ["a"]),
    ("interrupt_after", ["b"], ["a", "b"]),
    ("interrupt_before", "*", []),
])
async def test_a_breakpoint_stops_the_graph_and_input_none_goes_on(
        client: LangGraphClient, where: str, nodes: Any, stopped_after: list[str]):
    thread = (await client.threads.create())["thread_id"]
    output = await client.runs.wait(thread, "steps", input={"trail": []}, **{where: nodes})
    assert output["trail"] == stopped_after
    paused = await client.threads.get(thread)
    assert paused["status"] == "interrupted" and paused["interrupts"] == {}
    assert (await client.threads.get_state(thread))["next"]
    output = await client.runs.wait(thread, "steps", input=None)
    assert output["trail"] == ["a", "b", "c"]
    assert (await client.threads.get(thread))["status"] == "idle"


async def test_a_command_or_breakpoint_for_a_workflow_or_of_a_bad_shape_is_a_422(
        client: LangGraphClient, server: Server):
    import httpx

    async with httpx.AsyncClient(base_url=server.url) as http:
        thread = (await client.threads.create())["thread_id"]
        for body in ({"assistant_id": "steps", "command": {}},
                     {"assistant_id": "steps", "command": {"jump": "b"}},
                     {"assistant_id": "steps", "command": {"goto": 3}},
                     {"assistant_id": "steps", "command": {"update": ["trail"]}},
                     {"assistant_id": "steps", "command": {"update": [[1, 2]]}},
                     {"assistant_id": "steps", "interrupt_before": "b"},
                     {"assistant_id": "steps", "interrupt_after": [1]}):
            answer = await http.post(f"/threads/{thread}/runs", json=body)
            assert answer.status_code == 422, (body, answer.text)
            assert answer.json()["detail"]
        assert await client.runs.list(thread) == []


async def test_an_interrupt_in_a_subgraph_stops_the_parent_and_resumes_there(
        client: LangGraphClient):
    thread = (await client.threads.create())["thread_id"]
    output = await client.runs.wait(thread, "nested_approval", input={"to": "Cy"})
    assert output["__interrupt__"][0]["value"]["draft"] == "Dear Cy, the run is done."
    waiting = await client.threads.get(thread)
    assert waiting["status"] == "interrupted" and len(waiting["interrupts"]) == 1
    assert (await client.threads.get_state(thread))["next"] == ["approval"]
    output = await client.runs.wait(thread, "nested_approval", command={"resume": "approve"})
    assert output["sent"]  # each node of the subgraph ran once (its state adds to runs)
    assert [output["runs"].count(node) for node in ("draft", "review", "send")] == [1, 1, 1]
    assert (await client.threads.get(thread))["status"] == "idle"


async def test_update_state_writes_a_checkpoint_the_next_run_goes_on_from(
        client: LangGraphClient):
    thread = (await client.threads.create())["thread_id"]
    await client.runs.wait(thread, "steps", input={"trail": []}, interrupt_before=["b"])
    updated = await client.threads.update_state(thread, {"trail": ["edited"]}, as_node="a")
    state = await client.threads.get_state(thread)
    assert state["checkpoint"]["checkpoint_id"] == updated["checkpoint"]["checkpoint_id"]
    assert state["values"]["trail"] == ["a", "edited"] and state["next"] == ["b"]
    assert state["metadata"]["source"] == "update"
    assert (await client.threads.get(thread))["values"]["trail"] == ["a", "edited"]
    output = await client.runs.wait(thread, "steps", input=None)
    assert output["trail"] == ["a", "edited", "b", "c"]


async def test_update_state_as_the_interrupted_node_answers_for_it(client: LangGraphClient):
    """Editing the state as the node that asked stands in for its answer: the thread no
    longer waits, and the graph goes on past that node."""
    thread, _ = await _asked(client)
    await client.threads.update_state(thread, {"decision": "approve", "runs": ["review"]},
                                      as_node="review")
    waiting = await client.threads.get(thread)
    assert waiting["status"] == "interrupted" and waiting["interrupts"] == {}
    assert (await client.threads.get_state(thread))["next"] == ["send"]
    output = await client.runs.wait(thread, "approval", input=None)
    assert output["sent"] is True and output["runs"] == ["draft", "review", "send"]


async def test_update_state_is_refused_while_a_run_is_active_and_changes_nothing(
        client: LangGraphClient, tmp_path: Any):
    thread = (await client.threads.create())["thread_id"]
    gate = tmp_path / "gate"
    run = await client.runs.create(thread, "gated", input={"gate": str(gate)})

    async def parked() -> list[Any]:
        """The history once the run waits in its node and everything before it is stored:
        the step that scheduled the node, and its input's writes (on PostgreSQL stored a
        moment after that checkpoint): nothing changes until the gate opens."""
        history = await client.threads.get_history(thread, limit=100)
        stored = history and history[0]["next"] == ["wait"] and all(
            task["result"] is not None for state in history for task in state["tasks"]
            if task["name"] == "__start__")
        return history if stored else []

    before = await eventually(parked)
    assert (await client.runs.get(thread, run["run_id"]))["status"] == "running"
    with pytest.raises(APIStatusError) as refused:
        await client.threads.update_state(thread, {"done": True})
    assert refused.value.response.status_code == 409
    assert run["run_id"] in refused.value.response.json()["detail"]
    assert await client.threads.get_history(thread, limit=100) == before
    gate.touch()
    await client.runs.join(thread, run["run_id"])
    await client.threads.update_state(thread, {"done": False})
    assert (await client.threads.get_state(thread))["values"]["done"] is False


async def test_update_state_of_a_bad_shape_is_a_422_and_changes_nothing(
        client: LangGraphClient):
    thread = (await client.threads.create())["thread_id"]
    await client.runs.wait(thread, "steps", input={"trail": []})
    before = await client.threads.get_history(thread, limit=100)
    for values, as_node in (({"trail": ["x"]}, "nope"), ({"trail": 5}, "a")):
        with pytest.raises(APIStatusError) as refused:
            await client.threads.update_state(thread, values, as_node=as_node)
        assert refused.value.response.status_code == 422, values
    assert await client.threads.get_history(thread, limit=100) == before


async def test_get_state_at_a_checkpoint_given_as_a_config(client: LangGraphClient):
    thread = (await client.threads.create())["thread_id"]
    await client.runs.wait(thread, "steps", input={"trail": []})
    history = await client.threads.get_history(thread, limit=100)
    middle = next(s for s in history if s["values"].get("trail") == ["a"])
    state = await client.threads.get_state(thread, checkpoint=middle["checkpoint"])
    assert state["values"]["trail"] == ["a"] and state["next"] == ["b"]


async def test_a_run_from_an_earlier_checkpoint_forks_and_history_shows_both_branches(
        client: LangGraphClient):
    thread = (await client.threads.create())["thread_id"]
    await client.runs.wait(thread, "steps", input={"trail": []})
    history = await client.threads.get_history(thread, limit=100)
    after_a = next(s for s in history if s["values"].get("trail") == ["a"])
    head = history[0]["checkpoint"]["checkpoint_id"]

    await client.threads.update_state(thread, {"trail": ["fork"]}, as_node="a",
                                      checkpoint=after_a["checkpoint"])
    forked_from = (await client.threads.get_state(thread))["checkpoint"]
    output = await client.runs.wait(thread, "steps", input=None, checkpoint=forked_from)
    assert output["trail"] == ["a", "fork", "b", "c"]
    branch = await client.threads.get_history(thread, limit=100)
    trails = [s["values"].get("trail") for s in branch]
    assert trails.count(["a", "b", "c"]) == 1 and trails.count(["a", "fork", "b", "c"]) == 1
    assert head in {s["checkpoint"]["checkpoint_id"] for s in branch}  # the first branch
    assert branch[0]["values"]["trail"] == ["a", "fork", "b", "c"]  # the new head

    again = await client.runs.wait(thread, "steps", input=None,
                                   checkpoint_id=after_a["checkpoint"]["checkpoint_id"])
    assert again["trail"] == ["a", "b", "c"]  # a fork straight from the earlier checkpoint


async def test_a_forked_run_cancelled_with_rollback_puts_the_head_back(
        client: LangGraphClient, tmp_path: Any):
    thread = (await client.threads.create())["thread_id"]
    gate = tmp_path / "gate"
    gate.touch()
    await client.runs.wait(thread, "gated", input={"gate": str(gate)})
    history = await client.threads.get_history(thread, limit=100)
    head = history[0]["checkpoint"]["checkpoint_id"]
    before_wait = next(s for s in history if s["next"] == ["wait"])
    gate.unlink()  # the fork's run of "wait" now waits for it
    run = await client.runs.create(thread, "gated", input=None,
                                   checkpoint=before_wait["checkpoint"])

    async def running() -> bool:
        return (await client.runs.get(thread, run["run_id"]))["status"] == "running"

    await eventually(running)
    await client.runs.cancel(thread, run["run_id"], wait=True, action="rollback")
    assert (await client.threads.get_state(thread))["checkpoint"]["checkpoint_id"] == head
    assert [s["checkpoint"]["checkpoint_id"] for s in
            await client.threads.get_history(thread, limit=100)] == \
        [s["checkpoint"]["checkpoint_id"] for s in history]


async def test_a_batch_of_runs_is_created_whole_or_not_at_all(
        client: LangGraphClient, server: Server):
    runs = await client.runs.create_batch([
        {"assistant_id": "steps", "input": {"trail": []}},
        {"assistant_id": "steps", "input": {"trail": ["x"]}, "metadata": {"k": 2}},
    ])
    assert len(runs) == 2 and len({r["thread_id"] for r in runs}) == 2
    outputs = [await client.runs.join(r["thread_id"], r["run_id"]) for r in runs]
    assert [o["trail"] for o in outputs] == [["a", "b", "c"], ["x", "a", "b", "c"]]
    assert runs[1]["metadata"]["k"] == 2

    import httpx

    async with httpx.AsyncClient(base_url=server.url) as http:
        before = len((await http.get("/runs", params={"limit": 1000})).json())
        for batch in ([{"assistant_id": "steps"}, {"assistant_id": "steps",
                                                    "config": {"tags": "no"}}],
                      [{"assistant_id": "steps"}, {"assistant_id": "steps",
                                                    "stream_mode": ["nope"]}],
                      []):
            answer = await http.post("/runs/batch", json=batch)
            assert answer.status_code == 422, (batch, answer.text)
            assert answer.json()["detail"]
        missing = await http.post("/runs/batch", json=[{"assistant_id": "steps"},
                                                       {"assistant_id": "nope"}])
        assert missing.status_code == 404
        assert len((await http.get("/runs", params={"limit": 1000})).json()) == before


async def test_a_copied_thread_has_the_state_and_history_and_goes_on_separately(
        client: LangGraphClient):
    thread = await client.threads.create(metadata={"team": "ops"})
    await client.runs.wait(thread["thread_id"], "steps", input={"trail": []},
                           interrupt_before=["c"])
    copy = await client.threads.copy(thread["thread_id"])
    assert copy["thread_id"] != thread["thread_id"]
    assert copy["metadata"]["team"] == "ops" and copy["status"] == "interrupted"
    original = await client.threads.get_history(thread["thread_id"], limit=100)
    copied = await client.threads.get_history(copy["thread_id"], limit=100)
    assert [s["values"] for s in copied] == [s["values"] for s in original]
    assert (await client.runs.wait(copy["thread_id"], "steps", input=None))["trail"] == \
        ["a", "b", "c"]
    assert (await client.threads.get_state(thread["thread_id"]))["next"] == ["c"]
    with pytest.raises(APIStatusError) as missing:
        await client.threads.copy("00000000-0000-0000-0000-000000000000")
    assert missing.value.response.status_code == 404


async def test_prune_keeps_the_latest_checkpoint_or_deletes_the_threads(
        client: LangGraphClient):
    kept, gone = [(await client.threads.create())["thread_id"] for _ in range(2)]
    for thread in (kept, gone):
        await client.runs.wait(thread, "steps", input={"trail": []})
    latest = await client.threads.get_state(kept)
    assert (await client.threads.prune([kept, "nope"], strategy="keep_latest")) == \
        {"pruned_count": 1}
    [only] = await client.threads.get_history(kept, limit=100)
    assert only["checkpoint"] == latest["checkpoint"] and only["values"] == latest["values"]
    assert (await client.threads.prune([gone])) == {"pruned_count": 1}
    with pytest.raises(APIStatusError) as missing:
        await client.threads.get(gone)
    assert missing.value.response.status_code == 404



async def _thread_parts(client: LangGraphClient, thread: str, runs: int,
                        last_event_id: str | None = None,
                        seen: asyncio.Queue[Any] | None = None) -> list[Any]:
    """The thread's stream until ``runs`` runs are done (it stays open for more); each part
    is also put in ``seen`` as it comes."""
    parts, done = [], 0
    async for part in await client.threads.join_stream(thread, last_event_id=last_event_id):
        parts.append(part)
        if seen is not None:
            seen.put_nowait(part)
        if part.event == "metadata" and part.data.get("status") == "run_done":
            done += 1
            if done == runs:
                return parts
    raise AssertionError("the thread's stream ended")


async def test_a_thread_stream_carries_every_run_as_it_happens_and_resumes(
        client: LangGraphClient, tmp_path: Any):
    thread = (await client.threads.create())["thread_id"]
    gate = tmp_path / "gate"
    first = await client.runs.create(thread, "gated", input={"gate": str(gate)})
    seen: asyncio.Queue[Any] = asyncio.Queue()
    following = asyncio.create_task(_thread_parts(client, thread, 2, seen=seen))
    opened = await asyncio.wait_for(seen.get(), 30)  # the stream follows the active run
    assert opened.event == "metadata" and opened.data["run_id"] == first["run_id"]
    gate.touch()
    await client.runs.join(thread, first["run_id"])
    second = await client.runs.create(thread, "gated", input={"gate": str(gate)})
    parts = await asyncio.wait_for(following, 30)
    runs = [p.data["run_id"] for p in parts if p.event == "metadata" and "attempt" in p.data]
    assert runs == [first["run_id"], second["run_id"]]
    done = [p.data["run_id"] for p in parts if p.data.get("status") == "run_done"]
    assert done == runs
    values = [(p.id, p.data) for p in parts if p.event == "values"]
    assert values[-1][1] == {"gate": str(gate), "done": True}

    # a reconnect after the first values event of the first run goes on from there
    mark = values[0][0]
    assert mark and mark.startswith(f"{first['run_id']}:")
    resumed = await asyncio.wait_for(_thread_parts(client, thread, 2, mark), 30)
    assert [(p.id, p.data) for p in resumed if p.event == "values"] == values[1:]
    assert [p.data["run_id"] for p in resumed if p.data.get("status") == "run_done"] == runs


async def test_a_thread_stream_of_an_unknown_thread_or_mode_is_refused(
        client: LangGraphClient, http: Any):
    with pytest.raises(APIStatusError) as missing:
        stream = await client.threads.join_stream("00000000-0000-0000-0000-000000000000")
        await anext(aiter(stream))
    assert missing.value.response.status_code == 404
    thread = (await client.threads.create())["thread_id"]
    answer = await http.get(f"/threads/{thread}/stream", params={"stream_mode": "nope"})
    assert answer.status_code == 422 and "stream_mode" in answer.json()["detail"]
