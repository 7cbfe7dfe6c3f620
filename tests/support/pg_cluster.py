"""A PostgreSQL cluster of the test's own (initdb in a temporary folder, a free port), for
tests that stop, restart or cut the connections of their database server: never the shared
one.

``PG_BIN`` (default ``/usr/lib/postgresql/15/bin``, else ``RUNPLANE_TEST_PG_BIN``) holds
``initdb`` and ``pg_ctl``. As root they run as the ``postgres`` user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import asyncpg

from support import free_port

PG_BIN = Path(os.environ.get("RUNPLANE_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


def available() -> str | None:
    """Why a cluster cannot be started here, or None."""
    if not (PG_BIN / "initdb").exists():
        return f"no PostgreSQL server binaries in {PG_BIN} (set RUNPLANE_TEST_PG_BIN)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser: initdb refuses root"
    return None


class Cluster:
    """``start()``, ``stop()``, ``restart()`` the server; ``terminate_all()`` its sessions."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="runplane-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as_owner: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
            self._as_owner = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8")

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self._as_owner, str(PG_BIN / tool), *args], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                   "-c max_connections=200")
        self._run("pg_ctl", "-D", str(self.data), "-o", options,
                  "-l", str(self.folder / "server.log"), "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every session is cut, the server is away meanwhile."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "restart")

    async def terminate_all(self) -> int:
        """``pg_terminate_backend`` on every client session but this one; how many."""
        conn = await asyncpg.connect(self.url)
        try:
            return await conn.fetchval(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'")
        finally:
            await conn.close()

    def destroy(self) -> None:
        subprocess.run([*self._as_owner, str(PG_BIN / "pg_ctl"), "-D", str(self.data),
                        "-m", "immediate", "-w", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        shutil.rmtree(self.folder, ignore_errors=True)
