"""Loading a LangGraph project (``langgraph.json``): every kind of target, both path forms,
dependencies, env, http.app, the keys not honoured, and one clear line per mistake."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.pregel import Pregel
from starlette.applications import Starlette

from runplane.errors import ConfigError
from runplane.graphs.project import Project, parse_env

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
"""


@pytest.fixture(autouse=True)
def isolated() -> Iterator[None]:
    """A project changes the process (os.environ, sys.path, sys.modules): undone after."""
    environ, path, modules = dict(os.environ), list(sys.path), set(sys.modules)
    yield
    os.environ.clear()
    os.environ.update(environ)
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        del sys.modules[name]


def project(root: Path, config: dict[str, Any], **files: str) -> Path:
    """A project in ``root``: ``langgraph.json`` holding ``config``, and ``files`` (by path
    relative to ``root``, ``__`` for ``/``)."""
    for name, text in files.items():
        file = root / name.replace("__", "/")
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(textwrap.dedent(text))
    root.mkdir(parents=True, exist_ok=True)
    path = root / "langgraph.json"
    path.write_text(json.dumps(config))
    return path


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        Project.load(path)
    return str(caught.value)


async def run(loaded: Project, graph_id: str, config: dict[str, Any] | None = None) -> Any:
    async with loaded.graphs[graph_id].build(config or {"configurable": {}}) as graph:
        assert isinstance(graph, Pregel)
        return await graph.ainvoke({"x": 1})


async def test_a_compiled_graph_in_a_file_is_served_as_it_is(tmp_path: Path):
    path = project(tmp_path, {"graphs": {"agent": {"path": "./agent.py:graph",
                                                   "description": "Adds one."}}},
                   **{"agent.py": GRAPH + "graph = builder.compile()\n"})
    loaded = Project.load(path)
    source = loaded.graphs["agent"]
    assert (source.graph_id, source.description, source.is_factory) == ("agent", "Adds one.",
                                                                         False)
    async with source.build({}) as first, source.build({}) as second:
        assert first is second
    assert await run(loaded, "agent") == {"x": 2}


async def test_a_state_graph_is_compiled_once_at_load(tmp_path: Path):
    path = project(tmp_path, {"graphs": {"agent": "./agent.py:builder"}},
                   **{"agent.py": GRAPH})
    source = Project.load(path).graphs["agent"]
    assert isinstance(source.target, Pregel) and not source.is_factory
    async with source.build({}) as first, source.build({}) as second:
        assert first is second


async def test_an_entrypoint_is_a_graph(tmp_path: Path):
    path = project(tmp_path, {"graphs": {"flow": "./flow.py:flow"}}, **{"flow.py": """
        from langgraph.func import entrypoint

        @entrypoint()
        def flow(state: dict) -> dict:
            return {"x": state["x"] * 10}
    """})
    loaded = Project.load(path)
    assert not loaded.graphs["flow"].is_factory
    assert await run(loaded, "flow") == {"x": 10}


FACTORIES = GRAPH + """
calls = []

def plain():
    calls.append("plain")
    return builder.compile()

def with_config(config):
    calls.append(config["configurable"]["user"])
    return builder

async def awaited(config):
    calls.append("awaited")
    return builder.compile()

def keyword(*, config, extra=1):
    calls.append(("keyword", config["configurable"]["user"]))
    return builder.compile()
"""


@pytest.mark.parametrize(("attr", "calls"), [
    ("plain", ["plain"]),
    ("with_config", ["ann"]),
    ("awaited", ["awaited"]),
    ("keyword", [("keyword", "ann")]),
])
async def test_a_factory_is_called_per_run_never_at_load(tmp_path: Path, attr: str,
                                                          calls: list[Any]):
    path = project(tmp_path, {"graphs": {"agent": f"./factories.py:{attr}"}},
                   **{"factories.py": FACTORIES})
    loaded = Project.load(path)
    module = sys.modules[loaded.graphs["agent"].target.__module__]  # type: ignore[union-attr]
    assert loaded.graphs["agent"].is_factory and module.calls == []
    for _ in range(2):
        assert await run(loaded, "agent", {"configurable": {"user": "ann"}}) == {"x": 2}
    assert module.calls == calls * 2


MANAGERS = GRAPH + """
from contextlib import asynccontextmanager, contextmanager

events = []

@contextmanager
def sync_graph(config):
    events.append("enter")
    yield builder.compile()
    events.append("exit")

@asynccontextmanager
async def async_graph():
    events.append("enter")
    yield builder.compile()
    events.append("exit")

async def awaited_manager(config):
    return sync_graph(config)
"""


