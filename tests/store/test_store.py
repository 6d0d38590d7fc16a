"""The whole store: its imports, its errors, several processes on one database."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import pytest

from store import (
    Scope,
    Store,
    StoreError,
    Totals,
    database_url,
)
from tests.store.helpers import (
    ROOT,
    TODAY,
    record,
    resolved,
    run_python,
    run_sql,
)


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
    assert await resolved(store, [Scope("guild", 1)]) == {"k" * 100: "x"}
    assert (await store.usage_rows(100, days=1, today=TODAY))[0].model == "m" * 200


async def test_a_failing_database_raises_store_error_from_the_method(store_url: str) -> None:
    store = await Store.open(store_url)
    await run_sql(store_url, "DROP TABLE usage")
    with pytest.raises(StoreError, match=r"^cannot record usage in \S"):
        await record(store, TODAY, 1, 1)
    # The rest of the store still works.
    await store.put_summary(1, "still fine", tokens=1, last_message_id=1)
    assert (await store.get_summary(1)) is not None
    await store.close()


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
        assert await resolved(opened, [Scope("guild", 1)]) == {"model": "survives"}
        assert (await opened.user_totals(7, today=TODAY)).today == Totals(30, 20, 1)
        summary = await opened.get_summary(2)
        assert summary is not None and summary.text == "survives too"
    finally:
        await opened.close()
