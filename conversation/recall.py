"""What a channel's conversation remembers: its `ChannelMemory` (memory.py), read back
from the channel's history on first use, counted with the channel's request builder,
with summaries of what no longer fits (MEMORY_STRATEGY=summarize): `Recall`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import discord

from config import Settings
from conversation.audience import Audience
from conversation.channel import Conversation
from conversation.channel_settings import Effective, Place
from conversation.prompts import PromptBuilder
from conversation.services import Services
from conversation.summaries import Summarizer, SummaryState
from discord_side.downloads import AttachmentReader
from discord_side.readback import read_back
from memory import ChannelMemory, Turn

if TYPE_CHECKING:
    from discord.abc import MessageableChannel

log = logging.getLogger("chatbot")


@dataclass(frozen=True, slots=True)
class MemoryFacts:
    """What the bot remembers in a channel, for /memory: `messages` remembered turns
    with `attachments` read into them and `images` still sent; the request they make
    (`prompt_tokens` of `budget`; `learnt`: that budget was learnt from the model's
    server); the summary's tokens (None: no summary) and whether `summarizing` is on;
    the channel's `model`, `streaming` and `reply_to` settings; how tokens are
    `counted` (ContextWindow.describe)."""

    messages: int
    attachments: int
    images: int
    prompt_tokens: int
    budget: int
    learnt: bool
    summary_tokens: int | None
    summarizing: bool
    model: str
    streaming: bool
    reply_to: str
    counted: str


class Recall:
    """Loads, counts and summarises each channel's memory. `client`'s user is known
    once logged in, before any message arrives."""

    def __init__(
        self,
        settings: Settings,
        services: Services,
        audience: Audience,
        client: discord.Client,
        files: AttachmentReader,
    ) -> None:
        self.services = services
        self.default = services.prompts.default
        self.audience = audience
        self.client = client
        self.files = files
        self.summarizer: Summarizer | None = None
        if settings.memory_strategy == "summarize":
            self.summarizer = Summarizer(services.model, self.default, services.store)

    @property
    def summary_tokens(self) -> int:
        """The most tokens a channel's summary takes in a request (0: no summaries)."""
        return self.summarizer.max_tokens if self.summarizer is not None else 0

    def budget(self, prompts: PromptBuilder) -> int:
        """Tokens a channel's turns may use with `prompts` (less the summary's share)."""
        return prompts.history_budget - self.summary_tokens

    def remember(self, conversation: Conversation, memory: ChannelMemory, turn: Turn) -> None:
        """Add `turn`; with summaries on, turns that no longer fit go to the summarizer."""
        self.summarise(conversation, memory, memory.remember(turn))

    def summarise(
        self, conversation: Conversation, memory: ChannelMemory, dropped: Sequence[Turn]
    ) -> None:
        """With summaries on, fold the turns `dropped` from `memory` into its summary."""
        if self.summarizer is not None:
            self.summarizer.add(conversation.summary, memory, dropped)

    def forget(self, summary: SummaryState) -> None:
        """With summaries on, drop the channel's summary, stored or in the making."""
        if self.summarizer is not None:
            self.summarizer.forget(summary)

    def reset(self, conversation: Conversation) -> None:
        """Give the channel a new, empty memory and no summary."""
        prompts = conversation.in_use[1] if conversation.in_use is not None else self.default
        conversation.memory = ChannelMemory(self.budget(prompts))
        self.forget(conversation.summary)

    async def close(self) -> None:
        """Stop the summaries in progress (Summarizer.close)."""
        if self.summarizer is not None:
            await self.summarizer.close()

    async def profile(
        self, channel: MessageableChannel, conversation: Conversation
    ) -> tuple[Effective, PromptBuilder]:
        """The channel's effective settings and the PromptBuilder for its model's
        encoding and persona. When either changed since the channel's memory was
        built, the memory is dropped and read back again, counted the new way."""
        effective = await self.services.channel_settings.effective(Place.of(channel))
        prompts = await self.services.prompts.get(effective.model, effective.persona, channel.id)
        previous = conversation.in_use
        if previous is not None and previous[1] is not prompts:
            conversation.memory = None
        conversation.in_use = (effective, prompts)
        return effective, prompts

    async def memory(
        self,
        channel: MessageableChannel,
        conversation: Conversation,
        before: discord.Message | None,
    ) -> ChannelMemory:
        """The channel's memory; the first time, rebuilt from its history before `before`,
        and with summaries on, from its stored summary: the history is then read back
        only after the newest message that summary covers.

        Call with the channel's turn lock held. A channel that cannot be read back, for
        whatever reason (Discord refuses, or sends what discord.py cannot parse), starts
        empty.
        """
        if conversation.memory is not None:
            return conversation.memory
        prompts = conversation.in_use[1] if conversation.in_use is not None else self.default
        budget = self.budget(prompts)
        memory = conversation.memory = ChannelMemory(budget)
        assert self.client.user is not None
        after = None
        if self.summarizer is not None and (stored := await self.summarizer.stored(channel.id)):
            self.summarizer.restored(conversation.summary, memory, stored)
            after = stored.last_message_id
            log.info("channel %s: restored its summary (%d tokens)", channel.id, stored.tokens)
        try:
            turns = await read_back(
                channel,
                before=before,
                after=after,
                bot_id=self.client.user.id,
                prompts=prompts,
                budget=budget,
                remembered=self.audience.history_filter(),
                # Pictures judged and costed by the channel's own model.
                files=self.files.viewing(conversation.in_use[0].model)
                if conversation.in_use is not None
                else self.files,
            )
        except Exception as error:  # a refusal, or a payload discord.py could not parse
            log.warning(
                "channel %s: could not read its history, starting empty: %r", channel.id, error
            )
            return memory
        memory.fill(turns)  # what does not fit is simply dropped, not summarised
        log.info("channel %s: read back %d turns from its history", channel.id, len(memory))
        return memory
