"""A chat agent that needs no network and no keys: a deterministic chat model that first
asks its tool, then answers token by token from what the tool found.

Served by ``runplane serve --config examples/agent/langgraph.json`` (and by ``make run``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.tools import tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

#: Seconds between two tokens of an answer, so that a person sees them arrive.
TOKEN_DELAY = 0.05


@tool
def lookup(topic: str) -> str:
    """Look a topic up in the (very small) local encyclopedia."""
    facts = {
        "runplane": "runplane runs agents as durable runs whose stop button always works.",
        "langgraph": "LangGraph builds agents as graphs of nodes that share a state.",
    }
    key = next((k for k in facts if k in topic.lower()), None)
    return facts[key] if key else f"Nothing is known about {topic!r} yet."


class ScriptedChatModel(BaseChatModel):
    """Calls ``lookup`` with the person's last message, then streams an answer that quotes
    the tool's result, word by word."""

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _reply(self, messages: list[BaseMessage]) -> AIMessage:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            return AIMessage(content=f"Here is what I found: {last.content}")
        return AIMessage(content="", tool_calls=[{
            "name": "lookup", "args": {"topic": str(last.content)}, "id": f"call-{len(messages)}",
        }])

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None,
                  **kwargs: Any) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._reply(messages))])

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None,
                **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        raise NotImplementedError("the scripted model streams asynchronously only")

    async def _astream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                       run_manager: AsyncCallbackManagerForLLMRun | None = None,
                       **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        reply = self._reply(messages)
        if reply.tool_calls:
            call = reply.tool_calls[0]
            yield ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=[{
                "name": call["name"], "args": _json(call["args"]), "id": call["id"],
                "index": 0}]))
            return
        words = str(reply.content).split(" ")
        for k, word in enumerate(words):
            await asyncio.sleep(TOKEN_DELAY)
            token = word if k == len(words) - 1 else f"{word} "
            if run_manager is not None:
                await run_manager.on_llm_new_token(token)
            yield ChatGenerationChunk(message=AIMessageChunk(content=token))


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


model = ScriptedChatModel()


async def chat(state: MessagesState) -> dict[str, Any]:
    return {"messages": [await model.ainvoke(state["messages"])]}


builder = StateGraph(MessagesState)
builder.add_node("chat", chat)
builder.add_node("tools", ToolNode([lookup]))
builder.add_edge(START, "chat")
builder.add_conditional_edges("chat", tools_condition)
builder.add_edge("tools", "chat")
graph = builder.compile()
