"""schemathesis hooks of test_fuzz.py (loaded through ``SCHEMATHESIS_HOOKS``).

A delayed run (``after_seconds``) is pending until its time, and a ``join`` or ``wait``
on it waits as long: the fuzzer's delays are capped at a second, so that its calls
answer within the request timeout. The demo's research agent takes 3 s a step unless its
input says otherwise: its fuzzed runs take 50 ms a step (one ``wait`` on one took 24 s,
a fifth of the test). Invalid delays (negative, too large for the document) are left as
generated, for the server to refuse.
"""

from __future__ import annotations

from typing import Any

import schemathesis

#: The longest delay a fuzzed run gets, in seconds.
MAX_DELAY = 1.0
#: The research agent's step time in a fuzzed run, in seconds.
STEP_SECONDS = 0.05


@schemathesis.hook
def map_body(context: Any, body: Any) -> Any:
    for run in body if isinstance(body, list) else [body]:
        if isinstance(run, dict) and run.get("assistant_id") == "research_agent" \
                and isinstance(run.get("input"), dict | None):
            run["input"] = {**(run.get("input") or {}), "step_seconds": STEP_SECONDS}
        delay = run.get("after_seconds") if isinstance(run, dict) else None
        if isinstance(delay, int | float) and not isinstance(delay, bool) and \
                MAX_DELAY < delay <= 366 * 24 * 3600:
            run["after_seconds"] = MAX_DELAY
    return body
