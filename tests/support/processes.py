"""Real processes in tests, one way: start one with its environment, wait until it is ready
by a condition (it answers ``/ok``, it printed a line), stop it gracefully (SIGTERM, then
SIGKILL), and show what it printed when a test fails.

Every process writes stdout and stderr to a log file of its own, read back by ``output()``
for assertions and failure messages; a client process may keep stdout as a pipe for its
answers (``pipe=True``, which also gives it a stdin pipe).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from support import APPS, free_port

CLI = (sys.executable, "-m", "runplane.cli")
#: How much of a process's output a failure message shows (its end).
SHOWN = 20_000
T = TypeVar("T")


def child_env(extra: Mapping[str, str] | None = None, *, apps_on_path: bool = True
              ) -> dict[str, str]:
    """The test's environment for a child: the apps folder on PYTHONPATH, or no PYTHONPATH
    at all for a child that must find its app in its working directory."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if apps_on_path:
        env["PYTHONPATH"] = str(APPS)
    return {**env, **(extra or {})}


class Process:
    """A child process a test started, its output in ``log``."""

    def __init__(self, args: Sequence[str], log: Path, *, env: Mapping[str, str] | None = None,
                 cwd: Path = APPS, pipe: bool = False) -> None:
        self.name = log.stem
        self.log = log
        with log.open("ab") as out:  # the child keeps its own copy of the descriptor
            self.popen = subprocess.Popen(
                list(args), cwd=cwd, env=dict(env) if env is not None else child_env(),
                stdin=subprocess.PIPE if pipe else subprocess.DEVNULL,
                stdout=subprocess.PIPE if pipe else out, stderr=out)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        """None while it runs."""
        return self.popen.poll()

    def output(self, start: int = 0) -> str:
        """What it printed from byte ``start`` on."""
        data = self.log.read_bytes()[start:] if self.log.exists() else b""
        return data.decode(errors="replace")

    def tail(self, start: int = 0) -> str:
        """The end of ``output(start)``, short enough for a failure message."""
        text = self.output(start)
        return text if len(text) <= SHOWN else "...\n" + text[-SHOWN:]

    def output_size(self) -> int:
        return self.log.stat().st_size if self.log.exists() else 0

    def describe(self, what: str) -> str:
        code = self.popen.poll()
        state = "running" if code is None else f"exit {code}"
        return f"{self.name} (pid {self.pid}, {state}) {what}:\n{self.tail()}"

    async def printed(self, text: str, timeout: float = 10.0) -> str:
        """The first line of its output holding ``text``, once it is there; an AssertionError
        with the output if the process ends without one or ``timeout`` passes."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            ended = self.popen.poll() is not None  # before reading: all its output is there
            found = next((line for line in self.output().splitlines() if text in line), None)
            if found is not None:
                return found
            if ended:
                raise AssertionError(self.describe(f"ended without printing {text!r}"))
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(self.describe(f"printed no {text!r} within {timeout}s"))
            await asyncio.sleep(0.01)

    def wait_ready(self, ready: Callable[[], T], *, timeout: float = 30.0,
                   what: str = "ready") -> T:
        """Poll ``ready`` until it gives something truthy, failing with the output if the
        process ends first or ``timeout`` passes (a condition, not a delay)."""
        deadline = time.monotonic() + timeout
        while True:
            ended = self.popen.poll() is not None
            value = ready()
            if value:
                return value
            if ended:
                raise AssertionError(self.describe(f"ended before it was {what}"))
            if time.monotonic() > deadline:
                raise AssertionError(self.describe(f"not {what} within {timeout}s"))
            time.sleep(0.05)

    async def ended(self, timeout: float) -> int:
        """Its exit code once it ended; an AssertionError with its output if it still runs
        after ``timeout``."""
        deadline = asyncio.get_running_loop().time() + timeout
        while (code := self.popen.poll()) is None:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(self.describe(f"still running after {timeout}s"))
            await asyncio.sleep(0.02)
        return code

    def send_signal(self, sig: signal.Signals) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then SIGKILL if it has not ended within ``timeout``: its exit code."""
        self.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return self.kill()

    def kill(self) -> int:
        self.send_signal(signal.SIGKILL)
        code = self.popen.wait()
        for pipe in (self.popen.stdin, self.popen.stdout):
            if pipe is not None:
                pipe.close()
        return code


@dataclass
class Server:
    """A ``runplane serve`` process answering at ``url``."""

    url: str
    process: Process


def answers_ok(url: str) -> Callable[[], bool]:
    """A readiness condition: the server at ``url`` answers ``GET /ok`` with 200."""

    def check() -> bool:
        with contextlib.suppress(httpx.TransportError):
            return httpx.get(f"{url}/ok", timeout=2.0).status_code == 200
        return False

    return check


class Processes:
    """The processes a test or fixture started, stopped together when it is done (SIGTERM to
    all, then SIGKILL to those still running), their output printed for the test's report."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.started: dict[str, Process] = {}

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop_all()

    def __getitem__(self, name: str) -> Process:
        return self.started[name]

    def start(self, name: str, *args: str, **options: Any) -> Process:
        """Start ``args`` (a whole command) as ``name``, its output in ``name.log``."""
        assert name not in self.started, f"{name} started twice"
        process = Process(args, self.folder / f"{name}.log", **options)
        self.started[name] = process
        return process

    def runplane(self, name: str, *args: str, **options: Any) -> Process:
        """Start ``runplane ARGS`` (``python -m runplane.cli``) as ``name``."""
        return self.start(name, *CLI, *args, **options)

    def python(self, name: str, code: str, *args: str, **options: Any) -> Process:
        """Start ``python -c code ARGS`` as ``name`` (the apps importable)."""
        return self.start(name, sys.executable, "-c", code, *args, **options)

    def serve(self, name: str, *args: str, host: str = "127.0.0.1", timeout: float = 30.0,
              **options: Any) -> Server:
        """Start ``runplane serve ARGS`` on a free port and wait until it answers."""
        url = f"http://127.0.0.1:{(port := free_port())}"
        process = self.runplane(name, "serve", *args, "--host", host, "--port", str(port),
                                **options)
        process.wait_ready(answers_ok(url), timeout=timeout, what="answering /ok")
        return Server(url, process)

    def stop_all(self, timeout: float = 30.0) -> None:
        running = [p for p in self.started.values() if p.returncode is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in running:
            try:
                process.popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
        for process in self.started.values():
            process.kill()  # closes its pipes; a no-op signal for one that ended
            print(f"--- {process.name} (pid {process.pid}, exit {process.returncode}) ---\n"
                  f"{process.tail()}")


def run_python(code: str, *args: str, timeout: float = 60.0) -> str:
    """Run ``python -c code`` (the apps importable) to completion and return its stdout; fail
    loudly otherwise."""
    proc = subprocess.run([sys.executable, "-c", code, *args], env=child_env(),
                          capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"subprocess failed ({proc.returncode}):\n{proc.stderr}"
    return proc.stdout
