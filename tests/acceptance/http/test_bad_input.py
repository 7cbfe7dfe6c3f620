"""Bad input over HTTP, end to end: a real ``runplane serve`` per store (one of this
module's own) receives raw JSON a fuzzer would send (``NaN``/``Infinity``
literals, ``\\u0000`` and lone ``\\ud800`` escapes, 300 levels of nesting, integers past 2^63)
and answers 422 with a JSON ``detail`` naming the field, writes nothing, and its worker still
runs the next run. What is accepted at the bounds reads back everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from acceptance.http.helpers import Server, runplane_cli, serve_http_app
from runplane import limits

from support.databases import STORES


@pytest.fixture(scope="module", params=STORES)
def server(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of this module's own: its tests read the whole of what it printed."""
    yield from serve_http_app(request, tmp_path_factory)

DEEP = "[" * 300 + "]" * 300
HUGE = str(2**63)


def _raw(text: str) -> dict[str, Any]:
    return {"content": text.encode(), "headers": {"content-type": "application/json"}}


#: (what, method, path, raw JSON body or None, the field the answer must name).
#: ``{t}`` is an existing thread, ``{r}`` an existing finished run of it.
BAD_REQUESTS: list[tuple[str, str, str, str | None, str]] = [
    ("workflow command {}", "POST", "/threads/{t}/runs",
     '{"assistant_id": "echo", "command": {}}', "command"),
    ("workflow interrupt_before []", "POST", "/runs",
     '{"assistant_id": "echo", "interrupt_before": []}', "interrupt_before"),
    ("workflow checkpoint_id", "POST", "/threads/{t}/runs",
     '{"assistant_id": "echo", "checkpoint_id": "c1"}', "checkpoint"),
    ("timeout 1e12", "POST", "/runs", '{"assistant_id": "echo", "timeout": 1e12}', "timeout"),
    ("timeout Infinity", "POST", "/runs", '{"assistant_id": "echo", "timeout": Infinity}',
     "timeout"),
    ("timeout NaN", "POST", "/threads/{t}/runs", '{"assistant_id": "echo", "timeout": NaN}',
     "timeout"),
    ("input NaN", "POST", "/runs", '{"assistant_id": "echo", "input": NaN}', "input"),
    ("input -Infinity", "POST", "/threads/{t}/runs",
     '{"assistant_id": "echo", "input": {"x": -Infinity}}', "input"),
    ("input 300 deep", "POST", "/runs", f'{{"assistant_id": "echo", "input": {DEEP}}}',
     "input"),
    ("input NUL", "POST", "/threads/{t}/runs",
     r'{"assistant_id": "echo", "input": {"a": "x\u0000y"}}', "input"),
    ("input lone surrogate", "POST", "/runs", r'{"assistant_id": "echo", "input": ["\ud800"]}',
     "input"),
    ("input NUL key", "POST", "/runs/wait", r'{"assistant_id": "echo", "input": {"\u0000": 1}}',
     "input"),
    ("stream input NaN", "POST", "/runs/stream", '{"assistant_id": "echo", "input": NaN}',
     "input"),
    ("run metadata 300 deep", "POST", "/threads/{t}/runs",
     f'{{"assistant_id": "echo", "metadata": {{"a": {DEEP}}}}}', "metadata"),
    ("max_attempts 2^31", "POST", "/runs", '{"assistant_id": "echo", "max_attempts": 2147483648}',
     "max_attempts"),
    ("max_attempts 2^63", "POST", "/runs", f'{{"assistant_id": "echo", "max_attempts": {HUGE}}}',
     "max_attempts"),
    ("thread metadata 300 deep", "POST", "/threads", f'{{"metadata": {{"a": {DEEP}}}}}',
     "metadata"),
    ("thread metadata surrogate", "POST", "/threads", r'{"metadata": {"a": "\ud800"}}',
     "metadata"),
    ("thread metadata NaN", "POST", "/threads", '{"metadata": {"a": NaN}}', "metadata"),
    ("thread id NUL", "POST", "/threads", r'{"thread_id": "a\u0000b"}', "thread_id"),
    ("thread id 20000 chars", "POST", "/threads", json.dumps({"thread_id": "x" * 20_000}),
     "thread_id"),
    ("update metadata 300 deep", "PATCH", "/threads/{t}", f'{{"metadata": {{"a": {DEEP}}}}}',
     "metadata"),
    ("update metadata NUL", "PATCH", "/threads/{t}", r'{"metadata": {"a": "\u0000"}}',
     "metadata"),
    ("search metadata NUL", "POST", "/threads/search", r'{"metadata": {"a": "\u0000"}}',
     "metadata"),
    ("search limit 2^63", "POST", "/threads/search", f'{{"limit": {HUGE}}}', "limit"),
    ("search offset 2^63", "POST", "/threads/search", f'{{"offset": {HUGE}}}', "offset"),
    ("search ids NUL", "POST", "/threads/search", r'{"ids": ["\u0000"]}', "ids"),
    ("count metadata 300 deep", "POST", "/threads/count", f'{{"metadata": {{"a": {DEEP}}}}}',
     "metadata"),
    ("runs limit 2^63", "GET", f"/runs?limit={HUGE}", None, "limit"),
    ("runs offset 2^63", "GET", f"/runs?offset={HUGE}", None, "offset"),
    ("thread runs limit 2^63", "GET", f"/threads/{{t}}/runs?limit={HUGE}", None, "limit"),
    ("thread runs offset 2^63", "GET", f"/threads/{{t}}/runs?offset={HUGE}", None, "offset"),
    ("run id NUL", "GET", "/runs/a%00b", None, "run_id"),
    ("run id 1000 chars", "GET", "/runs/" + "x" * 1000, None, "run_id"),
    ("thread id NUL in path", "GET", "/threads/a%00b", None, "thread_id"),
    ("thread run id NUL", "GET", "/threads/{t}/runs/a%00b", None, "run_id"),
    ("cancel run id NUL", "POST", "/runs/a%00b/cancel", None, "run_id"),
    ("cancel reason NUL", "POST", "/threads/{t}/runs/{r}/cancel?reason=a%00b", None, "reason"),
    ("bulk cancel ids NUL", "POST", "/runs/cancel", r'{"run_ids": ["\u0000"]}', "run_ids"),
    ("bulk cancel thread surrogate", "POST", "/runs/cancel", r'{"thread_id": "\ud800"}',
     "thread_id"),
    ("delete run id NUL", "DELETE", "/threads/{t}/runs/a%00b", None, "run_id"),
]


