"""``/store``: the long-term memory store (``runplane.memory``), the caller's space of it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from runplane.server.deps import Service, Who
from runplane.server.wire import (
    ItemAnswer,
    ItemKey,
    ItemPut,
    ItemsAnswer,
    ItemSearch,
    NamespacesAnswer,
    NamespaceSearch,
    answers,
    item_body,
)

router = APIRouter(prefix="/store", tags=["store"])


@router.put("/items", **answers(None, 400, 413, status=204))
async def put(service: Service, caller: Who, body: ItemPut) -> Response:
    """Store (or replace) an item, for ``ttl`` minutes if given. ``index`` has no effect:
    no embedding index is kept."""
    await service.put_item(body.namespace, body.key, body.value, ttl=body.ttl,
                           index=body.index, caller=caller)
    return Response(status_code=204)


@router.get("/items", **answers(ItemAnswer | None))
async def get(service: Service, caller: Who, key: Annotated[str, Query(max_length=256)],
              namespace: Annotated[str, Query(max_length=4096)] = "",
              refresh_ttl: bool | None = None) -> dict[str, Any] | None:
    """The item (``namespace``: its labels joined by '.'), or null."""
    found = await service.get_item(namespace.split(".") if namespace else [], key,
                                   refresh_ttl=refresh_ttl, caller=caller)
    return None if found is None else item_body(found)


@router.delete("/items", **answers(None, 400, 413, status=204))
async def delete(service: Service, caller: Who, body: ItemKey) -> Response:
    await service.delete_item(body.namespace, body.key, caller=caller)
    return Response(status_code=204)


@router.post("/items/search", **answers(ItemsAnswer, 400, 413))
async def search(service: Service, caller: Who, body: ItemSearch) -> dict[str, Any]:
    """Most recently updated first; ``query`` (semantic search) is refused: no embedding
    index is kept."""
    found = await service.search_items(
        body.namespace_prefix or [], filter=body.filter, limit=body.limit, offset=body.offset,
        query=body.query, refresh_ttl=body.refresh_ttl, caller=caller)
    return {"items": [item_body(i) for i in found]}


@router.post("/namespaces", **answers(NamespacesAnswer, 400, 413))
async def namespaces(service: Service, caller: Who, body: NamespaceSearch) -> dict[str, Any]:
    found = await service.list_namespaces(prefix=body.prefix, suffix=body.suffix,
                                          max_depth=body.max_depth, limit=body.limit,
                                          offset=body.offset, caller=caller)
    return {"namespaces": [list(n) for n in found]}
