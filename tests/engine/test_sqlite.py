"""What only the SQLite store has to prove: the file's own constraints, and a database in
memory. (Several processes on one file: acceptance/test_sqlite_processes.py; its URLs:
unit/test_config.py.)"""

from __future__ import annotations

import sqlite3
from importlib import resources
from pathlib import Path

import pytest

from runplane import Runplane


async def _noop(ctx, input) -> None:
    return None


def _migration_files() -> list[str]:
    folder = resources.files("runplane.store") / "migrations" / "sqlite"
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".sql"))


async def test_the_database_itself_forbids_two_running_runs_on_one_thread(tmp_path: Path):
    url = f"sqlite:///{tmp_path}/db.sqlite"
    async with Runplane(url, worker=False) as app:
        app.workflow("wf")(_noop)
        thread = await app.threads.create()
        a = await app.runs.create(thread.thread_id, "wf")
        b = await app.runs.create(thread.thread_id, "wf")
    conn = sqlite3.connect(tmp_path / "db.sqlite")
    conn.execute("UPDATE runs SET status = 'running' WHERE run_id = ?", (a.run_id,))
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("UPDATE runs SET status = 'running' WHERE run_id = ?", (b.run_id,))
    conn.close()


async def test_memory_database_works_in_process():
    app = Runplane("sqlite:///:memory:")

    @app.workflow("hello")
    async def hello(ctx, input: dict) -> str:
        return await ctx.step("greet", lambda: f"hello {input['name']}")

    async with app:
        run = await app.runs.create(None, "hello", input={"name": "runplane"})
        assert await app.runs.join(run.run_id) == "hello runplane"
