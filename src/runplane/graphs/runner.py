"""A LangGraph graph as a runplane workflow: each graph run is a runplane run.

The worker claims, leases, fences, cancels, reaps and times out a graph run like any
other; what this module adds is how the run's task drives the graph:

- the graph gets the run's identity in its config (``configurable.thread_id``,
  ``checkpoint_ns=""``, ``run_id``, ``assistant_id``, ``graph_id``, and
  ``metadata.run_id``, which makes LangGraph treat a second attempt of the same run
  as a re-entry that resumes its own last checkpoint instead of applying the input
  again), merged over the run's own ``config`` (the run wins where both set a key); a
  run created from an earlier checkpoint (``checkpoint_id``) forks from it on its first
  attempt and goes on from its own latest checkpoint on the next ones;
- every chunk the graph streams is appended to the run's durable log under its mode's
  name (``mode|ns`` for a subgraph's), through the run's fence, so a stream of the run
  is a view of the log: joined late or resumed with ``Last-Event-ID``, it replays;
- the run's output is the graph's last ``values`` (with interrupts asked in several
  chunks, ``{"__interrupt__": [all of them]}``, as the LangGraph server answers); a
  ``values`` event also sets the thread's values, as a workflow's does (``__interrupt__``
  aside);
- a run that leaves its graph waiting (at an ``interrupt()`` or a breakpoint) leaves the
  thread ``interrupted`` with the pending interrupts its last checkpoint holds; a
  ``command`` resumes, updates or redirects it (``to_command``);
- the graph checkpoints through :class:`~runplane.graphs.checkpointer.RunplaneSaver`
  bound to the run's lease, by default after every super-step (``durability="sync"``):
  a second attempt of the run (after a crash, a hand-back or a resume) goes on from its
  last checkpoint, and a write the fence refuses stops the run.

A cancel stops the run's task, and with it the graph, wherever it awaits; no chunk is
logged once the fence moved. A worker shutting down asks the graph to drain: it stops at
its next super-step boundary, checkpointed, and the run is handed back at once instead of
being stopped mid-node when the shutdown grace ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import enum
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.errors import GraphDrained
from langgraph.runtime import RunControl
from langgraph.types import Command, Send, StateSnapshot, StreamMode
from pydantic import BaseModel, TypeAdapter

from runplane.auth_handlers import USER_KEYS, User
from runplane.graphs.checkpointer import RunplaneSaver

if TYPE_CHECKING:
    from langgraph.pregel import Pregel

    from runplane.assistants import GraphSource
    from runplane.context import Context
    from runplane.store.base import Store
    from runplane.worker import Workflow

log = logging.getLogger("runplane.graphs")

#: How the stream modes a client asks for map onto the graph's own (``messages-tuple`` is
#: LangGraph's ``messages``; the server renders both from it; ``events``: see _chunks).
_GRAPH_MODES: dict[str, StreamMode] = {
    "values": "values", "updates": "updates", "custom": "custom", "debug": "debug",
    "tasks": "tasks", "checkpoints": "checkpoints", "messages": "messages",
    "messages-tuple": "messages",
}


def run_config(ctx: Context, graph_id: str, kwargs: Mapping[str, Any]) -> RunnableConfig:
    """The config a run hands its graph: the run's ``config`` with the run's identity
    laid over it (see the module docstring)."""
    given: dict[str, Any] = dict(kwargs.get("config") or {})
    identity = {"thread_id": ctx.thread_id, "checkpoint_ns": "", "run_id": ctx.run_id,
                "assistant_id": ctx.assistant_id, "graph_id": graph_id}
    configurable = {k: v for k, v in (given.get("configurable") or {}).items()
                    if k not in USER_KEYS}  # a client cannot say who the user is
    if (auth := kwargs.get("auth")) is not None:  # a project's auth handlers said it
        configurable.update(langgraph_auth_user=User(auth["user"]),
                            langgraph_auth_user_id=auth["user"]["identity"],
                            langgraph_auth_permissions=list(auth["permissions"]))
    configurable.update(identity)
    metadata = {**(given.get("metadata") or {}), **identity, "run_attempt": ctx.attempt}
    del metadata["checkpoint_ns"]
    config = {**given, "configurable": configurable, "metadata": metadata}
    with contextlib.suppress(ValueError):  # the graph's callbacks see the run as their root
        config["run_id"] = uuid.UUID(ctx.run_id)
    return cast(RunnableConfig, config)


def graph_modes(requested: list[str]) -> list[StreamMode]:
    """The graph's stream modes for a run that asked for ``requested``: always ``values``
    (the run's output and the thread's values come from it)."""
    modes: list[StreamMode] = ["values",
                               *(_GRAPH_MODES[m] for m in requested if m in _GRAPH_MODES)]
    return list(dict.fromkeys(modes))


def graph_workflow(source: GraphSource, store: Callable[[], Store]) -> Workflow:
    """The workflow that runs ``source``'s graph for a run, checkpointing in ``store()``
    through the run's fence (a graph's own checkpointer, if it has one, is set aside: the
    run's checkpoints are the durable ones)."""

    async def run_graph(ctx: Context, input: Any) -> Any:
        config = run_config(ctx, source.graph_id, ctx.kwargs)
        fork = ctx.kwargs.get("checkpoint_id")
        if fork is not None and not await _went_on(store(), ctx):
            config["configurable"]["checkpoint_id"] = fork  # else: its own latest
        output: Any = None
        control = RunControl()  # a worker shutting down drains the graph
        ctx.on_drain(lambda: control.request_drain("worker shutdown"))
        command = ctx.kwargs.get("command")
        async with source.build(config) as built:
            saver = RunplaneSaver.for_run(store(), ctx)
            # the run's owner's memory store, over one the graph may have been given
            graph = built.copy(update={"checkpointer": saver, "store": ctx.store})
            asked: list[dict[str, Any]] = []  # the values chunks that carry interrupts
            try:
                async for namespace, mode, chunk in _chunks(
                        graph, input if command is None else to_command(command), config,
                        ctx.kwargs, control):
                    data = jsonable(list(chunk) if mode == "messages" else chunk)
                    if mode == "values" and not namespace:
                        output = data
                        if isinstance(data, dict) and data.get("__interrupt__"):
                            asked.append(data)
                    await ctx.emit("|".join((mode, *namespace)), data)
            except GraphDrained:  # stopped after its last super-step was checkpointed
                ctx.stop_for_shutdown()
            if asked or _has_breakpoints(graph, ctx.kwargs):  # it may wait: ask the checkpoint
                ctx.thread_interrupts = await pending_interrupts(graph, ctx.thread_id)
        if len(asked) > 1:  # as the LangGraph server answers: every interrupt, no values
            return {"__interrupt__": [i for chunk in asked for i in chunk["__interrupt__"]]}
        return output

    run_graph.__doc__ = source.description
    run_graph.__name__ = run_graph.__qualname__ = f"graph:{source.graph_id}"
    return run_graph


