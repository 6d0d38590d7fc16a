"""Every model server shape of issue 21, end to end, streamed and whole: strict chat
templates (roles must alternate, no system role), every finish reason, the server's
window told apart from the reply cap, LiteLLM's empty stop past the window, a message
cut when the request is built, and the reply cap's field chosen by the server."""

from __future__ import annotations

import logging

import pytest

from conversation.notes import (
    CUT_BY_CAP_NOTE,
    ERROR_NOTE,
    UNUSUAL_NOTE,
    WINDOW_FULL_NOTE,
)
from conversation.prompts import SHORTENED_NOTE
from model.templates import INSTRUCTIONS_HEADING
from tests.e2e.test_files import image_parts, screenshot
from tests.helpers import conversation, final_messages, logged, replies, run_command
from tests.standins.discord import DiscordStandIn, FakeAttachment
from tests.standins.openai_standin import OpenAIStandIn, Reply

LOCAL_MODEL = "local-model"
STREAMS = pytest.mark.parametrize("stream", ["false", "true"])


# --- strict chat templates ----------------------------------------------------------


async def two_people_then_the_bot(discord_api: DiscordStandIn) -> None:
    """Alice speaks unaddressed, then Bob asks the bot (mention mode): two user turns in
    a row; the answer must come."""
    await discord_api.user_says("general", "alice", "the build failed again")
    await discord_api.user_says("general", "bob", "what now?", mention_bot=True)
    [answer] = await replies(discord_api, "general", 1)
    assert answer["content"].startswith("echo: ")


@STREAMS
@pytest.mark.parametrize("style", ["vllm", "llama_cpp", "deepseek", "perplexity"])
async def test_two_user_turns_in_a_row_are_merged_for_a_strict_template(
    start_bot,
    discord_api: DiscordStandIn,
    openai_api: OpenAIStandIn,
    caplog,
    stream: str,
    style,
) -> None:
    # Mistral's template on vLLM (400) or llama.cpp --jinja (500): roles must alternate.
    openai_api.strict_template(alternation=True, style=style)
    await start_bot(REPLY_TO="mention", STREAM_REPLIES=stream)
    await two_people_then_the_bot(discord_api)
    refused, accepted = openai_api.chat_requests
    assert refused.status in (400, 500) and accepted.status == 200
    [(role, content)] = conversation(accepted.json)
    assert role == "user"
    assert content.startswith("Alice: the build failed again\n\n")
    assert content.endswith(": @ChatBot what now?")  # the second speaker, labelled
    [warning] = logged(caplog, "chat template refused", logging.WARNING)
    assert "two turns of one role in a row" in warning
    # Learnt for the model: the next answer is asked once, already merged.
    await discord_api.user_says("general", "alice", "ok")
    await discord_api.user_says("general", "alice", "and?", mention_bot=True)
    await replies(discord_api, "general", 2)
    assert [r.status for r in openai_api.chat_requests] == [refused.status, 200, 200]
    assert len(logged(caplog, "chat template refused")) == 1


@STREAMS
@pytest.mark.parametrize("style", ["vllm", "llama_cpp", "openai"])
async def test_a_model_without_a_system_role_gets_its_instructions_in_the_first_message(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, caplog, stream: str, style
) -> None:
    # Gemma's template: "System role not supported".
    openai_api.strict_template(system_role=False, style=style)
    await start_bot(STREAM_REPLIES=stream, SYSTEM_PROMPT="Answer like a pirate.")
    await discord_api.user_says("general", "alice", "hello")
    [answer] = await final_messages(discord_api, "general", 1)
    assert answer.startswith("echo: ")
    accepted = openai_api.chat_requests[-1]
    assert [m["role"] for m in accepted.json["messages"]] == ["user"]
    first = accepted.json["messages"][0]["content"]
    # The instructions are nobody's words: the message has no name, its text says who spoke.
    assert first == f"{INSTRUCTIONS_HEADING}\nAnswer like a pirate.\n\nAlice: hello"
    assert "name" not in accepted.json["messages"][0]
    [warning] = logged(caplog, "chat template refused", logging.WARNING)
    assert "a system message" in warning and "first user message" in warning


