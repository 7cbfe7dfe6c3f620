"""``runplane demo`` end to end: what it prints must match what it left in the database."""

from __future__ import annotations

import importlib.metadata
import io
import re
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from runplane import Run, Runplane
from runplane.cli import app as cli_app
from runplane.demo import RESEARCH_STEPS, run_demo

#: Wide enough that no table row wraps, so a row can be matched on one line.
WIDE = {"COLUMNS": "200"}

EXPECTED = Counter({
    ("summarise", "success"): 1,
    ("research_agent", "interrupted"): 1,
    ("research_agent", "success"): 1,
    ("flaky_tool", "error"): 1,
})

runner = CliRunner()


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """One demo for the whole module: it takes a couple of seconds."""
    url = f"sqlite:///{tmp_path_factory.mktemp('demo') / 'demo.db'}"
    result = runner.invoke(cli_app, ["demo", "--database", url], env=WIDE)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return url, result.output


@pytest.fixture
async def stored(demo_db: tuple[str, str]) -> AsyncIterator[list[Run]]:
    async with Runplane(demo_db[0], worker=False) as app:
        yield await app.runs.list(limit=100)


async def _events_and_steps(url: str, run_id: str) -> tuple[list, list]:
    async with Runplane(url, worker=False) as app:
        return await app.runs.events(run_id), await app.runs.steps(run_id)


def test_demo_prints_every_outcome(demo_db: tuple[str, str]) -> None:
    url, output = demo_db
    assert f"database: {url}" in output
    for word in ("success", "interrupted", "error", "already_interrupted", "RunCancelled",
                 "RunFailed"):
        assert word in output


async def test_database_holds_exactly_the_printed_runs(
    demo_db: tuple[str, str], stored: list[Run]
) -> None:
    _, output = demo_db
    assert Counter((r.assistant_id, r.status.value) for r in stored) == EXPECTED
    for run in stored:
        row = rf"{run.run_id[:8]}\s*│\s*{run.assistant_id}\s*│\s*{run.status.value}\s*│"
        assert re.search(row, output), f"no table row for {run.run_id} {run.status}"
        assert run.lease_owner is None


async def test_interrupted_run_completed_nothing_after_its_cancel(
    demo_db: tuple[str, str], stored: list[Run]
) -> None:
    [run] = [r for r in stored if r.status == "interrupted"]
    events, steps = await _events_and_steps(demo_db[0], run.run_id)
    assert run.cancel_reason == "user pressed stop"
    assert run.step_index >= 2
    assert len(steps) == run.step_index
    assert [s.index for s in steps] == list(range(run.step_index))
    names = [e.event for e in events]
    assert names.count("run:cancel") == 1
    after_cancel = names[names.index("run:cancel") + 1 :]
    assert "step:complete" not in after_cancel
    assert "values" not in after_cancel
    assert names[-1] in ("run:cancel", "step:cancel")
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


async def test_resumed_run_ran_only_the_steps_it_had_not_stored(
    demo_db: tuple[str, str], stored: list[Run]
) -> None:
    [run] = [r for r in stored if r.assistant_id == "research_agent" and r.status == "success"]
    events, steps = await _events_and_steps(demo_db[0], run.run_id)
    assert [s.name for s in steps] == list(RESEARCH_STEPS)
    assert run.step_index == len(RESEARCH_STEPS)
    assert len(run.output["notes"]) == len(RESEARCH_STEPS)
    [resume] = [e for e in events if e.event == "run:resume"]
    stored_before = resume.data["step_index"]
    assert stored_before >= 3
    started_after = [e.data["index"] for e in events
                     if e.event == "step:start" and e.seq > resume.seq]
    assert started_after == list(range(stored_before, len(RESEARCH_STEPS)))
    completed = [e.data["index"] for e in events if e.event == "step:complete"]
    assert completed == list(range(len(RESEARCH_STEPS)))


async def test_failed_run_keeps_the_error_and_the_step_before_it(stored: list[Run]) -> None:
    [run] = [r for r in stored if r.status == "error"]
    assert run.assistant_id == "flaky_tool"
    assert run.error is not None and run.error.startswith("ConnectionError")
    assert run.step_index == 1


async def test_run_demo_returns_the_runs_it_stored(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'direct.db'}"
    console = Console(file=io.StringIO(), width=200)
    returned = await run_demo(url, console)
    async with Runplane(url, worker=False) as app:
        listed = await app.runs.list(limit=100)
    assert {(r.run_id, r.status) for r in returned} == {(r.run_id, r.status) for r in listed}
    assert Counter((r.assistant_id, r.status.value) for r in returned) == EXPECTED
    again = await run_demo(url, Console(file=io.StringIO(), width=200))
    assert not {r.run_id for r in again} & {r.run_id for r in returned}


def test_default_database_is_a_fresh_temporary_file_deleted_at_the_end() -> None:
    result = runner.invoke(cli_app, ["demo"], env=WIDE)
    assert result.exit_code == 0, result.output + repr(result.exception)
    match = re.search(r"database: sqlite:///(\S+)", result.output)
    assert match is not None
    path = Path(match.group(1))
    assert path.is_absolute()
    assert path.is_relative_to(tempfile.gettempdir())
    assert not path.parent.exists()  # the demo cleaned up after itself


def test_no_command_lists_the_commands() -> None:
    result = runner.invoke(cli_app, [])
    assert "demo" in result.output


def test_the_served_research_agent_lasts_long_enough_to_press_stop() -> None:
    """Served, it takes about 20 s (a person's time to find the button); the demo's own
    runs of it are fast (the demo tests above take seconds)."""
    from runplane import demo

    assert 15 <= demo.STEP_SECONDS * len(demo.RESEARCH_STEPS) <= 30
    assert demo.DEMO_STEP_SECONDS * len(demo.RESEARCH_STEPS) <= 2


def test_version_names_the_installed_package() -> None:
    result = runner.invoke(cli_app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"runplane {importlib.metadata.version('runplane')}"


def test_module_entry_point() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "runplane.cli", "demo", "--help"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "--database" in result.stdout
