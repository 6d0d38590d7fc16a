"""Memory that lasts: read back after a restart, summaries of dropped turns."""

from __future__ import annotations

import logging

from config import DEFAULT_SYSTEM_PROMPT
from conversation.prompts import SUMMARY_HEADING
from tests.helpers import conversation, replies, run_command, until
from tests.standins.discord import DiscordStandIn
from tests.standins.openai_standin import Error, OpenAIStandIn, Reply, prompt_tokens
from text.splitting import split_for_discord


def is_summary_request(body) -> bool:
    return body["messages"][0]["content"].startswith("You keep a running summary")


async def summaries_done(bot, channel_id: int) -> None:
    """Wait until the channel's turns are taken and those dropped are summarised
    (summaries must be on)."""
    conversations = bot.conversations
    assert conversations.recall.summarizer is not None
    channel = conversations.channels[channel_id]
    await until(lambda: not channel.busy and channel.summary.task is None, timeout=20)


async def test_a_restarted_bot_reads_the_conversation_back(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    first = await start_bot()
    long_answer = "Teal it is. " + "Teal is a lovely colour. " * 120  # several messages
    openai_api.script(Reply(long_answer), Error.bad_auth())
    await discord_api.user_says("general", "alice", "My favourite colour is teal.")
    await replies(discord_api, "general", len(split_for_discord(long_answer)))
    await discord_api.user_says("general", "other_bot", "beep, ignore me")
    await discord_api.user_says("general", "bob", "this one fails")
    await discord_api.wait_for(
        lambda: "API key" in discord_api.bot_messages("general")[-1]["content"]
    )
    await first.close()

    await start_bot()  # a new process would start the same way: empty memory
    await discord_api.user_says("general", "alice", "What is my favourite colour?")
    await discord_api.wait_for(lambda: len(openai_api.completions) == 3)
    # Two people spoke, so each user turn says who (read back the same way as built).
    assert conversation(openai_api.completions[-1]) == [
        ("user", "Alice: My favourite colour is teal."),
        ("assistant", "\n".join(split_for_discord(long_answer))),  # one turn, not several
        ("user", "Zoe: this one fails"),  # the failure notice is no answer; other bots are out
        ("user", "Alice: What is my favourite colour?"),
    ]


async def test_read_back_is_bounded_by_the_budget(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    first = await start_bot(MAX_CONTEXT_TOKENS="1000", MAX_REPLY_TOKENS="300")
    for n in range(12):
        await discord_api.user_says("random", "alice", f"turn {n}: " + "words to fill " * 30)
        await replies(discord_api, "random", n + 1)
    await first.close()
    restarted = len(discord_api.requests)
    await start_bot(MAX_CONTEXT_TOKENS="1000", MAX_REPLY_TOKENS="300")
    await discord_api.user_says("random", "bob", "and now?")
    await discord_api.wait_for(lambda: len(openai_api.completions) == 13)
    request = openai_api.completions[-1]
    assert prompt_tokens(request) <= 700
    assert request["messages"][-1]["content"] == "Zoe: and now?"  # two speakers now
    assert request["messages"][-3]["content"].startswith("Alice: turn 11: ")  # the newest kept
    reads = [
        r
        for r in discord_api.requests[restarted:]
        if r.method == "GET" and r.path.endswith("/messages")
    ]
    assert len(reads) == 1  # once per channel per process, one page of up to 100


async def test_a_channel_that_cannot_be_read_back_starts_empty(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, caplog
) -> None:
    caplog.set_level(logging.WARNING)
    first = await start_bot()
    await discord_api.user_says("general", "alice", "remember me")
    await replies(discord_api, "general")
    await first.close()
    await start_bot()
    discord_api.forbid_read("general")
    await discord_api.user_says("general", "alice", "do you?")
    await discord_api.wait_for(lambda: len(openai_api.completions) == 2)
    assert conversation(openai_api.completions[-1]) == [("user", "do you?")]
    assert "could not read its history" in caplog.text


async def test_summaries_keep_dropped_facts_within_the_budget(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    bot = await start_bot(
        MEMORY_STRATEGY="summarize", MAX_CONTEXT_TOKENS="1000", MAX_REPLY_TOKENS="300"
    )
    await discord_api.user_says("general", "alice", "The secret code is 4711.")
    await replies(discord_api, "general")
    for n in range(8):
        await discord_api.user_says("general", "bob", f"filler {n} " + "talk talk talk " * 30)
        await replies(discord_api, "general", n + 2)
    await summaries_done(bot, discord_api.channel("general").id)
    await discord_api.user_says("general", "alice", "What was the code?")

    def asked() -> dict | None:
        return next(
            (r for r in openai_api.completions if r["messages"][-1]["content"].endswith("code?")),
            None,
        )

    last = await openai_api.wait_for(asked)
    # The summary is inside the one system message (chat templates keep only the first).
    system = last["messages"][0]
    assert system["role"] == "system" and "4711" in system["content"]
    assert [m["role"] for m in last["messages"]].count("system") == 1
    assert all("4711" not in m["content"] for m in last["messages"][1:])
    for request in openai_api.completions:
        if not is_summary_request(request):
            assert prompt_tokens(request) <= 700


async def test_a_failed_summary_falls_back_to_dropping(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, caplog
) -> None:
    caplog.set_level(logging.WARNING)
    openai_api.answer_when(is_summary_request, Error.context_length_exceeded())
    bot = await start_bot(
        MEMORY_STRATEGY="summarize", MAX_CONTEXT_TOKENS="1000", MAX_REPLY_TOKENS="300"
    )
    for n in range(8):
        await discord_api.user_says("general", "bob", f"filler {n} " + "talk talk talk " * 30)
        await replies(discord_api, "general", n + 1)
    await summaries_done(bot, discord_api.channel("general").id)
    await until(lambda: "could not summarise" in caplog.text)
    await discord_api.user_says("general", "bob", "still there?")
    await replies(discord_api, "general", 9)
    last = openai_api.completions[-1]
    assert last["messages"][1]["role"] == "user"  # no summary, older turns dropped
    assert prompt_tokens(last) <= 700


async def test_a_stored_summary_survives_a_restart_until_a_reset(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    summary = "Alice said the secret code is 4711."
    openai_api.answer_when(is_summary_request, Reply(summary))
    small = {"MEMORY_STRATEGY": "summarize", "MAX_CONTEXT_TOKENS": "1000"}
    first = await start_bot(**small, MAX_REPLY_TOKENS="300")
    await discord_api.user_says("general", "alice", "The secret code is 4711.")
    await replies(discord_api, "general")
    for n in range(6):
        await discord_api.user_says("general", "bob", f"filler {n} " + "talk talk talk " * 30)
        await replies(discord_api, "general", n + 2)
    general = discord_api.channel("general").id
    await summaries_done(first, general)
    memory = first.conversations.channels[general].memory
    assert memory is not None
    kept = [turn.as_message(labelled=True) for turn in memory]
    summarised = [
        r["messages"][1]["content"] for r in openai_api.completions if is_summary_request(r)
    ]
    assert summarised and "The secret code is 4711." in summarised[0]
    await first.close()

    # A larger budget after the restart: read-back could reach the summarised turns, but
    # stops after the newest message the summary covers.
    await start_bot(**small, MAX_REPLY_TOKENS="100")
    await discord_api.user_says("general", "alice", "What was the code?")
    request = await openai_api.wait_for(lambda: asked(openai_api, "What was the code?"))
    assert request["messages"][0] == {
        "role": "system",
        "content": f"{DEFAULT_SYSTEM_PROMPT}\n\n{SUMMARY_HEADING}\n{summary}",
    }
    assert request["messages"][1:-1] == kept  # the turns after the summary, none before
    assert all("4711" not in m["content"] for m in request["messages"][1:])
    await replies(discord_api, "general", 8)

    await run_command(discord_api, "general", "carol", "reset")  # a moderator (Manage Messages)
    await discord_api.user_says("general", "alice", "Anything to remember?")
    request = await openai_api.wait_for(lambda: asked(openai_api, "Anything to remember?"))
    assert request["messages"][0] == {"role": "system", "content": DEFAULT_SYSTEM_PROMPT}
    assert conversation(request) == [("user", "Anything to remember?")]
    await discord_api.wait_for(
        lambda: discord_api.bot_messages("general")[-1]["content"] == "echo: Anything to remember?"
    )

    third = await start_bot(**small, MAX_REPLY_TOKENS="100")  # forgotten for good
    await discord_api.user_says("general", "alice", "And now?")
    request = await openai_api.wait_for(lambda: asked(openai_api, "And now?"))
    assert request["messages"][0] == {"role": "system", "content": DEFAULT_SYSTEM_PROMPT}
    assert conversation(request) == [
        ("user", "Anything to remember?"),
        ("assistant", "echo: Anything to remember?"),
        ("user", "And now?"),
    ]
    store = third.services.store
    assert await store.get_summary(general) is None


def asked(openai_api: OpenAIStandIn, text: str) -> dict | None:
    """The newest model request whose last message ends with `text` (not a summary's)."""
    return next(
        (
            r
            for r in reversed(openai_api.completions)
            if r["messages"][-1]["content"].endswith(text)
        ),
        None,
    )
