"""Every public method of ``langgraph_sdk``'s assistants, threads, runs, crons and store
clients is called against runplane by some test: a method a new SDK adds fails here until
a test calls it (as a route fails ``test_auth``'s route table until it has a probe)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from langgraph_sdk import get_client

CLIENTS = ("assistants", "threads", "runs", "crons", "store")
TESTS = Path(__file__).resolve().parents[1]


async def test_every_sdk_method_is_called_by_a_test():
    client = get_client(url="http://127.0.0.1:1")
    try:
        offered = {(group, name) for group in CLIENTS
                   for name, member in inspect.getmembers(getattr(client, group))
                   if not name.startswith("_") and callable(member)}
    finally:
        await client.aclose()
    called = {found for path in TESTS.rglob("*.py") for found in re.findall(
        rf"\.({'|'.join(CLIENTS)})\.(\w+)\(", path.read_text(encoding="utf-8"))}
    assert len(offered) > 40
    assert offered - called == set()
