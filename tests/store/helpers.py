"""What the store's tests share: a fixed today, recording usage, and looking at a
database around the store with its own driver."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

import asyncpg

from store import Scope, Store, UsageRow, database_url

ROOT = Path(__file__).resolve().parents[2]


TODAY = dt.date(2026, 3, 31)


def days_ago(n: int) -> dt.date:
    return TODAY - dt.timedelta(days=n)


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


async def resolved(store: Store, chain: Sequence[Scope]) -> dict[str, str]:
    """{key: value} over `chain`, most general first, later scopes winning: the settings
    a channel gets from one `get_settings` read (as conversation.channel_settings does)."""
    found = await store.get_settings(chain)
    merged: dict[str, str] = {}
    for scope in chain:
        merged.update({key: setting.value for key, setting in found[scope].items()})
    return merged
