"""The console's pages, live feeds (SSE) and actions, under ``/ui``.

Pages render on the server; a feed sends a page's changing parts as they change: the runs
list once a second at most, and only when it changed; a run's page with each event its
log appends (the durable log, followed as any stream of the run). Actions are JSON posts
(the API's browser guards refuse them from other sites and as forms) that call the same
service methods, with the caller's owner rules, and answer what happened in words: a
second stop says "already stopped", not an error.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field

from runplane import limits
from runplane.auth_handlers import Unauthenticated
from runplane.console.views import (
    by_worker,
    draw,
    graph_timeline,
    log_line,
    metric_totals,
    pretty,
    preview,
    timeline,
    tree_rows,
)
from runplane.errors import (
    AssistantNotFound,
    Conflict,
    InvalidInput,
    NotFound,
    RunConflict,
    RunNotFound,
    ThreadNotFound,
)
from runplane.models import Caller, CancelOutcome, Event, RunStatus, Thread
from runplane.server.assistants import graph as graph_of
from runplane.server.auth import KEY_COOKIE, identify
from runplane.server.deps import Service, Settings, Who
from runplane.server.streams import HEARTBEAT, sse
from runplane.server.wire import state_body
from runplane.service import RunService

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.filters["preview"] = preview
templates.env.filters["pretty"] = pretty
templates.env.filters["replace_page"] = lambda params, page: urlencode(
    {**dict(params), "page": str(page)})
router = APIRouter(prefix="/ui", include_in_schema=False)

PAGE_SIZE = 50
#: How often the runs list looks for changes while a page has it open.
LIST_REFRESH = 1.0
#: The log events after which a run's page re-renders its status, steps and tree: its
#: lifecycle and its steps (and a graph's root ``values``: one per super-step), not each
#: token or value a workflow emits.
MOVES = ("run:", "step:", "lease:")
#: How often a graph run's page re-reads its checkpoints while no event comes (a node
#: that started logs nothing until it ends).
GRAPH_IDLE = 1.0
#: How long a run's page waits, after the run's end, for its worker to stop.
SETTLE_WAIT = 10.0
#: The events a run's page shows (its log may be longer; the page keeps as many).
LOG_LINES = 500
#: The checkpoints a graph thread's page lists (newest first).
HISTORY = 20
#: How often the operations page samples its figures, and how many samples it charts.
OPS_REFRESH, OPS_SAMPLES = 2.0, 90
#: How long a sign-in lasts (seconds).
SIGNED_IN = 12 * 3600
#: The time filter's choices.
SINCE = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1), "24h": timedelta(days=1),
         "7d": timedelta(days=7)}


def mount_console(app: FastAPI) -> None:
    app.mount("/ui/static", StaticFiles(directory=str(HERE / "static")), name="console")
    app.include_router(router)

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/ui")


def _not_found(request: Request, exc: NotFound) -> HTMLResponse:
    """A page for a person: what was not found, and the way back."""
    return templates.TemplateResponse(request, "not_found.html", {"what": str(exc)},
                                      status_code=404)


def _names(request: Request) -> dict[str, str]:
    """Assistant names by id: a graph's runs carry its assistant's uuid, pages name it."""
    return {a.assistant_id: a.name for a in request.app.state.runplane.registry.all()}


class RunFilters(BaseModel):
    status: str | None = None
    #: an assistant's id or name (a graph's assistant is named after the graph)
    assistant: str | None = None
    thread: str | None = None
    q: str | None = None
    since: str | None = None
    #: the page's number from 0, as the page's links write it (anything else: the first)
    page: str | None = None

    @property
    def page_number(self) -> int:
        text = (self.page or "").strip()
        return min(int(text), 10_000) if text.isascii() and text.isdigit() else 0

    def query(self, names: dict[str, str]) -> dict[str, Any]:
        """The service's filters (a blank field filters nothing)."""
        since = SINCE.get(self.since or "")
        by_name = {name: assistant_id for assistant_id, name in names.items()}
        return {
            "status": self.status or None,
            "assistant_id": by_name.get(self.assistant or "", self.assistant or None),
            "thread_id": self.thread or None, "id_prefix": (self.q or "").strip() or None,
            "created_after": None if since is None else datetime.now(UTC) - since,
        }


Filters = Annotated[RunFilters, Query()]


@router.get("", response_class=HTMLResponse)
async def runs_page(request: Request, service: Service, caller: Who,
                    filters: Filters) -> HTMLResponse:
    names = _names(request)
    return templates.TemplateResponse(request, "runs.html", {
        "filters": filters, "statuses": [s.value for s in RunStatus], "since": list(SINCE),
        "assistants": sorted(names.items(), key=lambda item: item[1]), "names": names,
        **await _runs_view(service, caller, filters, names)})


