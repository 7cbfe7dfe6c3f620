"""A graph thread's state and history, read from its checkpoints by the graph itself, and
edited by it.

LangGraph knows how a checkpoint becomes a state (the values of its channels, the
nodes to run next, the pending tasks and their interrupts, subgraphs' states): the
graph is built as for a run and reads the thread through runplane's checkpointer,
unfenced (a read changes nothing). An edit (``update_state``) is the graph's own too:
its checkpoint is held (``HeldSaver``) and written in one transaction with the thread's
new values and interrupts, only if no run is pending or running on the thread then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runplane.errors import InvalidInput

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig
    from langgraph.types import StateSnapshot

    from runplane.assistants import GraphSource
    from runplane.store.base import Store


def thread_config(thread_id: str, checkpoint_id: str | None = None,
                  checkpoint_ns: str = "") -> RunnableConfig:
    configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


async def read_state(
    source: GraphSource, store: Store, thread_id: str, *, checkpoint_id: str | None = None,
    checkpoint_ns: str = "", subgraphs: bool = False,
) -> StateSnapshot:
    """The thread's state at its latest checkpoint (or at ``checkpoint_id``)."""
    from runplane.graphs.checkpointer import RunplaneSaver

    config = thread_config(thread_id, checkpoint_id, checkpoint_ns)
    async with source.build(config) as graph:
        reader = graph.copy(update={"checkpointer": RunplaneSaver(store)})
        return await reader.aget_state(config, subgraphs=subgraphs)


async def read_history(
    source: GraphSource, store: Store, thread_id: str, *, limit: int,
    before: str | None = None, metadata: dict[str, Any] | None = None,
    checkpoint_ns: str = "",
) -> list[StateSnapshot]:
    """The thread's states, newest first: at most ``limit``, older than the checkpoint
    ``before``, whose checkpoint metadata holds ``metadata``."""
    from runplane.graphs.checkpointer import RunplaneSaver

    config = thread_config(thread_id, checkpoint_ns=checkpoint_ns)
    async with source.build(config) as graph:
        reader = graph.copy(update={"checkpointer": RunplaneSaver(store)})
        return [state async for state in reader.aget_state_history(
            config, filter=metadata, limit=limit,
            before=None if before is None else thread_config(thread_id, before))]


async def edit_state(
    source: GraphSource, store: Store, thread_id: str, values: Any, now: float, *,
    as_node: str | None = None, checkpoint_id: str | None = None,
) -> RunnableConfig:
    """Apply ``values`` to the thread's state as if node ``as_node`` wrote them (at its
    latest checkpoint, or forking from ``checkpoint_id``); the new checkpoint's config.
    ThreadActive while a run is pending or running on the thread: nothing is written."""
    from langgraph.errors import InvalidUpdateError

    from runplane.graphs.checkpointer import HeldSaver
    from runplane.graphs.runner import interrupts_of, jsonable

    config = thread_config(thread_id, checkpoint_id)
    async with source.build(config) as graph:
        saver = HeldSaver(store)
        editor = graph.copy(update={"checkpointer": saver})
        try:
            done = await editor.aupdate_state(config, values, as_node=as_node)
        except (InvalidUpdateError, KeyError, TypeError, ValueError) as exc:  # its values
            raise InvalidInput("values", f"the graph refused the update: {exc}") from None
        state = await editor.aget_state(thread_config(thread_id))
    await store.put_thread_state(thread_id, saver.checkpoints, saver.writes,
                                 jsonable(state.values), interrupts_of(state), now)
    return done
