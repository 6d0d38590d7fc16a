"""Field reports of the kind "Discord refuses what the bot posts": answers over 2000
characters (50035), empty messages (50006), and the bot's own notes pushing a message
past the limit. Long answers are split within the limit, nothing empty is ever posted,
and an empty answer gets a short, true message instead."""

from __future__ import annotations

import logging

import pytest

from tests.helpers import conversation, final_messages, logged, replies
from tests.standins.discord import DiscordStandIn
from tests.standins.openai_standin import EmptyReply, OpenAIStandIn, Reply

LIMIT = 2000
SILENT = 1 << 12  # SUPPRESS_NOTIFICATIONS: the bot's notices
ESSAY = " ".join(f"Sentence number {n} of a long answer." for n in range(180))  # ~6,800


async def told_empty(discord_api: DiscordStandIn, openai_api: OpenAIStandIn, step) -> str:
    """What the bot says when the model answers with `step`; nothing it sent is blank."""
    openai_api.script(step)
    await discord_api.user_says("general", "alice", "say something")
    [message] = await replies(discord_api, "general")
    assert all(text.strip() for text in all_posted(discord_api))
    return message["content"]


def all_posted(discord_api: DiscordStandIn) -> list[str]:
    """Every content the bot sent Discord in #general, posts and edits alike."""
    sent = discord_api.posts("general") + discord_api.edits("general")
    return [str((p.json or {}).get("content") or "") for p in sent]


