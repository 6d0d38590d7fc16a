"""The bot's persistent store: per-scope settings, per-person usage and running summaries.

One `Store` talks to either an SQLite file through aiosqlite (the default: one bot
process) or PostgreSQL through an asyncpg pool (several bot processes sharing state;
asyncpg is imported only then). Every query is one SQL text for both, written with `?`
placeholders, which the PostgreSQL side numbers ($1, $2, ...); only the connection
set-up, the timestamp column type and the value encodings differ, in `_SQLite` and
`_PostgreSQL`.

The on-disk format is the one the earlier SQLAlchemy-based store wrote, so existing
databases keep working: in SQLite a DATE is 'YYYY-MM-DD' text and a DATETIME is
'YYYY-MM-DD HH:MM:SS.ffffff' text, both in naive UTC; in PostgreSQL they are DATE and
TIMESTAMP WITHOUT TIME ZONE (naive UTC too).

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
import sqlite3
import urllib.parse
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import aiosqlite

if TYPE_CHECKING:
    import asyncpg

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
# Connections each process keeps to PostgreSQL: the bot's queries are few and short,
# and a small pool leaves the server's connection slots to the other instances.
POSTGRES_MIN_CONNECTIONS = 1
POSTGRES_MAX_CONNECTIONS = 4
# Tries at opening a database another process is setting up at the same moment.
OPEN_ATTEMPTS = 10


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


class Migration(NamedTuple):
    """One schema step: its `statements` run inside the transaction that records `version`.

    The statements are plain DDL for both backends, with `{timestamp}` standing for the
    backend's timestamp column type (`_SQLite.TIMESTAMP` or `_PostgreSQL.TIMESTAMP`).
    """

    version: int
    description: str
    statements: tuple[str, ...]


# The types and names are those the SQLAlchemy version of the store created, so its
# databases and new ones are the same. In SQLite, DATE and DATETIME give the columns
# NUMERIC affinity, under which the 'YYYY-MM-DD...' text the store writes stays text.
# "key" is quoted because SQLite's parser treats KEY as a keyword.
_SCHEMA_VERSION_TABLE = """
CREATE TABLE schema_version (
    version INTEGER NOT NULL,
    applied_at {timestamp} NOT NULL,
    PRIMARY KEY (version)
)"""

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
)

# A real write that changes nothing: opening proves the database is writable with it.
_TOUCH_NEWEST_VERSION = """
UPDATE schema_version SET applied_at = applied_at
WHERE version = (SELECT MAX(version) FROM schema_version)"""


# --- Opening -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DatabaseURL:
    """A checked `DATABASE_URL`: which backend, what its driver is given, and where."""

    backend: Literal["sqlite", "postgresql"]
    # SQLite: the database file's path. PostgreSQL: a postgresql:// URL as asyncpg reads
    # it (kept out of repr: it may hold a password).
    target: str = field(repr=False)
    # Where the data lives, for messages: the file path, or "PostgreSQL at host:port".
    where: str


def database_url(url: str) -> DatabaseURL:
    """Check a `DATABASE_URL` value and say how the store reaches it.

    Accepts 'sqlite:///relative.db', 'sqlite:////absolute.db', a bare file path
    (relative to the working directory when relative; ~ is expanded), and
    'postgresql://...' or 'postgres://...' with any '+driver' suffix (dropped: the
    store uses asyncpg, which also reads the URL's ?options, e.g. sslmode=require;
    ssl=... is taken as sslmode=...).
    Raises StoreError with a one-line reason for anything else, including in-memory
    SQLite, ?options on sqlite:// and a PostgreSQL URL whose host or port cannot be read.
    """
    text = url.strip()
    if not text:
        raise StoreError("empty: give a file path, sqlite:///path or postgresql://...")
    if "://" not in text:
        path = os.path.expanduser(text)
        return DatabaseURL("sqlite", path, path)
    scheme, rest = text.split("://", 1)
    family = scheme.split("+", 1)[0].lower()
    if family == "sqlite":
        # 'sqlite:///x' is the path 'x': anything before that third slash would be a host.
        path, _, options = rest.removeprefix("/").partition("?")
        path = urllib.parse.unquote(path)
        if not rest.startswith("/") or path in ("", ":memory:"):
            raise StoreError("sqlite:// needs a file path, e.g. sqlite:///data/bot.db")
        if options:
            # Without SQLite's URI mode they would silently become part of the file name.
            raise StoreError("sqlite:// URLs take no ?options: give the file path only")
        return DatabaseURL("sqlite", path, path)
    if family not in ("postgres", "postgresql"):
        raise StoreError(
            f"unsupported scheme {scheme!r}: use a file path, sqlite:///path or postgresql://..."
        )
    try:
        parts = urllib.parse.urlsplit(f"postgresql://{rest}")
        host, port = parts.hostname, parts.port
    except ValueError as error:
        raise StoreError(f"cannot parse {scheme}:// URL: {error}") from None
    # asyncpg reads libpq's option names (sslmode=...). The SQLAlchemy-era store handed
    # the options to asyncpg.connect() as arguments, where the same modes are ssl=...:
    # URLs written for it keep working.
    options = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    if any(name == "ssl" for name, _ in options):
        renamed = [("sslmode" if name == "ssl" else name, value) for name, value in options]
        parts = parts._replace(query=urllib.parse.urlencode(renamed))
    target = urllib.parse.urlunsplit(parts)
    return DatabaseURL("postgresql", target, f"PostgreSQL at {host or 'localhost'}:{port or 5432}")


def _reason(error: BaseException) -> str:
    """The driver's own one-line message, or what an OS error's errno means."""
    # asyncio gives connection errors as OSError with an errno and a message naming the
    # address ("Connect call failed ..."); the errno says it better.
    if isinstance(error, OSError) and error.errno:
        return os.strerror(error.errno).lower()
    if isinstance(error, TimeoutError):
        return "timed out"
    text = str(error).strip()
    line = text.splitlines()[0].strip() if text else ""
    return line or type(error).__name__


# --- The two backends ----------------------------------------------------------------


def _naive_utc(moment: dt.datetime) -> dt.datetime:
    """An aware datetime as the naive UTC both backends store (SQLite has no zones)."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def _read_day(value: str | dt.date) -> dt.date:
    """A DATE column's value: SQLite gives back the 'YYYY-MM-DD' text it holds."""
    return dt.date.fromisoformat(value) if isinstance(value, str) else value


