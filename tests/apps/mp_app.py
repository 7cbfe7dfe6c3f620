"""The app of the PostgreSQL scale-out acceptance test (tests/acceptance/test_multiprocess.py).

Workers run it as ``runplane worker mp_app:app --database URL ...`` from this folder.
Every step execution is appended, before the step's work starts, to a file of the
worker process's own (``$MP_EXECUTIONS_DIR/<pid>.log``, one JSON object a line), so the
test can tell which attempt (lease generation) executed which step, even of a worker
killed with SIGKILL. A step returns the generation that executed it: the stored result
says which attempt stored it.

Clients run ``python -c "import mp_app; mp_app.client_main()" URL NAME RUNS``: they
create RUNS runs, print them as one JSON line, then read one JSON line from stdin (the
run ids of the cancel storm), cancel each of those runs ``CANCELS_PER_CLIENT`` times at
once and print every answer as one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from runplane import Context, RunConflict, Runplane

STEPS = ("plan", "search", "write", "review")
#: What each step "works": long enough for runs to overlap and for cancels and a kill
#: to land mid-step.
STEP_SECONDS = 0.05
#: Each client puts a run on one of its threads for these values of ``n % 5``.
THREAD_SLOTS = (1, 3)
THREADS_PER_CLIENT = 4
CANCELS_PER_CLIENT = 20
#: Cancels of one run that follow each other in a client's storm (see ``_client``).
CANCEL_BURST = 4
EXECUTIONS_DIR = "MP_EXECUTIONS_DIR"


def build(database: str | None = None, **kwargs: Any) -> Runplane:
    rp = Runplane(database, **kwargs)

    @rp.workflow("multistep")
    async def multistep(ctx: Context, input: dict) -> list[dict[str, Any]]:
        return [
            await ctx.step(name, _execute, ctx.run_id, index, name, ctx.attempt,
                           ctx.lease.generation, rp.settings.worker_id)
            for index, name in enumerate(STEPS)
        ]

    return rp


async def _execute(
    run_id: str, index: int, name: str, attempt: int, generation: int, worker_id: str
) -> dict[str, Any]:
    record_execution({"run_id": run_id, "idx": index, "step": name, "attempt": attempt,
                      "gen": generation, "pid": os.getpid(), "worker": worker_id,
                      "at": time.time()})
    await asyncio.sleep(STEP_SECONDS)
    return {"gen": generation, "pid": os.getpid()}


def record_execution(entry: dict[str, Any]) -> None:
    """One ``write`` to an append-only file: in the kernel before the step goes on, so it
    survives a SIGKILL of this process."""
    folder = os.environ[EXECUTIONS_DIR]
    fd = os.open(Path(folder) / f"{os.getpid()}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        os.write(fd, (json.dumps(entry) + "\n").encode())
    finally:
        os.close(fd)


def executions(folder: Path) -> list[dict[str, Any]]:
    """Every recorded step execution of every worker process."""
    return [json.loads(line) for path in sorted(folder.glob("*.log"))
            for line in path.read_text().splitlines() if line]


# --- client processes ---------------------------------------------------------------------


def client_main() -> None:
    url, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    asyncio.run(_client(url, name, count))


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def _client(url: str, name: str, count: int) -> None:
    async with build(url, worker=False) as rp:
        threads = [
            (await rp.threads.create(metadata={"client": name, "n": k})).thread_id
            for k in range(THREADS_PER_CLIENT)
        ]
        created = []
        for n in range(count):
            thread_id = None
            if n % 5 in THREAD_SLOTS:
                thread_id = threads[(n // 5 * len(THREAD_SLOTS)
                                     + THREAD_SLOTS.index(n % 5)) % len(threads)]
            run = await rp.runs.create(thread_id, "multistep", input={"client": name, "n": n})
            created.append({"run_id": run.run_id, "thread_id": thread_id})
        _say({"client": name, "created": created})

        line = await asyncio.to_thread(sys.stdin.readline)
        storm: list[str] = json.loads(line)["storm"]
        started = time.time()

        async def cancel(run_id: str) -> dict[str, Any]:
            try:
                res = await rp.runs.cancel(run_id, reason=f"storm from {name}",
                                           requested_by=name)
            except RunConflict as exc:
                return {"run_id": run_id, "outcome": "conflict", "status": exc.status,
                        "answered_at": time.time()}
            except Exception as exc:
                return {"run_id": run_id, "outcome": "error", "error": repr(exc),
                        "answered_at": time.time()}
            at = res.run.cancel_requested_at
            return {"run_id": run_id, "outcome": res.outcome, "status": res.status.value,
                    "reason": res.run.cancel_reason,
                    "requested_at": None if at is None else at.timestamp(),
                    "answered_at": time.time()}

        # All at once, in rounds over the storm's runs: each round brings a burst of
        # cancels for each run, so every run meets its first cancels (from both clients,
        # at the same moment) early, while it may still be pending or running.
        answers = await asyncio.gather(*(
            cancel(run_id) for _ in range(CANCELS_PER_CLIENT // CANCEL_BURST)
            for run_id in storm for _ in range(CANCEL_BURST)))
        _say({"client": name, "answers": answers, "started": started})


#: What ``runplane worker mp_app:app`` runs (its database comes from ``--database``).
app = build()
