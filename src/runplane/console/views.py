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


def graph_timeline(run: Run, states: list[dict[str, Any]], now: datetime) -> Timeline:
    """A graph run's super-steps from its checkpoints (oldest first, as the API shows a
    state): the nodes a state says run next ran from that checkpoint to the following one;
    the last state's, if any, are still running (or were stopped with the run)."""
    bars: list[StepBar] = []
    for k, state in enumerate(states):
        started = datetime.fromisoformat(state["created_at"])
        following = states[k + 1] if k + 1 < len(states) else None
        ended = None if following is None else datetime.fromisoformat(following["created_at"])
        for node in state.get("next") or ():
            if node == "__start__":  # the input's own step, not a node of the graph
                continue
            bar = StepBar(len(bars), node, started, ended, "completed")
            if following is None:
                waiting = any(t.get("interrupts") for t in state.get("tasks") or ())
                bar.state = "running" if run.status.active else \
                    "waiting" if waiting or run.status.value == "success" else "cancelled"
                bar.ended = None if run.status.active else run.ended_at
            bars.append(bar)
    start = run.started_at or (bars[0].started if bars else None)
    return Timeline(bars, start, run.ended_at or now)


def timeline(run: Run, events: list[Event], now: datetime) -> Timeline:
    """A workflow run's steps from its log: each ``step:start`` opens a bar that
    ``step:complete``, ``step:fail`` or ``step:cancel`` closes (a retried step: one bar,
    its attempts counted)."""
    bars: dict[int, StepBar] = {}
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


@dataclass
class DrawnNode:
    id: str
    label: str
    x: float
    y: float
    width: float


@dataclass
class DrawnEdge:
    source: str
    target: str
    path: str
    conditional: bool


@dataclass
class Drawing:
    """A graph laid out in rows: each node one row below the first node that leads to it
    (from ``__start__``), ``__end__`` last; an edge down past a row curves round its left,
    an edge back up round its right, so that no edge runs under a node."""

    width: float
    height: float
    nodes: list[DrawnNode]
    edges: list[DrawnEdge]


NODE_HEIGHT, ROW, GAP, CHAR = 30.0, 70.0, 24.0, 7.5


def draw(graph: dict[str, Any]) -> Drawing:
    nodes = {n["id"]: n for n in graph.get("nodes", [])}
    after: dict[str, list[str]] = {n: [] for n in nodes}
    for edge in graph.get("edges", []):
        if edge["source"] in after and edge["target"] in nodes:
            after[edge["source"]].append(edge["target"])
    level: dict[str, int] = {}
    frontier = ["__start__"] if "__start__" in nodes else list(nodes)[:1]
    for node in frontier:
        level[node] = 0
    while frontier:
        nxt = []
        for node in frontier:
            for target in after[node]:
                if target not in level and target != "__end__":
                    level[target] = level[node] + 1
                    nxt.append(target)
        frontier = nxt
    last = max(level.values(), default=0)
    for node in nodes:  # unreachable ones, then the end, below the rest
        if node not in level and node != "__end__":
            last += 1
            level[node] = last
    if "__end__" in nodes:
        level["__end__"] = last + 1
    rows: dict[int, list[str]] = {}
    for node, at in level.items():
        rows.setdefault(at, []).append(node)
    widths = {n: max(60.0, CHAR * len(_label(nodes[n])) + 20) for n in nodes}
    width = max((sum(widths[n] for n in row) + GAP * (len(row) + 1) for row in rows.values()),
                default=200.0) + 40
    placed: dict[str, DrawnNode] = {}
    for at, row in sorted(rows.items()):
        x = (width - sum(widths[n] for n in row) - GAP * (len(row) - 1)) / 2
        for node in row:
            placed[node] = DrawnNode(node, _label(nodes[node]), x, 20 + at * ROW, widths[node])
            x += widths[node] + GAP
    edges = []
    for edge in graph.get("edges", []):
        a, b = placed.get(edge["source"]), placed.get(edge["target"])
        if a is None or b is None:
            continue
        x1, y1 = a.x + a.width / 2, a.y + NODE_HEIGHT
        x2, y2 = b.x + b.width / 2, b.y
        if b.y > a.y + ROW:  # past a row between: around its nodes, on the left
            side = min(a.x, b.x) - 30
            path = (f"M{a.x:.0f},{a.y + NODE_HEIGHT / 2:.0f} C{side:.0f},{a.y:.0f} "
                    f"{side:.0f},{b.y + NODE_HEIGHT:.0f} {b.x:.0f},{b.y + NODE_HEIGHT / 2:.0f}")
        elif b.y > a.y:
            path = f"M{x1:.0f},{y1:.0f} L{x2:.0f},{y2:.0f}"
        else:  # back up: around the right of both
            side = max(a.x + a.width, b.x + b.width) + 30
            path = (f"M{a.x + a.width:.0f},{a.y + NODE_HEIGHT / 2:.0f} C{side:.0f},"
                    f"{a.y:.0f} {side:.0f},{b.y + NODE_HEIGHT:.0f} {b.x + b.width:.0f},"
                    f"{b.y + NODE_HEIGHT / 2:.0f}")
        edges.append(DrawnEdge(edge["source"], edge["target"], path,
                               bool(edge.get("conditional"))))
    height = 40 + (max(level.values(), default=0) + 1) * ROW
    return Drawing(width + 60, height, list(placed.values()), edges)


def _label(node: dict[str, Any]) -> str:
    data = node.get("data")
    name = data.get("name") if isinstance(data, dict) else data
    return str(name or node["id"])


def metric_totals() -> dict[str, float]:
    """This process's running totals behind ``/metrics``: runs finished (every status),
    cancels whose stop was timed, and their seconds; the operations page charts their
    growth between two samples."""
    from runplane import metrics

    totals = {"finished": 0.0, "cancels": 0.0, "cancel_seconds": 0.0}
    for family in metrics.RUNS_FINISHED.collect():
        totals["finished"] += sum(s.value for s in family.samples if s.name.endswith("_total"))
    for family in metrics.CANCEL_LATENCY.collect():
        for sample in family.samples:
            if sample.name.endswith("_count"):
                totals["cancels"] += sample.value
            elif sample.name.endswith("_sum"):
                totals["cancel_seconds"] += sample.value
    return totals


def by_worker(running: list[Run]) -> dict[str, list[Run]]:
    """Running runs by the worker holding their lease, the soonest expiring first."""
    workers: dict[str, list[Run]] = {}
    for run in sorted(running, key=lambda r: r.lease_expires_at or r.updated_at):
        workers.setdefault(run.lease_owner or "(no worker)", []).append(run)
    return workers