async def _written(http: httpx.AsyncClient, thread_id: str) -> tuple[Any, ...]:
    """Everything a bad request could have written: the runs, the thread count, the thread."""
    runs = await http.get("/runs", params={"limit": limits.MAX_LIMIT})
    assert runs.status_code == 200, runs.text
    count = await http.post("/threads/count", json={})
    assert count.status_code == 200, count.text
    thread = await http.get(f"/threads/{thread_id}")
    assert thread.status_code == 200, thread.text
    return runs.json(), count.json(), thread.json()


async def _probe(http: httpx.AsyncClient, tag: str) -> None:
    """The worker still runs runs: one created now completes."""
    answer = await http.post("/runs/wait", json={"assistant_id": "echo", "input": {"probe": tag}})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"echo": {"probe": tag}}


@pytest.mark.parametrize(("what", "method", "path", "body", "field"), BAD_REQUESTS,
                         ids=[case[0] for case in BAD_REQUESTS])
async def test_bad_input_answers_422_naming_the_field_and_writes_nothing(
    http: httpx.AsyncClient, what: str, method: str, path: str, body: str | None, field: str
) -> None:
    thread_id = (await http.post("/threads", json={"metadata": {"kept": what}})).json()["thread_id"]
    done = await http.post(f"/threads/{thread_id}/runs/wait", json={"assistant_id": "echo"})
    assert done.status_code == 200, done.text
    run_id = done.headers["content-location"].rsplit("/", 1)[-1]
    before = await _written(http, thread_id)

    answer = await http.request(method, path.format(t=thread_id, r=run_id),
                                **(_raw(body) if body is not None else {}))

    assert answer.status_code == 422, (answer.status_code, answer.text)
    detail = answer.json()["detail"]
    assert isinstance(detail, str) and field in detail, detail
    assert await _written(http, thread_id) == before
    await _probe(http, what)


async def test_input_at_the_bounds_is_accepted_and_reads_back_everywhere(
    http: httpx.AsyncClient, server: Server
) -> None:
    """The deepest input and metadata accepted come back from every read that carries them:
    the run, the listings (``runplane runs list`` too), the thread and its search, the run's
    result (its output wraps the input once more) and its stream."""
    deepest = "[" * (limits.MAX_JSON_DEPTH - 1) + "]" * (limits.MAX_JSON_DEPTH - 1)
    thread = await http.post("/threads", **_raw(f'{{"metadata": {{"deep": {deepest}}}}}'))
    assert thread.status_code == 200, thread.text
    thread_id = thread.json()["thread_id"]
    created = await http.post(f"/threads/{thread_id}/runs", **_raw(
        f'{{"assistant_id": "echo", "input": {{"deep": {deepest}}}, '
        f'"metadata": {{"deep": {deepest}}}, "timeout": {limits.MAX_TIMEOUT_SECONDS}, '
        f'"max_attempts": {limits.MAX_ATTEMPTS}}}'))
    assert created.status_code == 200, created.text
    run_id = created.json()["run_id"]
    joined = await http.get(f"/threads/{thread_id}/runs/{run_id}/join")
    assert joined.status_code == 200, joined.text
    assert joined.json() == {"echo": {"deep": json.loads(deepest)}}
    reads = [
        ("GET", f"/runs/{run_id}", None),
        ("GET", f"/threads/{thread_id}/runs/{run_id}", None),
        ("GET", "/runs", {"limit": limits.MAX_LIMIT}),
        ("GET", f"/threads/{thread_id}/runs", {"limit": limits.MAX_LIMIT}),
        ("GET", f"/threads/{thread_id}", None),
        ("GET", f"/threads/{thread_id}/state", None),
        ("GET", f"/runs/{run_id}/stream", None),
    ]
    for method, path, params in reads:
        answer = await http.request(method, path, params=params)
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
    search = await http.post("/threads/search", json={"limit": limits.MAX_LIMIT})
    assert search.status_code == 200, search.text[:300]
    assert thread_id in [t["thread_id"] for t in search.json()]
    run = (await http.get(f"/runs/{run_id}")).json()
    assert run["status"] == "success"
    assert run["timeout"] == limits.MAX_TIMEOUT_SECONDS
    assert run["kwargs"]["input"] == {"deep": json.loads(deepest)}
    listed = runplane_cli(server, "list")
    assert listed.returncode == 0 and run_id[:8] in listed.stdout, listed.stdout + listed.stderr
    assert "Traceback" not in server.output()


async def test_a_rejected_timeout_does_not_stop_the_worker(
    http: httpx.AsyncClient, server: Server
) -> None:
    """The fuzzed request that used to jam the worker: refused, and the next run runs, with no
    claim failure in the server's log."""
    start = server.output_size()
    answer = await http.post("/runs", json={"assistant_id": "echo", "timeout": 1e12})
    assert answer.status_code == 422, answer.text
    assert "timeout" in answer.json()["detail"]
    await _probe(http, "after-timeout")
    assert "claiming runs failed" not in server.output(start)