async def test_an_answer_over_2000_characters_is_split_not_refused(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """Rapptz/discord.py#10201 — Discord limit: "400 Bad Request (error code: 50035):
    Invalid Form Body In content: Must be 2000 or fewer in length." for a long echo."""
    await start_bot()
    openai_api.script(Reply(ESSAY))
    await discord_api.user_says("general", "alice", "write a lot")
    await discord_api.wait_for(
        lambda: " ".join(m["content"] for m in discord_api.bot_messages("general")).endswith(
            "Sentence number 179 of a long answer."
        )
    )
    shown = [m["content"] for m in discord_api.bot_messages("general")]
    assert len(shown) >= 4 and all(len(text) <= LIMIT for text in shown)
    assert " ".join(shown).split() == ESSAY.split()


async def test_a_streamed_answer_over_2000_characters_is_split_as_it_grows(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """langbot-app/LangBot#1472 — Discord limit: on Discord a response longer than 2000
    characters errors out directly; the reporter asks for it to be cut and sent in parts.
    Streamed, no post or edit ever exceeds the limit."""
    await start_bot(STREAM_REPLIES="true")
    openai_api.script(Reply(ESSAY, chunk_delay=0.0))
    await discord_api.user_says("general", "alice", "write a lot")
    count = len(await discord_api.wait_for(lambda: discord_api.bot_messages("general")))
    await discord_api.wait_for(
        lambda: " ".join(m["content"] for m in discord_api.bot_messages("general")).endswith(
            "Sentence number 179 of a long answer."
        ),
        timeout=20,
    )
    assert count >= 1
    assert all(len(text) <= LIMIT for text in all_posted(discord_api))


async def test_the_bots_own_note_never_pushes_a_message_past_the_limit(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """kurzgesagt-in-a-nutshell/birdbot#143 — Discord limit: the length was checked
    before more text was added, so the message sent was over 2000. An answer just under
    the limit that gets a note (cut short) still fits."""
    await start_bot()
    text = ("word " * 399).strip()  # 1,994 characters
    openai_api.script(Reply(text, finish_reason=None))
    await discord_api.user_says("general", "alice", "go")
    posted = await replies(discord_api, "general", 2)
    assert all(len(m["content"]) <= LIMIT for m in posted)
    assert " ".join(m["content"] for m in posted).startswith(text)


@pytest.mark.parametrize("stream", ["false", "true"])
async def test_an_empty_answer_is_never_posted_empty(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, stream: str
) -> None:
    """mishl-dev/Discord-AI-Chatbot#64 — Discord refusal: "400 Bad Request (error code:
    50006): Cannot send an empty message" when the model's answer came back empty. The
    user is told, in words."""
    await start_bot(STREAM_REPLIES=stream)
    assert "empty answer" in await told_empty(discord_api, openai_api, EmptyReply())


async def test_an_agent_that_says_nothing_does_not_crash_the_bot(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """letta-ai/letta-discord-bot-example#12 — Discord refusal: when the agent stays
    silent (no content at all), sending crashed with 50006. A null answer, streamed, is
    told as empty and the next message is answered."""
    await start_bot(STREAM_REPLIES="true")
    assert await told_empty(discord_api, openai_api, EmptyReply(content=None))
    await discord_api.user_says("general", "alice", "now?")
    assert (await final_messages(discord_api, "general", 2))[1] == "echo: now?"


async def test_a_whitespace_only_answer_is_not_posted_as_an_empty_message(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """ausboss/PygDiscordBot#37 — Discord refusal: "more often than not" a generated
    response raised 50006 "Cannot send an empty message". An answer of blanks only is
    an empty answer, told as such."""
    await start_bot()
    assert "empty answer" in await told_empty(discord_api, openai_api, Reply(" \n\n \t "))


async def test_an_ollama_answer_of_2800_characters_is_posted_whole(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """238SAMIxD/discord-ai-bot#2 — Discord limit: Ollama's answers hit the limit
    regularly (a ~2,800-character story failed with 50035). It arrives in two messages,
    streamed, nothing lost."""
    story = " ".join(f"Once upon a time, part {n}." for n in range(110))  # ~2,800
    await start_bot(STREAM_REPLIES="true", OPENAI_MODEL="llama2")
    openai_api.script(Reply(story))
    await discord_api.user_says("general", "alice", "tell me a story")
    shown = await final_messages(discord_api, "general", 2)
    assert all(len(text) <= LIMIT for text in shown)
    assert " ".join(shown).split() == story.split()


async def test_an_answer_split_in_two_keeps_the_conversation_going(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """Kav-K/GPTDiscord#203 — Discord limit: a response longer than one message was broken
    in two, and that broke the conversation: further messages were not answered. The
    next message is answered, and the model is given the whole earlier answer."""
    await start_bot()
    openai_api.script(Reply(ESSAY))
    await discord_api.user_says("general", "alice", "P vs NP?")
    count = len(
        await discord_api.wait_for(
            lambda: (
                (m := discord_api.bot_messages("general"))
                and m[-1]["content"].endswith("Sentence number 179 of a long answer.")
                and m
            )
        )
    )
    await discord_api.user_says("general", "alice", "and so?")
    shown = await final_messages(discord_api, "general", count + 1)
    assert shown[-1] == "echo: and so?"
    remembered = conversation(openai_api.completions[-1])[1]
    assert remembered[0] == "assistant" and remembered[1].split() == ESSAY.split()


async def test_a_long_contract_is_split_rather_than_failing(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    """johndotpub/DiscordianAI#14 — Discord limit: "write me a contract" gave a response
    over 2000 characters and on_message failed with 50035; the reporter suggests breaking
    it into several messages. Paragraph breaks are kept where the split falls."""
    contract = "\n\n".join(
        f"Clause {n}. The parties agree to the terms set out in this clause. " * 4
        for n in range(1, 13)
    )
    await start_bot()
    openai_api.script(Reply(contract))
    await discord_api.user_says("general", "alice", "write me a contract")
    await discord_api.wait_for(
        lambda: (m := discord_api.bot_messages("general")) and "Clause 12." in m[-1]["content"]
    )
    shown = [m["content"] for m in discord_api.bot_messages("general")]
    assert len(shown) >= 2 and all(len(text) <= LIMIT for text in shown)
    assert all(text.startswith("Clause ") for text in shown)  # split between clauses


async def test_an_edit_blocked_by_automod_is_logged_and_the_user_told(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, caplog
) -> None:
    """tibue99/ezcord#85 — Discord refusal: AutoMod may block a bot's messages, and
    editing a message (which everyone sees) raises an HTTPException; the fix logs it.
    Here a streamed answer's edit hits a keyword rule (400, 200000): the log names the
    rule, the user gets a silent notice that does not repeat the word, and nothing
    hangs."""
    caplog.set_level(logging.INFO)
    discord_api.block_words("forbiddenword")
    text = "first the allowed words, then a forbiddenword at the end"
    pieces = [f"{word} " for word in text.split()]
    pieces[-1] = pieces[-1].strip()
    await start_bot(STREAM_REPLIES="true")
    openai_api.script(Reply(text, chunks=pieces, chunk_delay=0.15))
    await discord_api.user_says("general", "alice", "talk")
    shown, notice = (m["content"] for m in await replies(discord_api, "general", 2))
    assert shown.startswith("first") and "forbiddenword" not in shown + notice
    assert "AutoMod" in notice and discord_api.bot_messages("general")[1]["flags"] & SILENT
    refusals = logged(caplog, "refused to edit the answer: AutoMod rule")
    assert refusals and all("200000" in line for line in refusals)
