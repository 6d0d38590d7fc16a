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
  ``connect()``; a 401 on GET /users/@me becomes ``LoginFailure`` out of ``login()``;
- slash commands: ``tree.sync()`` runs fine in ``setup_hook`` (login has set the
  application id from GET /oauth2/applications/@me); it sends
  ``default_member_permissions`` as an int, Discord answers a string. Interaction
  callbacks always carry ``?with_response=1`` and no Authorization, and discord.py
  reads the body (``data["interaction"]``), so a 204 there would crash it. An
  INTERACTION_CREATE without ``attachment_size_limit`` raises KeyError in discord.py;
  one for a guild command needs ``data.guild_id`` or the tree answers CommandNotFound.
  A second answer through the same Interaction raises ``InteractionResponded``
  without a request; after a refused answer (4xx) the bot may answer again.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import discord
import pytest
import yarl
from discord import app_commands

from tests.standins.discord import DiscordStandIn, FakeAttachment
from tests.standins.discord.protocol import INTENT_GUILD_MESSAGES, INTENT_MESSAGE_CONTENT

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
        self.raw_edits: list[discord.RawMessageUpdateEvent] = []
        self.raw_deletes: list[
            discord.RawMessageDeleteEvent | discord.RawBulkMessageDeleteEvent
        ] = []
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
        self.raw_edits.append(payload)
        await self._wake()

    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        self.raw_deletes.append(payload)
        await self._wake()

    async def on_raw_bulk_message_delete(self, payload: discord.RawBulkMessageDeleteEvent) -> None:
        self.raw_deletes.append(payload)
        await self._wake()

    async def on_guild_channel_update(self, before: Any, after: Any) -> None:
        await self._wake()  # permission overwrites changed: wait_until re-checks

    async def _wake(self) -> None:
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

    async def make(
        token: str = TOKEN,
        *,
        wait_ready: bool = True,
        client_class: type[ProbeClient] = ProbeClient,
        **options: Any,
    ) -> Any:
        client = client_class(**options)
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


async def test_block_words_refuses_posts_and_edits_like_automod(standin, client):
    channel = client.get_channel(standin.general.id)
    standin.block_words("Pineapple")
    standin.block_words("https://bad.example", code=240000)
    with pytest.raises(discord.HTTPException) as blocked:
        await channel.send("I like PINEAPPLE")
    assert (blocked.value.status, blocked.value.code) == (400, 200000)
    assert blocked.value.text == "Message was blocked by automatic moderation"
    sent = await channel.send("I like apples")
    with pytest.raises(discord.HTTPException) as links:
        await sent.edit(content="see https://bad.example/x")
    assert links.value.code == 240000 and "harmful links" in links.value.text
    assert [m["content"] for m in standin.bot_messages("general")] == ["I like apples"]
    assert [b["code"] for b in standin.blocked] == [200000, 240000]
    with pytest.raises(ValueError):
        standin.block_words("x", code=50035)


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
    await standin.deny("random", "SEND_MESSAGES", "ADD_REACTIONS", tell_bot=False)
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


# --- Slash commands: registration, interactions, responses --------------------------------


class CommandClient(ProbeClient):
    """A client with /reset and /memory in a CommandTree, synced in setup_hook (globally,
    and to ``dev_guild_id`` too if given) as the bot does.

    ``answers[name]`` is what a command does (default: a public reply); every run is kept
    in ``runs`` once its answer returned, exceptions from answers in ``failures``.
    """

    def __init__(self, *, dev_guild_id: int | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.tree = app_commands.CommandTree(self)
        self.dev_guild_id = dev_guild_id
        self.synced: dict[int | None, list[app_commands.AppCommand]] = {}
        self.answers: dict[str, Callable[[discord.Interaction], Awaitable[Any]]] = {}
        self.runs: list[discord.Interaction] = []
        self.failures: list[BaseException] = []
        for name, description in (
            ("reset", "Forget this channel's conversation"),
            ("memory", "What I remember of this channel"),
        ):
            callback = self._callback_for(name)
            self.tree.add_command(
                app_commands.Command(name=name, description=description, callback=callback)
            )

    def _callback_for(self, name: str) -> Callable[[discord.Interaction], Awaitable[None]]:
        async def callback(interaction: discord.Interaction) -> None:
            try:
                answer = self.answers.get(name)
                if answer is None:
                    await interaction.response.send_message(f"/{name} done")
                else:
                    await answer(interaction)
            except Exception as failure:
                self.failures.append(failure)
            finally:
                self.runs.append(interaction)
                async with self._changed:
                    self._changed.notify_all()

        return callback

    async def setup_hook(self) -> None:
        self.synced[None] = await self.tree.sync()
        if self.dev_guild_id is not None:
            guild = discord.Object(self.dev_guild_id)
            self.tree.copy_global_to(guild=guild)
            self.synced[self.dev_guild_id] = await self.tree.sync(guild=guild)


async def raw_api(
    standin: DiscordStandIn, method: str, path: str, *, auth: bool = True, **kwargs: Any
) -> tuple[int, Any]:
    """One REST call without discord.py: (status, JSON body or None)."""
    headers = {"Authorization": f"Bot {standin.bot_token}"} if auth else {}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, standin.api_url + path, headers=headers, **kwargs) as response,
    ):
        body = await response.json() if response.status != 204 else None
        return response.status, body


async def test_sync_registers_global_and_guild_commands(standin, make_client):
    client = await make_client(client_class=CommandClient, dev_guild_id=standin.guild_id)
    everywhere = standin.registered_commands()
    in_guild = standin.registered_commands(standin.guild_id)
    assert [c["name"] for c in everywhere] == [c["name"] for c in in_guild] == ["reset", "memory"]
    assert {c["application_id"] for c in everywhere + in_guild} == {str(standin.bot_user_id)}
    assert [c["guild_id"] for c in in_guild] == [str(standin.guild_id)] * 2
    assert "guild_id" not in everywhere[0] and everywhere[0]["dm_permission"] is True
    assert everywhere[0]["description"] == "Forget this channel's conversation"
    assert everywhere[0]["default_member_permissions"] is None and everywhere[0]["type"] == 1
    assert [c.id for c in client.synced[None]] == [int(c["id"]) for c in everywhere]
    assert [c.guild_id for c in client.synced[standin.guild_id]] == [standin.guild_id] * 2
    (put,) = standin.requests_to("PUT", r"/applications/\d+/commands")
    assert put.headers["Authorization"] == f"Bot {TOKEN}" and put.status == 200
    assert put.json[0]["name"] == "reset" and put.json[0]["options"] == []

    fetched = await client.tree.fetch_commands(guild=discord.Object(standin.guild_id))
    assert [c.id for c in fetched] == [int(c["id"]) for c in in_guild]
    again = await client.tree.sync()  # an overwrite keeps the ids of commands it keeps
    assert [c.id for c in again] == [c.id for c in client.synced[None]]

    # In the guild its own copy is offered first; data.guild_id leads the tree to it.
    sent = await standin.user_runs_command("general", "bob", "memory")
    assert sent["data"]["id"] == in_guild[1]["id"]
    assert sent["data"]["guild_id"] == str(standin.guild_id)
    assert (await standin.wait_for_interaction_response(sent))["content"] == "/memory done"
    sent = await standin.user_runs_command(standin.dm_channel("bob"), "bob", "memory")
    assert sent["data"]["id"] == everywhere[1]["id"] and "guild_id" not in sent["data"]
    await standin.wait_for_interaction_response(sent)


