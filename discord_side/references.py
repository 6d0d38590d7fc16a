"""What a message points at: the message it replies to and the messages it forwards.

A reply carries its target in the payload's `referenced_message` (the bot keeps no
message cache, so discord.py sets `message.reference.resolved` from it); when Discord
left it out, the target is fetched (GET /channels/{id}/messages/{id}). A target that is
deleted (`referenced_message: null`) or that the bot may not read (403, 404) becomes
"[replying to a message I can't read]" for the model, never a failure.

A forward (`message_reference.type` 1, Discord's "Forwarding" in the message resource
docs) has empty content of its own; its text, embeds and files are in
`message_snapshots`, read here like a message's own.

The quotes themselves are text/quoting.py's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiohttp
import discord

from discord_side.failures import describe
from text.quoting import (
    UNREADABLE_REPLY,
    embed_text,
    forward_header,
    quote,
    reply_header,
    resolve_mentions,
    with_quotes,
)
from text.tokens import TokenCounter

log = logging.getLogger(__name__)

FETCH_TIMEOUT = 10.0  # seconds for fetching a replied-to message Discord did not include


@dataclass(frozen=True, slots=True)
class Pointed:
    """What one message points at, ready to go into its turn.

    `reply_id`: the replied-to message (None: not a reply); `reply_quote`: its quote,
    or UNREADABLE_REPLY. `forwards`: the quotes of the forwarded messages; `attachments`:
    their files, read like the message's own."""

    reply_id: int | None = None
    reply_quote: str | None = None
    forwards: tuple[str, ...] = ()
    attachments: tuple[discord.Attachment, ...] = ()

    def text(self, own_text: str, holds: Callable[[int], bool]) -> str:
        """The turn's text: the quotes, then `own_text`; the replied-to message is left
        out when `holds` says the conversation already has it."""
        quotes = list(self.forwards)
        if self.reply_quote is not None and not (
            self.reply_id is not None and holds(self.reply_id)
        ):
            quotes.insert(0, self.reply_quote)
        return with_quotes(quotes, own_text)


def is_forward(message: discord.Message) -> bool:
    """Whether `message` forwards another (its text is in its snapshots)."""
    reference = message.reference
    return reference is not None and reference.type is discord.MessageReferenceType.forward


def forwarded(message: discord.Message, *, counter: TokenCounter, max_tokens: int) -> Pointed:
    """The forwarded messages of `message` (nothing for other messages), each quote at
    most its share of `max_tokens`."""
    snapshots = message.message_snapshots if is_forward(message) else []
    if not snapshots:
        return Pointed()
    share = max_tokens // len(snapshots)
    quotes, files = [], []
    for snapshot in snapshots:
        text = _readable(_clean(snapshot.content, message), snapshot.embeds, ())
        quotes.append(quote(forward_header(), text, max_tokens=share, counter=counter))
        files += snapshot.attachments
    return Pointed(forwards=tuple(quotes), attachments=tuple(files))


def _clean(content: str, message: discord.Message) -> str:
    """A snapshot's `content` with its mentions as names, as `clean_content` shows a
    message's (discord.py leaves a snapshot's raw): the members, roles and channels of
    `message`'s server the bot knows; others as a neutral placeholder."""
    guild = message.guild

    def name_of(kind: str, id_: int) -> str | None:
        if guild is None:
            return None
        if kind == "@":
            member = guild.get_member(id_)
            return member.display_name if member is not None else None
        if kind == "@&":
            role = guild.get_role(id_)
            return role.name if role is not None else None
        channel = guild.get_channel_or_thread(id_)
        return channel.name if channel is not None else None

    return resolve_mentions(content, name_of)


def _target_text(target: discord.Message) -> str:
    """The replied-to message's text as its quote shows it: a forward's is its
    snapshots' (its own content is empty)."""
    if not (is_forward(target) and target.message_snapshots):
        return _readable(target.clean_content, target.embeds, target.attachments)
    return "\n\n".join(
        _readable(_clean(snapshot.content, target), snapshot.embeds, snapshot.attachments)
        for snapshot in target.message_snapshots
    )


async def pointed_at(
    message: discord.Message, *, counter: TokenCounter, max_tokens: int, fetch: bool = True
) -> Pointed:
    """What `message` replies to and forwards, quoted within `max_tokens` together.

    `fetch=False` uses only what the payload carried (read-back: an old message's
    target is read from the history when it is there). Never raises."""
    reference = message.reference
    if reference is None or reference.type is discord.MessageReferenceType.forward:
        return forwarded(message, counter=counter, max_tokens=max_tokens)
    if reference.message_id is None:
        return Pointed()  # a pin or crosspost notice points at a channel, not a message
    target = reference.resolved
    if target is None and fetch:
        target = await _fetch(message, reference)
    if not isinstance(target, discord.Message):
        if target is None and not fetch:
            return Pointed()
        return Pointed(reference.message_id, UNREADABLE_REPLY)
    author = target.author
    text = _target_text(target)
    header = reply_header(author.display_name, bot=author.bot)
    quoted = quote(header, text, max_tokens=max_tokens, counter=counter)
    return Pointed(reference.message_id, quoted)


def _readable(
    content: str, embeds: Sequence[discord.Embed], attachments: Sequence[discord.Attachment]
) -> str:
    """A message's text as a quote shows it: content, embeds, then its files' names."""
    names = "\n".join(f"[file: {attachment.filename}]" for attachment in attachments)
    parts = [content.strip(), embed_text([embed.to_dict() for embed in embeds]), names]
    return "\n\n".join(part for part in parts if part)


async def _fetch(
    message: discord.Message, reference: discord.MessageReference
) -> discord.Message | None:
    """The replied-to message from Discord; None if it cannot be had (logged)."""
    channel: object = message.channel
    if reference.channel_id != message.channel.id:
        guild = message.guild
        channel = guild.get_channel_or_thread(reference.channel_id) if guild else None
    if not isinstance(channel, discord.abc.Messageable) or reference.message_id is None:
        return None
    try:
        async with asyncio.timeout(FETCH_TIMEOUT):
            return await channel.fetch_message(reference.message_id)
    except (discord.HTTPException, aiohttp.ClientError, TimeoutError) as error:
        log.info(
            "channel %s: message %s replies to %s, which cannot be read: %s",
            message.channel.id,
            message.id,
            reference.message_id,
            describe(error),
        )
        return None
