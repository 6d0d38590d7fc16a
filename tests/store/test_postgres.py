"""A PostgreSQL server that is unreachable, read-only for us, or going away."""

from __future__ import annotations

import asyncio

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