@pytest.mark.parametrize("attr", ["sync_graph", "async_graph", "awaited_manager"])
async def test_a_context_manager_factory_is_entered_per_run_and_exited_after(
    tmp_path: Path, attr: str
):
    path = project(tmp_path, {"graphs": {"agent": f"./managers.py:{attr}"}},
                   **{"managers.py": MANAGERS})
    loaded = Project.load(path)
    module = sys.modules[loaded.graphs["agent"].target.__module__]  # type: ignore[union-attr]
    assert module.events == []
    async with loaded.graphs["agent"].build({"configurable": {}}) as graph:
        assert module.events == ["enter"]
        assert await graph.ainvoke({"x": 1}) == {"x": 2}
    assert module.events == ["enter", "exit"]
    assert await run(loaded, "agent") == {"x": 2}
    assert module.events == ["enter", "exit"] * 2


async def test_a_factory_that_gives_no_graph_fails_its_run(tmp_path: Path):
    path = project(tmp_path, {"graphs": {"agent": "./agent.py:make"}},
                   **{"agent.py": "def make():\n    return 42\n"})
    source = Project.load(path).graphs["agent"]
    with pytest.raises(TypeError) as caught:
        async with source.build({}):
            pass
    assert str(caught.value) == ("graph 'agent': the factory ./agent.py:make gave an int, "
                                 "not a graph")


async def test_module_targets_come_from_the_dependencies_and_files_import_their_siblings(
    tmp_path: Path
):
    path = project(
        tmp_path,
        {"dependencies": ["./src", "langchain_openai", "git+https://example.com/x.git"],
         "graphs": {"packaged": "shop_agents.graphs:graph", "file": "./agents/main.py:graph"}},
        **{"src__shop_agents____init__.py": "",
           "src__shop_agents__graphs.py": GRAPH + "graph = builder.compile()\n",
           "agents__helpers.py": GRAPH,
           "agents__main.py": "from helpers import builder\ngraph = builder.compile()\n"})
    loaded = Project.load(path)
    assert loaded.dependencies == [(tmp_path / "src").resolve()]
    assert sys.path[0] == str((tmp_path / "agents").resolve())  # the file's own folder first
    assert str((tmp_path / "src").resolve()) in sys.path
    assert list(loaded.graphs) == ["packaged", "file"]
    assert await run(loaded, "packaged") == await run(loaded, "file") == {"x": 2}


async def test_dot_is_the_config_files_folder_wherever_the_process_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    root = tmp_path / "proj"
    path = project(root, {"dependencies": ["."], "graphs": {"agent": "agent_mod:graph"}},
                   **{"agent_mod.py": GRAPH + "graph = builder.compile()\n"})
    monkeypatch.chdir(tmp_path)
    loaded = Project.load(path)
    assert loaded.dependencies == [root.resolve()]
    assert await run(loaded, "agent") == {"x": 2}


def test_env_as_a_mapping_is_applied_before_the_graphs_import(tmp_path: Path):
    os.environ["RP_TEST_KEPT"] = "shell"
    path = project(tmp_path, {"env": {"RP_TEST_MODEL": "tiny", "RP_TEST_KEPT": "project"},
                              "graphs": {"agent": "./agent.py:graph"}},
                   **{"agent.py": GRAPH + "import os\nMODEL = os.environ['RP_TEST_MODEL']\n"
                                          "graph = builder.compile()\n"})
    loaded = Project.load(path)
    assert loaded.env == {"RP_TEST_MODEL": "tiny", "RP_TEST_KEPT": "project"}
    assert os.environ["RP_TEST_MODEL"] == "tiny"
    assert os.environ["RP_TEST_KEPT"] == "project"  # the project's value wins, as in langgraph dev


def test_env_as_a_file_is_read_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    path = project(tmp_path / "proj", {"env": "../.env", "graphs": {}})
    (tmp_path / ".env").write_text("# keys\nRP_TEST_A=1\nexport RP_TEST_B='two words'\n")
    monkeypatch.chdir(tmp_path / "proj")
    assert Project.load(path).env == {"RP_TEST_A": "1", "RP_TEST_B": "two words"}
    assert os.environ["RP_TEST_B"] == "two words"


