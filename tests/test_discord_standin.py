"""The Discord stand-in, checked with the real discord.py (``discord.Client``).

The client runs in-process over real sockets: ``Route.BASE`` and
``DiscordWebSocket.DEFAULT_GATEWAY`` point at the stand-in. What these tests pin
down about discord.py 2.7:
- ``on_ready`` fires ``guild_ready_timeout`` (default 2 s) after the last
  GUILD_CREATE, even when every guild has arrived; the clients here use 0.05 s;
- login calls GET /users/@me then GET /oauth2/applications/@me; ``Client.connect``
  never asks GET /gateway/bot (only AutoShardedClient does);
- a DM from a user whose DM channel the bot never opened arrives on a
  ``DMChannel`` whose ``recipient`` is None (Discord sends no CHANNEL_CREATE);
- the gateway close code 4014 becomes ``PrivilegedIntentsRequired`` out of
  ``connect()``; a 401 on GET /users/@me becomes ``LoginFailure`` out of ``login()``.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import discord
import pytest
import yarl

from tests.standins.discord_standin import (
    INTENT_GUILD_MESSAGES,
    INTENT_MESSAGE_CONTENT,
    DiscordStandIn,
)

TOKEN = "test-bot-token"


class ProbeClient(discord.Client):
    """A plain client that keeps what it receives, for tests to wait on."""

    def __init__(self, *, message_content: bool = True) -> None:
        intents = discord.Intents.default()
        intents.message_content = message_content
        super().__init__(intents=intents, guild_ready_timeout=0.05)
        self.ready = asyncio.Event()
        self.received: list[discord.Message] = []
        self.edited: list[discord.Message] = []
        self._changed = asyncio.Condition()

    async def on_ready(self) -> None:
        self.ready.set()

    async def on_message(self, message: discord.Message) -> None:
        self.received.append(message)
        async with self._changed:
            self._changed.notify_all()

    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        # on_message_edit fires only for messages in discord.py's cache; this always does.
        self.edited.append(payload.message)
        async with self._changed:
            self._changed.notify_all()

    async def wait_until(self, predicate: Callable[[], Any], timeout: float = 2.0) -> Any:
        """``predicate()`` once truthy, re-checked after each event."""

        async def wait() -> Any:
            async with self._changed:
                while not (result := predicate()):
                    await self._changed.wait()
                return result

        return await asyncio.wait_for(wait(), timeout)

    async def next_message(self, check: Callable[[discord.Message], bool]) -> discord.Message:
        """The first received message passing ``check`` (waiting for it if needed)."""
        return await self.wait_until(lambda: next((m for m in self.received if check(m)), None))


@pytest.fixture
async def make_standin() -> AsyncIterator[Callable[..., Any]]:
    """Start stand-ins (and point discord.py at the last one); stop and restore after."""
    saved = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    started: list[DiscordStandIn] = []

    async def make(**options: Any) -> DiscordStandIn:
        standin = DiscordStandIn(**options)
        await standin.start()
        started.append(standin)
        discord.http.Route.BASE = f"{standin.url}/api/v10"
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(standin.gateway_url)
        return standin

    yield make
    discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved
    for standin in started:
        await standin.stop()
        assert standin.errors == []


@pytest.fixture
async def standin(make_standin) -> DiscordStandIn:
    return await make_standin()


@pytest.fixture
async def make_client() -> AsyncIterator[Callable[..., Any]]:
    """Log clients in and connect them (ready); close them all after the test."""
    running: list[tuple[discord.Client, asyncio.Task[None] | None]] = []

    async def make(token: str = TOKEN, *, wait_ready: bool = True, **options: Any) -> ProbeClient:
        client = ProbeClient(**options)
        running.append((client, None))
        await client.login(token)
        task = asyncio.create_task(client.connect())
        running[-1] = (client, task)
        if wait_ready:
            await asyncio.wait_for(client.ready.wait(), 2.0)
        return client

    yield make
    for client, task in running:
        await client.close()
        if task is not None:
            await asyncio.wait_for(task, 2.0)


@pytest.fixture
async def client(standin, make_client) -> ProbeClient:
    return await make_client()


async def test_on_ready_has_the_guild_its_channels_and_the_thread(standin, client):
    guild = client.get_guild(standin.guild_id)
    assert guild is not None and guild.name == standin.guild_name
    general, random = guild.get_channel(standin.general.id), guild.get_channel(standin.random.id)
    assert isinstance(general, discord.TextChannel) and general.name == "general"
    assert isinstance(random, discord.TextChannel) and random.name == "random"
    assert general.category is not None and general.category.id == standin.category.id
    thread = guild.get_thread(standin.thread.id)
    assert isinstance(thread, discord.Thread)
    assert thread.type is discord.ChannelType.public_thread and thread.parent == general
    assert client.user is not None and client.user.id == standin.bot_user_id
    assert client.user.name == "ChatBot" and client.user.bot
    assert guild.me.id == standin.bot_user_id  # the bot's own member was in GUILD_CREATE
    assert guild.get_role(standin.guild_id).is_default()
    assert guild.get_role(standin.moderators_role_id).name == "Moderators"
    assert standin.identifies[0]["intents"] & INTENT_MESSAGE_CONTENT
    assert [r.path for r in standin.requests[:2]] == [
        "/api/v10/users/@me",
        "/api/v10/oauth2/applications/@me",
    ]


async def test_user_messages_arrive_in_channels_threads_and_dms(standin, client):
    said = await standin.user_says("general", "alice", "hello everyone")
    message = await client.next_message(lambda m: m.id == int(said["id"]))
    assert message.content == "hello everyone"
    assert isinstance(message.channel, discord.TextChannel) and message.channel.name == "general"
    assert isinstance(message.author, discord.Member)
    assert message.author.id == standin.alice.id and message.author.display_name == "Alice"

    said = await standin.user_says("thread", "bob", "in the thread", mention_bot=True)
    message = await client.next_message(lambda m: m.id == int(said["id"]))
    assert isinstance(message.channel, discord.Thread) and message.channel.id == standin.thread.id
    assert message.content == f"<@{standin.bot_user_id}> in the thread"
    assert client.user in message.mentions
    assert message.author.display_name == "Zoë 🌟"

    said = await standin.user_dms("carol", "psst")
    message = await client.next_message(lambda m: m.id == int(said["id"]))
    assert isinstance(message.channel, discord.DMChannel) and message.guild is None
    assert message.content == "psst" and message.author.id == standin.carol.id
    assert "guild_id" not in said


async def test_bot_post_records_the_payload_and_comes_back_over_the_gateway(standin, client):
    channel = client.get_channel(standin.general.id)
    sent = await channel.send(
        f"hi <@{standin.alice.id}>", allowed_mentions=discord.AllowedMentions.none()
    )
    (post,) = standin.posts("general")
    assert post.status == 200
    assert post.json["content"] == f"hi <@{standin.alice.id}>"
    assert post.json["allowed_mentions"] == {"parse": []}
    assert post.headers["Authorization"] == f"Bot {TOKEN}"
    echoed = await client.next_message(lambda m: m.id == sent.id)
    assert echoed.author == client.user and echoed.mentions == []  # nobody was pinged
    assert [m["content"] for m in standin.bot_messages("general")] == [sent.content]


async def test_a_message_over_2000_characters_is_refused(standin, client):
    channel = client.get_channel(standin.general.id)
    with pytest.raises(discord.HTTPException) as refused:
        await channel.send("x" * 2001)
    assert refused.value.status == 400 and refused.value.code == 50035
    assert "Must be 2000 or fewer in length." in refused.value.text
    await channel.send("x" * 2000)
    assert [r.status for r in standin.posts("general")] == [400, 200]


async def test_a_wrong_token_fails_login(make_standin):
    await make_standin(bot_token="the-right-token")
    client = ProbeClient()
    try:
        with pytest.raises(discord.LoginFailure):
            await client.login("a-wrong-token")
    finally:
        await client.close()


async def test_message_content_intent_switched_off_in_the_portal(make_standin):
    standin = await make_standin(message_content_intent_enabled=False)
    client = ProbeClient()
    try:
        await client.login(TOKEN)
        with pytest.raises(discord.PrivilegedIntentsRequired):
            await asyncio.wait_for(client.connect(), 2.0)
    finally:
        await client.close()
    assert standin.ready_count == 0 and len(standin.identifies) == 1


async def test_heartbeats_are_acknowledged(make_standin, make_client):
    standin = await make_standin(heartbeat_interval_ms=100)
    client = await make_client()
    await standin.wait_for(lambda: len(standin.heartbeats) >= 3, timeout=2.0)
    assert client.latency < 1.0  # finite: discord.py saw the HEARTBEAT_ACKs


async def test_without_the_intent_guild_content_is_hidden_unless_the_bot_is_mentioned(
    standin, make_client
):
    client = await make_client(message_content=False)
    assert not standin.identifies[0]["intents"] & INTENT_MESSAGE_CONTENT
    assert standin.identifies[0]["intents"] & INTENT_GUILD_MESSAGES
    plain = await standin.user_says("general", "alice", "secret", attachments=["cat.png"])
    mention = await standin.user_says("general", "alice", "hey", mention_bot=True)
    dm = await standin.user_dms("alice", "private")
    messages = {
        said["id"]: await client.next_message(lambda m, said=said: m.id == int(said["id"]))
        for said in (plain, mention, dm)
    }
    assert messages[plain["id"]].content == "" and messages[plain["id"]].attachments == []
    assert messages[mention["id"]].content == f"<@{standin.bot_user_id}> hey"
    assert messages[dm["id"]].content == "private"
    assert plain["content"] == "secret"  # the stand-in keeps the real content


async def test_replies_edits_deletes_and_history(standin, client):
    said = await standin.user_says("general", "bob", "question?")
    question = await client.next_message(lambda m: m.id == int(said["id"]))
    answer = await question.channel.send("draft", reference=question, mention_author=False)
    assert answer.reference is not None and answer.reference.message_id == question.id
    assert answer.type is discord.MessageType.reply
    assert standin.posts("general")[0].json["message_reference"]["message_id"] == question.id

    await answer.edit(content="final answer")
    edited = await client.wait_until(lambda: [m for m in client.edited if m.id == answer.id])
    assert edited[0].content == "final answer"
    assert [r.json["content"] for r in standin.edits("general")] == ["final answer"]
    (stored,) = standin.bot_messages("general")
    assert stored["content"] == "final answer" and stored["edited_timestamp"] is not None
    assert stored["referenced_message"]["id"] == said["id"]

    channel = question.channel
    newest_first = [m.id async for m in channel.history(limit=10, oldest_first=False)]
    assert newest_first == [answer.id, question.id]
    after = [m.id async for m in channel.history(after=question, limit=5)]
    assert after == [answer.id]
    assert (await channel.fetch_message(question.id)).content == "question?"

    await answer.delete()
    with pytest.raises(discord.HTTPException) as refused:
        await channel.send("to a deleted message", reference=answer)
    assert refused.value.status == 400 and refused.value.code == 50035
    lenient = answer.to_reference(fail_if_not_exists=False)
    plain = await channel.send("posted anyway", reference=lenient)
    assert plain.reference is None and plain.type is discord.MessageType.default
    assert [m["content"] for m in standin.bot_messages("general")] == ["posted anyway"]


async def test_user_replies_system_messages_and_uploads(standin, client):
    channel = client.get_channel(standin.random.id)
    bot_said = await channel.send("I am the bot")
    said = await standin.user_says("random", "carol", "thanks!", reply_to=bot_said.id)
    reply = await client.next_message(lambda m: m.id == int(said["id"]))
    assert reply.type is discord.MessageType.reply
    assert isinstance(reply.reference.resolved, discord.Message)
    assert reply.reference.resolved.author == client.user
    assert client.user in reply.mentions  # a reply pings its author by default
    assert standin.moderators_role_id in [role.id for role in reply.author.roles]

    joined = await standin.system_message("general", "bob")
    join = await client.next_message(lambda m: m.id == int(joined["id"]))
    assert join.type is discord.MessageType.new_member

    upload = discord.File(io.BytesIO(b"hello"), filename="hello.txt")
    sent = await channel.send("with a file", file=upload)
    assert [a.filename for a in sent.attachments] == ["hello.txt"]
    post = standin.posts("random")[-1]
    assert post.json["content"] == "with a file"  # read from the payload_json part
    assert post.files[0]["filename"] == "hello.txt" and post.files[0]["data"] == b"hello"


async def test_forbidden_channel_and_typing(standin, client):
    channel = client.get_channel(standin.random.id)
    async with channel.typing():
        pass
    assert [r.status for r in standin.typing_requests("random")] == [204]
    standin.forbid("random")
    with pytest.raises(discord.Forbidden) as refused:
        await channel.send("let me in")
    assert refused.value.code == 50013
    with pytest.raises(discord.Forbidden):
        await channel.typing().__aenter__()
    standin.allow("random")
    await channel.send("thanks")
    assert [r.status for r in standin.posts("random")] == [403, 200]


async def test_rest_rules_seen_with_a_raw_http_client(standin):
    base = f"{standin.url}/api/v10"
    auth = {"Authorization": f"Bot {standin.bot_token}"}
    general = f"{base}/channels/{standin.general.id}/messages"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/users/@me") as response:
            assert response.status == 401
            assert await response.json() == {"message": "401: Unauthorized", "code": 0}
        async with http.get(f"{base}/no/such/route", headers=auth) as response:
            assert response.status == 404
            assert await response.json() == {"message": "404: Not Found", "code": 0}
        async with http.post(general, json={"content": ""}, headers=auth) as response:
            assert response.status == 400
            assert await response.json() == {
                "code": 50006,
                "message": "Cannot send an empty message",
            }
        async with http.post(
            f"{base}/channels/1/messages", json={"content": "x"}, headers=auth
        ) as r:
            assert r.status == 404 and (await r.json())["code"] == 10003
        async with http.post(general, json={"content": "x" * 2001}, headers=auth) as response:
            assert await response.json() == {
                "code": 50035,
                "errors": {
                    "content": {
                        "_errors": [
                            {
                                "code": "BASE_TYPE_MAX_LENGTH",
                                "message": "Must be 2000 or fewer in length.",
                            }
                        ]
                    }
                },
                "message": "Invalid Form Body",
            }
        async with http.get(general, params={"limit": "5"}, headers=auth) as response:
            assert response.headers["Content-Type"] == "application/json"  # exactly
            assert await response.json() == []
    statuses = [(r.method, r.path.removeprefix("/api/v10"), r.status) for r in standin.requests]
    assert statuses[:2] == [("GET", "/users/@me", 401), ("GET", "/no/such/route", 404)]
    assert standin.requests_to("GET", "/channels/{channel_id}/messages", "general")[0].query == {
        "limit": "5"
    }


async def test_gateway_rules_seen_with_a_raw_websocket(standin):
    async def identify(ws: aiohttp.ClientWebSocketResponse, token: str, intents: int) -> None:
        hello = await ws.receive_json()
        assert hello["op"] == 10 and hello["d"]["heartbeat_interval"] == 41250
        payload = {"token": token, "intents": intents, "properties": {}}
        await ws.send_str(json.dumps({"op": 2, "d": payload}))

    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(standin.gateway_url) as ws:
            await identify(ws, "wrong", 513)
            closed = await ws.receive()
            assert closed.type is aiohttp.WSMsgType.CLOSE
            assert (closed.data, closed.extra) == (4004, "Authentication failed")

        async with http.ws_connect(standin.gateway_url) as first:
            await identify(first, standin.bot_token, 513)
            ready, guild = await first.receive_json(), await first.receive_json()
            assert (ready["t"], ready["s"], guild["t"], guild["s"]) == (
                "READY",
                1,
                "GUILD_CREATE",
                2,
            )
            assert ready["d"]["user"]["id"] == str(standin.bot_user_id)
            await first.send_str(json.dumps({"op": 1, "d": 2}))
            assert (await first.receive_json())["op"] == 11
            await first.send_str(json.dumps({"op": 6, "d": {"session_id": "x", "seq": 2}}))
            assert await first.receive_json() == {"op": 9, "d": False, "s": None, "t": None}

            async with http.ws_connect(standin.gateway_url) as second:  # the bot restarted
                await identify(second, standin.bot_token, 513)
                await standin.wait_until_ready(count=2)
                await second.receive_json(), await second.receive_json()
                said = await standin.user_says("general", "alice", "to the new session")
                created = await second.receive_json()
                assert (created["t"], created["s"]) == ("MESSAGE_CREATE", 3)
                assert created["d"]["id"] == said["id"]
                assert created["d"]["content"] == ""  # 513 lacks MESSAGE_CONTENT
                assert created["d"]["member"]["roles"] == []


async def test_history_from_before_the_bot_connected_and_user_edits(standin, make_client):
    with pytest.raises(RuntimeError, match="no bot is connected"):
        await standin.user_says("general", "alice", "nobody is listening")
    earlier = await standin.user_says("general", "alice", "said while offline", deliver=False)
    client = await make_client()
    channel = client.get_channel(standin.general.id)
    assert [m.content async for m in channel.history(limit=5)] == ["said while offline"]
    assert client.received == []  # Discord does not replay missed events

    await standin.user_edits(earlier, "edited while online")
    (after,) = await client.wait_until(lambda: client.edited)
    assert after.content == "edited while online"


async def test_rest_hides_content_when_the_portal_switch_is_off(make_standin):
    standin = await make_standin(message_content_intent_enabled=False)
    await standin.user_says("general", "bob", "hidden", deliver=False)
    await standin.user_says("general", "bob", "shown", mention_bot=True, deliver=False)
    url = f"{standin.api_url}/channels/{standin.general.id}/messages"
    async with (
        aiohttp.ClientSession() as http,
        http.get(url, headers={"Authorization": f"Bot {standin.bot_token}"}) as response,
    ):
        newest_first = await response.json()
    assert [m["content"] for m in newest_first] == [f"<@{standin.bot_user_id}> shown", ""]
    assert standin.messages("general")[0]["content"] == "hidden"  # tests see everything