def _read_moment(value: str | dt.datetime) -> dt.datetime:
    """A timestamp column's naive UTC value as an aware datetime (SQLite gives text)."""
    moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=dt.UTC)


def _sqlite_value(value: object) -> object:
    """A parameter as SQLite holds it: dates and times as the SQLAlchemy dialect's text."""
    if isinstance(value, dt.datetime):
        return _naive_utc(value).isoformat(sep=" ", timespec="microseconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


class _SQLiteTransaction:
    """The statements of one `_SQLite.transaction()`."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, *args: object) -> int:
        """Run one statement; returns how many rows it changed (0 for DDL)."""
        async with self._conn.execute(sql, [_sqlite_value(a) for a in args]) as cursor:
            return max(cursor.rowcount, 0)

    async def fetch(self, sql: str, *args: object) -> list[Sequence[Any]]:
        """Run one query; returns its rows."""
        return list(await self._conn.execute_fetchall(sql, [_sqlite_value(a) for a in args]))


_SQLITE_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, OSError)


class _SQLite:
    """One aiosqlite connection to the database file, one transaction at a time.

    The bot is one process, so one connection is enough; other processes on the same
    file wait on busy_timeout. The lock keeps two coroutines from interleaving their
    statements inside one transaction on the shared connection.
    """

    TIMESTAMP = "DATETIME"
    HAS_VERSION_TABLE = (
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' "
        "AND name = 'schema_version')"
    )
    errors = _SQLITE_ERRORS
    duplicate_key = sqlite3.IntegrityError

    def __init__(self, conn: aiosqlite.Connection) -> None:
        """Use `_SQLite.open`; this only keeps a connection that is set up."""
        self._conn = conn
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str) -> _SQLite:
        """Connect to the file and set it up; StoreError saying why when it cannot."""
        try:
            for attempt in range(1, OPEN_ATTEMPTS):
                try:
                    return await cls._connect(path)
                except sqlite3.OperationalError as error:
                    # Two processes opening a new file at once: switching it to WAL takes
                    # a lock that SQLite's busy timeout does not wait for. Try again soon.
                    if "database is locked" not in str(error):
                        raise
                await asyncio.sleep(0.05 * attempt)
            return await cls._connect(path)
        except _SQLITE_ERRORS as error:
            raise StoreError(f"cannot open {path}: {_reason(error)}") from None

    @classmethod
    async def _connect(cls, path: str) -> _SQLite:
        # isolation_level None: the sqlite3 module starts no transactions of its own (it
        # would skip them before SELECT and DDL); `transaction` BEGINs every one itself.
        conn = await aiosqlite.connect(path, isolation_level=None)
        try:
            await _pragma(conn, f"busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            # WAL: readers never block the writer, and a commit is one append to the log.
            mode = await _pragma(conn, "journal_mode = WAL")
            if str(mode).lower() != "wal":
                raise StoreError(f"cannot use WAL journal mode on {path} (got {mode})")
            # FULL: each commit fsyncs the log, so a commit that returned survives a
            # SIGKILL (NORMAL would too: the log is in the OS's cache) and also a power
            # loss or OS crash (NORMAL could lose the last commits). The bot commits a
            # few times per answer at most, so the fsync costs nothing that matters.
            await _pragma(conn, "synchronous = FULL")
        except BaseException:
            await conn.close()
            raise
        return cls(conn)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[_SQLiteTransaction]:
        """One transaction: committed when the block ends, rolled back if anything raises.

        A deferred BEGIN: a write transaction takes the write lock at its first write.
        Every write transaction here starts with its write, so it waits on busy_timeout
        rather than failing on a stale read snapshot.
        """
        async with self._lock:
            statements = _SQLiteTransaction(self._conn)
            await statements.execute("BEGIN")
            try:
                yield statements
                await self._conn.commit()
            except BaseException:
                # Does nothing if SQLite has ended the transaction itself (some errors,
                # such as a full disk, roll back on their own).
                await self._conn.rollback()
                raise

    async def close(self) -> None:
        """Close the connection once the transaction in progress, if any, has ended."""
        async with self._lock:
            await self._conn.close()


async def _pragma(conn: aiosqlite.Connection, pragma: str) -> object:
    """Run `PRAGMA <pragma>`; its first value, or None."""
    async with conn.execute(f"PRAGMA {pragma}") as cursor:
        row = await cursor.fetchone()
    return None if row is None else row[0]


def _numbered(sql: str) -> str:
    """`sql` with its `?` placeholders numbered as PostgreSQL takes them: $1, $2, ...

    The store's SQL holds no `?` but placeholders (none in a literal or a name).
    """
    first, *rest = sql.split("?")
    return first + "".join(f"${number}{text}" for number, text in enumerate(rest, 1))


def _postgres_value(value: object) -> object:
    """A parameter as the TIMESTAMP WITHOUT TIME ZONE columns take it: naive UTC."""
    return _naive_utc(value) if isinstance(value, dt.datetime) else value


class _PostgreSQLTransaction:
    """The statements of one `_PostgreSQL.transaction()`."""

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


def _postgres_errors() -> tuple[type[Exception], ...]:
    """What asyncpg raises when the server, the network or the connection fails."""
    import asyncpg

    return (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


class _PostgreSQL:
    """An asyncpg pool; each transaction runs on one connection taken from it.

    asyncpg is imported only here, when a PostgreSQL URL is opened: a bot on SQLite
    never loads it.
    """

    TIMESTAMP = "TIMESTAMP WITHOUT TIME ZONE"
    # Looked up in the search path, as CREATE TABLE would place it.
    HAS_VERSION_TABLE = "SELECT to_regclass('schema_version') IS NOT NULL"

    def __init__(self, pool: asyncpg.Pool) -> None:
        """Use `_PostgreSQL.open`; this only keeps a pool that is connected."""
        import asyncpg

        self._pool = pool
        self.errors = _postgres_errors()
        self.duplicate_key: type[Exception] = asyncpg.UniqueViolationError

    @classmethod
    async def open(cls, url: str, where: str) -> _PostgreSQL:
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
            raise StoreError(f"cannot connect to {where}: {_reason(error)}") from None
        return cls(pool)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[_PostgreSQLTransaction]:
        """One transaction: committed when the block ends, rolled back if anything raises.

        A pooled connection the server closed is replaced when it is next taken.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            yield _PostgreSQLTransaction(conn)

    async def close(self) -> None:
        """Close every pooled connection, once the transactions in progress have ended."""
        await self._pool.close()


_Database = _SQLite | _PostgreSQL


async def _migrate(db: _Database, migrations: Sequence[Migration]) -> None:
    """Apply the migrations this database lacks, in order, each in its own transaction.

    Two processes starting at once: each migration's transaction first INSERTs its row
    into schema_version, then runs its DDL, then commits. The version is the primary
    key, so a second process's INSERT of the same version waits for the first one's
    transaction (PostgreSQL holds it on the uncommitted key; SQLite on the database
    write lock) and then fails on the duplicate key if the first committed, which tells
    it the migration is done; if the first rolled back, the second goes ahead. Both
    backends run DDL inside transactions, so a migration is all or nothing. This is one
    code path on both, with no advisory lock (which only PostgreSQL has).

    The schema_version table itself is created after a look that it is missing (not
    with IF NOT EXISTS, which PostgreSQL refuses a role that may not create tables even
    when the table exists), so two processes can both see it missing: the loser's
    CREATE fails ("already exists" on PostgreSQL; on SQLite "database is locked", as a
    read transaction that tries to write while another writes is refused at once,
    without the busy wait). That step is retried, and the retry sees the table.
    """
    attempts = 10
    for attempt in range(1, attempts + 1):
        try:
            async with db.transaction() as tx:
                ((exists,),) = await tx.fetch(db.HAS_VERSION_TABLE)
                if not exists:
                    await tx.execute(_SCHEMA_VERSION_TABLE.format(timestamp=db.TIMESTAMP))
            break
        except db.errors:
            if attempt == attempts:
                raise
            await asyncio.sleep(0.02 * attempt)

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
                    await tx.execute(statement.format(timestamp=db.TIMESTAMP))
        except db.duplicate_key:
            continue  # another process applied this migration while we waited


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


async def _set_up(db: _Database, where: str) -> None:
    """Migrate and prove a write works, each failure with its own wording."""
    try:
        await _migrate(db, MIGRATIONS)
    except db.errors as error:
        raise StoreError(f"cannot set up the tables in {where}: {_reason(error)}") from None
    try:
        # A read-only file, role or replica fails here instead of at the first answer.
        async with db.transaction() as tx:
            await tx.execute(_TOUCH_NEWEST_VERSION)
    except db.errors as error:
        raise StoreError(f"cannot write to {where}: {_reason(error)}") from None


# --- The store -----------------------------------------------------------------------


def _utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _check_scope(scope: Scope) -> Scope:
    kind, scope_id = scope
    if kind not in SCOPE_KINDS:
        raise ValueError(f"scope kind must be one of {SCOPE_KINDS}, not {kind!r}")
    return Scope(kind, int(scope_id))


# The counted columns of usage, in the order of Totals' fields.
_COUNTS = ("prompt_tokens", "completion_tokens", "answers")


class Store:
    """Settings, usage and summaries in one database; create it with `await Store.open(url)`.

    All methods are coroutines that do their I/O on the async driver. Any database
    failure raises StoreError (one line, naming the operation and the reason); invalid
    arguments raise ValueError.
    """

    def __init__(self, db: _Database, where: str) -> None:
        """Use `Store.open`; this only keeps a database that is already migrated."""
        self._db = db
        self.where = where  # "path/to/bot.db" or "PostgreSQL at host:port", for messages

    @classmethod
    async def open(cls, url: str) -> Store:
        """Open the database at `url` (see `database_url`), migrated and writable.

        For SQLite, creates the file's directory first. Raises StoreError with a reason
        such as "cannot create data: permission denied" or "cannot connect to PostgreSQL
        at db:5432: connection refused".
        """
        parsed = database_url(url)
        db: _Database
        if parsed.backend == "sqlite":
            await _prepare_sqlite_path(Path(parsed.target))
            db = await _SQLite.open(parsed.target)
        else:
            db = await _PostgreSQL.open(parsed.target, parsed.where)
        try:
            await _set_up(db, parsed.where)
        except BaseException:
            await db.close()
            raise
        return cls(db, parsed.where)

    async def close(self) -> None:
        """Close the database connections; the store is unusable afterwards."""
        await self._db.close()

    @contextlib.asynccontextmanager
    async def _failing_as(self, action: str) -> AsyncIterator[None]:
        try:
            yield
        except self._db.errors as error:
            raise StoreError(f"cannot {action} in {self.where}: {_reason(error)}") from error

    async def _execute(self, action: str, sql: str, *args: object) -> int:
        """Run one statement in its own transaction; how many rows it changed."""
        async with self._failing_as(action), self._db.transaction() as tx:
            return await tx.execute(sql, *args)

    async def _fetch(self, action: str, sql: str, *args: object) -> list[Sequence[Any]]:
        """Run one query in its own transaction; its rows."""
        async with self._failing_as(action), self._db.transaction() as tx:
            return await tx.fetch(sql, *args)

    # --- Settings --------------------------------------------------------------------

    async def set_setting(
        self, scope: Scope, key: str, value: str, *, updated_by: int | None = None
    ) -> None:
        """Store `value` for `key` in `scope`, replacing any value it had.

        Raises ValueError for an unknown scope kind or a key that is empty or longer
        than MAX_KEY_LENGTH. Safe against concurrent writers in this and other processes.
        """
        scope = _check_scope(scope)
        if not 0 < len(key) <= MAX_KEY_LENGTH:
            raise ValueError(f"setting key must be 1 to {MAX_KEY_LENGTH} characters")
        # One statement, so two writers of the same new key cannot both INSERT it:
        # PostgreSQL turns the second INSERT into the UPDATE, SQLite writers are serial.
        await self._execute(
            "save a setting",
            """
            INSERT INTO settings (scope_kind, scope_id, "key", value, updated_by, updated_at)
            VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (scope_kind, scope_id, "key") DO UPDATE SET
                value = excluded.value,
                updated_by = excluded.updated_by,
                updated_at = excluded.updated_at""",
            scope.kind,
            scope.id,
            key,
            value,
            updated_by,
            dt.datetime.now(dt.UTC),
        )

    async def delete_setting(self, scope: Scope, key: str) -> bool:
        """Remove `key` from `scope`; True if it was set."""
        scope = _check_scope(scope)
        deleted = await self._execute(
            "delete a setting",
            'DELETE FROM settings WHERE scope_kind = ? AND scope_id = ? AND "key" = ?',
            scope.kind,
            scope.id,
            key,
        )
        return deleted > 0

    async def clear_scope(self, scope: Scope) -> int:
        """Remove every setting of `scope`; returns how many there were."""
        scope = _check_scope(scope)
        return await self._execute(
            "clear settings",
            "DELETE FROM settings WHERE scope_kind = ? AND scope_id = ?",
            scope.kind,
            scope.id,
        )

    async def get_settings(self, scopes: Sequence[Scope]) -> dict[Scope, dict[str, Setting]]:
        """The settings of each of `scopes`, in one query: {scope: {key: Setting}}.

        Every requested scope is a key of the result, with {} when it has none.
        """
        wanted = [_check_scope(scope) for scope in scopes]
        result: dict[Scope, dict[str, Setting]] = {scope: {} for scope in wanted}
        if not wanted:
            return result
        distinct = list(dict.fromkeys(wanted))
        matches = " OR ".join(["(scope_kind = ? AND scope_id = ?)"] * len(distinct))
        rows = await self._fetch(
            "read settings",
            'SELECT scope_kind, scope_id, "key", value, updated_by, updated_at FROM settings '
            f"WHERE {matches}",
            *(part for scope in distinct for part in scope),
        )
        for kind, scope_id, key, value, updated_by, updated_at in rows:
            scope = Scope(kind, scope_id)
            result[scope][key] = Setting(scope, key, value, updated_by, _read_moment(updated_at))
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

    async def record_usage(self, rows: Sequence[UsageRow]) -> None:
        """Add each row's counts to the stored row with its (UTC day, user, guild,
        channel, model), creating it if need be; all rows in one transaction.

        A DM's `guild_id` is 0. Counts must be >= 0 and `model` at most
        MAX_MODEL_LENGTH characters (else ValueError, and nothing is written). Safe
        against concurrent writers in this and other processes.
        """
        for row in rows:
            if min(row.prompt_tokens, row.completion_tokens, row.answers) < 0:
                raise ValueError("usage counts must not be negative")
            if len(row.model) > MAX_MODEL_LENGTH:
                raise ValueError(f"model name longer than {MAX_MODEL_LENGTH} characters")
        # One statement per row, as in set_setting: concurrent first answers of a day all
        # count. One transaction for them all: one fsync however many answers it holds.
        async with self._failing_as("record usage"), self._db.transaction() as tx:
            for row in rows:
                await tx.execute(
                    """
                    INSERT INTO usage (day, user_id, guild_id, channel_id, model,
                                       prompt_tokens, completion_tokens, answers)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (day, user_id, guild_id, channel_id, model) DO UPDATE SET
                        prompt_tokens = usage.prompt_tokens + excluded.prompt_tokens,
                        completion_tokens = usage.completion_tokens + excluded.completion_tokens,
                        answers = usage.answers + excluded.answers""",
                    row.day,
                    row.user_id,
                    row.guild_id,
                    row.channel_id,
                    row.model,
                    row.prompt_tokens,
                    row.completion_tokens,
                    row.answers,
                )

    async def user_totals(
        self, user_id: int, *, guild_id: int | None = None, today: dt.date | None = None
    ) -> UserTotals:
        """A user's usage today, over the last 7 and the last 30 UTC days (today included).

        With `guild_id`, only that guild's usage (0 for DMs); otherwise everywhere.
        """
        today = today or _utc_today()
        since = (today, today - dt.timedelta(days=6), today - dt.timedelta(days=29))
        sums = ", ".join(
            f"COALESCE(SUM(CASE WHEN day >= ? THEN {column} ELSE 0 END), 0)"
            for _ in since
            for column in _COUNTS
        )
        sql = f"SELECT {sums} FROM usage WHERE user_id = ? AND day BETWEEN ? AND ?"
        args: list[object] = [first for first in since for _ in _COUNTS]
        args += [user_id, since[-1], today]
        if guild_id is not None:
            sql += " AND guild_id = ?"
            args.append(guild_id)
        (row,) = await self._fetch("read usage", sql, *args)
        values = [int(value) for value in row]
        return UserTotals(Totals(*values[0:3]), Totals(*values[3:6]), Totals(*values[6:9]))

    async def _top(
        self,
        column: Literal["user_id", "channel_id"],
        guild_id: int,
        days: int,
        limit: int,
        today: dt.date | None,
    ) -> list[tuple[int, Totals]]:
        if days < 1 or limit < 1:
            raise ValueError("days and limit must be at least 1")
        today = today or _utc_today()
        rows = await self._fetch(
            "read usage",
            f"""
            SELECT {column}, SUM(prompt_tokens), SUM(completion_tokens), SUM(answers)
            FROM usage
            WHERE guild_id = ? AND day BETWEEN ? AND ?
            GROUP BY {column}
            ORDER BY SUM(prompt_tokens) + SUM(completion_tokens) DESC, {column}
            LIMIT ?""",
            guild_id,
            today - dt.timedelta(days=days - 1),
            today,
            limit,
        )
        return [(int(r[0]), Totals(int(r[1]), int(r[2]), int(r[3]))) for r in rows]

    async def top_users(
        self, guild_id: int, *, days: int = 30, limit: int = 10, today: dt.date | None = None
    ) -> list[UserUsage]:
        """A guild's users with the most tokens over the last `days` UTC days, most first."""
        top = await self._top("user_id", guild_id, days, limit, today)
        return [UserUsage(user_id, totals) for user_id, totals in top]

    async def top_channels(
        self, guild_id: int, *, days: int = 30, limit: int = 10, today: dt.date | None = None
    ) -> list[ChannelUsage]:
        """A guild's channels with the most tokens over the last `days` UTC days."""
        top = await self._top("channel_id", guild_id, days, limit, today)
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
        rows = await self._fetch(
            "read usage",
            """
            SELECT day, user_id, guild_id, channel_id, model,
                   prompt_tokens, completion_tokens, answers
            FROM usage
            WHERE guild_id = ? AND day BETWEEN ? AND ?
            ORDER BY day, user_id, channel_id, model""",
            guild_id,
            today - dt.timedelta(days=days - 1),
            today,
        )
        return [UsageRow(_read_day(day), *rest) for day, *rest in rows]

    async def tokens_on_day(self, user_id: int, day: dt.date) -> int:
        """Prompt plus completion tokens `user_id` spent on UTC `day`, everywhere."""
        ((tokens,),) = await self._fetch(
            "read usage",
            "SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0) FROM usage "
            "WHERE user_id = ? AND day = ?",
            user_id,
            day,
        )
        return int(tokens)

    async def prune_usage(
        self, retention_days: int = DEFAULT_RETENTION_DAYS, *, today: dt.date | None = None
    ) -> int:
        """Delete usage older than the last `retention_days` UTC days; returns rows deleted.

        Rows of today and the `retention_days - 1` days before it are kept.
        """
        if retention_days < 1:
            raise ValueError("retention_days must be at least 1")
        cutoff = (today or _utc_today()) - dt.timedelta(days=retention_days - 1)
        return await self._execute("prune usage", "DELETE FROM usage WHERE day < ?", cutoff)

    # --- Summaries -------------------------------------------------------------------

    async def get_summary(self, channel_id: int) -> Summary | None:
        """The channel's running summary, or None."""
        rows = await self._fetch(
            "read a summary",
            "SELECT channel_id, text, tokens, last_message_id, updated_at FROM summaries "
            "WHERE channel_id = ?",
            channel_id,
        )
        if not rows:
            return None
        found_id, text, tokens, last_message_id, updated_at = rows[0]
        return Summary(found_id, text, tokens, last_message_id, _read_moment(updated_at))

    async def put_summary(
        self, channel_id: int, text: str, *, tokens: int, last_message_id: int
    ) -> None:
        """Store the channel's summary, replacing the previous one."""
        await self._execute(
            "save a summary",
            """
            INSERT INTO summaries (channel_id, text, tokens, last_message_id, updated_at)
            VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (channel_id) DO UPDATE SET
                text = excluded.text,
                tokens = excluded.tokens,
                last_message_id = excluded.last_message_id,
                updated_at = excluded.updated_at""",
            channel_id,
            text,
            tokens,
            last_message_id,
            dt.datetime.now(dt.UTC),
        )

    async def delete_summary(self, channel_id: int) -> bool:
        """Forget the channel's summary; True if there was one."""
        deleted = await self._execute(
            "delete a summary", "DELETE FROM summaries WHERE channel_id = ?", channel_id
        )
        return deleted > 0
