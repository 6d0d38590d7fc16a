"""Conversations in threads end to end: thread mode, forum posts, the thread lifecycle."""

from __future__ import annotations

import asyncio
import logging

from discord_side.threads import UNNAMED_THREAD
from tests.helpers import (
    answered,
    conversation,
    final_messages,
    logged,
    replies,
    run_command,
    until,
)
from tests.standins.discord import DiscordStandIn, FakeAttachment, FakeChannel
from tests.standins.openai_standin import OpenAIStandIn, Reply


async def thread_from(discord_api: DiscordStandIn, message: dict) -> FakeChannel:
    """The thread the bot starts from `message` (it has the message's id), once it exists."""
    return await discord_api.wait_for(
        lambda: next(
            (t for t in discord_api.threads_in("general") if t.id == int(message["id"])), None
        )
    )


async def test_two_people_asking_at_once_get_a_thread_each_with_its_own_memory(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot(REPLY_TO="thread")
    asked = await discord_api.crowd_says(
        "general", [("alice", "how do magnets work?"), ("bob", "what is a quark?")]
    )
    await openai_api.wait_for_requests(2)
    await discord_api.wait_for(lambda: len(discord_api.threads_in("general")) == 4)
    threads = discord_api.threads_in("general")[2:]  # after the world's own two threads
    # Each thread was started from its question: it has the question's id and name.
    assert sorted((t.id, t.name) for t in threads) == sorted(
        (int(m["id"]), m["content"]) for m in asked
    )
    alice_thread = await thread_from(discord_api, asked[0])
    bob_thread = await thread_from(discord_api, asked[1])
    [to_alice] = await replies(discord_api, alice_thread.key)
    [to_bob] = await replies(discord_api, bob_thread.key)
    assert to_alice["content"] == "echo: how do magnets work?"
    assert to_bob["content"] == "echo: what is a quark?"
    assert discord_api.bot_messages("general") == []  # nothing answered in the channel
    assert sorted(conversation(r) for r in openai_api.completions) == [
        [("user", "how do magnets work?")],
        [("user", "what is a quark?")],
    ]

    # In the thread the conversation goes on without a mention, with only its own turns.
    await discord_api.user_says(alice_thread, "alice", "and electromagnets?")
    await replies(discord_api, alice_thread.key, 2)
    assert conversation(openai_api.completions[2]) == [
        ("user", "how do magnets work?"),
        ("assistant", "echo: how do magnets work?"),
        ("user", "and electromagnets?"),
    ]


async def test_a_thread_is_read_back_with_its_starter_message_after_a_restart(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    first = await start_bot(REPLY_TO="thread")
    asked = await discord_api.user_says("general", "alice", "name a prime")
    thread = await thread_from(discord_api, asked)
    await discord_api.wait_for(lambda: discord_api.bot_messages(thread))
    await first.close()

    await start_bot(REPLY_TO="thread")
    await discord_api.user_says(thread, "alice", "another one")
    await replies(discord_api, thread.key, 2)
    assert conversation(openai_api.completions[-1]) == [
        ("user", "name a prime"),
        ("assistant", "echo: name a prime"),
        ("user", "another one"),
    ]
    # The parent channel does not remember the thread's conversation.
    asked = await discord_api.user_says("general", "bob", "name a colour")
    await replies(discord_api, (await thread_from(discord_api, asked)).key)
    assert conversation(openai_api.completions[-1]) == [("user", "name a colour")]


async def test_a_forum_post_title_and_body_reach_the_model(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot(REPLY_TO="thread")
    post, starter = await discord_api.user_posts_in_forum(
        "forum", "bob", "Rust or Go?", "for a small CLI tool"
    )
    [answer] = await replies(discord_api, post.key)
    assert conversation(openai_api.completions[0]) == [
        ("user", "Rust or Go?\nfor a small CLI tool")
    ]
    assert answer["content"] == "echo: Rust or Go?\nfor a small CLI tool"
    assert answer["message_reference"]["message_id"] == starter["id"]
    await discord_api.user_says(post, "bob", "mostly on Linux")
    await replies(discord_api, post.key, 2)
    assert conversation(openai_api.completions[1])[0] == (
        "user",
        "Rust or Go?\nfor a small CLI tool",
    )


async def test_a_forum_in_mention_mode_answers_only_posts_that_mention_the_bot(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot(REPLY_TO="mention")
    quiet, _ = await discord_api.user_posts_in_forum("forum", "alice", "Notes", "just notes")
    asked, _ = await discord_api.user_posts_in_forum(
        "forum", "bob", "Help", "what is 2+2?", mention_bot=True
    )
    await replies(discord_api, asked.key)
    assert len(openai_api.completions) == 1 and discord_api.bot_messages(quiet) == []


async def test_an_archived_thread_is_answered(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot()
    await discord_api.archive_thread("thread")
    await discord_api.user_says("thread", "alice", "still there?")
    [answer] = await replies(discord_api, "thread")
    assert answer["content"] == "echo: still there?"
    # Archived again while the model thinks: the bot's post unarchives it.
    openai_api.script(Reply("here", delay=0.5))
    await discord_api.user_says("thread", "alice", "hello?")
    await openai_api.wait_for_requests(2)
    await discord_api.archive_thread("thread")
    await replies(discord_api, "thread", 2)
    assert discord_api.bot_messages("thread")[-1]["content"] == "here"
    assert discord_api.thread_state("thread") == {"archived": False, "locked": False}


async def test_a_locked_thread_is_read_but_not_answered(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, caplog
) -> None:
    caplog.set_level(logging.INFO)
    await start_bot()
    await discord_api.lock_thread("thread")
    await discord_api.user_says("thread", "carol", "locked for now")
    await discord_api.user_says("thread", "carol", "really locked")
    await until(lambda: logged(caplog, "locked"))
    await asyncio.sleep(0.3)
    assert openai_api.completions == [] and discord_api.posts("thread") == []
    assert len(logged(caplog, "the thread is locked")) == 1
    # What was said there is remembered once the thread opens again.
    await discord_api.archive_thread("thread", locked=False)
    await discord_api.user_says("thread", "alice", "open again?")
    await replies(discord_api, "thread")
    assert [turn[1] for turn in conversation(openai_api.completions[0])] == [
        "Carol: locked for now",  # two speakers: each user turn says who spoke
        "Carol: really locked",
        "Alice: open again?",
    ]


async def test_a_thread_deleted_mid_stream_ends_the_answer_quietly(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, caplog
) -> None:
    caplog.set_level(logging.INFO)
    await start_bot(STREAM_REPLIES="true")
    text = "one two three four five six seven eight nine ten eleven twelve"
    openai_api.script(Reply(text, chunks=text.replace(" ", " |").split("|"), chunk_delay=0.15))
    await discord_api.user_says("thread", "alice", "count to twelve")
    await discord_api.wait_for(lambda: discord_api.posts("thread"))
    thread_id = discord_api.thread.id
    await discord_api.delete_thread("thread")
    [request] = await openai_api.wait_for_requests(1)
    await until(lambda: request.finished_at is not None, timeout=10)
    await asyncio.sleep(1.5)  # time for any retry loop to show itself
    after = [
        r for r in discord_api.requests if f"/channels/{thread_id}/" in r.path and r.status == 404
    ]
    assert len(after) <= 2  # one refused edit (and perhaps one typing), then nothing
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(logged(caplog, "could not")) == 1


async def test_without_thread_permissions_the_channel_is_answered_as_before(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, caplog
) -> None:
    caplog.set_level(logging.INFO)
    await discord_api.deny("general", "CREATE_PUBLIC_THREADS")
    await start_bot(REPLY_TO="thread")
    said = await discord_api.user_says("general", "alice", "first")
    await discord_api.user_says("general", "bob", "second")
    answers = await final_messages(discord_api, "general", 2)
    assert answers == ["echo: first", "echo: Zoe: second"]  # a second speaker is named
    assert discord_api.bot_messages("general")[0]["message_reference"]["message_id"] == said["id"]
    assert discord_api.threads_in("general") == [discord_api.thread, discord_api.private_thread]
    [line] = logged(caplog, "answering in the channel")
    assert "Create Public Threads" in line and "Send Messages in Threads" not in line


async def test_a_channel_set_to_thread_mode_starts_threads_and_another_does_not(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot()  # REPLY_TO=all: thread mode comes from /settings alone
    changed = await run_command(discord_api, "general", "owner", "settings reply-to", mode="thread")
    assert changed["content"].endswith("set the reply to for this channel: `thread`")
    shown = await run_command(discord_api, "general", "alice", "settings show")
    assert "**Reply to:** `thread` (this channel)" in shown["content"]
    # Where no thread can start, the thread modes are refused, and nothing is stored.
    refused = await run_command(discord_api, "thread", "owner", "settings reply-to", mode="thread")
    assert refused["ephemeral"] and refused["content"].startswith("A thread can't start threads")
    dm = discord_api.dm_channel("alice")
    refused = await run_command(
        discord_api, dm, "alice", "settings reply-to", mode="mention-thread"
    )
    assert refused["content"] == "There are no threads in a DM: choose all or mention here."
    shown = await run_command(discord_api, "thread", "alice", "settings show")
    assert "**Reply to:** `thread` (parent channel)" in shown["content"]

    asked = await discord_api.user_says("general", "alice", "how tall is Everest?")
    thread = await thread_from(discord_api, asked)
    [answer] = await replies(discord_api, thread.key)
    assert (thread.name, answer["content"]) == (
        "how tall is Everest?",
        "echo: how tall is Everest?",
    )
    await discord_api.user_says("random", "alice", "and K2?")
    [in_random] = await replies(discord_api, "random")
    assert in_random["content"] == "echo: and K2?"
    assert discord_api.threads_in("random") == []
    # Only the settings line was posted in general itself: the answer went to the thread.
    assert [m["content"][:2] for m in discord_api.bot_messages("general")] == ["⚙️"]


async def test_mention_thread_mode_starts_threads_only_for_messages_to_the_bot(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot()
    await run_command(discord_api, "general", "owner", "settings reply-to", mode="mention-thread")
    await discord_api.user_says("general", "alice", "lunch at noon?")
    asked = await discord_api.user_says("general", "bob", "what is 2+2?", mention_bot=True)
    thread = await thread_from(discord_api, asked)
    [answer] = await replies(discord_api, thread.key)
    assert thread.name == "what is 2+2?"  # the mention is not part of the name
    # The thread's memory starts with the message that opened it; the chat before it
    # stays the channel's.
    [request] = openai_api.completions
    assert [role for role, _ in conversation(request)] == ["user"]
    assert "2+2" in answer["content"] and "lunch" not in answer["content"]
    # In the bot's thread the conversation goes on without mentions...
    await discord_api.user_says(thread, "bob", "and 3+3?")
    await openai_api.wait_for_requests(2)
    assert conversation(openai_api.completions[1])[-1] == ("user", "and 3+3?")
    # ...while a thread people started in that channel is answered only when addressed.
    await discord_api.user_says("thread", "alice", "just us here")
    await discord_api.user_says("thread", "alice", "now you", mention_bot=True)
    [in_their_thread] = await replies(discord_api, "thread")
    assert len(openai_api.completions) == 3
    assert conversation(openai_api.completions[2])[0] == ("user", "just us here")
    assert in_their_thread["content"].startswith("echo: ")
    assert len(discord_api.threads_in("general")) == 3  # the world's two, and bob's


async def test_reset_in_a_thread_resets_that_thread_only(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot(REPLY_TO="thread")
    first = await thread_from(
        discord_api, await discord_api.user_says("general", "alice", "first question")
    )
    second = await thread_from(
        discord_api, await discord_api.user_says("general", "alice", "second question")
    )
    await replies(discord_api, first.key)
    await replies(discord_api, second.key)
    reset = await run_command(discord_api, first, "owner", "reset")
    assert not reset["ephemeral"]
    await discord_api.user_says(first, "alice", "fresh start?")
    await replies(discord_api, first.key, 3)  # the answer, the reset line, the new answer
    assert conversation(openai_api.completions[-1]) == [("user", "fresh start?")]
    await discord_api.user_says(second, "alice", "still there?")
    await replies(discord_api, second.key, 2)
    assert conversation(openai_api.completions[-1]) == [
        ("user", "second question"),
        ("assistant", "echo: second question"),
        ("user", "still there?"),
    ]


async def test_a_rate_limited_user_in_a_thread_is_told_once(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot(REPLY_TO="thread", USER_RATE_LIMIT="2")
    asked = await discord_api.user_says("general", "alice", "question 0")
    thread = await thread_from(discord_api, asked)
    for n in range(1, 6):
        await discord_api.user_says(thread, "alice", f"question {n}")
    await discord_api.wait_for(
        lambda: any("faster" in m["content"] for m in discord_api.bot_messages(thread))
    )
    await discord_api.user_says(thread, "bob", "my turn")
    await discord_api.wait_for(lambda: answered(openai_api)[-1:] == ["Zoe: my turn"])
    notices = [m for m in discord_api.bot_messages(thread) if "faster" in m["content"]]
    assert len(notices) == 1
    assert discord_api.bot_messages("general") == []  # the notice went to the thread
    users = [m["content"] for m in openai_api.completions[-1]["messages"] if m["role"] == "user"]
    assert users == [f"Alice: question {n}" for n in range(6)] + ["Zoe: my turn"]


async def test_a_private_thread_the_bot_was_added_to_is_answered_in_place(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot(REPLY_TO="thread")  # its parent, general, is in thread mode
    await discord_api.user_says("private_thread", "carol", "just between us")
    [answer] = await replies(discord_api, "private_thread")
    assert answer["content"] == "echo: just between us"
    assert discord_api.threads_in("general") == [discord_api.thread, discord_api.private_thread]


async def test_a_paste_in_a_thread_mode_channel_is_read_in_its_new_thread(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot(REPLY_TO="thread")
    trace = "\n".join(["Traceback (most recent call last):", *["  File x.py, line 1"] * 250])
    asked = await discord_api.user_says(
        "general", "alice", "", attachments=[FakeAttachment("message.txt", trace.encode())]
    )
    thread = await thread_from(discord_api, asked)
    await replies(discord_api, thread.key)
    assert thread.name == UNNAMED_THREAD  # no words to name it by: the file is the question
    assert conversation(openai_api.completions[0]) == [
        ("user", f"File: `message.txt`\n```\n{trace}\n```")
    ]
    await discord_api.user_says(
        thread, "alice", "and this?", attachments=[FakeAttachment("message.txt", b"second")]
    )
    await openai_api.wait_for_requests(2)
    assert conversation(openai_api.completions[1])[-1] == (
        "user",
        "and this?\n\nFile: `message.txt`\n```\nsecond\n```",
    )
