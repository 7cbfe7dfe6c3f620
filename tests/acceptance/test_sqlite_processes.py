"""Several processes on one SQLite file: they migrate it and write to it at once, and each
write lands once."""

from __future__ import annotations

import asyncio
import sqlite3
from importlib import resources
from pathlib import Path

from support.processes import run_python


def _migration_files() -> list[str]:
    folder = resources.files("runplane.store") / "migrations" / "sqlite"
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".sql"))


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
