"""Streamed answers end to end: early first text, paced edits, exact final messages."""

from __future__ import annotations

import itertools
import logging

from tests.helpers import MARKER, final_messages, replies, until, words
from tests.standins.discord import DiscordStandIn
from tests.standins.openai_standin import CutStream, OpenAIStandIn, Reply, default_chunks
from text.splitting import split_for_discord


async def test_first_words_appear_early_and_edits_are_paced(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, caplog
) -> None:
    caplog.set_level(logging.INFO)
    await start_bot(STREAM_REPLIES="true")
    text = "Streaming makes a slow answer feel fast, because people can start reading. " * 3
    openai_api.script(Reply(text, chunks=words(text), chunk_delay=0.12))
    await discord_api.user_says("general", "alice", "tell me about streaming")
    [request] = await openai_api.wait_for_requests(1)

    first = await discord_api.wait_for(lambda: discord_api.posts("general"))
    assert first[0].json["content"].endswith(MARKER)
    assert first[0].json["message_reference"]  # a reply, not pinging anyone
    assert first[0].json["allowed_mentions"] == {"parse": [], "replied_user": False}
    assert await final_messages(discord_api, "general", 1) == [text.strip()]
    assert request.finished_at is not None
    assert first[0].at < request.sent_chunks[-1][0]  # visible before the stream ended

    edits = discord_api.edits("general")
    assert len(edits) >= 2  # the message grew while the answer streamed
    assert all(e.json["allowed_mentions"] == {"parse": []} for e in edits)  # edits: no pings
    # The channel's writes keep its pace (about one a second), all but the final edit,
    # which goes as soon as the stream ended.
    writes = sorted([first[0].at] + [e.at for e in edits])
    assert edits[-1].json["content"] == text.strip() and edits[-1].at == writes[-1]
    assert edits[-1].at >= request.sent_chunks[-1][0]
    assert min(b - a for a, b in itertools.pairwise(writes[:-1])) >= 0.9
    await until(lambda: "answered" in caplog.text)
    assert "completion_tokens=None" not in caplog.text  # usage came with the stream


async def test_final_messages_equal_the_non_streamed_split(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot(STREAM_REPLIES="true")
    code = "\n".join(f"    total += {i}  # {'step ' * 8}" for i in range(70))
    text = (
        "Here is the program.\n\n```python\ndef total():\n    total = 0\n"
        + code
        + "\n    return total\n```\n\n"
        + "It adds numbers one by one. " * 60
    )
    pieces = [text[i : i + 150] for i in range(0, len(text), 150)]
    openai_api.script(Reply(text, chunks=pieces, chunk_delay=0.02))
    await discord_api.user_says("general", "alice", "write it")
    expected = split_for_discord(text)
    assert len(expected) >= 3
    assert await final_messages(discord_api, "general", len(expected)) == expected
    # While streaming, every message Discord accepted was valid, as the stand-in checks.
    assert all(p.status == 200 for p in discord_api.posts("general"))
    assert all(e.status == 200 for e in discord_api.edits("general"))


async def test_two_channels_stream_at_once(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot(STREAM_REPLIES="true")
    text = "one two three four five six seven eight nine ten " * 4
    slow = Reply(text, chunks=words(text, 2), chunk_delay=0.1)
    openai_api.script(slow, slow)
    await discord_api.user_says("general", "alice", "count")
    await discord_api.user_says("random", "bob", "count too")
    requests = await openai_api.wait_for_requests(2)
    await final_messages(discord_api, "general", 1)
    await final_messages(discord_api, "random", 1)
    stream_end = min(r.sent_chunks[-1][0] for r in requests)
    for channel in ("general", "random"):
        # Each channel's message was posted and edited while both streams were running.
        assert discord_api.posts(channel)[0].at < stream_end
        assert discord_api.edits(channel)[0].at < stream_end


async def test_a_broken_stream_keeps_what_arrived_and_the_channel_works(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    first = await start_bot(STREAM_REPLIES="true")
    text = "The first part of the answer arrived but then the connection dropped."
    openai_api.script(CutStream(after_chunks=3, text=text))
    await discord_api.user_says("general", "alice", "explain")
    [shown] = await final_messages(discord_api, "general", 1)
    arrived = "".join(default_chunks(text)[:3]).strip()
    assert shown.startswith(arrived)
    assert "cut off" in shown.splitlines()[-1]

    await discord_api.user_says("general", "alice", "please continue")
    await final_messages(discord_api, "general", 2)
    # The interrupted answer is remembered as what the channel saw, note included...
    second = openai_api.completions[-1]
    assert [(m["role"], m["content"]) for m in second["messages"][1:]] == [
        ("user", "explain"),
        ("assistant", shown),
        ("user", "please continue"),
    ]
    # ...and read back the same after a restart.
    await first.close()
    await start_bot(STREAM_REPLIES="true")
    await discord_api.user_says("general", "alice", "and now?")
    await final_messages(discord_api, "general", 3)
    third = openai_api.completions[-1]
    assert [(m["role"], m["content"]) for m in third["messages"][1:3]] == [
        ("user", "explain"),
        ("assistant", shown),
    ]


async def test_streaming_off_posts_only_whole_messages(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot(STREAM_REPLIES="false")
    text = "Complete answer. " * 20
    openai_api.script(Reply(text, chunks=words(text), chunk_delay=0.01))
    await discord_api.user_says("general", "alice", "hi")
    await replies(discord_api, "general")
    assert not openai_api.completions[0].get("stream")
    assert discord_api.edits("general") == []
    assert [m["content"] for m in discord_api.bot_messages("general")] == [text.strip()]
