"""`Store`: the table mixins over one opened and migrated database."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from store.claims import ClaimsTable
from store.database import Database
from store.knowledge import KnowledgeTable
from store.migrations import set_up
from store.notifications import Listener
from store.postgres import PostgreSQL
from store.settings import SettingsTable
from store.sqlite import SQLite, prepare_sqlite_path
from store.summaries import SummariesTable
from store.urls import database_url
from store.usage import UsageTable


class Store(SettingsTable, UsageTable, SummariesTable, KnowledgeTable, ClaimsTable):
    """Settings, usage, summaries, the knowledge index and claims in one database.

    Create it with `await Store.open(url)`.

    All methods are coroutines that do their I/O on the async driver. Any database
    failure raises StoreError (one line, naming the operation and the reason); invalid
    arguments raise ValueError.
    """

    # PostgreSQL: the URL a listener connects to on a connection of its own.
    _listen_url: str | None = None

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
        store = cls(db, parsed.where)
        if parsed.backend == "postgresql":
            store._listen_url = parsed.target
        return store

    @property
    def shared(self) -> bool:
        """Whether other bot processes may use this database too (PostgreSQL); SQLite is
        one process's."""
        return self._listen_url is not None

    async def notify(self, channel: str, payload: str) -> None:
        """Send `payload` to every process LISTENing on `channel` (PostgreSQL's
        pg_notify; delivered when it commits, to this process's listener too)."""
        await self._execute("send news", "SELECT pg_notify(?, ?)", channel, payload)

    def listener(
        self, channel: str, on_news: Callable[[str], None], on_gap: Callable[[], None]
    ) -> Listener:
        """A `Listener` (not yet started) on `channel` of this PostgreSQL; ValueError on
        SQLite, which has no notifications."""
        if self._listen_url is None:
            raise ValueError("only PostgreSQL sends notifications")
        return Listener(self._listen_url, channel, on_news, on_gap)

    async def close(self) -> None:
        """Close the database connections; the store is unusable afterwards."""
        await self._db.close()
