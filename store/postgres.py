"""The PostgreSQL backend: an asyncpg pool, for several bot processes sharing state.

asyncpg is imported only when a PostgreSQL URL is opened: a bot on SQLite never loads it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from store.errors import StoreError, reason
from store.values import naive_utc

if TYPE_CHECKING:
    import asyncpg

# How long connecting to PostgreSQL may take before open() or a query gives up.
POSTGRES_CONNECT_TIMEOUT_S = 10.0
# Connections each process keeps to PostgreSQL: the bot's queries are few and short,
# and a small pool leaves the server's connection slots to the other instances.
POSTGRES_MIN_CONNECTIONS = 1
POSTGRES_MAX_CONNECTIONS = 4


class _OneLinePerOutage(logging.Filter):
    """For asyncpg's pool logger: its "Failed to restore the pool connection floor"
    warning comes with a traceback every 1-4 s while the server is down. Keep the first
    of an outage, as one line with the reason, and drop the rest until a transaction
    succeeds again (`answered`)."""

    FLOOR = "Failed to restore the pool connection floor"

    def __init__(self) -> None:
        super().__init__()
        self.told = False

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(self.FLOOR):
            return True
        if self.told:
            return False
        self.told = True
        error = record.exc_info[1] if record.exc_info else None
        why = reason(error) if isinstance(error, Exception) else "unknown error"
        record.msg = "PostgreSQL unreachable (%s): reconnecting (said once until it answers)"
        record.args = (why,)
        record.exc_info = record.exc_text = None
        return True

    def answered(self) -> None:
        self.told = False


_outages = _OneLinePerOutage()


def _numbered(sql: str) -> str:
    """`sql` with its `?` placeholders numbered as PostgreSQL takes them: $1, $2, ...

    The store's SQL holds no `?` but placeholders (none in a literal or a name).
    """
    first, *rest = sql.split("?")
    return first + "".join(f"${number}{text}" for number, text in enumerate(rest, 1))


def _postgres_value(value: object) -> object:
    """A parameter as the TIMESTAMP WITHOUT TIME ZONE columns take it: naive UTC."""
    return naive_utc(value) if isinstance(value, dt.datetime) else value


class PostgreSQLTransaction:
    """The statements of one `PostgreSQL.transaction()`."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, *args: object) -> int:
        """Run one statement; returns how many rows it changed (0 for DDL)."""
        status = await self._conn.execute(_numbered(sql), *map(_postgres_value, args))
        # The command tag: "DELETE 3", "UPDATE 1", "CREATE TABLE".
        count = status.rpartition(" ")[2]
        return int(count) if count.isdigit() else 0

    async def fetch(self, sql: str, *args: object) -> list[Sequence[Any]]:
        """Run one query; returns its rows."""
        return await self._conn.fetch(_numbered(sql), *map(_postgres_value, args))

    async def execute_many(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        """Run one statement once per row of arguments, in one round trip."""
        await self._conn.executemany(_numbered(sql), [list(map(_postgres_value, r)) for r in rows])


def _postgres_errors() -> tuple[type[Exception], ...]:
    """What asyncpg raises when the server, the network or the connection fails.

    InternalClientError too: a query sent on a pooled connection whose server ended it
    (pg_terminate_backend, a failover) after asyncpg read the FATAL message but before
    it saw the connection close fails with it ("cannot switch to state 15; another
    operation (2) is in progress")."""
    import asyncpg

    return (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError)


class PostgreSQL:
    """An asyncpg pool; each transaction runs on one connection taken from it."""

    TIMESTAMP = "TIMESTAMP WITHOUT TIME ZONE"
    # Looked up in the search path, as CREATE TABLE would place it.
    HAS_VERSION_TABLE = "SELECT to_regclass('schema_version') IS NOT NULL"

    def __init__(self, pool: asyncpg.Pool) -> None:
        """Use `PostgreSQL.open`; this only keeps a pool that is connected."""
        import asyncpg

        self._pool = pool
        self.errors = _postgres_errors()
        self.duplicate_key: type[Exception] = asyncpg.UniqueViolationError

    @classmethod
    async def open(cls, url: str, where: str) -> PostgreSQL:
        """A pool with its first connection made; StoreError saying why when it cannot."""
        import asyncpg

        try:
            pool = await asyncpg.create_pool(
                url,
                min_size=POSTGRES_MIN_CONNECTIONS,
                max_size=POSTGRES_MAX_CONNECTIONS,
                timeout=POSTGRES_CONNECT_TIMEOUT_S,
            )
        except _postgres_errors() as error:
            raise StoreError(f"cannot connect to {where}: {reason(error)}") from None
        logging.getLogger("asyncpg.pool").addFilter(_outages)  # once: a set of filters
        return cls(pool)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgreSQLTransaction]:
        """One transaction: committed when the block ends, rolled back if anything raises.

        A pooled connection the server closed is replaced when it is next taken.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            yield PostgreSQLTransaction(conn)
        _outages.answered()

    async def close(self) -> None:
        """Close every pooled connection, once the transactions in progress have ended."""
        await self._pool.close()
