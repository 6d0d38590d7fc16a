"""DATABASE_URL values: what the store gives each driver, and what it refuses."""

from __future__ import annotations

import os

import pytest

from store import (
    DatabaseURL,
    StoreError,
    database_url,
)


def test_database_url_maps_to_the_drivers() -> None:
    postgres = database_url("postgres://u:p@db:5433/bot")
    assert (postgres.backend, postgres.target) == ("postgresql", "postgresql://u:p@db:5433/bot")
    assert postgres.where == "PostgreSQL at db:5433"
    assert "p@" not in repr(postgres)
    assert database_url("postgresql://db/bot") == DatabaseURL(
        "postgresql", "postgresql://db/bot", "PostgreSQL at db:5432"
    )
    assert database_url("postgresql+psycopg2://db/bot").target == "postgresql://db/bot"
    # Options are asyncpg's to read (and to pass to the server when not its own).
    assert database_url("postgresql+asyncpg://u@[::1]/bot?sslmode=require") == DatabaseURL(
        "postgresql", "postgresql://u@[::1]/bot?sslmode=require", "PostgreSQL at ::1:5432"
    )
    assert database_url("postgresql:///bot").where == "PostgreSQL at localhost:5432"
    # A URL may give the TLS mode as ssl= (asyncpg.connect()'s name); asyncpg reads sslmode=.
    assert database_url("postgresql://db/bot?ssl=require&application_name=b%20t").target == (
        "postgresql://db/bot?sslmode=require&application_name=b+t"
    )
    assert database_url("sqlite:///data/bot.db") == DatabaseURL(
        "sqlite", "data/bot.db", "data/bot.db"
    )
    assert database_url("sqlite:////var/bot.db").target == "/var/bot.db"
    assert database_url("sqlite:///my%20bot.db").target == "my bot.db"
    assert database_url("data/bot.db") == DatabaseURL("sqlite", "data/bot.db", "data/bot.db")
    assert database_url("/var/lib/bot.db").target == "/var/lib/bot.db"
    assert database_url("~/bot.db").target == os.path.expanduser("~/bot.db")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("mysql://db/bot", "unsupported scheme 'mysql'"),
        ("sqlite://", "sqlite:// needs a file path"),
        ("sqlite:///:memory:", "sqlite:// needs a file path"),
        ("sqlite:///bot.db?mode=ro", "take no ?options"),
        ("sqlite://host/bot.db", "sqlite:// needs a file path"),
        ("postgresql://db:abc/bot", "cannot parse postgresql:// URL: Port could not be cast"),
        ("postgres://db:99999/bot", "cannot parse postgres:// URL: Port out of range"),
        ("postgresql://[db/bot", "cannot parse postgresql:// URL: Invalid IPv6 URL"),
        ("  ", "empty"),
    ],
)
def test_database_url_rejects_what_it_cannot_open(url: str, reason: str) -> None:
    with pytest.raises(StoreError, match=reason.replace("?", r"\?")):
        database_url(url)
