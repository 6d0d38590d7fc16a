"""Nothing the bot shows anyone comes from a message they could not read (issue 23), end
to end: the real bot indexes a server through the real path (/settings knowledge on,
backfill and live messages), the model (the OpenAI stand-in) calls the knowledge tools,
and what goes back to it is checked, for each asker and each place asked.

The server: #general (public), #random turned into a staff-only channel (a role
overwrite: @everyone may not view it, the "staff" role alice holds may), the private
thread (carol's, with the bot; carol is a moderator) and the forum (public).
"""

from __future__ import annotations

import asyncio
import json

import pytest

import knowledge.readers_discord
from bot import ChatBot
from knowledge.tools import jump_link
from store import StoreError
from tests.helpers import run_command
from tests.postgres import (  # noqa: F401 - fixtures
    PostgresServer,
    own_postgres_server,
    postgres_server,
)
from tests.standins.discord import DiscordStandIn
from tests.standins.openai_standin import Call, OpenAIStandIn, Reply, ToolCalls
from tools.base import Tool, ToolResult

PUBLIC = "the launch moves to Tuesday, public news"
STAFF = "staff only: the launch budget is forty thousand"
PRIVATE = "private thread: the launch codename is heron"
FORUM = "forum post: launch checklist is docs then blog"
SEARCH = Call("search_messages", json.dumps({"query": "launch"}))


async def knowledge_server(discord_api: DiscordStandIn, start_bot, **settings: str) -> ChatBot:
    """The server above, knowledge turned on for it, every message indexed."""
    await discord_api.add_role("staff")
    discord_api.give_role("alice", "staff")
    await discord_api.set_overwrite("random", "everyone", deny=["VIEW_CHANNEL"])
    await discord_api.set_overwrite("random", "staff", allow=["VIEW_CHANNEL"])
    await discord_api.set_overwrite("random", "bot", allow=["VIEW_CHANNEL"])
    await discord_api.user_says("random", "alice", STAFF, deliver=False)  # backfill reads it
    bot = await start_bot(REPLY_TO="mention", **settings)
    answer = await run_command(
        discord_api, "general", "owner", "settings knowledge", mode="on", scope="server"
    )
    assert "on" in answer["content"]
    await discord_api.user_says("general", "bob", PUBLIC)
    await discord_api.user_says("private_thread", "carol", PRIVATE)
    await discord_api.user_posts_in_forum("forum", "bob", "Launch", FORUM)
    await indexed(bot, 4)
    return bot


async def indexed(bot: ChatBot, count: int, *also: int) -> None:
    """Wait until the index holds `count` messages with the word "launch" (in the
    channels and threads the bot knows, and the channels `also`)."""
    store = bot.services.store
    async with asyncio.timeout(20):
        while True:
            every = [c.id for g in bot.guilds for c in [*g.channels, *g.threads]] + list(also)
            if len(await store.search("launch", channel_ids=every, limit=50)) >= count:
                return
            await asyncio.sleep(0.05)


async def ask(discord_api: DiscordStandIn, openai_api: OpenAIStandIn, where: str, who: str) -> str:
    """`who` asks about the launch in `where` ("dm" for a DM); the model searches once.
    What the search tool gave the model."""
    before = len(openai_api.completions)
    openai_api.script(ToolCalls([SEARCH]), Reply("Here is what I found."))
    if where == "dm":
        await discord_api.user_dms(who, "what do we know about the launch?")
    else:
        await discord_api.user_says(where, who, "what about the launch?", mention_bot=True)
    await discord_api.wait_for(lambda: len(openai_api.completions) >= before + 2, timeout=20)
    second = openai_api.completions[before + 1]
    assert [t["function"]["name"] for t in openai_api.completions[before]["tools"]] == [
        "search_messages", "read_around", "read_channel"
    ]  # fmt: skip
    [result] = [m["content"] for m in second["messages"] if m["role"] == "tool"]
    return result


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_the_staff_channel_reaches_only_staff_and_never_a_public_channel(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, request, backend: str
) -> None:
    settings = {}
    if backend == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        settings["DATABASE_URL"] = server.create_database()
    await knowledge_server(discord_api, start_bot, **settings)

    staff_in_public = await ask(discord_api, openai_api, "general", "alice")
    assert PUBLIC in staff_in_public and FORUM in staff_in_public
    assert STAFF not in staff_in_public and PRIVATE not in staff_in_public
    staff_in_dm = await ask(discord_api, openai_api, "dm", "alice")
    assert STAFF in staff_in_dm and PUBLIC in staff_in_dm and PRIVATE not in staff_in_dm

    for where in ("general", "dm"):  # bob holds no role: never the staff channel
        found = await ask(discord_api, openai_api, where, "bob")
        assert PUBLIC in found and STAFF not in found and PRIVATE not in found


