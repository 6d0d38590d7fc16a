"""The Discord stand-in shards as Discord does (topics/gateway#sharding), checked with raw
websockets and with discord.py's own ``AutoShardedClient``.

What these tests pin down: IDENTIFY's ``shard: [id, count]`` picks the guilds of READY and
GUILD_CREATE and the events a session gets, guild events go to shard
``(guild_id >> 22) % count``, DMs to shard 0, every live session of a shard gets each event
(and a session without ``shard`` gets everything), an impossible shard is closed with 4010,
and GET /gateway/bot says the recommended count and ``max_concurrency``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import pytest
import yarl
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import until
from tests.standins.discord import DiscordStandIn
from tests.standins.discord.objects import SnowflakeFactory, shard_of

INTENTS = 1 | 1 << 9 | 1 << 12 | 1 << 15  # guilds, guild and DM messages, message content


class RawSession:
    """One gateway connection that identifies (as ``shard`` if given) and keeps every
    DISPATCH it is sent in ``events`` as (event name, data)."""

    def __init__(self, http: aiohttp.ClientSession, standin: DiscordStandIn) -> None:
        self.http, self.standin = http, standin
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._reader: asyncio.Task[None] | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def identify(self, shard: list[Any] | None = None) -> RawSession:
        self.ws = await self.http.ws_connect(self.standin.gateway_url)
        assert (await self.ws.receive_json())["op"] == 10
        payload: dict[str, Any] = {"token": self.standin.bot_token, "intents": INTENTS}
        if shard is not None:
            payload["shard"] = shard
        await self.ws.send_str(json.dumps({"op": 2, "d": payload, "properties": {}}))
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.ws is not None
        async for frame in self.ws:
            if frame.type is aiohttp.WSMsgType.TEXT:
                data = json.loads(frame.data)
                if data["op"] == 0:
                    self.events.append((data["t"], data["d"]))

    def names(self, event: str) -> list[dict[str, Any]]:
        return [data for name, data in self.events if name == event]

    def guild_ids(self) -> list[int]:
        return [int(g["id"]) for g in self.names("GUILD_CREATE")]

    def message_ids(self) -> list[int]:
        return [int(m["id"]) for m in self.names("MESSAGE_CREATE")]

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 2)


@pytest.fixture
async def standin() -> AsyncIterator[DiscordStandIn]:
    async with DiscordStandIn() as server:
        yield server
    assert server.errors == []


@pytest.fixture
async def connect(standin: DiscordStandIn) -> AsyncIterator[Any]:
    """``await connect(shard)``: a RawSession identified as ``shard`` (None: no shard)."""
    sessions: list[RawSession] = []
    async with aiohttp.ClientSession() as http:

        async def make(shard: list[Any] | None = None) -> RawSession:
            session = await RawSession(http, standin).identify(shard)
            sessions.append(session)
            return session

        yield make
        for session in sessions:
            await session.close()


async def test_guild_events_go_to_their_shard_and_dms_to_shard_zero(standin, connect):
    far = await standin.add_guild("far", shard=(1, 2))
    assert (standin.shard_of("guild", 2), standin.shard_of(far, 2)) == (0, 1)
    zero, one, whole = await connect([0, 2]), await connect([1, 2]), await connect()
    await standin.wait_until_ready(count=3)
    await until(lambda: all(s.names("GUILD_CREATE") for s in (zero, one, whole)))
    assert zero.guild_ids() == [standin.guild_id]
    assert one.guild_ids() == [far.id]
    assert sorted(whole.guild_ids()) == sorted([standin.guild_id, far.id])
    assert [g["id"] for g in one.names("READY")[0]["guilds"]] == [str(far.id)]
    assert one.names("READY")[0]["shard"] == [1, 2]
    assert sorted(s.shard for s in standin.live_sessions) == [(0, 1), (0, 2), (1, 2)]

    here = await standin.user_says("general", "alice", "on shard 0")
    there = await standin.user_says("far/general", "bob", "on shard 1")
    dm = await standin.user_says(standin.dm_channel("carol"), "carol", "a DM")
    thread, _ = await standin.user_posts_in_forum("forum", "alice", "A post", "in a thread")
    ids = [int(m["id"]) for m in (here, there, dm)]
    await until(lambda: len(whole.message_ids()) == 4)
    await until(lambda: len(zero.message_ids()) == 3 and len(one.message_ids()) == 1)
    assert zero.message_ids()[:2] == [ids[0], ids[2]]
    assert one.message_ids() == [ids[1]]
    assert whole.message_ids()[:3] == ids
    assert [t["id"] for t in zero.names("THREAD_CREATE")] == [str(thread.id)]
    assert one.names("THREAD_CREATE") == []
    assert one.names("MESSAGE_CREATE")[0]["guild_id"] == str(far.id)


async def test_every_session_of_a_shard_gets_each_event(standin, connect):
    await standin.add_guild("far", shard=(1, 2))
    first, second, other = await connect([1, 2]), await connect([1, 2]), await connect([0, 2])
    await standin.wait_until_ready(count=3)
    assert len(standin.sessions_of_shard(1)) == 2
    said = await standin.user_says("far/random", "alice", "both of you")
    await until(lambda: first.message_ids() and second.message_ids())
    assert first.message_ids() == second.message_ids() == [int(said["id"])]
    assert first.names("MESSAGE_CREATE")[0]["content"] == "both of you"
    assert other.message_ids() == []

    await first.close()  # a closed session is no longer sent anything
    await standin.wait_for(lambda: len(standin.sessions_of_shard(1)) == 1)
    again = await standin.user_says("far/general", "bob", "only the second")
    await until(lambda: len(second.message_ids()) == 2)
    assert second.message_ids()[-1] == int(again["id"])
    assert len(first.message_ids()) == 1


async def test_a_guild_added_later_arrives_on_its_shard_only(standin, connect):
    zero, one = await connect([0, 3]), await connect([1, 3])
    await standin.wait_until_ready(count=2)
    await until(lambda: zero.guild_ids())
    late = await standin.add_guild("late", shard=(1, 3), name="Late Guild")
    await until(lambda: len(one.guild_ids()) == 1)
    assert one.names("GUILD_CREATE")[0]["name"] == "Late Guild"
    assert one.guild_ids() == [late.id] and zero.guild_ids() == [standin.guild_id]
    with pytest.raises(ValueError, match="already"):
        await standin.add_guild("late")


@pytest.mark.parametrize("shard", [[2, 2], [-1, 2], [0, 0], [0], "0,1", [0, True]])
async def test_an_impossible_shard_is_closed_with_4010(standin, connect, shard):
    session = await connect(shard)
    await asyncio.wait_for(session._reader, 2)
    assert session.ws is not None and session.ws.close_code == 4010
    assert standin.live_sessions == [] and standin.ready_count == 0


async def test_gateway_bot_says_the_recommended_count_and_concurrency(standin):
    standin.recommended_shards, standin.max_concurrency = 4, 2
    headers = {"Authorization": f"Bot {standin.bot_token}"}
    async with (
        aiohttp.ClientSession() as http,
        http.get(standin.api_url + "/gateway/bot", headers=headers) as response,
    ):
        body = await response.json()
    assert body["shards"] == 4 and body["url"] == standin.gateway_url
    assert body["session_start_limit"]["max_concurrency"] == 2


async def test_interactions_go_to_the_shard_of_their_guild(standin, connect):
    far = await standin.add_guild("far", shard=(1, 2))
    zero, one = await connect([0, 2]), await connect([1, 2])
    await standin.wait_until_ready(count=2)
    command = {"name": "reset", "type": 1, "description": "Forget this channel"}
    path = f"/applications/{standin.application_id}/commands"
    headers = {"Authorization": f"Bot {standin.bot_token}"}
    async with (
        aiohttp.ClientSession() as http,
        http.put(standin.api_url + path, headers=headers, json=[command]) as response,
    ):
        assert response.status == 200
    sent = await standin.user_runs_command("far/general", "carol", "reset")
    await until(lambda: one.names("INTERACTION_CREATE"))
    assert sent["guild_id"] == str(far.id)
    assert zero.names("INTERACTION_CREATE") == []


class ShardedProbe(discord.AutoShardedClient):
    """discord.py's AutoShardedClient, keeping the guild and shard of each message."""

    def __init__(self, **options: Any) -> None:
        intents = discord.Intents.default()
        intents.message_content = True
        super().__init__(intents=intents, guild_ready_timeout=0.05, **options)
        self.seen: list[tuple[int | None, int | None]] = []

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """No 5 s between shards: the stand-in has no IDENTIFY rate limit."""

    async def on_message(self, message: discord.Message) -> None:
        self.seen.append(
            (message.guild and message.guild.id, message.guild and message.guild.shard_id)
        )


