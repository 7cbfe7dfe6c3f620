"""The ``runplane`` command line: it parses options and hands over to the library.

Each command is one ``@app.command()`` function, so ``serve``, ``worker`` and
``migrate`` slot in beside ``demo`` without touching it.
"""

from __future__ import annotations

import asyncio
import importlib
import ipaddress
import logging
import os
import re
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import unquote

import typer
from rich.console import Console

from runplane import __version__
from runplane.client_cli import runs as client_runs
from runplane.config import ProcessSettings, Settings, default_help
from runplane.errors import ConfigError
from runplane.server.settings import ServerSettings

if TYPE_CHECKING:
    from runplane.app import Runplane
    from runplane.graphs.project import Project
    from runplane.server.auth import ApiKeys

log = logging.getLogger("runplane.cli")

app = typer.Typer(
    name="runplane",
    help="A durable control plane for AI-agent and workflow runs.",
    no_args_is_help=True,
    add_completion=False,
)


app.add_typer(client_runs)


def _version(shown: bool) -> None:
    if shown:
        typer.echo(f"runplane {__version__}")
        raise typer.Exit()


@app.callback()
def cli(
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True,
        help="Print runplane's version and exit.")] = False,
) -> None:
    """A durable control plane for AI-agent and workflow runs."""


@app.command()
def demo(
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            help="Database URL to keep the runs in, e.g. sqlite:///./demo.db (default: a "
                 "fresh temporary file, deleted when the demo ends).",
        ),
    ] = None,
) -> None:
    """Run a few workflows: one succeeds, one is stopped mid-flight, one resumes, one fails."""
    from runplane.demo import run_demo

    console = Console()
    if database is not None:
        console.print(f"database: {database}", soft_wrap=True, highlight=False)
        asyncio.run(run_demo(database, console))
        return
    # a new file per demo, so that a demo never mixes its runs with earlier ones
    with tempfile.TemporaryDirectory(prefix="runplane-demo-") as folder:
        url = f"sqlite:///{Path(folder) / 'demo.db'}"
        console.print(f"database: {url} (deleted at the end; keep one with --database)",
                      soft_wrap=True, highlight=False)
        asyncio.run(run_demo(url, console))


class _UsageError(Exception):
    """A mistake on the command line: reported on stderr, exit code 2."""


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(code)


#: A URL's scheme, and the ``//`` that starts its authority when there is one.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:(//)?")
#: A ``password=`` query parameter's value: up to the next ``&`` (``#`` included).
_PASSWORD_PARAM = re.compile(r"[?&]password=([^&]*)", re.IGNORECASE)
#: Where a parser that misreads a URL may cut a password.
_CUTS = re.compile(r"[#/?@:&]")


def _password_spans(url: str) -> list[tuple[int, int]]:
    """Where ``url`` holds passwords, read without trusting the URL to be well encoded: the
    user info ends at the LAST ``@`` (a password may hold ``@ : / ? #``), the password
    starts after the user's first ``:``; and every ``password=`` parameter."""
    spans = []
    scheme = _SCHEME.match(url)
    start = scheme.end() if scheme else 0
    at = url.rfind("@", start)
    if at != -1:
        if scheme and scheme.group(1):  # scheme://user:password@host...
            colon = url.find(":", start, at)
            if colon != -1:
                spans.append((colon + 1, at))
        elif at > start:  # no authority marker: hide everything before the host
            spans.append((start, at))
    spans += [m.span(1) for m in _PASSWORD_PARAM.finditer(url, start)]
    merged: list[tuple[int, int]] = []
    for begin, end in sorted(spans):
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((begin, end))
    return merged


def redact_url(url: str) -> str:
    """``url`` with any password (in the user info or a ``password=`` parameter) shown as
    ``***``, whatever characters it holds; otherwise character for character the same."""
    shown = url
    for begin, end in reversed(_password_spans(url)):
        shown = shown[:begin] + "***" + shown[end:]
    return shown


