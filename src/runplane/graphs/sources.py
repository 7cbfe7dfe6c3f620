"""Where a served graph comes from: a graph made once, or a factory called per run.

What a ``langgraph.json`` target is, is decided when the project loads, by looking at it,
never by calling it: a compiled graph, a ``Pregel`` or an ``@entrypoint`` is served as
it is; a ``StateGraph`` is compiled once; any other callable is a factory, told apart
by its signature (no argument, or one: the run's ``RunnableConfig``). A factory is called
for every run (and for every description of the graph: ``/assistants/{id}/graph`` and
``/schemas`` build it with ``{"configurable": {}}``); what it gives (awaited, for an async
factory) may be a graph or a sync or async context manager yielding one, entered for the
run and exited after it, as the LangGraph server does.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel

from runplane.errors import ConfigError


@dataclass(frozen=True, slots=True)
class GraphSource:
    """A graph of a project under ``graph_id``; ``origin`` is how the project names it
    (``./agent.py:graph``), for messages."""

    graph_id: str
    origin: str
    #: The graph served as it is, or the factory called per run.
    target: Pregel | Callable[..., Any]
    description: str | None = None
    #: How a factory takes the run's config: None (no argument), a parameter's name
    #: (keyword-only), or "" (positionally).
    config_parameter: str | None = None

    @classmethod
    def classify(cls, graph_id: str, origin: str, value: object, *,
                 description: str | None = None, where: str = "") -> GraphSource:
        """The source of ``value``, a project's target; ConfigError (prefixed by ``where``)
        for one that is no graph, no StateGraph that compiles, or no factory."""
        if isinstance(value, Pregel):
            return cls(graph_id, origin, value, description)
        if isinstance(value, StateGraph):
            try:
                compiled = value.compile()
            except Exception as exc:  # the user's graph, e.g. no edge from START
                raise ConfigError(f"{where}{origin} does not compile: "
                                  f"{type(exc).__name__}: {_one_line(exc)}") from exc
            return cls(graph_id, origin, compiled, description)
        if callable(value):
            return cls(graph_id, origin, value, description, _config_parameter(value, origin,
                                                                               where))
        raise ConfigError(f"{where}{origin} is {with_article(type(value).__name__)}, not a graph, "
                          "a StateGraph or a graph factory")

    @property
    def is_factory(self) -> bool:
        return not isinstance(self.target, Pregel)

    @asynccontextmanager
    async def build(self, config: RunnableConfig) -> AsyncIterator[Pregel]:
        """The graph for one run: the graph itself, or what the factory makes for
        ``config``, entered for the run and exited after it."""
        if isinstance(self.target, Pregel):
            yield self.target
            return
        if self.config_parameter is None:
            made = self.target()
        elif self.config_parameter:
            made = self.target(**{self.config_parameter: config})
        else:
            made = self.target(config)
        if inspect.isawaitable(made) and not hasattr(made, "__aenter__"):
            made = await made  # an async factory's graph, or its context manager
        if hasattr(made, "__aenter__") and hasattr(made, "__aexit__"):
            async with made as graph:
                yield self._graph(graph)
        elif hasattr(made, "__enter__") and hasattr(made, "__exit__"):
            with made as graph:
                yield self._graph(graph)
        else:
            yield self._graph(made)

    def _graph(self, made: object) -> Pregel:
        if isinstance(made, StateGraph):
            return made.compile()
        if not isinstance(made, Pregel):
            raise TypeError(f"graph {self.graph_id!r}: the factory {self.origin} gave "
                            f"{with_article(type(made).__name__)}, not a graph")
        return made


def _config_parameter(factory: Callable[..., Any], origin: str, where: str) -> str | None:
    """How ``factory`` takes a run's config (see GraphSource.config_parameter): its first
    parameter does, if it has one; any other must have a default."""
    try:
        parameters = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):  # no signature to read (a builtin): called with none
        return None
    if not parameters or parameters[0].kind is inspect.Parameter.VAR_KEYWORD:
        return None
    first, *rest = parameters
    required = [p.name for p in rest if p.default is p.empty
                and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if required:
        raise ConfigError(f"{where}{origin} takes the arguments {first.name}, "
                          f"{', '.join(required)}; a graph factory takes none or one "
                          "(a RunnableConfig)")
    return first.name if first.kind is first.KEYWORD_ONLY else ""


def with_article(noun: str) -> str:
    """``noun`` with its article (``an int``, ``a list``)."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
