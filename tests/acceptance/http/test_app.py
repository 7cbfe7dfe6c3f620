"""The app's own routes and its answer to a bad request on any route: ``/ok``, the
OpenAPI document and its docs; malformed JSON, wrong types, unknown assistants, unknown
strategies and oversized bodies, each refused with a ``detail`` and nothing written."""

from __future__ import annotations

import json
import re
import uuid

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import NotFoundError

from acceptance.http.helpers import (
    MAX_BODY_BYTES,
    assert_detail,
    collect,
    new_thread,
)


async def test_ok_openapi_and_docs_are_served(http: httpx.AsyncClient) -> None:
    ok = await http.get("/ok")
    assert ok.status_code == 200 and ok.json() == {"ok": True}
    spec = await http.get("/openapi.json")
    assert spec.status_code == 200
    assert "/threads/{thread_id}/runs/{run_id}/cancel" in spec.json()["paths"]
    assert (await http.get("/docs")).status_code == 200


async def test_the_docs_page_loads_nothing_from_elsewhere(http: httpx.AsyncClient) -> None:
    """Swagger UI's scripts, styles and icon come from runplane itself: /docs reads
    offline and behind a firewall."""
    page = (await http.get("/docs")).text
    links = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page)
    assert {link.rsplit("/", 1)[-1] for link in links} >= {
        "swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"}
    for link in links:
        assert link.startswith("/docs/assets/"), link
        asset = await http.get(link)
        assert asset.status_code == 200 and len(asset.content) > 500, link
    assert "cdn" not in page and "https://" not in page.replace("https://fastapi", "")


async def test_malformed_json_is_a_client_error_with_a_detail(
        client: LangGraphClient, http: httpx.AsyncClient) -> None:
    headers = {"content-type": "application/json"}
    answer = await http.post("/threads", content=b'{"metadata": {', headers=headers)
    assert_detail(answer, (400, 422))
    thread_id = await new_thread(client)
    answer = await http.post(f"/threads/{thread_id}/runs",
                             content=b'{"assistant_id": "echo", ', headers=headers)
    assert_detail(answer, (400, 422))
    assert await client.runs.list(thread_id) == []


async def test_wrong_types_are_422_with_a_detail(client: LangGraphClient,
                                                 http: httpx.AsyncClient) -> None:
    thread_id = str(uuid.uuid4())
    body = assert_detail(await http.post(
        "/threads", json={"thread_id": thread_id, "metadata": "not an object"}), 422,
        string=False)
    assert "metadata" in json.dumps(body["detail"])
    with pytest.raises(NotFoundError):
        await client.threads.get(thread_id)

    thread_id = await new_thread(client)
    body = assert_detail(await http.post(
        f"/threads/{thread_id}/runs", json={"assistant_id": ["echo"]}), 422, string=False)
    assert "assistant_id" in json.dumps(body["detail"])
    assert_detail(await http.post(f"/threads/{thread_id}/runs",
                                  json={"assistant_id": "echo", "metadata": [1, 2]}),
                  422, string=False)
    assert await client.runs.list(thread_id) == []


async def test_unknown_assistant_on_run_create_is_404_and_writes_nothing(
        client: LangGraphClient, http: httpx.AsyncClient) -> None:
    missing_thread = str(uuid.uuid4())
    answer = await http.post(f"/threads/{missing_thread}/runs",
                             json={"assistant_id": "nope", "if_not_exists": "create"})
    assert_detail(answer, 404)
    with pytest.raises(NotFoundError):  # the thread was not created either
        await client.threads.get(missing_thread)

    thread_id = await new_thread(client)
    assert_detail(await http.post(f"/threads/{thread_id}/runs",
                                  json={"assistant_id": "nope"}), 404)
    assert_detail(await http.post("/runs", json={"assistant_id": "nope"}), 404)
    with pytest.raises(NotFoundError):
        await client.runs.create(thread_id, "nope", input={})
    with pytest.raises(NotFoundError):
        await collect(client.runs.stream(thread_id, "nope", input={}))
    with pytest.raises(httpx.HTTPStatusError) as waited:
        await client.runs.wait(thread_id, "nope", input={})
    assert waited.value.response.status_code == 404
    assert await client.runs.list(thread_id) == []
    assert (await client.threads.get(thread_id))["status"] == "idle"


async def test_invalid_multitask_strategy_is_422_and_writes_nothing(
        client: LangGraphClient, http: httpx.AsyncClient) -> None:
    thread_id = await new_thread(client)
    answer = await http.post(f"/threads/{thread_id}/runs",
                             json={"assistant_id": "echo", "multitask_strategy": "shove"})
    body = assert_detail(answer, 422, string=False)
    assert "multitask_strategy" in json.dumps(body["detail"]) or "shove" in json.dumps(
        body["detail"])
    assert await client.runs.list(thread_id) == []


async def test_oversized_body_is_413_and_writes_nothing(client: LangGraphClient,
                                                        http: httpx.AsyncClient) -> None:
    big = "x" * (MAX_BODY_BYTES + 1)
    thread_id = str(uuid.uuid4())
    assert_detail(await http.post("/threads", json={"thread_id": thread_id,
                                                    "metadata": {"big": big}}), 413)
    with pytest.raises(NotFoundError):
        await client.threads.get(thread_id)
    thread_id = await new_thread(client)
    assert_detail(await http.post(f"/threads/{thread_id}/runs",
                                  json={"assistant_id": "echo", "input": {"big": big}}), 413)
    assert await client.runs.list(thread_id) == []
    # just under the limit is fine
    small = "x" * (MAX_BODY_BYTES // 2)
    assert await client.runs.wait(thread_id, "echo", input={"s": small}) == {
        "echo": {"s": small}}
