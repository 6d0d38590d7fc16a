"""Settings news between processes sharing PostgreSQL (operations/settings_news.py): a
change made through one process is applied by another at once, not after its cache's
CACHE_SECONDS; after the listening connection drops and comes back, nothing missed
meanwhile is kept."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from config import load_settings
from conversation.channel_settings import ChannelSettings, Place
from operations.settings_news import SettingsNews, payload, scope_of
from store import Scope, Store, StoreError
from tests.helpers import until
from tests.postgres import PostgresServer

SETTINGS = load_settings({"DISCORD_BOT_TOKEN": "x", "OPENAI_API_KEY": "sk"})
PLACE = Place(guild_id=1, channel_id=2)
HOUR = 3600.0  # a cache that only news can refresh


class Process:
    """One process's store, cached settings and news."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.settings = ChannelSettings(store, SETTINGS, ttl=HOUR)
        self.news = SettingsNews(store, self.settings)
        self.news.listener.check_seconds = 0.2

    async def persona(self) -> str:
        return (await self.settings.effective(PLACE)).persona

    async def close(self) -> None:
        await self.news.stop()
        await self.store.close()


@pytest.fixture
async def two(own_postgres_server: PostgresServer) -> AsyncIterator[list[Process]]:
    processes = [Process(await Store.open(own_postgres_server.url())) for _ in range(2)]
    for process in processes:
        process.news.start()
        await until(lambda p=process: p.news.listener.listening.is_set(), timeout=10)
    yield processes
    for process in processes:
        await process.close()


async def test_a_change_through_one_process_applies_in_the_other_at_once(two) -> None:
    first, second = two
    assert await second.persona() == SETTINGS.system_prompt  # read, and cached for an hour
    await first.settings.change(Scope("guild", 1), "persona", "A pirate.", by=9)
    await until(lambda: second.settings._read.get(Scope("guild", 1)) is None, timeout=5)
    assert await second.persona() == "A pirate."
    await first.settings.change(Scope("channel", 2), "persona", "A parrot.", by=9)
    await until(lambda: second.settings._read.get(Scope("channel", 2)) is None, timeout=5)
    assert await second.persona() == "A parrot."
    assert await first.settings.unset(Scope("channel", 2), "persona")
    await until(lambda: second.settings._read.get(Scope("channel", 2)) is None, timeout=5)
    assert await second.persona() == "A pirate."


async def test_news_missed_while_the_connection_was_down_drops_the_whole_cache(
    two, own_postgres_server: PostgresServer
) -> None:
    first, second = two
    assert await second.persona() == SETTINGS.system_prompt
    own_postgres_server.halt()
    await until(lambda: not second.news.listener.listening.is_set(), timeout=5)
    own_postgres_server.resume()
    # Written while nobody listened to news of it (straight into the table).
    for _ in range(3):  # the pool replaces the connections the restart broke
        with contextlib.suppress(StoreError):
            await first.store.set_setting(Scope("guild", 1), "persona", "Written meanwhile.")
            break
    await until(lambda: second.news.listener.connections == 2, timeout=10)
    assert await second.persona() == "Written meanwhile."


async def test_a_failed_announcement_does_not_fail_the_change(two, own_postgres_server) -> None:
    first, _ = two

    async def refuse(channel: str, text: str) -> None:
        raise StoreError("cannot send news in PostgreSQL: gone")

    first.store.notify = refuse  # type: ignore[method-assign]
    assert await first.settings.change(Scope("guild", 1), "model", "gpt-x", by=9) == "gpt-x"


def test_scopes_are_announced_as_kind_and_id() -> None:
    assert payload(Scope("channel", 12)) == "channel:12"
    assert scope_of("channel:12") == Scope("channel", 12)
    assert scope_of("dm:3") == Scope("dm", 3)
    for nonsense in ("", "channel", "channel:", "user:1", "guild:-1", "guild:x"):
        assert scope_of(nonsense) is None


async def test_news_heard_during_a_read_keeps_that_read_from_being_trusted(
    tmp_path: Path,
) -> None:
    store = await Store.open(str(tmp_path / "bot.db"))
    settings = ChannelSettings(store, SETTINGS, ttl=HOUR)
    reads = 0
    real_read = store.get_settings

    async def read_while_news_arrives(scopes: Sequence[Scope]) -> dict[Scope, Any]:
        nonlocal reads
        reads += 1
        found = await real_read(scopes)
        settings.forget(Scope("guild", 1))  # news of a change committed after this read
        return found

    store.get_settings = read_while_news_arrives  # type: ignore[method-assign]
    try:
        await settings.effective(PLACE)
        await settings.effective(PLACE)  # the first read was not kept: read again
        assert reads == 2
        settings.forget()  # everything, as after a reconnection
        await settings.effective(PLACE)
        assert reads == 3
    finally:
        await store.close()
