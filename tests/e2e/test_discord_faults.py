"""Discord misbehaving as it really does: server errors, missing permissions, odd channels.

Nothing is lost and nothing is left half-written: a post or edit that fails transiently
is retried, the final edit is always attempted, and what the bot remembers of its
answer is what the channel shows.
"""

from __future__ import annotations

import logging

import pytest

from discord_side import failures
from memory import speaker_name
from tests.helpers import MARKER, answered, conversation, final_messages, replies, until
from tests.standins.discord import DiscordStandIn
from tests.standins.openai_standin import OpenAIStandIn, Reply, prompt_tokens

STREAMED = {"STREAM_REPLIES": "true"}


def chunks(text: str, size: int = 6) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


@pytest.mark.parametrize("stream", ["false", "true"])
async def test_a_post_refused_once_with_503_is_posted_on_retry(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, stream: str
) -> None:
    await start_bot(STREAM_REPLIES=stream)
    fault = discord_api.fail_requests("POST", "create_message", status=503, channel="general")
    await discord_api.user_says("general", "alice", "hello")
    assert await final_messages(discord_api, "general", 1) == ["echo: hello"]
    assert len(fault.hits) == 1
    await discord_api.user_says("general", "alice", "again")
    await final_messages(discord_api, "general", 2)
    assert conversation(openai_api.completions[-1]) == [
        ("user", "hello"),
        ("assistant", "echo: hello"),
        ("user", "again"),
    ]


