"""The real bot against a real llama.cpp server (llama-cpp-python, tiny random model).

What a new user meets when OPENAI_BASE_URL points at llama.cpp: answers posted streamed
and whole, the reply cap honoured, a long conversation past the 2048-token window still
answered, two speakers told apart, a server killed mid-stream, a stalled stream, and
tools offered to a chat format that takes none (ignored, or refused by the template).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Iterator, Sequence
from typing import Any

import openai
import pytest

from config import DEFAULT_SYSTEM_PROMPT
from conversation.notes import CUT_BY_CAP_NOTE
from tests.helpers import MARKER, final_messages, replies, until
from tests.llama_server import (
    CHATML_TEMPLATE,
    LlamaServer,
    skip_without_llama,
    tiny_server,
)
from tests.standins.discord import DiscordStandIn
from tools.base import Tool, ToolResult

skip_without_llama()

SILENT = 1 << 12  # SUPPRESS_NOTIFICATIONS: the bot's notices, never its answers
ANSWERED = re.compile(r"answered channel=\d+ prompt_tokens=(\d+) completion_tokens=(\d+)")


def llama_settings(server: LlamaServer, **overrides: str) -> dict[str, str]:
    return {
        "OPENAI_BASE_URL": server.base_url,
        "OPENAI_MODEL": server.model,
        "OPENAI_TIMEOUT": "30",
        **overrides,
    }


def is_answer(message: dict) -> bool:
    """A real answer: posted as a reply, not a silent notice, no note of failure."""
    return (
        not message.get("flags", 0) & SILENT
        and bool(message["content"].strip())
        and "⚠️" not in message["content"]
    )


@pytest.fixture(scope="module")
def endless_llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """A second llama.cpp server whose model never ends its answers by itself (an
    end-of-turn bias of -30), so a stream runs until its cap: time to kill or stall it."""
    directory = tmp_path_factory.mktemp("endless-llama")
    with tiny_server(directory, "endless.gguf", eos_bias=-30.0) as server:
        yield server


# A template that refuses tools while rendering, as model authors' templates refuse a
# system role: llama-cpp-python's Jinja formatter raises, and its server answers 500.
TOOLLESS_TEMPLATE = (
    "{% if tools %}{{ raise_exception('This model does not support tools.') }}{% endif %}"
    + CHATML_TEMPLATE
)


class Clock:
    """A toolbox of one read-only tool, offered to every answer."""

    def __init__(self) -> None:
        self.offered = 0
        self.calls: list[str] = []

    def tools(self) -> Sequence[Tool]:
        self.offered += 1
        schema = {"type": "object", "properties": {"zone": {"type": "string"}}}
        return [Tool("time__now", "time: now", "The time now in a zone", schema, False)]

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        self.calls.append(name)
        return ToolResult("12:00")


@pytest.fixture(scope="module")
def toolless_llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """A llama.cpp server whose model's chat template refuses `tools` (TOOLLESS_TEMPLATE)."""
    directory = tmp_path_factory.mktemp("toolless-llama")
    with tiny_server(directory, "toolless.gguf", chat_template=TOOLLESS_TEMPLATE) as server:
        yield server


@pytest.mark.parametrize("stream", ["false", "true"])
async def test_an_answer_is_posted(
    start_bot, discord_api: DiscordStandIn, llama_server: LlamaServer, stream: str
) -> None:
    await start_bot(**llama_settings(llama_server, STREAM_REPLIES=stream))
    said = await discord_api.user_says("general", "alice", "hello there")
    [answer] = await final_messages(discord_api, "general", 1)
    [message] = discord_api.bot_messages("general")
    assert is_answer(message), answer
    assert message["message_reference"]["message_id"] == said["id"]