async def _chunks(
    graph: Pregel, input: Any, config: RunnableConfig, kwargs: Mapping[str, Any],
    control: RunControl,
) -> AsyncIterator[tuple[tuple[str, ...], str, Any]]:
    """The graph's stream as (namespace, mode, chunk). With ``events`` asked for, the graph
    runs under ``astream_events`` (v2), as on the LangGraph server: its own chunks come as
    the stream events of its root run, every other event (but those LangSmith hides) as a
    chunk of the mode ``events``."""
    requested = kwargs.get("stream_mode") or ["values"]
    subgraphs = bool(kwargs.get("stream_subgraphs"))
    options: dict[str, Any] = {
        "context": kwargs.get("context"), "stream_mode": graph_modes(requested),
        "subgraphs": subgraphs, "control": control,
        "interrupt_before": kwargs.get("interrupt_before"),
        "interrupt_after": kwargs.get("interrupt_after"),
        # LangGraph refuses a durability without a checkpointer to keep it
        "durability": (kwargs.get("durability") or "sync") if graph.checkpointer else None,
    }

    def item(raw: Any) -> tuple[tuple[str, ...], str, Any]:
        namespace, mode, chunk = raw if subgraphs else ((), *raw)
        return tuple(namespace), mode, chunk

    if "events" not in requested:
        async for raw in graph.astream(input, config, **options):
            yield item(raw)
        return
    root = str(config.get("run_id"))
    async for event in graph.astream_events(input, config, version="v2", **options):
        if event["event"] == "on_chain_stream" and event["run_id"] == root:
            yield item(event["data"]["chunk"])
        elif "langsmith:hidden" not in (event.get("tags") or ()):
            yield (), "events", event


