"""The graphs of the LangGraph peer benchmark, served alike by ``runplane serve --config`` and
by ``langgraph dev`` (benchmarks/peers/langgraph_serve.py).

- ``three_nodes``: three nodes in a row, each a small update; what throughput measures.
- ``park``: one node that waits an hour; what cancellation latency cancels.
- ``chat``: a chat model streaming its answer word by word without delay, so that the
  first ``messages`` event measures the servers, not the model.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypedDict

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langgraph.graph import END, START, MessagesState, StateGraph

ANSWER = "runplane runs agents as durable runs whose stop button always works."


class Counter(TypedDict):
    i: int
    n: int


def _step(state: Counter) -> dict[str, int]:
    return {"n": state["n"] + 1}


def _three_nodes() -> Any:
    builder = StateGraph(Counter)
    builder.add_node("a", _step)
    builder.add_node("b", _step)
    builder.add_node("c", _step)
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", "c")
    builder.add_edge("c", END)
    return builder.compile()


async def _wait(state: Counter) -> dict[str, int]:
    await asyncio.sleep(3600)
    return {"n": state["n"] + 1}


def _park() -> Any:
    builder = StateGraph(Counter)
    builder.add_node("wait", _wait)
    builder.add_edge(START, "wait")
    builder.add_edge("wait", END)
    return builder.compile()


class WordsModel(BaseChatModel):
    """Answers every question with ``ANSWER``, streamed one word per chunk."""

    @property
    def _llm_type(self) -> str:
        return "words"

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None,
                  **kwargs: Any) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=ANSWER))])

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None,
                **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        raise NotImplementedError("the words model streams asynchronously only")

    async def _astream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                       run_manager: AsyncCallbackManagerForLLMRun | None = None,
                       **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        words = ANSWER.split(" ")
        for k, word in enumerate(words):
            token = word if k == len(words) - 1 else f"{word} "
            if run_manager is not None:
                await run_manager.on_llm_new_token(token)
            yield ChatGenerationChunk(message=AIMessageChunk(content=token))


_model = WordsModel()


async def _answer(state: MessagesState) -> dict[str, Any]:
    return {"messages": [await _model.ainvoke(state["messages"])]}


def _chat() -> Any:
    builder = StateGraph(MessagesState)
    builder.add_node("chat", _answer)
    builder.add_edge(START, "chat")
    builder.add_edge("chat", END)
    return builder.compile()


three_nodes = _three_nodes()
park = _park()
chat = _chat()