def _scrub(message: str, url: str) -> str:
    """``message`` with ``url`` (which library errors quote) replaced by its redacted form,
    and the pieces of its passwords that a parser misreading the URL would quote (cut at
    ``# / ? @ : &``, three characters or more) shown as ``***``."""
    message = message.replace(url, redact_url(url))
    pieces: set[str] = set()
    for begin, end in _password_spans(url):
        for secret in (url[begin:end], unquote(url[begin:end])):
            cuts = [0, *(m.start() for m in _CUTS.finditer(secret)), len(secret)]
            pieces.update(secret[a + (a > 0):b] for a in cuts for b in cuts if b > a)
    for piece in sorted((p for p in pieces if len(p) >= 3), key=len, reverse=True):
        message = message.replace(piece, "***")
    return message


def load_app(target: str) -> Runplane:
    """Import ``MODULE:APP`` the way uvicorn does: the working directory is importable, APP is
    an attribute (dotted for nested ones) of MODULE and must be a ``Runplane``."""
    from runplane.app import Runplane

    module_name, sep, attrs = target.partition(":")
    if not sep or not module_name or not attrs:
        raise _UsageError(f"expected MODULE:APP (e.g. myproject.workflows:app), got {target!r}")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only a missing MODULE (or a package above it) is a usage error; a module that
        # itself fails to import something shows its own traceback.
        if exc.name is None or not (module_name == exc.name
                                    or module_name.startswith(exc.name + ".")):
            raise
        raise _UsageError(f"could not import module {module_name!r} "
                          f"(looked in {cwd} and sys.path): {exc}") from None
    found: object = module
    for attr in attrs.split("."):
        try:
            found = getattr(found, attr)
        except AttributeError:
            raise _UsageError(f"module {module_name!r} has no attribute {attrs!r}") from None
    if not isinstance(found, Runplane):
        raise _UsageError(f"{target} is a {type(found).__name__}, not a runplane.Runplane app")
    return found


#: The project file ``serve`` and ``worker`` serve when given no app, as ``langgraph dev``.
PROJECT_FILE = "langgraph.json"


def load_project(config: Path | None, target: str | None) -> Project | None:
    """The LangGraph project to serve: ``config``, else ``./langgraph.json`` when no app is
    given. Loading it applies its env and imports its graphs; a mistake in it exits 2 with
    one line, and the keys runplane does not honour are named in one warning."""
    if config is None and target is None and Path(PROJECT_FILE).is_file():
        config = Path(PROJECT_FILE)
        typer.echo(f"no app given: serving the LangGraph project ./{PROJECT_FILE}")
    if config is None:
        return None
    from runplane.graphs.project import Project

    try:
        project = Project.load(config)
    except ConfigError as exc:
        log.debug("%s", exc, exc_info=exc.__cause__)
        raise _fail(str(exc)) from None
    if project.unhonoured:
        typer.echo(f"Warning: {config}: not honoured by runplane yet, ignored: "
                   f"{', '.join(project.unhonoured)}", err=True)
    return project


def _app_with_graphs(target: str | None, project: Project | None) -> Runplane:
    """The app of ``target`` (a new one if none), serving ``project``'s graphs too."""
    from runplane.app import Runplane

    rp = load_app(target) if target is not None else Runplane()
    for graph_id, source in (project.graphs if project is not None else {}).items():
        rp.add_graph(graph_id, source)
    return rp


