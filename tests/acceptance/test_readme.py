"""The README works as written: every complete Python example runs (on a temporary
database, against a real server where it needs one), every other Python block says it is a
fragment, every ``runplane`` command in a shell block is one the CLI takes, and every
benchmark command names a script that takes its options."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runplane import cli

from support import REPO
from support.processes import Processes, child_env

README = REPO / "README.md"
FRAGMENT = "# a fragment"


@dataclass(frozen=True)
class Block:
    section: str  # the "## " heading it is under
    lang: str
    code: str
    first_in_section: bool  # the first block of its language in its section


def _blocks() -> list[Block]:
    blocks: list[Block] = []
    section = ""
    seen: set[tuple[str, str]] = set()
    for part in re.split(r"^(## .*)$", README.read_text(), flags=re.M):
        if part.startswith("## "):
            section = part[3:]
            continue
        for match in re.finditer(r"^```(\w*)\n(.*?)^```", part, re.S | re.M):
            lang, code = match.groups()
            blocks.append(Block(section, lang, code, (section, lang) not in seen))
            seen.add((section, lang))
    return blocks


def _python_block(section: str) -> str:
    return next(b.code for b in _blocks() if b.section == section and b.lang == "python")


def _run(code: str, cwd: Path, timeout: float = 60) -> list[str]:
    """``code`` run as a script in ``cwd``: the lines it printed."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=timeout, cwd=cwd, env=child_env(apps_on_path=False))
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def _run_example(section: str, tmp_path: Path, then: str = "") -> list[str]:
    """The first Python block of ``section`` run as a script (followed by ``then``) in
    ``tmp_path``, its database there; what it printed."""
    code = _python_block(section).replace("sqlite:///runplane.db",
                                          f"sqlite:///{tmp_path}/readme.db")
    return _run(code + then, tmp_path)


#: The sections whose first Python block is a complete script, and the test that runs it.
RUN_BY_A_TEST = {
    "Quickstart": "test_quickstart_example_runs_against_make_runs_server",
    "The Python API": "test_readme_api_example_runs",
    "Human in the loop for workflows": "test_readme_human_in_the_loop_example_runs",
    "Serve your LangGraph project": "test_readme_add_graph_example_runs",
}


def test_every_python_block_is_run_by_a_test_or_says_it_is_a_fragment():
    for block in _blocks():
        if block.lang != "python" or block.code.startswith(FRAGMENT):
            continue
        assert block.first_in_section and block.section in RUN_BY_A_TEST, (
            f"a complete Python block under {block.section!r} that no test runs: run it "
            f"here, or start it with {FRAGMENT!r}:\n{block.code}")
    for name in RUN_BY_A_TEST.values():
        assert callable(globals()[name])


def test_readme_api_example_runs(tmp_path: Path):
    assert _run_example("The Python API", tmp_path) == [
        "cannot cancel, run is success",
        "cancelled interrupted",
        "{'plan': ['search', 'summarise']}",
    ]


def test_readme_human_in_the_loop_example_runs(tmp_path: Path):
    assert _run_example("Human in the loop for workflows", tmp_path) == [
        "{'send this?': 'Dear Ada, the report is ready.'}",
        "interrupted",
        "{'sent': True} ['Dear Ada, the report is ready.']",
    ]


def test_readme_add_graph_example_runs(tmp_path: Path):
    then = ("\nimport asyncio\n"
            "async def check():\n"
            "    async with app:\n"
            "        run = await app.runs.create(None, 'adder', input={'x': 1})\n"
            "        print(await app.runs.join(run.run_id))\n"
            "asyncio.run(check())\n")
    assert _run_example("Serve your LangGraph project", tmp_path, then) == ["{'x': 2}"]
    assert (tmp_path / "graphs.db").exists()  # where the example put it


@pytest.mark.slow
def test_quickstart_example_runs_against_make_runs_server(tmp_path: Path):
    """What ``make run`` serves (its command from the Makefile), and the Quickstart's
    script against it; the research agent's steps made short (a step's length is input)."""
    make_run = re.search(r"^run:.*\n\t\$\(BIN\)/runplane (.*)$",
                         (REPO / "Makefile").read_text(), re.M).group(1)
    command, *args = [a.replace("./runplane.db", f"{tmp_path}/run.db")
                      for a in shlex.split(make_run)]
    assert command == "serve"
    code = _python_block("Quickstart")
    assert code.count('input={"topic": "x"}') == 1
    code = code.replace('input={"topic": "x"}', 'input={"topic": "x", "step_seconds": 0.01}')
    with Processes(tmp_path) as processes:
        server = processes.serve("make-run", *args, cwd=REPO)
        lines = _run(code.replace("http://127.0.0.1:8123", server.url), tmp_path)
    assert lines[0].startswith("metadata {'run_id': ")
    assert lines[-1].startswith("end {'run_id': "), lines[-1]
    assert lines[-2].startswith("values {'topic': 'x', 'notes': ["), lines[-2]
    assert "revise for 'x' (after 6 notes)" in lines[-2]
    assert sum(line.startswith("updates ") for line in lines) == 7  # the agent's seven steps


def _commands(section: str | None = None) -> list[list[str]]:
    """Every command line of the README's shell blocks (of ``section``, if given)."""
    return [shlex.split(line, comments=True)
            for block in _blocks() if block.lang == "sh"
            and (section is None or block.section == section)
            for line in block.code.splitlines() if line.strip()]


def _parses(argv: list[str]) -> tuple[bool, str]:
    """Whether the CLI takes ``runplane ARGV`` (its commands, options and their values'
    presence), checked by asking the command it names for its help: nothing runs."""
    result = CliRunner().invoke(cli.app, [*argv, "--help"])
    return result.exit_code == 0, result.output


def test_every_runplane_command_in_the_readme_is_one_the_cli_takes():
    commands = [c[1:] for c in _commands() if c and c[0] in ("runplane", ".venv/bin/runplane")]
    assert len(commands) >= 15
    for argv in commands:
        ok, output = _parses(argv)
        assert ok, f"README: `runplane {shlex.join(argv)}`:\n{output}"
    assert not _parses(["runs", "cancel", "RUN_ID", "--no-such-option"])[0]  # it can fail
    assert not _parses(["runs", "stop", "RUN_ID"])[0]


def test_every_benchmark_command_names_a_script_that_takes_its_options():
    commands = [c for c in _commands("Benchmarks") if c[0] == ".venv/bin/python"]
    assert len(commands) >= 10
    helps: dict[str, str] = {}
    for command in commands:
        script = REPO / command[1]
        assert script.is_file(), command
        if command[1] not in helps:
            helps[command[1]] = subprocess.run(
                [sys.executable, str(script), "--help"], capture_output=True, text=True,
                check=True, timeout=60, cwd=REPO).stdout
        for option in (a for a in command[2:] if a.startswith("--")):
            assert re.search(rf"{re.escape(option)}\b", helps[command[1]]), (command, option)
