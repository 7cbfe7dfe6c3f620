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
    raise ValueError(
        f"unsupported database URL {url!r}; expected sqlite:///path/to/file.db or "
        "postgresql://user@host:5432/db"
    )


__all__ = ["Store", "open_store"]
