"""Self-tests of the Discord stand-in's history reading (history.py, rest.py), through
discord.py: pages of 100 newest first, rate-limit headers discord.py obeys, archived
threads listed, old messages in place, a channel deleted."""

# The stand-in fixtures are test_discord_standin.py's, imported by name.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import aiohttp
import discord

from tests.standins.discord import DiscordStandIn
from tests.standins.test_discord_standin import (  # noqa: F401 (fixtures)
    ProbeClient,
    client,
    make_client,
    make_standin,
    standin,
)


async def test_history_is_read_in_pages_of_100_newest_first_with_old_times(
    standin: DiscordStandIn, client: ProbeClient
) -> None:
    lines = [("alice", f"old {n}") for n in range(250)]
    standin.past_messages("general", lines, days_ago=30, spacing=timedelta(minutes=1))
    channel = client.get_channel(standin.general.id)
    read = [m async for m in channel.history(limit=None)]
    assert [m.content for m in read] == [f"old {n}" for n in reversed(range(250))]
    newest, oldest = read[0].created_at, read[-1].created_at
    now = datetime.now(UTC)
    assert timedelta(days=29) < now - newest and now - oldest < timedelta(days=31)
    assert newest - oldest == timedelta(minutes=249)
    reads = standin.requests_to("GET", rf"/channels/{standin.general.id}/messages")
    assert [r.query.get("limit") for r in reads] == ["100", "100", "100"]
    assert "before" not in reads[0].query and reads[1].query["before"] == str(read[99].id)
    page = [m async for m in channel.history(limit=100, before=read[199])]
    assert [m.id for m in page] == [m.id for m in read[200:]]  # a short last page


async def test_history_reads_carry_rate_limit_headers_and_discord_py_waits(
    standin: DiscordStandIn, client: ProbeClient
) -> None:
    async with aiohttp.ClientSession() as http:
        url = f"{standin.api_url}/channels/{standin.general.id}/messages?limit=100"
        async with http.get(url, headers={"Authorization": f"Bot {standin.bot_token}"}) as r:
            assert r.status == 200
            assert r.headers["X-RateLimit-Limit"] == "50"
            assert r.headers["X-RateLimit-Remaining"] == "49"
            assert float(r.headers["X-RateLimit-Reset-After"]) <= 1.0
            assert r.headers["X-RateLimit-Bucket"] == "stand-in-list_messages"
            assert float(r.headers["X-RateLimit-Reset"]) > 0
    standin.limit_history_reads(2, 0.5)
    standin.past_messages("random", [("bob", f"m{n}") for n in range(450)], days_ago=1)
    channel = client.get_channel(standin.random.id)
    started = asyncio.get_running_loop().time()
    read = [m async for m in channel.history(limit=None)]  # 5 pages: 2 per 0.5 s
    assert len(read) == 450
    assert asyncio.get_running_loop().time() - started >= 0.9  # it waited twice
    assert getattr(standin, "history_429s", 0) == 0  # on the headers, never a 429


async def test_one_read_over_the_limit_gets_a_429_discord_py_waits_out(
    standin: DiscordStandIn, client: ProbeClient
) -> None:
    standin.limit_history_reads(1, 0.3)
    async with aiohttp.ClientSession() as http:  # another client spends the bucket
        url = f"{standin.api_url}/channels/{standin.general.id}/messages"
        async with http.get(url, headers={"Authorization": f"Bot {standin.bot_token}"}) as r:
            assert r.headers["X-RateLimit-Remaining"] == "0"
    channel = client.get_channel(standin.general.id)
    assert [m async for m in channel.history(limit=10)] == []
    assert standin.history_429s == 1
    statuses = [r.status for r in standin.requests_to("GET", r"/channels/\d+/messages")]
    assert statuses == [200, 429, 200]


async def test_archived_public_threads_are_listed_and_a_deleted_channel_goes(
    standin: DiscordStandIn, client: ProbeClient
) -> None:
    await standin.archive_thread("thread")
    general = client.get_channel(standin.general.id)
    archived = [t async for t in general.archived_threads(limit=None)]
    assert [t.id for t in archived] == [standin.thread.id]
    assert [t async for t in client.get_channel(standin.random.id).archived_threads()] == []
    deleted: list[int] = []
    client.on_guild_channel_delete = lambda channel: deleted.append(channel.id) or _noop()
    random_id = standin.random.id
    await standin.delete_channel("random")
    await asyncio.wait_for(_until(lambda: deleted == [random_id]), 2)
    assert client.get_channel(random_id) is None
    try:
        await client.fetch_channel(random_id)
    except discord.NotFound as error:
        assert error.code == 10003
    else:
        raise AssertionError("a deleted channel was still found")


async def _noop() -> None:
    return None


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.01)