async def test_command_registration_is_validated_like_discord(standin):
    path = f"/applications/{standin.bot_user_id}/commands"
    status, body = await raw_api(standin, "PUT", path, json=[{"name": "Reset", "description": "x"}])
    assert (status, body["code"]) == (400, 50035)
    assert body["errors"] == {
        "0": {
            "name": {
                "_errors": [
                    {
                        "code": "APPLICATION_COMMAND_INVALID_NAME",
                        "message": "Command name is invalid",
                    }
                ]
            }
        }
    }
    bad = [
        [{"name": "x" * 33, "description": "x"}],
        [{"name": "reset", "description": ""}],
        [{"name": "reset", "description": "y" * 101}],
        [{"name": "reset", "description": "x"}, {"name": "reset", "description": "y"}],
        [{"name": "reset", "description": "x", "options": [{"type": 99, "name": "a"}]}],
        [
            {
                "name": "ask",
                "description": "x",
                "options": [
                    {"type": 3, "name": "a", "description": "a"},
                    {"type": 3, "name": "b", "description": "b", "required": True},
                ],
            }
        ],
    ]
    for commands in bad:
        status, body = await raw_api(standin, "PUT", path, json=commands)
        assert (status, body["code"]) == (400, 50035), commands
    assert standin.registered_commands() == []  # nothing of a refused overwrite is kept
    status, _ = await raw_api(standin, "PUT", path, auth=False, json=[])
    assert status == 401
    status, body = await raw_api(standin, "PUT", "/applications/1/commands", json=[])
    assert (status, body["code"]) == (403, 50001)
    status, body = await raw_api(
        standin, "PUT", f"/applications/{standin.bot_user_id}/guilds/1/commands", json=[]
    )
    assert (status, body["code"]) == (404, 10004)

    mods_only = {"name": "purge", "description": "x", "default_member_permissions": 1 << 13}
    status, body = await raw_api(standin, "PUT", path, json=[mods_only])
    assert status == 200 and body[0]["default_member_permissions"] == "8192"  # a string
    status, listed = await raw_api(standin, "GET", path)
    assert status == 200 and listed == body == standin.registered_commands()


async def test_commands_reach_the_callback_in_a_channel_a_thread_and_a_dm(standin, make_client):
    client = await make_client(client_class=CommandClient)
    with pytest.raises(KeyError, match="not registered"):
        await standin.user_runs_command("general", "alice", "nope")
    runs = [("general", "carol"), ("thread", "alice"), (standin.dm_channel("alice"), "alice")]
    for channel, user in runs:
        sent = await standin.user_runs_command(channel, user, "reset")
        assert (await standin.wait_for_interaction_response(sent))["content"] == "/reset done"
    by_carol, in_thread, in_dm = client.runs
    assert client.failures == []

    assert isinstance(by_carol.channel, discord.TextChannel)
    assert by_carol.channel.id == standin.general.id and by_carol.guild.id == standin.guild_id
    assert isinstance(by_carol.user, discord.Member) and by_carol.user.id == standin.carol.id
    assert by_carol.permissions.manage_messages and by_carol.user.guild_permissions.manage_messages
    assert by_carol.app_permissions.send_messages and by_carol.context.guild
    assert by_carol.command is not None and by_carol.command.name == "reset"
    assert by_carol.application_id == client.application_id == standin.bot_user_id

    assert (
        isinstance(in_thread.channel, discord.Thread) and in_thread.channel.id == standin.thread.id
    )
    assert in_thread.user.id == standin.alice.id and not in_thread.permissions.manage_messages

    assert isinstance(in_dm.channel, discord.DMChannel) and in_dm.guild is None
    assert isinstance(in_dm.user, discord.User) and in_dm.user.id == standin.alice.id
    assert in_dm.context.dm_channel and not in_dm.permissions.manage_messages
    assert in_dm.channel.id == standin.dm_channel("alice").id
    assert [m["content"] for m in standin.bot_messages(standin.dm_channel("alice"))] == [
        "/reset done"
    ]


async def test_what_discord_offers_whom(standin, make_client):
    await make_client(client_class=CommandClient)
    path = f"/applications/{standin.bot_user_id}"
    status, _ = await raw_api(
        standin,
        "PUT",
        f"{path}/commands",
        json=[
            {"name": "reset", "description": "x", "default_member_permissions": str(1 << 13)},
            {"name": "memory", "description": "x", "contexts": [0]},
        ],
    )
    assert status == 200
    with pytest.raises(PermissionError):
        await standin.user_runs_command("general", "alice", "reset")
    with pytest.raises(KeyError, match="not usable"):
        await standin.user_runs_command(standin.dm_channel("alice"), "alice", "memory")
    with pytest.raises(ValueError):
        await standin.user_runs_command(standin.dm_channel("bob"), "alice", "reset")
    # default_member_permissions do not apply in DMs; the owner is an administrator.
    for channel, user in ((standin.dm_channel("alice"), "alice"), ("general", "owner")):
        sent = await standin.user_runs_command(channel, user, "reset")
        await standin.wait_for_interaction_response(sent)
    sent = await standin.user_runs_command("general", "carol", "reset")
    await standin.wait_for_interaction_response(sent)
    assert int(sent["member"]["permissions"]) & (1 << 13)
    assert sent["data"]["name"] == "reset" and "guild_id" not in sent["data"]  # global
    assert sent["authorizing_integration_owners"] == {"0": str(standin.guild_id)}


async def test_ephemeral_and_public_answers_and_only_one_initial_response(standin, make_client):
    client = await make_client(client_class=CommandClient)
    callbacks: list[discord.InteractionCallbackResponse] = []

    async def memory(interaction: discord.Interaction) -> None:
        callbacks.append(await interaction.response.send_message("12 turns", ephemeral=True))
        await interaction.response.send_message("once more")  # InteractionResponded

    async def reset(interaction: discord.Interaction) -> None:
        callbacks.append(await interaction.response.send_message("Forgot this channel."))

    client.answers.update(memory=memory, reset=reset)
    asked = await standin.user_runs_command("general", "alice", "memory")
    private = await standin.wait_for_interaction_response(asked)
    assert (private["kind"], private["type"], private["content"]) == ("callback", 4, "12 turns")
    assert private["ephemeral"] and private["flags"] == 64
    await client.wait_until(lambda: client.failures)
    assert isinstance(client.failures[0], discord.InteractionResponded)
    assert callbacks[0].is_ephemeral() and callbacks[0].message_id == int(private["message_id"])

    reset_run = await standin.user_runs_command("general", "carol", "reset")
    public = await standin.wait_for_interaction_response(reset_run)
    assert not public["ephemeral"] and public["content"] == "Forgot this channel."
    (stored,) = standin.bot_messages("general")  # the ephemeral answer is not in history
    assert stored["id"] == public["message_id"] and stored["type"] == 20
    assert stored["interaction_metadata"]["user"]["id"] == str(standin.carol.id)
    assert stored["interaction"]["name"] == "reset" and stored["webhook_id"] == str(
        standin.bot_user_id
    )
    echoed = await client.next_message(lambda m: m.id == int(public["message_id"]))
    assert echoed.type is discord.MessageType.chat_input_command and echoed.author == client.user
    assert echoed.interaction_metadata is not None
    assert echoed.interaction_metadata.user.id == standin.carol.id
    assert isinstance(callbacks[1].resource, discord.InteractionMessage)
    assert callbacks[1].resource.content == "Forgot this channel."

    # On the wire: with_response=1, no bot token; Discord refuses a second answer.
    (first, *_) = standin.requests_to("POST", r"/interactions/\d+/[^/]+/callback")
    assert first.query == {"with_response": "1"} and "Authorization" not in first.headers
    callback = f"/interactions/{asked['id']}/{asked['token']}/callback"
    again = {"type": 4, "data": {"content": "late"}}
    status, body = await raw_api(standin, "POST", callback, auth=False, json=again)
    assert (status, body["code"]) == (400, 40060)
    status, body = await raw_api(
        standin, "POST", f"/interactions/1/{asked['token']}/callback", auth=False, json=again
    )
    assert (status, body["code"]) == (404, 10062)
    assert [r["kind"] for r in standin.interaction_responses(asked)] == ["callback"]
    assert len(standin.interaction_responses()) == 2


