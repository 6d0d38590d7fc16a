"""Running summaries of dropped turns: the request, and the Summarizer against the
OpenAI stand-in (a real HTTP server, through the real SDK) and a real SQLite store."""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from config import load_settings
from conversation.prompts import SUMMARY_HEADING, PromptBuilder
from conversation.summaries import (
    INSTRUCTIONS,
    Summarizer,
    SummaryState,
    newest_message_id,
    summary_request,
)
from memory import ChannelMemory, Turn
from model.client import ChatModel
from store import Store
from tests.helpers import until
from tests.standins.openai_standin import Error, OpenAIStandIn, Reply, Stall
from text.tokens import TokenCounter


def turns(prompts: PromptBuilder, *said: tuple[str, str | None]) -> list:
    return [prompts.turn("user" if name else "assistant", text, name)[0] for text, name in said]


async def summarised(state: SummaryState) -> None:
    """Wait until the channel's dropped turns are summarised (or given up)."""
    await until(lambda: state.task is None)


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
    state = SummaryState(1)
    openai_api.script(Reply("Alice's code is 4711."), Reply("Alice's code is 4711; Bob left."))

    summarizer.add(state, memory, turns(prompts, ("My code is 4711.", "Alice")))
    await summarised(state)
    assert memory.summary is not None
    assert memory.summary.content == f"{SUMMARY_HEADING}\nAlice's code is 4711."
    assert memory.summary.tokens <= summarizer.max_tokens

    summarizer.add(state, memory, turns(prompts, ("Bye!", "Bob")))
    await summarised(state)
    second = openai_api.completions[-1]["messages"][1]["content"]
    assert second.startswith("Previous summary:\nAlice's code is 4711.\n")
    assert memory.summary.content.endswith("Bob left.")


async def test_a_failed_summary_keeps_the_old_one_and_a_reset_forgets_waiting_turns(
    model: ChatModel, openai_api: OpenAIStandIn, o200k: TokenCounter
) -> None:
    prompts = PromptBuilder(o200k, "system", 1000)
    summarizer = Summarizer(model, prompts)
    memory = ChannelMemory(500)
    state = SummaryState(7)
    memory.summary = prompts.summary("Older facts.", summarizer.max_tokens)
    openai_api.script(Error.context_length_exceeded())
    summarizer.add(state, memory, turns(prompts, ("lost", "Carol")))
    await summarised(state)
    assert memory.summary.content == f"{SUMMARY_HEADING}\nOlder facts."

    summarizer.forget(state)  # nothing waiting: a no-op
    summarizer.add(state, memory, [])  # nothing dropped: no request
    await summarised(state)
    assert len(openai_api.completions) == 1


async def test_an_overlong_summary_is_cut_to_its_share(
    model: ChatModel, openai_api: OpenAIStandIn, o200k: TokenCounter
) -> None:
    prompts = PromptBuilder(o200k, "system", 400)
    summarizer = Summarizer(model, prompts)
    memory = ChannelMemory(300)
    state = SummaryState(2)
    openai_api.script(Reply("fact " * 500))
    summarizer.add(state, memory, turns(prompts, ("x", "Dan")))
    await summarised(state)
    assert memory.summary is not None
    assert memory.summary.tokens <= summarizer.max_tokens
    assert memory.summary.content.startswith(f"{SUMMARY_HEADING}\nfact fact")


# --- Stored summaries (a real SQLite store) -------------------------------------------


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(str(tmp_path / "bot.db"))
    yield opened
    await opened.close()


def with_ids(turns: list[Turn], *message_ids: tuple[int, ...]) -> list[Turn]:
    return [dataclasses.replace(t, message_ids=i) for t, i in zip(turns, message_ids, strict=True)]


def test_the_newest_message_id_covers_every_turn_and_the_previous_summary(
    o200k: TokenCounter,
) -> None:
    prompts = PromptBuilder(o200k, "system", 1000)
    said = with_ids(turns(prompts, ("a", "Al"), ("b", None)), (5,), (9, 7))
    assert newest_message_id(said) == 9
    assert newest_message_id(said, previous=12) == 12
    assert newest_message_id(turns(prompts, ("no ids", "Al"))) is None


