"""Discord refusing the bot's answer for its own reasons: a server's AutoMod rule, the
harmful links filter, the message's size, or a code the bot has never seen.

The user is told in a short silent notice that never repeats the refused text (so the
rule cannot block the notice too), the log names the rule or code, and what the bot
remembers is what the channel shows: nothing, or the part that was shown.
"""

from __future__ import annotations

import logging

import pytest

from tests.helpers import conversation, replies, until
from tests.standins.discord import DiscordStandIn
from tests.standins.openai_standin import OpenAIStandIn, Reply

SILENT = 1 << 12  # SUPPRESS_NOTIFICATIONS: the bot's notices, never its answers


async def _next_request(discord_api, openai_api, text: str) -> list[tuple[str, str]]:
    """What the model is given for the next message (the bot's memory of the channel)."""
    count = len(openai_api.completions)
    await discord_api.user_says("general", "alice", text)
    await openai_api.wait_for(lambda: len(openai_api.completions) == count + 1)
    return conversation(openai_api.completions[-1])


@pytest.mark.parametrize("stream", ["false", "true"])
@pytest.mark.parametrize("wide", [False, True])
async def test_an_answer_blocked_by_automod_gets_a_notice_and_is_not_remembered(
    start_bot,
    discord_api: DiscordStandIn,
    openai_api: OpenAIStandIn,
    caplog,
    stream: str,
    wide: bool,
) -> None:
    caplog.set_level(logging.INFO)
    await start_bot(STREAM_REPLIES=stream)
    # `wide`: a rule that blocks the notice's own words too ("answer", "AutoMod").
    discord_api.block_words("pineapple", *(("answer", "automod") if wide else ()))
    await discord_api.user_says("general", "alice", "say pineapple")
    [notice] = await replies(discord_api, "general")
    assert notice["flags"] & SILENT
    if wide:  # then one minimal notice sharing none of its words
        assert notice["content"] == "⚠️ Reply cut short (error 200000)."
        assert "the notice was refused too" in caplog.text
    else:
        assert "AutoMod" in notice["content"] and "pineapple" not in notice["content"]
        assert notice["content"].startswith("⚠️ My answer")
    assert discord_api.blocked and discord_api.blocked[0]["code"] == 200000
    assert "refused to post the answer: AutoMod rule (400 200000" in caplog.text
    assert await _next_request(discord_api, openai_api, "and now?") == [
        ("user", "say pineapple"),
        ("user", "and now?"),
    ]


async def test_a_streamed_answer_blocked_on_a_later_edit_keeps_what_was_shown(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, caplog
) -> None:
    caplog.set_level(logging.INFO)
    await start_bot(STREAM_REPLIES="true")
    discord_api.block_words("pineapple")
    chunks = [f"word{n} " for n in range(8)] + ["pineapple ", "end"]
    openai_api.script(Reply("".join(chunks), chunks=chunks, chunk_delay=0.15))
    await discord_api.user_says("general", "alice", "talk")
    posted = await discord_api.wait_for(
        lambda: len(m := discord_api.bot_messages("general")) == 2 and m
    )
    answer, notice = posted
    assert notice["flags"] & SILENT and not answer["flags"] & SILENT
    assert notice["content"].startswith("⚠️ Part of my answer") and "AutoMod" in notice["content"]
    assert "pineapple" not in answer["content"] and answer["content"].startswith("word0")
    assert "refused to edit the answer: AutoMod rule" in caplog.text
    # The message no longer says it is being written: its last edit is what was shown.
    await discord_api.wait_for(
        lambda: not discord_api.bot_messages("general")[0]["content"].endswith(" ▌")
    )
    shown = discord_api.bot_messages("general")[0]["content"]
    assert "▌" not in shown and shown.startswith("word0")
    assert await _next_request(discord_api, openai_api, "go on") == [
        ("user", "talk"),
        ("assistant", shown),
        ("user", "go on"),
    ]


async def test_a_long_answer_whose_second_message_is_blocked_remembers_the_first(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, caplog
) -> None:
    caplog.set_level(logging.INFO)
    await start_bot()
    discord_api.block_words("https://bad.example", code=240000)
    first = " ".join(["lorem"] * 380)  # about 2,300 characters: two messages
    openai_api.script(Reply(f"{first}\n\nsee https://bad.example/x"))
    await discord_api.user_says("general", "alice", "write a lot")
    posted = await discord_api.wait_for(
        lambda: len(m := discord_api.bot_messages("general")) == 2 and m
    )
    assert posted[1]["flags"] & SILENT and "harmful links" in posted[1]["content"]
    assert "bad.example" not in posted[1]["content"]
    assert "harmful links filter (400 240000" in caplog.text
    memory = await _next_request(discord_api, openai_api, "thanks")
    assert memory[1] == ("assistant", posted[0]["content"])


@pytest.mark.parametrize("stream", ["false", "true"])
async def test_a_size_refusal_gets_a_notice(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, caplog, stream: str
) -> None:
    await start_bot(STREAM_REPLIES=stream)
    too_long = {
        "code": 50035,
        "errors": {
            "content": {
                "_errors": [
                    {"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}
                ]
            }
        },
        "message": "Invalid Form Body",
    }
    discord_api.fail_requests("POST", "create_message", status=400, body=too_long)
    await discord_api.user_says("general", "alice", "hello")
    [notice] = await replies(discord_api, "general")
    assert notice["flags"] & SILENT and "too long" in notice["content"]
    assert "hello" not in notice["content"]
    assert "refused to post the answer: size (400 50035" in caplog.text


async def test_an_unknown_refusal_code_gets_a_notice_naming_no_text(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, caplog
) -> None:
    await start_bot()
    body = {"code": 999999, "message": "Something Discord invented yesterday"}
    discord_api.fail_requests("POST", "create_message", status=400, body=body)
    await discord_api.user_says("general", "alice", "hello")
    [notice] = await replies(discord_api, "general")
    assert notice["content"] == "⚠️ My answer was refused by Discord."
    await until(lambda: "code 999999 (400 999999: Something Discord invented" in caplog.text)


async def test_a_notice_is_posted_once_however_many_edits_are_refused(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot(STREAM_REPLIES="true")
    discord_api.block_words("pineapple")
    chunks = ["one ", "two ", "pineapple ", "three ", "four ", "five"]
    openai_api.script(Reply("".join(chunks), chunks=chunks, chunk_delay=0.3))
    await discord_api.user_says("general", "alice", "count")
    await discord_api.wait_for(lambda: len(discord_api.bot_messages("general")) == 2)
    await openai_api.wait_for(lambda: openai_api.chat_requests[0].finished_at is not None)
    await discord_api.user_says("general", "alice", "again")
    await replies(discord_api, "general", 3)
    notices = [m for m in discord_api.bot_messages("general") if m["flags"] & SILENT]
    assert len(notices) == 1
