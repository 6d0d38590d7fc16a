"""Opening an SQLite file: its directory, what stands in the way, its pragmas."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from store import (
    Store,
    StoreError,
)
from store.sqlite import SQLITE_BUSY_TIMEOUT_MS, hold_file


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
        "busy_timeout": SQLITE_BUSY_TIMEOUT_MS,
    }


async def test_an_unwritable_folder_is_named_with_the_user_who_must_write_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A root-owned bind mount on a container's /app/data (the tests run as root, who may
    # write anywhere: the folder's verdict is the OS's os.access, taken as "no" here).
    path = tmp_path / "bot.db"
    monkeypatch.setattr("store.sqlite.os.access", lambda *_a, **_k: False)
    monkeypatch.setattr("store.sqlite.sqlite3.connect", _refuse)
    hint = f"{tmp_path} is not writable by this user (uid {os.getuid()}): chown or chmod it"
    with pytest.raises(StoreError) as raised:
        await Store.open(str(path))
    assert str(raised.value) == f"cannot open {path}: unable to open database file; {hint}"
    monkeypatch.setattr("store.sqlite.open", _no_permission, raising=False)
    with pytest.raises(StoreError) as raised:
        hold_file(path)
    assert str(raised.value) == f"cannot open {path}.lock: permission denied; {hint}"


def _refuse(*_args: object, **_kwargs: object) -> None:
    raise sqlite3.OperationalError("unable to open database file")


def _no_permission(*_args: object, **_kwargs: object) -> None:
    raise PermissionError(13, "Permission denied")
