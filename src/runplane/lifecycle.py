"""The run lifecycle: the events a run's log records, and which of them moves a run from
which status to which.

The names are the strings stored in the event log (and streamed, and shown by the CLI),
byte for byte: a member is a ``str``, so it goes into SQL parameters and JSON unchanged.
Every status change a store makes is logged, in the same transaction, by exactly one of
the events in :data:`TRANSITIONS`; the other events (a step's, a lost lease) change no
status. Replaying a log's transitions from ``run:created`` on gives the run's status: the
property tests of the stores hold them to this table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from runplane.models import FINISHED, RunStatus


class EventName(StrEnum):
    RUN_CREATED = "run:created"
    RUN_START = "run:start"
    RUN_COMPLETE = "run:complete"
    RUN_FAIL = "run:fail"
    RUN_TIMEOUT = "run:timeout"
    RUN_CANCEL = "run:cancel"
    RUN_RESUME = "run:resume"
    STEP_START = "step:start"
    STEP_COMPLETE = "step:complete"
    STEP_FAIL = "step:fail"
    STEP_CANCEL = "step:cancel"
    LEASE_LOST = "lease:lost"


@dataclass(frozen=True, slots=True)
class Transition:
    """An event that changes a run's status: from any of ``sources`` (none: the run's first
    event) to ``target``."""

    sources: frozenset[RunStatus]
    target: RunStatus


def _moves(sources: set[RunStatus], target: RunStatus) -> Transition:
    return Transition(frozenset(sources), target)


#: Which event moves a run from which status to which; no other status change exists.
TRANSITIONS: Mapping[EventName, Transition] = MappingProxyType({
    EventName.RUN_CREATED: _moves(set(), RunStatus.PENDING),
    EventName.RUN_START: _moves({RunStatus.PENDING}, RunStatus.RUNNING),
    EventName.RUN_COMPLETE: _moves({RunStatus.RUNNING}, RunStatus.SUCCESS),
    # pending: a run whose stored row cannot be claimed fails without starting
    EventName.RUN_FAIL: _moves({RunStatus.PENDING, RunStatus.RUNNING}, RunStatus.ERROR),
    EventName.RUN_TIMEOUT: _moves({RunStatus.RUNNING}, RunStatus.TIMEOUT),
    EventName.RUN_CANCEL: _moves({RunStatus.PENDING, RunStatus.RUNNING}, RunStatus.INTERRUPTED),
    # interrupted: resumed; running: given back by its worker, or reaped
    EventName.RUN_RESUME: _moves({RunStatus.INTERRUPTED, RunStatus.RUNNING}, RunStatus.PENDING),
})

#: The event each terminal status is logged with.
ENDED_BY: Mapping[RunStatus, EventName] = MappingProxyType(
    {t.target: event for event, t in TRANSITIONS.items() if t.target.terminal})
#: Events after which a run is over, unless it is resumed later.
ENDING_EVENTS = frozenset(ENDED_BY.values())
#: The events a worker's finish logs, by the status it finishes with.
FINISH_EVENTS: Mapping[RunStatus, EventName] = MappingProxyType(
    {status: ENDED_BY[status] for status in RunStatus if status in FINISHED})
#: Events that end a run because it failed (``error`` or ``timeout``).
FAILURE_EVENTS = frozenset(ENDED_BY[s] for s in (RunStatus.ERROR, RunStatus.TIMEOUT))
#: The prefixes of the lifecycle's names: a workflow's own events may not start with them.
RESERVED_PREFIXES = tuple(dict.fromkeys(f"{name.partition(':')[0]}:" for name in EventName))