async def test_the_reply_cap_is_honoured(
    start_bot, discord_api: DiscordStandIn, llama_server: LlamaServer, caplog
) -> None:
    caplog.set_level("INFO")
    await start_bot(**llama_settings(llama_server, MAX_REPLY_TOKENS="4"))
    # The tiny model's answers run 1 to 75 tokens (median about 10) by themselves.
    for n in range(5):
        await discord_api.user_says("general", "alice", f"question {n}")
        await replies(discord_api, "general", n + 1)
    await until(lambda: len(ANSWERED.findall(caplog.text)) == 5)
    counts = [int(completion) for _, completion in ANSWERED.findall(caplog.text)]
    assert all(count <= 4 for count in counts), counts
    for message, count in zip(discord_api.bot_messages("general"), counts, strict=True):
        if message["content"].endswith(CUT_BY_CAP_NOTE):
            assert count == 4


@pytest.mark.parametrize("stream", ["false", "true"])
async def test_twenty_turns_past_the_window_keep_being_answered(
    start_bot, discord_api: DiscordStandIn, llama_server: LlamaServer, caplog, stream: str
) -> None:
    # The owner believes the window is 4096; the server's is 2048, and its tokenizer
    # counts several times what the bot's tiktoken estimate does.
    await start_bot(
        **llama_settings(
            llama_server, MAX_CONTEXT_TOKENS="4096", MAX_REPLY_TOKENS="64", STREAM_REPLIES=stream
        )
    )
    text = "Tell me more about the history of tea and the places where it grows best. " * 2
    turns = 20
    for n in range(turns):
        await discord_api.user_says("general", "alice", f"{n}: {text}")
        await final_messages(discord_api, "general", n + 1)
    messages = discord_api.bot_messages("general")
    assert len(messages) == turns
    assert all(not m.get("flags", 0) & SILENT for m in messages)  # no failure notices
    assert "found the prompt too long" in caplog.text  # the window was passed, and learnt


