"""News between processes sharing one PostgreSQL: NOTIFY on a channel, and a listener on
a dedicated connection that reconnects when it drops (PostgreSQL's LISTEN/NOTIFY).

SQLite has no such thing (and one process needs none): a store on SQLite neither sends
nor listens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from store.errors import reason
from store.postgres import POSTGRES_CONNECT_TIMEOUT_S

if TYPE_CHECKING:
    import asyncpg

log = logging.getLogger("chatbot")

# How often the listener checks its connection, and waits before connecting again.
CHECK_SECONDS = 5.0
RECONNECT_SECONDS = 2.0


class Listener:
    """LISTENs on `channel` over a connection of its own, calling `on_news(payload)`
    for each notification and `on_gap()` after each (re)connection, when news may have
    been missed. `stop` ends it. A connection that drops (the server restarted, the
    network failed) is noticed within CHECK_SECONDS and made again, RECONNECT_SECONDS
    apart while the server is away."""

    def __init__(
        self,
        url: str,
        channel: str,
        on_news: Callable[[str], None],
        on_gap: Callable[[], None],
        *,
        check_seconds: float = CHECK_SECONDS,
    ) -> None:
        self.url = url
        self.channel = channel
        self.on_news = on_news
        self.on_gap = on_gap
        self.check_seconds = check_seconds
        self.connections = 0  # made so far (a test watches the reconnection)
        self.listening = asyncio.Event()  # set while a connection is listening
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Connect and listen in the background."""
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop listening and close the connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        import asyncpg

        failing = False
        while True:
            try:
                conn = await asyncpg.connect(self.url, timeout=POSTGRES_CONNECT_TIMEOUT_S)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as error:
                if not failing:
                    log.warning("settings news: cannot listen (%s); retrying", reason(error))
                failing = True
                await asyncio.sleep(RECONNECT_SECONDS)
                continue
            if failing:
                log.info("settings news: listening again")
            failing = False
            try:
                await self._listen(conn)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as error:
                log.warning("settings news: the listening connection failed: %s", reason(error))
            finally:
                self.listening.clear()
                with contextlib.suppress(Exception):
                    conn.terminate()

    async def _listen(self, conn: asyncpg.Connection) -> None:
        """Listen until the connection closes (checked by a trivial query)."""
        await conn.add_listener(self.channel, lambda *args: self.on_news(str(args[3])))
        self.connections += 1
        self.listening.set()
        self.on_gap()  # anything sent while we were not listening is lost
        while not conn.is_closed():
            await asyncio.sleep(self.check_seconds)
            await conn.fetchval("SELECT 1", timeout=self.check_seconds)