async def test_a_refused_answer_does_not_count_and_three_seconds_are_the_limit(
    standin, make_client
):
    client = await make_client(client_class=CommandClient)
    refusals: list[discord.HTTPException] = []

    async def too_long(interaction: discord.Interaction) -> None:
        try:
            await interaction.response.send_message("x" * 2001)
        except discord.HTTPException as refused:
            refusals.append(refused)
        await interaction.response.send_message("x" * 2000)

    client.answers["memory"] = too_long
    sent = await standin.user_runs_command("random", "bob", "memory")
    answer = await standin.wait_for_interaction_response(sent)
    assert len(answer["content"]) == 2000
    (refused,) = refusals
    assert (refused.status, refused.code) == (400, 50035)
    assert "In data.content: Must be 2000 or fewer in length." in refused.text

    standin.interaction_response_deadline = 0.0  # the bot took too long
    late = await standin.user_runs_command("random", "bob", "reset")
    await client.wait_until(lambda: len(client.runs) == 2)
    (expired,) = client.failures
    assert isinstance(expired, discord.NotFound) and expired.code == 10062
    assert standin.interaction_responses(late) == []


async def test_defer_then_followups_and_edits(standin, make_client):
    client = await make_client(client_class=CommandClient)
    made: dict[str, Any] = {}

    async def reset(interaction: discord.Interaction) -> None:
        deferred = await interaction.response.defer(thinking=True)
        made["thinking_id"] = deferred.message_id if deferred else None
        made["first"] = await interaction.followup.send("Forgot 12 messages.", ephemeral=True)
        made["second"] = await interaction.followup.send("(just so you know)", ephemeral=True)
        made["edited"] = await interaction.edit_original_response(content="Forgot 12 messages!")
        made["original"] = await interaction.original_response()

    async def memory(interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True)
        await interaction.followup.send("only you can see this")

    client.answers.update(reset=reset, memory=memory)
    sent = await standin.user_runs_command("thread", "carol", "reset")
    thinking = await standin.wait_for_interaction_response(sent, deferred=True)
    assert (thinking["type"], thinking["deferred"], thinking["content"]) == (5, True, "")
    answer = await standin.wait_for_interaction_response(sent)
    # The first followup fills in the "thinking" message, ephemeral=True notwithstanding.
    assert (answer["kind"], answer["content"], answer["ephemeral"]) == (
        "followup",
        "Forgot 12 messages.",
        False,
    )
    assert answer["message_id"] == thinking["message_id"] == str(made["thinking_id"])
    await client.wait_until(lambda: client.runs)
    assert client.failures == []
    assert made["first"].id == made["edited"].id == made["original"].id == made["thinking_id"]
    assert made["second"].id != made["first"].id and made["second"].flags.ephemeral
    assert made["original"].content == "Forgot 12 messages!"
    kinds = [(r["kind"], r["type"]) for r in standin.interaction_responses(sent)]
    assert kinds == [("callback", 5), ("followup", None), ("followup", None), ("edit", None)]
    (stored,) = standin.bot_messages("thread")  # the ephemeral second followup is not there
    assert stored["content"] == "Forgot 12 messages!" and stored["flags"] == 0
    assert stored["type"] == 20
    updated = await client.wait_until(
        lambda: [m for m in client.edited if m.content == "Forgot 12 messages!"]
    )
    assert updated[0].id == made["thinking_id"]

    private = await standin.user_runs_command("thread", "alice", "memory")
    answer = await standin.wait_for_interaction_response(private)
    assert answer["ephemeral"] and answer["content"] == "only you can see this"
    assert len(standin.bot_messages("thread")) == 1
    for verb, expected in (("GET", 200), ("DELETE", 204), ("GET", 404)):
        url = f"/webhooks/{standin.bot_user_id}/{private['token']}/messages/@original"
        status, _ = await raw_api(standin, verb, url, auth=False)
        assert status == expected
    status, body = await raw_api(
        standin, "POST", f"/webhooks/{standin.bot_user_id}/nope", auth=False, json={"content": "x"}
    )
    assert (status, body["code"]) == (401, 50027)


async def test_history_survives_a_restart_and_forbid_read(standin, make_client):
    client = await make_client(client_class=CommandClient)
    said = await standin.user_says("general", "alice", "hello", mention_bot=True)
    await client.next_message(lambda m: m.id == int(said["id"]))
    await client.get_channel(standin.general.id).send("hi alice")
    await standin.user_says("general", "other_bot", "beep")
    run = await standin.user_runs_command("general", "carol", "reset")
    await standin.wait_for_interaction_response(run)
    await client.close()

    restarted = await make_client(client_class=CommandClient)
    await standin.wait_until_ready(count=2)
    assert len(standin.identifies) == 2
    assert [c.id for c in restarted.synced[None]] == [c.id for c in client.synced[None]]
    channel = restarted.get_channel(standin.general.id)
    newest_first = [m async for m in channel.history(limit=10)]
    assert [m.content for m in newest_first] == [
        "/reset done",
        "beep",
        "hi alice",
        f"<@{standin.bot_user_id}> hello",
    ]
    assert [m.author.bot for m in newest_first] == [True, True, True, False]
    assert [m.author.id for m in newest_first[:3]] == [
        standin.bot_user_id,
        standin.other_bot.id,
        standin.bot_user_id,
    ]
    assert newest_first[0].type is discord.MessageType.chat_input_command
    assert newest_first[0].interaction_metadata.user.id == standin.carol.id
    assert newest_first[1].type is discord.MessageType.default
    oldest = newest_first[-1]
    assert [m.content async for m in channel.history(limit=2, oldest_first=True)] == [
        oldest.content,
        "hi alice",
    ]
    assert [m.content async for m in channel.history(after=oldest, limit=2)] == [
        "hi alice",
        "beep",
    ]
    assert [m.content async for m in channel.history(before=newest_first[0], limit=2)] == [
        "beep",
        "hi alice",
    ]
    status, page = await raw_api(
        standin, "GET", f"/channels/{standin.general.id}/messages", params={"after": oldest.id}
    )
    assert status == 200
    assert [m["content"] for m in page] == ["/reset done", "beep", "hi alice"]  # newest first

    standin.forbid_read("general")
    with pytest.raises(discord.Forbidden) as refused:
        [m async for m in channel.history(limit=5)]
    assert (refused.value.status, refused.value.code) == (403, 50001)
    with pytest.raises(discord.Forbidden):
        await channel.fetch_message(oldest.id)
    standin.allow("general")
    assert len([m async for m in channel.history(limit=5)]) == 4


