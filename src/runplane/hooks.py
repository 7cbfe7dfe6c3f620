"""Pause points between two writes of the worker, for deterministic race tests.

Each hook is an optional ``async`` callable. The worker awaits it at exactly
one place and lets it finish even if the run is cancelled meanwhile, so a
test can land a cancel (or a lease takeover) in the gap and then let the
worker's next write meet the fence.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from runplane.models import RunStatus


@dataclass(slots=True)
class Hooks:
    #: ``(run_id)``: the run was claimed; the workflow has not started.
    after_claim: Callable[[str], Awaitable[None]] | None = None
    #: ``(run_id, index, name)``: the step's function returned; its result is not written yet.
    after_step_fn: Callable[[str, int, str], Awaitable[None]] | None = None
    #: ``(run_id, status)``: the workflow ended; the terminal write is not done yet.
    before_finish: Callable[[str, RunStatus], Awaitable[None]] | None = None
