"""What only the SQLite store has to prove: the file's own constraints, several processes
sharing one file, and its URLs."""

from __future__ import annotations

import asyncio
import sqlite3
from importlib import resources
from pathlib import Path

import pytest

from runplane import Runplane
from runplane.store import open_store
from runplane.store.sqlite import sqlite_path

from support.processes import run_python


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


OPEN_AND_CREATE = """
import asyncio, sys
from runplane import Runplane
async def main():
    app = Runplane(sys.argv[1], worker=False)
    @app.workflow("wf")
    async def wf(ctx, input):
        return None
    async with app:
        await asyncio.gather(*(app.runs.create(None, "wf") for _ in range(100)))
    print("ok")
asyncio.run(main())
"""


async def test_processes_share_one_file_migrating_and_writing_at_once(tmp_path: Path):
    url = f"sqlite:///{tmp_path}/shared.db"
    outputs = await asyncio.gather(
        *(asyncio.to_thread(run_python, OPEN_AND_CREATE, url) for _ in range(4))
    )
    assert [o.strip() for o in outputs] == ["ok"] * 4
    conn = sqlite3.connect(tmp_path / "shared.db")
    assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 400
    applied = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
    assert applied == _migration_files()
    conn.close()


def test_sqlite_urls():
    assert sqlite_path("sqlite:///./runplane.db") == "./runplane.db"
    assert sqlite_path("sqlite:////abs/path.db") == "/abs/path.db"
    assert sqlite_path("sqlite:///:memory:") == ":memory:"
    with pytest.raises(ValueError, match="names no file"):
        sqlite_path("sqlite:///")
    with pytest.raises(ValueError, match="unsupported database URL scheme 'mysql'") as err:
        open_store("mysql://me:s3cret@localhost/db")
    assert "s3cret" not in str(err.value)


async def test_memory_database_works_in_process():
    app = Runplane("sqlite:///:memory:")

    @app.workflow("hello")
    async def hello(ctx, input: dict) -> str:
        return await ctx.step("greet", lambda: f"hello {input['name']}")

    async with app:
        run = await app.runs.create(None, "hello", input={"name": "runplane"})
        assert await app.runs.join(run.run_id) == "hello runplane"


def test_default_database_comes_from_the_environment(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("RUNPLANE_DATABASE_URL", f"sqlite:///{tmp_path}/env.db")
    monkeypatch.setenv("RUNPLANE_CONCURRENCY", "3")
    app = Runplane()
    assert app.settings.database_url == f"sqlite:///{tmp_path}/env.db"
    assert app.settings.concurrency == 3
    assert Runplane(concurrency=5).settings.concurrency == 5
    monkeypatch.delenv("RUNPLANE_DATABASE_URL")
    assert Runplane().settings.database_url == "sqlite:///./runplane.db"


def test_bad_environment_values_are_named(monkeypatch):
    monkeypatch.setenv("RUNPLANE_POLL_INTERVAL", "fast")
    with pytest.raises(ValueError, match="RUNPLANE_POLL_INTERVAL='fast' is not a valid float"):
        Runplane()


def test_reconfigure_overrides_settings_before_open():
    app = Runplane("sqlite:///:memory:")
    app.reconfigure(database_url="sqlite:///other.db", concurrency=3, shutdown_grace=1.5)
    assert app.settings.database_url == "sqlite:///other.db"
    assert app.settings.concurrency == 3 and app.shutdown_grace == 1.5
    with pytest.raises(TypeError, match="unknown setting"):
        app.reconfigure(bogus=1)