# --- Injected faults ----------------------------------------------------------------------


async def test_injected_server_errors_hit_only_the_matching_requests(standin):
    general = f"/channels/{standin.general.id}/messages"
    down = standin.fail_requests("POST", "create_message", status=503, channel="general")
    status, body = await raw_api(standin, "POST", f"/channels/{standin.random.id}/messages",
                                 json={"content": "elsewhere"})  # fmt: skip
    assert status == 200 and down.hits == []  # another channel is not affected
    status, body = await raw_api(standin, "POST", general, auth=False, json={"content": "x"})
    assert status == 401 and down.hits == []  # the token is checked first
    status, body = await raw_api(standin, "POST", general, json={"content": "lost"})
    assert (status, body) == (503, {"message": "503: Service Unavailable", "code": 0})
    assert standin.messages("general") == []  # refused before Discord handled it
    status, _ = await raw_api(standin, "POST", general, json={"content": "through"})
    assert status == 200 and [m["content"] for m in standin.messages("general")] == ["through"]
    (hit,) = down.hits
    assert hit.fault == "503 application/json" and hit.status == 503
    assert hit.json == {"content": "lost"} and standin.injected_failures() == [hit]

    standin.fail_with_cloudflare_502("GET", r"/channels/\d+/messages", times=2)
    standin.fail_requests("POST", lambda path: path.endswith("/messages"), status=500,
                          take_effect=True)  # fmt: skip
    async with aiohttp.ClientSession() as http:
        auth = {"Authorization": f"Bot {standin.bot_token}"}
        for _ in range(2):
            async with http.get(standin.api_url + general, headers=auth) as response:
                assert response.status == 502
                assert response.headers["Content-Type"] == "text/html"
                page = await response.text()
                assert "<title>502 Bad Gateway</title>" in page and "cloudflare" in page
        async with http.get(standin.api_url + general, headers=auth) as response:
            assert response.status == 200 and len(await response.json()) == 1
        async with http.post(
            standin.api_url + general, headers=auth, json={"content": "twice?"}
        ) as r:
            assert r.status == 500 and (await r.json())["code"] == 0
    # take_effect: the answer was an error, but the message was posted all the same.
    assert [m["content"] for m in standin.messages("general")] == ["through", "twice?"]
    assert [r.fault for r in standin.injected_failures()] == [
        "503 application/json",
        "502 cloudflare html",
        "502 cloudflare html",
        "500 application/json",
    ]


async def test_discord_py_waits_out_a_429_and_retries_a_502(standin, client):
    channel = client.get_channel(standin.general.id)
    limited = standin.rate_limit("POST", "create_message", retry_after=0.3, channel="general")
    started = asyncio.get_running_loop().time()
    sent = await channel.send("after the wait")
    assert asyncio.get_running_loop().time() - started >= 0.3
    assert [r.status for r in standin.posts("general")] == [429, 200]
    (hit,) = limited.hits
    assert hit.fault == "429 rate limit" and limited.remaining == 0
    assert [m["id"] for m in standin.bot_messages("general")] == [str(sent.id)]

    status, _ = await raw_api(standin, "GET", "/users/@me")
    assert status == 200  # a used-up fault does nothing more
    standin.rate_limit("GET", "get_current_user", retry_after=2.5, is_global=True)
    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bot {standin.bot_token}"}
        async with http.get(f"{standin.api_url}/users/@me", headers=headers) as response:
            assert response.status == 429
            assert response.headers["Retry-After"] == "3"
            assert response.headers["X-RateLimit-Global"] == "true"
            assert response.headers["X-RateLimit-Scope"] == "global"
            assert await response.json() == {
                "message": "You are being rate limited.",
                "retry_after": 2.5,
                "global": True,
            }

    standin.fail_with_cloudflare_502("POST", "create_message", channel="general")
    await channel.send("after a 502")  # discord.py sleeps 1 s and tries again
    assert [r.status for r in standin.posts("general")] == [429, 200, 502, 200]
    standin.fail_requests("POST", "create_message", status=503, times=5)
    with pytest.raises(discord.DiscordServerError) as refused:
        await channel.send("not retried")
    assert refused.value.status == 503 and refused.value.text == "503: Service Unavailable"
    assert [m["content"] for m in standin.bot_messages("general")] == [
        "after the wait",
        "after a 502",
    ]


# --- The bot's permissions per channel ----------------------------------------------------


async def test_denied_permissions_are_shown_to_discord_py_and_enforced(standin, client):
    guild = client.get_guild(standin.guild_id)
    general = guild.get_channel(standin.general.id)
    thread = guild.get_thread(standin.thread.id)
    said = await standin.user_says("general", "alice", "question?")
    question = await client.next_message(lambda m: m.id == int(said["id"]))
    assert general.permissions_for(guild.me).read_message_history

    await standin.deny("general", "READ_MESSAGE_HISTORY")
    await client.wait_until(lambda: not general.permissions_for(guild.me).read_message_history)
    assert general.overwrites_for(guild.me).read_message_history is False
    assert general.permissions_for(guild.me).send_messages  # only what was denied
    assert not thread.permissions_for(guild.me).read_message_history  # inherited
    status, channel_json = await raw_api(standin, "GET", f"/channels/{standin.general.id}")
    assert status == 200 and channel_json["permission_overwrites"] == [
        {"id": str(standin.bot_user_id), "type": 1, "allow": "0", "deny": str(1 << 16)}
    ]
    with pytest.raises(discord.Forbidden) as refused:
        await general.send("answer", reference=question)
    assert (refused.value.status, refused.value.code) == (403, 160002)
    assert refused.value.text == "Cannot reply without permission to read message history"
    plain = await general.send("answer without a reply")
    assert [m async for m in general.history(limit=10)] == []  # 200 with no messages
    with pytest.raises(discord.Forbidden) as refused:
        await general.fetch_message(plain.id)
    assert refused.value.code == 50013
    with pytest.raises(discord.Forbidden):
        await question.add_reaction("👍")
    assert [m["content"] for m in standin.bot_messages("general")] == ["answer without a reply"]

    await standin.deny("general", "SEND_MESSAGES_IN_THREADS", "ATTACH_FILES")
    await client.wait_until(lambda: not thread.permissions_for(guild.me).send_messages_in_threads)
    with pytest.raises(discord.Forbidden) as refused:
        await thread.send("in the thread")
    assert refused.value.code == 50013
    with pytest.raises(discord.Forbidden):
        await general.send("a file", file=discord.File(io.BytesIO(b"x"), filename="x.txt"))
    await general.send("no file")
    with pytest.raises(ValueError, match="thread"):
        await standin.deny("thread", "SEND_MESSAGES")

    await standin.deny("general", "SEND_MESSAGES")
    await client.wait_until(lambda: not general.permissions_for(guild.me).send_messages)
    assert not general.permissions_for(guild.me).embed_links  # implicitly denied too
    with pytest.raises(discord.Forbidden) as refused:
        await general.send("muted")
    assert refused.value.code == 50013
    with pytest.raises(discord.Forbidden):
        await general.typing().__aenter__()

    await standin.deny("random", "VIEW_CHANNEL")
    random = guild.get_channel(standin.random.id)
    await client.wait_until(lambda: not random.permissions_for(guild.me).view_channel)
    for attempt in (random.send("hello?"), random.fetch_message(plain.id)):
        with pytest.raises(discord.Forbidden) as refused:
            await attempt
        assert refused.value.code == 50001
    assert standin.bot_permissions("random") == 0

    assert await standin.restore("general", "SEND_MESSAGES") == (1 << 16) | (1 << 38) | (1 << 15)
    assert await standin.restore("general") == 0
    await standin.restore("random")
    await client.wait_until(lambda: random.permissions_for(guild.me).view_channel)
    assert general.overwrites_for(guild.me).is_empty()
    await general.send("back", reference=question)
    await thread.send("back in the thread")
    await random.send("and here")
    assert len([m async for m in general.history(limit=10)]) == 4


