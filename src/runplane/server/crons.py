"""Crons: ``/runs/crons`` and ``/threads/{id}/runs/crons`` (see ``RunService.create_cron``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from runplane.server.deps import Service, Who
from runplane.server.wire import (
    CronAnswer,
    CronBody,
    CronCount,
    CronCreate,
    CronId,
    CronSearch,
    SelectedCronAnswer,
    ThreadId,
    answers,
    cron_body,
    selected,
)
from runplane.service import RunService

router = APIRouter(tags=["crons"])

async def _create(service: RunService, caller: Any, thread_id: str | None,
                  body: CronCreate) -> dict[str, Any]:
    created = await service.create_cron(
        body.assistant_id, schedule=body.schedule, thread_id=thread_id,
        multitask_strategy=body.multitask_strategy, end_time=body.end_time,
        enabled=True if body.enabled is None else body.enabled, caller=caller,
        **body.runs())
    return cron_body(created)


@router.post("/runs/crons", **answers(CronAnswer, 400, 404, 413))
async def create(service: Service, caller: Who, body: CronCreate) -> dict[str, Any]:
    """Each time of ``schedule`` (UTC unless ``timezone``), a run of the assistant on a
    thread of its own (a graph's) or thread-less (a workflow's)."""
    return await _create(service, caller, None, body)


@router.post("/threads/{thread_id}/runs/crons", **answers(CronAnswer, 400, 404, 413))
async def create_for_thread(service: Service, caller: Who, thread_id: ThreadId,
                            body: CronCreate) -> dict[str, Any]:
    """Each time of ``schedule``, a run of the assistant on this thread."""
    return await _create(service, caller, thread_id, body)


@router.patch("/runs/crons/{cron_id}", **answers(CronAnswer, 400, 404, 413))
async def update(service: Service, caller: Who, cron_id: CronId, body: CronBody
                 ) -> dict[str, Any]:
    """What is given replaces the cron's (``end_time: null`` clears its end)."""
    changes: dict[str, Any] = body.runs()
    if "end_time" in body.model_fields_set:  # null: no end any more
        changes["end_time"] = body.end_time
    updated = await service.update_cron(cron_id, schedule=body.schedule,
                                        enabled=body.enabled, caller=caller, **changes)
    return cron_body(updated)


@router.delete("/runs/crons/{cron_id}", **answers(None, 404, status=204))
async def delete(service: Service, caller: Who, cron_id: CronId) -> Response:
    """Its runs are kept."""
    await service.delete_cron(cron_id, caller=caller)
    return Response(status_code=204)


@router.post("/runs/crons/search", **answers(list[CronAnswer | SelectedCronAnswer], 400, 413))
async def search(service: Service, caller: Who, query: CronSearch) -> list[dict[str, Any]]:
    found = await service.search_crons(
        assistant_id=query.assistant_id, thread_id=query.thread_id, enabled=query.enabled,
        metadata=query.metadata, limit=query.limit, offset=query.offset,
        sort_by=query.sort_by, sort_order=query.sort_order, caller=caller)
    return selected([cron_body(c) for c in found], query.select)


@router.post("/runs/crons/count", **answers(int, 400, 413))
async def count(service: Service, caller: Who, query: CronCount) -> int:
    return await service.count_crons(assistant_id=query.assistant_id,
                                     thread_id=query.thread_id, metadata=query.metadata,
                                     caller=caller)
