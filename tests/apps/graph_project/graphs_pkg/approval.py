"""Graphs that stop for a person (tests/acceptance/http/test_hitl.py).

- ``approval``: ``draft`` writes an email, ``review`` asks a person (``interrupt``) and
  ``send`` runs only when the answer is ``approve``; ``runs`` counts each node's executions
  in the state, so a resume that ran a completed node again shows.
- ``parallel``: two reviewers asked at once (two pending interrupts, resumed by id).
- ``steps``: ``a`` -> ``b`` -> ``c``, each appending its name: what breakpoints stop at.
- ``nested_approval``: ``approval`` as the subgraph of another graph.
- ``gated``: one node that runs until a file exists (a run that stays running).
"""

from __future__ import annotations

import asyncio
import operator
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt
from typing_extensions import TypedDict


class Email(TypedDict, total=False):
    to: str
    draft: str
    decision: Any
    sent: bool
    runs: Annotated[list[str], operator.add]


def draft(state: Email) -> dict[str, Any]:
    return {"draft": f"Dear {state['to']}, the run is done.", "runs": ["draft"]}


def review(state: Email) -> dict[str, Any]:
    decision = interrupt({"question": "send this email?", "draft": state["draft"]})
    return {"decision": decision, "runs": ["review"]}


def send(state: Email) -> dict[str, Any]:
    return {"sent": True, "runs": ["send"]}


def _route(state: Email) -> str:
    return "send" if state.get("decision") == "approve" else END


_approval = StateGraph(Email)
_approval.add_node("draft", draft)
_approval.add_node("review", review)
_approval.add_node("send", send)
_approval.add_edge(START, "draft")
_approval.add_edge("draft", "review")
_approval.add_conditional_edges("review", _route, ["send", END])
_approval.add_edge("send", END)
approval = _approval.compile()


class Votes(TypedDict, total=False):
    votes: Annotated[list[str], operator.add]


def _reviewer(name: str) -> Callable[[Votes], dict[str, Any]]:
    def ask(state: Votes) -> dict[str, Any]:
        return {"votes": [f"{name}:{interrupt(f'{name}, do you agree?')}"]}
    return ask


_parallel = StateGraph(Votes)
_parallel.add_node("legal", _reviewer("legal"))
_parallel.add_node("finance", _reviewer("finance"))
_parallel.add_edge(START, "legal")
_parallel.add_edge(START, "finance")
_parallel.add_edge("legal", END)
_parallel.add_edge("finance", END)
parallel = _parallel.compile()


class Trail(TypedDict, total=False):
    trail: Annotated[list[str], operator.add]


_steps = StateGraph(Trail)
for _name in ("a", "b", "c"):
    _steps.add_node(_name, lambda state, name=_name: {"trail": [name]})
_steps.add_edge(START, "a")
_steps.add_edge("a", "b")
_steps.add_edge("b", "c")
_steps.add_edge("c", END)
steps = _steps.compile()


def _announce(state: Email) -> dict[str, Any]:
    return {"runs": ["announce"]}


_nested = StateGraph(Email)  # the same state as its subgraph
_nested.add_node("announce", _announce)
_nested.add_node("approval", approval)  # the subgraph asks the person
_nested.add_edge(START, "announce")
_nested.add_edge("announce", "approval")
_nested.add_edge("approval", END)
#: ``approval`` as a subgraph: its interrupt stops the parent graph
nested_approval = _nested.compile()


class Gated(TypedDict, total=False):
    gate: str
    done: bool


async def _wait_for_gate(state: Gated) -> dict[str, Any]:
    """Runs until the file ``state["gate"]`` exists (another process opens it)."""
    while True:  # another process opens it: a file is the simplest cross-process signal
        if _is_open(state["gate"]):
            return {"done": True}
        await asyncio.sleep(0.01)


def _is_open(gate: str) -> bool:
    return Path(gate).exists()


_gated = StateGraph(Gated)
_gated.add_node("wait", _wait_for_gate)
_gated.add_edge(START, "wait")
_gated.add_edge("wait", END)
#: a run that stays running until its gate file exists
gated = _gated.compile()