def test_env_files_read_as_dotenv_reads_them():
    text = textwrap.dedent("""\
        # a comment

        PLAIN=value # a comment
        export EXPORTED = spaced
        SINGLE='raw \\n #kept'
        DOUBLE="line\\nnext \\"quoted\\"" # a comment
        EMPTY=
        URL=postgresql://u:p@h/db?x=1#frag
        not a pair
    """)
    assert parse_env(text) == {
        "PLAIN": "value", "EXPORTED": "spaced", "SINGLE": "raw \\n #kept",
        "DOUBLE": 'line\nnext "quoted"', "EMPTY": "", "URL": "postgresql://u:p@h/db?x=1#frag",
    }


def test_http_app_is_the_users_starlette_app(tmp_path: Path):
    path = project(tmp_path, {"graphs": {}, "http": {"app": "./web.py:app"}}, **{"web.py": """
        from fastapi import FastAPI

        app = FastAPI()
    """})
    assert isinstance(Project.load(path).http_app, Starlette)
    assert Project.load(project(tmp_path, {"graphs": {}})).http_app is None


AUTH = """
from langgraph_sdk import Auth

auth = Auth()


@auth.authenticate
async def authenticate(authorization: str | None) -> str:
    return "someone"


@auth.on
async def everything(ctx, value):
    return None
"""


def test_keys_runplane_does_not_honour_are_named_build_only_ones_ignored(tmp_path: Path):
    path = project(tmp_path, {
        "$schema": "https://langgra.ph/schema.json", "python_version": "3.12",
        "node_version": "20", "base_image": "x", "image_distro": "wolfi",
        "pip_config_file": "pip.conf", "pip_installer": "uv", "source": {"kind": "uv"},
        "dockerfile_lines": [], "keep_pkg_tools": True,
        "graphs": {"agent": {"path": "./agent.py:builder", "schedule": "daily"}},
        "auth": {"path": "./auth.py:auth", "cache": {}}, "store": {"index": {}},
        "checkpointer": {"path": "./cp.py:make"}, "webhooks": {}, "ui": {}, "encryption": {},
        "http": {"app": "./web.py:app", "cors": {}, "disable_meta": True,
                 "enable_custom_route_auth": True},
        "grahps": {},
    }, **{"agent.py": GRAPH, "web.py": "from starlette.applications import Starlette\n"
                                        "app = Starlette()\n", "auth.py": AUTH})
    assert Project.load(path).unhonoured == [
        "store", "checkpointer", "webhooks", "ui", "encryption", "grahps",
        "graphs.agent.schedule", "http.cors", "http.disable_meta", "auth.cache",
    ]


def test_auth_path_is_the_projects_auth_handlers(tmp_path: Path):
    loaded = Project.load(project(tmp_path, {"graphs": {}, "auth": {"path": "./auth.py:auth"}},
                                  **{"auth.py": AUTH}))
    assert loaded.auth is not None and loaded.auth.handler("threads", "read") is not None
    assert not loaded.auth.custom_routes  # the project's own routes: open, as in LangGraph
    guarded = Project.load(project(tmp_path, {
        "graphs": {}, "auth": {"path": "./auth.py:auth"},
        "http": {"enable_custom_route_auth": True}}, **{"auth.py": AUTH}))
    assert guarded.auth is not None and guarded.auth.custom_routes
    assert Project.load(project(tmp_path, {"graphs": {}})).auth is None


