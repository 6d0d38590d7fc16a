"""An answer is finished when the model finishes, and idle channels let their state go.

The pacer is made very slow here (one write a minute per channel), so any edit that
waited for it would time these tests out: they assert order, never durations.
"""

from __future__ import annotations

import logging

from discord_side.pacing import ChannelPacer
from tests.helpers import conversation, final_messages, until, words
from tests.standins.discord import DiscordStandIn
from tests.standins.openai_standin import OpenAIStandIn, Reply

SLOW_PACE = 60.0  # seconds per in-between edit: far longer than any test here runs


async def slow_pace(bot) -> None:
    """Give every channel a pacer that allows one write a minute."""
    conversations = bot.conversations
    conversations.make_pacer = lambda: ChannelPacer(writes=1, window=SLOW_PACE)


async def test_the_final_edit_lands_when_the_stream_ends(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    bot = await start_bot(STREAM_REPLIES="true")
    await slow_pace(bot)
    text = "The answer arrives in many small pieces over half a second or so."
    openai_api.script(Reply(text, chunks=words(text, per_chunk=1), chunk_delay=0.04))
    await discord_api.user_says("general", "alice", "tell me")
    assert await final_messages(discord_api, "general", 1) == [text]
    [request] = openai_api.chat_requests
    [post] = discord_api.posts("general")
    [edit] = discord_api.edits("general")  # the pace allowed no in-between edit
    last_chunk = request.sent_chunks[-1][0]
    assert post.at < last_chunk  # the first words were shown while the model wrote
    assert edit.json["content"] == text and edit.at >= last_chunk
    assert edit.at - post.at < SLOW_PACE / 2  # it did not wait for the pace


async def test_the_next_message_does_not_wait_for_the_last_edit(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    bot = await start_bot(STREAM_REPLIES="true")
    await slow_pace(bot)
    first = "A first answer, streamed in a few pieces."
    openai_api.script(
        Reply(first, chunks=words(first, per_chunk=1), chunk_delay=0.02), Reply("Second.")
    )
    # Discord holds the first answer's last edit back for a while (discord.py waits a
    # 429 out): the channel's next turn must not wait for it.
    discord_api.rate_limit("PATCH", "edit_message", retry_after=3.0, channel="general")
    await discord_api.user_says("general", "alice", "first question")
    await discord_api.wait_for(lambda: discord_api.edits("general"))  # the 429
    await discord_api.user_says("general", "alice", "second question")
    assert await final_messages(discord_api, "general", 2) == [first, "Second."]
    requests = openai_api.chat_requests
    first_id = discord_api.bot_messages("general")[0]["id"]
    [limited, landed] = [e for e in discord_api.edits("general") if e.path.endswith(first_id)]
    assert limited.status == 429 and landed.status == 200
    assert landed.json["content"] == first
    # The second question reached the model, with the first answer remembered whole,
    # before the first answer's last edit landed.
    assert requests[1].at < landed.at
    assert conversation(requests[1].json) == [
        ("user", "first question"),
        ("assistant", first),
        ("user", "second question"),
    ]


async def test_a_channel_that_gave_up_its_memory_reads_it_back(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, caplog
) -> None:
    caplog.set_level(logging.INFO)
    bot = await start_bot(MAX_CACHED_CHANNELS="1")
    await discord_api.user_says("general", "alice", "my name is Ann")
    await final_messages(discord_api, "general", 1)
    await discord_api.user_says("random", "bob", "hello")
    await final_messages(discord_api, "random", 1)
    conversations = bot.conversations
    general, random = discord_api.channel("general").id, discord_api.channel("random").id
    await until(lambda: not conversations.channels[random].turns.locked())
    # Only the channel used last keeps its state.
    assert set(conversations.channels) == {random}
    assert conversations.channels[random].memory is not None

    await discord_api.user_says("general", "alice", "what is my name?")
    await final_messages(discord_api, "general", 2)
    [first, _, third] = openai_api.completions
    answer = discord_api.bot_messages("general")[0]["content"]
    assert conversation(third) == [
        *conversation(first),
        ("assistant", answer),
        ("user", "what is my name?"),
    ]
    assert caplog.text.count(f"channel {general}: read back") == 2
    assert set(conversations.channels) == {general}
    assert conversations.channels[general].memory is not None


async def test_shutdown_waits_for_last_edits_under_way(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    bot = await start_bot(STREAM_REPLIES="true")
    await slow_pace(bot)
    text = "An answer whose last edit Discord holds back."
    openai_api.script(Reply(text, chunks=words(text, per_chunk=1), chunk_delay=0.02))
    discord_api.rate_limit("PATCH", "edit_message", retry_after=1.0, channel="general")
    await discord_api.user_says("general", "alice", "hi")
    await discord_api.wait_for(lambda: discord_api.edits("general"))  # the 429
    conversations = bot.conversations
    assert len(conversations.in_flight.final_edits) == 1
    await bot.close()
    assert [e.status for e in discord_api.edits("general")] == [429, 200]
    assert [m["content"] for m in discord_api.bot_messages("general")] == [text]
    assert conversations.in_flight.final_edits == set()
