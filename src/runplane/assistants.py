"""The assistants an app serves: one per registered workflow, one per graph.

A workflow's assistant is the workflow itself: its id, graph id and name are the
name it was registered under. A graph's is its default assistant as the LangGraph
server names it: the id is ``uuid5(NAMESPACE_GRAPH, graph_id)`` (a client that
stored it keeps working), and it is also found by the graph id, as the SDK's
``assistant_id="agent"`` expects. Runs are stored under the assistant's id.
"""

from __future__ import annotations

import functools
import inspect
import uuid
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from runplane.errors import UnknownWorkflow

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig
    from langgraph.pregel import Pregel

    from runplane.worker import Workflow

#: The namespace of the LangGraph server's default assistant ids (``uuid5(NAMESPACE_GRAPH,
#: graph_id)``).
NAMESPACE_GRAPH = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")


@functools.cache
def default_assistant_id(graph_id: str) -> str:
    """The id of a graph's default assistant, the LangGraph server's."""
    return str(uuid.uuid5(NAMESPACE_GRAPH, graph_id))


class GraphSource(Protocol):
    """Where a graph comes from (see :mod:`runplane.graphs.project`): a graph, or a
    factory entered once per run."""

    @property
    def graph_id(self) -> str: ...

    @property
    def description(self) -> str | None: ...

    def build(self, config: RunnableConfig) -> AbstractAsyncContextManager[Pregel]:
        """The graph for one run (a factory's is made, and let go of, per run)."""


@dataclass(frozen=True, slots=True)
class Assistant:
    assistant_id: str
    graph_id: str
    name: str
    description: str | None
    #: Where the graph comes from; None for a workflow.
    graph: GraphSource | None = None


class Registry:
    """A live view of an app's workflows and graphs as their own assistants (those made
    through the API are the store's: see ``RunService.create_assistant``)."""

    def __init__(
        self, workflows: Mapping[str, Workflow], graphs: Mapping[str, GraphSource]
    ) -> None:
        self._workflows = workflows
        self._graphs = graphs

    def all(self) -> list[Assistant]:
        """Workflows, then graphs, each by name."""
        graph_ids = {default_assistant_id(g) for g in self._graphs}
        workflows = [
            Assistant(name, name, name, _summary(fn))
            for name, fn in sorted(self._workflows.items()) if name not in graph_ids
        ]
        return workflows + [self._graph(graph_id) for graph_id in sorted(self._graphs)]

    def resolve(self, assistant_id: str) -> Assistant:
        """The assistant of this id (or this graph id); UnknownWorkflow names the known."""
        if assistant_id in self._graphs:
            return self._graph(assistant_id)
        for graph_id in self._graphs:
            if default_assistant_id(graph_id) == assistant_id:
                return self._graph(graph_id)
        fn = self._workflows.get(assistant_id)
        if fn is None:
            raise UnknownWorkflow(assistant_id, [a.graph_id for a in self.all()])
        return Assistant(assistant_id, assistant_id, assistant_id, _summary(fn))

    def _graph(self, graph_id: str) -> Assistant:
        source = self._graphs[graph_id]
        return Assistant(default_assistant_id(graph_id), graph_id, graph_id,
                         source.description, source)


@functools.cache
def _summary(fn: Workflow) -> str | None:
    """A workflow's description: its docstring's first paragraph (read once: every run
    creation resolves its assistant)."""
    return (inspect.getdoc(fn) or "").split("\n\n")[0] or None