async def test_two_speakers_are_told_apart_in_what_the_model_receives(
    start_bot, discord_api: DiscordStandIn, llama_server: LlamaServer, caplog
) -> None:
    caplog.set_level("INFO")
    await start_bot(**llama_settings(llama_server, MAX_REPLY_TOKENS="8"))
    await discord_api.user_says("general", "alice", "I like tea.")
    [first] = await replies(discord_api, "general")
    await discord_api.user_says("general", "bob", "I like coffee.")
    await replies(discord_api, "general", 2)
    await until(lambda: len(ANSWERED.findall(caplog.text)) == 2)
    received = int(ANSWERED.findall(caplog.text)[-1][0])  # the server's own count

    # The same conversation sent straight to the server, with and without the speakers
    # in the text: the bot's request is counted as the one with them. (The server's
    # chat template drops `name`, so without them the model could not tell.)
    async def counted(alice: str, bob: str) -> int:
        async with openai.AsyncOpenAI(base_url=llama_server.base_url, api_key="x") as client:
            answer = await client.chat.completions.create(
                model=llama_server.model,
                max_tokens=1,
                messages=[
                    {"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
                    {"role": "user", "content": alice},
                    {"role": "assistant", "content": first["content"]},
                    {"role": "user", "content": bob},
                ],
            )
        assert answer.usage is not None
        return answer.usage.prompt_tokens

    labelled = await counted("Alice: I like tea.", "Zoe: I like coffee.")
    unlabelled = await counted("I like tea.", "I like coffee.")
    assert received == labelled != unlabelled


async def test_a_server_killed_mid_stream(
    start_bot, discord_api: DiscordStandIn, endless_llama: LlamaServer
) -> None:
    await start_bot(**llama_settings(endless_llama, MAX_REPLY_TOKENS="1500", STREAM_REPLIES="true"))
    await discord_api.user_says("general", "alice", "go on and on")
    await discord_api.wait_for(lambda: discord_api.posts("general"), timeout=30)
    try:
        await asyncio.to_thread(endless_llama.kill)
        [shown] = await final_messages(discord_api, "general", 1)
        assert shown.endswith(
            "-# ⚠️ The answer was cut off: I couldn't reach the model service. "
            "Please try again in a little while."
        )
        assert not shown.startswith("-#")  # the text that arrived stays visible
    finally:
        # Not in a worker thread: the server is told to die with the thread that
        # started it (PR_SET_PDEATHSIG), and asyncio's worker threads end when idle.
        endless_llama.restart()
    await discord_api.user_says("general", "alice", "and now?")
    await final_messages(discord_api, "general", 2)  # the whole answer, up to its cap
    answer = discord_api.bot_messages("general")[-1]
    assert not answer.get("flags", 0) & SILENT  # answered again after the restart


async def test_a_stalled_stream_ends_within_the_deadline(
    start_bot, discord_api: DiscordStandIn, endless_llama: LlamaServer, caplog
) -> None:
    deadline = 3.0
    await start_bot(
        **llama_settings(
            endless_llama,
            MAX_REPLY_TOKENS="1500",
            STREAM_REPLIES="true",
            OPENAI_TIMEOUT=str(deadline),
        )
    )
    await discord_api.user_says("general", "alice", "go on and on")
    await discord_api.wait_for(lambda: discord_api.posts("general"), timeout=30)
    endless_llama.pause()  # the connection stays open; nothing more comes
    paused = time.monotonic()
    try:
        [shown] = await final_messages(discord_api, "general", 1)
        waited = time.monotonic() - paused
    finally:
        endless_llama.resume()
    assert shown.endswith(
        f"-# ⚠️ The answer was cut off: the model stopped writing for {deadline:g} seconds."
    )
    assert not shown.endswith(MARKER)
    assert waited < deadline + 2.5
    assert f"the answer stopped for {deadline:g} s (OPENAI_TIMEOUT)" in caplog.text


@pytest.mark.parametrize("stream", ["false", "true"])
async def test_tools_offered_to_a_chat_format_that_ignores_them(
    start_bot, discord_api: DiscordStandIn, llama_server: LlamaServer, stream: str
) -> None:
    # llama-cpp-python's ChatML format takes `tools` and `tool_choice: "auto"` and
    # renders the prompt without them: the model just answers.
    bot = await start_bot(**llama_settings(llama_server, STREAM_REPLIES=stream))
    bot.tool_use.toolbox = clock = Clock()
    for n in range(2):
        await discord_api.user_says("general", "alice", f"what time is it? {n}")
        await final_messages(discord_api, "general", n + 1)
    assert all(is_answer(m) for m in discord_api.bot_messages("general"))
    assert clock.offered >= 2 and clock.calls == []
    # Nothing was refused: both requests carried the tools.
    assert bot.conversations.answers.model.takes_tools(llama_server.model)


@pytest.mark.parametrize("stream", ["false", "true"])
async def test_tools_refused_by_the_chat_template_are_learnt_once(
    start_bot, discord_api: DiscordStandIn, toolless_llama: LlamaServer, stream: str, caplog
) -> None:
    caplog.set_level(logging.WARNING)
    bot = await start_bot(**llama_settings(toolless_llama, STREAM_REPLIES=stream))
    bot.tool_use.toolbox = Clock()
    for n in range(2):
        await discord_api.user_says("general", "alice", f"what time is it? {n}")
        await final_messages(discord_api, "general", n + 1)
    messages = discord_api.bot_messages("general")
    assert len(messages) == 2 and all(is_answer(m) for m in messages)
    assert not bot.conversations.answers.model.takes_tools(toolless_llama.model)
    learnt = [r for r in caplog.records if "offering the model no tools" in r.getMessage()]
    assert len(learnt) == 1
    if stream == "false":  # the template's words; streamed, the server sends nothing
        assert "does not support tools" in learnt[0].getMessage()
    # Learnt at once: the 500 was not retried as a transient failure.
    assert "retrying" not in caplog.text
    assert toolless_llama.log_tail(200).count("does not support tools") >= 1
