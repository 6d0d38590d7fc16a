"""A PostgreSQL server that is unreachable, read-only for us, or going away."""

from __future__ import annotations

import asyncio
import logging

import pytest

from store import (
    Store,
    StoreError,
    Totals,
)
from tests.helpers import free_port
from tests.postgres import SUPERUSER, PostgresServer
from tests.store.helpers import (
    TODAY,
    record,
)


async def test_open_unreachable_postgres_says_where_and_why() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(StoreError) as raised:
        await Store.open(f"postgresql://bot@127.0.0.1:{port}/bot")
    assert str(raised.value) == (
        f"cannot connect to PostgreSQL at 127.0.0.1:{port}: connection refused"
    )


async def test_open_postgres_without_write_permission(
    postgres_server: PostgresServer,
) -> None:
    url = postgres_server.create_database()
    owner = await Store.open(url)  # migrates as the owner
    await owner.close()
    database = url.rsplit("/", 1)[1]
    reader = f"reader_{database}"
    postgres_server.sql(
        database,
        f"CREATE ROLE {reader} LOGIN; GRANT SELECT ON ALL TABLES IN SCHEMA public TO {reader};",
    )
    with pytest.raises(StoreError) as raised:
        await Store.open(url.replace(f"//{SUPERUSER}@", f"//{reader}@"))
    assert str(raised.value) == (
        f"cannot write to PostgreSQL at 127.0.0.1:{postgres_server.port}: "
        "permission denied for table schema_version"
    )


async def test_postgres_going_away_raises_store_error_then_recovers(
    own_postgres_server: PostgresServer,
) -> None:
    server = own_postgres_server
    opened = await Store.open(server.url())
    try:
        await record(opened, TODAY, 1, 1)
        await asyncio.to_thread(server.halt)
        with pytest.raises(StoreError) as raised:
            await record(opened, TODAY, 1, 1)
        assert str(raised.value) == (
            f"cannot record usage in PostgreSQL at 127.0.0.1:{server.port}: connection refused"
        )
        await asyncio.to_thread(server.resume)
        # Pooled connections to the old server are replaced on their next use.
        await record(opened, TODAY, 2, 2)
        assert (await opened.user_totals(1, today=TODAY)).today == Totals(3, 3, 2)
    finally:
        await opened.close()


async def test_a_connection_the_server_ended_while_idle_raises_store_error(
    own_postgres_server: PostgresServer,
) -> None:
    """An administrator's pg_terminate_backend (or a failover) ends the pooled connection
    while it is idle. Depending on what asyncpg has read of it when the next query goes
    out, that query fails with a connection error, with asyncpg's InternalClientError
    ("cannot switch to state 15; another operation (2) is in progress": the server's
    FATAL message read, its end of the connection not yet), or (once asyncpg saw the
    end) the pool's new connection is refused here: a StoreError every time."""
    server = own_postgres_server
    opened = await Store.open(server.url())
    end = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'bot'"
    try:
        for attempt in range(1, 9):  # the timing varies: each outcome is met in a few
            await asyncio.to_thread(
                server.sql, "postgres", "ALTER DATABASE bot ALLOW_CONNECTIONS false"
            )
            await asyncio.to_thread(server.sql, "postgres", end)
            with pytest.raises(StoreError) as raised:
                await opened.ping()
            assert str(raised.value).startswith(
                f"cannot answer a health check in PostgreSQL at 127.0.0.1:{server.port}: "
            )
            assert opened.failures == attempt
            await asyncio.to_thread(
                server.sql, "postgres", "ALTER DATABASE bot ALLOW_CONNECTIONS true"
            )
            await opened.ping()  # the pool connects again
    finally:
        await opened.close()


async def test_an_outage_is_one_warning_line_not_a_traceback_every_second(
    own_postgres_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    # asyncpg's pool tries to restore its floor of connections every 1-4 s while the
    # server is down, and logs each failure with a traceback.
    caplog.set_level(logging.WARNING, "asyncpg")
    server = own_postgres_server
    opened = await Store.open(server.url())
    try:
        for outage in (1, 2):
            await asyncio.to_thread(server.halt)
            with pytest.raises(StoreError):
                await record(opened, TODAY, 1, 1)  # the pool's connection breaks
            await asyncio.sleep(6)
            floor = [r for r in caplog.records if r.name == "asyncpg.pool"]
            assert len(floor) == outage, [r.getMessage() for r in floor]
            assert floor[-1].exc_info is None and "\n" not in floor[-1].getMessage()
            assert floor[-1].getMessage().startswith("PostgreSQL unreachable (")
            await asyncio.to_thread(server.resume)
            await record(opened, TODAY, 2, 2)  # answering again: a next outage is told
    finally:
        await opened.close()