async def _went_on(store: Store, ctx: Context) -> bool:
    """This run already checkpointed its thread (an earlier attempt of a fork): it goes on
    from its own latest checkpoint, not from the fork point again."""
    if ctx.thread_id is None:
        return False
    latest = await store.get_checkpoint(ctx.thread_id, "", None)
    return latest is not None and latest.run_id == ctx.run_id


def to_command(command: Mapping[str, Any]) -> Command:
    """LangGraph's ``Command`` from a run's checked ``command`` (``goto`` targets given as
    ``{node, input}`` are ``Send``s; ``update`` pairs arrive as JSON lists)."""
    def target(t: Any) -> Any:
        return Send(t["node"], t.get("input")) if isinstance(t, dict) else t

    goto = command.get("goto")
    update = command.get("update")
    return Command(
        resume=command.get("resume"),
        update=[tuple(pair) for pair in update] if isinstance(update, list) else update,
        goto=() if goto is None else
        [target(t) for t in goto] if isinstance(goto, list) else target(goto))


def _has_breakpoints(graph: Pregel, kwargs: Mapping[str, Any]) -> bool:
    return bool(kwargs.get("interrupt_before") or kwargs.get("interrupt_after")
                or graph.interrupt_before_nodes or graph.interrupt_after_nodes)


async def pending_interrupts(graph: Pregel, thread_id: str | None
                             ) -> dict[str, list[dict[str, Any]]] | None:
    """The thread's pending interrupts as the LangGraph server shows them (``{task id:
    [{value, id}]}``, empty at a breakpoint), or None when its graph is not waiting."""
    if thread_id is None:
        return None
    return interrupts_of(await graph.aget_state({"configurable": {"thread_id": thread_id,
                                                                  "checkpoint_ns": ""}}))


def interrupts_of(state: StateSnapshot) -> dict[str, list[dict[str, Any]]] | None:
    """A state's pending interrupts by task (see ``pending_interrupts``)."""
    if not state.next:
        return None
    return {task.id: [{"value": jsonable(i.value), "id": i.id} for i in task.interrupts]
            for task in state.tasks if task.interrupts}


def graph_schemas(graph: Pregel) -> dict[str, Any]:
    """A graph's input, output, state, config and context JSON schemas. One that cannot be
    drawn (a ``typing.TypedDict`` on Python 3.11, an arbitrary type) is None, logged, as
    the LangGraph server answers it, not an error of the whole answer."""
    builder = getattr(graph, "builder", None)
    state = getattr(builder, "state_schema", None)
    makers: dict[str, Callable[[], dict[str, Any] | None]] = {
        "input_schema": graph.get_input_jsonschema,
        "output_schema": graph.get_output_jsonschema,
        "state_schema": lambda: None if state is None else TypeAdapter(state).json_schema(),
        "config_schema": graph.get_config_jsonschema,
        "context_schema": graph.get_context_jsonschema,
    }
    schemas: dict[str, dict[str, Any] | None] = {}
    for name, make in makers.items():
        try:
            schemas[name] = make()
        except Exception as exc:  # the user's types, not a fault of the server
            log.warning("graph %s: no %s (%s: %s)", graph.name, name, type(exc).__name__, exc)
            schemas[name] = None
    return schemas


def _plain(value: Any) -> Any:
    """What ``json`` cannot encode, as the LangGraph server encodes it: models (messages
    among them) by their fields, dataclasses (interrupts, sends) as dicts."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, set | frozenset):
        return list(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, Send):
        return {"node": value.node, "arg": value.arg}
    return repr(value)


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON values (a stream chunk, a run's output)."""
    return json.loads(json.dumps(value, default=_plain, ensure_ascii=False))
