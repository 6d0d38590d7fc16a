"""Conversations in threads: thread mode, forum posts and the thread lifecycle.

In a channel whose reply mode (its /settings reply-to, else REPLY_TO) is `thread`, a new
top-level message is answered in a public thread started from it (the thread has the
message's id, as Discord gives it), named after the question; in `mention-thread` mode
only the messages addressed to the bot are, and in the threads it started every message
is answered (audience.py). The mode is the one the message was judged by
(audience.Verdict.reply_to), so whom to answer and where are decided alike. The
thread is a channel of its own, so it has its own conversation and memory, which
starts with that message; the parent channel does not remember it. A forum post is a
thread too: its title and starter message (which has the thread's id) are its first
turn.

Discord's rules this module follows (developer docs, topics/threads and
resources/channel#start-thread-from-message): a thread's name has 1-100 characters; a
person's message unarchives an archived thread. What starting and posting in one needs
is checked in permissions.py.
"""

from __future__ import annotations

import logging

import discord
import regex

from config import THREAD_MODES
from discord_side.permissions import PermissionNotes, may_start_threads

log = logging.getLogger("chatbot")

MAX_THREAD_NAME = 100  # Discord: a thread's name has 1-100 characters
UNNAMED_THREAD = "Conversation"  # for a question with no words (an image alone, say)
ELLIPSIS = "…"
_CLUSTER = regex.compile(r"\X")  # a grapheme cluster


def thread_name(question: str, limit: int = MAX_THREAD_NAME) -> str:
    """A thread's name for `question`: its words on one line, at most `limit` characters
    (Discord's limit is 100, counted in code points), never empty.

    A shortened name ends with "…", cut before a space when one fits, else at the last
    grapheme cluster boundary that fits (the `regex` library's \\X, as splitting.py uses):
    no cut splits what a reader sees as one character, such as a flag or an emoji family. A
    question whose first cluster alone does not fit is named UNNAMED_THREAD."""
    text = " ".join(question.split())
    if not text:
        return UNNAMED_THREAD
    if len(text) <= limit:
        return text
    room = limit - len(ELLIPSIS)
    # The clusters of the head are the text's own up to room + 1: a boundary is fixed once
    # the character after it is known, so the rest of a long question is not segmented.
    head = text[: room + 2]
    starts = [cluster.start() for cluster in _CLUSTER.finditer(head)]
    fits = [at for at in starts if 0 < at <= room]
    # A space that is a cluster of its own; one carrying a combining mark is a visible one.
    words = [at for at in fits if head[at] == " " and at + 1 in starts]
    cut = max(words or fits, default=0)
    return text[:cut] + ELLIPSIS if cut else UNNAMED_THREAD


def opening_text(message: discord.Message, text: str) -> str:
    """A conversation message's text; a forum post's starter message (its id is the
    post's) gets the post's title in front, as the first line."""
    channel = message.channel
    if (
        isinstance(channel, discord.Thread)
        and message.id == channel.id
        and isinstance(channel.parent, discord.ForumChannel)
    ):
        return f"{channel.name}\n{text}"
    return text


async def answer_channel(
    message: discord.Message,
    text: str,
    me: discord.ClientUser,
    reply_to: str,
    notes: PermissionNotes,
) -> discord.abc.Messageable:
    """Where to answer `message` (its text `text`): a thread started from it when its
    channel's reply mode `reply_to` (the effective setting its verdict was judged by,
    audience.Verdict) starts threads and the bot may start one (a refusal is logged once
    in `notes`, those of `message`'s channel), else its channel."""
    channel = message.channel
    if not isinstance(channel, discord.TextChannel) or channel.is_news():
        return channel  # threads, forums (a post is a thread), DMs, voice chat...
    if reply_to not in THREAD_MODES or not may_start_threads(channel, notes):
        return channel
    question = text.replace(f"@{getattr(channel.guild.me, 'display_name', me.name)}", "")
    try:
        return await message.create_thread(name=thread_name(question))
    except discord.HTTPException as error:
        log.warning(
            "channel %s: could not start a thread, answering in the channel (%s %s: %s)",
            channel.id,
            error.status,
            error.code,
            error.text,
        )
        return channel
