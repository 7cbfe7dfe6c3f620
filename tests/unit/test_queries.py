"""The SQL files: parsed by name, and both dialects name every statement the shared
transactions run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import runplane
from runplane.store import queries

SRC = Path(runplane.__file__).parent


def test_statements_by_name_without_their_comments():
    parsed = queries.parse("x.sql", """\
-- the file's own header
-- name: first
-- what it is for
SELECT 1
  -- a comment inside stays
  FROM t

-- ===== a section =====
-- name: second
UPDATE t SET a = $1
""")
    assert dict(parsed) == {
        "first": "SELECT 1\n  -- a comment inside stays\n  FROM t",
        "second": "UPDATE t SET a = $1",
    }


@pytest.mark.parametrize(("text", "error"), [
    ("-- name: a\nSELECT 1\n-- name: a\nSELECT 2\n", "x.sql:3: statement 'a' named twice"),
    ("-- name: a\n-- only a comment\n\n-- name: b\nSELECT 1\n", "statement 'a' is empty"),
    ("SELECT 1\n-- name: a\nSELECT 2\n", "x.sql:1: SQL before the first '-- name:' line"),
])
def test_a_malformed_file_is_refused_naming_the_line(text: str, error: str):
    with pytest.raises(ValueError, match=re.escape(error)):
        queries.parse("x.sql", text)


def test_an_unknown_name_raises_naming_the_file():
    with pytest.raises(KeyError, match=re.escape("no statement named 'nope' in sqlite.sql")):
        queries.load("sqlite")["nope"]


def _names_used(path: Path) -> set[str]:
    """The statement names a module's source passes as string literals to a Tx call (or to
    SQLite's functions of the connection) or looks up in _QUERIES."""
    text = path.read_text()
    calls = re.findall(r'(?:row|rows|value|execute)\(\s*(?:conn,\s*)?"([a-z_]+)"', text)
    chosen = re.findall(r'"([a-z_]+)" if lock else "([a-z_]+)"', text)
    looked_up = re.findall(r"""_QUERIES\[["']([a-z_]+)["']\]""", text)
    return {*calls, *(name for pair in chosen for name in pair), *looked_up}


def test_both_dialects_have_every_statement_the_shared_transactions_run():
    shared = _names_used(SRC / "store" / "transactions.py")
    assert {"cancel", "insert_run", "get_run_for_update", "claim", "reap"} <= shared
    for dialect in ("sqlite", "postgres"):
        missing = shared - set(queries.load(dialect))
        assert not missing, f"{dialect}.sql lacks {sorted(missing)}"


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_every_statement_of_a_dialect_is_used(dialect: str):
    used = _names_used(SRC / "store" / "transactions.py") | \
        _names_used(SRC / "store" / f"{dialect}.py")
    unused = set(queries.load(dialect)) - used
    assert not unused, f"{dialect}.sql has statements nothing runs: {sorted(unused)}"

