"""What people point at is part of their turn: the message they reply to (quoted with its
author, unless the conversation holds it), the messages they forward, and threads
people start from a channel's messages."""

from __future__ import annotations

import asyncio
import io

import pytest
from PIL import Image

from conversation.prompts import QUOTE_SHORTENED_NOTE, SHORTENED_NOTE
from tests.helpers import conversation, replies, run_command
from tests.standins.discord import DiscordStandIn, FakeAttachment
from tests.standins.openai_standin import OpenAIStandIn
from text.quoting import SHORTENED_MARK, UNREADABLE_REPLY

ALERT = {
    "title": "FIRING: DiskFull",
    "description": "db-1: /var is 97% full",
    "fields": [{"name": "severity", "value": "critical"}],
}
QUOTED_ALERT = (
    "[replying to this message from OtherBot (a bot):]\n"
    "> disk alert\n>\n> FIRING: DiskFull\n> db-1: /var is 97% full\n> severity: critical"
)
MODES = pytest.mark.parametrize("mode", ["all", "mention"])


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(out, format="PNG")
    return out.getvalue()


def mention(mode: str) -> dict:
    return {"mention_bot": mode == "mention"}


def own(text: str, mode: str) -> str:
    """The person's text as the model gets it (a mention is shown as @ChatBot)."""
    return f"@ChatBot {text}" if mode == "mention" else text


@MODES
async def test_a_reply_to_a_bots_alert_carries_it_quoted_with_its_author(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, mode: str
) -> None:
    await start_bot(REPLY_TO=mode)
    alert = await discord_api.user_says("general", "other_bot", "disk alert", embeds=[ALERT])
    await discord_api.user_says(
        "general", "alice", "what should I do about this?", reply_to=alert, **mention(mode)
    )
    await replies(discord_api, "general")
    assert conversation(openai_api.completions[-1]) == [
        ("user", f"{QUOTED_ALERT}\n\n{own('what should I do about this?', mode)}")
    ]


@MODES
async def test_a_reply_to_a_message_from_before_the_memory_is_quoted(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, mode: str
) -> None:
    old = await discord_api.user_says("general", "bob", "deploy at 5pm", deliver=False)
    await start_bot(REPLY_TO=mode)
    await run_command(discord_api, "general", "owner", "reset")  # the memory starts after it
    await discord_api.user_says("general", "alice", "still on?", reply_to=old, **mention(mode))
    await replies(discord_api, "general", 2)
    assert conversation(openai_api.completions[-1]) == [
        ("user", f"[replying to this message from Zoë 🌟:]\n> deploy at 5pm\n\n"
                 f"{own('still on?', mode)}")
    ]  # fmt: skip


@MODES
async def test_a_reply_to_a_message_in_memory_is_not_repeated(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, mode: str
) -> None:
    await start_bot(REPLY_TO=mode)
    first = await discord_api.user_says("general", "alice", "my cat is called Tom", **mention(mode))
    await replies(discord_api, "general")
    await discord_api.user_says(
        "general", "alice", "what is its name?", reply_to=first, **mention(mode)
    )
    await replies(discord_api, "general", 2)
    said = [content for _, content in conversation(openai_api.completions[-1])]
    assert said == [
        own("my cat is called Tom", mode),
        f"echo: {own('my cat is called Tom', mode)}",
        own("what is its name?", mode),
    ]


