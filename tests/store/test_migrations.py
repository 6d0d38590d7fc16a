"""The schema: migrating new and old databases, alone and concurrently, and the
shape and encodings of the databases already in use."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import (
    MAX_MODEL_LENGTH,
    MIGRATIONS,
    Scope,
    Store,
    StoreError,
    Totals,
    UsageRow,
    database_url,
    migrations,
)
from tests.postgres import PostgresServer
from tests.store.helpers import (
    TODAY,
    days_ago,
    record,
    resolved,
    run_sql,
    schema_versions,
    shape,
)
from text.setting_values import MAX_MODEL_NAME

ALL_VERSIONS = [m.version for m in MIGRATIONS]

# Migration 4's tables: the same rows on both backends; SQLite finds words through an
# FTS5 table (and the shadow tables FTS5 keeps), PostgreSQL through a tsvector column.
KNOWLEDGE_COLUMNS = {
    "knowledge_backfills": [
        "channel_id", "guild_id", "before_id", "since", "messages", "finished",
    ],
    "knowledge_forgotten": ["author_id", "asked_at"],
    "knowledge_messages": [
        "message_id", "guild_id", "channel_id", "parent_id", "author_id", "author_name",
        "created_at", "text",
    ],
}  # fmt: skip
KNOWLEDGE_SEARCH_COLUMNS = {
    "sqlite": {
        "knowledge_fts": ["text", "tags"],
        "knowledge_fts_config": ["k", "v"],
        "knowledge_fts_data": ["id", "block"],
        "knowledge_fts_docsize": ["id", "sz"],
        "knowledge_fts_idx": ["segid", "term", "pgno"],
    },
    "postgresql": {"knowledge_messages": [*KNOWLEDGE_COLUMNS["knowledge_messages"], "words"]},
}


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
            "prompt_tokens", "completion_tokens", "answers", "cached_tokens",
        ],
        "summaries": ["channel_id", "text", "tokens", "last_message_id", "updated_at"],
        **KNOWLEDGE_COLUMNS,
        **KNOWLEDGE_SEARCH_COLUMNS[database_url(store_url).backend],
        "claims": ["id", "kind", "user_id", "created_at", "counted"],
        "user_limits": ["user_id", "noticed", "updated_at"],
    }  # fmt: skip
    indexes = {str(name) for _, name, *_ in await shape(store_url, "indexes")}
    assert {
        "usage_guild_day", "usage_user_day", "knowledge_messages_channel",
        "knowledge_messages_parent", "knowledge_messages_author", "knowledge_messages_created",
    } <= indexes  # fmt: skip
    search_index = {
        "sqlite": {"knowledge_messages_inserted", "knowledge_messages_edited"},
        "postgresql": {"knowledge_messages_words"},
    }[database_url(store_url).backend]
    assert search_index <= indexes
    assert await schema_versions(store_url) == [m.version for m in MIGRATIONS]


async def test_upgrade_from_version_1_keeps_the_data(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(migrations, "MIGRATIONS", MIGRATIONS[:1])
        old = await Store.open(store_url)
        await old.set_setting(Scope("guild", 1), "model", "kept")
        await old.put_summary(5, "kept summary", tokens=2, last_message_id=9)
        await old.close()
    assert await schema_versions(store_url) == [1]
    # Written as version 1's store wrote usage (today's code writes the later columns).
    await run_sql(
        store_url,
        "INSERT INTO usage (day, user_id, guild_id, channel_id, model, prompt_tokens, "
        f"completion_tokens, answers) VALUES ('{TODAY.isoformat()}', 1, 100, 200, 'm', 11, 22, 1)",
    )

    new = await Store.open(store_url)
    try:
        assert await schema_versions(store_url) == ALL_VERSIONS
        assert await resolved(new, [Scope("guild", 1)]) == {"model": "kept"}
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
        assert await resolved(again, [Scope("channel", 4)]) == {"model": "m"}
    finally:
        await again.close()
    assert await schema_versions(store_url) == before == ALL_VERSIONS


async def test_concurrent_opens_apply_each_migration_once(store_url: str) -> None:
    # Each migration's DDL has no IF NOT EXISTS: running one twice would fail an open.
    opened = await asyncio.gather(*(Store.open(store_url) for _ in range(4)))
    for each in opened:
        await each.close()
    assert await schema_versions(store_url) == ALL_VERSIONS


async def test_a_newer_schema_is_refused(store_url: str) -> None:
    opened = await Store.open(store_url)
    await opened.close()
    await run_sql(store_url, "INSERT INTO schema_version VALUES (99, '2026-03-31 12:00:00.000000')")
    newest = ALL_VERSIONS[-1]
    with pytest.raises(StoreError, match=f"schema version 99, newer than this bot's {newest}"):
        await Store.open(store_url)


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
        assert await resolved(opened, [Scope("guild", 10)]) == {"model": "o3"}
        summary = await opened.get_summary(300)
        assert summary is not None and summary.text == "Tides, then moons."
        assert summary.updated_at > dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
        assert await opened.prune_usage(1, today=TODAY) == 1
    finally:
        await opened.close()
    assert await schema_versions(version_2_url) == ALL_VERSIONS


async def test_a_new_database_has_the_shape_the_sqlalchemy_version_upgraded_to(
    version_2_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if database_url(version_2_url).backend == "sqlite":
        fresh = str(tmp_path / "fresh.db")
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        fresh = server.create_database()
    opened = await Store.open(fresh)
    await opened.close()
    upgraded = await Store.open(version_2_url)  # the later migrations, on the old database
    await upgraded.close()
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


def test_the_model_name_limit_is_the_usage_model_columns_size() -> None:
    # OPENAI_MODEL and /settings model are checked against MAX_MODEL_NAME where they
    # enter: it must be what the column holds (PostgreSQL refuses longer names).
    usage_table = next(s for s in MIGRATIONS[0].statements if "CREATE TABLE usage" in s)
    assert f"model VARCHAR({MAX_MODEL_NAME}) NOT NULL" in usage_table
    assert MAX_MODEL_LENGTH == MAX_MODEL_NAME