def _assistants(rp: Runplane) -> str:
    return ", ".join(a.graph_id for a in rp.registry.all())


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed, as uvicorn picks it for ``runplane serve``."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def _serve(rp: Runplane) -> int:
    """Run the worker until SIGTERM or SIGINT, then stop it gracefully."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[str] = []

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig.name)
        if stop.is_set():
            log.info("%s received: already stopping (up to %ss of grace)", sig.name,
                     rp.shutdown_grace)
        stop.set()

    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:  # before opening: a signal during start-up stops right after it
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        await rp.open()
        worker = rp.worker
        worker_id = worker.worker_id if worker is not None else rp.settings.worker_id
        log.info("worker %s started: database %s, assistants %s, concurrency %d",
                 worker_id, redact_url(rp.settings.database_url), _assistants(rp),
                 rp.settings.concurrency)
        await stop.wait()
        in_flight = len(worker.active_runs) if worker is not None else 0
        # Logged in the same step as close() begins: no run makes progress between them.
        log.info("%s received: stopping; %d run(s) in flight get %ss, then go back to the "
                 "queue", received[0], in_flight, rp.shutdown_grace)
        await rp.close()
        log.info("worker %s stopped", worker_id)
        return 0
    finally:
        await rp.close()  # a no-op after a graceful stop
        for sig in signals:
            loop.remove_signal_handler(sig)


DatabaseOption = Annotated[
    str | None,
    typer.Option("--database",
                 help="Database URL. Default: the app's own (Runplane(database=...)), else "
                      "RUNPLANE_DATABASE_URL, else sqlite:///./runplane.db."),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option("--config",
                 help="A LangGraph project's langgraph.json: serve its graphs (beside "
                      "MODULE:APP's workflows if given). Default without MODULE:APP: "
                      "./langgraph.json if there is one."),
]
ConcurrencyOption = Annotated[
    int | None, typer.Option("--concurrency", help="Runs this worker executes at once.")
]
PollIntervalOption = Annotated[
    float | None,
    typer.Option("--poll-interval",
                 help="Seconds between fallback polls for new runs and cancels (PostgreSQL "
                      "notifies; SQLite checks for other processes' commits every 5 ms)."),
]
GraceOption = Annotated[
    float | None,
    typer.Option("--grace",
                 help="Seconds running runs get to finish on SIGTERM/SIGINT before they "
                      "go back to the queue."),
]
LogLevelOption = Annotated[
    str | None,
    typer.Option("--log-level",
                 help="debug, info, warning or error."
                 + default_help(ProcessSettings, "log_level")),
]


def _process_settings(**given: object) -> ProcessSettings:
    """The process's settings (options, else RUNPLANE_* variables), its logging set up."""
    try:
        settings = ProcessSettings.load(**given)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    logging.basicConfig(level=logging.getLevelName(settings.log_level.upper()), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return settings


@app.command()
def worker(
    target: Annotated[
        str | None,
        typer.Argument(metavar="[MODULE:APP]", help="The app to run, e.g. myapp.flows:app.")
    ] = None,
    config: ConfigOption = None,
    database: DatabaseOption = None,
    concurrency: ConcurrencyOption = None,
    grace: GraceOption = None,
    poll_interval: PollIntervalOption = None,
    lease_ttl: Annotated[
        float | None,
        typer.Option("--lease-ttl",
                     help="Seconds a lease lasts without a heartbeat (longer than "
                          "--heartbeat-interval)."),
    ] = None,
    heartbeat_interval: Annotated[
        float | None,
        typer.Option("--heartbeat-interval", help="Seconds between lease renewals."),
    ] = None,
    reap_interval: Annotated[
        float | None,
        typer.Option("--reap-interval",
                     help="Seconds between looks for runs whose worker stopped renewing."),
    ] = None,
    log_level: LogLevelOption = None,
    metrics_port: Annotated[
        int | None,
        typer.Option("--metrics-port",
                     help="Serve Prometheus metrics on this port (http://HOST:PORT/metrics)."),
    ] = None,
    metrics_host: Annotated[
        str | None,
        typer.Option("--metrics-host",
                     help="Address the metrics server binds."
                     + default_help(ProcessSettings, "metrics_host")),
    ] = None,
) -> None:
    """Run the runs of MODULE:APP's workflows and a LangGraph project's graphs.

    On SIGTERM/SIGINT: stops claiming, gives running runs --grace seconds, hands back the rest.
    """
    process = _process_settings(log_level=log_level, metrics_port=metrics_port,
                                metrics_host=metrics_host)
    given = {
        "database_url": database,
        "concurrency": concurrency,
        "shutdown_grace": grace,
        "poll_interval": poll_interval,
        "lease_ttl": lease_ttl,
        "heartbeat_interval": heartbeat_interval,
        "reap_interval": reap_interval,
    }
    project = load_project(config, target)
    if target is None and project is None:
        raise _fail(f"give MODULE:APP or --config {PROJECT_FILE} (or run where ./{PROJECT_FILE} "
                    "is)")
    try:
        rp = _app_with_graphs(target, project)
        if not rp.workflows:
            raise _UsageError(f"{target or config} registers no workflows or graphs: this "
                              "worker would run nothing")
        rp.reconfigure(**{k: v for k, v in given.items() if v is not None}, worker=True)
    except (_UsageError, ValueError, TypeError, RuntimeError) as exc:
        message = _scrub(str(exc), database or "")
        if "heartbeat_interval" in message and heartbeat_interval is None:
            message += " (set --heartbeat-interval too)"
        raise _fail(message) from None
    url = rp.settings.database_url
    if process.metrics_port is not None:
        from prometheus_client import start_http_server

        where = f"{process.metrics_host}:{process.metrics_port}"
        try:
            start_http_server(process.metrics_port, addr=process.metrics_host)
        except OSError as exc:
            raise _fail(f"cannot serve metrics on {where}: {exc}") from None
        log.info("metrics on http://%s/metrics", where)
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            code = runner.run(_serve(rp))
    except ValueError as exc:  # e.g. an unsupported database URL
        raise _fail(_scrub(str(exc), url)) from None
    except Exception as exc:  # the database cannot be reached, opened or closed
        raise _fail(f"cannot run the worker on {redact_url(url)}: "
                    + _scrub(f"{type(exc).__name__}: {exc}", url)) from None
    raise typer.Exit(code)


@app.command()
def serve(
    target: Annotated[
        str | None,
        typer.Argument(metavar="[MODULE:APP]",
                       help="The app to serve, e.g. myapp.flows:app (default: the LangGraph "
                            "project in ./langgraph.json, else built-in demo assistants)."),
    ] = None,
    config: ConfigOption = None,
    database: DatabaseOption = None,
    host: Annotated[
        str | None,
        typer.Option("--host",
                     help="Address to bind."
                     + default_help(ServerSettings, "host")),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port",
                     help="Port to bind."
                     + default_help(ServerSettings, "port")),
    ] = None,
    concurrency: ConcurrencyOption = None,
    poll_interval: PollIntervalOption = None,
    grace: GraceOption = None,
    no_worker: Annotated[
        bool,
        typer.Option("--no-worker",
                     help="Serve the API only; `runplane worker` processes run the runs (on "
                          "PostgreSQL from any host, on SQLite from this one)."),
    ] = False,
    max_body_bytes: Annotated[
        int | None,
        typer.Option("--max-body-bytes",
                     help="Largest request body accepted."
                     + default_help(ServerSettings, "max_body_bytes")),
    ] = None,
    sse_heartbeat: Annotated[
        float | None,
        typer.Option("--sse-heartbeat",
                     help="Seconds between heartbeats on a quiet stream."
                     + default_help(ServerSettings, "sse_heartbeat")),
    ] = None,
    log_level: LogLevelOption = None,
    api_keys: Annotated[
        Path | None,
        typer.Option("--api-keys",
                     help="File of API keys, one 'KEY OWNER \\[admin]' a line (KEY may be "
                          "sha256:HEX). Each owner sees only its own threads and runs. "
                          "Default: RUNPLANE_API_KEYS."),
    ] = None,
    insecure: Annotated[
        bool,
        typer.Option("--insecure",
                     help="Serve a non-loopback --host without API keys: anyone who can "
                          "reach it can read and cancel every run."),
    ] = False,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option("--cors-origin",
                     help="An origin whose pages may call the API, e.g. "
                          "https://ui.example.com; repeatable ('*': any). Default: "
                          "RUNPLANE_CORS_ORIGINS (comma-separated), else loopback origins on "
                          "any port."),
    ] = None,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option("--allowed-host",
                     help="A Host header value to answer; repeatable. Default: "
                          "RUNPLANE_ALLOWED_HOSTS (comma-separated), else localhost, "
                          "127.0.0.1, [::1] and --host (any, for a wildcard --host)."),
    ] = None,
) -> None:
    """Serve the HTTP API (LangGraph Agent Server protocol), the console and a worker.

    --no-worker serves the API and the console; `runplane worker` processes run the runs.
    """
    process = _process_settings(log_level=log_level)
    project = load_project(config, target)
    try:
        server = ServerSettings.load(
            host=host, port=port, max_body_bytes=max_body_bytes, sse_heartbeat=sse_heartbeat,
            api_keys=_api_keys(api_keys), cors_origins=tuple(cors_origin or ()) or None,
            allowed_hosts=tuple(allowed_host or ()) or None)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    host, keys = server.host, server.api_keys
    handlers = None if project is None else project.auth
    if keys is None and handlers is None and not _is_loopback(host) and not insecure:
        raise _fail(f"refusing to serve {host} without API keys (anyone who can reach it could "
                    "read and cancel every run): give --api-keys FILE, serve a project with "
                    "auth.path, or give --insecure")
    given = {"database_url": database, "concurrency": concurrency,
             "poll_interval": poll_interval, "shutdown_grace": grace,
             "worker": False if no_worker else None}
    try:
        if target is None and project is None:
            from runplane.demo import demo_app

            rp = demo_app()
        else:
            rp = _app_with_graphs(target, project)
        rp.reconfigure(**{k: v for k, v in given.items() if v is not None})
    except (_UsageError, ValueError, TypeError, RuntimeError) as exc:
        raise _fail(_scrub(str(exc), database or "")) from None
    from runplane.server.serve import run_server

    url = rp.settings.database_url
    if handlers is not None:
        access = "the project's auth handlers" + (
            "" if keys is None else f", and API keys of {len(keys.owners)} owner(s)")
    elif keys is not None:
        access = f"API keys of {len(keys.owners)} owner(s): {', '.join(keys.owners)}"
    elif _is_loopback(host):
        access = "no API keys: loopback only"
    else:
        access = f"no API keys, --insecure: anyone who can reach {host} has full access"
    where = f"http://{host}:{server.port}"
    _open_database(url, "serve on")  # before saying it serves: a bad one is one line
    typer.echo(f"runplane serving {_assistants(rp) or 'no assistants'} "
               f"on {where} (console: {where}/ui; docs: {where}/docs; "
               f"database {redact_url(url)}; {access})")
    try:
        run_server(rp, server, log_level=process.log_level,
                   custom=project.http_app if project is not None else None, handlers=handlers)
    except ValueError as exc:
        raise _fail(_scrub(str(exc), url)) from None
    except Exception as exc:  # the database went away since
        raise _fail(f"cannot serve on {redact_url(url)}: "
                    + _scrub(f"{type(exc).__name__}: {exc}", url)) from None


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _api_keys(path: Path | None) -> ApiKeys | None:
    if path is None:
        return None
    from runplane.server.auth import ApiKeys

    try:
        return ApiKeys.load(path)
    except ValueError as exc:
        raise _fail(str(exc)) from None


