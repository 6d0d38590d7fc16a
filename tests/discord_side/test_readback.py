"""Read-back from a list of messages: answers joined, notices skipped, the reset
boundary, the budget, message ids kept.

`read_back` only iterates `channel.history(...)` and reads plain message attributes,
so small stand-in objects carry exactly those; the end-to-end tests read back real
history from the Discord stand-in through discord.py.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import discord

from conversation.prompts import PromptBuilder
from discord_side.readback import MAX_MESSAGES_READ, RESET_MESSAGE, read_back
from text.tokens import TokenCounter

BOT = 1
ALICE = 2
ids = itertools.count(100)


@dataclass
class Message:
    author_id: int
    content: str
    reply: bool = False  # carries a message reference (the first part of an answer)
    silent: bool = False  # a notice
    id: int = field(default_factory=lambda: next(ids))

    @property
    def author(self) -> Any:
        name = "ChatBot" if self.author_id == BOT else "Alice"
        return SimpleNamespace(id=self.author_id, display_name=name)

    @property
    def clean_content(self) -> str:
        return self.content

    @property
    def flags(self) -> Any:
        return discord.MessageFlags(suppress_notifications=self.silent)

    @property
    def channel(self) -> Any:
        return SimpleNamespace(id=10)  # a plain text channel

    @property
    def reference(self) -> Any:
        return SimpleNamespace(message_id=1, resolved=None) if self.reply else None


@dataclass
class Channel:
    """Messages oldest first; `history` yields them newest first, as Discord does."""

    messages: list[Message]
    reads: list[int] = field(default_factory=list)

    async def history(self, *, limit: int, before: Any) -> AsyncIterator[Message]:
        self.reads.append(limit)
        for message in reversed(self.messages[-limit:]):
            yield message


async def everyone(message: Any) -> bool:
    return True


async def turns_of(
    channel: Channel, counter: TokenCounter, budget: int = 2000, remembered=everyone
):
    prompts = PromptBuilder(counter, "You are terse.", prompt_budget=4000)
    return await read_back(
        channel, before=None, bot_id=BOT, prompts=prompts, budget=budget, remembered=remembered
    )


def said(turns) -> list[tuple[str, str]]:
    return [(t.role, t.content) for t in turns]


async def test_the_parts_of_an_answer_become_one_turn_with_all_their_ids(o200k) -> None:
    question = Message(ALICE, "tell me a long story")
    parts = [Message(BOT, "Once", reply=True), Message(BOT, "upon"), Message(BOT, "a time")]
    turns = await turns_of(Channel([question, *parts]), o200k)
    assert said(turns) == [("user", "tell me a long story"), ("assistant", "Once\nupon\na time")]
    assert [t.message_ids for t in turns] == [(question.id,), tuple(p.id for p in parts)]


async def test_notices_are_skipped(o200k) -> None:
    channel = Channel(
        [
            Message(ALICE, "hi"),
            Message(BOT, "The model is busy right now.", reply=True, silent=True),
            Message(ALICE, "hello?"),
            Message(BOT, "Hello!", reply=True),
        ]
    )
    assert said(await turns_of(channel, o200k)) == [
        ("user", "hi"),
        ("user", "hello?"),
        ("assistant", "Hello!"),
    ]


async def test_answers_posted_plain_end_at_the_question_before_them(o200k) -> None:
    # Where Discord refused the reply (no Read Message History), answers have no reference.
    channel = Channel(
        [
            Message(ALICE, "one"),
            Message(BOT, "first answer"),
            Message(ALICE, "two"),
            Message(BOT, "second answer, part 1"),
            Message(BOT, "part 2"),
        ]
    )
    assert said(await turns_of(channel, o200k)) == [
        ("user", "one"),
        ("assistant", "first answer"),
        ("user", "two"),
        ("assistant", "second answer, part 1\npart 2"),
    ]


async def test_read_back_stops_at_the_reset_message(o200k) -> None:
    channel = Channel(
        [
            Message(ALICE, "my password is hunter2"),
            Message(BOT, "Noted.", reply=True),
            Message(BOT, RESET_MESSAGE),
            Message(ALICE, "what do you know?"),
        ]
    )
    assert said(await turns_of(channel, o200k)) == [("user", "what do you know?")]


async def test_a_reset_by_someone_else_is_no_boundary(o200k) -> None:
    channel = Channel([Message(ALICE, "before"), Message(ALICE, RESET_MESSAGE)])
    assert [c for _, c in said(await turns_of(channel, o200k))] == ["before", RESET_MESSAGE]


async def test_read_back_stops_once_the_budget_is_full(o200k) -> None:
    messages = [Message(ALICE, f"message {n}: " + "filler " * 40) for n in range(30)]
    channel = Channel(messages)
    turns = await turns_of(channel, o200k, budget=300)
    assert 300 <= sum(t.tokens for t in turns) < 300 + turns[0].tokens
    assert turns[-1].content.startswith("message 29:")
    assert [t.message_ids[0] for t in turns] == [m.id for m in messages[-len(turns) :]]


async def test_a_plain_answer_at_the_reset_boundary_is_kept(o200k) -> None:
    channel = Channel([Message(BOT, RESET_MESSAGE), Message(BOT, "Hi, how can I help?")])
    assert said(await turns_of(channel, o200k)) == [("assistant", "Hi, how can I help?")]


async def test_rejected_messages_are_left_out(o200k) -> None:
    async def not_bob(message: Any) -> bool:
        return message.content != "from bob"

    channel = Channel([Message(ALICE, "from bob"), Message(ALICE, "from alice")])
    assert said(await turns_of(channel, o200k, remembered=not_bob)) == [("user", "from alice")]


async def test_no_more_than_max_messages_read_are_asked_for(o200k) -> None:
    channel = Channel([Message(ALICE, "x") for _ in range(MAX_MESSAGES_READ + 50)])
    turns = await turns_of(channel, o200k, budget=10**6)
    assert channel.reads == [MAX_MESSAGES_READ]
    assert len(turns) == MAX_MESSAGES_READ


async def test_read_back_stops_after_the_message_a_summary_covers(o200k) -> None:
    covered = [Message(ALICE, "old question"), Message(BOT, "old answer", reply=True)]
    newer = [Message(ALICE, "new question"), Message(BOT, "new answer", reply=True)]
    channel = Channel([*covered, *newer])
    prompts = PromptBuilder(o200k, "You are terse.", prompt_budget=4000)
    turns = await read_back(
        channel,
        before=None,
        after=covered[-1].id,
        bot_id=BOT,
        prompts=prompts,
        budget=2000,
        remembered=everyone,
    )
    assert said(turns) == [("user", "new question"), ("assistant", "new answer")]
