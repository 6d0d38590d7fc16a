"""`Store`: the table mixins over one opened and migrated database."""

from __future__ import annotations

from pathlib import Path

from store.database import Database
from store.knowledge import KnowledgeTable
from store.migrations import set_up
from store.postgres import PostgreSQL
from store.settings import SettingsTable
from store.sqlite import SQLite, prepare_sqlite_path
from store.summaries import SummariesTable
from store.urls import database_url
from store.usage import UsageTable


class Store(SettingsTable, UsageTable, SummariesTable, KnowledgeTable):
    """Settings, usage, summaries and the knowledge index in one database.

    Create it with `await Store.open(url)`.

    All methods are coroutines that do their I/O on the async driver. Any database
    failure raises StoreError (one line, naming the operation and the reason); invalid
    arguments raise ValueError.
    """

    @classmethod
    async def open(cls, url: str) -> Store:
        """Open the database at `url` (see `database_url`), migrated and writable.

        For SQLite, creates the file's directory first. Raises StoreError with a reason
        such as "cannot create data: permission denied" or "cannot connect to PostgreSQL
        at db:5432: connection refused".
        """
        parsed = database_url(url)
        db: Database
        if parsed.backend == "sqlite":
            await prepare_sqlite_path(Path(parsed.target))
            db = await SQLite.open(parsed.target)
        else:
            db = await PostgreSQL.open(parsed.target, parsed.where)
        try:
            await set_up(db, parsed.where)
        except BaseException:
            await db.close()
            raise
        return cls(db, parsed.where)

    async def close(self) -> None:
        """Close the database connections; the store is unusable afterwards."""
        await self._db.close()