async def test_a_hidden_denial_leaves_the_bot_s_cache_stale(standin, client):
    guild = client.get_guild(standin.guild_id)
    general = guild.get_channel(standin.general.id)
    said = await standin.user_says("general", "alice", "question?")
    question = await client.next_message(lambda m: m.id == int(said["id"]))
    await standin.deny("thread", "SEND_MESSAGES_IN_THREADS", tell_bot=False)
    await standin.deny("general", "READ_MESSAGE_HISTORY", tell_bot=False)
    assert general.permissions_for(guild.me).read_message_history  # it was not told
    with pytest.raises(discord.Forbidden) as refused:
        await question.reply("hi")
    assert refused.value.code == 160002
    with pytest.raises(discord.Forbidden):
        await guild.get_thread(standin.thread.id).send("hi")
    standin.allow("general")
    standin.allow("thread")
    await question.reply("hi")
    assert [r.status for r in standin.posts("general")] == [403, 200]


# --- Role mentions --------------------------------------------------------------------


async def test_the_bot_s_managed_role_and_an_ordinary_role_can_be_mentioned(standin, client):
    guild = client.get_guild(standin.guild_id)
    bot_role = guild.self_role  # found by its tags.bot_id
    assert bot_role is not None and bot_role.id == standin.role("bot") == standin.bot_role_id
    assert bot_role.managed and bot_role.is_bot_managed() and bot_role.name == "ChatBot"
    assert bot_role.tags is not None and bot_role.tags.bot_id == standin.bot_user_id
    assert bot_role in guild.me.roles
    helpers = guild.get_role(standin.role("helpers"))
    assert helpers.name == "Helpers" and helpers.mentionable and not helpers.managed

    said = await standin.user_says("general", "alice", "are you there?", mention_roles=["bot"])
    assert said["content"] == f"<@&{standin.bot_role_id}> are you there?"
    assert said["mention_roles"] == [str(standin.bot_role_id)] and said["mentions"] == []
    message = await client.next_message(lambda m: m.id == int(said["id"]))
    assert message.role_mentions == [bot_role]
    assert client.user not in message.mentions and not message.mention_everyone

    said = await standin.user_says(
        "thread", "bob", f"<@&{standin.helpers_role_id}> and <@{standin.bot_user_id}>, help"
    )
    message = await client.next_message(lambda m: m.id == int(said["id"]))
    assert message.role_mentions == [helpers] and message.mentions == [guild.me]
    assert said["mention_roles"] == [str(standin.helpers_role_id)]
    with pytest.raises(KeyError):
        standin.role("admins")


# --- Edits and deletions by users -----------------------------------------------------


async def test_edits_and_deletions_of_messages_the_bot_never_saw(standin, make_client):
    offline = [
        await standin.user_says("general", user, text, deliver=False)
        for user, text in (("alice", "one"), ("bob", "two"), ("carol", "three"), ("alice", "4"))
    ]
    client = await make_client()
    live = await standin.user_says("general", "bob", "live")
    await client.next_message(lambda m: m.id == int(live["id"]))

    edited = await standin.user_edits(offline[0], f"one, <@{standin.carol.id}>")
    (update,) = await client.wait_until(lambda: client.raw_edits)
    assert update.cached_message is None and update.message_id == int(offline[0]["id"])
    assert update.message.content == f"one, <@{standin.carol.id}>"
    assert update.message.edited_at is not None and update.guild_id == standin.guild_id
    data = update.data  # the whole message, as in MESSAGE_CREATE
    assert data["edited_timestamp"] == edited["edited_timestamp"] is not None
    assert data["member"]["roles"] == [] and data["author"]["id"] == str(standin.alice.id)
    assert data["tts"] is False and [u["id"] for u in data["mentions"]] == [str(standin.carol.id)]
    assert data["timestamp"] == offline[0]["timestamp"]  # the original time stays

    event = await standin.user_deletes(offline[1])
    assert event == {
        "id": offline[1]["id"],
        "channel_id": str(standin.general.id),
        "guild_id": str(standin.guild_id),
    }
    await standin.user_deletes(live)
    await client.wait_until(lambda: len(client.raw_deletes) == 2)
    first, second = client.raw_deletes
    assert isinstance(first, discord.RawMessageDeleteEvent)
    assert first.message_id == int(offline[1]["id"]) and first.cached_message is None
    assert second.cached_message is not None and second.cached_message.content == "live"

    bulk = await standin.bulk_delete("general", [offline[2], offline[3]])
    assert set(bulk) == {"ids", "channel_id", "guild_id"}
    await client.wait_until(lambda: len(client.raw_deletes) == 3)
    gone = client.raw_deletes[2]
    assert isinstance(gone, discord.RawBulkMessageDeleteEvent)
    assert gone.message_ids == {int(offline[2]["id"]), int(offline[3]["id"])}
    assert gone.channel_id == standin.general.id and gone.cached_messages == []

    channel = client.get_channel(standin.general.id)
    assert [m.content async for m in channel.history(limit=10)] == [f"one, <@{standin.carol.id}>"]
    with pytest.raises(discord.NotFound):
        await channel.fetch_message(int(offline[1]["id"]))
    with pytest.raises(ValueError):
        await standin.bulk_delete("general", [offline[0]])  # Discord wants 2 to 100


async def test_edits_and_deletions_while_the_bot_is_away_change_only_history(standin):
    said = await standin.user_says("general", "alice", "typo", deliver=False)
    reply = await standin.user_says("general", "bob", "what?", reply_to=said, deliver=False)
    await standin.user_edits(said, "fixed", deliver=False)
    (stored, _) = standin.messages("general")
    assert stored["content"] == "fixed" and stored["edited_timestamp"] is not None
    await standin.user_deletes(said, deliver=False)
    (left,) = standin.messages("general")
    assert left["id"] == reply["id"] and left["referenced_message"] is None
    assert left["message_reference"]["message_id"] == said["id"]
    assert standin.gateway_frames == []