async def test_the_first_dm_after_a_restart_is_offered_the_knowledge_tools(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    bot = await knowledge_server(discord_api, start_bot)
    await bot.close()
    await start_bot(REPLY_TO="mention")  # no answer in a server yet to learn it from
    staff_in_dm = await ask(discord_api, openai_api, "dm", "alice")
    assert STAFF in staff_in_dm and PUBLIC in staff_in_dm and PRIVATE not in staff_in_dm


async def test_the_private_thread_reaches_only_its_members(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await knowledge_server(discord_api, start_bot)
    # Carol is in it (and a moderator): asked in the thread itself, and in a DM.
    assert PRIVATE in await ask(discord_api, openai_api, "private_thread", "carol")
    assert PRIVATE in await ask(discord_api, openai_api, "dm", "carol")
    # Asked in #general, whose readers are not all in the thread: left out.
    in_public = await ask(discord_api, openai_api, "general", "carol")
    assert PRIVATE not in in_public and PUBLIC in in_public
    # Bob and alice are not in it.
    assert PRIVATE not in await ask(discord_api, openai_api, "dm", "bob")
    assert PRIVATE not in await ask(discord_api, openai_api, "dm", "alice")


async def test_a_lost_role_or_thread_membership_applies_to_the_next_private_answer(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """Read now: a search for a person uses their current roles (their Member fetched per
    private answer) and, within CACHE_SECONDS, their current private threads."""
    await knowledge_server(discord_api, start_bot)
    discord_api.add_to_thread("private_thread", "alice")
    await ask(discord_api, openai_api, "general", "bob")  # the server is known to be on
    found = await ask(discord_api, openai_api, "dm", "alice")
    assert STAFF in found and PRIVATE in found
    discord_api.take_role("alice", "staff")  # no event: the bot learns it when it asks
    found = await ask(discord_api, openai_api, "dm", "alice")
    assert STAFF not in found and PRIVATE in found
    discord_api.remove_from_thread("private_thread", "alice")
    assert knowledge.readers_discord.CACHE_SECONDS <= 5  # "a few seconds at most"
    await asyncio.sleep(knowledge.readers_discord.CACHE_SECONDS)
    assert PRIVATE not in await ask(discord_api, openai_api, "dm", "alice")


async def test_a_hidden_link_reads_as_missing_and_links_in_answers_never_ping(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    bot = await knowledge_server(discord_api, start_bot)
    staff_hits = await bot.services.store.search(
        "budget", channel_ids=[discord_api.channel("random").id]
    )
    link = jump_link(staff_hits[0].message)
    missing = link.rsplit("/", 1)[0] + "/1234"
    openai_api.script(
        ToolCalls([Call("read_around", json.dumps({"message": link}))]),
        ToolCalls([Call("read_around", json.dumps({"message": missing}))]),
        Reply(f"See {link} @everyone <@{discord_api.user('alice').id}>"),
    )
    await discord_api.user_says("general", "bob", "what is the budget?", mention_bot=True)
    await discord_api.wait_for(
        lambda: any(link in m["content"] for m in discord_api.bot_messages("general")), timeout=20
    )
    hidden, absent = (
        [m["content"] for m in openai_api.completions[i]["messages"] if m["role"] == "tool"][-1]
        for i in (1, 2)
    )
    assert STAFF not in hidden and hidden == absent
    sent = [*discord_api.posts("general"), *discord_api.edits("general")]
    assert sent and all(r.json["allowed_mentions"]["parse"] == [] for r in sent)  # no pings


async def test_archived_threads_and_forum_posts_are_still_found_by_their_readers(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """discord.py forgets a thread once archived; its messages stay findable: the threads
    seen are remembered, and those archived before the bot started are listed."""
    old = "an old thread says the launch venue is the harbour"
    await discord_api.user_says("thread", "bob", old, deliver=False)
    await discord_api.archive_thread("thread")  # before the bot: not in its cache
    bot = await knowledge_server(discord_api, start_bot)
    await indexed(bot, 5, discord_api.channel("thread").id)  # read back from the archive
    [forum_post] = discord_api.threads_in("forum")
    await discord_api.archive_thread(forum_post)
    await discord_api.archive_thread("private_thread")
    found = await ask(discord_api, openai_api, "general", "bob")
    assert FORUM in found and old in found and PRIVATE not in found
    # Archived, the private thread is still carol's (she is in it), and still not bob's.
    assert PRIVATE in await ask(discord_api, openai_api, "dm", "carol")
    assert PRIVATE not in await ask(discord_api, openai_api, "dm", "bob")


class Clock:
    """A one-tool toolbox standing for MCP_CONFIG's servers."""

    def tools(self) -> list[Tool]:
        return [Tool("time__now", "time: now", "The time", {"type": "object"}, False)]

    async def call(self, name: str, arguments: dict) -> ToolResult:
        return ToolResult("12:00")


async def test_knowledge_tools_come_beside_mcp_s_and_follow_the_knowledge_setting(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    bot = await knowledge_server(discord_api, start_bot)
    bot.tool_use.toolbox = Clock()
    openai_api.script(ToolCalls([SEARCH, Call("time__now")]), Reply("Tuesday, at noon."))
    await discord_api.user_says("general", "bob", "when is the launch?", mention_bot=True)
    await discord_api.wait_for(lambda: len(openai_api.completions) == 2, timeout=20)
    first, second = openai_api.completions
    offered = [t["function"]["name"] for t in first["tools"]]
    assert offered == ["search_messages", "read_around", "read_channel", "time__now"]
    results = [m["content"] for m in second["messages"] if m["role"] == "tool"]
    assert PUBLIC in results[0] and results[1].endswith("12:00")
    # Tools off here: MCP's go, the knowledge tools stay; knowledge off: they go.
    await run_command(discord_api, "general", "owner", "settings tools", mode="off")
    openai_api.script(Reply("ok"))
    await discord_api.user_says("general", "bob", "and now?", mention_bot=True)
    await discord_api.wait_for(lambda: len(openai_api.completions) == 3, timeout=20)
    assert [t["function"]["name"] for t in openai_api.completions[2]["tools"]] == [
        "search_messages", "read_around", "read_channel"
    ]  # fmt: skip
    await run_command(
        discord_api, "general", "owner", "settings knowledge", mode="off", scope="server"
    )
    openai_api.script(Reply("ok"))
    await discord_api.user_says("general", "bob", "and now?", mention_bot=True)
    await discord_api.wait_for(lambda: len(openai_api.completions) == 4, timeout=20)
    assert "tools" not in openai_api.completions[3]


async def test_a_deleted_thread_is_no_longer_read_even_before_its_messages_are_forgotten(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """The readers forget a deleted thread (and a deleted channel's threads): what the
    index still holds of it (its deletion not written yet) is nobody's to read."""
    old = "the thread about the launch party, soon deleted"
    await discord_api.user_says("thread", "bob", old, deliver=False)
    await discord_api.archive_thread("thread")  # remembered by the readers, not discord.py
    bot = await knowledge_server(discord_api, start_bot)
    thread_id = discord_api.channel("thread").id
    await indexed(bot, 5, thread_id)
    assert old in await ask(discord_api, openai_api, "general", "bob")

    async def not_answering(channel_id: int) -> int:
        raise StoreError("forget a channel: the database is not answering")

    bot.services.store.forget_channel = not_answering  # the deletion stays unwritten
    await discord_api.delete_thread("thread")
    await asyncio.sleep(0.6)  # the keeper tried (and keeps trying) to forget it
    assert [m.text for m in await bot.services.store.recent(thread_id, limit=10)] == [old]
    assert old not in await ask(discord_api, openai_api, "general", "bob")
    assert old not in await ask(discord_api, openai_api, "dm", "bob")


async def test_a_dm_across_two_servers_names_the_server_and_asks_which_general(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    bot = await knowledge_server(discord_api, start_bot)
    await discord_api.add_guild("far")
    await run_command(
        discord_api, "far/general", "owner", "settings knowledge", mode="on", scope="server"
    )
    await discord_api.user_says("far/general", "carol", "far general: launch is cancelled")
    far = discord_api.channel("far/general").id
    await indexed(bot, 5, far)
    await ask(discord_api, openai_api, "general", "bob")  # bot learns knowledge is on there
    before = len(openai_api.completions)
    by_name = Call("search_messages", json.dumps({"query": "launch", "channel": "general"}))
    openai_api.script(ToolCalls([SEARCH, by_name]), Reply("ok"))
    await discord_api.user_dms("bob", "what about launch in general?")
    await discord_api.wait_for(lambda: len(openai_api.completions) >= before + 2, timeout=20)
    second = openai_api.completions[before + 1]
    everywhere, ambiguous = [m["content"] for m in second["messages"] if m["role"] == "tool"]
    assert "in #general (Guild far) at " in everywhere
    assert "in #general (Stand-in Guild) at " in everywhere
    assert "Several channels are named 'general'" in ambiguous and str(far) in ambiguous
    assert "#general (Guild far)" in ambiguous and "#general (Stand-in Guild)" in ambiguous


async def test_knowledge_status_names_only_the_channels_the_asker_reads(
    start_bot, discord_api: DiscordStandIn
) -> None:
    await knowledge_server(discord_api, start_bot)
    staff = f"<#{discord_api.random.id}>"

    async def status(who: str) -> str:
        sent = await discord_api.user_runs_command("general", who, "knowledge status")

        def shown() -> str | None:
            for entry in discord_api.interaction_responses(sent):
                if "Indexed channels" in (entry["content"] or ""):
                    assert entry["ephemeral"]
                    return entry["content"]
            return None

        return await discord_api.wait_for(shown, 5)

    for_bob = await status("bob")  # no staff role: the staff channel is not named
    assert f"<#{discord_api.general.id}>" in for_bob and staff not in for_bob
    assert staff in await status("alice")  # staff: she reads it