@STREAMS
async def test_a_template_strict_in_both_ways(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, stream: str
) -> None:
    openai_api.strict_template(alternation=True, system_role=False)
    await start_bot(REPLY_TO="mention", STREAM_REPLIES=stream)
    await two_people_then_the_bot(discord_api)
    [message] = openai_api.completions[-1]["messages"]
    assert message["role"] == "user" and "name" not in message
    # The instructions come first, labelled as nobody's; each person's words are theirs.
    content = message["content"]
    assert content.startswith(f"{INSTRUCTIONS_HEADING}\n")
    assert "\n\nAlice: the build failed again\n\n" in content
    assert not any(content.startswith(f"{name}: ") for name in ("Alice", "Bob"))


# --- every finish reason ------------------------------------------------------------


@STREAMS
@pytest.mark.parametrize(
    ("finish_reason", "note"),
    [
        ("error", ERROR_NOTE),  # OpenRouter: the upstream failed mid-answer
        ("something_new", UNUSUAL_NOTE.format(" (something_new)")),
        ("end_turn", None),  # a gateway passing a normal stop through in its own word
        ("STOP", None),  # a server that shouts its reasons: still a normal stop
    ],
)
async def test_every_finish_reason_is_noted_and_remembered(
    start_bot,
    discord_api: DiscordStandIn,
    openai_api: OpenAIStandIn,
    stream: str,
    finish_reason: str,
    note: str | None,
) -> None:
    await start_bot(STREAM_REPLIES=stream)
    openai_api.script(Reply("The steps are: first, sec", finish_reason=finish_reason))
    await discord_api.user_says("general", "alice", "list the steps")
    [shown] = await final_messages(discord_api, "general", 1)
    expected = "The steps are: first, sec" + (f"\n{note}" if note else "")
    assert shown == expected
    await discord_api.user_says("general", "alice", "go on")
    await discord_api.wait_for(lambda: len(openai_api.completions) == 2)
    assert conversation(openai_api.completions[-1])[1] == ("assistant", shown)


# --- the window told apart from the reply cap ---------------------------------------


@STREAMS
async def test_the_reply_cap_is_named_when_it_cut_the_answer(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, stream: str
) -> None:
    openai_api.reply_cap_fields = ("max_tokens",)
    await start_bot(OPENAI_MODEL=LOCAL_MODEL, MAX_REPLY_TOKENS="8", STREAM_REPLIES=stream)
    openai_api.script(Reply("one two three four five six seven eight nine ten eleven"))
    await discord_api.user_says("general", "alice", "count")
    [shown] = await final_messages(discord_api, "general", 1)
    assert shown.endswith(f"\n{CUT_BY_CAP_NOTE}")


@STREAMS
async def test_an_answer_cut_by_the_servers_window_says_so_and_is_learnt(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, caplog, stream: str
) -> None:
    # llama.cpp with a window smaller than the bot was told: the prompt fits, the answer
    # stops at the window ("length") long before MAX_REPLY_TOKENS.
    await start_bot(OPENAI_MODEL=LOCAL_MODEL, MAX_REPLY_TOKENS="200", STREAM_REPLIES=stream)
    openai_api.script(Reply("It begins like this, and", finish_reason="length"))
    await discord_api.user_says("general", "alice", "tell me a story " + "please " * 300)
    [shown] = await final_messages(discord_api, "general", 1)
    assert shown == f"It begins like this, and\n{WINDOW_FULL_NOTE}"
    assert "MAX_REPLY_TOKENS" not in shown
    [warning] = logged(caplog, "window on its server is full", logging.WARNING)
    assert "the reply cap of 200" in warning
    first = openai_api.chat_requests[0]
    window = first.prompt_count + first.usage["completion_tokens"]
    # The next request leaves room for a whole answer in that window.
    await discord_api.user_says("general", "alice", "go on")
    await discord_api.wait_for(lambda: len(openai_api.completions) == 2)
    assert openai_api.chat_requests[1].prompt_count + 200 <= window
    assert "go on" in openai_api.completions[1]["messages"][-1]["content"]


# --- LiteLLM's empty stop past the window -------------------------------------------


