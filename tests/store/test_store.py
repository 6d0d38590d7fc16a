"""The store against a real SQLite file and a real PostgreSQL server (tests/postgres.py)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

import store as store_module
from store import (
    MIGRATIONS,
    ChannelUsage,
    DatabaseURL,
    Scope,
    Store,
    StoreError,
    Totals,
    UsageRow,
    UserUsage,
    database_url,
)
from tests.postgres import (  # noqa: F401 - fixtures
    SUPERUSER,
    PostgresServer,
    free_port,
    own_postgres_server,
    postgres_server,
)

ROOT = Path(__file__).resolve().parents[2]
TODAY = dt.date(2026, 3, 31)


def days_ago(n: int) -> dt.date:
    return TODAY - dt.timedelta(days=n)


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


async def run_sql(url: str, sql: str) -> list[tuple[object, ...]]:
    """Run one statement (no parameters) with the database's own driver, around the
    store, and commit; its rows."""
    target = database_url(url)
    if target.backend == "sqlite":

        def run() -> list[tuple[object, ...]]:
            with contextlib.closing(sqlite3.connect(target.target)) as conn, conn:
                return conn.execute(sql).fetchall()

        return await asyncio.to_thread(run)
    conn = await asyncpg.connect(target.target)
    try:
        return [tuple(row) for row in await conn.fetch(sql)]
    finally:
        await conn.close()


async def schema_versions(url: str) -> list[int]:
    """The versions recorded in schema_version, read around the store."""
    rows = await run_sql(url, "SELECT version FROM schema_version ORDER BY version")
    return [int(version) for (version,) in rows]  # type: ignore[call-overload]


SHAPE = {
    ("sqlite", "columns"): """
        SELECT m.name, p.name, p.type, p."notnull", p.pk
        FROM sqlite_master AS m, pragma_table_info(m.name) AS p
        WHERE m.type = 'table' ORDER BY m.name, p.cid""",
    # Every table's and index's definition, as SQLite keeps its text.
    ("sqlite", "indexes"): "SELECT tbl_name, name, sql FROM sqlite_master ORDER BY name",
    ("postgresql", "columns"): """
        SELECT table_name, column_name, data_type, character_maximum_length, is_nullable
        FROM information_schema.columns WHERE table_schema = 'public'
        ORDER BY table_name, ordinal_position""",
    ("postgresql", "indexes"): """
        SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'
        UNION ALL
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
        WHERE connamespace = 'public'::regnamespace
        ORDER BY 2, 3""",
}


async def shape(url: str, part: str) -> list[tuple[object, ...]]:
    """The database's tables' columns with their types, or its indexes and constraints
    (SQLite: all definitions, with their whitespace made single spaces)."""
    rows = await run_sql(url, SHAPE[database_url(url).backend, part])
    return [tuple(" ".join(v.split()) if isinstance(v, str) else v for v in r) for r in rows]


async def run_python(code: str, *args: str) -> asyncio.subprocess.Process:
    """Start `code` in a separate Python process that can import the bot's modules."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, *args,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


# --- Opening -------------------------------------------------------------------------


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
    # ssl= was how the SQLAlchemy-era store took the TLS mode; asyncpg's URL says sslmode=.
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


async def test_open_creates_the_directory_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "data" / "bot.db"
    opened = await Store.open(str(path))
    await opened.close()
    assert path.is_file()
    assert opened.where == str(path)


