"""The schema: `MIGRATIONS`, applied in order at `Store.open`, recorded in schema_version."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from typing import NamedTuple

from store.database import Database
from store.errors import StoreError, reason
from store.postgres import PostgreSQL


class PerBackend(NamedTuple):
    """One statement written for each backend; None where a backend has no such step
    (SQLite's FTS5 triggers, PostgreSQL's GIN index)."""

    sqlite: str | None
    postgresql: str | None


class Migration(NamedTuple):
    """One schema step: its `statements` run inside the transaction that records `version`.

    A plain string is DDL for both backends, with `{timestamp}` standing for the
    backend's timestamp column type (`SQLite.TIMESTAMP` or `PostgreSQL.TIMESTAMP`); a
    `PerBackend` gives each backend its own text (full-text search differs).
    """

    version: int
    description: str
    statements: tuple[str | PerBackend, ...]


def statement_for(db: Database, statement: str | PerBackend) -> str | None:
    """The text of `statement` that `db`'s backend runs, or None when it runs nothing."""
    if isinstance(statement, str):
        return statement
    return statement.postgresql if isinstance(db, PostgreSQL) else statement.sqlite


# The types and names are those of the databases already in use (their exact shape is in
# tests/store/test_migrations.py): a new database must be the same as those. In SQLite,
# DATE and DATETIME give the columns NUMERIC affinity, under which the 'YYYY-MM-DD...'
# text the store writes stays text. "key" is quoted because SQLite's parser treats KEY
# as a keyword.
_SCHEMA_VERSION_TABLE = """
CREATE TABLE schema_version (
    version INTEGER NOT NULL,
    applied_at {timestamp} NOT NULL,
    PRIMARY KEY (version)
)"""

# Migration 4's message table; {id_type}: SQLite's rowid alias must be spelt INTEGER.
_KNOWLEDGE_MESSAGES = """
CREATE TABLE knowledge_messages (
    message_id {id_type} NOT NULL,
    guild_id BIGINT NOT NULL,
    channel_id BIGINT NOT NULL,
    parent_id BIGINT,
    author_id BIGINT NOT NULL,
    author_name TEXT NOT NULL,
    created_at {timestamp} NOT NULL,
    text TEXT NOT NULL{words},
    PRIMARY KEY (message_id)
)"""

# What migration 4's FTS5 `tags` column holds for a row (`new` or `old` in a trigger).
_TAGS = "'a' || {row}.author_id || ' c' || {row}.channel_id"