# --- Bursts of many people -------------------------------------------------------------


async def test_a_burst_of_five_hundred_members_arrives_in_order(standin, client):
    started = asyncio.get_running_loop().time()
    said = await standin.burst("general", 500, mention_bot=True)
    sent_in = asyncio.get_running_loop().time() - started
    await client.wait_until(lambda: len(client.received) == 500, timeout=10.0)
    assert sent_in < 5.0, sent_in  # hundreds of MESSAGE_CREATE quickly, even on a busy host
    assert [m.id for m in client.received] == [int(m["id"]) for m in said]
    authors = [m.author for m in client.received]
    assert len({a.id for a in authors}) == 500
    assert all(isinstance(a, discord.Member) for a in authors)
    assert authors[17].display_name == "User 17" and authors[17].name == "user_17"
    assert client.received[17].content == f"<@{standin.bot_user_id}> message 17 from user_17"
    assert standin.user("user_17").id == authors[17].id  # made once, then reused
    assert len(standin.messages("general")) == 500

    lines = [("user_3", "again"), ("alice", "me too"), (standin.user("user_600"), "new")]
    more = await standin.crowd_says("random", lines)
    assert [m["author"]["username"] for m in more] == ["user_3", "alice", "user_600"]
    await client.wait_until(lambda: len(client.received) == 503)
    assert client.received[500].author.id == authors[3].id


# --- Other kinds of channel ---------------------------------------------------------------


async def test_voice_stage_announcement_and_private_thread_chats(standin, client):
    guild = client.get_guild(standin.guild_id)
    expected = {
        "voice": (discord.VoiceChannel, discord.ChannelType.voice),
        "stage": (discord.StageChannel, discord.ChannelType.stage_voice),
        "announcements": (discord.TextChannel, discord.ChannelType.news),
        "private_thread": (discord.Thread, discord.ChannelType.private_thread),
    }
    for key, (kind, channel_type) in expected.items():
        said = await standin.user_says(key, "carol", f"hello from {key}", mention_bot=True)
        message = await client.next_message(lambda m, said=said: m.id == int(said["id"]))
        channel = message.channel
        assert isinstance(channel, kind) and channel.type is channel_type, key
        assert channel.id == standin.channels[key].id and message.guild == guild
        assert channel.permissions_for(guild.me).send_messages, key
        answer = await channel.send(f"hi in {key}", reference=message)
        assert answer.reference.message_id == message.id
        assert [m.id async for m in channel.history(limit=5)] == [answer.id, message.id]

    private = guild.get_thread(standin.private_thread.id)
    assert private.is_private() and private.parent_id == standin.general.id
    assert private.me is not None and private.me.id == standin.bot_user_id  # a member
    assert private.invitable and guild.get_channel(standin.announcements.id).is_news()
    assert guild.get_channel(standin.voice.id).bitrate == 64000
    assert [m["content"] for m in standin.bot_messages("stage")] == ["hi in stage"]

    await standin.deny("voice", "CONNECT", tell_bot=False)
    with pytest.raises(discord.Forbidden) as refused:  # voice chat needs Connect as well
        await guild.get_channel(standin.voice.id).send("still here?")
    assert refused.value.code == 50001


# --- Attachments on users' messages -------------------------------------------------------


async def test_attachments_are_served_like_the_cdn_and_downloads_are_recorded(standin, client):
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(40))
    said = await standin.user_says(
        "general",
        "alice",
        "",
        attachments=[
            FakeAttachment("cat.png", png, width=64, height=48, description="a cat"),
            FakeAttachment("message.txt", "long paste ✓".encode()),
            FakeAttachment("clip.mp4", b"", size=50 * 1024 * 1024, content_type="video/mp4"),
            FakeAttachment("notes", b"plain", guess_content_type=False),
        ],
    )
    cat, paste, clip, notes = said["attachments"]
    assert set(cat) == {
        "id", "filename", "size", "url", "proxy_url", "content_type", "width", "height",
        "description",
    }  # fmt: skip
    assert (cat["size"], cat["content_type"], cat["width"], cat["height"]) == (
        len(png),
        "image/png",
        64,
        48,
    )
    assert paste["content_type"] == "text/plain; charset=utf-8" and "content_type" not in notes
    assert clip["size"] == 50 * 1024 * 1024 and "width" not in clip
    assert cat["url"].startswith(f"{standin.url}/attachments/{standin.general.id}/{cat['id']}/")
    assert "?ex=" in cat["url"] and "&hm=" in cat["url"]
    assert cat["proxy_url"].startswith(f"{standin.url}/media/attachments/")

    message = await client.next_message(lambda m: m.id == int(said["id"]))
    files = {a.filename: a for a in message.attachments}
    assert files["cat.png"].width == 64 and files["notes"].content_type is None
    assert await files["cat.png"].read() == png
    assert await files["message.txt"].read(use_cached=True) == "long paste ✓".encode()
    assert [r.path.split("/")[1] for r in standin.downloaded()] == ["attachments", "media"]
    assert [r.status for r in standin.downloaded(cat)] == [200]
    assert standin.downloaded(clip) == []  # the big video was never fetched

    standin.fail_downloads(notes, status=404)
    standin.fail_downloads(notes, status=500)
    with pytest.raises(discord.NotFound):
        await files["notes"].read()
    with pytest.raises(discord.HTTPException) as failed:
        await files["notes"].read()
    assert failed.value.status == 500
    assert await files["notes"].read() == b"plain"
    assert [(r.status, r.fault) for r in standin.downloaded(notes)] == [
        (404, "404 download"),
        (500, "500 download"),
        (200, None),
    ]
    standin.fail_downloads(cat, hang=True)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(files["cat.png"].read(), 0.3)
    assert standin.downloaded(cat)[-1].fault == "hang"

    channel = client.get_channel(standin.general.id)
    (stored,) = [m async for m in channel.history(limit=1)]
    assert [a.url for a in stored.attachments] == [a["url"] for a in said["attachments"]]
    async with aiohttp.ClientSession() as http, http.get(f"{standin.url}/attachments/1/2/x") as r:
        assert r.status == 404 and await r.text() == "This content is no longer available."

    upload = discord.File(io.BytesIO(b"bot bytes"), filename="reply.txt")
    sent = await channel.send(file=upload)
    assert await sent.attachments[0].read() == b"bot bytes"  # the bot's own uploads too


