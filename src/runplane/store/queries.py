"""SQL by name: every statement of a dialect lives in its ``.sql`` file, loaded once.

A file is a sequence of statements, each under a ``-- name: NAME`` line; the comment
lines right after the name say what the statement is for and stay in the file. Both
dialects give a statement the same name and take its parameters in the same order
(``$1`` … on PostgreSQL, ``?1`` … on SQLite), so :mod:`runplane.store.transactions`
calls them without knowing which database it talks to. What the databases do
differently (row locks, arrays, upserts) is written in each file, where it is SQL.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_NAME = re.compile(r"^-- name: ([a-z_][a-z0-9_]*)\s*$")


class Queries(dict[str, str]):
    """A dialect's statements by name (a dict: a lookup costs what a dict's does); an
    unknown name raises KeyError naming the file."""

    def __init__(self, source: str, statements: dict[str, str]) -> None:
        super().__init__(statements)
        self.source = source

    def __missing__(self, name: str) -> str:
        raise KeyError(f"no statement named {name!r} in {self.source}")


def parse(source: str, text: str) -> Queries:
    """The statements of ``text``; a duplicate or empty name is an error (a typo would
    otherwise shadow a statement silently)."""
    statements: dict[str, list[str]] = {}
    current: list[str] | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if match := _NAME.match(line):
            name = match.group(1)
            if name in statements:
                raise ValueError(f"{source}:{number}: statement {name!r} named twice")
            current = statements[name] = []
        elif current is not None and not (line.startswith("--") and not current):
            current.append(line)
        elif current is None and line.strip() and not line.startswith("--"):
            raise ValueError(f"{source}:{number}: SQL before the first '-- name:' line")
    bodies = {name: "\n".join(_without_trailing_comments(lines)) for name, lines in
              statements.items()}
    for name, body in bodies.items():
        if not body:
            raise ValueError(f"{source}: statement {name!r} is empty")
    return Queries(source, bodies)


def _without_trailing_comments(lines: list[str]) -> list[str]:
    """A statement's lines without the comments and blank lines that follow it (they
    introduce the next statement or section)."""
    end = len(lines)
    while end and (not lines[end - 1].strip() or lines[end - 1].startswith("--")):
        end -= 1
    return lines[:end]


@cache
def load(dialect: str) -> Queries:
    """``runplane/store/{dialect}.sql``, parsed once per process."""
    path = resources.files("runplane.store") / f"{dialect}.sql"
    return parse(f"{dialect}.sql", path.read_text())