async def test_discord_py_asks_for_the_recommended_count_and_gets_each_guild_once(standin):
    standin.recommended_shards = 2
    far = await standin.add_guild("far", shard=(1, 2))
    saved = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = standin.api_url
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(standin.gateway_url)
    client = ShardedProbe()
    try:
        await client.login(standin.bot_token)
        task = asyncio.create_task(client.connect())
        await standin.wait_until_ready(count=2, timeout=10)
        await until(lambda: client.get_guild(far.id) and client.get_guild(standin.guild_id))
        assert client.shard_count == 2
        assert [i["shard"] for i in standin.identifies] == [[0, 2], [1, 2]]
        await standin.user_says("general", "alice", "zero")
        await standin.user_says("far/general", "alice", "one")
        await until(lambda: len(client.seen) == 2)
        assert client.seen == [(standin.guild_id, 0), (far.id, 1)]
    finally:
        await client.close()
        await asyncio.wait_for(task, 5)
        discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved


@given(
    count=st.integers(1, 64),
    data=st.data(),
)
def test_guild_ids_land_on_the_shard_asked_for(count, data):
    shard = data.draw(st.integers(0, count - 1))
    make = SnowflakeFactory()
    before = make()
    guild_id = make.on_shard(shard, count)
    assert shard_of(guild_id, count) == shard
    assert before < guild_id < make()  # still unique and increasing


def test_the_fixed_guild_is_on_shard_zero_of_any_count_up_to_16():
    guild_id = DiscordStandIn().guild_id
    assert [shard_of(guild_id, n) for n in range(1, 17)] == [0] * 16
    assert shard_of(None, 5) == 0  # DMs


async def test_too_many_guilds_for_one_session_is_closed_with_4011(standin, connect):
    standin.max_guilds_per_session = 1
    await standin.add_guild("far", shard=(1, 2))
    whole = await connect()
    await asyncio.wait_for(whole._reader, 2)
    assert whole.ws is not None and whole.ws.close_code == 4011
    halves = await connect([0, 2]), await connect([1, 2])
    await standin.wait_until_ready(count=2)
    await until(lambda: [len(half.guild_ids()) for half in halves] == [1, 1])
