"""Reading a channel's conversation back from Discord, e.g. after a restart.

Discord keeps every message, so the bot needs no database for continuity: the first
time it needs a channel's memory, it reads the recent history back (newest first,
until the prompt budget is full or the bot's own "conversation reset" message is
reached) and rebuilds the turns.

A thread's conversation starts with its starter message, which lives in the parent
channel (a forum post's lives in the post, with the title in front: threads.py); in the
parent, a message a thread was started from belongs to the thread, not the channel.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import discord

from memory import PromptBuilder, Turn, speaker_name
from threads import opening_text

# The bot's visible answer to /reset: the boundary history is never read past.
RESET_MESSAGE = (
    "🧹 **Conversation reset.** I've forgotten everything said in this channel before this message."
)
MAX_MESSAGES_READ = 300  # however short the messages, read no further back than this


def is_reset_boundary(message: discord.Message, bot_id: int) -> bool:
    return message.author.id == bot_id and message.content.startswith(RESET_MESSAGE)


async def read_back(
    channel: discord.abc.Messageable,
    *,
    before: discord.Message | None,
    bot_id: int,
    prompts: PromptBuilder,
    budget: int,
    remembered: Callable[[discord.Message], Awaitable[bool]],
) -> list[Turn]:
    """The channel's latest turns before `before`, oldest first, about `budget` tokens.

    The bot's own messages become assistant turns; the several messages of one answer
    (a split or streamed answer starts with a reply) become one turn. The bot's notices
    (posted silently: errors, limits) are skipped, and so are messages `remembered`
    rejects (other bots, blocked users...). Raises discord.HTTPException if the
    history cannot be read.
    """
    newest_first: list[Turn] = []
    tokens = 0
    answer_parts: list[str] = []  # the bot's messages of one answer, newest first
    read = 0
    async for message in channel.history(limit=MAX_MESSAGES_READ, before=before):
        read += 1
        if message.flags.has_thread:
            continue  # it opened a thread: it is that thread's conversation
        if message.author.id == bot_id:
            if is_reset_boundary(message, bot_id):
                break
            if message.flags.suppress_notifications or not message.content:
                continue
            answer_parts.append(message.content)
            if message.reference is None:
                continue  # a later part of an answer; its first part is still to come
            turn, _ = prompts.turn("assistant", "\n".join(reversed(answer_parts)))
            answer_parts.clear()
        elif (text := message.clean_content.strip()) and await remembered(message):
            turn = _user_turn(prompts, message, opening_text(message, text))
        else:
            continue
        newest_first.append(turn)
        tokens += turn.tokens
        if tokens >= budget:
            return newest_first[::-1]
    else:  # the whole history was read: a thread's oldest part is where it started
        if read < MAX_MESSAGES_READ:
            if answer_parts:  # an answer in a thread opens with no reply: nothing to reply to
                newest_first.append(prompts.turn("assistant", "\n".join(reversed(answer_parts)))[0])
            starter = await _starter_message(channel, before)
            if starter is not None and (text := starter.clean_content.strip()):
                if await remembered(starter):
                    newest_first.append(_user_turn(prompts, starter, text))
    return newest_first[::-1]


def _user_turn(prompts: PromptBuilder, message: discord.Message, text: str) -> Turn:
    author = message.author
    return prompts.turn("user", text, speaker_name(author.display_name, author.id))[0]


async def _starter_message(
    channel: discord.abc.Messageable, before: discord.Message | None
) -> discord.Message | None:
    """The message a thread was started from, in its parent channel (it has the thread's
    id), if it comes before `before`; None for other channels or if it was deleted."""
    if not isinstance(channel, discord.Thread) or not isinstance(
        channel.parent, discord.TextChannel
    ):
        return None
    if before is not None and before.id <= channel.id:
        return None
    try:
        return await channel.parent.fetch_message(channel.id)
    except discord.HTTPException:  # deleted, or the parent cannot be read: start without it
        return None