async def test_a_post_that_landed_before_the_503_is_not_doubled(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot()
    discord_api.fail_requests("POST", "create_message", status=503, take_effect=True)
    await discord_api.user_says("general", "alice", "hello")
    await discord_api.wait_for(lambda: len(discord_api.posts("general")) == 2)
    assert [m["content"] for m in discord_api.bot_messages("general")] == ["echo: hello"]


async def test_a_cloudflare_502_page_on_a_post_is_retried(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, caplog
) -> None:
    await start_bot()
    fault = discord_api.fail_with_cloudflare_502("POST", "create_message", channel="general")
    await discord_api.user_says("general", "alice", "hello")
    assert await final_messages(discord_api, "general", 1) == ["echo: hello"]
    assert len(fault.hits) == 1
    assert "<html" not in caplog.text


async def test_edits_refused_with_503_still_end_in_the_final_text(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot(**STREAMED)
    text = "Alpha beta gamma delta epsilon zeta eta theta iota kappa."
    openai_api.script(Reply(text, chunks=chunks(text), chunk_delay=0.15))
    # Every edit but the last few fails, however often it is tried.
    fault = discord_api.fail_requests("PATCH", "edit_message", status=503, times=6)
    await discord_api.user_says("general", "alice", "the alphabet, please")
    assert await final_messages(discord_api, "general", 1) == [text]
    assert fault.remaining == 0
    await discord_api.user_says("general", "alice", "thanks")
    await final_messages(discord_api, "general", 2)
    assert conversation(openai_api.completions[-1])[1] == ("assistant", text)


async def test_edits_rate_limited_past_discord_pys_patience_still_end_in_the_final_text(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    # discord.py waits out four 429s in a row and raises the fifth: the last edit is
    # tried again, so no answer is left cut short with its writing marker.
    await start_bot(**STREAMED)
    text = "Alpha beta gamma delta epsilon zeta eta theta iota kappa."
    openai_api.script(Reply(text, chunks=chunks(text), chunk_delay=0.05))
    fault = discord_api.rate_limit("PATCH", "edit_message", retry_after=0.1, times=6)
    await discord_api.user_says("general", "alice", "the alphabet, please")
    assert await final_messages(discord_api, "general", 1) == [text]
    assert fault.remaining == 0


async def test_when_discord_refuses_the_final_edit_memory_keeps_what_is_shown(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot(**STREAMED)
    text = "Alpha beta gamma delta."
    openai_api.script(Reply(text, chunks=["Alpha ", "beta gamma delta."], chunk_delay=0.5))
    await discord_api.user_says("general", "alice", "go")
    await discord_api.wait_for(lambda: discord_api.bot_messages("general"))
    # From now on every edit fails for good (a moderator took Send Messages silently).
    await discord_api.deny("general", "SEND_MESSAGES", tell_bot=False)
    await discord_api.wait_for(lambda: [e for e in discord_api.edits("general") if e.status])
    [shown] = await replies(discord_api, "general")
    assert [e.status for e in discord_api.edits("general")] == [403]
    await discord_api.restore("general")
    await discord_api.user_says("general", "alice", "what did you say?")
    await openai_api.wait_for_requests(2)
    # Discord refused the final edit: the channel shows the first words and the marker;
    # the bot remembers those words, not the marker, which is no part of an answer.
    assert shown["content"].endswith(MARKER)
    remembered = shown["content"].removesuffix(" " + MARKER)
    assert conversation(openai_api.completions[-1])[1] == ("assistant", remembered)


async def test_a_refused_reply_is_posted_plain_and_the_permission_logged_once(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, caplog
) -> None:
    caplog.set_level(logging.WARNING)
    await start_bot()
    # The bot's cache still says it may read history: Discord refuses the reply.
    await discord_api.deny("general", "READ_MESSAGE_HISTORY", tell_bot=False)
    await discord_api.user_says("general", "alice", "hello")
    assert await final_messages(discord_api, "general", 1) == ["echo: hello"]
    refused = [p for p in discord_api.posts("general") if p.status == 403]
    assert len(refused) == 1 and refused[0].json["message_reference"]
    assert discord_api.bot_messages("general")[0].get("message_reference") is None
    await discord_api.user_says("general", "bob", "and me")
    await final_messages(discord_api, "general", 2)
    assert len([p for p in discord_api.posts("general") if p.status == 403]) == 1
    assert caplog.text.count("lacks the Read Message History permission") == 1


async def test_a_known_missing_history_permission_posts_plain_at_once(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, caplog
) -> None:
    caplog.set_level(logging.WARNING)
    await start_bot()
    await discord_api.deny("random", "READ_MESSAGE_HISTORY")  # the bot is told
    await discord_api.user_says("random", "alice", "hello")
    assert await final_messages(discord_api, "random", 1) == ["echo: hello"]
    assert [p.status for p in discord_api.posts("random")] == [200]
    await until(lambda: "lacks the Read Message History permission" in caplog.text)


async def test_without_send_messages_the_bot_logs_it_once_and_keeps_running(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, caplog
) -> None:
    caplog.set_level(logging.WARNING)
    await start_bot()
    await discord_api.deny("random", "SEND_MESSAGES", tell_bot=False)
    for text in ("one", "two"):
        await discord_api.user_says("random", "alice", text)
    await openai_api.wait_for_requests(2)
    await discord_api.wait_for(lambda: len(discord_api.posts("random")) == 2)
    await until(lambda: "lacks the Send Messages permission" in caplog.text)
    assert caplog.text.count("lacks the Send Messages permission") == 1
    await discord_api.user_says("general", "alice", "here?")
    assert await final_messages(discord_api, "general", 1) == ["echo: here?"]


@pytest.mark.parametrize("where", ["announcements", "voice", "stage", "private_thread", "thread"])
async def test_every_kind_of_text_channel_is_answered(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, where: str
) -> None:
    await start_bot(REPLY_TO="mention")
    await discord_api.user_says(where, "carol", "hello there", mention_bot=True)
    [answer] = await final_messages(discord_api, where, 1)
    assert answer.endswith("hello there")
    await discord_api.user_says(where, "carol", "not for you")
    await discord_api.user_says(where, "carol", "and again", mention_bot=True)
    await final_messages(discord_api, where, 2)
    assert [c for _, c in conversation(openai_api.completions[-1])][-2] == "not for you"


async def test_mentions_of_the_bots_role_and_replies_to_it_address_the_bot(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot(REPLY_TO="mention")
    await discord_api.user_says("general", "alice", "hi all", mention_roles=["bot"])
    [answer] = await final_messages(discord_api, "general", 1)
    assert answer == "echo: @ChatBot hi all"
    await discord_api.user_says("general", "bob", "helpers?", mention_roles=["helpers"])
    await discord_api.user_says(
        "general", "bob", "noted", reply_to=discord_api.bot_messages("general")[0]["id"]
    )
    await final_messages(discord_api, "general", 2)
    # Two speakers now: each user turn says who spoke.
    assert [c for _, c in conversation(openai_api.completions[-1])] == [
        "Alice: @ChatBot hi all",
        "echo: @ChatBot hi all",
        "Zoe: @Helpers helpers?",
        "Zoe: noted",
    ]


async def test_a_burst_of_hundreds_reaches_the_model_in_order_within_the_budget(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot(MAX_CONTEXT_TOKENS="1000", MAX_REPLY_TOKENS="300")
    said = await discord_api.burst("general", 300)
    # Many speakers: each user turn says who spoke ("User_7: message 7 from user_7").
    labelled = [f"{speaker_name(m['author']['global_name'], 0)}: {m['content']}" for m in said]
    await openai_api.wait_for(lambda: answered(openai_api)[-1:] == labelled[-1:], timeout=60)
    # A message is sent as it was said while its author is the only speaker so far.
    index = {text: n for n, m in enumerate(said) for text in (m["content"], labelled[n])}
    seen: list[int] = []
    for request in openai_api.completions:
        assert prompt_tokens(request) <= 700
        new = [index[m["content"]] for m in request["messages"] if m["role"] == "user"]
        seen += [n for n in new if n not in seen]
    assert seen == list(range(len(said)))  # every message, in order
    # Batches fill the budget: a few hundred short messages take a few dozen calls.
    assert 5 <= len(openai_api.completions) <= 40


async def test_a_history_payload_discord_py_cannot_parse_starts_the_channel_empty(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, caplog
) -> None:
    caplog.set_level(logging.WARNING)
    await start_bot()
    discord_api.fail_requests(
        "GET", "list_messages", status=200, body='[{"id": "1"}]', content_type="application/json"
    )
    await discord_api.user_says("general", "alice", "hello")
    assert await final_messages(discord_api, "general", 1) == ["echo: hello"]
    assert conversation(openai_api.completions[-1]) == [("user", "hello")]
    assert "could not read its history, starting empty: KeyError" in caplog.text


async def test_a_command_registration_discord_py_cannot_parse_is_logged_and_the_bot_runs(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, caplog
) -> None:
    caplog.set_level(logging.WARNING)
    discord_api.fail_requests(
        "PUT",
        "overwrite_global_commands",
        status=200,
        body='{"not": "a list"}',
        content_type="application/json",
    )
    await start_bot()
    await until(lambda: "could not register the slash commands" in caplog.text)
    await discord_api.user_says("general", "alice", "still there?")
    assert await final_messages(discord_api, "general", 1) == ["echo: still there?"]


async def test_a_post_discord_leaves_hanging_lets_the_channel_move_on(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, caplog, monkeypatch
) -> None:
    caplog.set_level(logging.WARNING)
    monkeypatch.setattr(failures, "REQUEST_TIMEOUT", 1.0)
    await start_bot()
    discord_api.fail_requests("POST", "create_message", channel="random", hang=True)
    await discord_api.user_says("random", "alice", "post will hang")
    await discord_api.user_says("random", "alice", "second message")
    [answer] = await final_messages(discord_api, "random", 1)
    assert answer == "echo: second message"
    assert "Discord did not answer within 1 s" in caplog.text
    # The unseen first answer is not remembered: the channel never showed it.
    assert [c for _, c in conversation(openai_api.completions[-1])] == [
        "post will hang",
        "second message",
    ]


async def test_an_answer_deleted_while_it_streams_stops_and_is_not_remembered(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, caplog
) -> None:
    caplog.set_level(logging.INFO)
    await start_bot(STREAM_REPLIES="true")
    text = " ".join(f"word{n}" for n in range(60))
    chunks = [f"word{n} " for n in range(59)] + ["word59"]
    openai_api.script(Reply(text, chunks=chunks, chunk_delay=0.05))
    await discord_api.user_says("general", "alice", "talk for a while")
    [first] = await replies(discord_api, "general")
    await discord_api.user_deletes(first)
    await until(lambda: "deleted while it was written" in caplog.text, timeout=10)
    await openai_api.wait_for(lambda: openai_api.chat_requests[0].finished_at is not None)
    await discord_api.user_says("general", "alice", "still there?")
    await discord_api.wait_for(lambda: len(openai_api.completions) == 2)
    assert conversation(openai_api.completions[-1]) == [
        ("user", "talk for a while"),
        ("user", "still there?"),
    ]
    # Nothing more was posted or edited for the deleted answer after the refusal.
    assert caplog.text.count("refused to edit the answer") == 0
    assert await final_messages(discord_api, "general", 1) == ["echo: still there?"]


async def test_no_model_call_where_the_bot_may_not_post(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, caplog
) -> None:
    caplog.set_level(logging.WARNING)
    await start_bot()
    await discord_api.deny("random", "SEND_MESSAGES")
    for text in ("one", "two"):
        await discord_api.user_says("random", "bob", text)
    await discord_api.user_says("general", "bob", "here?")
    await final_messages(discord_api, "general", 1)
    # Nobody could have seen those answers: the model was not asked, nothing was spent.
    assert [c for _, c in conversation(openai_api.completions[-1])] == ["here?"]
    assert len(openai_api.completions) == 1
    assert caplog.text.count("needs Send Messages") == 1


async def test_a_burst_after_the_server_taught_a_smaller_window_still_reaches_the_model(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot()
    # The server refuses a long prompt: the bot learns a budget far below its own.
    openai_api.limit_context(600, style="llama_cpp")
    for n in range(3):
        await discord_api.user_says("random", "alice", f"long {n}: " + "lorem ipsum " * 60)
        await final_messages(discord_api, "random", n + 1)
    openai_api.limit_context(None)
    calls = len(openai_api.completions)
    said = await discord_api.burst("random", 60)
    labelled = [f"{speaker_name(m['author']['global_name'], 0)}: {m['content']}" for m in said]
    await openai_api.wait_for(lambda: answered(openai_api)[-1:] == labelled[-1:], timeout=60)
    # Batches are sized for the learnt budget, so none of the burst is trimmed away.
    index = {text: n for n, m in enumerate(said) for text in (m["content"], labelled[n])}
    seen: list[int] = []
    for request in openai_api.completions[calls:]:
        new = [index[m["content"]] for m in request["messages"] if m["content"] in index]
        seen += [n for n in new if n not in seen]
    assert seen == list(range(len(said)))
