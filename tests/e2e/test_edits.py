"""Deleted and edited messages end to end, through the raw gateway events.

A deleted message is never sent to the model again; an edited one is sent as it now
reads. Messages the bot never saw live (not in discord.py's cache) are covered too.
"""

from __future__ import annotations

import logging

from tests.helpers import conversation, final_messages, run_command
from tests.standins.discord import DiscordStandIn, FakeAttachment
from tests.standins.openai_standin import OpenAIStandIn, Reply

PASSWORD = "my password is hunter2"


async def test_a_deleted_message_is_forgotten(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    first = await start_bot()
    secret = await discord_api.user_says("general", "alice", PASSWORD)
    await final_messages(discord_api, "general", 1)
    await discord_api.user_deletes(secret)
    await discord_api.user_says("general", "alice", "what did I say?")
    await final_messages(discord_api, "general", 2)
    # The answer to it goes too: it may well repeat what was deleted.
    assert conversation(openai_api.completions[-1]) == [("user", "what did I say?")]
    # Read back after a restart, the answer to the deleted message stays out as well.
    await first.close()
    await start_bot()
    await discord_api.user_says("general", "alice", "and now?")
    await final_messages(discord_api, "general", 3)
    assert conversation(openai_api.completions[-1]) == [
        ("user", "what did I say?"),
        ("assistant", "echo: what did I say?"),
        ("user", "and now?"),
    ]


async def test_a_message_deleted_while_the_bot_was_away_is_forgotten(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot(REPLY_TO="mention")
    await discord_api.user_says("general", "alice", "hello", mention_bot=True)
    await final_messages(discord_api, "general", 1)
    # Posted and deleted while the bot was not listening: not in discord.py's cache.
    secret = await discord_api.user_says("general", "bob", PASSWORD, deliver=False)
    await discord_api.user_says("general", "alice", "noted?", mention_bot=True)
    await final_messages(discord_api, "general", 2)
    await discord_api.user_deletes(secret)  # only on_raw_message_delete can see this
    await discord_api.user_says("general", "alice", "and now?", mention_bot=True)
    await final_messages(discord_api, "general", 3)
    sent = [c for _, c in conversation(openai_api.completions[-1])]
    assert not any("hunter2" in c for c in sent)


async def test_an_edit_replaces_the_remembered_text(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, o200k, caplog
) -> None:
    caplog.set_level(logging.INFO)
    bot = await start_bot(REPLY_TO="mention")
    # Posted before the bot started: read back, never in discord.py's cache, so the
    # raw edit event is all the bot gets about its edit.
    away = await discord_api.user_says("general", "bob", "I like rde", deliver=False)
    typo = await discord_api.user_says("general", "alice", "my favourite colour is tael")
    await discord_api.user_says("general", "alice", "and yours?", mention_bot=True)
    await final_messages(discord_api, "general", 1)
    await discord_api.user_edits(typo, "my favourite colour is teal")
    await discord_api.user_edits(away, "I like red " + "and more red " * 10)
    await discord_api.user_says("general", "alice", "so?", mention_bot=True)
    await final_messages(discord_api, "general", 2)
    edited = ("I like red " + "and more red " * 10).strip()
    contents = [c for _, c in conversation(openai_api.completions[-1])]
    assert contents[:2] == [f"Zoe: {edited}", "Alice: my favourite colour is teal"]
    assert "a remembered message was edited" in caplog.text
    # Counted again, as a new turn would be.
    memory = bot.conversations.channels[discord_api.general.id].memory
    [turn] = [t for t in memory if int(away["id"]) in t.message_ids]
    assert turn.tokens == o200k.count_message("user", edited, "Zoe")


async def test_the_bots_deleted_answer_is_forgotten_whole(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot()
    long_answer = "A long answer. " + "More words here. " * 300  # three messages
    openai_api.script(Reply(long_answer))
    await discord_api.user_says("general", "alice", "tell me everything")
    parts = await discord_api.wait_for(
        lambda: (m := discord_api.bot_messages("general")) and len(m) == 3 and m
    )
    await discord_api.bulk_delete("general", parts[1:])  # a moderator removes part of it
    await discord_api.user_says("general", "alice", "ok")
    await discord_api.wait_for(lambda: len(openai_api.completions) == 2)
    assert conversation(openai_api.completions[-1]) == [
        ("user", "tell me everything"),
        ("user", "ok"),
    ]


async def test_edits_and_deletes_in_a_channel_not_yet_loaded_need_nothing(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot()
    first = await discord_api.user_says("random", "alice", "old typo", deliver=False)
    gone = await discord_api.user_says("random", "bob", PASSWORD, deliver=False)
    await discord_api.wait_until_ready()
    await discord_api.user_edits(first, "old text, fixed")
    await discord_api.user_deletes(gone)
    await discord_api.user_says("random", "alice", "hi")
    await final_messages(discord_api, "random", 1)
    assert conversation(openai_api.completions[-1]) == [
        ("user", "old text, fixed"),  # read back as the channel shows it now
        ("user", "hi"),
    ]


async def test_a_question_deleted_while_it_is_answered_takes_its_answer_along(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot(STREAM_REPLIES="true")
    text = " ".join(f"z{n}" for n in range(20))
    chunks = [f"z{n} " for n in range(19)] + ["z19"]
    openai_api.script(Reply(text, chunks=chunks, chunk_delay=0.1))
    question = await discord_api.user_says("general", "bob", PASSWORD)
    await discord_api.wait_for(lambda: discord_api.bot_messages("general"))
    await discord_api.user_deletes(question)  # while the answer is still streaming
    await discord_api.wait_for(lambda: openai_api.chat_requests[0].finished_at is not None)
    await final_messages(discord_api, "general", 1)
    await discord_api.user_says("general", "bob", "anything left?")
    await discord_api.wait_for(lambda: len(openai_api.completions) == 2)
    # Neither the deleted question nor the answer to it (which may repeat it) is sent.
    assert conversation(openai_api.completions[-1]) == [("user", "anything left?")]


async def test_an_edit_keeps_the_quote_forward_and_file_the_message_carries(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    # Live memory must agree with read-back: an edit changes only the person's own text.
    first = await start_bot(REPLY_TO="mention")
    old = await discord_api.user_says("general", "bob", "deploy at 5pm", deliver=False)
    await run_command(discord_api, "general", "owner", "reset")
    log = FakeAttachment("build.log", b"error: linker failed\n")
    asked = await discord_api.user_says(
        "general", "alice", "is this still on?", reply_to=old, attachments=[log]
    )
    await discord_api.user_says("general", "alice", "well?", mention_bot=True)
    await final_messages(discord_api, "general", 2)
    before = conversation(openai_api.completions[-1])[0][1]
    assert "> deploy at 5pm" in before and "linker failed" in before
    await discord_api.user_edits(asked, "is this still on today?")
    await discord_api.user_says("general", "alice", "so?", mention_bot=True)
    await final_messages(discord_api, "general", 3)
    live = conversation(openai_api.completions[-1])[0][1]
    assert live == before.replace("is this still on?", "is this still on today?")
    # Read back after a restart, the same turn.
    await first.close()
    await start_bot(REPLY_TO="mention")
    await discord_api.user_says("general", "alice", "and now?", mention_bot=True)
    await final_messages(discord_api, "general", 4)
    assert conversation(openai_api.completions[-1])[0][1] == live