async def _runs_view(service: RunService, caller: Caller | None, filters: RunFilters,
                     names: dict[str, str]) -> dict[str, Any]:
    query = filters.query(names)
    try:
        runs = await service.list_runs(limit=PAGE_SIZE + 1,
                                       offset=filters.page_number * PAGE_SIZE,
                                       caller=caller, **query)
        del query["status"]
        counts = await service.count_runs(caller=caller, **query)
        problem = None
    except (InvalidInput, NotFound) as exc:
        runs, counts, problem = [], {s.value: 0 for s in RunStatus}, str(exc)
    return {"runs": runs[:PAGE_SIZE], "more": len(runs) > PAGE_SIZE, "counts": counts,
            "problem": problem, "now": datetime.now(UTC)}


@router.get("/runs/feed")
async def runs_feed(request: Request, service: Service, settings: Settings, caller: Who,
                    filters: Filters) -> StreamingResponse:
    """The runs list's rows and counts, sent when they change."""

    names = _names(request)

    async def body() -> AsyncIterator[bytes]:
        last, idle = None, 0.0
        while not request.app.state.shutting_down:
            view = await _runs_view(service, caller, filters, names)
            rows = templates.get_template("runs_rows.html").render(view, names=names)
            if rows != last:
                last, idle = rows, 0.0
                yield sse("rows", {"rows": rows, "counts": view["counts"]})
            elif idle >= settings.sse_heartbeat:
                idle = 0.0
                yield HEARTBEAT
            await asyncio.sleep(LIST_REFRESH)
            idle += LIST_REFRESH

    return _event_stream(body())


@router.get("/runs/{run_id}", response_class=HTMLResponse)
async def run_page(request: Request, service: Service, caller: Who,
                   run_id: str) -> HTMLResponse:
    try:
        events = await service.events(run_id, caller=caller)
        view = await _run_view(service, caller, run_id, events)
    except (NotFound, InvalidInput) as exc:
        return _not_found(request, RunNotFound(run_id) if isinstance(exc, InvalidInput)
                          else exc)
    return templates.TemplateResponse(request, "run.html", {
        **view, "names": _names(request),
        "lines": [log_line(e) for e in events[-LOG_LINES:]],
        "last_seq": events[-1].seq if events else 0, "log_lines": LOG_LINES})


async def _run_view(service: RunService, caller: Caller | None, run_id: str,
                    events: list[Event] | None = None) -> dict[str, Any]:
    """The run's changing parts: status, steps and tree (``events``: its log, when the
    caller has just read it)."""
    run = await service.get_run(run_id, caller=caller)
    now = datetime.now(UTC)
    if run.of_graph and run.thread_id is not None:  # its super-steps: its checkpoints
        states = await service.get_history(run.thread_id, limit=limits.MAX_LIMIT,
                                           metadata={"run_id": run_id}, caller=caller)
        steps = graph_timeline(run, [state_body(s) for s in reversed(states)], now)
    else:
        if events is None:
            events = await service.events(run_id, caller=caller)
        steps = timeline(run, events, now)
    tree = tree_rows(await service.tree(run_id, caller=caller))
    return {"run": run, "timeline": steps, "now": now, "tree": tree, "tree_size": len(tree)}


@router.get("/runs/{run_id}/feed")
async def run_feed(request: Request, service: Service, settings: Settings, caller: Who,
                   run_id: str, after: int = 0) -> StreamingResponse:
    """The run's log lines after ``after`` as they are appended, and its status, steps and
    tree re-rendered as they change; ends after the run's end."""
    graph = (await service.get_run(run_id, caller=caller)).of_graph
    live = templates.get_template("run_live.html")
    line = templates.get_template("log_line.html")
    names = _names(request)

    async def body() -> AsyncIterator[bytes]:
        seq = after
        async for event in service.stream(run_id, after_seq=after, caller=caller,
                                          idle=GRAPH_IDLE if graph else settings.sse_heartbeat):
            if event is None:  # a graph's node may have started: its checkpoint says so
                yield sse("live", {"html": live.render(
                    await _run_view(service, caller, run_id), names=names)}) if graph \
                    else HEARTBEAT
                continue
            seq = event.seq
            yield sse("line", {"seq": event.seq, "html": line.render(line=log_line(event))})
            if event.event.startswith(MOVES) or (graph and event.event == "values"):
                yield sse("live", {"html": live.render(
                    await _run_view(service, caller, run_id), names=names)})
        # what the stopping worker logs once it stopped (the step it cancelled) follows
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(service.settled(run_id, caller=caller), SETTLE_WAIT)
        for event in await service.events(run_id, after_seq=seq, caller=caller):
            yield sse("line", {"seq": event.seq, "html": line.render(line=log_line(event))})
        yield sse("live", {"html": live.render(await _run_view(service, caller, run_id),
                                               names=names)})
        yield sse("end", {})

    return _event_stream(body())


