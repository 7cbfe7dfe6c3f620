"""The console on a served LangGraph project, in a real browser, on both stores: a graph
thread's page shows its state, checkpoints and pending interrupt; a person answers it with
an edited value or approves it, and the graph goes on."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from langgraph_sdk.client import LangGraphClient
from playwright.async_api import Page, expect

from acceptance.http.browser import SHOWN, browser, page, shot
from acceptance.http.helpers import Server, serve_graph_project

from support.databases import STORES

__all__ = ["browser", "page"]  # fixtures


@pytest.fixture(scope="module", params=STORES)
def server(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve_graph_project(request, tmp_path_factory, "console")


async def _waiting(client: LangGraphClient) -> str:
    thread = (await client.threads.create())["thread_id"]
    await client.runs.wait(thread, "approval", input={"to": "Ada"})
    return thread


async def test_a_graph_interrupt_is_answered_with_an_edited_value(
        page: Page, client: LangGraphClient, tmp_path: Path):
    thread = await _waiting(client)
    [first] = await client.runs.list(thread)
    await page.goto(f"/ui/runs/{first['run_id']}")  # its super-steps, from its checkpoints
    steps = page.locator("#steps .step")
    await expect(steps).to_have_count(2)
    await expect(steps.nth(0)).to_have_attribute("data-step", "draft")
    await expect(steps.nth(0)).to_have_attribute("data-state", "completed")
    await expect(steps.nth(1)).to_have_attribute("data-step", "review")
    await expect(steps.nth(1)).to_have_attribute("data-state", "waiting")
    await page.goto(f"/ui/threads/{thread}")
    await expect(page.locator("#thread-status")).to_have_text("interrupted")
    await expect(page.locator(".asked-value")).to_contain_text("send this email?")
    # the input, then after draft (waiting at review): newest first
    await expect(page.locator("#history li")).to_have_count(3)
    await expect(page.locator("text=Next:")).to_contain_text("review")
    await shot(page, tmp_path, "graph-thread-waiting")
    await page.fill("[name=answer]", '{"edited": "Dear Ada, shorter."}')
    await page.click("button[data-answer=edited]")
    await expect(page.locator("#status")).to_have_text("success", timeout=SHOWN)
    await expect(page.locator("#output")).to_contain_text("shorter", timeout=SHOWN)
    state = await client.threads.get_state(thread)
    assert state["values"]["decision"] == {"edited": "Dear Ada, shorter."}
    assert state["values"]["runs"] == ["draft", "review"]  # not approved: not sent


async def test_a_graph_interrupt_is_approved(page: Page, client: LangGraphClient,
                                             tmp_path: Path):
    thread = await _waiting(client)
    await page.goto(f"/ui/threads/{thread}")
    await page.click("button[data-answer=approve]")
    await expect(page.locator("#status")).to_have_text("success", timeout=SHOWN)
    await expect(page.locator('#steps .step[data-step="send"]')).to_be_visible(
        timeout=SHOWN)
    assert (await client.threads.get_state(thread))["values"]["sent"] is True


async def test_the_assistants_page_draws_each_graph(page: Page, tmp_path: Path):
    await page.goto("/ui/assistants")
    approval = page.locator("#assistant-approval")
    await expect(approval.locator("svg .node")).to_have_count(5)
    for node in ("__start__", "draft", "review", "send", "__end__"):
        await expect(approval.locator(f'svg .node[data-node="{node}"]')).to_have_text(node)
    # start->draft, draft->review, review->send (conditional), review->end, send->end
    await expect(approval.locator("svg .edge")).to_have_count(5)
    await expect(approval.locator("svg .edge.conditional")).to_have_count(2)
    agent = page.locator("#assistant-agent")
    await expect(agent.locator("svg .node")).to_have_count(4)
    # chat -> __end__ skips the tools row: it curves round it, not through it
    skipping = agent.locator('svg .edge[data-edge="chat>__end__"]')
    await expect(skipping).to_have_attribute("d", re.compile(r"^M[\d.,-]+ C"))
    await expect(agent.locator('svg .edge[data-edge="chat>tools"]')).to_have_attribute(
        "d", re.compile(r"^M[\d.,-]+ L"))
    await shot(page, tmp_path, "assistants")


async def test_a_graph_stopped_at_a_breakpoint_continues_from_its_thread(
        page: Page, client: LangGraphClient):
    thread = (await client.threads.create())["thread_id"]
    await client.runs.wait(thread, "steps", input={"trail": []}, interrupt_before=["b"])
    await page.goto(f"/ui/threads/{thread}")
    await expect(page.locator(".interrupt h2")).to_have_text("Stopped before b")
    await page.click("button[data-answer=continue]")
    await expect(page.locator("#status")).to_have_text("success", timeout=SHOWN)
    assert (await client.threads.get_state(thread))["values"]["trail"] == ["a", "b", "c"]


async def test_graph_runs_are_listed_by_their_graphs_name_and_a_pause_shows(
        page: Page, client: LangGraphClient):
    thread = await _waiting(client)
    [run] = await client.runs.list(thread)
    await page.goto("/ui?assistant=approval")
    row = page.locator(f'tr[data-run="{run["run_id"]}"]')
    await expect(row).to_contain_text("approval")
    await expect(row.locator("a.badge.waiting")).to_have_attribute(
        "href", f"/ui/threads/{thread}")
    await expect(page.locator("select[name=assistant]")).to_have_value("approval")
