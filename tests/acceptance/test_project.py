"""``runplane serve`` and ``runplane worker`` serving a LangGraph project (``langgraph.json``)
as real processes: its graphs run, its ``http.app`` answers beside runplane's routes, a
mistake in it is one line and exit code 2."""

from __future__ import annotations

import asyncio
import json
import subprocess
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client

from support.databases import postgres_schema
from support.processes import CLI, Processes, Server, child_env

SERVE = ("--poll-interval", "0.02", "--log-level", "warning")

GRAPH = """
from typing_extensions import TypedDict
from langgraph.graph import StateGraph, START

class State(TypedDict):
    x: int

def add(state: State) -> dict:
    return {"x": state["x"] + 1}

builder = StateGraph(State)
builder.add_node("add", add)
builder.add_edge(START, "add")

def make_graph(config):
    return builder.compile()
"""

WEB = """
import os
from fastapi import FastAPI

app = FastAPI()

@app.get("/hello")
def hello() -> dict:
    return {"hello": os.environ["GREETING"]}

@app.get("/info")
def info() -> dict:
    return {"mine": True}
"""


def write_project(root: Path, **extra: object) -> Path:
    """A project: one graph (a factory taking the config) from a file and http.app."""
    (root / "agent").mkdir(parents=True)
    (root / "agent" / "graph.py").write_text(textwrap.dedent(GRAPH))
    (root / "web.py").write_text(textwrap.dedent(WEB))
    (root / ".env").write_text("GREETING=from the project\n")
    config = {"dependencies": ["."], "graphs": {"agent": "./agent/graph.py:make_graph"},
              "env": ".env", "http": {"app": "./web.py:app"}, **extra}
    (root / "langgraph.json").write_text(json.dumps(config))
    return root / "langgraph.json"


async def _serve(processes: Processes, cwd: Path, *args: str) -> Server:
    return await asyncio.to_thread(processes.serve, "server", *args, *SERVE, cwd=cwd)


async def test_serve_config_runs_the_graphs_and_the_projects_routes_beside_an_app(
    processes: Processes, tmp_path: Path
):
    config = write_project(tmp_path / "proj", store={"index": {"dims": 8}},
                           python_version="3.12")
    served = await _serve(processes, tmp_path, "http_app:app", "--config", str(config),
                          "--database", f"sqlite:///{tmp_path}/rp.db")
    client = get_client(url=served.url)
    names = {a["graph_id"] for a in await client.assistants.search(limit=100)}
    assert {"agent", "echo", "parks"} <= names
    out = await client.runs.wait(None, "agent", input={"x": 1})
    assert out == {"x": 2}
    async with httpx.AsyncClient(base_url=served.url) as http:
        hello = await http.get("/hello")
        info = await http.get("/info")  # the project's route wins, as LangGraph's custom do
        ok = await http.get("/ok")
    assert hello.json() == {"hello": "from the project"}
    assert info.json() == {"mine": True}
    assert ok.json() == {"ok": True}
    warnings = [line for line in served.process.output().splitlines() if "Warning" in line]
    assert warnings == [f"Warning: {config}: not honoured by runplane yet, ignored: store"]


async def test_serve_without_an_app_serves_the_langgraph_json_it_finds(
    processes: Processes, tmp_path: Path
):
    root = tmp_path / "proj"
    write_project(root)
    served = await _serve(processes, root, "--database", f"sqlite:///{tmp_path}/rp.db")
    client = get_client(url=served.url)
    assert [a["graph_id"] for a in await client.assistants.search()] == ["agent"]
    assert await client.runs.wait(None, "agent", input={"x": 41}) == {"x": 42}
    drawn = await client.assistants.get_graph("agent")  # the factory made a graph to draw
    assert {node["id"] for node in drawn["nodes"]} == {"__start__", "add", "__end__"}
    schemas = await client.assistants.get_schemas("agent")
    assert schemas["input_schema"]["properties"] == {"x": {"title": "X", "type": "integer"}}
    await served.process.printed("no app given: serving the LangGraph project ./langgraph.json")


@pytest.mark.parametrize("command", ["serve", "worker"])
@pytest.mark.parametrize(("files", "message"), [
    ({}, "Error: langgraph.json: no such file"),
    ({"langgraph.json": '{"graphs": {"agent": "./agent.py:graph"}}', "agent.py": "x = 1\n"},
     "Error: langgraph.json: graph \"agent\": ./agent.py has no attribute 'graph'"),
    ({"langgraph.json": '{"graphs": {"agent": "./agent.py:graph"}}',
      "agent.py": "graph = 'not a graph'\n"},
     'Error: langgraph.json: graph "agent": ./agent.py:graph is a str, not a graph, a '
     "StateGraph or a graph factory"),
])
def test_a_config_mistake_is_one_line_and_exit_code_2(
    tmp_path: Path, command: str, files: dict[str, str], message: str
):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    done = subprocess.run([*CLI, command, "--config", "langgraph.json"], cwd=tmp_path,
                          env=child_env(), capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr, done.stdout) == (2, message + "\n", "")


@pytest.fixture(params=["sqlite", "postgres"])
async def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database the API process and the worker process share: a SQLite file on this host,
    or a PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/shared.db"
        return
    postgres_server = request.getfixturevalue("postgres_server")
    async with postgres_schema(postgres_server, "rp_project") as url:
        yield url


async def test_worker_config_runs_the_graphs_of_an_api_only_server(
    processes: Processes, tmp_path: Path, shared_url: str
):
    config = write_project(tmp_path / "proj")
    served = await _serve(processes, tmp_path, "--config", str(config), "--no-worker",
                          "--database", shared_url)
    worker = processes.runplane("worker", "worker", "--config", str(config),
                                "--database", shared_url,
                                "--poll-interval", "0.02", "--log-level", "info", cwd=tmp_path)
    await worker.printed("assistants agent")
    client = get_client(url=served.url)
    # the server runs nothing (--no-worker): the worker process ran the graph
    assert await client.runs.wait(None, "agent", input={"x": 1}) == {"x": 2}
    assert "Traceback" not in worker.output()


def test_a_worker_with_neither_app_nor_project_says_what_to_give(tmp_path: Path):
    done = subprocess.run([*CLI, "worker"], cwd=tmp_path, env=child_env(),
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (
        2, "Error: give MODULE:APP or --config langgraph.json (or run where ./langgraph.json "
           "is)\n")
