"""The console at ``/ui`` in a real browser (Playwright driving the operating system's
Chromium) against ``runplane serve``, on both stores: a run started through the SDK appears
in the list live; its page shows its steps advance; Stop interrupts it, the step in flight
marked cancelled and no step completed after it; a second Stop says "already stopped";
a whole tree stops from a child's page; a stopped run resumes; a failed run shows its
traceback. Each page's screenshot is saved under the test's temporary directory."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from langgraph_sdk.client import LangGraphClient
from playwright.async_api import Page, expect

from acceptance.http.browser import SHOWN, browser, page, shot
from acceptance.http.helpers import Server, new_thread, wait_mark

__all__ = ["browser", "page"]  # fixtures

def open_step(folder: Path, i: int) -> None:
    (folder / f"open-{i}").touch()


async def test_a_run_appears_live_shows_its_steps_and_stops_for_good(
        page: Page, client: LangGraphClient, server: Server, tmp_path: Path):
    assert f"console: {server.url}/ui" in server.process.output()  # `make run` prints it
    await page.goto("/ui")
    gates = tmp_path / "gates"
    gates.mkdir()
    thread = await new_thread(client)
    run = await client.runs.create(thread, "stepper", input={"dir": str(gates), "n": 4})
    row = page.locator(f'tr[data-run="{run["run_id"]}"]')
    await expect(row).to_be_visible(timeout=SHOWN)  # appeared without a reload
    await expect(row.locator(".badge")).to_have_text("running", timeout=SHOWN)
    await shot(page, tmp_path, "runs")

    await row.locator("a").first.click()
    steps = page.locator("#steps .step")
    await expect(steps).to_have_count(1, timeout=SHOWN)
    open_step(gates, 0)
    open_step(gates, 1)
    await expect(page.locator('#steps .step[data-state="completed"]')).to_have_count(
        2, timeout=SHOWN)  # the steps advance on the open page
    await expect(page.locator('#steps .step[data-step="step_2"]')).to_have_attribute(
        "data-state", "running", timeout=SHOWN)

    await page.fill(".actions [name=reason]", "enough")
    await page.click("button[data-act=stop]")
    await expect(page.locator("#said")).to_have_text("stopped: interrupted", timeout=SHOWN)
    await expect(page.locator("#status")).to_have_text("interrupted", timeout=SHOWN)
    await expect(page.locator('#steps .step[data-step="step_2"]')).to_have_attribute(
        "data-state", "cancelled", timeout=SHOWN)
    await expect(page.locator("#cancelled")).to_contain_text("enough")
    await expect(page.locator("#cancelled")).to_contain_text("console")
    open_step(gates, 2)  # too late: the step was cancelled, and stays so
    await shot(page, tmp_path, "run-stopped")
    await page.click("button[data-act=stop]")
    await expect(page.locator("#said")).to_have_text("already stopped (enough)",
                                                     timeout=SHOWN)
    # nothing completed after the stop: the log holds the two steps before it, and the
    # in-flight step's cancel
    await expect(page.locator("#log li", has_text="step:complete")).to_have_count(2)
    await expect(page.locator("#log li", has_text="step:cancel")).to_have_count(1)
    await expect(page.locator('#steps .step[data-state="completed"]')).to_have_count(2)


async def test_a_stopped_run_resumes_from_its_page(page: Page, client: LangGraphClient,
                                                  tmp_path: Path):
    gates = tmp_path / "gates"
    gates.mkdir()
    thread = await new_thread(client)
    run = await client.runs.create(thread, "stepper", input={"dir": str(gates), "n": 2})
    await page.goto(f"/ui/runs/{run['run_id']}")
    await expect(page.locator('#steps .step[data-step="step_0"]')).to_be_visible(
        timeout=SHOWN)
    await page.click("button[data-act=stop]")
    await expect(page.locator("#status")).to_have_text("interrupted", timeout=SHOWN)
    open_step(gates, 0)
    open_step(gates, 1)
    await page.click("button[data-act=resume]")
    await expect(page.locator("#status")).to_have_text("success", timeout=SHOWN)
    await shot(page, tmp_path, "run-resumed")


async def test_a_whole_tree_stops_from_a_childs_page(page: Page, client: LangGraphClient,
                                                     tmp_path: Path):
    markers = [str(tmp_path / f"child-{uuid.uuid4().hex[:6]}") for _ in range(2)]
    parent = await client.runs.create(None, "family", input={"markers": markers})
    for marker in markers:
        await wait_mark(Path(marker), "parked")
    tree = await client.http.get(f"/runs/{parent['run_id']}/tree")
    child = tree["children"][0]["run_id"]
    await page.goto(f"/ui/runs/{child}")
    await expect(page.locator("#tree li")).to_have_count(3, timeout=SHOWN)
    await page.click("button[data-act=stop-tree]")
    await expect(page.locator("#said")).to_contain_text("stopped the tree: 3 stopped",
                                                        timeout=SHOWN)
    await expect(page.locator("#tree .badge")).to_have_text(["interrupted"] * 3,
                                                            timeout=SHOWN)
    await shot(page, tmp_path, "tree-stopped")


async def test_a_failed_run_shows_its_traceback(page: Page, client: LangGraphClient,
                                                tmp_path: Path):
    thread = await new_thread(client)
    run = await client.runs.create(thread, "fails", input={})
    await page.goto(f"/ui/runs/{run['run_id']}")
    await expect(page.locator("#status")).to_have_text("error", timeout=SHOWN)
    await expect(page.locator("#error")).to_contain_text("ValueError: boom")
    await expect(page.locator("#traceback")).to_contain_text('raise ValueError("boom")')
    await expect(page.locator('#steps .step[data-step="before"]')).to_have_attribute(
        "data-state", "completed")
    await shot(page, tmp_path, "run-failed")


async def test_the_list_filters_and_counts(page: Page, client: LangGraphClient,
                                           tmp_path: Path):
    thread = await new_thread(client)
    done = await client.runs.wait(thread, "echo", input={"x": 1})
    assert done == {"echo": {"x": 1}}
    [run] = await client.runs.list(thread)
    await page.goto(f"/ui?thread={thread}")
    await expect(page.locator("tbody#rows tr")).to_have_count(1, timeout=SHOWN)
    await expect(page.locator('.count[data-status="success"] b')).to_have_text("1")
    await page.goto(f"/ui?q={run['run_id'][:8]}&status=success")
    await expect(page.locator(f'tr[data-run="{run["run_id"]}"]')).to_be_visible()
    await page.goto("/ui?q=no-such-run")
    await expect(page.locator("tbody#rows")).to_contain_text("No runs match.")
    await page.set_viewport_size({"width": 390, "height": 844})  # a phone's width
    await page.goto(f"/ui?thread={thread}")
    await shot(page, tmp_path, "runs-phone")


async def test_a_paused_workflow_is_answered_with_an_edited_value(
        page: Page, client: LangGraphClient, tmp_path: Path):
    thread = await new_thread(client)
    await client.runs.wait(thread, "asks", input={"to": "Ada"})
    await page.goto(f"/ui/threads/{thread}")
    await expect(page.locator("#thread-status")).to_have_text("interrupted")
    await expect(page.locator(".asked-value")).to_contain_text('"send to": "Ada"')
    await shot(page, tmp_path, "thread-waiting")
    await page.fill("[name=answer]", "{not json")
    await page.click("button[data-answer=edited]")
    await expect(page.locator("#said")).to_contain_text("the answer is not JSON")
    await page.fill("[name=answer]", '"send it, edited"')
    await page.click("button[data-answer=edited]")
    await expect(page.locator("#status")).to_have_text("success", timeout=SHOWN)
    await expect(page.locator("#output")).to_contain_text("send it, edited", timeout=SHOWN)
    assert (await client.threads.get(thread))["status"] == "idle"


async def test_the_operations_view_shows_the_queue_workers_and_charts(
        page: Page, client: LangGraphClient, tmp_path: Path):
    gates = tmp_path / "gates"
    gates.mkdir()
    thread = await new_thread(client)
    run = await client.runs.create(thread, "stepper", input={"dir": str(gates), "n": 1})
    waiting = await client.runs.create(None, "echo", input={}, after_seconds=3600)
    await page.goto("/ui/ops")
    held = page.locator(f'#workers li[data-run="{run["run_id"]}"]')
    await expect(held).to_contain_text("lease expires", timeout=SHOWN)
    await expect(page.locator('[data-figure="pending"]')).not_to_have_text("0")
    # a chart is drawn once two samples came (its figure is a number, not a dash)
    await expect(page.locator('[data-figure="throughput"]')).to_have_text(
        re.compile(r"^\d+\.\d$"), timeout=SHOWN)
    points = await page.locator('[data-chart="pending"] polyline').get_attribute("points")
    assert points and len(points.split()) >= 2
    await shot(page, tmp_path, "operations")
    open_step(gates, 0)
    await expect(held).to_have_count(0, timeout=SHOWN)  # it ended: no longer held
    await client.http.post(f"/runs/{waiting['run_id']}/cancel", json={})


async def test_the_api_docs_render_with_nothing_from_elsewhere(page: Page, server: Server):
    asked_elsewhere: list[str] = []

    async def offline(route) -> None:
        asked_elsewhere.append(route.request.url)
        await route.abort()

    await page.route(lambda url: not url.startswith(server.url), offline)
    await page.goto("/docs")
    await expect(page.locator(".opblock-summary-path",
                              has_text="/threads/{thread_id}/runs/{run_id}/cancel").first
                 ).to_be_visible(timeout=SHOWN)
    await expect(page.locator(".errors-wrapper")).to_have_count(0)
    assert asked_elsewhere == []


async def test_a_person_gets_pages_not_json(page: Page, client: LangGraphClient):
    answer = await page.goto("/ui/runs/no-such-run")
    assert answer is not None and answer.status == 404
    await expect(page.locator("h1")).to_have_text("Not found")
    await expect(page.locator("a", has_text="Back to the runs")).to_be_visible()
    answer = await page.goto("/ui/threads/no-such-thread")
    assert answer is not None and answer.status == 404
    await page.goto("/")
    await expect(page).to_have_url(re.compile(r"/ui$"))
    answer = await page.goto("/ui?page=abc")
    assert answer is not None and answer.status == 200
    await expect(page.locator(".pages span")).to_have_text("page 1")


async def test_a_finished_run_offers_only_what_it_can_do(page: Page, client: LangGraphClient):
    thread = await new_thread(client)
    await client.runs.wait(thread, "echo", input={"x": 1})
    [run] = await client.runs.list(thread)
    await page.goto(f"/ui/runs/{run['run_id']}")
    await expect(page.locator("button[data-act=delete]")).to_be_visible()
    for hidden in ("stop", "stop-tree", "resume"):
        await expect(page.locator(f"button[data-act={hidden}]")).to_be_hidden()
