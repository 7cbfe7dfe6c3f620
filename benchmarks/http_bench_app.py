"""The app ``benchmarks/http_throughput.py`` serves:

    PYTHONPATH=benchmarks python -m runplane.cli serve http_bench_app:app --database URL

It registers ``three_steps`` (three no-op async steps, returns ``{"ok": True}``), the very
workflow of ``throughput.py``, so the HTTP figures compare with the in-process ones. The
database and the worker's concurrency come from ``serve``'s options.
"""

from __future__ import annotations

from bench_app import three_steps
from runplane import Runplane

app = Runplane()
app.workflow("three_steps")(three_steps)
