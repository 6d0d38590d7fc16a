"""Summaries of dropped turns (MEMORY_STRATEGY=summarize).

When turns leave a channel's memory, they are condensed by the model, together with
the channel's previous summary, into a new running summary that the prompt carries.
This happens in a background task per channel, so it never delays an answer; a
summary that fails leaves those turns dropped, with a log line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from chat_model import ChatModel
from memory import SUMMARY_HEADING, ChannelMemory, PromptBuilder, Turn

log = logging.getLogger(__name__)

SUMMARY_SHARE = 0.25  # of the history budget, kept for the summary

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


class Summarizer:
    """Folds dropped turns into each channel's summary, one background task per channel."""

    def __init__(self, model: ChatModel, prompts: PromptBuilder) -> None:
        self.model = model
        self.prompts = prompts
        self.max_tokens = int(prompts.history_budget * SUMMARY_SHARE)
        self._waiting: dict[int, list[Turn]] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}

    def add(self, channel_id: int, memory: ChannelMemory, dropped: Sequence[Turn]) -> None:
        """Fold `dropped` into the summary of `memory`, soon."""
        if not dropped:
            return
        self._waiting.setdefault(channel_id, []).extend(dropped)
        if channel_id not in self._tasks:
            task = asyncio.create_task(self._summarize(channel_id, memory))
            self._tasks[channel_id] = task
            task.add_done_callback(lambda _: self._tasks.pop(channel_id, None))

    def forget(self, channel_id: int) -> None:
        """Drop the turns of `channel_id` not summarised yet (the channel was reset)."""
        self._waiting.pop(channel_id, None)

    async def wait(self) -> None:
        """Wait until every summary in progress is done."""
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def close(self) -> None:
        """Stop the summaries in progress (the bot is shutting down)."""
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def _summarize(self, channel_id: int, memory: ChannelMemory) -> None:
        # Turns dropped while a summary is being written are folded in by the next round.
        while turns := self._waiting.pop(channel_id, []):
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
            memory.summary = self.prompts.summary(answer.text, self.max_tokens)
            log.info(
                "channel %s: summarised %d dropped turns (%d tokens)",
                channel_id,
                len(turns),
                memory.summary.tokens,
            )