async def test_each_summary_is_stored_with_the_newest_message_it_covers(
    model: ChatModel, openai_api: OpenAIStandIn, o200k: TokenCounter, store: Store
) -> None:
    prompts = PromptBuilder(o200k, "system", 1000)
    summarizer = Summarizer(model, prompts, store)
    memory = ChannelMemory(500)
    state = SummaryState(3)
    openai_api.script(Reply("Code 4711."), Reply("Code 4711; Bob left."))
    summarizer.add(state, memory, with_ids(turns(prompts, ("My code is 4711.", "Alice")), (40,)))
    await summarised(state)
    stored = await summarizer.stored(3)
    assert stored is not None
    assert (stored.text, stored.last_message_id) == ("Code 4711.", 40)
    assert stored.tokens == memory.summary.tokens

    summarizer.add(
        state, memory, with_ids(turns(prompts, ("Bye!", "Bob"), ("Bye", None)), (50,), ())
    )
    await summarised(state)
    stored = await summarizer.stored(3)
    assert stored is not None
    assert (stored.text, stored.last_message_id) == ("Code 4711; Bob left.", 50)

    # Restored into a new memory (a restart), it carries on from what it covers.
    restarted = Summarizer(model, prompts, store)
    fresh = ChannelMemory(500)
    state = SummaryState(3)  # the channel's state, built again
    loaded = await restarted.stored(3)
    assert loaded is not None
    restarted.restored(state, fresh, loaded)
    assert fresh.summary == memory.summary
    openai_api.script(Reply("Code 4711; Bob left; Carol came."))
    restarted.add(
        state, fresh, with_ids(turns(prompts, ("Hi", "Carol")), (45,))
    )  # edited, older id
    await summarised(state)
    assert openai_api.completions[-1]["messages"][1]["content"].startswith(
        "Previous summary:\nCode 4711; Bob left.\n"
    )
    stored = await restarted.stored(3)
    assert stored is not None and stored.last_message_id == 50

    restarted.forget(state)
    await summarised(state)
    assert await restarted.stored(3) is None  # after the deletion
    assert await store.get_summary(3) is None


async def test_a_summary_written_while_the_channel_is_reset_is_not_kept(
    model: ChatModel, openai_api: OpenAIStandIn, o200k: TokenCounter, store: Store
) -> None:
    prompts = PromptBuilder(o200k, "system", 1000)
    summarizer = Summarizer(model, prompts, store)
    memory = ChannelMemory(500)
    state = SummaryState(4)
    openai_api.script(Stall(0.5, after="Too late."))
    summarizer.add(state, memory, with_ids(turns(prompts, ("secret", "Alice")), (60,)))
    await openai_api.wait_for_requests(1)
    summarizer.forget(state)  # /reset while the model writes the summary
    await summarised(state)
    assert memory.summary is None
    assert await summarizer.stored(4) is None


async def test_a_failing_database_keeps_the_summary_in_memory_and_logs(
    model: ChatModel,
    openai_api: OpenAIStandIn,
    o200k: TokenCounter,
    store: Store,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Behind the store's back, with SQLite's own module: store.where is the file.
    with contextlib.closing(sqlite3.connect(store.where)) as conn:
        conn.execute("DROP TABLE summaries")
    prompts = PromptBuilder(o200k, "system", 1000)
    summarizer = Summarizer(model, prompts, store)
    memory = ChannelMemory(500)
    state = SummaryState(5)
    openai_api.script(Reply("Kept in memory."))
    summarizer.add(state, memory, with_ids(turns(prompts, ("fact", "Alice")), (70,)))
    await summarised(state)
    assert memory.summary is not None and memory.summary.content.endswith("Kept in memory.")
    assert await summarizer.stored(5) is None  # unreadable: start without, logged
    assert "channel 5: could not save its summary (kept in memory only)" in caplog.text
    assert "channel 5: could not read its stored summary" in caplog.text
    summarizer.forget(state)
    await summarised(state)
    await summarizer.stored(5)  # after the deletion
    assert "channel 5: could not delete its stored summary" in caplog.text


async def test_a_step_is_summarised_as_one_piece_of_work(
    model: ChatModel, openai_api: OpenAIStandIn, o200k: TokenCounter
) -> None:
    prompts = PromptBuilder(o200k, "system", 1000)
    summarizer = Summarizer(model, prompts)
    memory = ChannelMemory(prompts.history_budget - summarizer.max_tokens)
    state = SummaryState(1)
    summaries = 0
    for n in range(60):
        turn = prompts.turn("user", f"fact {n}: " + "word " * 20, "Ana")[0]
        dropped = memory.remember(dataclasses.replace(turn, message_ids=(n,)))
        prompts.prompt(memory)  # each one answered
        summarizer.add(state, memory, dropped)
        if dropped:
            summaries += 1
            assert len(dropped) > 1  # a step, not one turn
            await summarised(state)
    assert summaries >= 2
    # One summary request per step, each folding every turn the step dropped.
    requests = [r["messages"][1]["content"] for r in openai_api.completions]
    assert len(requests) == summaries
    folded = [text.count("fact ") for text in requests]
    assert all(count > 1 for count in folded)