class ThreadProbe(ProbeClient):
    """A ProbeClient that also keeps the thread events it receives."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.thread_events: list[tuple[str, int]] = []

    async def on_thread_create(self, thread: discord.Thread) -> None:
        self.thread_events.append(("create", thread.id))
        await self._wake()

    async def on_raw_thread_update(self, payload: discord.RawThreadUpdateEvent) -> None:
        self.thread_events.append(("update", payload.thread_id))
        await self._wake()

    async def on_raw_thread_delete(self, payload: discord.RawThreadDeleteEvent) -> None:
        self.thread_events.append(("delete", payload.thread_id))
        await self._wake()


async def test_a_thread_started_from_a_message_has_its_id(standin, make_client):
    client = await make_client(client_class=ThreadProbe)
    said = await standin.user_says("general", "alice", "how do magnets work?")
    message = await client.next_message(lambda m: m.id == int(said["id"]))
    thread = await message.create_thread(name="how do magnets work?")
    assert thread.id == message.id and thread.parent_id == standin.general.id
    assert (
        thread.type is discord.ChannelType.public_thread and thread.name == "how do magnets work?"
    )
    assert await client.wait_until(lambda: ("create", thread.id) in client.thread_events)
    assert client.get_channel(thread.id) is not None
    assert standin.threads_in("general")[-1] == standin.channel(thread.id)
    assert standin.messages("general")[-1]["flags"] & (1 << 5)  # HAS_THREAD
    await thread.send("the answer")
    assert [m["content"] for m in standin.bot_messages(thread.id)] == ["the answer"]
    with pytest.raises(discord.HTTPException) as twice:
        await message.create_thread(name="again")
    assert twice.value.code == 160004


async def test_starting_a_thread_checks_the_name_and_the_permission(standin, make_client):
    client = await make_client(client_class=ThreadProbe)
    said = await standin.user_says("general", "alice", "question")
    message = await client.next_message(lambda m: m.id == int(said["id"]))
    for name in ("", "x" * 101):
        with pytest.raises(discord.HTTPException) as refused:
            await message.create_thread(name=name)
        assert (refused.value.status, refused.value.code) == (400, 50035)
    await standin.deny("general", "CREATE_PUBLIC_THREADS")
    with pytest.raises(discord.Forbidden) as forbidden:
        await message.create_thread(name="x" * 100)
    assert forbidden.value.code == 50013
    await standin.restore("general")
    thread = await message.create_thread(name="x" * 100)
    assert thread.name == "x" * 100
    dm = await standin.user_dms("alice", "in a DM")
    in_dm = await client.next_message(lambda m: m.id == int(dm["id"]))
    with pytest.raises(discord.HTTPException):
        await client.http.start_thread_with_message(
            in_dm.channel.id, in_dm.id, name="no", auto_archive_duration=1440
        )


async def test_a_forum_post_is_a_thread_with_its_starter_message(standin, make_client):
    client = await make_client(client_class=ThreadProbe)
    forum = client.get_channel(standin.forum.id)
    assert isinstance(forum, discord.ForumChannel)
    thread, starter = await standin.user_posts_in_forum(
        "forum", "bob", "Rust or Go?", "for a small CLI tool"
    )
    message = await client.next_message(lambda m: m.id == int(starter["id"]))
    assert message.id == message.channel.id == thread.id
    assert isinstance(message.channel, discord.Thread) and message.channel.name == "Rust or Go?"
    assert message.channel.parent == forum and message.content == "for a small CLI tool"
    assert client.thread_events[0] == ("create", thread.id)
    with pytest.raises(ValueError):
        await standin.user_says("forum", "bob", "not a post")


async def test_archive_lock_and_delete_threads(standin, make_client):
    client = await make_client(client_class=ThreadProbe)
    thread, _ = await standin.user_posts_in_forum("forum", "alice", "Title", "body")
    await standin.archive_thread(thread)
    assert await client.wait_until(lambda: ("update", thread.id) in client.thread_events)
    assert standin.thread_state(thread) == {"archived": True, "locked": False}
    # A person's message unarchives it: THREAD_UPDATE first, then the message.
    said = await standin.user_says(thread, "alice", "still there?")
    message = await client.next_message(lambda m: m.id == int(said["id"]))
    assert isinstance(message.channel, discord.Thread) and not message.channel.archived
    # The bot's post in an archived (unlocked) thread unarchives it too.
    await standin.archive_thread(thread)
    await message.channel.send("yes")
    assert standin.thread_state(thread)["archived"] is False
    # Locked: people without Manage Threads and the bot may not post; moderators may.
    await standin.lock_thread(thread)
    with pytest.raises(ValueError):
        await standin.user_says(thread, "alice", "let me in")
    await standin.user_says(thread, "carol", "locked by a moderator")
    with pytest.raises(discord.Forbidden):
        await message.channel.send("me too")
    await standin.delete_thread(thread)
    assert await client.wait_until(lambda: ("delete", thread.id) in client.thread_events)
    with pytest.raises(discord.NotFound) as gone:
        await message.channel.send("anyone?")
    assert gone.value.code == 10003
    assert standin.threads_in("forum") == []


class AutocompleteClient(ProbeClient):
    """A client with `/pick fruit name:<autocomplete> size:<int>`, synced globally.

    Its autocomplete answers with ``suggest(current)`` itself, keeping what it was asked
    (``asked``: the typed text and the other options) and any failure (``failures``)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.tree = app_commands.CommandTree(self)
        self.suggest: Callable[[str], list[app_commands.Choice[str]]] = lambda _: []
        self.asked: list[tuple[str, int | None]] = []
        self.failures: list[BaseException] = []
        pick = app_commands.Group(name="pick", description="Pick things")

        async def fruit(interaction: discord.Interaction, name: str, size: int = 1) -> None:
            await interaction.response.send_message(f"{size} {name}")

        async def names(interaction: discord.Interaction, current: str) -> list[Any]:
            self.asked.append((current, interaction.namespace.size))
            try:
                await interaction.response.autocomplete(self.suggest(current))
            except discord.HTTPException as failure:
                self.failures.append(failure)
            return []  # discord.py sends these only if nothing was sent

        command = app_commands.Command(name="fruit", description="A fruit", callback=fruit)
        command.autocomplete("name")(names)
        pick.add_command(command)
        self.tree.add_command(pick)

    async def setup_hook(self) -> None:
        await self.tree.sync()


