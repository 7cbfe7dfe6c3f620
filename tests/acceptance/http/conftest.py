"""The server of the HTTP suite, started once per store for the package, and the clients
every test talks to it through: ``langgraph_sdk.get_client`` (``client``) and, for what the
SDK cannot express (raw status codes, headers, malformed bodies), httpx (``http``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from acceptance.http.helpers import Server, serve_graph_project, serve_http_app

from support.databases import STORES


@pytest.fixture(scope="package", params=STORES)
def server(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve_http_app(request, tmp_path_factory)


@pytest.fixture(scope="package", params=STORES)
def graph_server(request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The graph project served once per store for the modules that share it (each keeps
    to what it made: its own tags, namespaces and ids)."""
    yield from serve_graph_project(request, tmp_path_factory, "graph_shared")


@pytest.fixture
async def client(server: Server) -> AsyncIterator[LangGraphClient]:
    c = get_client(url=server.url, api_key=None)
    try:
        yield c
    finally:
        await c.aclose()


@pytest.fixture
async def http(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    """A raw HTTP client, for what the SDK cannot express."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as h:
        yield h


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    """The report of a failed test shows what the server printed while the test ran."""
    report = (yield).get_result()
    server = getattr(item, "funcargs", {}).get("server")
    if not isinstance(server, Server):
        return
    if call.when == "setup" and report.passed:
        item.stash[_LOG_START] = server.output_size()
    if report.failed:
        start = item.stash.get(_LOG_START, 0)
        report.sections.append((f"runplane serve output ({server.store})", server.output(start)))


_LOG_START = pytest.StashKey[int]()
