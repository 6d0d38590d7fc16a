"""Keeping the knowledge index, end to end through the stand-ins: /settings knowledge,
the history read back (with progress, within the rate limits, resumed after a restart),
live messages, edits and deletions, the bot's own answers, forget-me, DMs never."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta

import pytest

import knowledge.commands
from bot import ChatBot
from tests.helpers import run_command
from tests.standins.discord import DiscordStandIn
from tests.standins.openai_standin import OpenAIStandIn, Reply

FLUSHED = 5.0  # seconds a live change may take to reach the index (it flushes every 0.5 s)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = FLUSHED) -> None:
    """Wait until `check()` is true (asked every 0.05 s); fail after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "not in time"
        await asyncio.sleep(0.05)


def every_channel(discord_api: DiscordStandIn) -> list[int]:
    """Every channel, thread and DM there is or was (deleted ones stay listed, so that
    their messages would be seen if they were still indexed)."""
    known: set[int] = discord_api.__dict__.setdefault("known_channel_ids", set())
    known |= {c.id for c in discord_api.channels.values()}
    known |= {discord_api.dm_channel(u).id for u in ("alice", "bob")}
    return sorted(known)


async def indexed(bot: ChatBot, discord_api: DiscordStandIn, words: str = "") -> dict[int, str]:
    """What the index holds (matching `words`, if given), anywhere: {message id: text}.
    Every message is listed channel by channel (a search ranks its newest matches only)."""
    store = bot.services.store
    if words:
        hits = await store.search(words, channel_ids=every_channel(discord_api), limit=400)
        return {hit.message.message_id: hit.message.text for hit in hits}
    held: dict[int, str] = {}
    for channel_id in every_channel(discord_api):
        for message in await store.recent(channel_id, limit=100_000):
            held[message.message_id] = message.text
    return held


async def texts(bot: ChatBot, discord_api: DiscordStandIn, words: str = "") -> set[str]:
    return set((await indexed(bot, discord_api, words)).values())


async def turn(
    discord_api: DiscordStandIn, mode: str, channel: str = "general", scope: str = "server"
) -> dict:
    """The owner turns knowledge `mode` for `scope`; the command's answer."""
    return await run_command(
        discord_api, channel, "owner", "settings knowledge", mode=mode, scope=scope
    )


async def backfilled(discord_api: DiscordStandIn, answer: dict, timeout: float = 20) -> str:
    """The command's reply once it says the history was read."""

    def finished() -> str | None:
        for entry in discord_api.interaction_responses(answer["interaction_id"]):
            if "Read the history" in (entry["content"] or ""):
                return entry["content"]
        return None

    return await discord_api.wait_for(finished, timeout)


def ids(messages: Iterable[dict]) -> set[int]:
    return {int(m["id"]) for m in messages}


async def test_turning_knowledge_on_reads_the_history_back_and_shows_progress(
    start_bot, discord_api: DiscordStandIn
) -> None:
    old = discord_api.past_messages(
        "general", [("alice", f"deploy note {n}") for n in range(230)], days_ago=10
    )
    too_old = discord_api.past_messages("general", [("bob", "ancient roadmap")], days_ago=200)
    discord_api.past_messages("general", [("other_bot", "bot alert firing")], days_ago=5)
    in_thread = discord_api.past_messages("thread", [("bob", "thread migration plan")], days_ago=3)
    discord_api.past_messages("random", [("carol", "random lunch vote")], days_ago=2)
    await discord_api.archive_thread("thread")  # read through the archived-threads list
    bot = await start_bot()  # answers every message, the forum post too
    post, starter = await discord_api.user_posts_in_forum("forum", "alice", "Printer", "jams")
    (reply,) = await discord_api.wait_for(lambda: discord_api.bot_messages(post))  # answered
    await bot.keeper.flush()
    assert await indexed(bot, discord_api) == {}  # knowledge is off: nothing kept

    answer = await turn(discord_api, "on")
    assert not answer["ephemeral"] and "turned knowledge on for this server" in answer["content"]
    done = await backfilled(discord_api, answer)
    found = await indexed(bot, discord_api)
    assert ids(old) | ids(in_thread) | {int(starter["id"])} <= set(found)
    assert found[int(starter["id"])] == "Printer\njams"  # a forum post: its title first
    assert found[int(reply["id"])] == reply["content"]  # the bot's own answer is kept
    assert len(found) == 234
    # general, random, announcements; the archived thread, the private thread the bot
    # is in, the forum post.
    assert "Read the history: 6 channels, 234 messages." in done
    assert ids(too_old).isdisjoint(found)  # older than KNOWLEDGE_BACKFILL_DAYS
    assert await texts(bot, discord_api, "alert") == set()  # another bot's message
    reads = discord_api.requests_to("GET", rf"/channels/{discord_api.general.id}/messages")
    assert [r.query["limit"] for r in reads] == ["100"] * 3
    assert {r.status for r in reads} == {200}
    assert await bot.services.store.backfills() == []  # all finished


