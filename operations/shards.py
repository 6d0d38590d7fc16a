"""Which shards this process runs, and the leases that keep each with one live process.

With PostgreSQL several processes may be started for the same shards: each takes a lease
on every shard it runs before it connects to Discord (store.leases: an advisory lock per
shard on a connection of its own). The first to take them connects; the others wait as
spares, and the one whose wait ends first (PostgreSQL frees a dead holder's locks when
its connection drops) connects in its place. With SQLite there is one process and no
lease: nothing here runs but `claim_sqlite_file`, which keeps a second process off the
file.

A holder that loses its lease connection while it runs stops: it logs why, closes, and
exits with status 1, for its service manager to start it again (it then waits as a spare
if another process took the shards meanwhile). Going back to waiting in-process instead
would need discord.py to drop one shard and launch it again later, and every answer in
flight to be abandoned cleanly; a restart does both with code that already exists, and
between losing the lease and closing, the process answers nothing new that a spare
could answer too for longer than one check interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from config import ConfigError
from store import StoreError, database_url
from store.leases import LeaseConnection, lease_key
from store.sqlite import hold_file, prepare_sqlite_path

log = logging.getLogger("chatbot.shards")

# How often a holder checks that its lease connection still answers, and how long the
# check may take: a lease lost silently is noticed within the sum of the two.
CHECK_INTERVAL_S = 5.0
CHECK_TIMEOUT_S = 5.0


async def claim_sqlite_file(url: str) -> IO[bytes] | None:
    """With SQLite (DATABASE_URL `url`), this process's claim on the database file, to
    keep open for the process's life (store.sqlite.hold_file); None for PostgreSQL.

    SQLite has no leases or claims: a second bot process on the same file would answer
    every message too, so it stops at start-up instead. Raises ConfigError naming
    DATABASE_URL when another process holds the file or its folder cannot be made.
    """
    target = database_url(url)
    if target.backend != "sqlite":
        return None
    path = Path(target.target)
    try:
        await prepare_sqlite_path(path)
        return await asyncio.to_thread(hold_file, path)
    except StoreError as error:
        raise ConfigError(f"DATABASE_URL: {error}") from None


class LeaseLost(Exception):
    """The lease connection failed: this process may no longer run its shards.
    str() is a one-line reason."""


def shard_list(shard_count: int, shard_ids: Sequence[int] | None) -> list[int]:
    """The shards a process runs, in order: `shard_ids`, or all of `shard_count`."""
    return sorted(set(shard_ids)) if shard_ids is not None else list(range(shard_count))


def describe(shard_ids: Sequence[int], shard_count: int) -> str:
    """ "shard 0 of 2", "shards 0, 1 and 3 of 4", "all 8 shards" (for log lines)."""
    ids = list(shard_ids)
    if len(ids) == shard_count and shard_count > 1:
        return f"all {shard_count} shards"
    if len(ids) == 1:
        return f"shard {ids[0]} of {shard_count}"
    listed = ", ".join(map(str, ids[:-1])) + f" and {ids[-1]}"
    return f"shards {listed} of {shard_count}"


def servers_line(servers: Sequence[tuple[str, int]], limit: int = 10) -> str:
    """ "2 server(s): Name (id 1), Other (id 2)", the first `limit` named, for the log line
    that says which shard a server is on."""
    named = ", ".join(f"{name} (id {server_id})" for name, server_id in servers[:limit])
    more = f" and {len(servers) - limit} more" if len(servers) > limit else ""
    return f"{len(servers)} server(s)" + (f": {named}{more}" if servers else "")


def shards_named(shard_ids: Sequence[int], verb: bool = False) -> str:
    """ "shard 1", "shards 0 and 2"; with `verb`, "shard 1 is", "shards 0 and 2 are"."""
    ids = [str(i) for i in shard_ids]
    if len(ids) == 1:
        return f"shard {ids[0]}" + (" is" if verb else "")
    return "shards " + ", ".join(ids[:-1]) + f" and {ids[-1]}" + (" are" if verb else "")


class ShardLeases:
    """The leases of one process on its shards (PostgreSQL only; see `for_database`).

    `hold` takes them, waiting as a spare while another process holds any; then a
    watch runs until `close`, and calls `on_lost(reason)` once if the lease connection
    fails. `lost` is that reason afterwards.
    """

    def __init__(self, url: str, where: str, on_lost: Callable[[str], None]) -> None:
        self._url, self._where = url, where
        self._on_lost = on_lost
        self._connection: LeaseConnection | None = None
        self._waiting: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._closing = False
        self._held = ""
        self.lost: str | None = None
        self.waiting_for: list[int] = []  # the held shards a spare waits for, meanwhile
        # For chatbot_shard_lease_takeovers_total and _leases_lost_total (metrics.py).
        self.takeovers = 0  # leases taken after waiting as a spare
        self.times_lost = 0

    @classmethod
    def for_database(cls, url: str, on_lost: Callable[[str], None]) -> ShardLeases | None:
        """Leases for the database at DATABASE_URL `url`; None for SQLite (no lease)."""
        target = database_url(url)
        if target.backend != "postgresql":
            return None
        return cls(target.target, target.where, on_lost)

    @property
    def held(self) -> bool:
        """Whether every lease was taken (and not let go since)."""
        return bool(self._held) and not self._closing

    async def hold(self, shard_count: int, shard_ids: Sequence[int]) -> bool:
        """Take the lease on every shard of `shard_ids` together, waiting (holding none)
        while another process holds any; `waiting_for` names those meanwhile.

        True once all are held; False when `close` was called meanwhile. Raises LeaseLost
        when the database cannot be reached or the connection fails while waiting.
        """
        self._waiting = asyncio.ensure_future(self._take(shard_count, list(shard_ids)))
        try:
            await self._waiting
        except asyncio.CancelledError:
            if not self._closing:
                raise
            return False
        except StoreError as error:
            raise LeaseLost(f"shard leases in {self._where}: {error}") from None
        if self._closing:
            return False
        self._held = describe(shard_ids, shard_count)
        self._watch = asyncio.ensure_future(self._watch_connection())
        return True

    async def _take(self, shard_count: int, shard_ids: list[int]) -> None:
        """All of `shard_ids` or none: a lease held while waiting for another would leave
        its shard served by nobody (another process could run it meanwhile)."""
        self._connection = connection = await LeaseConnection.open(self._url, self._where)
        waited = False
        while True:
            keys = {i: lease_key(i, shard_count) for i in sorted(shard_ids)}
            held = [i for i, key in keys.items() if not await connection.try_lock(key)]
            if not held:
                break
            await connection.unlock_all()
            self.waiting_for = held
            log.info(
                "%s held by another process: waiting as a spare for %s, holding none of %s"
                " until all are free",
                *(shards_named(held, verb=True), shards_named(held)),
                describe(shard_ids, shard_count),
            )
            # Wait for the first held one; the next round takes it again (advisory locks
            # nest) with the others, or lets it go if another is still held.
            await connection.lock(keys[held[0]])
            waited = True
        self.waiting_for = []
        self.takeovers += waited
        verb = "took over" if waited else "holding"
        log.info("%s the lease on %s", verb, describe(shard_ids, shard_count))

    async def _watch_connection(self) -> None:
        connection = self._connection
        assert connection is not None
        dropped = asyncio.Event()
        connection.when_closed(dropped.set)
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CHECK_INTERVAL_S):
                    await dropped.wait()
            if self._closing:
                return
            if dropped.is_set():
                return self._lose("its database connection closed")
            try:
                await connection.ping(CHECK_TIMEOUT_S)
            except StoreError as error:
                return self._lose(f"its database connection failed: {error}")

    def _lose(self, why: str) -> None:
        self.lost = f"lost the lease on {self._held} ({why})"
        self.times_lost += 1
        log.error("%s: stopping, so that no two processes answer for them", self.lost)
        self._on_lost(self.lost)

    async def close(self) -> None:
        """Stop waiting or watching and let the leases go (the connection closes). Call it
        after the shards are disconnected, so a spare never connects while this answers."""
        self._closing = True
        for task in (self._waiting, self._watch):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, StoreError):
                    await task
        if self._connection is not None:
            await self._connection.close()
