"""One Conversation per channel, and giving idle channels up: one removal frees all of
a channel's state; a busy channel is never given up. Tested directly, with the real
services on a SQLite store (and the OpenAI stand-in where a summary is written)."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import discord
import pytest

from config import load_settings
from conversation.audience import Audience
from conversation.channel import Conversation, PendingTurn
from conversation.conversations import Conversations
from conversation.services import Services
from discord_side.pacing import ChannelPacer
from tests.standins.openai_standin import OpenAIStandIn, Reply
from text.tokens import TokenCounter


def test_a_new_conversation_is_idle_and_holds_everything_kept_per_channel() -> None:
    pacer = ChannelPacer()
    conversation = Conversation(7, pacer)
    assert (conversation.id, conversation.pacer) == (7, pacer)
    assert conversation.memory is None and conversation.in_use is None
    assert conversation.waiting == [] and conversation.summary.channel_id == 7
    assert conversation.permission_notes.channel_id == 7
    assert not conversation.busy


async def test_a_conversation_is_busy_while_a_message_waits_or_a_lock_is_held() -> None:
    conversation = Conversation(7, ChannelPacer())
    message = SimpleNamespace(id=1)
    conversation.waiting.append(PendingTurn(message, "hi", True, None))  # type: ignore[arg-type]
    assert conversation.busy
    conversation.waiting.clear()
    async with conversation.turns:
        assert conversation.busy
    async with conversation.arrivals:
        assert conversation.busy
    conversation.summary.task = asyncio.create_task(asyncio.sleep(0))  # a summary written
    assert conversation.busy
    await conversation.summary.task
    conversation.summary.task = None  # as the summarizer does when the task ends
    assert not conversation.busy


async def open_conversations(
    tmp_path: Path, o200k: TokenCounter, base_url: str
) -> tuple[Conversations, Services]:
    settings = load_settings(
        {
            "DISCORD_BOT_TOKEN": "t",
            "OPENAI_BASE_URL": base_url,
            "DATABASE_URL": str(tmp_path / "bot.db"),
            "MAX_CACHED_CHANNELS": "2",
            "MEMORY_STRATEGY": "summarize",
        }
    )

    async def tokenizer() -> TokenCounter:
        return o200k

    services = await Services.open(settings, tokenizer())
    client = discord.Client(intents=discord.Intents.none())
    return Conversations(settings, services, Audience(settings), client), services


@pytest.fixture
async def conversations(tmp_path: Path, o200k: TokenCounter) -> AsyncIterator[Conversations]:
    # No model request is made through these conversations.
    conversations, services = await open_conversations(tmp_path, o200k, "http://127.0.0.1:9/v1")
    yield conversations
    await conversations.close()  # the summaries' store writes land first
    await services.close()


async def test_giving_a_channel_up_is_one_removal_that_frees_all_its_state(
    conversations: Conversations,
) -> None:
    conversations.reset(1)  # channel 1 now has a conversation with a memory
    gone = conversations.channels[1]
    assert gone.memory is not None
    kept = [weakref.ref(gone.memory), weakref.ref(gone.pacer), weakref.ref(gone.turns)]
    kept.append(weakref.ref(gone.arrivals))
    del gone
    conversations.reset(2)
    conversations.reset(3)  # beyond MAX_CACHED_CHANNELS=2: channel 1 is given up
    assert set(conversations.channels) == {2, 3}
    gc.collect()
    assert [ref() for ref in kept] == [None] * len(kept)


async def test_a_busy_channel_is_never_given_up(conversations: Conversations) -> None:
    conversations.reset(1)
    busy = conversations.channels[1]
    async with busy.turns:  # a turn in progress
        for channel_id in range(2, 10):
            conversations.reset(channel_id)
        assert conversations.channels[1] is busy
        assert set(conversations.channels) == {1, 9}  # busy counts as just used
    async with busy.arrivals:  # a message being judged
        conversations.reset(10)
        assert conversations.channels[1] is busy
    conversations.reset(11)  # idle now: it goes
    assert 1 not in conversations.channels
    assert len(conversations.channels) == 2


async def test_a_channel_given_up_starts_afresh(conversations: Conversations) -> None:
    conversations.reset(1)
    first = conversations.channels[1]
    conversations.reset(2)
    conversations.reset(3)
    conversations.reset(1)  # used again: a new conversation, read back when needed
    assert conversations.channels[1] is not first
    # Forgotten by its /reset only: giving a channel up is not forgetting it.
    assert first.summary.resets == 1


async def test_a_channel_given_up_or_deleted_is_warned_about_again(
    conversations: Conversations, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    for forget in ("given up", "deleted", None):
        notes = conversations.permission_notes(1)
        assert not notes.lacks("Send Messages")
        assert notes.missing("Send Messages", "it cannot answer there")
        assert notes.refusing("locked", "the thread is locked: reading, not answering")
        assert conversations.permission_notes(1) is notes  # the channel's, across answers
        if forget == "given up":
            conversations.reset(2)
            conversations.reset(3)  # beyond MAX_CACHED_CHANNELS=2
        elif forget == "deleted":
            conversations.forget_channel(1)
    assert caplog.text.count("channel 1: the bot lacks the Send Messages permission there") == 3
    assert caplog.text.count("channel 1: the thread is locked") == 3


async def test_a_channel_given_up_keeps_its_stored_summary(conversations: Conversations) -> None:
    store = conversations.services.store
    await store.put_summary(1, "Ann asked about the deploy.", tokens=8, last_message_id=42)
    conversations.permission_notes(1)  # channel 1 is used, as each message uses it
    conversations.reset(2)
    conversations.reset(3)  # beyond MAX_CACHED_CHANNELS=2: channel 1 is given up
    assert 1 not in conversations.channels
    await conversations.close()  # every store write has landed
    stored = await store.get_summary(1)
    assert stored is not None and stored.last_message_id == 42


@pytest.mark.parametrize("forgotten_by", ["/reset", "deleting the thread"])
async def test_a_summary_begun_before_a_reset_is_never_stored_after_it(
    tmp_path: Path, o200k: TokenCounter, openai_api: OpenAIStandIn, forgotten_by: str
) -> None:
    # The model takes a while to write the summary: meanwhile the channel is idle
    # beyond MAX_CACHED_CHANNELS=2, and then someone resets (or deletes) it.
    openai_api.script(Reply("Ann asked about the deploy.", delay=0.5))
    conversations, services = await open_conversations(tmp_path, o200k, openai_api.base_url)
    conversations.reset(1)
    conversation = conversations.channels[1]
    assert conversation.memory is not None
    turn = conversations.prompts.turn("user", "When is the deploy?", "Ann")[0]
    dropped = dataclasses.replace(turn, message_ids=(42,))
    conversations.recall.summarise(conversation, conversation.memory, [dropped])
    summarizing = conversation.summary.task
    assert summarizing is not None
    await openai_api.wait_for_requests(1)  # the summary is being written
    conversations.reset(2)
    conversations.reset(3)
    if forgotten_by == "/reset":
        conversations.reset(1)
    else:
        conversations.forget_channel(1)
    await asyncio.wait([summarizing])
    await conversations.close()  # every store write has landed
    try:
        assert await services.store.get_summary(1) is None
    finally:
        await services.close()
