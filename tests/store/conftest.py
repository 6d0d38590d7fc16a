"""The store's fixtures: an empty database of each backend, and a store opened on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from store import Store
from tests.postgres import (  # noqa: F401 - fixtures
    PostgresServer,
    own_postgres_server,
    postgres_server,
)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database: a file under a not-yet-existing data/, or a new PG db."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/data/bot.db"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    url = server.create_database()
    yield url
    # Each database is a copy of the template (megabytes): do not keep fifty of them.
    server.drop_database(url.rsplit("/", 1)[1])


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(store_url)
    yield opened
    await opened.close()