# In order; append only. A released migration is never edited: a later change to a
# table is a new migration.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "settings, usage and summaries tables",
        (
            """
            CREATE TABLE settings (
                scope_kind VARCHAR(16) NOT NULL,
                scope_id BIGINT NOT NULL,
                "key" VARCHAR(100) NOT NULL,
                value TEXT NOT NULL,
                updated_by BIGINT,
                updated_at {timestamp} NOT NULL,
                PRIMARY KEY (scope_kind, scope_id, "key"),
                CONSTRAINT settings_scope_kind CHECK (scope_kind IN ('guild', 'channel', 'dm'))
            )""",
            """
            CREATE TABLE usage (
                day DATE NOT NULL,
                user_id BIGINT NOT NULL,
                guild_id BIGINT NOT NULL,
                channel_id BIGINT NOT NULL,
                model VARCHAR(200) NOT NULL,
                prompt_tokens BIGINT NOT NULL,
                completion_tokens BIGINT NOT NULL,
                answers BIGINT NOT NULL,
                PRIMARY KEY (day, user_id, guild_id, channel_id, model)
            )""",
            """
            CREATE TABLE summaries (
                channel_id BIGINT NOT NULL,
                text TEXT NOT NULL,
                tokens INTEGER NOT NULL,
                last_message_id BIGINT NOT NULL,
                updated_at {timestamp} NOT NULL,
                PRIMARY KEY (channel_id)
            )""",
        ),
    ),
    # The usage queries that do not lead with the day (the primary key does): a user's
    # totals and daily allowance filter on user_id, the guild reports on guild_id; both
    # then on a range of days.
    Migration(
        2,
        "usage indexes by user and by guild",
        (
            "CREATE INDEX usage_user_day ON usage (user_id, day)",
            "CREATE INDEX usage_guild_day ON usage (guild_id, day)",
        ),
    ),
    # The prompt tokens the model's server served from its prompt cache (OpenAI's
    # usage.prompt_tokens_details.cached_tokens), billed at a lower price; rows written
    # before it count none.
    Migration(
        3,
        "cached prompt tokens in usage",
        ("ALTER TABLE usage ADD COLUMN cached_tokens BIGINT NOT NULL DEFAULT 0",),
    ),
    # The server's messages for search (issue 23; store/knowledge.py). SQLite: the
    # message_id is the rowid (INTEGER PRIMARY KEY), and a contentless FTS5 table holds
    # only the word index, kept by triggers, so an edit's upsert or a delete changes both
    # in the same statement; its second column, `tags`, indexes "a<author_id>
    # c<channel_id>", which lets a search by author or in a few channels intersect word
    # lists instead of scanning every match of a common word. PostgreSQL: a generated
    # tsvector with a GIN index. Both stem English words (Porter; 'english').
    Migration(
        4,
        "knowledge index and backfill progress",
        (
            PerBackend(
                _KNOWLEDGE_MESSAGES.format(id_type="INTEGER", words="", timestamp="{timestamp}"),
                _KNOWLEDGE_MESSAGES.format(
                    id_type="BIGINT",
                    words=",\n    words tsvector GENERATED ALWAYS AS "
                    "(to_tsvector('english', text)) STORED",
                    timestamp="{timestamp}",
                ),
            ),
            "CREATE INDEX knowledge_messages_channel ON knowledge_messages "
            "(channel_id, message_id)",
            "CREATE INDEX knowledge_messages_parent ON knowledge_messages (parent_id)",
            "CREATE INDEX knowledge_messages_author ON knowledge_messages (author_id)",
            "CREATE INDEX knowledge_messages_created ON knowledge_messages (created_at)",
            PerBackend(
                "CREATE VIRTUAL TABLE knowledge_fts USING fts5(text, tags, content='', "
                "tokenize='porter unicode61 remove_diacritics 2')",
                "CREATE INDEX knowledge_messages_words ON knowledge_messages USING GIN (words)",
            ),
            PerBackend(
                f"""
                CREATE TRIGGER knowledge_messages_inserted AFTER INSERT ON knowledge_messages
                BEGIN
                    INSERT INTO knowledge_fts (rowid, text, tags)
                    VALUES (new.message_id, new.text, {_TAGS.format(row="new")});
                END""",
                None,
            ),
            PerBackend(
                f"""
                CREATE TRIGGER knowledge_messages_deleted AFTER DELETE ON knowledge_messages
                BEGIN
                    INSERT INTO knowledge_fts (knowledge_fts, rowid, text, tags)
                    VALUES ('delete', old.message_id, old.text, {_TAGS.format(row="old")});
                END""",
                None,
            ),
            PerBackend(
                f"""
                CREATE TRIGGER knowledge_messages_edited AFTER UPDATE ON knowledge_messages
                BEGIN
                    INSERT INTO knowledge_fts (knowledge_fts, rowid, text, tags)
                    VALUES ('delete', old.message_id, old.text, {_TAGS.format(row="old")});
                    INSERT INTO knowledge_fts (rowid, text, tags)
                    VALUES (new.message_id, new.text, {_TAGS.format(row="new")});
                END""",
                None,
            ),
            """
            CREATE TABLE knowledge_backfills (
                channel_id BIGINT NOT NULL,
                guild_id BIGINT NOT NULL,
                before_id BIGINT,
                since {timestamp} NOT NULL,
                messages BIGINT NOT NULL,
                finished BOOLEAN NOT NULL,
                PRIMARY KEY (channel_id)
            )""",
            # Who asked /knowledge forget-me, and when: their messages written before then
            # are never indexed again, by a history read resumed after a restart either.
            """
            CREATE TABLE knowledge_forgotten (
                author_id BIGINT NOT NULL,
                asked_at {timestamp} NOT NULL,
                PRIMARY KEY (author_id)
            )""",
        ),
    ),
    # Several processes on one database (store.claims): each message or interaction is
    # answered by the process whose INSERT of its id wins; `counted` marks the messages
    # a user's rate limit counts, and user_limits is the row each rate decision locks
    # (with when that user was last told about it). Both are pruned after an hour.
    Migration(
        5,
        "claims of messages and interactions, and shared rate limits",
        (
            """
            CREATE TABLE claims (
                id BIGINT NOT NULL,
                kind VARCHAR(16) NOT NULL,
                user_id BIGINT NOT NULL,
                created_at {timestamp} NOT NULL,
                counted INTEGER NOT NULL DEFAULT 0,
                PRIMARY KEY (id)
            )""",
            "CREATE INDEX claims_user_created ON claims (user_id, created_at)",
            "CREATE INDEX claims_created ON claims (created_at)",
            """
            CREATE TABLE user_limits (
                user_id BIGINT NOT NULL,
                noticed {timestamp},
                updated_at {timestamp} NOT NULL,
                PRIMARY KEY (user_id)
            )""",
        ),
    ),
)