@pytest.mark.parametrize(("config", "files", "message"), [
    ({"graphs": {}, "auth": "./auth.py:auth"}, {},
     "langgraph.json: auth: expected an object, got a string"),
    ({"graphs": {}, "http": {"enable_custom_route_auth": "yes"}}, {},
     "langgraph.json: http.enable_custom_route_auth: expected true or false, got a string"),
    ({"graphs": {}, "auth": {"path": "./auth.py:auth"}}, {"auth.py": "auth = 1\n"},
     "langgraph.json: auth.path: ./auth.py:auth is an int, not a langgraph_sdk.Auth"),
    ({"graphs": {}, "auth": {"path": "./auth.py:auth"}},
     {"auth.py": "from langgraph_sdk import Auth\nauth = Auth()\n"},
     "langgraph.json: auth.path: ./auth.py:auth: the Auth object has no @auth.authenticate "
     "handler"),
    ({"graphs": {}, "auth": {"path": "./auth.py:auth"}},
     {"auth.py": AUTH.replace("(authorization: str | None)", "(token)")},
     "langgraph.json: auth.path: ./auth.py:auth: the authenticate handler asks for token; "
     "it may ask for authorization, headers, method, path, path_params, query_params, "
     "request, scope, scopes, user"),
    ({"graphs": {"agent": "./agent.py:graph"}}, {"agent.py": "x = 1\n"},
     'langgraph.json: graph "agent": ./agent.py has no attribute \'graph\''),
    ({"graphs": {"agent": "./missing.py:graph"}}, {},
     'langgraph.json: graph "agent": ./missing.py: no such file'),
    ({"graphs": {"agent": "./agent.py"}}, {},
     'langgraph.json: graph "agent": \'./agent.py\' names no attribute '
     "(expected ./file.py:attr or package.module:attr)"),
    ({"graphs": {"agent": "no_such_pkg_rp.graphs:graph"}}, {},
     'langgraph.json: graph "agent": no module named \'no_such_pkg_rp\' (sys.path holds '
     "the dependencies' folders and the installed packages)"),
    ({"graphs": {"agent": "./agent.py:graph"}}, {"agent.py": "graph = 42\n"},
     'langgraph.json: graph "agent": ./agent.py:graph is an int, not a graph, a StateGraph '
     "or a graph factory"),
    ({"graphs": {"agent": "./agent.py:graph"}}, {"agent.py": "def graph(:\n"},
     'langgraph.json: graph "agent": ./agent.py does not compile: invalid syntax '
     "(agent.py:1)"),
    ({"graphs": {"agent": "./agent.py:graph"}}, {"agent.py": "import no_such_dep_rp\n"},
     'langgraph.json: graph "agent": importing ./agent.py failed: ModuleNotFoundError: '
     "No module named 'no_such_dep_rp'"),
    ({"graphs": {"agent": "./agent.py:graph"}}, {"agent.py": "raise KeyError('API_KEY')\n"},
     'langgraph.json: graph "agent": importing ./agent.py failed: KeyError: \'API_KEY\''),
    ({"graphs": {"agent": "./agent.py:make"}}, {"agent.py": "def make(config, store):\n  ..."},
     'langgraph.json: graph "agent": ./agent.py:make takes the arguments config, store; a '
     "graph factory takes none or one (a RunnableConfig)"),
    ({"graphs": {"agent": "./agent.py:builder"}},
     {"agent.py": GRAPH.replace('builder.add_edge(START, "add")', "")},
     'langgraph.json: graph "agent": ./agent.py:builder does not compile: ValueError: Graph '
     "must have an entrypoint: add at least one edge from START to another node"),
    ({"graphs": {"agent": 42}}, {},
     'langgraph.json: graph "agent": expected "./file.py:attr", "package.module:attr" or '
     '{"path": ...}, got a number'),
    ({}, {}, 'langgraph.json: graphs: expected an object of graph ids to "path:attr" strings, '
             "got null"),
    ({"graphs": {}, "env": "./.env"}, {}, "langgraph.json: env: ./.env: no such file"),
    ({"graphs": {}, "env": {"N": 1}}, {},
     "langgraph.json: env: expected a file path or an object of strings, got an object"),
    ({"graphs": {}, "dependencies": ["./src"]}, {},
     "langgraph.json: dependencies: ./src is not a directory"),
    ({"graphs": {}, "dependencies": "."}, {},
     "langgraph.json: dependencies: expected a list of strings, got a string"),
    ({"graphs": {}, "http": {"app": "./web.py:app"}}, {"web.py": "app = object()\n"},
     "langgraph.json: http.app: ./web.py:app is an object, not a Starlette or FastAPI app"),
    ({"graphs": {}, "http": []}, {}, "langgraph.json: http: expected an object, got a list"),
])
def test_every_mistake_is_one_line_naming_the_file_and_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: dict[str, Any],
    files: dict[str, str], message: str
):
    project(tmp_path, config, **files)
    monkeypatch.chdir(tmp_path)
    assert error_of(Path("langgraph.json")) == message


@pytest.mark.parametrize(("text", "message"), [
    (None, "langgraph.json: no such file"),
    ("{", "langgraph.json: not valid JSON: Expecting property name enclosed in double "
          "quotes: line 1 column 2 (char 1)"),
    ("[]", "langgraph.json: expected a JSON object, got a list"),
])
def test_a_config_file_that_is_missing_or_no_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str | None, message: str
):
    if text is not None:
        (tmp_path / "langgraph.json").write_text(text)
    monkeypatch.chdir(tmp_path)
    assert error_of(Path("langgraph.json")) == message
