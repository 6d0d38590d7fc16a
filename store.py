"""The bot's persistent store: per-scope settings, per-person usage and running summaries.

One `Store` wraps an SQLAlchemy async engine on either an SQLite file (aiosqlite, the
default: one bot process) or PostgreSQL (asyncpg: several bot processes sharing state).
Every query is the same SQLAlchemy Core statement on both; only the connection set-up
differs (SQLite's PRAGMAs and transaction start, PostgreSQL's connect timeout).

The schema is versioned: `MIGRATIONS` is applied in order at `Store.open`, each in its
own transaction, and recorded in the `schema_version` table. How two processes starting
at once agree on who applies a migration is explained in `_migrate`.

Every failure of the database surfaces as `StoreError` with a one-line reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

ScopeKind = Literal["guild", "channel", "dm"]
SCOPE_KINDS: tuple[ScopeKind, ...] = ("guild", "channel", "dm")

DEFAULT_RETENTION_DAYS = 90

# How long a writer waits for another process's write lock (SQLite) before failing.
SQLITE_BUSY_TIMEOUT_MS = 10_000
# How long connecting to PostgreSQL may take before open() or a query gives up.
POSTGRES_CONNECT_TIMEOUT_S = 10.0
# Column widths, checked before writing: PostgreSQL enforces them and SQLite does not,
# so an over-long value must fail the same way (ValueError) on both.
MAX_KEY_LENGTH = 100
MAX_MODEL_LENGTH = 200
# UPDATE-then-INSERT rounds before giving up; each lost race is followed by an UPDATE
# that finds the other writer's row, so more than two rounds means something else is wrong.
_WRITE_ATTEMPTS = 5


class StoreError(Exception):
    """The database cannot be opened, written or read; str() is a one-line human reason."""


class Scope(NamedTuple):
    """Where a setting applies: a guild's defaults, a channel or thread, or a DM channel."""

    kind: ScopeKind
    id: int


@dataclass(frozen=True, slots=True)
class Setting:
    """One stored setting; `updated_at` is timezone-aware UTC."""

    scope: Scope
    key: str
    value: str
    updated_by: int | None
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Totals:
    """Token counts and answer count summed over some rows of usage."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    answers: int = 0

    @property
    def tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class UserTotals:
    """A user's usage over UTC days ending today: today, the last 7 and the last 30 days."""

    today: Totals
    last_7_days: Totals
    last_30_days: Totals


@dataclass(frozen=True, slots=True)
class UserUsage:
    """One line of a guild's top users."""

    user_id: int
    totals: Totals


@dataclass(frozen=True, slots=True)
class ChannelUsage:
    """One line of a guild's top channels."""

    channel_id: int
    totals: Totals


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One stored usage row: one user's use of one model in one channel on one UTC day."""

    day: dt.date
    user_id: int
    guild_id: int
    channel_id: int
    model: str
    prompt_tokens: int
    completion_tokens: int
    answers: int


@dataclass(frozen=True, slots=True)
class Summary:
    """A channel's running summary; it covers messages up to `last_message_id` inclusive."""

    channel_id: int
    text: str
    tokens: int
    last_message_id: int
    updated_at: dt.datetime


# --- Schema --------------------------------------------------------------------------


class UTCDateTime(sa.TypeDecorator[dt.datetime]):
    """An aware datetime stored as naive UTC, read back as aware UTC on every backend.

    SQLite has no timezone-aware type, so storing naive UTC everywhere keeps both
    backends returning the same values.
    """

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        return None if value is None else value.replace(tzinfo=dt.UTC)


# The tables as the queries see them: the shape after every migration has run.
# test_store checks that a migrated database has exactly these columns.
metadata = sa.MetaData()

schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_at", UTCDateTime, nullable=False),
)