# A real write that changes nothing: opening proves the database is writable with it.
_TOUCH_NEWEST_VERSION = """
UPDATE schema_version SET applied_at = applied_at
WHERE version = (SELECT MAX(version) FROM schema_version)"""

# Tries at creating schema_version while another process may be creating it too.
_VERSION_TABLE_ATTEMPTS = 10


async def set_up(db: Database, where: str) -> None:
    """Migrate and prove a write works, each failure with its own wording."""
    try:
        await migrate(db, MIGRATIONS)
    except db.errors as error:
        raise StoreError(f"cannot set up the tables in {where}: {reason(error)}") from None
    try:
        # A read-only file, role or replica fails here instead of at the first answer.
        async with db.transaction() as tx:
            await tx.execute(_TOUCH_NEWEST_VERSION)
    except db.errors as error:
        raise StoreError(f"cannot write to {where}: {reason(error)}") from None


async def migrate(db: Database, migrations: Sequence[Migration]) -> None:
    """Apply the migrations this database lacks, in order, each in its own transaction.

    Two processes starting at once: each migration's transaction first INSERTs its row
    into schema_version, then runs its DDL, then commits. The version is the primary
    key, so a second process's INSERT of the same version waits for the first one's
    transaction (PostgreSQL holds it on the uncommitted key; SQLite on the database
    write lock) and then fails on the duplicate key if the first committed, which tells
    it the migration is done; if the first rolled back, the second goes ahead. Both
    backends run DDL inside transactions, so a migration is all or nothing. This is one
    code path on both, with no advisory lock (which only PostgreSQL has).

    Raises StoreError when the database has a version newer than any of `migrations`.
    """
    await _create_version_table(db)
    known = max((m.version for m in migrations), default=0)
    for migration in migrations:
        async with db.transaction() as tx:
            applied = {row[0] for row in await tx.fetch("SELECT version FROM schema_version")}
        newest = max(applied, default=0)
        if newest > known:
            raise StoreError(
                f"the database has schema version {newest}, newer than this bot's {known}: "
                "run a newer bot"
            )
        if migration.version in applied:
            continue
        try:
            async with db.transaction() as tx:
                await tx.execute(
                    "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                    migration.version,
                    dt.datetime.now(dt.UTC),
                )
                for statement in migration.statements:
                    text = statement_for(db, statement)
                    if text is not None:
                        await tx.execute(text.format(timestamp=db.TIMESTAMP))
        except db.duplicate_key:
            continue  # another process applied this migration while we waited


async def _create_version_table(db: Database) -> None:
    """Create schema_version if the database has none.

    It is created after a look that it is missing (not with IF NOT EXISTS, which
    PostgreSQL refuses a role that may not create tables even when the table exists), so
    two processes can both see it missing: the loser's CREATE fails ("already exists" on
    PostgreSQL; on SQLite "database is locked", as a read transaction that tries to
    write while another writes is refused at once, without the busy wait). That step is
    retried, and the retry sees the table.
    """
    for attempt in range(1, _VERSION_TABLE_ATTEMPTS + 1):
        try:
            async with db.transaction() as tx:
                ((exists,),) = await tx.fetch(db.HAS_VERSION_TABLE)
                if not exists:
                    await tx.execute(_SCHEMA_VERSION_TABLE.format(timestamp=db.TIMESTAMP))
            return
        except db.errors:
            if attempt == _VERSION_TABLE_ATTEMPTS:
                raise
            await asyncio.sleep(0.02 * attempt)
