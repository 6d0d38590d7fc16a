"""Summaries of dropped turns (MEMORY_STRATEGY=summarize).

When turns leave a channel's memory, they are condensed by the model, together with
the channel's previous summary, into a new running summary that the prompt carries.
This happens in a background task per channel, so it never delays an answer; a
summary that fails leaves those turns dropped, with a log line.

With a store, each new summary is saved (store.put_summary) with the id of the newest
Discord message it covers, so it survives a restart: the channel's memory is then
loaded with it, and read back from after that message (recall.py). Saving and deleting
happen in that same background, one at a time per channel and in order (a /reset's
deletion is never overtaken by a summary written before it); a database that fails is
logged and the summary stays in memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from conversation.prompts import SUMMARY_HEADING, PromptBuilder
from memory import ChannelMemory, Turn
from model.client import ChatModel
from store import Store, StoreError, Summary

log = logging.getLogger(__name__)

SUMMARY_SHARE = 0.25  # of the history budget, kept for the summary
CLOSE_SECONDS = 5.0  # how long shutdown waits for summaries still being saved

INSTRUCTIONS = (
    "You keep a running summary of a Discord conversation for an assistant that can no "
    "longer see its older messages. Merge the previous summary (if any) with the messages "
    "below into one new summary. Keep who said what (names), facts, numbers, decisions, "
    "preferences and open questions; drop small talk. Write plain sentences, at most "
    "{words} words. Reply with the summary only."
)


def summary_request(
    previous: str | None, dropped: Sequence[Turn], max_tokens: int
) -> list[dict[str, str]]:
    """The chat request that condenses `previous` and the `dropped` turns."""
    transcript = "\n".join(
        f"{turn.name or ('assistant' if turn.role == 'assistant' else 'user')}: {turn.content}"
        for turn in dropped
    )
    text = f"Previous summary:\n{previous}\n\n" if previous else ""
    text += f"Messages to add:\n{transcript}"
    words = max(20, int(max_tokens * 0.7))  # roughly 0.75 words per token, with slack
    return [
        {"role": "system", "content": INSTRUCTIONS.format(words=words)},
        {"role": "user", "content": text},
    ]


def newest_message_id(turns: Sequence[Turn], previous: int | None = None) -> int | None:
    """The newest (largest) Discord message id among `turns` and `previous`; None when
    there is none (snowflakes grow with time, so the largest is the newest)."""
    ids = [message_id for turn in turns for message_id in turn.message_ids]
    if previous is not None:
        ids.append(previous)
    return max(ids, default=None)


@dataclass(eq=False, slots=True)
class SummaryState:
    """One channel's summary work: the turns dropped and not summarised yet, the task
    summarising them, the newest message id its summary covers, and how often the
    summary was forgotten (a summary begun before a /reset must not be kept after it)."""

    channel_id: int
    waiting: list[Turn] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    covers: int | None = None
    resets: int = 0


class Summarizer:
    """Folds dropped turns into each channel's summary, one background task per channel
    (its `SummaryState`); with a `store`, saves each summary and deletes it on `forget`."""

    def __init__(
        self, model: ChatModel, prompts: PromptBuilder, store: Store | None = None
    ) -> None:
        self.model = model
        self.prompts = prompts
        self.store = store
        self.max_tokens = int(prompts.history_budget * SUMMARY_SHARE)
        self._tasks: set[asyncio.Task[None]] = set()  # every channel's, for `close`
        # Per channel id, the latest store write, which the next one waits for: writes
        # stay in order even when the channel's state is given up and built again.
        self._writes: dict[int, asyncio.Task[None]] = {}

    def add(self, state: SummaryState, memory: ChannelMemory, dropped: Sequence[Turn]) -> None:
        """Fold `dropped` into the summary of `memory`, soon."""
        if not dropped:
            return
        state.waiting.extend(dropped)
        if state.task is None:
            task = asyncio.create_task(self._summarize(state, memory))
            state.task = task
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            task.add_done_callback(lambda _: setattr(state, "task", None))

    def forget(self, state: SummaryState) -> None:
        """Drop the channel's turns not summarised yet and its stored summary (the
        channel was reset or deleted); a summary being written now is not kept."""
        state.waiting.clear()
        state.covers = None
        state.resets += 1
        if self.store is not None:
            self._write(state.channel_id, self._delete_stored(self.store, state.channel_id))

    def restored(self, state: SummaryState, memory: ChannelMemory, stored: Summary) -> None:
        """Put the channel's `stored` summary back into `memory` (its memory is being
        loaded); it covers messages up to `stored.last_message_id`."""
        memory.summary = self.prompts.summary(stored.text, self.max_tokens)
        state.covers = stored.last_message_id

    async def stored(self, channel_id: int) -> Summary | None:
        """The channel's stored summary, or None (also when the database fails: logged).
        Waits for the channel's store writes in progress, so it reads the latest."""
        if self.store is None:
            return None
        writing = self._writes.get(channel_id)
        if writing is not None:
            await asyncio.wait([writing])
        try:
            return await self.store.get_summary(channel_id)
        except StoreError as error:
            log.warning("channel %s: could not read its stored summary: %s", channel_id, error)
            return None

    async def close(self) -> None:
        """Stop the summaries in progress (the bot is shutting down); summaries and
        deletions already being saved get CLOSE_SECONDS to reach the store."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._writes:
            await asyncio.wait(list(self._writes.values()), timeout=CLOSE_SECONDS)

    def _write(self, channel_id: int, write: Coroutine[Any, Any, None]) -> None:
        """Run `write` after the channel's previous store write, in the background."""
        previous = self._writes.get(channel_id)

        async def in_turn() -> None:
            if previous is not None:
                await asyncio.wait([previous])
            await write

        task = asyncio.create_task(in_turn())
        self._writes[channel_id] = task
        task.add_done_callback(
            lambda done: (
                self._writes.pop(channel_id, None) if self._writes.get(channel_id) is done else None
            )
        )

    async def _delete_stored(self, store: Store, channel_id: int) -> None:
        try:
            await store.delete_summary(channel_id)
        except StoreError as error:
            log.warning("channel %s: could not delete its stored summary: %s", channel_id, error)

    async def _save(self, store: Store, channel_id: int, summary: Turn, covers: int) -> None:
        text = summary.content.removeprefix(SUMMARY_HEADING).strip()
        try:
            await store.put_summary(channel_id, text, tokens=summary.tokens, last_message_id=covers)
        except StoreError as error:
            log.warning(
                "channel %s: could not save its summary (kept in memory only): %s",
                channel_id,
                error,
            )

    async def _summarize(self, state: SummaryState, memory: ChannelMemory) -> None:
        channel_id = state.channel_id
        # Turns dropped while a summary is being written are folded in by the next round.
        while turns := state.waiting[:]:
            state.waiting.clear()
            resets = state.resets
            previous = None
            if memory.summary is not None:
                previous = memory.summary.content.removeprefix(SUMMARY_HEADING).strip()
            request = summary_request(previous, turns, self.max_tokens)
            try:
                answer = await self.model.complete(request)
            except Exception as error:
                log.warning(
                    "channel %s: could not summarise %d dropped turns, so they are forgotten: %r",
                    channel_id,
                    len(turns),
                    error,
                )
                continue
            if state.resets != resets:
                return  # the channel was reset (or deleted) meanwhile: keep nothing
            memory.summary = self.prompts.summary(answer.text, self.max_tokens)
            covers = newest_message_id(turns, state.covers)
            if covers is not None:
                state.covers = covers
                if self.store is not None:
                    self._write(
                        channel_id, self._save(self.store, channel_id, memory.summary, covers)
                    )
            log.info(
                "channel %s: summarised %d dropped turns (%d tokens)",
                channel_id,
                len(turns),
                memory.summary.tokens,
            )
