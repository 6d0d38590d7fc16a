"""Which Discord messages the knowledge index keeps, and their text as people read it.

A message counts when it is in a server (DMs are never indexed), is chat (a default
message or a reply: not a join, pin or other system message), and was written by a
person, or by this bot as an answer (not silent: the bot's notices and settings
announcements are posted silently). Other bots and webhooks are left out.

Its text is what people read: mentions as names (`clean_content`), a forward's quoted
text, a forum post's title in front of its starter message, and the names of its
attachments appended, so a search for "roadmap.pdf" finds the message that carried it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import discord

from discord_side.references import _clean as snapshot_text
from discord_side.references import is_forward
from discord_side.threads import opening_text
from store.knowledge import IndexedMessage

INDEXED_TYPES = (discord.MessageType.default, discord.MessageType.reply)
ATTACHED = "Attached:"  # the line that lists a message's attachment names


class Author(Protocol):
    id: int
    bot: bool


def is_kept(
    *,
    in_server: bool,
    is_chat: bool,
    author: Author,
    webhook: bool,
    silent: bool,
    me_id: int,
) -> bool:
    """The rule above, on plain facts: whether the index keeps such a message."""
    if not in_server or not is_chat or webhook:
        return False
    if author.bot:
        return author.id == me_id and not silent
    return True


def readable_text(content: str, forwarded: Sequence[str], attachment_names: Sequence[str]) -> str:
    """A message's indexed text: its own words, then each forwarded message's, then a
    line naming its attachments; "" when there is nothing to read (a sticker alone)."""
    parts = [part.strip() for part in (content, *forwarded)]
    names = [name for name in attachment_names if name]
    if names:
        parts.append(f"{ATTACHED} {', '.join(names)}")
    return "\n".join(part for part in parts if part)


def counts(message: discord.Message, me_id: int) -> bool:
    """Whether the index keeps `message` (see the module's rule); `me_id` is the bot's."""
    return is_kept(
        in_server=message.guild is not None,
        is_chat=message.type in INDEXED_TYPES,
        author=message.author,
        webhook=message.webhook_id is not None,
        silent=message.flags.suppress_notifications,
        me_id=me_id,
    )


def text_of(message: discord.Message) -> str:
    """`message`'s text as people read it (`readable_text` of its parts)."""
    snapshots = message.message_snapshots if is_forward(message) else []
    forwarded = [snapshot_text(snapshot.content, message) for snapshot in snapshots]
    names = [a.filename for a in message.attachments]
    names += [a.filename for snapshot in snapshots for a in snapshot.attachments]
    return readable_text(opening_text(message, message.clean_content), forwarded, names)


def indexed(message: discord.Message, text: str | None = None) -> IndexedMessage | None:
    """`message` as the index keeps it (`text`: its text if not `text_of`'s, such as an
    answer's final text), or None when it has no text or is not in a server. Whether it
    counts at all is `counts`' decision, made first."""
    guild = message.guild
    text = text_of(message) if text is None else text.strip()
    if guild is None or not text:
        return None
    return IndexedMessage(
        message_id=message.id,
        guild_id=guild.id,
        channel_id=message.channel.id,
        parent_id=getattr(message.channel, "parent_id", None),
        author_id=message.author.id,
        author_name=message.author.display_name,
        created_at=message.created_at,
        text=text,
    )
