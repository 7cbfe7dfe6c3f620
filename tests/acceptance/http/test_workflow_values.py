"""What a workflow writes, end to end: a real ``runplane serve`` per store (one of this
module's own) runs workflows that produce values no store keeps and no client
could send (NaN, 300 levels of nesting, ``\\u0000``). Each run ends ``error`` at once, and
every read that carries it still answers: the run, the run listings, its thread, the
thread's state and search, the run's stream; the worker runs the next run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from acceptance.http.helpers import STREAM_TIMEOUT, Server, of, serve_http_app
from runplane import limits

from support import eventually
from support.databases import STORES


@pytest.fixture(scope="module", params=STORES)
def server(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of this module's own: its workflows write what no store keeps."""
    yield from serve_http_app(request, tmp_path_factory)

#: what the run's error names, per value
SPOT = {"nan": ".score is NaN", "deep": " is nested deeper than", "nul": ".text contains \\u0000"}
CASES = [("nan", "output"), ("nan", "step"), ("nan", "values"), ("deep", "output"),
         ("nul", "output"), ("nul", "step")]


@pytest.mark.parametrize(("value", "to"), CASES, ids=[f"{v}-{t}" for v, t in CASES])
async def test_a_workflow_writing_what_no_store_keeps_leaves_every_read_working(
    http: httpx.AsyncClient, server: Server, value: str, to: str
) -> None:
    start = server.output_size()
    client = get_client(url=server.url, api_key=None)
    try:
        thread_id = (await client.threads.create())["thread_id"]
        run = await client.runs.create(thread_id, "unstorable", input={"value": value, "to": to})
        run_id = run["run_id"]

        async def ended() -> dict[str, Any] | None:
            got = await client.runs.get(thread_id, run_id)
            return got if got["status"] not in ("pending", "running") else None

        await eventually(ended, timeout=15, interval=0.02)
        reads = [
            ("GET", f"/runs/{run_id}", None),
            ("GET", "/runs", {"limit": limits.MAX_LIMIT}),
            ("GET", f"/threads/{thread_id}/runs", {"limit": limits.MAX_LIMIT}),
            ("GET", f"/threads/{thread_id}", None),
            ("GET", f"/threads/{thread_id}/state", None),
            ("POST", "/threads/search", {"limit": limits.MAX_LIMIT}),
        ]
        for method, path, params in reads:
            answer = await http.request(method, path, **(
                {"json": params} if method == "POST" else {"params": params}))
            assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
        assert (await client.runs.get(thread_id, run_id))["status"] == "error"
        joined = await client.runs.join(thread_id, run_id)
        assert SPOT[value] in joined["__error__"]["message"], joined
        assert run_id in [r["run_id"] for r in (await http.get(
            "/runs", params={"limit": limits.MAX_LIMIT})).json()]
        assert (await client.threads.get(thread_id))["values"] == {"before": True}

        parts = []
        async with asyncio.timeout(STREAM_TIMEOUT):
            async for part in client.runs.join_stream(
                    thread_id, run_id, stream_mode=["values", "custom"]):
                parts.append(part)
        assert of(parts, "values") == [{"before": True}]
        assert parts[-1].event == "end"
        assert parts[-1].data == {"run_id": run_id, "status": "error"}

        probe = await http.post("/runs/wait", json={"assistant_id": "echo", "input": value})
        assert probe.status_code == 200 and probe.json() == {"echo": value}, probe.text
    finally:
        await client.aclose()
    assert "Traceback" not in server.output(start)
