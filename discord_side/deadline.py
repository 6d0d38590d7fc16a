"""Answering a slash command within Discord's deadline.

Discord forgets an interaction whose first response has not arrived within 3 seconds
(10062 Unknown interaction; the user reads "The application did not respond";
interactions/receiving-and-responding). `in_time` runs a command's slow work (the
store, the model server) and defers privately if it outlasts RESPOND_WITHIN; `respond`
then sends the answer as the first response or as a followup. Autocomplete cannot
defer: `within` gives up waiting in time and lets the work finish into its cache.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import discord

if TYPE_CHECKING:
    from bot import ChatBot

log = logging.getLogger(__name__)
T = TypeVar("T")

# Seconds of slow work a command allows itself before it defers: Discord's deadline for
# the first response is 3 s, and the deferral itself is one more round trip.
RESPOND_WITHIN = 1.5
_ARRIVED = "arrived"  # the key in `Interaction.extras`: when the command arrived (monotonic)
# Work `within` stopped waiting for, kept until it ends (so it is not collected).
_UNFINISHED: set[asyncio.Future[object]] = set()


def arrived(interaction: discord.Interaction[ChatBot]) -> None:
    """Note when `interaction` arrived (call first): `in_time` counts from then."""
    interaction.extras[_ARRIVED] = time.monotonic()


@dataclass(frozen=True, slots=True)
class Answer:
    """A command's answer: private, or `public` (silent, pinging no one: a change the
    channel should see)."""

    text: str
    public: bool = False


async def in_time(interaction: discord.Interaction[ChatBot], work: Awaitable[T]) -> T:
    """`work`'s result; if it is not done RESPOND_WITHIN seconds after the command
    arrived, the command is deferred privately ("thinking...") first, so Discord's
    3-second deadline is kept. Answer through `respond` afterwards."""
    task = asyncio.ensure_future(work)
    started = interaction.extras.get(_ARRIVED, time.monotonic())
    left = max(0.0, RESPOND_WITHIN - (time.monotonic() - started))
    done, _ = await asyncio.wait({task}, timeout=left)
    if not done and not interaction.response.is_done():
        await interaction.response.defer(ephemeral=True, thinking=True)
    return await task


async def respond(interaction: discord.Interaction[ChatBot], answer: Answer) -> None:
    """Send `answer` as the first response, or after a deferral as a followup. A
    deferral's first followup fills in its private "thinking" message, so a public
    answer then says "Done." there and follows publicly."""
    public = {"silent": True, "allowed_mentions": discord.AllowedMentions.none()}
    if not interaction.response.is_done():
        if answer.public:
            await interaction.response.send_message(answer.text, **public)
        else:
            await interaction.response.send_message(answer.text, ephemeral=True)
        return
    if not answer.public:
        await interaction.followup.send(answer.text, ephemeral=True)
        return
    await interaction.followup.send("Done.", ephemeral=True)
    await interaction.followup.send(answer.text, **public)


async def within(work: Awaitable[T], what: str) -> T | None:
    """`work`'s result if it is done within RESPOND_WITHIN seconds, else None: it runs on
    (a read that fills a cache helps the next call) and a failure is logged. For
    autocomplete, which must answer within 3 s and cannot defer."""
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=RESPOND_WITHIN)
    if done:
        return task.result()
    log.info("autocomplete: %s is slow; no suggestions this time", what)
    _UNFINISHED.add(task)
    task.add_done_callback(_finished_late)
    return None


def _finished_late(task: asyncio.Future[object]) -> None:
    _UNFINISHED.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.warning("autocomplete: %r after its answer was due", task.exception())
