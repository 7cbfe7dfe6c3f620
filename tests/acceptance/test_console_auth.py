"""The console with API keys, in a real browser, on both stores: a person signs in with a
key, which the browser keeps in an HttpOnly, SameSite=Strict cookie (never in a URL); the
console then shows and stops only that owner's runs; the cookie counts only on requests
from the server's own pages; signing out ends it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient
from playwright.async_api import Browser, Page, expect

from acceptance.http.browser import SHOWN, browser, shot
from acceptance.test_auth import ALICE_KEY, clients, http_as, server

from support import eventually

__all__ = ["browser", "clients", "server"]  # fixtures


@pytest.fixture
async def page(browser: Browser, server: str) -> AsyncIterator[Page]:
    context = await browser.new_context(base_url=server)
    opened = await context.new_page()
    yield opened
    await context.close()


async def _parked(client: LangGraphClient, tmp_path: Path, who: str) -> dict:
    thread = (await client.threads.create())["thread_id"]
    marker = tmp_path / f"{who}.log"
    run = await client.runs.create(thread, "parks", input={"marker": str(marker)})
    await eventually(lambda: marker.exists() and "parked" in marker.read_text(), timeout=15)
    return run


async def sign_in(page: Page, key: str) -> None:
    await page.goto("/ui")
    await expect(page).to_have_url(f"{page.url.split('/ui')[0]}/ui/login")
    await page.fill("input[name=key]", key)
    await page.click("button[type=submit]")


async def test_a_person_signs_in_and_sees_and_stops_only_their_runs(
        page: Page, server: str, clients: dict[str, LangGraphClient], tmp_path: Path):
    alices = await _parked(clients["alice"], tmp_path, "alice")
    bobs = await _parked(clients["bob"], tmp_path, "bob")

    await sign_in(page, "not-a-key")
    await expect(page.locator("#said")).to_have_text("invalid API key")
    await sign_in(page, ALICE_KEY)
    await expect(page.locator(".who")).to_contain_text("alice", timeout=SHOWN)
    assert "key" not in page.url and ALICE_KEY not in page.url
    [cookie] = await page.context.cookies()
    assert (cookie["name"], cookie["httpOnly"], cookie["sameSite"]) == (
        "runplane_key", True, "Strict")
    await expect(page.locator(f'tr[data-run="{alices["run_id"]}"]')).to_be_visible()
    await expect(page.locator(f'tr[data-run="{bobs["run_id"]}"]')).to_have_count(0)
    await shot(page, tmp_path, "signed-in")

    answer = await page.goto(f"/ui/runs/{bobs['run_id']}")
    assert answer is not None and answer.status == 404  # bob's run is not found
    await page.goto(f"/ui/runs/{alices['run_id']}")
    await page.click("button[data-act=stop]")
    await expect(page.locator("#status")).to_have_text("interrupted", timeout=SHOWN)
    stopped = await clients["alice"].runs.get(alices["thread_id"], alices["run_id"])
    assert stopped["status"] == "interrupted"

    # the cookie does nothing for a page of another origin, even the same host's
    async with httpx.AsyncClient(base_url=server) as other:
        forged = await other.post(
            f"/ui/runs/{bobs['run_id']}/stop", json={},
            headers={"Origin": "http://127.0.0.1:1", "Cookie": f"runplane_key={ALICE_KEY}"})
        assert forged.status_code in (401, 403), forged.text
    unharmed = await clients["bob"].runs.get(bobs["thread_id"], bobs["run_id"])
    assert unharmed["status"] == "running"

    await page.click("#logout")
    await expect(page).to_have_url(f"{server}/ui/login", timeout=SHOWN)
    assert await page.context.cookies() == []
    await page.goto("/ui")
    await expect(page).to_have_url(f"{server}/ui/login")


async def test_without_a_session_the_console_answers_nothing(server: str):
    async with http_as(server, None) as anyone:
        page = await anyone.get("/ui", follow_redirects=False)
        assert (page.status_code, page.headers["location"]) == (303, "/ui/login")
        assert (await anyone.get("/ui/login")).status_code == 200
        assert (await anyone.get("/ui/static/console.js")).status_code == 200
        assert (await anyone.get("/ui/runs/feed")).status_code == 401
        assert (await anyone.post("/ui/runs/x/stop", json={})).status_code == 401
        refused = await anyone.post("/ui/login", json={"key": "nope"})
        assert refused.status_code == 401 and "set-cookie" not in refused.headers