@STREAMS
async def test_an_empty_stop_past_the_window_is_retried_with_less(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, caplog, stream: str
) -> None:
    # LiteLLM in front of llama-cpp-python: streamed, a prompt past the window comes
    # back as an empty stream ending with finish_reason "stop"; whole, as a 400.
    openai_api.limit_context(400, style="litellm")
    openai_api.empty_stop_past_window = True
    await start_bot(OPENAI_MODEL=LOCAL_MODEL, MAX_REPLY_TOKENS="100", STREAM_REPLIES=stream)
    await discord_api.user_says("general", "alice", "summarise: " + "line " * 350)
    [shown] = await final_messages(discord_api, "general", 1)
    assert shown.startswith("echo: summarise: line line")
    assert shown.endswith(f"\n{SHORTENED_NOTE}")  # cut to the budget the refusal taught
    statuses = [(r.status, bool(r.reply_text)) for r in openai_api.chat_requests]
    assert statuses[-1] == (200, True) and len(statuses) == 2
    assert logged(caplog, "found the prompt too long", logging.WARNING)
    await discord_api.user_says("general", "alice", "thanks")
    assert (await final_messages(discord_api, "general", 2))[-1] == "echo: thanks"


# --- a message cut when the request is built ----------------------------------------


@STREAMS
async def test_a_long_paste_cut_to_a_learnt_window_is_noted(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, stream: str
) -> None:
    # The message fits the configured budget on arrival, not the window learnt later.
    openai_api.limit_context(700, style="llama_cpp")
    await start_bot(
        OPENAI_MODEL=LOCAL_MODEL,
        MAX_CONTEXT_TOKENS="4096",
        MAX_REPLY_TOKENS="100",
        STREAM_REPLIES=stream,
    )
    await discord_api.user_says("general", "alice", "read this: " + "log line 42 " * 400)
    [shown] = await final_messages(discord_api, "general", 1)
    assert shown.endswith(f"\n{SHORTENED_NOTE}")
    assert openai_api.chat_requests[-1].status == 200


# --- the reply cap's field, chosen by the server ------------------------------------


@STREAMS
async def test_a_local_server_with_an_openai_model_name_gets_max_tokens(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, stream: str
) -> None:
    # llama-server --alias gpt-4o-mini: it ignores max_completion_tokens.
    openai_api.reply_cap_fields = ("max_tokens",)
    await start_bot(OPENAI_MODEL="gpt-4o-mini", MAX_REPLY_TOKENS="8", STREAM_REPLIES=stream)
    openai_api.script(Reply("one two three four five six seven eight nine ten eleven"))
    await discord_api.user_says("general", "alice", "count")
    [shown] = await final_messages(discord_api, "general", 1)
    [request] = openai_api.completions
    assert request["max_tokens"] == 8 and "max_completion_tokens" not in request
    assert shown.endswith(f"\n{CUT_BY_CAP_NOTE}")


# --- pictures follow the channel's own model ----------------------------------------


@STREAMS
async def test_pictures_follow_the_channels_model_not_openai_model(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, stream: str
) -> None:
    # OPENAI_MODEL is a text model; one channel's /settings model is a vision model.
    openai_api.models = [LOCAL_MODEL, "gpt-4o"]
    await start_bot(OPENAI_MODEL=LOCAL_MODEL, VISION="auto", STREAM_REPLIES=stream)
    await run_command(discord_api, "general", "owner", "settings model", name="gpt-4o")
    shot = FakeAttachment("screenshot.png", screenshot(), width=1280, height=800)
    await discord_api.user_says("general", "alice", "What does it say?", attachments=[shot])
    await replies(discord_api, "general", 2)  # the settings line, then the answer
    [request] = openai_api.completions
    assert request["model"] == "gpt-4o"
    [part] = image_parts(request["messages"][-1])
    assert part["image_url"]["url"].startswith("data:image/")
    # The channel without its own model keeps OPENAI_MODEL's rule: no pictures.
    other = FakeAttachment("screenshot.png", screenshot(), width=1280, height=800)
    await discord_api.user_says("random", "alice", "And this?", attachments=[other])
    await replies(discord_api, "random", 1)
    assert openai_api.completions[-1]["model"] == LOCAL_MODEL
    assert not image_parts(openai_api.completions[-1]["messages"][-1])