async def test_a_reply_whose_target_was_fetched_is_quoted(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot()
    alert = await discord_api.user_says("general", "other_bot", "disk alert", embeds=[ALERT])
    await discord_api.user_says("general", "alice", "why?", reply_to=alert, resolve_reply=False)
    await replies(discord_api, "general")
    assert conversation(openai_api.completions[-1]) == [("user", f"{QUOTED_ALERT}\n\nwhy?")]
    fetched = f"/channels/{{channel_id}}/messages/{alert['id']}"
    assert discord_api.requests_to("GET", fetched, "general")


@MODES
async def test_a_reply_to_a_deleted_message_tells_the_model(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, mode: str
) -> None:
    await start_bot(REPLY_TO=mode)
    target = await discord_api.user_says("general", "other_bot", "secret", deliver=False)
    reply = await discord_api.user_says(
        "general", "alice", "and this?", reply_to=target, deliver=False, **mention(mode)
    )
    await discord_api.user_deletes(target, deliver=False)
    await discord_api.deliver(reply)  # referenced_message: null
    await replies(discord_api, "general")
    assert conversation(openai_api.completions[-1]) == [
        ("user", f"{UNREADABLE_REPLY}\n\n{own('and this?', mode)}")
    ]


async def test_a_reply_the_bot_may_not_fetch_tells_the_model(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot()
    await discord_api.deny("general", "READ_MESSAGE_HISTORY")
    target = await discord_api.user_says("general", "other_bot", "the plan")
    await discord_api.user_says("general", "alice", "ok?", reply_to=target, resolve_reply=False)
    await replies(discord_api, "general")
    # GET /messages/{id} is refused (403): the model is told, and the bot answers.
    fetched = f"/channels/{{channel_id}}/messages/{target['id']}"
    [refused] = discord_api.requests_to("GET", fetched, "general")
    assert refused.status == 403
    assert conversation(openai_api.completions[-1]) == [("user", f"{UNREADABLE_REPLY}\n\nok?")]


@MODES
async def test_a_forward_is_read_live_and_after_a_restart(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, mode: str
) -> None:
    first = await start_bot(REPLY_TO=mode)
    source = await discord_api.user_says("random", "bob", "the build is red", deliver=False)
    await discord_api.user_forwards("general", "alice", source)
    if mode == "mention":
        await discord_api.user_says("general", "alice", "see above", mention_bot=True)
    await replies(discord_api, "general")
    forwarded = ("user", "[forwarded a message:]\n> the build is red")
    assert conversation(openai_api.completions[-1])[0] == forwarded
    await first.close()

    await start_bot(REPLY_TO=mode)
    await discord_api.user_says("general", "alice", "and now?", **mention(mode))
    await replies(discord_api, "general", 2)
    assert conversation(openai_api.completions[-1])[0] == forwarded


@MODES
async def test_a_forwarded_file_and_picture_are_read(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, mode: str
) -> None:
    first = await start_bot(REPLY_TO=mode, VISION="on")
    source = await discord_api.user_says(
        "random",
        "bob",
        "logs attached",
        attachments=[
            FakeAttachment("build.log", b"error: linker failed\n"),
            FakeAttachment("shot.png", png(), width=8, height=8),
        ],
        deliver=False,
    )
    await discord_api.user_forwards("general", "alice", source)
    if mode == "mention":
        await discord_api.user_says("general", "alice", "see above", mention_bot=True)
    await replies(discord_api, "general")

    def forwarded_turn(request: dict) -> dict:
        return request["messages"][1]

    def check(turn: dict) -> None:
        text, picture = turn["content"]
        assert text["text"].startswith("[forwarded a message:]\n> logs attached\n\n")
        assert "error: linker failed" in text["text"]
        assert picture["image_url"]["url"].startswith("data:image/")

    check(forwarded_turn(openai_api.completions[-1]))
    await first.close()

    await start_bot(REPLY_TO=mode, VISION="on")
    await discord_api.user_says("general", "alice", "and now?", **mention(mode))
    await replies(discord_api, "general", 2)
    check(forwarded_turn(openai_api.completions[-1]))


@MODES
async def test_a_thread_people_started_keeps_its_starter_in_the_channel(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, mode: str
) -> None:
    first = await start_bot(REPLY_TO=mode)
    starter = await discord_api.user_says("general", "alice", "release notes are out")
    thread = await discord_api.user_starts_thread("bob", starter, "release talk")
    await discord_api.user_says(thread, "bob", "nice", **mention(mode))
    await replies(discord_api, thread.key)
    await first.close()

    await start_bot(REPLY_TO=mode)
    answers = len(discord_api.bot_messages("general"))  # in `all` mode, the starter's
    await discord_api.user_says("general", "alice", "what did I say?", **mention(mode))
    await replies(discord_api, "general", answers + 1)
    assert conversation(openai_api.completions[-1])[0] == ("user", "release notes are out")
    # In the thread, the starter is its first turn, as before.
    await discord_api.user_says(thread, "bob", "and?", **mention(mode))
    await replies(discord_api, thread.key, 2)
    assert conversation(openai_api.completions[-1])[0] == (
        "user",
        "Alice: release notes are out",
    )


async def test_memory_answers_while_a_file_is_still_downloading(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot()
    await discord_api.user_says("general", "bob", "hello")
    await replies(discord_api, "general")
    discord_api.fail_downloads(hang=True)
    await discord_api.user_says("general", "alice", "big one", attachments=["huge.log"])
    await asyncio.sleep(0.2)  # its download has begun, and hangs
    asked = await discord_api.user_runs_command("general", "alice", "memory")
    # Not blocked until the download times out (20 s): the file's message is not in yet.
    shown = await discord_api.wait_for_interaction_response(asked, timeout=5)
    assert "2 messages" in shown["content"]


async def test_a_slow_download_keeps_the_answers_in_arrival_order(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot()
    slow = discord_api.fail_downloads(status=500)
    slow.delay = 1.0  # then the CDN fails: the file becomes a note
    first = await discord_api.user_says("general", "alice", "read this", attachments=["a.log"])
    second = await discord_api.user_says("general", "bob", "next")
    posted = await replies(discord_api, "general", 2)
    assert [m["message_reference"]["message_id"] for m in posted] == [first["id"], second["id"]]
    assert "a.log" in posted[0]["content"]  # the note about the file that failed
    assert conversation(openai_api.completions[-1])[-1] == ("user", "Zoe: next")


# --- a long quote is cut before the person's own words -------------------------------

QUESTION = "so, in one word, what does this mean?"


@pytest.mark.parametrize("stream", ["false", "true"])
async def test_a_reply_to_a_long_message_keeps_its_question_in_a_learnt_window(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, stream: str
) -> None:
    # The quote fits its share of the configured budget on arrival; the window learnt
    # from the server's refusal is smaller, so the turn is cut when the request is built:
    # the quote goes first in the turn, and the question must survive the cut.
    old = await discord_api.user_says("general", "bob", "log line 42 " * 400, deliver=False)
    openai_api.limit_context(700, style="llama_cpp")
    await start_bot(
        OPENAI_MODEL="local-model",
        MAX_CONTEXT_TOKENS="8192",
        MAX_REPLY_TOKENS="100",
        STREAM_REPLIES=stream,
    )
    await run_command(discord_api, "general", "owner", "reset")
    await discord_api.user_says("general", "alice", QUESTION, reply_to=old)
    await discord_api.wait_for(lambda: QUOTE_SHORTENED_NOTE in shown(discord_api), timeout=20)
    accepted = openai_api.chat_requests[-1]
    assert accepted.status == 200
    sent = accepted.json["messages"][-1]["content"]
    assert sent.startswith("[replying to this message from Zoë 🌟:]\n> log line 42")
    assert sent.endswith(f"{SHORTENED_MARK}\n\n{QUESTION}")
    # The note blames the quoted message, not the person's.
    assert SHORTENED_NOTE not in shown(discord_api)


async def test_a_long_message_with_a_quote_keeps_its_own_words_on_arrival(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    # The configured budget itself is small: on arrival the quote is cut first.
    old = await discord_api.user_says("general", "bob", "quoted words " * 60, deliver=False)
    await start_bot(MAX_CONTEXT_TOKENS="700", MAX_REPLY_TOKENS="100", SYSTEM_PROMPT="Be brief.")
    await run_command(discord_api, "general", "owner", "reset")
    mine = "my own words " * 170 + QUESTION
    await discord_api.user_says("general", "alice", mine, reply_to=old)
    await discord_api.wait_for(lambda: QUOTE_SHORTENED_NOTE in shown(discord_api), timeout=20)
    sent = openai_api.completions[-1]["messages"][-1]["content"]
    assert sent.startswith("[replying to this message from Zoë 🌟:]\n")
    assert sent.endswith(f"\n\n{mine}")
    assert SHORTENED_NOTE not in shown(discord_api)


def shown(discord_api: DiscordStandIn) -> str:
    """Everything the bot shows in #general."""
    return "\n".join(m["content"] for m in discord_api.bot_messages("general"))


# --- forwards: mentions as names, and replies to a forward --------------------------


async def test_a_forward_shows_mentions_as_names_never_raw_markup(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot()
    helpers, general = discord_api.role("helpers"), discord_api.general.id
    raw = f"<@{discord_api.bot_user_id}> <@&{helpers}> see <#{general}>, ask <@123456789>"
    source = await discord_api.user_says("random", "bob", raw, deliver=False)
    await discord_api.user_forwards("general", "alice", source)
    await replies(discord_api, "general")
    [(_, sent)] = conversation(openai_api.completions[-1])
    assert sent == "[forwarded a message:]\n> @ChatBot @Helpers see #general, ask @someone"


@pytest.mark.parametrize("live", [True, False])
async def test_a_reply_to_a_forward_quotes_what_was_forwarded(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, live: bool
) -> None:
    # The forward itself has no content: its snapshot is what the reply points at.
    source = await discord_api.user_says("random", "bob", "the build is red", deliver=False)
    forward = await discord_api.user_forwards("general", "carol", source, deliver=False)
    await start_bot(REPLY_TO="mention")
    await run_command(discord_api, "general", "owner", "reset")  # the memory starts after it
    await discord_api.user_says(
        "general", "alice", "why?", reply_to=forward, resolve_reply=live, mention_bot=True
    )
    await replies(discord_api, "general", 2)
    [(_, sent)] = conversation(openai_api.completions[-1])
    assert sent.startswith("[replying to this message from ")
    assert sent.endswith(":]\n> the build is red\n\n@ChatBot why?")