async def test_open_where_a_file_blocks_the_directory(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("not a directory")
    with pytest.raises(StoreError) as raised:
        await Store.open(f"sqlite:///{tmp_path}/data/bot.db")
    assert str(raised.value) == (
        f"cannot create {tmp_path}/data: {tmp_path}/data is not a directory"
    )


async def test_open_a_directory_as_the_file(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=f"^cannot open {tmp_path}: it is a directory$"):
        await Store.open(str(tmp_path))


async def test_open_unreachable_postgres_says_where_and_why() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(StoreError) as raised:
        await Store.open(f"postgresql://bot@127.0.0.1:{port}/bot")
    assert str(raised.value) == (
        f"cannot connect to PostgreSQL at 127.0.0.1:{port}: connection refused"
    )


async def test_open_postgres_without_write_permission(
    postgres_server: PostgresServer,  # noqa: F811
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


async def test_sqlite_runs_in_wal_with_full_sync_and_a_busy_timeout(tmp_path: Path) -> None:
    opened = await Store.open(str(tmp_path / "bot.db"))
    try:
        # The store's own connection: synchronous and busy_timeout are per connection.
        conn = opened._db._conn  # type: ignore[union-attr]
        pragmas = {
            name: (await conn.execute_fetchall(f"PRAGMA {name}"))[0][0]
            for name in ("journal_mode", "synchronous", "busy_timeout")
        }
    finally:
        await opened.close()
    # synchronous 2 is FULL.
    assert pragmas == {
        "journal_mode": "wal",
        "synchronous": 2,
        "busy_timeout": store_module.SQLITE_BUSY_TIMEOUT_MS,
    }


def test_importing_the_bot_loads_no_sqlalchemy_greenlet_or_asyncpg() -> None:
    # The store talks to aiosqlite directly and imports asyncpg only for a PostgreSQL
    # URL: SQLAlchemy's async engine (with greenlet) cost ~17 MB of the bot's RSS.
    code = (
        "import bot, sys; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'sqlalchemy', 'greenlet', 'asyncpg'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[]\n"


# --- Settings ------------------------------------------------------------------------


async def test_settings_round_trip(store: Store) -> None:
    guild = Scope("guild", 10)
    before = dt.datetime.now(dt.UTC)
    await store.set_setting(guild, "model", "gpt-4o", updated_by=501)
    await store.set_setting(guild, "temperature", "0.3", updated_by=501)

    found = (await store.get_settings([guild]))[guild]
    assert {key: s.value for key, s in found.items()} == {"model": "gpt-4o", "temperature": "0.3"}
    assert found["model"].updated_by == 501
    assert found["model"].scope == guild
    assert before - dt.timedelta(seconds=1) <= found["model"].updated_at
    assert found["model"].updated_at <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)

    await store.set_setting(guild, "model", "o3", updated_by=None)
    changed = (await store.get_settings([guild]))[guild]["model"]
    assert (changed.value, changed.updated_by) == ("o3", None)
    assert changed.updated_at >= found["model"].updated_at

    assert await store.delete_setting(guild, "model") is True
    assert await store.delete_setting(guild, "model") is False
    assert await store.resolve_settings([guild]) == {"temperature": "0.3"}

    await store.set_setting(guild, "persona", "pirate")
    await store.set_setting(Scope("channel", 10), "persona", "judge")
    assert await store.clear_scope(guild) == 2
    assert await store.clear_scope(guild) == 0
    # Same id, other kind: untouched.
    assert await store.resolve_settings([Scope("channel", 10)]) == {"persona": "judge"}


async def test_settings_values_keep_text_exactly(store: Store) -> None:
    text = "Line one\n«quotes» 'single' \"double\" — emoji 🦜 and a % and a _"
    await store.set_setting(Scope("dm", 77), "system_prompt", text)
    assert await store.resolve_settings([Scope("dm", 77)]) == {"system_prompt": text}


async def test_scope_chain_most_specific_wins(store: Store) -> None:
    guild, parent, thread = Scope("guild", 1), Scope("channel", 2), Scope("channel", 3)
    await store.set_setting(guild, "model", "guild-model")
    await store.set_setting(guild, "temperature", "0.2")
    await store.set_setting(guild, "persona", "guild-persona")
    await store.set_setting(parent, "model", "parent-model")
    await store.set_setting(parent, "persona", "parent-persona")
    await store.set_setting(thread, "persona", "thread-persona")
    await store.set_setting(Scope("guild", 99), "model", "other-guild")

    assert await store.resolve_settings([guild, parent, thread]) == {
        "model": "parent-model",
        "temperature": "0.2",
        "persona": "thread-persona",
    }
    assert await store.resolve_settings([guild]) == {
        "model": "guild-model",
        "temperature": "0.2",
        "persona": "guild-persona",
    }
    everything = await store.get_settings([guild, parent, thread, Scope("dm", 5)])
    assert list(everything) == [guild, parent, thread, Scope("dm", 5)]
    assert sorted(everything[parent]) == ["model", "persona"]
    assert everything[Scope("dm", 5)] == {}
    assert await store.get_settings([]) == {}


async def test_invalid_arguments_fail_alike_on_both_backends(store: Store) -> None:
    with pytest.raises(ValueError, match="scope kind"):
        await store.set_setting(Scope("server", 1), "model", "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="setting key"):
        await store.set_setting(Scope("guild", 1), "k" * 101, "x")
    with pytest.raises(ValueError, match="model name"):
        await record(store, TODAY, 1, 1, model="m" * 201)
    # The longest allowed values fit on both (PostgreSQL enforces the widths).
    await store.set_setting(Scope("guild", 1), "k" * 100, "x")
    await record(store, TODAY, 1, 1, model="m" * 200)
    assert await store.resolve_settings([Scope("guild", 1)]) == {"k" * 100: "x"}
    assert (await store.usage_rows(100, days=1, today=TODAY))[0].model == "m" * 200


# --- Usage ---------------------------------------------------------------------------


async def record(
    store: Store,
    day: dt.date,
    prompt: int,
    completion: int,
    *,
    user: int = 1,
    guild: int | None = 100,
    channel: int = 200,
    model: str = "gpt-4o",
) -> None:
    row = UsageRow(day, user, guild or 0, channel, model, prompt, completion, 1)
    await store.record_usage([row])


async def test_usage_increments_one_row_per_day_user_channel_model(store: Store) -> None:
    await record(store, TODAY, 100, 10)
    await record(store, TODAY, 50, 5)
    await record(store, TODAY, 1, 1, model="o3")
    await record(store, TODAY, 7, 3, guild=None, channel=900)  # a DM
    await store.record_usage([UsageRow(TODAY, 1, 100, 200, "gpt-4o", 0, 0, 0)])

    rows = await store.usage_rows(100, days=1, today=TODAY)
    assert rows == [
        UsageRow(TODAY, 1, 100, 200, "gpt-4o", 150, 15, 2),
        UsageRow(TODAY, 1, 100, 200, "o3", 1, 1, 1),
    ]
    assert await store.usage_rows(0, days=1, today=TODAY) == [
        UsageRow(TODAY, 1, 0, 900, "gpt-4o", 7, 3, 1)
    ]
    with pytest.raises(ValueError):
        await record(store, TODAY, -1, 0)


async def test_user_totals_today_7_and_30_days(store: Store) -> None:
    await record(store, TODAY, 100, 10)
    await record(store, TODAY, 1, 1, guild=None, channel=900)
    await record(store, days_ago(6), 20, 2)  # last day inside the 7-day window
    await record(store, days_ago(7), 3000, 300, guild=555)  # just outside it
    await record(store, days_ago(29), 40000, 4000)  # last day inside 30
    await record(store, days_ago(30), 999999, 99999)  # outside everything
    await record(store, TODAY, 5, 5, user=2)  # somebody else

    totals = await store.user_totals(1, today=TODAY)
    assert totals.today == Totals(101, 11, 2)
    assert totals.last_7_days == Totals(121, 13, 3)
    assert totals.last_30_days == Totals(43121, 4313, 5)
    assert totals.last_30_days.tokens == 47434

    in_guild = await store.user_totals(1, guild_id=100, today=TODAY)
    assert in_guild.today == Totals(100, 10, 1)
    assert in_guild.last_7_days == Totals(120, 12, 2)
    assert in_guild.last_30_days == Totals(40120, 4012, 3)
    assert (await store.user_totals(1, guild_id=0, today=TODAY)).today == Totals(1, 1, 1)

    nobody = await store.user_totals(42, today=TODAY)
    assert nobody.today == nobody.last_30_days == Totals(0, 0, 0)


async def test_top_users_and_channels_of_a_guild(store: Store) -> None:
    await record(store, TODAY, 100, 0, user=1, channel=10)
    await record(store, days_ago(3), 100, 50, user=2, channel=10)
    await record(store, days_ago(29), 100, 100, user=3, channel=11)
    await record(store, days_ago(29), 0, 100, user=1, channel=12)  # ties user 3 in total
    await record(store, days_ago(30), 10**6, 0, user=4, channel=13)  # too old
    await record(store, TODAY, 10**6, 0, user=5, guild=999, channel=14)  # another guild

    users = await store.top_users(100, today=TODAY)
    assert users == [
        UserUsage(1, Totals(100, 100, 2)),  # ties with 3 on 200 tokens: lower id first
        UserUsage(3, Totals(100, 100, 1)),
        UserUsage(2, Totals(100, 50, 1)),
    ]
    assert await store.top_users(100, limit=1, today=TODAY) == users[:1]
    assert await store.top_users(100, days=7, today=TODAY) == [
        UserUsage(2, Totals(100, 50, 1)),
        UserUsage(1, Totals(100, 0, 1)),
    ]

    channels = await store.top_channels(100, today=TODAY)
    assert channels == [
        ChannelUsage(10, Totals(200, 50, 2)),
        ChannelUsage(11, Totals(100, 100, 1)),
        ChannelUsage(12, Totals(0, 100, 1)),
    ]
    assert await store.top_channels(12345, today=TODAY) == []


async def test_usage_rows_for_export_cover_n_days_in_order(store: Store) -> None:
    await record(store, TODAY, 1, 1, user=2, channel=20)
    await record(store, TODAY, 2, 2, user=1, channel=21, model="b")
    await record(store, TODAY, 3, 3, user=1, channel=21, model="a")
    await record(store, days_ago(2), 4, 4, user=9)
    await record(store, days_ago(3), 5, 5, user=9)  # outside 3 days
    await record(store, TODAY, 6, 6, guild=7)  # another guild

    rows = await store.usage_rows(100, days=3, today=TODAY)
    assert [(r.day, r.user_id, r.channel_id, r.model) for r in rows] == [
        (days_ago(2), 9, 200, "gpt-4o"),
        (TODAY, 1, 21, "a"),
        (TODAY, 1, 21, "b"),
        (TODAY, 2, 20, "gpt-4o"),
    ]
    assert all(r.guild_id == 100 for r in rows)
    assert rows[1] == UsageRow(TODAY, 1, 100, 21, "a", 3, 3, 1)


async def test_tokens_on_a_day_count_every_guild_and_dm(store: Store) -> None:
    await record(store, TODAY, 100, 20, guild=1)
    await record(store, TODAY, 30, 4, guild=2, model="o3")
    await record(store, TODAY, 5, 1, guild=None, channel=3)
    await record(store, days_ago(1), 1000, 1000)
    await record(store, TODAY, 1000, 1000, user=2)

    assert await store.tokens_on_day(1, TODAY) == 160
    assert await store.tokens_on_day(1, days_ago(1)) == 2000
    assert await store.tokens_on_day(1, days_ago(2)) == 0


async def test_prune_keeps_exactly_the_retention_window(store: Store) -> None:
    for age in (0, 1, 89, 90, 91, 400):
        await record(store, days_ago(age), age + 1, 0, channel=age)

    assert await store.prune_usage(90, today=TODAY) == 3  # ages 90, 91 and 400
    kept = await store.usage_rows(100, days=1000, today=TODAY)
    assert sorted(r.channel_id for r in kept) == [0, 1, 89]
    assert await store.prune_usage(90, today=TODAY) == 0
    assert await store.prune_usage(1, today=TODAY) == 2
    with pytest.raises(ValueError):
        await store.prune_usage(0, today=TODAY)


# --- Summaries -----------------------------------------------------------------------


async def test_summaries_round_trip(store: Store) -> None:
    assert await store.get_summary(300) is None
    await store.put_summary(300, "Ana asked about tides.", tokens=7, last_message_id=2**62)
    first = await store.get_summary(300)
    assert first is not None
    assert (first.channel_id, first.text, first.tokens, first.last_message_id) == (
        300, "Ana asked about tides.", 7, 2**62,
    )  # fmt: skip
    assert first.updated_at.tzinfo is not None

    await store.put_summary(300, "Ana and Bo discussed tides.", tokens=9, last_message_id=2**62 + 5)
    second = await store.get_summary(300)
    assert second is not None
    assert (second.text, second.tokens, second.last_message_id) == (
        "Ana and Bo discussed tides.", 9, 2**62 + 5,
    )  # fmt: skip
    assert second.updated_at >= first.updated_at
    assert await store.get_summary(301) is None

    assert await store.delete_summary(300) is True
    assert await store.delete_summary(300) is False
    assert await store.get_summary(300) is None


# --- Schema --------------------------------------------------------------------------


async def test_migrated_schema_matches_the_tables_the_queries_use(store_url: str) -> None:
    opened = await Store.open(store_url)
    await opened.close()
    columns: dict[str, list[str]] = {}
    for table, column, *_ in await shape(store_url, "columns"):
        columns.setdefault(str(table), []).append(str(column))
    assert columns == {
        "schema_version": ["version", "applied_at"],
        "settings": ["scope_kind", "scope_id", "key", "value", "updated_by", "updated_at"],
        "usage": [
            "day", "user_id", "guild_id", "channel_id", "model",
            "prompt_tokens", "completion_tokens", "answers",
        ],
        "summaries": ["channel_id", "text", "tokens", "last_message_id", "updated_at"],
    }  # fmt: skip
    indexes = {str(name) for _, name, *_ in await shape(store_url, "indexes")}
    assert {"usage_guild_day", "usage_user_day"} <= indexes
    assert await schema_versions(store_url) == [m.version for m in MIGRATIONS]


async def test_upgrade_from_version_1_keeps_the_data(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(store_module, "MIGRATIONS", MIGRATIONS[:1])
        old = await Store.open(store_url)
        await old.set_setting(Scope("guild", 1), "model", "kept")
        await record(old, TODAY, 11, 22)
        await old.put_summary(5, "kept summary", tokens=2, last_message_id=9)
        await old.close()
    assert await schema_versions(store_url) == [1]

    new = await Store.open(store_url)
    try:
        assert await schema_versions(store_url) == [1, 2]
        assert await new.resolve_settings([Scope("guild", 1)]) == {"model": "kept"}
        assert (await new.user_totals(1, today=TODAY)).today == Totals(11, 22, 1)
        summary = await new.get_summary(5)
        assert summary is not None and summary.text == "kept summary"
    finally:
        await new.close()


async def test_reopening_changes_nothing(store_url: str) -> None:
    first = await Store.open(store_url)
    await first.set_setting(Scope("channel", 4), "model", "m")
    await first.close()
    before = await schema_versions(store_url)

    again = await Store.open(store_url)
    try:
        assert await again.resolve_settings([Scope("channel", 4)]) == {"model": "m"}
    finally:
        await again.close()
    assert await schema_versions(store_url) == before == [1, 2]


async def test_concurrent_opens_apply_each_migration_once(store_url: str) -> None:
    # Each migration's DDL has no IF NOT EXISTS: running one twice would fail an open.
    opened = await asyncio.gather(*(Store.open(store_url) for _ in range(4)))
    for each in opened:
        await each.close()
    assert await schema_versions(store_url) == [1, 2]


async def test_a_newer_schema_is_refused(store_url: str) -> None:
    opened = await Store.open(store_url)
    await opened.close()
    await run_sql(store_url, "INSERT INTO schema_version VALUES (99, '2026-03-31 12:00:00.000000')")
    with pytest.raises(StoreError, match="schema version 99, newer than this bot's 2"):
        await Store.open(store_url)


async def test_a_failing_database_raises_store_error_from_the_method(store_url: str) -> None:
    store = await Store.open(store_url)
    await run_sql(store_url, "DROP TABLE usage")
    with pytest.raises(StoreError, match=r"^cannot record usage in \S"):
        await record(store, TODAY, 1, 1)
    # The rest of the store still works.
    await store.put_summary(1, "still fine", tokens=1, last_message_id=1)
    assert (await store.get_summary(1)) is not None
    await store.close()


async def test_postgres_going_away_raises_store_error_then_recovers(
    own_postgres_server: PostgresServer,  # noqa: F811
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


# --- Several processes ---------------------------------------------------------------

INCREMENTS = """
import asyncio, datetime, sys
from store import Store, UsageRow

async def main(url: str, count: int) -> None:
    print("ready", flush=True)
    sys.stdin.readline()  # start together with the other process
    store = await Store.open(url)
    for _ in range(count):
        await store.record_usage([UsageRow(datetime.date(2026, 3, 31), 7, 1, 2, "m", 3, 2, 1)])
    await store.close()

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


async def test_two_processes_incrementing_at_once_are_both_counted(store_url: str) -> None:
    count = 200
    # The database is fresh, so the two processes also race through the migrations.
    children = [await run_python(INCREMENTS, store_url, str(count)) for _ in range(2)]
    for child in children:
        assert child.stdout is not None
        assert await asyncio.wait_for(child.stdout.readline(), 30) == b"ready\n"
    for child in children:
        assert child.stdin is not None
        child.stdin.write(b"go\n")
        await child.stdin.drain()
    results = await asyncio.wait_for(asyncio.gather(*(c.communicate() for c in children)), 50)
    for child, (_, stderr) in zip(children, results, strict=True):
        assert child.returncode == 0, stderr.decode()

    opened = await Store.open(store_url)
    try:
        totals = await opened.user_totals(7, today=TODAY)
        assert totals.today == Totals(3 * 2 * count, 2 * 2 * count, 2 * count)
        assert len(await opened.usage_rows(1, days=1, today=TODAY)) == 1
    finally:
        await opened.close()


WRITE_THEN_HANG = """
import asyncio, datetime, sys, time
from store import Scope, Store, UsageRow

async def main(url: str) -> None:
    store = await Store.open(url)
    await store.set_setting(Scope("guild", 1), "model", "survives")
    await store.record_usage([UsageRow(datetime.date(2026, 3, 31), 7, 1, 2, "m", 30, 20, 1)])
    await store.put_summary(2, "survives too", tokens=3, last_message_id=44)
    print("committed", flush=True)
    time.sleep(60)  # killed long before; never closes the store or checkpoints

asyncio.run(main(sys.argv[1]))
"""


async def test_a_committed_write_survives_sigkill(store_url: str) -> None:
    child = await run_python(WRITE_THEN_HANG, store_url)
    assert child.stdout is not None and child.stderr is not None
    line = await asyncio.wait_for(child.stdout.readline(), 30)
    assert line == b"committed\n", (await child.stderr.read()).decode()
    child.send_signal(signal.SIGKILL)
    assert await asyncio.wait_for(child.wait(), 10) == -signal.SIGKILL

    url = database_url(store_url)
    if url.backend == "sqlite":
        # The changes sit in the write-ahead log, not yet in the main file.
        assert await asyncio.to_thread(os.path.getsize, f"{url.target}-wal") > 0

    opened = await Store.open(store_url)
    try:
        assert await opened.resolve_settings([Scope("guild", 1)]) == {"model": "survives"}
        assert (await opened.user_totals(7, today=TODAY)).today == Totals(30, 20, 1)
        summary = await opened.get_summary(2)
        assert summary is not None and summary.text == "survives too"
    finally:
        await opened.close()


# --- Databases written by earlier versions -------------------------------------------

# What the SQLAlchemy version of the store created (recorded from sqlite_master and from
# pg_dump of a fresh database; the CHECK as SQLAlchemy sent it, as pg_dump's rendering of
# it reads back as another expression): the same tables, types and value encodings must
# keep working. SQLite holds DATE as 'YYYY-MM-DD' and DATETIME as 'YYYY-MM-DD HH:MM:SS.ffffff'
# text, in naive UTC.
SQLITE_V2_SCHEMA = [
    "CREATE TABLE schema_version (\n\tversion INTEGER NOT NULL, \n\tapplied_at DATETIME NOT"
    " NULL, \n\tPRIMARY KEY (version)\n)",
    "CREATE TABLE settings (\n\tscope_kind VARCHAR(16) NOT NULL, \n\tscope_id BIGINT NOT NULL,"
    ' \n\t"key" VARCHAR(100) NOT NULL, \n\tvalue TEXT NOT NULL, \n\tupdated_by BIGINT, \n\t'
    'updated_at DATETIME NOT NULL, \n\tPRIMARY KEY (scope_kind, scope_id, "key"), \n\t'
    "CONSTRAINT settings_scope_kind CHECK (scope_kind IN ('guild', 'channel', 'dm'))\n)",
    "CREATE TABLE usage (\n\tday DATE NOT NULL, \n\tuser_id BIGINT NOT NULL, \n\tguild_id BIGINT"
    " NOT NULL, \n\tchannel_id BIGINT NOT NULL, \n\tmodel VARCHAR(200) NOT NULL, \n\t"
    "prompt_tokens BIGINT NOT NULL, \n\tcompletion_tokens BIGINT NOT NULL, \n\tanswers BIGINT"
    " NOT NULL, \n\tPRIMARY KEY (day, user_id, guild_id, channel_id, model)\n)",
    "CREATE TABLE summaries (\n\tchannel_id BIGINT NOT NULL, \n\ttext TEXT NOT NULL, \n\ttokens"
    " INTEGER NOT NULL, \n\tlast_message_id BIGINT NOT NULL, \n\tupdated_at DATETIME NOT NULL,"
    " \n\tPRIMARY KEY (channel_id)\n)",
    "CREATE INDEX usage_user_day ON usage (user_id, day)",
    "CREATE INDEX usage_guild_day ON usage (guild_id, day)",
]

POSTGRES_V2_SCHEMA = """
CREATE TABLE schema_version (
    version integer NOT NULL,
    applied_at timestamp without time zone NOT NULL
);
CREATE TABLE settings (
    scope_kind character varying(16) NOT NULL,
    scope_id bigint NOT NULL,
    key character varying(100) NOT NULL,
    value text NOT NULL,
    updated_by bigint,
    updated_at timestamp without time zone NOT NULL,
    CONSTRAINT settings_scope_kind CHECK (scope_kind IN ('guild', 'channel', 'dm'))
);
CREATE TABLE summaries (
    channel_id bigint NOT NULL,
    text text NOT NULL,
    tokens integer NOT NULL,
    last_message_id bigint NOT NULL,
    updated_at timestamp without time zone NOT NULL
);
CREATE TABLE usage (
    day date NOT NULL,
    user_id bigint NOT NULL,
    guild_id bigint NOT NULL,
    channel_id bigint NOT NULL,
    model character varying(200) NOT NULL,
    prompt_tokens bigint NOT NULL,
    completion_tokens bigint NOT NULL,
    answers bigint NOT NULL
);
ALTER TABLE ONLY schema_version ADD CONSTRAINT schema_version_pkey PRIMARY KEY (version);
ALTER TABLE ONLY settings ADD CONSTRAINT settings_pkey PRIMARY KEY (scope_kind, scope_id, key);
ALTER TABLE ONLY summaries ADD CONSTRAINT summaries_pkey PRIMARY KEY (channel_id);
ALTER TABLE ONLY usage
    ADD CONSTRAINT usage_pkey PRIMARY KEY (day, user_id, guild_id, channel_id, model);
CREATE INDEX usage_guild_day ON usage USING btree (guild_id, day);
CREATE INDEX usage_user_day ON usage USING btree (user_id, day);
"""

# The rows, as both backends held them (PostgreSQL in its DATE and TIMESTAMP columns).
V2_ROWS = [
    "INSERT INTO schema_version VALUES (1, '2026-11-30 10:19:01.221446')",
    "INSERT INTO schema_version VALUES (2, '2026-11-30 10:19:01.227579')",
    "INSERT INTO settings VALUES ('guild', 10, 'model', 'gpt-4o', 501,"
    " '2026-11-30 10:19:01.231508')",
    "INSERT INTO settings VALUES ('channel', 4611686018427387904, 'persona', 'pirate «🦜»', NULL,"
    " '2026-11-30 10:19:01.234572')",
    "INSERT INTO usage VALUES ('2026-03-31', 1, 100, 200, 'gpt-4o', 150, 15, 1)",
    "INSERT INTO usage VALUES ('2026-03-30', 1, 0, 900, 'o3', 7, 3, 1)",
    "INSERT INTO summaries VALUES (300, 'Ana asked about tides.', 7, 4611686018427387904,"
    " '2026-11-30 10:19:01.247132')",
]


@pytest.fixture(params=["sqlite", "postgresql"])
def version_2_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database at schema version 2 as the SQLAlchemy version of the store wrote it."""
    if request.param == "sqlite":
        path = tmp_path / "bot.db"
        with contextlib.closing(sqlite3.connect(path)) as conn, conn:
            for statement in [*SQLITE_V2_SCHEMA, *V2_ROWS]:
                conn.execute(statement)
        yield str(path)
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    url = server.create_database()
    database = url.rsplit("/", 1)[1]
    server.sql(database, POSTGRES_V2_SCHEMA + ";\n".join(V2_ROWS))
    yield url
    server.drop_database(database)


async def test_a_database_written_by_the_sqlalchemy_version_reads_and_writes(
    version_2_url: str,
) -> None:
    opened = await Store.open(version_2_url)
    try:
        settings = await opened.get_settings([Scope("guild", 10), Scope("channel", 2**62)])
        model = settings[Scope("guild", 10)]["model"]
        assert (model.value, model.updated_by) == ("gpt-4o", 501)
        assert model.updated_at == dt.datetime(2026, 11, 30, 10, 19, 1, 231508, tzinfo=dt.UTC)
        persona = settings[Scope("channel", 2**62)]["persona"]
        assert (persona.value, persona.updated_by) == ("pirate «🦜»", None)

        assert await opened.usage_rows(100, days=2, today=TODAY) == [
            UsageRow(TODAY, 1, 100, 200, "gpt-4o", 150, 15, 1)
        ]
        assert await opened.usage_rows(0, days=2, today=TODAY) == [
            UsageRow(days_ago(1), 1, 0, 900, "o3", 7, 3, 1)
        ]
        assert (await opened.user_totals(1, today=TODAY)).last_7_days == Totals(157, 18, 2)

        summary = await opened.get_summary(300)
        assert summary is not None
        assert (summary.text, summary.tokens, summary.last_message_id) == (
            "Ana asked about tides.", 7, 2**62,
        )  # fmt: skip
        assert summary.updated_at == dt.datetime(2026, 11, 30, 10, 19, 1, 247132, tzinfo=dt.UTC)

        # New writes land on the old rows' keys and beside them.
        await record(opened, TODAY, 50, 5)
        await record(opened, TODAY, 1, 1, user=2)
        assert (await opened.usage_rows(100, days=1, today=TODAY))[0] == UsageRow(
            TODAY, 1, 100, 200, "gpt-4o", 200, 20, 2
        )
        await opened.set_setting(Scope("guild", 10), "model", "o3", updated_by=7)
        await opened.put_summary(300, "Tides, then moons.", tokens=4, last_message_id=2**62 + 1)
        assert await opened.resolve_settings([Scope("guild", 10)]) == {"model": "o3"}
        summary = await opened.get_summary(300)
        assert summary is not None and summary.text == "Tides, then moons."
        assert summary.updated_at > dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
        assert await opened.prune_usage(1, today=TODAY) == 1
    finally:
        await opened.close()
    assert await schema_versions(version_2_url) == [1, 2]


async def test_a_new_database_has_the_shape_the_sqlalchemy_version_made(
    version_2_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if database_url(version_2_url).backend == "sqlite":
        fresh = str(tmp_path / "fresh.db")
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        fresh = server.create_database()
    opened = await Store.open(fresh)
    await opened.close()
    for part in ("columns", "indexes"):
        assert await shape(fresh, part) == await shape(version_2_url, part)


async def test_new_writes_keep_the_sqlalchemy_versions_sqlite_encodings(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    opened = await Store.open(str(path))
    try:
        await opened.set_setting(Scope("guild", 1), "model", "m")
        await record(opened, TODAY, 1, 1)
        await opened.put_summary(2, "s", tokens=1, last_message_id=3)
    finally:
        await opened.close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        stamps = [
            conn.execute(f"SELECT {column} FROM {table}").fetchone()[0]
            for table, column in [
                ("schema_version", "applied_at"),
                ("settings", "updated_at"),
                ("summaries", "updated_at"),
            ]
        ]
        day = conn.execute("SELECT day, typeof(day) FROM usage").fetchone()
    for stamp in stamps:
        assert isinstance(stamp, str)
        assert dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").year >= 2026
        assert len(stamp) == len("2026-11-30 10:19:01.221446")
    assert day == ("2026-03-31", "text")