settings_table = sa.Table(
    "settings",
    metadata,
    sa.Column("scope_kind", sa.String(16), primary_key=True),
    sa.Column("scope_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("key", sa.String(MAX_KEY_LENGTH), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_by", sa.BigInteger, nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

usage_table = sa.Table(
    "usage",
    metadata,
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("user_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("guild_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("channel_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("model", sa.String(MAX_MODEL_LENGTH), primary_key=True),
    sa.Column("prompt_tokens", sa.BigInteger, nullable=False),
    sa.Column("completion_tokens", sa.BigInteger, nullable=False),
    sa.Column("answers", sa.BigInteger, nullable=False),
)

summaries_table = sa.Table(
    "summaries",
    metadata,
    sa.Column("channel_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("tokens", sa.Integer, nullable=False),
    sa.Column("last_message_id", sa.BigInteger, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)


def _migration_1_tables(conn: Connection) -> None:
    """Settings, usage and summaries, as first released.

    Frozen on purpose: a later change to a table is a new migration, so this one keeps
    its own definitions rather than the current ones above.
    """
    md = sa.MetaData()
    sa.Table(
        "settings",
        md,
        sa.Column("scope_kind", sa.String(16), primary_key=True),
        sa.Column("scope_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("updated_by", sa.BigInteger, nullable=True),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.CheckConstraint("scope_kind IN ('guild', 'channel', 'dm')", name="settings_scope_kind"),
    )
    sa.Table(
        "usage",
        md,
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("user_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("guild_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("channel_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("prompt_tokens", sa.BigInteger, nullable=False),
        sa.Column("completion_tokens", sa.BigInteger, nullable=False),
        sa.Column("answers", sa.BigInteger, nullable=False),
    )
    sa.Table(
        "summaries",
        md,
        sa.Column("channel_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("tokens", sa.Integer, nullable=False),
        sa.Column("last_message_id", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    md.create_all(conn, checkfirst=False)


def _migration_2_usage_indexes(conn: Connection) -> None:
    """Indexes for the usage queries that do not lead with the day (the primary key does).

    A user's totals and daily allowance filter on user_id, the guild reports on
    guild_id; both then on a range of days.
    """
    usage = sa.Table(
        "usage", sa.MetaData(), sa.Column("user_id"), sa.Column("guild_id"), sa.Column("day")
    )
    sa.Index("usage_user_day", usage.c.user_id, usage.c.day).create(conn)
    sa.Index("usage_guild_day", usage.c.guild_id, usage.c.day).create(conn)


class Migration(NamedTuple):
    """One schema step: `apply` runs inside the transaction that records `version`."""

    version: int
    description: str
    apply: Callable[[Connection], None]


# In order; append only. A released migration is never edited.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "settings, usage and summaries tables", _migration_1_tables),
    Migration(2, "usage indexes by user and by guild", _migration_2_usage_indexes),
)


# --- Opening -------------------------------------------------------------------------


def database_url(url: str) -> URL:
    """The SQLAlchemy async URL for a `DATABASE_URL` value.

    Accepts 'sqlite:///relative.db', 'sqlite:////absolute.db', a bare file path
    (relative paths are relative to the working directory), and 'postgresql://...' or
    'postgres://...' (any '+driver' suffix is replaced: the store uses aiosqlite and
    asyncpg). Raises StoreError for anything else, including in-memory SQLite.
    """
    text = url.strip()
    if not text:
        raise StoreError("empty: give a file path, sqlite:///path or postgresql://...")
    if "://" not in text:
        return URL.create("sqlite+aiosqlite", database=os.path.expanduser(text))
    scheme, rest = text.split("://", 1)
    family = scheme.split("+", 1)[0].lower()
    if family in ("postgres", "postgresql"):
        driver = "postgresql+asyncpg"
    elif family == "sqlite":
        driver = "sqlite+aiosqlite"
    else:
        raise StoreError(
            f"unsupported scheme {scheme!r}: use a file path, sqlite:///path or postgresql://..."
        )
    try:
        parsed = make_url(f"{driver}://{rest}")
    except exc.ArgumentError as error:
        raise StoreError(f"cannot parse {scheme}:// URL: {error}") from None
    if family == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise StoreError("sqlite:// needs a file path, e.g. sqlite:///data/bot.db")
    if family == "sqlite" and parsed.query:
        # Without SQLite's URI mode they would silently become part of the file name.
        raise StoreError("sqlite:// URLs take no ?options: give the file path only")
    return parsed


def _describe(url: URL) -> str:
    """Where the data lives, for messages: a file path, or PostgreSQL's host:port."""
    if url.get_backend_name() == "sqlite":
        return str(url.database)
    return f"PostgreSQL at {url.host or 'localhost'}:{url.port or 5432}"


def _reason(error: BaseException) -> str:
    """The driver's own one-line message, without SQLAlchemy's SQL and help links."""
    if isinstance(error, exc.DBAPIError) and error.orig is not None:
        error = error.orig
    # asyncpg and asyncio give connection errors as OSError with an errno and a message
    # naming the address ("Connect call failed ..."); the errno says it better.
    if isinstance(error, OSError) and error.errno:
        return os.strerror(error.errno).lower()
    if isinstance(error, TimeoutError):
        return "timed out"
    text = str(error).strip()
    # aiosqlite/asyncpg errors are re-raised by SQLAlchemy's adapter with the original
    # class name in front: "<class 'asyncpg....'>: message".
    if text.startswith("<class '") and ">: " in text:
        text = text.split(">: ", 1)[1]
    line = text.splitlines()[0].strip() if text else ""
    return line or type(error).__name__


def _engine_for(url: URL) -> AsyncEngine:
    """An async engine with each backend's connection set-up."""
    if url.get_backend_name() != "sqlite":
        return create_async_engine(
            url,
            pool_pre_ping=True,
            connect_args={"timeout": POSTGRES_CONNECT_TIMEOUT_S},
        )
    engine = create_async_engine(
        url, pool_pre_ping=True, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _set_up_sqlite(dbapi_connection: Any, _record: Any) -> None:
        # Take BEGIN away from the sqlite3 module (which skips it before SELECT and DDL)
        # and emit it ourselves below, so every transaction, DDL included, is one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            # WAL: readers never block the writer, and a commit is one append to the log.
            cursor.execute("PRAGMA journal_mode = WAL")
            mode = cursor.fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"cannot use WAL journal mode on {url.database} (got {mode})")
            # FULL: each commit fsyncs the log, so a commit that returned survives a
            # SIGKILL (NORMAL would too: the log is in the OS's cache) and also a power
            # loss or OS crash (NORMAL could lose the last commits). The bot commits a
            # few times per answer at most, so the fsync costs nothing that matters.
            cursor.execute("PRAGMA synchronous = FULL")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Connection) -> None:
        # Deferred BEGIN: a write transaction takes the write lock at its first write.
        # Every write transaction here starts with its write (UPDATE or INSERT), so it
        # waits on busy_timeout rather than failing on a stale read snapshot.
        conn.exec_driver_sql("BEGIN")

    return engine


async def _migrate(engine: AsyncEngine, migrations: Sequence[Migration]) -> None:
    """Apply the migrations this database lacks, in order, each in its own transaction.

    Two processes starting at once: each migration's transaction first INSERTs its row
    into schema_version, then runs its DDL, then commits. The version is the primary
    key, so a second process's INSERT of the same version waits for the first one's
    transaction (PostgreSQL holds it on the uncommitted key; SQLite on the database
    write lock) and then fails with IntegrityError if the first committed, which tells
    it the migration is done; if the first rolled back, the second goes ahead. Both
    backends run DDL inside transactions, so a migration is all or nothing. This is one
    code path on both, with no advisory lock (which only PostgreSQL has).

    The schema_version table itself is created with checkfirst (a read, then CREATE), so
    two processes can both see it missing: the loser's CREATE fails ("already exists" on
    PostgreSQL; on SQLite "database is locked", as a read transaction that tries to
    write while another writes is refused at once, without the busy wait). That step
    is retried, and the retry sees the table.
    """
    attempts = 10
    for attempt in range(attempts):
        try:
            async with engine.begin() as conn:
                await conn.run_sync(schema_version.create, checkfirst=True)
            break
        except exc.DBAPIError:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.02 * (attempt + 1))

    known = max((m.version for m in migrations), default=0)
    for migration in migrations:
        async with engine.connect() as conn:
            applied = set((await conn.execute(sa.select(schema_version.c.version))).scalars())
            await conn.rollback()
        newest = max(applied, default=0)
        if newest > known:
            raise StoreError(
                f"the database has schema version {newest}, newer than this bot's {known}: "
                "run a newer bot"
            )
        if migration.version in applied:
            continue
        try:
            async with engine.begin() as conn:
                await conn.execute(
                    sa.insert(schema_version).values(
                        version=migration.version, applied_at=dt.datetime.now(dt.UTC)
                    )
                )
                await conn.run_sync(migration.apply)
        except exc.IntegrityError:
            continue  # another process applied this migration while we waited


# --- The store -----------------------------------------------------------------------


def _utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _check_scope(scope: Scope) -> Scope:
    kind, scope_id = scope
    if kind not in SCOPE_KINDS:
        raise ValueError(f"scope kind must be one of {SCOPE_KINDS}, not {kind!r}")
    return Scope(kind, int(scope_id))


def _sum(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    return sa.func.coalesce(sa.func.sum(column), 0)


class Store:
    """Settings, usage and summaries in one database; create it with `await Store.open(url)`.

    All methods are coroutines that do their I/O on the async driver. Any database
    failure raises StoreError (one line, naming the operation and the reason); invalid
    arguments raise ValueError.
    """

    def __init__(self, engine: AsyncEngine, where: str) -> None:
        """Use `Store.open`; this only keeps an engine that is already migrated."""
        self._engine = engine
        self.where = where  # "path/to/bot.db" or "PostgreSQL at host:port", for messages

    @classmethod
    async def open(cls, url: str) -> Store:
        """Open the database at `url` (see `database_url`), migrated and writable.

        For SQLite, creates the file's directory first. Raises StoreError with a reason
        such as "cannot create data: permission denied" or "cannot connect to PostgreSQL
        at db:5432: connection refused".
        """
        parsed = database_url(url)
        where = _describe(parsed)
        if parsed.get_backend_name() == "sqlite":
            await _prepare_sqlite_path(Path(str(parsed.database)))
        engine = _engine_for(parsed)
        try:
            await _open_steps(engine, parsed, where)
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine, where)

    async def close(self) -> None:
        """Close every pooled connection; the store is unusable afterwards."""
        await self._engine.dispose()

    @contextlib.asynccontextmanager
    async def _failing_as(self, action: str) -> AsyncIterator[None]:
        try:
            yield
        except StoreError:
            raise
        except (exc.SQLAlchemyError, OSError) as error:
            raise StoreError(f"cannot {action} in {self.where}: {_reason(error)}") from error

    async def _update_or_insert(self, update: sa.Update, insert: sa.Insert) -> None:
        """UPDATE the row, or INSERT it when none matched; atomic across processes.

        If another writer INSERTs the same key between our UPDATE and INSERT, ours fails
        on the primary key, the transaction rolls back, and the next round's UPDATE finds
        that row (PostgreSQL re-reads a row it waited for; SQLite writers are serial).
        """
        last: exc.IntegrityError | None = None
        for _ in range(_WRITE_ATTEMPTS):
            try:
                async with self._engine.begin() as conn:
                    if (await conn.execute(update)).rowcount == 0:
                        await conn.execute(insert)
                return
            except exc.IntegrityError as error:
                last = error
        assert last is not None
        raise last

    # --- Settings --------------------------------------------------------------------

    async def set_setting(
        self, scope: Scope, key: str, value: str, *, updated_by: int | None = None
    ) -> None:
        """Store `value` for `key` in `scope`, replacing any value it had.

        Raises ValueError for an unknown scope kind or a key that is empty or longer
        than MAX_KEY_LENGTH.
        """
        scope = _check_scope(scope)
        if not 0 < len(key) <= MAX_KEY_LENGTH:
            raise ValueError(f"setting key must be 1 to {MAX_KEY_LENGTH} characters")
        table = settings_table
        now = dt.datetime.now(dt.UTC)
        where = sa.and_(
            table.c.scope_kind == scope.kind, table.c.scope_id == scope.id, table.c.key == key
        )
        update = (
            sa.update(table).where(where).values(value=value, updated_by=updated_by, updated_at=now)
        )
        insert = sa.insert(table).values(
            scope_kind=scope.kind,
            scope_id=scope.id,
            key=key,
            value=value,
            updated_by=updated_by,
            updated_at=now,
        )
        async with self._failing_as("save a setting"):
            await self._update_or_insert(update, insert)

    async def delete_setting(self, scope: Scope, key: str) -> bool:
        """Remove `key` from `scope`; True if it was set."""
        scope = _check_scope(scope)
        table = settings_table
        statement = sa.delete(table).where(
            table.c.scope_kind == scope.kind, table.c.scope_id == scope.id, table.c.key == key
        )
        async with self._failing_as("delete a setting"), self._engine.begin() as conn:
            return (await conn.execute(statement)).rowcount > 0

    async def clear_scope(self, scope: Scope) -> int:
        """Remove every setting of `scope`; returns how many there were."""
        scope = _check_scope(scope)
        table = settings_table
        statement = sa.delete(table).where(
            table.c.scope_kind == scope.kind, table.c.scope_id == scope.id
        )
        async with self._failing_as("clear settings"), self._engine.begin() as conn:
            return (await conn.execute(statement)).rowcount

    async def get_settings(self, scopes: Sequence[Scope]) -> dict[Scope, dict[str, Setting]]:
        """The settings of each of `scopes`, in one query: {scope: {key: Setting}}.

        Every requested scope is a key of the result, with {} when it has none.
        """
        wanted = [_check_scope(scope) for scope in scopes]
        result: dict[Scope, dict[str, Setting]] = {scope: {} for scope in wanted}
        if not wanted:
            return result
        table = settings_table
        statement = sa.select(table).where(
            sa.or_(
                *(
                    sa.and_(table.c.scope_kind == s.kind, table.c.scope_id == s.id)
                    for s in dict.fromkeys(wanted)
                )
            )
        )
        async with self._failing_as("read settings"), self._engine.connect() as conn:
            rows = (await conn.execute(statement)).all()
        for row in rows:
            scope = Scope(row.scope_kind, row.scope_id)
            result[scope][row.key] = Setting(
                scope, row.key, row.value, row.updated_by, row.updated_at
            )
        return result

    async def resolve_settings(self, chain: Sequence[Scope]) -> dict[str, str]:
        """{key: value} for a chain of scopes, most general first; later scopes win.

        E.g. [Scope('guild', g), Scope('channel', parent), Scope('channel', thread)].
        """
        found = await self.get_settings(chain)
        merged: dict[str, str] = {}
        for scope in chain:
            merged.update({key: s.value for key, s in found[_check_scope(scope)].items()})
        return merged

    # --- Usage -----------------------------------------------------------------------

    async def record_usage(
        self,
        *,
        user_id: int,
        guild_id: int | None,
        channel_id: int,
        model: str,
        prompt_tokens: int,
        completion_tokens: int,
        answers: int = 1,
        day: dt.date | None = None,
    ) -> None:
        """Add one answer's tokens to the (UTC day, user, guild, channel, model) row.

        `guild_id` None (a DM) is stored as 0. `day` defaults to today in UTC. Counts
        must be >= 0 and `model` at most MAX_MODEL_LENGTH characters (else ValueError).
        Safe against concurrent writers in this and other processes.
        """
        if min(prompt_tokens, completion_tokens, answers) < 0:
            raise ValueError("usage counts must not be negative")
        if len(model) > MAX_MODEL_LENGTH:
            raise ValueError(f"model name longer than {MAX_MODEL_LENGTH} characters")
        table = usage_table
        key = {
            "day": day or _utc_today(),
            "user_id": user_id,
            "guild_id": guild_id or 0,
            "channel_id": channel_id,
            "model": model,
        }
        update = (
            sa.update(table)
            .where(*(table.c[name] == value for name, value in key.items()))
            .values(
                prompt_tokens=table.c.prompt_tokens + prompt_tokens,
                completion_tokens=table.c.completion_tokens + completion_tokens,
                answers=table.c.answers + answers,
            )
        )
        insert = sa.insert(table).values(
            **key,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            answers=answers,
        )
        async with self._failing_as("record usage"):
            await self._update_or_insert(update, insert)

    async def user_totals(
        self, user_id: int, *, guild_id: int | None = None, today: dt.date | None = None
    ) -> UserTotals:
        """A user's usage today, over the last 7 and the last 30 UTC days (today included).

        With `guild_id`, only that guild's usage (0 for DMs); otherwise everywhere.
        """
        today = today or _utc_today()
        table = usage_table
        since_7 = today - dt.timedelta(days=6)
        since_30 = today - dt.timedelta(days=29)
        columns = []
        for since in (today, since_7, since_30):
            for name in ("prompt_tokens", "completion_tokens", "answers"):
                columns.append(_sum(sa.case((table.c.day >= since, table.c[name]), else_=0)))
        conditions = [table.c.user_id == user_id, table.c.day.between(since_30, today)]
        if guild_id is not None:
            conditions.append(table.c.guild_id == guild_id)
        async with self._failing_as("read usage"), self._engine.connect() as conn:
            row = (await conn.execute(sa.select(*columns).where(*conditions))).one()
        values = [int(value) for value in row]
        return UserTotals(Totals(*values[0:3]), Totals(*values[3:6]), Totals(*values[6:9]))

    async def _top(
        self, column: sa.Column[Any], guild_id: int, days: int, limit: int, today: dt.date | None
    ) -> list[tuple[int, Totals]]:
        if days < 1 or limit < 1:
            raise ValueError("days and limit must be at least 1")
        today = today or _utc_today()
        table = usage_table
        tokens = _sum(table.c.prompt_tokens) + _sum(table.c.completion_tokens)
        statement = (
            sa.select(
                column,
                _sum(table.c.prompt_tokens),
                _sum(table.c.completion_tokens),
                _sum(table.c.answers),
            )
            .where(
                table.c.guild_id == guild_id,
                table.c.day.between(today - dt.timedelta(days=days - 1), today),
            )
            .group_by(column)
            .order_by(tokens.desc(), column)
            .limit(limit)
        )
        async with self._failing_as("read usage"), self._engine.connect() as conn:
            rows = (await conn.execute(statement)).all()
        return [(int(r[0]), Totals(int(r[1]), int(r[2]), int(r[3]))) for r in rows]

    async def top_users(
        self, guild_id: int, *, days: int = 30, limit: int = 10, today: dt.date | None = None
    ) -> list[UserUsage]:
        """A guild's users with the most tokens over the last `days` UTC days, most first."""
        top = await self._top(usage_table.c.user_id, guild_id, days, limit, today)
        return [UserUsage(user_id, totals) for user_id, totals in top]

    async def top_channels(
        self, guild_id: int, *, days: int = 30, limit: int = 10, today: dt.date | None = None
    ) -> list[ChannelUsage]:
        """A guild's channels with the most tokens over the last `days` UTC days."""
        top = await self._top(usage_table.c.channel_id, guild_id, days, limit, today)
        return [ChannelUsage(channel_id, totals) for channel_id, totals in top]

    async def usage_rows(
        self, guild_id: int, *, days: int, today: dt.date | None = None
    ) -> list[UsageRow]:
        """A guild's usage rows of the last `days` UTC days, for a CSV export.

        Ordered by day, user, channel, model.
        """
        if days < 1:
            raise ValueError("days must be at least 1")
        today = today or _utc_today()
        table = usage_table
        statement = (
            sa.select(table)
            .where(
                table.c.guild_id == guild_id,
                table.c.day.between(today - dt.timedelta(days=days - 1), today),
            )
            .order_by(table.c.day, table.c.user_id, table.c.channel_id, table.c.model)
        )
        async with self._failing_as("read usage"), self._engine.connect() as conn:
            rows = (await conn.execute(statement)).all()
        return [UsageRow(**row._mapping) for row in rows]

    async def tokens_on_day(self, user_id: int, day: dt.date) -> int:
        """Prompt plus completion tokens `user_id` spent on UTC `day`, everywhere."""
        table = usage_table
        statement = sa.select(_sum(table.c.prompt_tokens + table.c.completion_tokens)).where(
            table.c.user_id == user_id, table.c.day == day
        )
        async with self._failing_as("read usage"), self._engine.connect() as conn:
            return int((await conn.execute(statement)).scalar_one())

    async def prune_usage(
        self, retention_days: int = DEFAULT_RETENTION_DAYS, *, today: dt.date | None = None
    ) -> int:
        """Delete usage older than the last `retention_days` UTC days; returns rows deleted.

        Rows of today and the `retention_days - 1` days before it are kept.
        """
        if retention_days < 1:
            raise ValueError("retention_days must be at least 1")
        cutoff = (today or _utc_today()) - dt.timedelta(days=retention_days - 1)
        statement = sa.delete(usage_table).where(usage_table.c.day < cutoff)
        async with self._failing_as("prune usage"), self._engine.begin() as conn:
            return (await conn.execute(statement)).rowcount

    # --- Summaries -------------------------------------------------------------------

    async def get_summary(self, channel_id: int) -> Summary | None:
        """The channel's running summary, or None."""
        table = summaries_table
        statement = sa.select(table).where(table.c.channel_id == channel_id)
        async with self._failing_as("read a summary"), self._engine.connect() as conn:
            row = (await conn.execute(statement)).one_or_none()
        return None if row is None else Summary(**row._mapping)

    async def put_summary(
        self, channel_id: int, text: str, *, tokens: int, last_message_id: int
    ) -> None:
        """Store the channel's summary, replacing the previous one."""
        table = summaries_table
        values: Mapping[str, Any] = {
            "text": text,
            "tokens": tokens,
            "last_message_id": last_message_id,
            "updated_at": dt.datetime.now(dt.UTC),
        }
        update = sa.update(table).where(table.c.channel_id == channel_id).values(**values)
        insert = sa.insert(table).values(channel_id=channel_id, **values)
        async with self._failing_as("save a summary"):
            await self._update_or_insert(update, insert)

    async def delete_summary(self, channel_id: int) -> bool:
        """Forget the channel's summary; True if there was one."""
        table = summaries_table
        statement = sa.delete(table).where(table.c.channel_id == channel_id)
        async with self._failing_as("delete a summary"), self._engine.begin() as conn:
            return (await conn.execute(statement)).rowcount > 0


async def _prepare_sqlite_path(path: Path) -> None:
    """Create the database file's directory; StoreError if that cannot be done."""

    def prepare() -> None:
        if path.is_dir():
            raise StoreError(f"cannot open {path}: it is a directory")
        # mkdir's own error for a file in the way is "file exists", which misleads.
        blocker = next((p for p in path.parents if p.exists()), None)
        if blocker is not None and not blocker.is_dir():
            raise StoreError(f"cannot create {path.parent}: {blocker} is not a directory")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            reason = (error.strerror or str(error)).lower()
            raise StoreError(f"cannot create {path.parent}: {reason}") from None

    await asyncio.to_thread(prepare)


# Tries at opening a database another process is setting up at the same moment.
OPEN_ATTEMPTS = 10


async def _open_steps(engine: AsyncEngine, url: URL, where: str) -> None:
    """Connect, migrate and prove a write works, each failure with its own wording."""
    for attempt in range(OPEN_ATTEMPTS):
        try:
            async with engine.connect() as conn:
                await conn.execute(sa.select(1))
            break
        except (exc.SQLAlchemyError, OSError) as error:
            # Two processes opening a new SQLite file at once: switching it to WAL takes
            # a lock that SQLite's busy timeout does not wait for. Try again shortly.
            if "database is locked" in str(error) and attempt + 1 < OPEN_ATTEMPTS:
                await asyncio.sleep(0.05 * (attempt + 1))
                continue
            verb = "open" if url.get_backend_name() == "sqlite" else "connect to"
            raise StoreError(f"cannot {verb} {where}: {_reason(error)}") from None
    try:
        await _migrate(engine, MIGRATIONS)
    except (exc.SQLAlchemyError, OSError) as error:
        raise StoreError(f"cannot set up the tables in {where}: {_reason(error)}") from None
    try:
        # A real write (a no-op UPDATE of the newest version row): a read-only file,
        # role or replica fails here instead of at the first answer.
        async with engine.begin() as conn:
            await _touch_version(conn)
    except (exc.SQLAlchemyError, OSError) as error:
        raise StoreError(f"cannot write to {where}: {_reason(error)}") from None


async def _touch_version(conn: AsyncConnection) -> None:
    newest = sa.select(sa.func.max(schema_version.c.version)).scalar_subquery()
    await conn.execute(
        sa.update(schema_version)
        .where(schema_version.c.version == newest)
        .values(applied_at=schema_version.c.applied_at)
    )
