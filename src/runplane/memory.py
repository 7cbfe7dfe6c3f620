"""Long-term memory: LangGraph's ``BaseStore`` over runplane's store.

Items are JSON objects under a namespace (a path of labels) and a key, kept in the
database of the app (``/store/items`` over HTTP, ``ctx.store`` in a workflow,
``get_store()`` or ``runtime.store`` in a graph's node). Each owner has a space of its own:
an item belongs to the API key's owner that wrote it, and a run reads and writes its own
owner's (one shared space without keys). The rules (namespaces, filters, time to live) are
the service's (``RunService.put_item`` and the rest); this module adapts them to LangGraph's
batch of operations.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
)

if TYPE_CHECKING:
    from runplane.models import Caller, StoredItem
    from runplane.service import RunService


class OwnersStore(BaseStore):
    """The store as one owner sees it (``caller``; None: the shared space), for graphs and
    workflows run by this process's worker or called from its event loop."""

    supports_ttl = True

    def __init__(self, service: RunService, caller: Caller | None,
                 loop: asyncio.AbstractEventLoop) -> None:
        self._service = service
        self._caller = caller
        self._loop = loop

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        return [await self._one(op) for op in ops]

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """For a sync node (LangGraph runs those in threads): the batch runs on the loop."""
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # a thread of its own, as it should be
            running = None
        if running is self._loop:
            raise RuntimeError("a sync call of the store from its own event loop would block "
                               "it: use the async methods (aget, aput, asearch, ...)")
        return asyncio.run_coroutine_threadsafe(self.abatch(list(ops)), self._loop).result()

    async def _one(self, op: Op) -> Result:
        service, caller = self._service, self._caller
        if isinstance(op, GetOp):
            item = await service.get_item(op.namespace, op.key, refresh_ttl=op.refresh_ttl,
                                          caller=caller)
            return None if item is None else _item(item)
        if isinstance(op, PutOp):
            if op.value is None:
                await service.delete_item(op.namespace, op.key, caller=caller)
            else:
                await service.put_item(op.namespace, op.key, dict(op.value), ttl=op.ttl,
                                       index=op.index, caller=caller)
            return None
        if isinstance(op, SearchOp):
            found = await service.search_items(
                op.namespace_prefix, filter=op.filter, limit=op.limit, offset=op.offset,
                query=op.query, refresh_ttl=op.refresh_ttl, caller=caller)
            return [SearchItem(namespace=i.namespace, key=i.key, value=i.value,
                               created_at=i.created_at, updated_at=i.updated_at)
                    for i in found]
        if isinstance(op, ListNamespacesOp):
            conditions: dict[str, Any] = {c.match_type: c.path
                                          for c in op.match_conditions or ()}
            return await service.list_namespaces(
                prefix=conditions.get("prefix"), suffix=conditions.get("suffix"),
                max_depth=op.max_depth, limit=op.limit, offset=op.offset, caller=caller)
        raise TypeError(f"unknown store operation {type(op).__name__}")


def _item(found: StoredItem) -> Item:
    return Item(namespace=found.namespace, key=found.key, value=found.value,
                created_at=found.created_at, updated_at=found.updated_at)
