"""What every table module builds on: the open backend and its one-statement helpers."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from store.errors import StoreError, reason
from store.postgres import PostgreSQL
from store.sqlite import SQLite

# Both backends run the same SQL text, written with `?` placeholders.
Database = SQLite | PostgreSQL


class Table:
    """Base of the table mixins `Store` is made of: the database and where it is."""

    def __init__(self, db: Database, where: str) -> None:
        """Use `Store.open`; this only keeps a database that is already migrated."""
        self._db = db
        self.where = where  # "path/to/bot.db" or "PostgreSQL at host:port", for messages
        self.failures = 0  # StoreErrors raised by its queries (operations/metrics.py reads it)

    @contextlib.asynccontextmanager
    async def _failing_as(self, action: str) -> AsyncIterator[None]:
        """Turn the driver's errors in the block into StoreError("cannot <action> in ...")."""
        try:
            yield
        except self._db.errors as error:
            self.failures += 1
            raise StoreError(f"cannot {action} in {self.where}: {reason(error)}") from error

    async def ping(self) -> None:
        """One trivial query, for health checks; StoreError when the database fails it."""
        await self._fetch("answer a health check", "SELECT 1")

    async def _execute(self, action: str, sql: str, *args: object) -> int:
        """Run one statement in its own transaction; how many rows it changed."""
        async with self._failing_as(action), self._db.transaction() as tx:
            return await tx.execute(sql, *args)

    async def _fetch(self, action: str, sql: str, *args: object) -> list[Sequence[Any]]:
        """Run one query in its own transaction; its rows."""
        async with self._failing_as(action), self._db.transaction() as tx:
            return await tx.fetch(sql, *args)
