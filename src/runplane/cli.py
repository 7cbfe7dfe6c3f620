"""The ``runplane`` command line: it parses options and hands over to the library.

Each command is one ``@app.command()`` function, so ``serve``, ``worker`` and
``migrate`` slot in beside ``demo`` without touching it.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(
    name="runplane",
    help="A durable control plane for AI-agent and workflow runs.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def cli() -> None:
    """A durable control plane for AI-agent and workflow runs."""


def _fresh_sqlite_url() -> str:
    """A new file per demo, so a demo never mixes its runs with earlier ones."""
    folder = Path(tempfile.mkdtemp(prefix="runplane-demo-"))
    return f"sqlite:///{folder / 'demo.db'}"


@app.command()
def demo(
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            help="Database URL, e.g. sqlite:///./demo.db (default: a fresh temporary file).",
        ),
    ] = None,
) -> None:
    """Run a few workflows: one succeeds, one is stopped mid-flight, one resumes, one fails."""
    from runplane.demo import run_demo

    console = Console()
    url = database or _fresh_sqlite_url()
    console.print(f"database: {url}", soft_wrap=True, highlight=False)
    asyncio.run(run_demo(url, console))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
