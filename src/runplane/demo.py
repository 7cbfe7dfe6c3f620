"""``runplane demo``: a few seconds in which runs succeed, fail, stop on request and resume.

Everything runs in this process against one SQLite file, so the runs, steps
and events the demo prints stay on disk to be inspected afterwards.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from runplane.app import Runplane
from runplane.context import Context
from runplane.errors import RunCancelled, RunFailed
from runplane.lifecycle import EventName
from runplane.models import Event, Run, RunStatus
from runplane.worker import Workflow

#: A research step, served (``make run``): seven take about 20 s, time for a person to
#: press stop in the console or the CLI.
STEP_SECONDS = 3.0
#: A research step in ``runplane demo``: long enough for a cancel to land in the middle
#: of a step, short enough for a quick demo.
DEMO_STEP_SECONDS = 0.2
RESEARCH_STEPS = (
    "search", "read_sources", "extract_facts", "outline", "draft", "critique", "revise",
)
#: The stopped run must have stored some steps, so that "nothing after the cancel" means something.
STOP_AFTER_STEPS = 2
PAUSE_AFTER_STEPS = 3
#: A demo that waits longer than this for a run is broken; fail instead of hanging.
WAIT_LIMIT = 15.0

STATUS_STYLES = {
    RunStatus.SUCCESS: "bold green",
    RunStatus.INTERRUPTED: "bold yellow",
    RunStatus.ERROR: "bold red",
    RunStatus.TIMEOUT: "bold red",
    RunStatus.PENDING: "dim",
    RunStatus.RUNNING: "cyan",
}


# --------------------------------------------------------------------------- #
# workflows                                                                    #
# --------------------------------------------------------------------------- #


def _split_sentences(text: str) -> list[str]:
    return [s.strip() for s in text.split(".") if s.strip()]


def _rank(sentences: list[str]) -> list[str]:
    return sorted(sentences, key=len, reverse=True)


def _compose(ranked: list[str], limit: int) -> str:
    return ". ".join(ranked[:limit]) + "."


async def summarise(ctx: Context, input: dict[str, Any] | None) -> dict[str, Any]:
    """Quick and synchronous steps: shows that plain functions become durable steps too."""
    input = input or {}
    sentences = await ctx.step("split", _split_sentences, input.get("text", SAMPLE_TEXT))
    ranked = await ctx.step("rank", _rank, sentences)
    summary = await ctx.step("compose", _compose, ranked, input.get("sentences", 2))
    await ctx.emit("values", {"summary": summary})
    return {"summary": summary}


async def _research(step: str, topic: str, done: int, seconds: float) -> str:
    await asyncio.sleep(seconds)
    return f"{step} for {topic!r} (after {done} notes)"


async def research_agent(ctx: Context, input: dict[str, Any] | None) -> dict[str, Any]:
    """Slow on purpose (about 20 s; ``step_seconds`` in the input sets each step's time):
    there is time to stop it, or pause and resume it, mid-flight."""
    topic = (input or {}).get("topic", "durable execution")
    seconds = float((input or {}).get("step_seconds", STEP_SECONDS))
    notes: list[str] = []
    for name in RESEARCH_STEPS:
        notes.append(await ctx.step(name, _research, name, topic, len(notes), seconds))
        await ctx.emit("values", {"topic": topic, "notes": len(notes), "last": name})
    return {"topic": topic, "notes": notes}


def _geocode(city: str) -> dict[str, Any]:
    return {"city": city, "lat": 38.72, "lon": -9.14}


def _call_weather_api(place: dict[str, Any]) -> dict[str, Any]:
    raise ConnectionError(f"weather API timed out for {place['city']} (HTTP 504)")


async def flaky_tool(ctx: Context, input: dict[str, Any] | None) -> dict[str, Any]:
    """A tool call that raises: the run ends ``error`` and keeps the step that did succeed."""
    place = await ctx.step("geocode", _geocode, (input or {}).get("city", "Lisbon"))
    forecast = await ctx.step("call_weather_api", _call_weather_api, place)
    return {"forecast": forecast}


def _draft_post(topic: str) -> str:
    return f"New post: how {topic} keeps agents' stop buttons working."


def _publish(post: str) -> dict[str, Any]:
    return {"published": post}


async def needs_approval(ctx: Context, input: dict[str, Any] | None) -> dict[str, Any]:
    """Asks a person before it publishes (``ctx.interrupt``): ``"approve"``, an edited
    ``{"post": ...}``, or anything else to drop it; answer on its thread's page in the
    console, or with a run created with ``command={"resume": ...}``."""
    post = await ctx.step("draft", _draft_post, (input or {}).get("topic", "runplane"))
    answer = await ctx.interrupt({"question": "publish this post?", "post": post})
    if answer == "approve":
        return await ctx.step("publish", _publish, post)
    if isinstance(answer, dict) and isinstance(answer.get("post"), str):  # edited
        return await ctx.step("publish", _publish, answer["post"])
    return {"published": None, "answer": answer}


WORKFLOWS: dict[str, Workflow] = {
    "summarise": summarise,
    "research_agent": research_agent,
    "flaky_tool": flaky_tool,
    "needs_approval": needs_approval,
}

def demo_app(database: str | None = None, **settings: Any) -> Runplane:
    """The demo workflows as an app: what ``runplane serve`` serves when given none."""
    app = Runplane(database, **settings)
    for name, fn in WORKFLOWS.items():
        app.workflow(name)(fn)
    return app


#: The demo workflows as an app to serve beside a LangGraph project
#: (``runplane serve runplane.demo:app --config examples/agent/langgraph.json``: ``make run``).
app = demo_app()


SAMPLE_TEXT = (
    "Runplane stores every run, step and event in one database. "
    "A worker claims pending runs and renews a lease while it runs them. "
    "Cancelling a run bumps its fence so that no later write of the old worker lands. "
    "Resuming an interrupted run replays its stored steps and runs the rest."
)


# --------------------------------------------------------------------------- #
# the demo                                                                     #
# --------------------------------------------------------------------------- #


def short(run_id: str | None) -> str:
    return "-" if run_id is None else run_id[:8]


async def run_demo(database_url: str, console: Console) -> list[Run]:
    """Play the demo on ``database_url`` and print what happened; returns the runs as they ended.

    The app is built here rather than at import time so that the demo can run
    more than once in a process (each run registers its workflows afresh).
    """
    app = demo_app(database_url, worker=True, concurrency=8)
    async with app:
        run_ids = await _play(app, console)
        runs = [await app.runs.get(run_id) for run_id in run_ids]
        events = {run.run_id: await app.runs.events(run.run_id) for run in runs}
    console.print()
    console.print(_runs_table(runs, events))
    for run in runs:
        console.print(_timeline(run, events[run.run_id]))
    return runs


async def _play(app: Runplane, console: Console) -> list[str]:
    async def start(workflow: str, input: dict[str, Any], user: str, role: str) -> Run:
        thread = await app.threads.create(metadata={"user": user, "demo": True})
        run = await app.runs.create(
            thread.thread_id, workflow, input=input, metadata={"demo_role": role}
        )
        console.print(f"[bold]created[/] run {short(run.run_id)} [cyan]{workflow}[/] "
                      f"({role}) on thread {short(thread.thread_id)}")
        return run

    quick = await start("summarise", {"text": SAMPLE_TEXT, "sentences": 2}, "ana", "succeeds")
    fast = {"step_seconds": DEMO_STEP_SECONDS}
    stopped = await start("research_agent", {"topic": "durable execution", **fast}, "ben",
                          "stopped")
    paused = await start("research_agent", {"topic": "cancellation", **fast}, "cai",
                         "paused, resumed")
    flaky = await start("flaky_tool", {"city": "Lisbon"}, "dee", "fails")

    running = await _wait_for_steps(app, stopped.run_id, STOP_AFTER_STEPS)
    console.print(f"\n[bold]cancel[/] {short(stopped.run_id)} after {running.step_index} "
                  "completed steps (action=interrupt, wait=True)")
    first = await app.runs.cancel(
        stopped.run_id, action="interrupt", wait=True, reason="user pressed stop",
        requested_by="demo",
    )
    console.print(f"  -> {first.outcome}: status={first.status}, task stopped={first.stopped}, "
                  f"reason={first.run.cancel_reason!r}")
    again = await app.runs.cancel(stopped.run_id, reason="pressed stop again")
    console.print(f"  second cancel -> {again.outcome} (keeps the first reason: "
                  f"{again.run.cancel_reason!r})")

    running = await _wait_for_steps(app, paused.run_id, PAUSE_AFTER_STEPS)
    console.print(f"\n[bold]cancel[/] {short(paused.run_id)} after {running.step_index} "
                  "completed steps, then resume it")
    await app.runs.cancel(paused.run_id, wait=True, reason="paused for human review")
    resumed = await app.runs.resume(paused.run_id)
    console.print(f"  -> resumed: status={resumed.status}; the {resumed.step_index} stored "
                  "steps are replayed, not run again")

    console.print("\n[bold]join[/] every run")
    for run in (quick, stopped, paused, flaky):
        try:
            await app.runs.join(run.run_id)
            console.print(f"  {short(run.run_id)} {run.assistant_id}: output ready")
        except (RunCancelled, RunFailed) as exc:
            console.print(f"  {short(run.run_id)} {run.assistant_id}: "
                          f"{type(exc).__name__}: {exc}", markup=False, highlight=False)

    await _explain_stop(app, console, stopped.run_id)
    await _explain_resume(app, console, paused.run_id)
    return [quick.run_id, stopped.run_id, paused.run_id, flaky.run_id]


async def _wait_for_steps(app: Runplane, run_id: str, steps: int) -> Run:
    """Poll until the run stored ``steps`` steps; a run that ended first is a broken demo."""
    try:
        async with asyncio.timeout(WAIT_LIMIT):
            while True:
                run = await app.runs.get(run_id)
                if run.step_index >= steps and run.status is RunStatus.RUNNING:
                    return run
                if run.status.terminal:
                    raise RuntimeError(
                        f"run {run_id} ended {run.status} before completing {steps} steps"
                    )
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise RuntimeError(
            f"run {run_id} did not complete {steps} steps within {WAIT_LIMIT}s"
        ) from None


async def _explain_stop(app: Runplane, console: Console, run_id: str) -> None:
    run = await app.runs.get(run_id)
    steps = await app.runs.steps(run_id)
    events = await app.runs.events(run_id)
    cancel_seq = next(e.seq for e in events if e.event == EventName.RUN_CANCEL)
    late = [e for e in events if e.seq > cancel_seq and e.event == EventName.STEP_COMPLETE]
    dropped = [e.data["name"] for e in events if e.event == EventName.STEP_CANCEL]
    verdict = "[green]none[/]" if not late else f"[red]{len(late)}[/]"
    console.print(
        f"\n{short(run_id)}: {len(steps)} steps stored (step_index={run.step_index}), "
        f"in-flight step dropped: {', '.join(dropped) or 'none'}, "
        f"steps completed after the cancel: {verdict}"
    )


async def _explain_resume(app: Runplane, console: Console, run_id: str) -> None:
    events = await app.runs.events(run_id)
    resume_seq = next(e.seq for e in events if e.event == EventName.RUN_RESUME)
    before = sorted({e.data["index"] for e in events
                     if e.event == EventName.STEP_COMPLETE and e.seq < resume_seq})
    after = sorted({e.data["index"] for e in events
                    if e.event == EventName.STEP_START and e.seq > resume_seq})
    console.print(
        f"{short(run_id)}: steps {_span(before)} ran before the pause, "
        f"steps {_span(after)} ran after the resume"
    )


def _span(indexes: list[int]) -> str:
    if not indexes:
        return "none"
    return str(indexes[0]) if len(indexes) == 1 else f"{indexes[0]}-{indexes[-1]}"


# --------------------------------------------------------------------------- #
# rendering                                                                    #
# --------------------------------------------------------------------------- #


def _status(status: RunStatus) -> Text:
    return Text(status.value, style=STATUS_STYLES.get(status, ""))


def _duration(run: Run) -> str:
    if run.started_at is None or run.ended_at is None:
        return "-"
    return f"{(run.ended_at - run.started_at).total_seconds():.2f}s"


def _note(run: Run, events: list[Event]) -> str:
    if run.status is RunStatus.INTERRUPTED:
        return f"cancelled: {run.cancel_reason or '(no reason)'}"
    if run.error:
        return run.error
    cancels = [e for e in events if e.event == EventName.RUN_CANCEL]
    if cancels:
        return f"resumed after cancel: {cancels[-1].data.get('reason') or '(no reason)'}"
    return ""


def _runs_table(runs: list[Run], events: dict[str, list[Event]]) -> Table:
    table = Table(title="runs", title_style="bold", expand=False)
    table.add_column("run", no_wrap=True)
    table.add_column("workflow", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("steps", justify="right", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("cancel reason / error", overflow="fold")
    for run in runs:
        table.add_row(
            short(run.run_id),
            run.assistant_id,
            _status(run.status),
            str(run.step_index),
            _duration(run),
            Text(_note(run, events[run.run_id])),
        )
    return table


def _short_data(data: Any, limit: int = 70) -> str:
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _timeline(run: Run, events: list[Event]) -> Table:
    table = Table(
        title=Text.assemble(
            f"{short(run.run_id)} {run.assistant_id} ", _status(run.status)
        ),
        title_justify="left",
        expand=False,
    )
    table.add_column("seq", justify="right", no_wrap=True)
    table.add_column("time", justify="right", no_wrap=True)
    table.add_column("event", no_wrap=True)
    table.add_column("data", overflow="fold")
    for event in events:
        elapsed = (event.created_at - run.created_at).total_seconds()
        table.add_row(
            str(event.seq), f"+{elapsed:.3f}s", event.event, Text(_short_data(event.data))
        )
    return table
