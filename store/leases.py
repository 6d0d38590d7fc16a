"""Shard leases: PostgreSQL session advisory locks on one dedicated connection.

A session-level advisory lock (PostgreSQL manual, "Advisory Locks") is held until it is
unlocked or the session ends, and the server ends the session when the connection drops:
a process that dies, however it dies, lets its locks go. That is why the locks live on a
connection of their own and not on a pooled one, which the pool could close or hand to
another query. Nothing here exists for SQLite (one process holds its file).

asyncpg is imported only when a lease connection is opened.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from store.errors import StoreError, reason
from store.postgres import POSTGRES_CONNECT_TIMEOUT_S, _postgres_errors

if TYPE_CHECKING:
    import asyncpg

# The first bits of every lease key, so that the bot's locks cannot meet another
# program's in the same database: b"CBS" ("chat bot shard"), below 2**23 so the key
# stays a positive bigint. pg_locks shows a bigint key as classid (high 32 bits) and
# objid (low 32 bits): classid 0x434253__ is the bot's.
LEASE_NAMESPACE = 0x434253
SHARD_BITS = 20  # shard ids and counts below 2**20 (config caps counts at 100,000)

# The server probes an idle lease connection after this many seconds, then every few
# seconds, and ends the session (freeing the locks) after a few unanswered probes: a
# holder whose machine vanished without closing its socket loses its shards in ~25 s.
KEEPALIVE_SETTINGS = {
    "tcp_keepalives_idle": "10",
    "tcp_keepalives_interval": "5",
    "tcp_keepalives_count": "3",
    "application_name": "chatbot shard lease",
}


def lease_key(shard_id: int, shard_count: int) -> int:
    """The advisory-lock key (a positive bigint) of shard `shard_id` of `shard_count`.

    The count is part of it: shard 0 of 2 and shard 0 of 4 hold different guilds.
    Raises ValueError for a shard that cannot exist or ids past 2**20.
    """
    if not 0 <= shard_id < shard_count < 1 << SHARD_BITS:
        raise ValueError(f"no shard {shard_id} of {shard_count}")
    return LEASE_NAMESPACE << 2 * SHARD_BITS | shard_count << SHARD_BITS | shard_id


class LeaseConnection:
    """One dedicated PostgreSQL connection holding advisory locks.

    Every method raises StoreError with a one-line reason when the server or the
    connection fails. One query at a time: `lock` waits on the server, so do not
    `ping` while a `lock` is waiting.
    """

    def __init__(self, conn: asyncpg.Connection) -> None:
        """Use `LeaseConnection.open`."""
        self._conn = conn
        self._errors = _postgres_errors()

    @classmethod
    async def open(cls, url: str, where: str) -> LeaseConnection:
        """Connect to `url` (a postgresql:// URL as asyncpg reads it); `where` names it in
        errors ("PostgreSQL at host:port")."""
        import asyncpg

        try:
            conn = await asyncpg.connect(
                url, timeout=POSTGRES_CONNECT_TIMEOUT_S, server_settings=KEEPALIVE_SETTINGS
            )
        except _postgres_errors() as error:
            raise StoreError(f"cannot connect to {where}: {reason(error)}") from None
        return cls(conn)

    async def try_lock(self, key: int) -> bool:
        """Take the lock `key` if nobody holds it (pg_try_advisory_lock); whether taken."""
        try:
            return bool(await self._conn.fetchval("SELECT pg_try_advisory_lock($1)", key))
        except self._errors as error:
            raise StoreError(reason(error)) from None

    async def lock(self, key: int) -> None:
        """Wait until the lock `key` is free and take it (pg_advisory_lock). Cancelling the
        wait cancels the query on the server."""
        try:
            await self._conn.execute("SELECT pg_advisory_lock($1)", key)
        except self._errors as error:
            raise StoreError(reason(error)) from None

    async def unlock_all(self) -> None:
        """Let go of every lock this connection holds (pg_advisory_unlock_all)."""
        try:
            await self._conn.execute("SELECT pg_advisory_unlock_all()")
        except self._errors as error:
            raise StoreError(reason(error)) from None

    async def ping(self, within: float) -> None:
        """A trivial query answered within `within` seconds, else StoreError: the
        connection (and with it every lock) may be gone."""
        try:
            async with asyncio.timeout(within):
                await self._conn.fetchval("SELECT 1")
        except (TimeoutError, *self._errors) as error:
            raise StoreError(reason(error)) from None

    def when_closed(self, callback: Callable[[], None]) -> None:
        """Call `callback()` once the connection closes, whoever closes it."""
        self._conn.add_termination_listener(lambda _conn: callback())

    @property
    def closed(self) -> bool:
        return self._conn.is_closed()

    async def close(self) -> None:
        """Close the connection; the server then frees every lock it held."""
        if self._conn.is_closed():
            return
        try:
            async with asyncio.timeout(POSTGRES_CONNECT_TIMEOUT_S):
                await self._conn.close()
        except (TimeoutError, *self._errors):
            self._conn.terminate()
