"""What the bot keeps for one channel's conversation: `Conversation`.

A channel here is any place messages are exchanged (a text channel, a thread, a DM);
its state is held in one object, so giving the channel up is one removal.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

import discord

from conversation.summaries import SummaryState
from discord_side.pacing import ChannelPacer
from discord_side.permissions import PermissionNotes
from memory import ChannelMemory

if TYPE_CHECKING:
    from discord.abc import MessageableChannel

    from conversation.channel_settings import Effective
    from conversation.incoming import Prepared
    from conversation.prompts import PromptBuilder


@dataclass(frozen=True, slots=True)
class PendingTurn:
    """A message waiting for its channel's turn; `answer`: whether to answer it;
    `channel`: the conversation it joins (its own channel, or a thread started from it);
    `ready`: what its references and files add, fetched as it arrived (incoming.py)."""

    message: discord.Message
    text: str
    answer: bool
    channel: MessageableChannel
    ready: asyncio.Future[Prepared] | None = None


class Conversation:
    """Everything the bot keeps for the channel `id`.

    `memory`: its turns, None until read back from the channel's history on first use.
    `waiting`: messages not yet taken into the conversation, oldest first (a list: an
    empty deque is ~0.6 KB, and most channels are idle). `turns`: held while a turn is
    taken, so turns are taken one at a time, in order. `arrivals`: held while a message
    is judged, so messages are judged in arrival order. `pacer`: paces the edits of its
    answers. `in_use`: the effective settings and PromptBuilder of its latest turn (its
    memory was counted with that builder). `summary`: its running summary's work.
    `permission_notes`: what the bot was found unable to do there, each logged once.
    """

    __slots__ = (
        "arrivals",
        "id",
        "in_use",
        "memory",
        "pacer",
        "permission_notes",
        "summary",
        "turns",
        "waiting",
    )

    def __init__(self, channel_id: int, pacer: ChannelPacer) -> None:
        self.id = channel_id
        self.memory: ChannelMemory | None = None
        self.waiting: list[PendingTurn] = []
        self.turns = asyncio.Lock()
        self.arrivals = asyncio.Lock()
        self.pacer = pacer
        self.in_use: tuple[Effective, PromptBuilder] | None = None
        self.summary = SummaryState(channel_id)
        self.permission_notes = PermissionNotes(channel_id)

    @property
    def busy(self) -> bool:
        """Whether a turn is in progress or waiting, a message is being judged, or its
        summary is being written: a busy conversation is never given up (a /reset must
        reach the summary being written, which is then not kept)."""
        return (
            bool(self.waiting)
            or self.turns.locked()
            or self.arrivals.locked()
            or self.summary.task is not None
        )
