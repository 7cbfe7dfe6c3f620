"""Run a ``runplane`` command under cProfile, profiling only between two signals.

    python benchmarks/peers/profiled.py OUT.prof serve --config ...

SIGUSR1 starts the profile, SIGUSR2 stops it and writes ``OUT.prof`` (read it with
``python -m pstats OUT.prof``). langgraph_serve.py ``--profile DIR`` sends them around the
timed batch, so that start-up and warm-up stay out. Only the main thread is profiled: the
event loop, where the server's Python work runs.
"""

from __future__ import annotations

import cProfile
import runpy
import signal
import sys


def main() -> None:
    out, *command = sys.argv[1:]
    profile = cProfile.Profile()
    signal.signal(signal.SIGUSR1, lambda *_: profile.enable())

    def stop(*_: object) -> None:
        profile.disable()
        profile.dump_stats(out)

    signal.signal(signal.SIGUSR2, stop)
    sys.argv = ["runplane", *command]
    runpy.run_module("runplane.cli", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