class StopBody(BaseModel):
    action: str = "interrupt"
    reason: Annotated[str | None, Field(max_length=limits.MAX_TEXT_LENGTH)] = None
    scope: str = "run"


@router.post("/runs/{run_id}/stop")
async def stop(service: Service, caller: Who, run_id: str, body: StopBody) -> JSONResponse:
    """Stop the run (or its whole tree): the API's cancel, answered in words."""
    try:
        result = await service.cancel(run_id, action=body.action, reason=body.reason or None,
                                      requested_by="console", scope=body.scope, caller=caller)
    except RunConflict as exc:
        return _said(False, f"cannot stop: the run already ended ({exc.status})")
    if body.scope == "tree":
        counts = result.counts or {}
        return _said(True, f"stopped the tree: {counts.get('cancelled', 0)} stopped, "
                           f"{counts.get('already_interrupted', 0)} already stopped, "
                           f"{counts.get('already_finished', 0)} already finished")
    if result.outcome is CancelOutcome.ALREADY_INTERRUPTED:
        why = f" ({result.run.cancel_reason})" if result.run.cancel_reason else ""
        return _said(True, f"already stopped{why}")
    return _said(True, f"stopped: {result.run.status.value}")


@router.post("/runs/{run_id}/resume")
async def resume(service: Service, caller: Who, run_id: str) -> JSONResponse:
    try:
        run = await service.resume(run_id, caller=caller)
    except RunConflict as exc:
        return _said(False, f"cannot resume: only a stopped (interrupted) run resumes; "
                            f"this one is {exc.status}")
    return _said(True, f"resumed: {run.status.value}")


@router.post("/runs/{run_id}/delete")
async def delete(service: Service, caller: Who, run_id: str) -> JSONResponse:
    try:
        await service.delete_run(run_id, caller=caller)
    except RunConflict as exc:
        return _said(False, str(exc))
    return _said(True, "deleted")


def _said(ok: bool, message: str) -> JSONResponse:
    return JSONResponse({"ok": ok, "message": message})


def _event_stream(body: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(body, media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})



@router.get("/threads/{thread_id}", response_class=HTMLResponse)
async def thread_page(request: Request, service: Service, caller: Who,
                      thread_id: str) -> HTMLResponse:
    """A thread: its values (a graph's state and checkpoints), its runs, and a pending
    interrupt with the form that answers it."""
    try:
        thread = await service.get_thread(thread_id, caller=caller)
    except (NotFound, InvalidInput):
        return _not_found(request, ThreadNotFound(thread_id))
    state = await service.get_state(thread_id, caller=caller)
    graph = not isinstance(state, Thread)
    history: list[Any] = []
    if graph:
        history = await service.get_history(thread_id, limit=HISTORY, caller=caller)
    asked = [i for items in (thread.interrupts or {}).values() for i in items]
    body = state_body(state) if graph else None
    return templates.TemplateResponse(request, "thread.html", {
        "thread": thread, "graph": graph, "names": _names(request), "state": body,
        "at_breakpoint": graph and thread.interrupts is not None and not asked
        and bool(body and body["next"]),
        "history": [state_body(s) for s in history], "now": datetime.now(UTC),
        "runs": await service.list_runs(thread_id, limit=PAGE_SIZE, caller=caller),
        "asked": asked})


class AnswerBody(BaseModel):
    value: Any = None
    interrupt_id: Annotated[str | None, Field(max_length=limits.MAX_ID_LENGTH)] = None


@router.post("/threads/{thread_id}/resume")
async def answer(service: Service, caller: Who, thread_id: str,
                 body: AnswerBody) -> JSONResponse:
    """Answer the thread's pending interrupt: a run of the thread's assistant with
    ``command.resume``, as the API creates it."""
    resume = body.value if body.interrupt_id is None else {body.interrupt_id: body.value}
    return await _go_on(service, caller, thread_id, {"resume": resume}, "answered")


@router.post("/threads/{thread_id}/continue")
async def go_on(service: Service, caller: Who, thread_id: str) -> JSONResponse:
    """Continue a graph stopped at a breakpoint: a run with input null, as on the API."""
    return await _go_on(service, caller, thread_id, None, "continued")


