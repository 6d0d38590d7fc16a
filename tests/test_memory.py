"""Channel history within the budget: oldest dropped, newest kept, deleted and edited
turns found by their messages."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from conversation.prompts import PromptBuilder
from memory import ChannelMemory, Turn, speaker_name
from text.tokens import TokenCounter


@pytest.mark.parametrize(
    ("display", "expected"),
    [
        ("Alice", "Alice"),
        ("Zoë 🌟", "Zoe"),
        ("the.real deal!", "the_real_deal"),
        ("🌟🌟", "user_42"),
        ("x" * 100, "x" * 64),
        ("漢字", "user_42"),
    ],
)
def test_speaker_names_are_valid_openai_names(display: str, expected: str) -> None:
    assert speaker_name(display, 42) == expected


def numbered(builder: PromptBuilder, n: int, text: str | None = None) -> Turn:
    turn, _ = builder.turn("user", text or f"message {n}", "Ana")
    return dataclasses.replace(turn, message_ids=(n,))


def test_forget_drops_the_turns_of_deleted_messages(o200k: TokenCounter) -> None:
    builder = PromptBuilder(o200k, "You are terse.", prompt_budget=1000)
    memory = ChannelMemory(builder.history_budget)
    for n in range(4):
        memory.remember(numbered(builder, n))
    answer, _ = builder.turn("assistant", "part one\npart two")
    memory.remember(dataclasses.replace(answer, message_ids=(10, 11)))
    forgotten = memory.forget({1, 11, 99})
    assert [t.message_ids for t in forgotten] == [(1,), (10, 11)]  # a whole answer goes
    assert [t.content for t in memory] == ["message 0", "message 2", "message 3"]
    assert memory.tokens == sum(t.tokens for t in memory)


def test_replace_recounts_an_edited_turn_and_keeps_the_budget(o200k: TokenCounter) -> None:
    builder = PromptBuilder(o200k, "You are terse.", prompt_budget=300)
    # One turn at a time: the recount, not the step (tests/test_memory_steps.py), is tested.
    memory = ChannelMemory(builder.history_budget, low_mark=1.0)
    for n in range(5):
        memory.remember(numbered(builder, n))
    assert memory.replace(42, numbered(builder, 42)) is None
    longer = numbered(builder, 3, "message 3, edited to be much longer " + "word " * 250)
    dropped = memory.replace(3, longer)
    assert dropped  # the older turns made room
    assert longer in list(memory)
    assert memory.tokens == sum(t.tokens for t in memory) <= memory.budget
    assert [t.message_ids[0] for t in memory] == sorted(t.message_ids[0] for t in memory)


@given(
    sizes=st.lists(st.integers(1, 60), min_size=1, max_size=30),
    deleted=st.sets(st.integers(0, 30)),
    edits=st.lists(st.tuples(st.integers(0, 30), st.integers(1, 120)), max_size=5),
)
@settings(max_examples=60, deadline=None)
# Found by hypothesis: the oldest turn edited to be longer must make room as any would.
@example(sizes=[1] * 8 + [14, 60], deleted=set(), edits=[(1, 120), (0, 120)])
def test_forget_and_replace_keep_the_count_and_the_order(
    o200k: TokenCounter, sizes: list[int], deleted: set[int], edits: list[tuple[int, int]]
) -> None:
    builder = PromptBuilder(o200k, "You are terse.", prompt_budget=400)
    memory = ChannelMemory(builder.history_budget)
    for n, size in enumerate(sizes):
        memory.remember(numbered(builder, n, "w " * size))
    for n, size in edits:
        memory.replace(n, numbered(builder, n, "e " * size))
    memory.forget(deleted)
    ids = [t.message_ids[0] for t in memory]
    assert ids == sorted(ids) and not set(ids) & deleted
    assert memory.tokens == sum(t.tokens for t in memory) <= memory.budget
