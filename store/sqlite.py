"""The SQLite backend: one aiosqlite connection to the database file."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
import os
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import IO, Any

import aiosqlite

from store.errors import StoreError, reason
from store.values import naive_utc

# How long a writer waits for another process's write lock before failing.
SQLITE_BUSY_TIMEOUT_MS = 10_000
# Tries at opening a database another process is setting up at the same moment.
OPEN_ATTEMPTS = 10


def _sqlite_value(value: object) -> object:
    """A parameter as SQLite holds it: dates and times as text (see store.values)."""
    if isinstance(value, dt.datetime):
        return naive_utc(value).isoformat(sep=" ", timespec="microseconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


class SQLiteTransaction:
    """The statements of one `SQLite.transaction()`."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, *args: object) -> int:
        """Run one statement; returns how many rows it changed (0 for DDL)."""
        async with self._conn.execute(sql, [_sqlite_value(a) for a in args]) as cursor:
            return max(cursor.rowcount, 0)

    async def fetch(self, sql: str, *args: object) -> list[Sequence[Any]]:
        """Run one query; returns its rows."""
        return list(await self._conn.execute_fetchall(sql, [_sqlite_value(a) for a in args]))

    async def execute_many(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        """Run one statement once per row of arguments, in one call to the driver."""
        await self._conn.executemany(sql, [[_sqlite_value(a) for a in row] for row in rows])


_SQLITE_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, OSError)


class SQLite:
    """One aiosqlite connection to the database file, one transaction at a time.

    The bot is one process, so one connection is enough (bot.py refuses a second bot
    process on the same file: `hold_file`); other programs on the file wait on
    busy_timeout. The lock keeps two coroutines from interleaving their statements
    inside one transaction on the shared connection.
    """

    TIMESTAMP = "DATETIME"
    HAS_VERSION_TABLE = (
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' "
        "AND name = 'schema_version')"
    )
    errors = _SQLITE_ERRORS
    duplicate_key = sqlite3.IntegrityError

    def __init__(self, conn: aiosqlite.Connection) -> None:
        """Use `SQLite.open`; this only keeps a connection that is set up."""
        self._conn = conn
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str) -> SQLite:
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
            hint = unwritable(Path(path).parent)
            raise StoreError(f"cannot open {path}: {reason(error)}{hint}") from None

    @classmethod
    async def _connect(cls, path: str) -> SQLite:
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
    async def transaction(self) -> AsyncIterator[SQLiteTransaction]:
        """One transaction: committed when the block ends, rolled back if anything raises.

        A deferred BEGIN: a write transaction takes the write lock at its first write.
        Every write transaction here starts with its write, so it waits on busy_timeout
        rather than failing on a stale read snapshot.
        """
        async with self._lock:
            statements = SQLiteTransaction(self._conn)
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


def unwritable(folder: Path) -> str:
    """ "; <folder> is not writable by this user (uid N): ..." when it is not (a
    root-owned bind mount on a container's data folder, say), else "": the end of a
    message about a file in `folder` that could not be opened."""
    if os.access(folder, os.W_OK | os.X_OK):
        return ""
    return f"; {folder} is not writable by this user (uid {os.getuid()}): chown or chmod it"


def hold_file(path: Path) -> IO[bytes]:
    """Claim the database file `path` for this process: an exclusive POSIX lock on
    `<name>.lock` beside it, held while the returned file stays open (the OS lets it go
    when the process dies, SIGKILL included). Raises StoreError when another process
    holds it: SQLite has no leases or claims, so two bot processes on one file would
    both answer every message. POSIX locks are per process: several stores opened by one
    process share the claim. Blocking I/O (a local file): call it in a thread."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        handle = open(lock_path, "ab")
    except OSError as error:
        why = (error.strerror or str(error)).lower()
        raise StoreError(f"cannot open {lock_path}: {why}{unwritable(path.parent)}") from None
    try:
        fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise StoreError(
            f"{path} is in use by another bot process: SQLite serves one process; for"
            " several, use PostgreSQL (DATABASE_URL=postgresql://...)."
        ) from None
    return handle


async def _pragma(conn: aiosqlite.Connection, pragma: str) -> object:
    """Run `PRAGMA <pragma>`; its first value, or None."""
    async with conn.execute(f"PRAGMA {pragma}") as cursor:
        row = await cursor.fetchone()
    return None if row is None else row[0]


async def prepare_sqlite_path(path: Path) -> None:
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
            why = (error.strerror or str(error)).lower()
            raise StoreError(f"cannot create {path.parent}: {why}") from None

    await asyncio.to_thread(prepare)