async def test_live_messages_edits_and_deletions_keep_the_index_true(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    bot = await start_bot(REPLY_TO="mention")  # answers only when asked
    await turn(discord_api, "on", scope="channel")  # general and its threads only
    said = await discord_api.user_says("general", "alice", "the release is on friday")
    await discord_api.user_says("random", "alice", "random channel words")
    await discord_api.user_says("general", "other_bot", "automated friday report")
    await discord_api.user_dms("bob", "a private friday secret")
    await eventually(lambda: has(bot, discord_api, "friday", {"the release is on friday"}))

    await discord_api.user_edits(said, "the release moved to monday")
    await eventually(lambda: has(bot, discord_api, "monday", {"the release moved to monday"}))
    assert await texts(bot, discord_api, "friday") == set()  # not by its old words

    await discord_api.user_deletes(said)
    one = await discord_api.user_says("thread", "bob", "bulk one")
    two = await discord_api.user_says("thread", "bob", "bulk two")
    await discord_api.user_says("thread", "bob", "kept three")
    await discord_api.bulk_delete("thread", [one, two])
    await eventually(lambda: has(bot, discord_api, "", {"kept three"}))

    # The bot's own answer is kept once final, as the channel shows it.
    openai_api.script(Reply("Bananas are berries, botanically."))
    await discord_api.user_says("general", "carol", "are bananas berries?", mention_bot=True)
    await eventually(
        lambda: has(bot, discord_api, "botanically", {"Bananas are berries, botanically."})
    )
    (answer,) = await hits(bot, discord_api, "botanically")
    assert answer.author_id == discord_api.bot_user_id
    (shown,) = discord_api.bot_messages("general")[-1:]
    assert answer.message_id == int(shown["id"])

    await discord_api.delete_thread("thread")
    await eventually(lambda: has(bot, discord_api, "kept", set()))


async def test_a_deleted_channel_is_forgotten_with_its_threads(
    start_bot, discord_api: DiscordStandIn
) -> None:
    bot = await start_bot(REPLY_TO="mention")  # answers only when asked
    await turn(discord_api, "on")
    await discord_api.user_says("random", "alice", "random plans")
    start = await discord_api.user_says("random", "bob", "start here")
    thread = await discord_api.user_starts_thread("bob", start, "side")
    await discord_api.user_says(thread, "bob", "thread plans")
    await discord_api.user_says("general", "bob", "general plans")
    every = {"random plans", "thread plans", "general plans"}
    await eventually(lambda: has(bot, discord_api, "plans", every))
    await discord_api.delete_channel("random")
    await eventually(lambda: has(bot, discord_api, "plans", {"general plans"}))


@pytest.mark.parametrize("kind", ["thread", "channel"])
async def test_a_channel_or_thread_deleted_while_its_history_is_read_stays_forgotten(
    start_bot, discord_api: DiscordStandIn, kind: str
) -> None:
    start = await discord_api.user_says("random", "bob", "start", deliver=False)
    thread = await discord_api.user_starts_thread("bob", start, "doomed")
    doomed = thread if kind == "thread" else discord_api.channel("random")
    lines = [("alice", f"doomed secret {n}") for n in range(150)]  # two pages
    discord_api.past_messages(doomed, lines, days_ago=1)
    bot = await start_bot(REPLY_TO="mention")  # answers only when asked
    doomed_id = discord_api.channel(doomed).id
    every_channel(discord_api)  # searched after the deletion too
    write, pages = bot.keeper.write, []

    async def deleted_while_in_hand(messages):  # the page read, its channel then deleted
        if any(m.channel_id == doomed_id for m in messages) and not pages:
            pages.append(len(messages))
            if kind == "thread":
                await discord_api.delete_thread(thread)
            else:
                await discord_api.delete_channel("random")
            await asyncio.sleep(0.3)  # the deletion's event arrives, and is written
            await bot.keeper.flush()
        return await write(messages)

    bot.keeper.write = deleted_while_in_hand
    await backfilled(discord_api, await turn(discord_api, "on"))
    await bot.keeper.flush()
    assert pages == [100]
    assert await texts(bot, discord_api, "doomed") == set()
    rows = await bot.services.store.backfills(unfinished_only=False)
    assert doomed_id not in {row.channel_id for row in rows}  # nothing left to resume
    reads = discord_api.requests_to("GET", rf"/channels/{doomed_id}/messages")
    assert len(reads) == 1  # its job ended: no second page asked for
    await discord_api.user_says("general", "alice", "still indexed")
    await eventually(lambda: has(bot, discord_api, "still", {"still indexed"}))


async def test_turning_it_off_stops_indexing_and_forgets_what_was_indexed(
    start_bot, discord_api: DiscordStandIn
) -> None:
    bot = await start_bot(REPLY_TO="mention")  # answers only when asked
    await turn(discord_api, "on")
    await discord_api.user_says("general", "alice", "remember the milk")
    await discord_api.user_says("random", "alice", "remember the eggs")
    both = {"remember the milk", "remember the eggs"}
    await eventually(lambda: has(bot, discord_api, "remember", both))
    off = await turn(discord_api, "off", channel="random", scope="channel")
    assert "forgot 1 indexed messages" in off["content"]
    assert await texts(bot, discord_api, "remember") == {"remember the milk"}
    await discord_api.user_says("random", "alice", "remember the bread")
    off = await turn(discord_api, "off")
    assert "forgot 1 indexed messages" in off["content"]
    await discord_api.user_says("general", "alice", "remember the cheese")
    await discord_api.user_says("general", "alice", "a last word", mention_bot=True)
    await discord_api.wait_for(lambda: discord_api.bot_messages("general")[1:])  # handled
    await bot.keeper.flush()
    assert await texts(bot, discord_api, "remember") == set()
    refused = await run_command(
        discord_api, "general", "alice", "settings knowledge", mode="on", scope="server"
    )
    assert "Manage Server" in refused["content"]


async def test_turned_off_and_on_again_it_reads_every_channel_and_thread_again(
    start_bot, discord_api: DiscordStandIn
) -> None:
    discord_api.past_messages("general", [("alice", "ancient roadmap note")], days_ago=3)
    start = await discord_api.user_says("general", "bob", "thread start", deliver=False)
    thread = await discord_api.user_starts_thread("bob", start, "side")  # empty for now
    bot = await start_bot(REPLY_TO="mention")  # answers only when asked
    first = await backfilled(discord_api, await turn(discord_api, "on", scope="channel"))
    assert await texts(bot, discord_api, "roadmap") == {"ancient roadmap note"}
    await turn(discord_api, "off", scope="channel")
    assert await texts(bot, discord_api, "roadmap") == set()
    # Written while knowledge is off (so not indexed live), in the thread and the channel.
    await discord_api.user_says(thread, "carol", "thread roadmap while off")
    await discord_api.user_says("general", "carol", "general roadmap while off")
    await bot.keeper.flush()
    again = await backfilled(discord_api, await turn(discord_api, "on", scope="channel"))
    channels = re.compile(r"Read the history: (\d+) channel")
    assert channels.search(again)[1] == channels.search(first)[1] == "4"  # and its threads
    assert await texts(bot, discord_api, "roadmap") == {
        "ancient roadmap note", "thread roadmap while off", "general roadmap while off",
    }  # fmt: skip


async def test_in_a_forum_post_it_is_turned_on_for_the_forum_and_its_posts(
    start_bot, discord_api: DiscordStandIn
) -> None:
    bot = await start_bot(REPLY_TO="mention")
    post, _ = await discord_api.user_posts_in_forum("forum", "alice", "Printer", "jams")
    other, _ = await discord_api.user_posts_in_forum("forum", "bob", "Scanner", "stripes")
    await discord_api.user_says("random", "carol", "jams in random")
    answer = await run_command(discord_api, post, "owner", "settings knowledge", mode="on")
    forum = discord_api.forum.id
    assert f"turned knowledge on for <#{forum}> and its threads" in answer["content"]
    assert "2 channels" in await backfilled(discord_api, answer)  # both posts
    assert set((await indexed(bot, discord_api)).values()) == {
        "Printer\njams", "Scanner\nstripes",
    }  # fmt: skip
    await discord_api.user_says(other, "carol", "try new drivers")
    await eventually(lambda: has(bot, discord_api, "drivers", {"try new drivers"}))


async def test_forget_me_removes_exactly_that_persons_messages_from_a_dm_too(
    start_bot, discord_api: DiscordStandIn
) -> None:
    bot = await start_bot(REPLY_TO="mention")  # answers only when asked
    await turn(discord_api, "on")
    for n in range(3):
        await discord_api.user_says("general", "alice", f"alice idea {n}")
    await discord_api.user_says("random", "bob", "bob idea")
    await eventually(lambda: count(bot, discord_api, "idea", 4))

    dm = discord_api.dm_channel("alice")
    asked = await run_command(discord_api, dm, "alice", "knowledge forget-me")
    assert asked["ephemeral"] and "Remove every message you wrote" in asked["content"]
    cancelled = await discord_api.press(asked["message_id"], "Cancel", "alice")
    answer = await discord_api.wait_for_interaction_response(cancelled)
    assert answer["content"] == "Nothing was removed."
    assert len(await texts(bot, discord_api, "idea")) == 4

    asked = await run_command(discord_api, "general", "alice", "knowledge forget-me")
    pressed = await discord_api.press(asked["message_id"], "Remove my messages", "alice")

    def removed() -> str | None:
        done = [r["content"] for r in discord_api.interaction_responses(pressed)]
        return next((c for c in done if c and c.startswith("Removed")), None)

    assert await discord_api.wait_for(removed, 5) == (
        "Removed 3 of your messages from the search index."
    )
    assert await texts(bot, discord_api, "idea") == {"bob idea"}
    # An edit of a message she wrote before asking does not bring it back.
    first = next(m for m in discord_api.messages("general") if m["content"] == "alice idea 0")
    await discord_api.user_edits(first, "alice idea 0, edited")
    await discord_api.user_says("general", "bob", "a later idea")
    await eventually(lambda: has(bot, discord_api, "idea", {"bob idea", "a later idea"}))
    sent = await discord_api.user_runs_command("general", "owner", "knowledge status")

    def status() -> dict | None:
        shown = discord_api.interaction_responses(sent)
        return next((r for r in shown if "Indexed channels" in (r["content"] or "")), None)

    shown = await discord_api.wait_for(status, 5)
    assert shown["ephemeral"] and f"<#{discord_api.general.id}>" in shown["content"]
    assert f"<#{discord_api.random.id}>" in shown["content"]  # on for the whole server


async def test_forget_me_during_a_backfill_brings_none_of_theirs_back(
    start_bot, discord_api: DiscordStandIn
) -> None:
    lines = [(("alice", "bob")[n % 2], f"old note {n}") for n in range(600)]
    discord_api.past_messages("general", lines, days_ago=5)
    discord_api.limit_history_reads(1, 0.3)  # six pages: about two seconds
    bot = await start_bot(REPLY_TO="mention")
    turned = await turn(discord_api, "on", scope="channel")
    await eventually(lambda: read_at_least(bot, 100))
    asked = await run_command(discord_api, "general", "alice", "knowledge forget-me")
    await discord_api.press(asked["message_id"], "Remove my messages", "alice")
    await backfilled(discord_api, turned)
    await discord_api.user_says("general", "alice", "a new note")
    await eventually(lambda: count(bot, discord_api, "note", 301))
    held = await bot.services.store.recent(discord_api.general.id, limit=1000)
    alice = discord_api.users["alice"].id
    assert [m.text for m in held if m.author_id == alice] == ["a new note"]  # hers from now on


async def test_forget_me_during_a_backfill_holds_across_a_restart_mid_read(
    start_bot, discord_api: DiscordStandIn
) -> None:
    lines = [(("alice", "bob")[n % 2], f"history line {n}") for n in range(1000)]
    past = discord_api.past_messages("general", lines, days_ago=20, spacing=timedelta(seconds=10))
    discord_api.limit_history_reads(1, 0.4)  # one page per 0.4 s: ten pages take 4 s
    bot = await start_bot(REPLY_TO="mention")
    await turn(discord_api, "on", scope="channel")
    await eventually(lambda: read_at_least(bot, 200), 10)  # general, newest first
    asked = await run_command(discord_api, "general", "alice", "knowledge forget-me")
    pressed = await discord_api.press(asked["message_id"], "Remove my messages", "alice")

    def removed() -> str | None:
        done = [r["content"] for r in discord_api.interaction_responses(pressed)]
        return next((c for c in done if c and c.startswith("Removed")), None)

    await discord_api.wait_for(removed, 5)
    await bot.close()  # mid-read: the rest of the history is read after the restart

    bot = await start_bot(REPLY_TO="mention")
    general = discord_api.general.id
    (row,) = [r for r in await bot.services.store.backfills() if r.channel_id == general]
    assert row.messages < 1000  # the restart came before the read was done
    await discord_api.user_edits(past[0], "history line 0, edited")  # hers, from before
    await eventually(lambda: finished(bot), 15)
    await discord_api.user_says("general", "alice", "a new line")

    async def held_all() -> bool:  # bob's 500 and her new one
        return len(await indexed(bot, discord_api)) >= 501

    await eventually(held_all)
    held = await bot.services.store.recent(general, limit=2000)
    alice = discord_api.users["alice"].id
    assert [m.text for m in held if m.author_id == alice] == ["a new line"]  # hers from now on
    assert len(held) == 501


async def test_an_unanswered_forget_me_question_closes_and_removes_nothing(
    start_bot, discord_api: DiscordStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(knowledge.commands, "CONFIRM_SECONDS", 0.3)
    bot = await start_bot(REPLY_TO="mention")
    await turn(discord_api, "on")
    await discord_api.user_says("general", "alice", "an idea to keep")
    await eventually(lambda: count(bot, discord_api, "idea", 1))
    asked = await run_command(discord_api, "general", "alice", "knowledge forget-me")

    def closed() -> dict | None:
        shown = discord_api.interaction_responses(asked["interaction_id"])
        return next((r for r in shown if r["kind"] == "edit"), None)

    edit = await discord_api.wait_for(closed, 5)
    assert edit["content"] == "Nothing was removed (no answer within a minute)."
    assert edit["payload"]["components"] == []  # the buttons are gone
    assert await texts(bot, discord_api, "idea") == {"an idea to keep"}


async def test_a_restart_mid_backfill_resumes_where_it_stopped(
    start_bot, discord_api: DiscordStandIn
) -> None:
    lines = [("alice", f"history line {n}") for n in range(1000)]
    discord_api.past_messages("general", lines, days_ago=20, spacing=timedelta(seconds=10))
    discord_api.limit_history_reads(1, 0.4)  # one page per 0.4 s: ten pages take 4 s
    bot = await start_bot(REPLY_TO="mention")  # answers only when asked
    answer = await run_command(
        discord_api, "general", "owner", "settings knowledge", mode="on", scope="channel"
    )
    await eventually(lambda: read_at_least(bot, 300), 10)  # general is read first
    # The reply shows the progress as it goes: general and its two threads to read.
    edits = [r["content"] for r in discord_api.interaction_responses(answer["interaction_id"])]
    assert any(re.search(r"Reading history: 0 of 3 channels, [1-9]\d* messages", e) for e in edits)
    await bot.close()
    path = rf"/channels/{discord_api.general.id}/messages"
    first_run = len(discord_api.requests_to("GET", path))

    bot = await start_bot(REPLY_TO="mention")  # answers only when asked
    general = discord_api.general.id
    (row,) = [r for r in await bot.services.store.backfills() if r.channel_id == general]
    assert 300 <= row.messages < 1000 and row.before_id is not None
    await eventually(lambda: finished(bot), 15)
    assert len(await indexed(bot, discord_api)) == 1000
    saved = {r.channel_id: r for r in await bot.services.store.backfills(unfinished_only=False)}
    saved = saved[general]
    assert saved.finished and saved.messages == 1000  # each message counted once
    reads = discord_api.requests_to("GET", path)
    resumed = [r for r in reads[first_run:] if r.status == 200]
    assert resumed[0].query["before"] == str(row.before_id)  # not from the newest again
    pages = [r.query.get("before") for r in reads if r.status == 200]
    assert len(pages) == 11 == len(set(pages))  # ten full pages, an empty one: each once
    assert getattr(discord_api, "history_429s", 0) == 0  # paced by the headers


async def test_history_is_read_back_within_the_retention_and_forwards_by_their_text(
    start_bot, discord_api: DiscordStandIn
) -> None:
    kept = discord_api.past_messages("general", [("alice", "recent budget")], days_ago=10)
    discord_api.past_messages("general", [("alice", "stale budget")], days_ago=40)
    bot = await start_bot(REPLY_TO="mention", KNOWLEDGE_RETENTION_DAYS="30")
    await backfilled(discord_api, await turn(discord_api, "on"))
    assert set(await indexed(bot, discord_api)) == ids(kept)  # 30 days, not 90
    source = await discord_api.user_says("random", "carol", "the vendor quote", deliver=False)
    await discord_api.user_forwards("general", "bob", source)
    await eventually(lambda: has(bot, discord_api, "vendor", {"the vendor quote"}))
    (forward,) = await hits(bot, discord_api, "vendor")
    assert forward.author_id == discord_api.users["bob"].id  # who forwarded it


async def test_dms_are_never_indexed_and_knowledge_cannot_be_set_there(
    start_bot, discord_api: DiscordStandIn
) -> None:
    bot = await start_bot(REPLY_TO="mention")  # answers only when asked
    await turn(discord_api, "on")
    await discord_api.user_dms("alice", "my dm secret")
    dm = discord_api.dm_channel("alice")
    refused = await run_command(discord_api, dm, "alice", "settings knowledge", mode="on")
    assert refused["ephemeral"] and "DMs are never indexed" in refused["content"]
    await discord_api.user_says("general", "alice", "a server message")
    await eventually(lambda: has(bot, discord_api, "", {"a server message"}))


async def has(bot: ChatBot, discord_api: DiscordStandIn, words: str, wanted: set[str]) -> bool:
    return await texts(bot, discord_api, words) == wanted


async def count(bot: ChatBot, discord_api: DiscordStandIn, words: str, wanted: int) -> bool:
    return len(await texts(bot, discord_api, words)) == wanted


async def hits(bot: ChatBot, discord_api: DiscordStandIn, words: str) -> list:
    store = bot.services.store
    return [h.message for h in await store.search(words, channel_ids=every_channel(discord_api))]


async def read_at_least(bot: ChatBot, messages: int) -> bool:
    return any(row.messages >= messages for row in await bot.services.store.backfills())


async def finished(bot: ChatBot) -> bool:
    return await bot.services.store.backfills() == []


async def test_a_member_without_manage_rights_cannot_turn_knowledge_on(
    start_bot, discord_api: DiscordStandIn
) -> None:
    discord_api.past_messages("general", [("bob", "old secret plan")], days_ago=5)
    bot = await start_bot(REPLY_TO="mention")  # answers only when asked
    for scope, needed in (("channel", "Manage Channels"), ("server", "Manage Server")):
        refused = await run_command(
            discord_api, "general", "alice", "settings knowledge", mode="on", scope=scope
        )
        assert refused["ephemeral"] and needed in refused["content"]
    assert bot.backfiller.jobs_in(discord_api.guild_id) == []  # no history read started
    assert await bot.services.store.backfills() == []
    reads = discord_api.requests_to("GET", rf"/channels/{discord_api.general.id}/messages")
    assert reads == []
    await discord_api.user_says("general", "alice", "a live word")
    await discord_api.user_says("general", "alice", "then a question", mention_bot=True)
    await discord_api.wait_for(lambda: discord_api.bot_messages("general"))  # handled
    await bot.keeper.flush()
    assert await indexed(bot, discord_api) == {}  # still off: nothing kept


async def test_only_the_asker_can_confirm_their_forget_me(
    start_bot, discord_api: DiscordStandIn
) -> None:
    bot = await start_bot(REPLY_TO="mention")  # answers only when asked
    await turn(discord_api, "on")
    await discord_api.user_says("general", "alice", "alice idea")
    await discord_api.user_says("general", "bob", "bob idea")
    await eventually(lambda: count(bot, discord_api, "idea", 2))
    asked = await run_command(discord_api, "general", "alice", "knowledge forget-me")
    pressed = await discord_api.press(asked["message_id"], "Remove my messages", "bob")
    refused = await discord_api.wait_for_interaction_response(pressed)
    assert refused["ephemeral"] and "for the person who asked" in refused["content"]
    await bot.keeper.flush()
    assert await texts(bot, discord_api, "idea") == {"alice idea", "bob idea"}
    cancelled = await discord_api.press(asked["message_id"], "Cancel", "alice")  # still hers
    answer = await discord_api.wait_for_interaction_response(cancelled)
    assert answer["content"] == "Nothing was removed."
