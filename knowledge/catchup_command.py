"""/catchup: a private summary of what happened in this channel since the asker last
wrote there (or in the last `hours`), with links to the messages that matter.

It reads the channel's history through Discord (newest first, at most MAX_MESSAGES),
so it works whether the knowledge index is on or not, and it covers only this channel,
which the asker may read (permissions.may_catch_up checks View Channel and Read Message
History, theirs and the bot's, as Discord resolved them for the interaction). The reply
is ephemeral and deferred; the deferred message shows progress ("Reading… 300
messages", "Summarising part 2 of 4…") and then the summary (knowledge/catchup.py).
The requests go through the model client as every answer's do, on the channel's model,
and count in the asker's usage; the per-person limits apply as to a message.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import TYPE_CHECKING

import discord
from discord import app_commands

from conversation.channel_settings import Place
from conversation.notes import failure_sentence
from discord_side import permissions
from discord_side.failures import describe
from knowledge.catchup import (
    MAX_HOURS,
    MAX_MESSAGES,
    PROGRESS_EVERY,
    Progress,
    Span,
    heading,
    nothing_new,
    reading_progress,
    summarise,
)
from knowledge.indexing import INDEXED_TYPES, indexed
from model.failures import classify
from model.request import Caller
from text.splitting import split_for_discord

if TYPE_CHECKING:
    from bot import ChatBot

log = logging.getLogger("chatbot")

UNREADABLE = "I couldn't read this channel's history just now. Please try again."
# When the limits refuse and their notice was given already (it is given once a period).
LIMITED = "You've reached your limit for using the model for now; please try again later."


@app_commands.command(name="catchup")
@app_commands.describe(hours="Summarise the last N hours instead of since your last message")
@permissions.can_catch_up()
async def catchup(
    interaction: discord.Interaction[ChatBot],
    hours: app_commands.Range[int, 1, MAX_HOURS] | None = None,
) -> None:
    """A private summary of what you missed here, with links."""
    await interaction.response.defer(ephemeral=True, thinking=True)
    channel = interaction.channel
    assert isinstance(channel, discord.abc.Messageable)  # a server channel: may_catch_up
    name = f"#{getattr(channel, 'name', 'this channel')}"
    reply = _PrivateReply(interaction)
    try:
        span = await read_span(channel, interaction.user.id, hours, reply.show)
    except discord.HTTPException as error:
        log.warning("catchup in %s: could not read the history: %s", channel.id, describe(error))
        await reply.finish(UNREADABLE)
        return
    if not span.messages:
        await reply.finish(nothing_new(span, name))
        return
    refusal = await _limit_refusal(interaction)
    if refusal is not None:
        await reply.finish(refusal)
        return
    try:
        summary = await _summary(interaction, span, name, reply)
    except Exception as error:
        failure = classify(error)
        log.warning("catchup in %s: the model failed: %r (%s)", channel.id, error, failure.cause)
        await reply.finish(failure_sentence(error, failure))
        return
    log.info(
        "catchup in %s for %s: %d messages summarised",
        channel.id,
        interaction.user.id,
        len(span.messages),
    )
    await reply.finish(f"{heading(span, name)}\n{summary}")


async def read_span(
    channel: discord.abc.Messageable,
    asker_id: int,
    hours: int | None,
    show: Progress,
) -> Span:
    """The channel's messages since the asker's last one (or from `hours` ago), oldest
    first, at most MAX_MESSAGES read; `show` is told the count every PROGRESS_EVERY.
    Only chat messages with text count (indexing.py's reading of a message). Raises
    discord.HTTPException when Discord refuses the history."""
    now = discord.utils.utcnow()
    cutoff = now - dt.timedelta(hours=hours) if hours is not None else None
    found = []
    read = 0
    async for message in channel.history(limit=MAX_MESSAGES):
        read += 1
        if read % PROGRESS_EVERY == 0:
            await show(reading_progress(read))
        if cutoff is not None and message.created_at < cutoff:
            return Span(found[::-1], hours=hours)
        if cutoff is None and message.author.id == asker_id:
            return Span(found[::-1], since_own=message.created_at)
        item = indexed(message) if message.type in INDEXED_TYPES else None
        if item is not None:
            found.append(item)
    return Span(found[::-1], hours=hours, cut=read >= MAX_MESSAGES)


async def _limit_refusal(interaction: discord.Interaction[ChatBot]) -> str | None:
    """Why the asker may not use the model now (USER_RATE_LIMIT, USER_DAILY_TOKENS, as
    for a message; a /catchup counts as one), or None."""
    bot, user_id = interaction.client, interaction.user.id
    await bot.conversations.load_allowance(user_id)  # today's tokens, as stored
    allowed, notice = bot.audience.limits.check(user_id, time.monotonic(), discord.utils.utcnow())
    if allowed:
        return None
    return notice or LIMITED


async def _summary(
    interaction: discord.Interaction[ChatBot], span: Span, name: str, reply: _PrivateReply
) -> str:
    """The span summarised on the channel's model, each request counted as usage."""
    bot = interaction.client
    services, channel, user = bot.services, interaction.channel, interaction.user
    assert channel is not None
    effective = await services.channel_settings.effective(Place.of(channel))
    counter = await services.counters.for_model(effective.model)
    requests = 0

    async def complete(request: list[dict[str, str]]) -> str:
        nonlocal requests
        answer = await services.model.complete(
            request,
            model=effective.model,
            reasoning_effort=effective.reasoning_effort,
            caller=Caller(channel.id, user.id),
        )
        prompt = answer.prompt_tokens
        if prompt is None:
            prompt = sum(counter.count_message(m["role"], m["content"]) for m in request)
        completion = answer.completion_tokens
        if completion is None:
            completion = counter.count_text(answer.text)
        services.usage.record(
            user_id=user.id,
            guild_id=interaction.guild_id,
            channel_id=channel.id,
            model=effective.model,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cached_tokens=answer.cached_tokens or 0,
            answers=1 if requests == 0 else 0,  # one /catchup is one answer
        )
        requests += 1
        limits = bot.audience.limits
        if limits.daily_tokens:
            limits.record_usage(user.id, prompt + completion, discord.utils.utcnow())
        return answer.text

    return await summarise(
        span.messages,
        asker=getattr(user, "display_name", user.name),
        channel=name,
        budget=bot.settings.prompt_budget,
        count=counter.count_text,
        complete=complete,
        progress=reply.show,
    )


class _PrivateReply:
    """The command's deferred private message: progress edits, then the answer."""

    def __init__(self, interaction: discord.Interaction[ChatBot]) -> None:
        self.interaction = interaction

    async def show(self, text: str) -> None:
        """Put `text` in the deferred message; a refused edit is logged, not raised
        (progress is a courtesy)."""
        try:
            await self.interaction.edit_original_response(content=text)
        except discord.HTTPException as error:
            log.info("catchup: could not show progress: %s", describe(error))

    async def finish(self, text: str) -> None:
        """The answer: its first piece in the deferred message, the rest as private
        followups (a message holds 2,000 characters)."""
        first, *rest = split_for_discord(text)
        try:
            await self.interaction.edit_original_response(content=first)
            for piece in rest:
                await self.interaction.followup.send(piece, ephemeral=True)
        except discord.HTTPException as error:
            log.warning("catchup: could not post the summary: %s", describe(error))
