"""What the console's pages show, derived from runs, steps and event logs: a run's step
timeline (a workflow's steps, a graph's super-steps), its event log lines, its tree."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from runplane.lifecycle import EventName
from runplane.models import Event, Run, RunNode

#: How much of a value a page shows inline (the rest is cut, with a mark).
PREVIEW = 240


def preview(value: Any, limit: int = PREVIEW) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + " …"


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, default=str, ensure_ascii=False)


@dataclass
class StepBar:
    """One step of a run's timeline (a graph's: one node's update in a super-step)."""

    index: int
    name: str
    started: datetime | None
    ended: datetime | None = None
    #: running | completed | failed | cancelled
    state: str = "running"
    attempts: int = 1
    error: str | None = None

    @property
    def seconds(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return max(0.0, (self.ended - self.started).total_seconds())


@dataclass
class Timeline:
    steps: list[StepBar] = field(default_factory=list)
    start: datetime | None = None
    end: datetime | None = None

    def offset(self, at: datetime | None) -> float:
        """Where ``at`` falls on the run's time span, in percent."""
        if at is None or self.start is None:
            return 0.0
        span = self.span()
        return 0.0 if not span else 100.0 * (at - self.start).total_seconds() / span

    def width(self, bar: StepBar) -> float:
        span = self.span()
        end = bar.ended or self.end
        if not span or bar.started is None or end is None:
            return 100.0
        return max(0.5, 100.0 * (end - bar.started).total_seconds() / span)

    def span(self) -> float:
        if self.start is None or self.end is None:
            return 0.0
        return (self.end - self.start).total_seconds()


def timeline(run: Run, events: list[Event], now: datetime) -> Timeline:
    """The run's steps from its log: each ``step:start`` opens a bar that ``step:complete``,
    ``step:fail`` or ``step:cancel`` closes (a retried step: one bar, its attempts counted);
    a graph's ``updates`` are the nodes of its super-steps, each from the event before."""
    bars: dict[int, StepBar] = {}
    previous: datetime | None = None
    for event in events:
        name, data = event.event, event.data if isinstance(event.data, dict) else {}
        if name == EventName.STEP_START:
            index = int(data.get("index", len(bars)))
            bar = bars.get(index)
            if bar is None or bar.state == "completed":
                bars[index] = StepBar(index, str(data.get("name")), event.created_at)
            else:  # the same step again: a retry, or a resume after a cancel
                bar.attempts += 1
                bar.state, bar.ended, bar.started = "running", None, event.created_at
        elif name in (EventName.STEP_COMPLETE, EventName.STEP_FAIL, EventName.STEP_CANCEL):
            index = int(data.get("index", -1))
            bar = bars.get(index) or bars.setdefault(
                index, StepBar(index, str(data.get("name")), event.created_at))
            bar.ended = event.created_at
            bar.state = {EventName.STEP_COMPLETE: "completed", EventName.STEP_FAIL: "failed",
                         EventName.STEP_CANCEL: "cancelled"}[EventName(name)]
            bar.error = data.get("error")
        elif run.of_graph and name.split("|", 1)[0] == "updates" and isinstance(event.data,
                                                                                dict):
            for node in event.data:
                if node != "__interrupt__":
                    index = len(bars)
                    bars[index] = StepBar(index, node, previous or event.created_at,
                                          event.created_at, "completed")
        previous = event.created_at
    steps = sorted(bars.values(), key=lambda b: b.index)
    if not run.status.active:
        for bar in steps:  # a step still open when the run ended did not complete
            if bar.state == "running":
                bar.state, bar.ended = "cancelled", run.ended_at
    start = run.started_at or (events[0].created_at if events else None)
    end = run.ended_at or now
    return Timeline(steps, start, end)


@dataclass
class LogLine:
    seq: int
    at: datetime
    event: str
    summary: str


def log_line(event: Event) -> LogLine:
    return LogLine(event.seq, event.created_at, event.event, preview(event.data, 160))


def tree_rows(node: RunNode, depth: int = 0) -> list[tuple[int, RunNode]]:
    """The tree as rows, each with its depth, parents before children."""
    rows = [(depth, node)]
    for child in node.children:
        rows += tree_rows(child, depth + 1)
    return rows