@app.command()
def migrate(
    database: Annotated[str | None, typer.Option(
        "--database", help="Database URL, e.g. sqlite:///./runplane.db. "
                           + default_help(Settings, "database_url"))] = None,
) -> None:
    """Apply the numbered schema migrations to DATABASE (a no-op when it is up to date)."""
    url = Settings.load(database_url=database).database_url
    applied = _open_database(url, "migrate")
    shown = redact_url(url)
    if applied:
        typer.echo(f"migrations applied to {shown}: {', '.join(applied)}")
    else:
        typer.echo(f"{shown} is up to date: no migration to apply")


def _open_database(url: str, doing: str) -> list[str]:
    """Open the database at ``url`` once (migrating it) and close it; the migrations it
    applied. A URL no store takes, or a database that cannot be reached or opened, is one
    line and exit code 2 (``cannot <doing> <url>: why``)."""
    from runplane.store import open_store

    try:
        store = open_store(url)
    except ValueError as exc:
        raise _fail(_scrub(str(exc), url)) from None

    async def run() -> list[str]:
        try:
            await store.open()
            return list(store.migrations_applied)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except ValueError as exc:
        raise _fail(_scrub(str(exc), url)) from None
    except Exception as exc:  # the database cannot be reached or opened
        raise _fail(f"cannot {doing} {redact_url(url)}: "
                    + _scrub(f"{type(exc).__name__}: {exc}", url)) from None


def main() -> None:
    app()


if __name__ == "__main__":
    main()