async def test_autocomplete_sends_the_focused_option_and_checks_the_choices(standin, make_client):
    client = await make_client(client_class=AutocompleteClient)
    [registered] = standin.registered_commands()
    assert registered["options"][0]["options"][0]["autocomplete"] is True
    client.suggest = lambda typed: [
        app_commands.Choice(name=f.title(), value=f) for f in ("apple", "apricot") if typed in f
    ]
    sent = await standin.user_types_option(
        "general", "alice", "pick fruit", "name", "ap", {"size": 3}
    )
    assert sent["type"] == 4  # APPLICATION_COMMAND_AUTOCOMPLETE
    [sub] = sent["data"]["options"]
    assert sub["name"] == "fruit" and sub["options"] == [
        {"name": "size", "type": 4, "value": 3},
        {"name": "name", "type": 3, "value": "ap", "focused": True},
    ]
    assert await standin.wait_for_autocomplete(sent) == [
        {"name": "Apple", "value": "apple"},
        {"name": "Apricot", "value": "apricot"},
    ]
    assert client.asked == [("ap", 3)]
    # Required options may still be missing while typing; a non-autocomplete one is no focus.
    sent = await standin.user_types_option("general", "alice", "pick fruit", "name", "apr")
    assert await standin.wait_for_autocomplete(sent) == [{"name": "Apricot", "value": "apricot"}]
    assert client.asked[-1] == ("apr", None)
    with pytest.raises(KeyError):
        await standin.user_types_option("general", "alice", "pick fruit", "size", "3")

    # Discord's limits: at most 25 choices; names (and string values) 1-100 characters.
    for too_much in (
        [app_commands.Choice(name=f"f{n}", value=f"f{n}") for n in range(26)],
        [app_commands.Choice(name="x" * 101, value="x")],
        [app_commands.Choice(name="x", value="x" * 101)],
    ):
        client.suggest = lambda _, too_much=too_much: too_much
        sent = await standin.user_types_option("general", "alice", "pick fruit", "name", "f")
        assert await standin.wait_for_autocomplete(sent) == []  # discord.py's fallback
        failure = client.failures.pop()
        assert isinstance(failure, discord.HTTPException)
        assert (failure.status, failure.code) == (400, 50035)
    assert client.failures == []

    # Only type 8 answers an autocomplete, once; it makes no message to follow up.
    def unanswered(_: str) -> list[app_commands.Choice[str]]:
        raise app_commands.AppCommandError("no suggestions")  # the tree logs it

    client.suggest = unanswered
    sent = await standin.user_types_option("general", "alice", "pick fruit", "name", "a")
    async with asyncio.timeout(5):
        while len(client.asked) < 6:  # asked, and nothing answered
            await asyncio.sleep(0.01)
    callback = f"/interactions/{sent['id']}/{sent['token']}/callback"
    message = {"type": 4, "data": {"content": "hi"}}
    status, body = await raw_api(standin, "POST", callback, auth=False, json=message)
    assert (status, body["code"]) == (400, 50035) and "type" in body["errors"]
    choices = {"type": 8, "data": {"choices": [{"name": "Apple", "value": "apple"}]}}
    status, _ = await raw_api(standin, "POST", callback, auth=False, json=choices)
    assert status == 204
    assert await standin.wait_for_autocomplete(sent) == [{"name": "Apple", "value": "apple"}]
    status, body = await raw_api(standin, "POST", callback, auth=False, json=choices)
    assert (status, body["code"]) == (400, 40060)
    followup = f"/webhooks/{standin.application_id}/{sent['token']}"
    status, body = await raw_api(standin, "POST", followup, auth=False, json={"content": "x"})
    assert (status, body["code"]) == (404, 10015)
    assert standin.bot_messages("general") == []


class Buttons(discord.ui.View):
    """Three buttons, each answering its press in one of the ways Discord accepts."""

    def __init__(self) -> None:
        super().__init__(timeout=None)
        self.pressed: list[tuple[str, discord.Interaction]] = []
        self.failures: list[BaseException] = []

    @discord.ui.button(label="Edit", custom_id="edit")
    async def edit(self, interaction: discord.Interaction, _: discord.ui.Button) -> None:
        self.pressed.append(("edit", interaction))
        await interaction.response.edit_message(content="edited by the press", view=None)

    @discord.ui.button(label="Private", custom_id="private")
    async def private(self, interaction: discord.Interaction, _: discord.ui.Button) -> None:
        self.pressed.append(("private", interaction))
        await interaction.response.send_message("only you see this", ephemeral=True)
        try:
            await interaction.response.defer()  # InteractionResponded, without a request
        except discord.InteractionResponded as failure:
            self.failures.append(failure)

    @discord.ui.button(label="Later", custom_id="later")
    async def later(self, interaction: discord.Interaction, _: discord.ui.Button) -> None:
        self.pressed.append(("later", interaction))
        await interaction.response.defer()  # type 6 for a component interaction
        await interaction.edit_original_response(content="edited after a deferral")


async def test_buttons_are_pressed_as_discord_sends_it_and_answered_once(standin, client):
    view = Buttons()
    channel = client.get_channel(standin.general.id)
    sent = await channel.send("choose", view=view)
    (stored,) = standin.bot_messages("general")
    (row,) = stored["components"]
    assert row["type"] == 1 and [b["custom_id"] for b in row["components"]] == [
        "edit",
        "private",
        "later",
    ]

    # A member's press carries their member object (roles, permissions) and the message.
    pressed = await standin.press(sent.id, "Private", "carol")
    assert pressed["type"] == 3 and pressed["data"] == {"custom_id": "private", "component_type": 2}
    assert pressed["member"]["user"]["id"] == str(standin.carol.id)
    assert pressed["member"]["roles"] and "permissions" in pressed["member"]
    assert pressed["message"]["id"] == str(sent.id) and pressed["message"]["components"]
    answer = await standin.wait_for_interaction_response(pressed)
    assert (answer["type"], answer["content"], answer["ephemeral"]) == (
        4,
        "only you see this",
        True,
    )
    await client.wait_until(lambda: view.failures)
    assert isinstance(view.failures[0], discord.InteractionResponded)
    assert view.pressed[0][1].user.id == standin.carol.id
    assert [m["content"] for m in standin.bot_messages("general")] == ["choose"]  # unchanged
    # Discord refuses a second answer to the same interaction (40060).
    callback = f"/interactions/{pressed['id']}/{pressed['token']}/callback"
    status, body = await raw_api(standin, "POST", callback, auth=False, json={"type": 6})
    assert (status, body["code"]) == (400, 40060)

    # Type 6, then an edit of @original: the pressed message changes.
    later = await standin.press(sent.id, "later", "alice")
    await standin.wait_for(
        lambda: (
            [m["content"] for m in standin.bot_messages("general")] == ["edited after a deferral"]
        )
    )
    assert [r["type"] for r in standin.interaction_responses(later)] == [6, None]

    # Type 7 edits the message in the response itself; its buttons go.
    edit = await standin.press(sent.id, "Edit", "alice")
    answer = await standin.wait_for_interaction_response(edit)
    assert (answer["type"], answer["content"], answer["message_id"]) == (
        7,
        "edited by the press",
        str(sent.id),
    )
    (stored,) = standin.bot_messages("general")
    assert stored["components"] == [] and stored["content"] == "edited by the press"
    echoed = await client.wait_until(
        lambda: next((m for m in client.edited if m.content == "edited by the press"), None)
    )
    assert echoed.id == sent.id
    with pytest.raises(KeyError, match="no button 'Edit'"):
        await standin.press(sent.id, "Edit", "alice")


async def test_a_press_in_a_dm_carries_the_user_and_buttons_are_validated(standin, client):
    view = Buttons()
    await standin.user_dms("alice", "hello")
    dm = await client.next_message(lambda m: m.guild is None)
    sent = await dm.channel.send("choose", view=view)
    pressed = await standin.press(sent.id, "edit", "alice")
    assert pressed["user"]["id"] == str(standin.alice.id) and "member" not in pressed
    assert (await standin.wait_for_interaction_response(pressed))["type"] == 7
    with pytest.raises(ValueError, match="not in"):
        await standin.press(sent.id, "edit", "bob")

    same = {"type": 2, "style": 1, "label": "A", "custom_id": "x"}
    rows = [{"type": 1, "components": [same, {**same, "label": "B"}]}]
    path = f"/channels/{standin.general.id}/messages"
    status, body = await raw_api(standin, "POST", path, json={"content": "x", "components": rows})
    assert (status, body["code"]) == (400, 50035)
    rows = [{"type": 1, "components": [{**same, "label": "L" * 81}]}]
    status, body = await raw_api(standin, "POST", path, json={"content": "x", "components": rows})
    assert (status, body["code"]) == (400, 50035)