async def _go_on(service: RunService, caller: Caller | None, thread_id: str,
                 command: dict[str, Any] | None, done: str) -> JSONResponse:
    runs = await service.list_runs(thread_id, limit=1, caller=caller)
    if not runs:
        return _said(False, "nothing to go on with: the thread has no runs")
    try:
        run = await service.create_run(thread_id, runs[0].assistant_id, None,
                                       command=command, caller=caller)
    except (InvalidInput, Conflict) as exc:
        return _said(False, str(exc))
    return JSONResponse({"ok": True, "message": f"{done}: run {run.run_id}",
                         "run_id": run.run_id})


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> HTMLResponse:
    return templates.TemplateResponse(request, "login.html", {"keys": _signs_in(request)})


def _signs_in(request: Request) -> bool:
    """Whether callers must say who they are: API keys or a project's auth handlers."""
    return request.app.state.settings.api_keys is not None \
        or request.app.state.auth_handlers is not None


class SignIn(BaseModel):
    key: Annotated[str, Field(min_length=1, max_length=4000)]


@router.post("/login")
async def login(request: Request, body: SignIn) -> JSONResponse:
    """Check the key (or, with a project's auth handlers, the token they take) and keep it
    in the browser's HttpOnly, SameSite=Strict cookie (never in a URL): the console's
    requests then carry it, and no script can read it."""
    if not _signs_in(request):
        return _said(True, "this server has no API keys: nothing to sign in to")
    try:
        caller = await identify(request.app.state.settings.api_keys,
                                request.app.state.auth_handlers, request.scope, None, body.key)
    except Unauthenticated as refused:
        return JSONResponse({"ok": False, "message": refused.detail}, 401)
    answer = _said(True, f"signed in as {caller.owner}" + (" (admin)" if caller.admin else ""))
    answer.set_cookie(KEY_COOKIE, body.key, max_age=SIGNED_IN, path="/", httponly=True,
                      samesite="strict", secure=request.url.scheme == "https")
    return answer


@router.post("/logout")
async def logout() -> JSONResponse:
    answer = _said(True, "signed out")
    answer.delete_cookie(KEY_COOKIE, path="/", httponly=True, samesite="strict")
    return answer


@router.get("/assistants", response_class=HTMLResponse)
async def assistants_page(request: Request, service: Service, caller: Who) -> HTMLResponse:
    """Every assistant the caller may see (the code's own, then those made through the
    API), a graph's drawn from its nodes and edges (``get_graph``)."""
    found = await service.search_assistants(limit=limits.MAX_LIMIT, sort_by="name",
                                            sort_order="asc", caller=caller)
    found.sort(key=lambda a: not a.builtin)  # stable: by name within each kind
    listed = []
    for a in found:
        try:
            code = await service.assistant_code(a.assistant_id, caller=caller)
        except AssistantNotFound:  # its graph is not served here (any more)
            continue
        listed.append({"assistant": a, "kind": "graph" if code.graph else "workflow",
                       "drawing": draw(await graph_of(service, caller, a.assistant_id))})
    return templates.TemplateResponse(request, "assistants.html", {"assistants": listed})


async def _ops_view(service: RunService, caller: Caller | None) -> dict[str, Any]:
    running = await service.list_runs(status="running", limit=limits.MAX_LIMIT,
                                      caller=caller)
    return {"counts": await service.count_runs(caller=caller),
            "workers": by_worker(running)}


@router.get("/ops", response_class=HTMLResponse)
async def ops_page(request: Request, service: Service, caller: Who) -> HTMLResponse:
    """Queue depth, running runs per worker with their lease expiry, and charts of
    throughput and cancel latency."""
    return templates.TemplateResponse(request, "ops.html", {
        "names": _names(request), "keep": OPS_SAMPLES, **await _ops_view(service, caller)})


@router.get("/ops/feed")
async def ops_feed(request: Request, service: Service, caller: Who) -> StreamingResponse:
    """A sample of the operations figures every ``OPS_REFRESH`` seconds."""
    names = _names(request)
    workers = templates.get_template("ops_workers.html")

    async def body() -> AsyncIterator[bytes]:
        while not request.app.state.shutting_down:
            view = await _ops_view(service, caller)
            yield sse("sample", {
                "at": datetime.now(UTC).timestamp(), "pending": view["counts"]["pending"],
                "running": view["counts"]["running"], **metric_totals(),
                "workers": workers.render(view, names=names)})
            await asyncio.sleep(OPS_REFRESH)

    return _event_stream(body())
