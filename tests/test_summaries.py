"""Running summaries of dropped turns: the request, and the Summarizer against the
OpenAI stand-in (a real HTTP server, through the real SDK)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from chat_model import ChatModel
from config import load_settings
from memory import SUMMARY_HEADING, ChannelMemory, PromptBuilder
from summaries import INSTRUCTIONS, Summarizer, summary_request
from tests.standins.openai_standin import Error, OpenAIStandIn, Reply
from tokenizer import TokenCounter


def turns(prompts: PromptBuilder, *said: tuple[str, str | None]) -> list:
    return [prompts.turn("user" if name else "assistant", text, name)[0] for text, name in said]


def test_the_request_carries_the_previous_summary_and_who_said_what(o200k: TokenCounter) -> None:
    prompts = PromptBuilder(o200k, "system", 1000)
    dropped = turns(prompts, ("My code is 4711.", "Alice"), ("Noted.", None))
    [system, user] = summary_request("Bob likes tea.", dropped, max_tokens=100)
    assert system == {"role": "system", "content": INSTRUCTIONS.format(words=70)}
    assert user["role"] == "user"
    assert user["content"] == (
        "Previous summary:\nBob likes tea.\n\nMessages to add:\n"
        "Alice: My code is 4711.\nassistant: Noted."
    )


def test_the_first_request_has_no_previous_summary(o200k: TokenCounter) -> None:
    prompts = PromptBuilder(o200k, "system", 1000)
    [_, user] = summary_request(None, turns(prompts, ("hi", "Zoe")), max_tokens=10)
    assert user["content"] == "Messages to add:\nZoe: hi"
    assert "at most 20 words" in summary_request(None, [], max_tokens=10)[0]["content"]


@pytest.fixture
async def model(openai_api: OpenAIStandIn) -> AsyncIterator[ChatModel]:
    settings = load_settings(
        {"DISCORD_BOT_TOKEN": "t", "OPENAI_BASE_URL": openai_api.base_url, "OPENAI_TIMEOUT": "5"}
    )
    chat_model = ChatModel(settings)
    yield chat_model
    await chat_model.close()


async def test_dropped_turns_are_folded_into_the_summary(
    model: ChatModel, openai_api: OpenAIStandIn, o200k: TokenCounter
) -> None:
    prompts = PromptBuilder(o200k, "system", 1000)
    summarizer = Summarizer(model, prompts)
    memory = ChannelMemory(500)
    openai_api.script(Reply("Alice's code is 4711."), Reply("Alice's code is 4711; Bob left."))

    summarizer.add(1, memory, turns(prompts, ("My code is 4711.", "Alice")))
    await summarizer.wait()
    assert memory.summary is not None
    assert memory.summary.content == f"{SUMMARY_HEADING}\nAlice's code is 4711."
    assert memory.summary.tokens <= summarizer.max_tokens

    summarizer.add(1, memory, turns(prompts, ("Bye!", "Bob")))
    await summarizer.wait()
    second = openai_api.completions[-1]["messages"][1]["content"]
    assert second.startswith("Previous summary:\nAlice's code is 4711.\n")
    assert memory.summary.content.endswith("Bob left.")


async def test_a_failed_summary_keeps_the_old_one_and_a_reset_forgets_waiting_turns(
    model: ChatModel, openai_api: OpenAIStandIn, o200k: TokenCounter
) -> None:
    prompts = PromptBuilder(o200k, "system", 1000)
    summarizer = Summarizer(model, prompts)
    memory = ChannelMemory(500)
    memory.summary = prompts.summary("Older facts.", summarizer.max_tokens)
    openai_api.script(Error.context_length_exceeded())
    summarizer.add(7, memory, turns(prompts, ("lost", "Carol")))
    await summarizer.wait()
    assert memory.summary.content == f"{SUMMARY_HEADING}\nOlder facts."

    summarizer.forget(7)  # nothing waiting: a no-op
    summarizer.add(7, memory, [])  # nothing dropped: no request
    await summarizer.wait()
    assert len(openai_api.completions) == 1


async def test_an_overlong_summary_is_cut_to_its_share(
    model: ChatModel, openai_api: OpenAIStandIn, o200k: TokenCounter
) -> None:
    prompts = PromptBuilder(o200k, "system", 400)
    summarizer = Summarizer(model, prompts)
    memory = ChannelMemory(300)
    openai_api.script(Reply("fact " * 500))
    summarizer.add(2, memory, turns(prompts, ("x", "Dan")))
    await summarizer.wait()
    assert memory.summary is not None
    assert memory.summary.tokens <= summarizer.max_tokens
    assert memory.summary.content.startswith(f"{SUMMARY_HEADING}\nfact fact")
