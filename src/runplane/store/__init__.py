"""Stores: where runs, steps, events and threads live. Chosen by database URL."""

from __future__ import annotations

from runplane.store.base import Store


def open_store(url: str) -> Store:
    """A store for ``url`` (not yet opened)."""
    if url.startswith("sqlite:"):
        from runplane.store.sqlite import SQLiteStore

        return SQLiteStore(url)
    if url.startswith(("postgresql:", "postgres:")):
        from runplane.store.postgres import PostgresStore

        return PostgresStore(url)
    # the scheme only: the rest of a URL may hold a password
    raise ValueError(
        f"unsupported database URL scheme {url.partition(':')[0]!r}; expected "
        "sqlite:///path/to/file.db or postgresql://user@host:5432/db"
    )


__all__ = ["Store", "open_store"]
