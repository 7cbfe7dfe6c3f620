"""Run trees over HTTP and through the ``runplane runs`` CLI: the tree endpoint, cancels of
a child, of a parent and of a whole tree, and a failed run's traceback."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
from langgraph_sdk.client import LangGraphClient

from acceptance.http.helpers import (
    Server,
    assert_detail,
    cancel_path,
    new_thread,
    runplane_cli,
    wait_mark,
)
from http_app import marks

from support import eventually


async def start_family(client: LangGraphClient, http: httpx.AsyncClient, tmp_path: Path,
                       children: int = 2) -> tuple[str, str, list[dict[str, Any]], list[Path]]:
    """A ``family`` run on a thread of its own whose children are all parked."""
    thread_id = await new_thread(client)
    markers = [tmp_path / f"child-{uuid.uuid4().hex[:6]}.log" for _ in range(children)]
    run = await client.runs.create(thread_id, "family",
                                   input={"markers": [str(m) for m in markers]})
    for marker in markers:
        await wait_mark(marker, "parked")
    tree = (await http.get(f"/runs/{run['run_id']}/tree")).json()
    return thread_id, run["run_id"], tree["children"], markers


async def test_tree_endpoint_nests_children_with_their_statuses(
        client: LangGraphClient, http: httpx.AsyncClient, tmp_path: Path) -> None:
    thread_id, root, children, _ = await start_family(client, http, tmp_path)
    tree = (await http.get(f"/runs/{children[0]['run_id']}/tree")).json()  # from any run
    assert tree["run_id"] == root and tree["status"] == "running"
    assert tree["thread_id"] == thread_id and tree["parent_run_id"] is None
    assert [(c["assistant_id"], c["status"], c["parent_run_id"], c["thread_id"])
            for c in tree["children"]] == [("parks", "running", root, None)] * 2
    assert_detail(await http.get("/runs/nope/tree"), 404)
    await http.post(f"/runs/{root}/cancel", params={"scope": "tree", "wait": 1})


async def test_cancelling_one_child_warns_that_the_tree_stays_active(
        client: LangGraphClient, http: httpx.AsyncClient, tmp_path: Path) -> None:
    _, root, children, markers = await start_family(client, http, tmp_path)
    answer = await http.post(f"/runs/{children[0]['run_id']}/cancel")
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["outcome"] == "cancelled" and body["scope"] == "run"
    assert body["root_run_id"] == root and body["remaining_active_in_tree"] == 2
    assert body["suggested_endpoint"] == f"/runs/{root}/cancel?scope=tree"
    assert "scope=tree" in body["warning"]
    await wait_mark(markers[0], "cleanup-done")
    assert (await http.get(f"/runs/{children[1]['run_id']}")).json()["status"] == "running"
    await http.post(f"/runs/{root}/cancel", params={"scope": "tree", "wait": 1})


async def test_tree_cancel_on_the_thread_endpoint_stops_the_tree_once(
        client: LangGraphClient, http: httpx.AsyncClient, tmp_path: Path) -> None:
    thread_id, root, children, markers = await start_family(client, http, tmp_path, 3)
    answer = await http.post(cancel_path(thread_id, root), params={"scope": "tree", "wait": 1})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["outcome"] == "cancelled" and body["stopped"] is True
    assert body["counts"] == {"cancelled": 4, "already_interrupted": 0, "already_finished": 0}
    assert body["warning"] is None
    for marker in markers:
        assert "cleanup-done" in marks(marker)
    again = await http.post(f"/runs/{children[0]['run_id']}/cancel", params={"scope": "tree"})
    assert again.status_code == 202
    assert again.json()["counts"] == {"cancelled": 0, "already_interrupted": 4,
                                      "already_finished": 0}
    assert_detail(await http.post(f"/runs/{root}/cancel", params={"scope": "forest"}), 422)


async def test_cancelling_a_parent_cancels_its_children(
        client: LangGraphClient, http: httpx.AsyncClient, tmp_path: Path) -> None:
    thread_id, root, _, markers = await start_family(client, http, tmp_path)
    answer = await http.post(cancel_path(thread_id, root))
    assert answer.status_code == 202
    assert answer.json()["counts"]["cancelled"] == 3 and answer.json()["warning"] is None
    for marker in markers:
        await wait_mark(marker, "cleanup-done")
    tree = (await http.get(f"/runs/{root}/tree")).json()
    assert {c["status"] for c in tree["children"]} == {"interrupted"}


async def test_cli_shows_and_cancels_a_tree(
        client: LangGraphClient, http: httpx.AsyncClient, server: Server, tmp_path: Path
) -> None:
    root_thread, root, children, _ = await start_family(client, http, tmp_path)
    shown = await asyncio.to_thread(runplane_cli, server, "tree", root, "--json")
    assert shown.returncode == 0, shown.stderr
    assert [c["run_id"] for c in json.loads(shown.stdout)["children"]] == [
        c["run_id"] for c in children]
    pretty = await asyncio.to_thread(runplane_cli, server, "tree", children[0]["run_id"])
    assert "family" in pretty.stdout and pretty.stdout.count("parks") == 2
    got = await asyncio.to_thread(runplane_cli, server, "get", root, "--json")
    assert json.loads(got.stdout)["status"] == "running"
    narrow = await asyncio.to_thread(runplane_cli, server, "list", "--limit", "100",
                                     env={"COLUMNS": "80"})
    assert narrow.returncode == 0 and root in narrow.stdout  # whole, at 80 columns
    listed = await asyncio.to_thread(runplane_cli, server, "list", "--status", "running",
                                     "--limit", "100", "--json")
    assert {root, *(c["run_id"] for c in children)} <= {
        r["run_id"] for r in json.loads(listed.stdout)}

    one = await asyncio.to_thread(runplane_cli, server, "cancel", children[0]["run_id"],
                                  "--reason", "from the command line")
    assert one.returncode == 0, one.stderr
    assert "cancelled" in one.stdout and "warning" in one.stdout
    stopped = await asyncio.to_thread(runplane_cli, server, "get", children[0]["run_id"],
                                      "--json")
    assert json.loads(stopped.stdout)["cancel_reason"] == "from the command line"
    whole = await asyncio.to_thread(runplane_cli, server, "cancel", root, "--tree", "--wait",
                                    "--json")
    body = json.loads(whole.stdout)
    assert body["scope"] == "tree" and body["counts"]["cancelled"] == 2
    tail = await asyncio.to_thread(runplane_cli, server, "tail", root, "--json")
    kinds = [json.loads(line)["type"] for line in tail.stdout.splitlines()]
    assert kinds[0] == "run:created" and kinds[-1] == "run:cancel"

    missing = await asyncio.to_thread(runplane_cli, server, "get", "nope")
    assert missing.returncode == 1 and "404" in missing.stderr
    # the start of an id names its run when only one id starts so, as in the console
    by_prefix = await asyncio.to_thread(runplane_cli, server, "get", root[:13], "--json")
    assert json.loads(by_prefix.stdout)["run_id"] == root
    first: dict[str, str] = {}  # runs until two ids start alike (17 at most: 16 hex digits)
    while True:
        made = await http.post("/runs", json={"assistant_id": "echo", "input": {}})
        run_id = made.json()["run_id"]
        if run_id[0] in first:
            break
        first[run_id[0]] = run_id
    twins = await asyncio.to_thread(runplane_cli, server, "get", run_id[0])
    assert twins.returncode == 1 and "matches several runs" in twins.stderr
    finished = await asyncio.to_thread(runplane_cli, server, "cancel", root)
    assert finished.returncode == 0 and "already_interrupted" in finished.stdout

    resumed = await asyncio.to_thread(runplane_cli, server, "resume", root)
    assert resumed.returncode == 0 and f"{root}: resumed (pending)" in resumed.stdout
    # its children stay stopped: the family counts them and ends
    assert await client.runs.join(root_thread, root) == {"cancelled": 2}
    again = await asyncio.to_thread(runplane_cli, server, "resume", root)
    assert again.returncode == 1 and "409" in again.stderr  # not interrupted any more


async def test_a_failed_run_shows_its_traceback_and_logs_one_line(
        client: LangGraphClient, http: httpx.AsyncClient, server: Server) -> None:
    start = server.output_size()
    thread_id = await new_thread(client)
    run = await client.runs.create(thread_id, "fails", input={})
    await client.runs.join(thread_id, run["run_id"])
    body = (await http.get(f"/runs/{run['run_id']}")).json()
    assert body["status"] == "error" and body["error"] == "ValueError: boom"
    trace = body["traceback"]
    assert trace.startswith("Traceback (most recent call last):")
    assert 'raise ValueError("boom")' in trace and trace.rstrip().endswith("ValueError: boom")
    assert (await client.runs.get(thread_id, run["run_id"]))["traceback"] == trace

    shown = await asyncio.to_thread(runplane_cli, server, "get", run["run_id"])
    assert shown.returncode == 0, shown.stderr
    assert 'raise ValueError("boom")' in shown.stdout
    assert shown.stdout.rstrip().endswith("ValueError: boom")
    as_json = await asyncio.to_thread(runplane_cli, server, "get", run["run_id"], "--json")
    assert json.loads(as_json.stdout)["traceback"] == trace

    line = f"run {run['run_id']} (fails, attempt 1) ended error: ValueError: boom"
    await eventually(lambda: line in server.output(start), timeout=10)
    logged = [x for x in server.output(start).splitlines() if run["run_id"] in x
              and "WARNING" in x]
    assert len(logged) == 1 and logged[0].endswith(line), logged
    assert "Traceback" not in server.output(start)
