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
resources/channel#start-thread-from-message): a thread's name has 1-100 characters;
starting one needs Create Public Threads and posting in one Send Messages in Threads;
a person's message unarchives an archived thread; a locked thread takes posts only
from members with Manage Threads.
"""

from __future__ import annotations

import logging

import discord
import regex

from config import Settings
from conversation.channel_settings import THREAD_MODES

log = logging.getLogger("chatbot")

MAX_THREAD_NAME = 100  # Discord: a thread's name has 1-100 characters
UNNAMED_THREAD = "Conversation"  # for a question with no words (an image alone, say)
ELLIPSIS = "…"
_CLUSTER = regex.compile(r"\X")  # a grapheme cluster
# What the bot needs to answer a channel's messages in threads, by discord.py's names.
THREAD_MODE_PERMISSIONS = ("create_public_threads", "send_messages_in_threads")


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


def starts_threads(reply_to: str) -> bool:
    """Whether reply mode `reply_to` answers a channel's new messages in threads of their
    own: `thread` (every message) and `mention-thread` (those addressed to the bot)."""
    return reply_to in THREAD_MODES


def missing_permissions(permissions: discord.Permissions, names: tuple[str, ...]) -> list[str]:
    """Which of `names` (discord.py's permission names) `permissions` lacks."""
    return [name for name in names if not getattr(permissions, name)]


def permission_label(name: str) -> str:
    """Discord's wording of a discord.py permission name: "Create Public Threads"."""
    return " ".join(word.capitalize() for word in name.split("_"))


class Threads:
    """Where the bot answers: a new thread in thread mode, and whether a thread takes an
    answer. Each refusal (a permission missing, a locked thread) is logged once."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._logged: set[tuple[int, str]] = set()  # (channel id, what) already logged

    async def answer_channel(
        self, message: discord.Message, text: str, me: discord.ClientUser, reply_to: str
    ) -> discord.abc.Messageable:
        """Where to answer `message` (its text `text`): a thread started from it when its
        channel's reply mode `reply_to` (the effective setting its verdict was judged by,
        audience.Verdict) starts threads and the bot may start one, else its channel."""
        channel = message.channel
        if not isinstance(channel, discord.TextChannel) or channel.is_news():
            return channel  # threads, forums (a post is a thread), DMs, voice chat...
        if not starts_threads(reply_to):
            return channel
        missing = missing_permissions(
            channel.permissions_for(channel.guild.me), THREAD_MODE_PERMISSIONS
        )
        if missing:
            labels = " and ".join(permission_label(name) for name in missing)
            self._log_once(channel.id, "permissions", "answering in the channel: needs %s", labels)
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

    def may_answer_in(self, channel: object) -> bool:
        """Whether the bot may post in `channel`, by discord.py's cache of its
        permissions: not in a thread that is locked (without Manage Threads), nor where
        it may not send (logged once per channel). The model is not asked for an
        answer nobody could see. A DM, or a channel whose permissions the cache does not
        know, is given the benefit of the doubt (a refused post is handled anyway)."""
        guild = getattr(channel, "guild", None)
        me = getattr(guild, "me", None)
        if me is None or not hasattr(channel, "permissions_for"):
            return True
        if not isinstance(channel, discord.Thread):
            if channel.permissions_for(me).send_messages:  # type: ignore[attr-defined]
                return True
            self._log_once(
                channel.id,  # type: ignore[attr-defined]
                "send",
                "reading, not answering: needs Send Messages",
            )
            return False
        permissions = channel.permissions_for(me)
        if channel.locked and not permissions.manage_threads:
            self._log_once(channel.id, "locked", "the thread is locked: reading, not answering")
            return False
        if not permissions.send_messages_in_threads:
            self._log_once(
                channel.id, "send", "reading, not answering: needs Send Messages in Threads"
            )
            return False
        return True

    def forget(self, channel_id: int) -> None:
        """A thread was deleted: forget what was logged about it."""
        self._logged = {entry for entry in self._logged if entry[0] != channel_id}

    def _log_once(self, channel_id: int, what: str, text: str, *args: object) -> None:
        if (channel_id, what) not in self._logged:
            self._logged.add((channel_id, what))
            log.warning("channel %s: " + text, channel_id, *args)
