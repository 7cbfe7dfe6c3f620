"""Prometheus metrics of the cancellation contract (served on ``/metrics`` by the HTTP API)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from runplane.models import CancelOutcome

CANCEL_REQUESTS = Counter(
    "runplane_cancel_requests",
    "Cancel requests by outcome: cancelled (this call made the transition), "
    "already_interrupted (idempotent repeat), conflict (run already finished), not_found.",
    ["outcome"],
)
REFUSED_WRITES = Counter(
    "runplane_refused_writes",
    "Worker writes refused by the fence (status/lease_generation changed underneath).",
    ["kind"],
)
LEASE_LOST = Counter(
    "runplane_lease_lost", "Runs a worker stopped because another holder took its lease."
)
RUNS_FINISHED = Counter(
    "runplane_runs_finished", "Runs that reached a terminal status.", ["status"]
)
CANCEL_LATENCY = Histogram(
    "runplane_cancel_latency_seconds",
    "Time from a cancel being recorded to the worker having stopped the run's task.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def count_cancel(outcome: CancelOutcome) -> None:
    """Count one run's cancel, labelled by the outcome's value (``conflict``: the run had
    already finished)."""
    CANCEL_REQUESTS.labels(outcome.value).inc()
