"""``runplane runs ...``: look at and stop runs on a running server, over its HTTP API.

Every command takes ``--url`` (default ``RUNPLANE_URL``, else http://127.0.0.1:8123) and
``--json`` (the server's JSON as it is, one object per line for ``tail``);
``RUNPLANE_API_KEY`` is sent as the API key of a server that wants one. A server error prints its
``detail`` and exits 1; an unreachable server exits 1 too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Annotated, Any, NoReturn, TypeVar, cast

import httpx
import typer
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text
from rich.tree import Tree

from runplane.config import ClientSettings, default_help

runs = typer.Typer(name="runs", help="Look at and stop runs on a server.", no_args_is_help=True)

Url = Annotated[str | None, typer.Option(
    "--url", help="The server's base URL." + default_help(ClientSettings, "url"))]
Json = Annotated[bool, typer.Option("--json", help="Print the server's JSON as it is.")]
RunId = Annotated[str, typer.Argument(
    metavar="RUN_ID", help="A run's id, or the start of it when only one run's id starts so.")]

T = TypeVar("T")

STYLES = {"success": "green", "interrupted": "yellow", "error": "red", "timeout": "red",
          "pending": "dim", "running": "cyan"}


def _die(message: str) -> NoReturn:
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(1)


def _client(settings: ClientSettings) -> httpx.Client:
    key = settings.api_key
    return httpx.Client(base_url=settings.url, timeout=None,
                        headers={"x-api-key": key} if key else {})


def _with_server(url: str | None, work: Callable[[httpx.Client], T]) -> T:
    """``work`` on one connection to the server; a server out of reach is one line."""
    settings = ClientSettings.load(url=url)
    try:
        with _client(settings) as http:
            return work(http)
    except httpx.TransportError as exc:
        _die(f"cannot reach {settings.url}: {exc}")


def _json(response: httpx.Response) -> Any:
    _die_on_error(response)
    return response.json()


def _request(url: str | None, method: str, path: str, **kwargs: Any) -> Any:
    return _with_server(url, lambda http: _json(http.request(method, path, **kwargs)))


def _run(http: httpx.Client, run_id: str) -> dict[str, Any]:
    """The run ``run_id`` names: the run of that id, or the one run whose id starts with it
    (as the console's search finds it); several such runs are one line naming two, exit 1."""
    found = http.get(f"/runs/{run_id}")
    if found.status_code != 404:
        return cast(dict[str, Any], _json(found))
    runs = _json(http.get("/runs", params={"id_prefix": run_id, "limit": 3}))
    if len(runs) != 1:
        if not runs:
            _die_on_error(found)  # no such run, nor one starting with it: the 404
        _die(f"run id prefix {run_id!r} matches several runs "
             f"({', '.join(r['run_id'] for r in runs[:2])}, ...): give more of it")
    return cast(dict[str, Any], runs[0])


def _about_run(url: str | None, run_id: str, method: str | None = None, suffix: str = "",
               **kwargs: Any) -> Any:
    """A call about the run ``run_id`` names (see ``_run``), on one connection: ``method``
    on ``/runs/<its id><suffix>``; without ``method``, the run itself."""
    def work(http: httpx.Client) -> Any:
        run = _run(http, run_id)
        if method is None:
            return run
        return _json(http.request(method, f"/runs/{run['run_id']}{suffix}", **kwargs))

    return _with_server(url, work)


def _die_on_error(response: httpx.Response) -> None:
    """A server error: print its ``detail`` and exit 1 (the body must have been read)."""
    if not response.is_error:
        return
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    _die(f"{response.status_code}: {detail}")


def _status(status: str) -> str:
    return f"[{STYLES.get(status, 'white')}]{status}[/]"


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


@runs.command("cancel")
def cancel(
    run_id: RunId,
    tree: Annotated[bool, typer.Option("--tree", help="Cancel every run of its tree.")] = False,
    action: Annotated[str, typer.Option("--action", help="interrupt or rollback.")] =
        "interrupt",
    wait: Annotated[bool, typer.Option("--wait", help="Return once the task stopped.")] =
        False,
    reason: Annotated[str | None, typer.Option(
        "--reason", help="Why: kept with the run, shown by get and the console.")] = None,
    url: Url = None,
    as_json: Json = False,
) -> None:
    """Cancel a run (with its attached children), or with --tree its whole tree."""
    params: dict[str, Any] = {"action": action, "wait": int(wait),
                              "scope": "tree" if tree else "run"}
    if reason:
        params["reason"] = reason
    body = _about_run(url, run_id, "POST", "/cancel", params=params)
    if as_json:
        _print_json(body)
        return
    console = Console()
    console.print(f"{body['run_id']}: {body['outcome']} ({_status(body['status'])}), "
                  f"scope {body['scope']}")
    counts = body.get("counts") or {}
    if counts:
        console.print(", ".join(f"{k} {v}" for k, v in counts.items()))
    if body.get("warning"):
        console.print(f"[yellow]warning:[/] {body['warning']} "
                      f"(root {body['root_run_id']}: {body['suggested_endpoint']})")


@runs.command("resume")
def resume(run_id: RunId, url: Url = None, as_json: Json = False) -> None:
    """Queue an interrupted run again: it goes on after its last completed step."""
    body = _about_run(url, run_id, "POST", "/resume")
    if as_json:
        _print_json(body)
        return
    Console().print(f"{body['run_id']}: resumed ({_status(body['status'])})")


def _add(branch: Tree, node: dict[str, Any]) -> None:
    for child in node["children"]:
        _add(branch.add(_label(child)), child)


def _label(node: dict[str, Any]) -> str:
    return f"{node['assistant_id']} [dim]{node['run_id']}[/] {_status(node['status'])}"


@runs.command("tree")
def tree(run_id: RunId, url: Url = None, as_json: Json = False) -> None:
    """Show the tree RUN_ID belongs to, from its root, with statuses."""
    body = _about_run(url, run_id, "GET", "/tree")
    if as_json:
        _print_json(body)
        return
    root = Tree(_label(body))
    _add(root, body)
    Console().print(root)


@runs.command("list")
def list_runs(
    status: Annotated[str | None, typer.Option("--status", help="Only runs in this status.")]
        = None,
    thread: Annotated[str | None, typer.Option("--thread", help="Only runs of this thread.")]
        = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 20,
    url: Url = None,
    as_json: Json = False,
) -> None:
    """List runs, newest first."""
    params: dict[str, Any] = {"limit": limit}
    if status:
        params["status"] = status
    path = f"/threads/{thread}/runs" if thread else "/runs"
    body = _request(url, "GET", path, params=params)
    if as_json:
        _print_json(body)
        return
    # a run id is what get, cancel and tail take: never cut, however narrow the terminal;
    # the rest folds onto more lines rather than losing characters
    table = Table(Column("run_id", no_wrap=True, min_width=36),
                  Column("assistant", overflow="fold"),
                  Column("status", no_wrap=True, min_width=11),
                  *(Column(name, overflow="fold") for name in ("thread", "parent", "created")))
    for run in body:
        table.add_row(run["run_id"], run["assistant_id"], _status(run["status"]),
                      run["thread_id"] or "-", run["parent_run_id"] or "-", run["created_at"])
    Console().print(table)


@runs.command("get")
def get(run_id: RunId, url: Url = None, as_json: Json = False) -> None:
    """Show one run."""
    body = _about_run(url, run_id)
    if as_json:
        _print_json(body)
        return
    table = Table("field", "value", show_header=False)
    for key, value in body.items():
        if key == "traceback":
            continue
        shown = _status(value) if key == "status" else Text(json.dumps(value)) \
            if isinstance(value, dict | list) else Text(str(value))
        table.add_row(key, shown)
    console = Console()
    console.print(table)
    if body.get("traceback"):  # as Python printed it: wrapping or markup would garble it
        console.print("traceback:", Text(body["traceback"]), sep="\n", soft_wrap=True)


def _sse(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    event = "message"
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)


@runs.command("tail")
def tail(run_id: RunId, url: Url = None, as_json: Json = False) -> None:
    """Print the run's event log from the start and follow it until the run ends."""
    console = Console()
    settings = ClientSettings.load(url=url)
    try:
        with _client(settings) as http, http.stream(
            "GET", f"/runs/{_run(http, run_id)['run_id']}/stream",
            params={"stream_mode": "log"},
        ) as response:
            if response.is_error:
                response.read()
                _die_on_error(response)
            for event, data in _sse(response.iter_lines()):
                if event != "log":
                    continue
                item = json.loads(data)
                if as_json:
                    typer.echo(json.dumps(item))
                else:
                    console.print(f"{item['seq']:>4} {item['timestamp']} "
                                  f"[bold]{item['type']}[/] {json.dumps(item['data'])}",
                                  highlight=False, soft_wrap=True)
    except httpx.TransportError as exc:
        _die(f"cannot reach {settings.url}: {exc}")
