"""The lifecycle vocabulary is one table, consistent with itself and with every place that
speaks it: the stored event names, the status transitions, the events that end a run, the
stream's endings, the SQL that logs events, the cancel outcomes on the wire and in metrics.
No database: these hold the tables, the stores' tests hold the stores to them."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import REGISTRY
from pydantic import TypeAdapter

from runplane import metrics
from runplane.lifecycle import (
    ENDED_BY,
    ENDING_EVENTS,
    FAILURE_EVENTS,
    FINISH_EVENTS,
    RESERVED_PREFIXES,
    TRANSITIONS,
    EventName,
)
from runplane.models import FINISHED, SWEPT_OUTCOMES, CancelOutcome, Event, RunStatus
from runplane.server import wire
from runplane.server.streams import StreamView
from runplane.store import queries

#: The names as stored in every event log written so far: they never change.
STORED_NAMES = [
    "run:created", "run:start", "run:complete", "run:fail", "run:timeout", "run:cancel",
    "run:resume", "step:start", "step:complete", "step:fail", "step:cancel", "lease:lost",
]


def test_event_names_are_the_stored_strings() -> None:
    assert [name.value for name in EventName] == STORED_NAMES
    assert all(isinstance(name, str) and str(name) == name.value for name in EventName)


def test_every_run_event_and_only_those_change_the_status() -> None:
    assert set(TRANSITIONS) == {name for name in EventName if name.startswith("run:")}


def test_a_run_begins_with_run_created_and_no_other_event() -> None:
    firsts = [event for event, t in TRANSITIONS.items() if not t.sources]
    assert firsts == [EventName.RUN_CREATED]
    assert TRANSITIONS[EventName.RUN_CREATED].target is RunStatus.PENDING


def test_every_status_is_reached_and_none_moves_to_itself() -> None:
    assert {t.target for t in TRANSITIONS.values()} == set(RunStatus)
    for event, t in TRANSITIONS.items():
        assert t.target not in t.sources, event


def test_every_terminal_status_is_logged_by_exactly_one_event() -> None:
    for status in RunStatus:
        into = [event for event, t in TRANSITIONS.items() if t.target is status]
        if status.terminal:
            assert into == [ENDED_BY[status]], status
    assert set(ENDED_BY) == {s for s in RunStatus if s.terminal}


def test_ending_events_are_exactly_those_leading_to_a_terminal_status() -> None:
    assert ENDING_EVENTS == {e for e, t in TRANSITIONS.items() if t.target.terminal}
    assert set(FINISH_EVENTS) == FINISHED
    assert set(FINISH_EVENTS.values()) == ENDING_EVENTS - {EventName.RUN_CANCEL}
    assert FAILURE_EVENTS == {ENDED_BY[RunStatus.ERROR], ENDED_BY[RunStatus.TIMEOUT]}


def test_a_terminal_status_never_flips_to_another() -> None:
    """Contract line 3: only a resume leaves a terminal status, and only ``interrupted``."""
    for event, t in TRANSITIONS.items():
        left = {s for s in t.sources if s.terminal}
        if event is EventName.RUN_RESUME:
            assert left == {RunStatus.INTERRUPTED} and t.target is RunStatus.PENDING
        else:
            assert not left, event


def test_a_workflow_cannot_emit_a_lifecycle_name() -> None:
    assert RESERVED_PREFIXES == ("run:", "step:", "lease:")
    assert all(name.startswith(RESERVED_PREFIXES) for name in EventName)


@pytest.mark.parametrize("event", sorted(EventName))
def test_the_stream_ends_with_the_status_each_ending_event_logs(event: EventName) -> None:
    view = StreamView("r", ["values"])
    logged = Event("r", 1, str(event), {"error": "e", "output": None},
                   datetime(2026, 1, 1, tzinfo=UTC))
    parts = list(view.render(logged))
    ends = [data for name, data in parts if name == "end"]
    if event in ENDING_EVENTS:
        assert ends == [{"run_id": "r", "status": TRANSITIONS[event].target.value}]
    else:
        assert ends == []
    assert any(name == "error" for name, _ in parts) == (event in FAILURE_EVENTS)


def test_event_names_written_in_sql_text_are_lifecycle_names() -> None:
    sources = "".join(sql for dialect in ("sqlite", "postgres")
                      for sql in queries.load(dialect).values())
    written = set(re.findall(r"'((?:run|step|lease):[a-z_]+)'", sources))
    assert written and written <= set(EventName)


def test_cancel_outcomes_keep_their_wire_names() -> None:
    assert [o.value for o in CancelOutcome] == [
        "cancelled", "already_interrupted", "conflict", "not_found"]
    assert [o.count_key for o in SWEPT_OUTCOMES] == [
        "cancelled", "already_interrupted", "already_finished"]
    assert _documented(wire.BulkOutcomeName) == [o.value for o in CancelOutcome]
    assert _documented(wire.CancelOutcomeName) == ["cancelled", "already_interrupted"]


def _documented(name: Any) -> list[str]:
    """The values a wire name is validated against and documented with."""
    return TypeAdapter(name).json_schema()["enum"]


def test_a_cancel_of_a_finished_run_is_counted_as_conflict() -> None:
    def conflicts() -> float:
        return REGISTRY.get_sample_value("runplane_cancel_requests_total",
                                         {"outcome": "conflict"}) or 0.0

    before = conflicts()
    metrics.count_cancel(CancelOutcome.ALREADY_FINISHED)
    assert conflicts() == before + 1
