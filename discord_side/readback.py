"""Reading a channel's conversation back from Discord, e.g. after a restart.

Discord keeps every message, so the bot needs no database for continuity: the first
time it needs a channel's memory, it reads the recent history back (newest first,
until the prompt budget is full or the bot's own "conversation reset" message is
reached) and rebuilds the turns. A message's attachments are read again (downloads.py) into
the same turn; images are fetched again only for the newest IMAGE_TURNS messages with
images, as the memory keeps them, and older ones keep their "[image: name]" line.
With MEMORY_STRATEGY=summarize, a channel's stored summary (summaries.py) stands for its
older messages, so reading back stops after the newest message it covers (`after`).

A thread's conversation starts with its starter message, which lives in the parent
channel (a forum post's lives in the post, with the title in front: threads.py). In the
parent, a message a thread was started from is an ordinary message of the channel,
except when the bot started that thread to answer it (thread mode): then, as when it
arrived, it belongs to the thread alone.

A forward's messages (their text and files) are read like the message's own, and a reply
quotes the message it answers unless that message is among the turns read back
(references.py), as when they arrived.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import discord

from discord_side.downloads import AttachmentReader, has_images
from discord_side.references import Pointed, is_forward, pointed_at
from discord_side.replies import WRITING_MARKER
from discord_side.threads import opening_text
from memory import IMAGE_TURNS, ImagePart, Turn, speaker_name
from text.quoting import quote_budget

if TYPE_CHECKING:
    from conversation.prompts import PromptBuilder

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
    after: int | None = None,
    bot_id: int,
    prompts: PromptBuilder,
    budget: int,
    remembered: Callable[[discord.Message], Awaitable[bool]],
    files: AttachmentReader | None = None,
) -> list[Turn]:
    """The channel's latest turns before `before` (and after the message id `after`,
    which a stored summary covers), oldest first, about `budget` tokens.

    The bot's own messages become assistant turns; the several messages of one answer
    (a split or streamed answer starts with a reply, or, where Discord refused the
    reply, follows a user's message) become one turn. The bot's notices
    (posted silently: errors, limits) are skipped, and so are messages `remembered`
    rejects (other bots, blocked users...). With `files`, a message's attachments are
    read into its turn as when it arrived. Each turn keeps the ids of the messages it
    came from. Raises discord.HTTPException if the history cannot be read (and whatever
    a malformed payload makes discord.py raise).
    """
    reading = _Reading(bot_id, prompts, budget, remembered, files)
    return await reading.read(channel, before, after)


class _Reading:
    """One read-back: the turns found so far, newest first, and the bot's messages of
    the answer being gathered."""

    def __init__(
        self,
        bot_id: int,
        prompts: PromptBuilder,
        budget: int,
        remembered: Callable[[discord.Message], Awaitable[bool]],
        files: AttachmentReader | None,
    ) -> None:
        self.bot_id = bot_id
        self.prompts = prompts
        self.budget = budget
        self.remembered = remembered
        self.files = files
        self.newest_first: list[Turn] = []
        self.tokens = 0
        self.parts: list[discord.Message] = []  # the bot's messages of one answer, newest first
        self.image_turns = 0  # messages whose images were fetched again
        self.replies: dict[int, Pointed] = {}  # by message id: replies, quoted at the end

    async def read(
        self, channel: discord.abc.Messageable, before: discord.Message | None, after: int | None
    ) -> list[Turn]:
        """The turns, oldest first, replies quoting what the turns do not hold."""
        turns = await self._read(channel, before, after)
        held = {message_id for turn in turns for message_id in turn.message_ids}
        return [self._quoting(turn, held) for turn in turns]

    def _quoting(self, turn: Turn, held: set[int]) -> Turn:
        """`turn` with the message it replies to quoted, unless `held`."""
        reply = self.replies.get(turn.message_ids[0]) if turn.message_ids else None
        if reply is None or reply.reply_id in held:
            return turn
        text = reply.text(turn.content, held.__contains__)
        quoted, _ = self.prompts.turn("user", text, turn.name, turn.images, turn.files)
        return dataclasses.replace(quoted, message_ids=turn.message_ids)

    async def _read(
        self, channel: discord.abc.Messageable, before: discord.Message | None, after: int | None
    ) -> list[Turn]:
        read = 0
        async for message in channel.history(limit=MAX_MESSAGES_READ, before=before):
            if after is not None and message.id <= after:
                break  # the summary tells the rest (and a thread's starter came first)
            read += 1
            if await self._take(message):
                break
            if self.tokens >= self.budget:
                return self.newest_first[::-1]
        else:  # the whole history was read: a thread's oldest part is where it started
            if read < MAX_MESSAGES_READ:
                await self._take_start(channel, before)
                return self.newest_first[::-1]
        # Posted plain, or begun before the reset.
        if self.parts and (oldest := self._assistant_turn()):
            self.newest_first.append(oldest)
        return self.newest_first[::-1]

    async def _take(self, message: discord.Message) -> bool:
        """Add `message` to the turns; True if it is the reset boundary (read no further)."""
        if message.flags.has_thread and _answered_in_own_thread(message, self.bot_id):
            return False  # the bot's thread-mode thread: it is that thread's conversation
        if message.author.id == self.bot_id:
            if is_reset_boundary(message, self.bot_id):
                return True
            if message.flags.suppress_notifications or not message.content:
                return False
            self.parts.append(message)
            if message.reference is not None:  # else a later part: its first is still to come
                self._add(self._assistant_turn())
            return False
        text = message.clean_content.strip()
        readable = text or is_forward(message) or (self.files and message.attachments)
        if readable and await self.remembered(message):
            # An answer posted plain ends at the question before it.
            if self.parts and (plain := self._assistant_turn()):
                self._add(plain)
            self._add(await self._user_turn(message, opening_text(message, text)))
        return False

    async def _take_start(
        self, channel: discord.abc.Messageable, before: discord.Message | None
    ) -> None:
        """The oldest turns of a history read whole: a thread's first answer (no reply)
        and the message the thread was started from."""
        if self.parts and (opening := self._assistant_turn()):
            self.newest_first.append(opening)
        starter = await _starter_message(channel, before)
        if starter is not None and (starter.clean_content.strip() or is_forward(starter)):
            text = starter.clean_content.strip()
            if await self.remembered(starter) and (turn := await self._user_turn(starter, text)):
                self.newest_first.append(turn)

    def _add(self, turn: Turn | None) -> None:
        if turn is not None:
            self.newest_first.append(turn)
            self.tokens += turn.tokens

    def _assistant_turn(self) -> Turn | None:
        """The answer made of `parts`; None when the message it answered was deleted
        (the answer may well repeat it, and it is forgotten with it when live)."""
        parts = self.parts
        first = parts[-1]
        reference = first.reference
        # A message whose last edit Discord refused may still end in the writing marker.
        text = "\n".join(m.content.removesuffix(WRITING_MARKER) for m in reversed(parts))
        turn, _ = self.prompts.turn("assistant", text)
        turn = dataclasses.replace(
            turn,
            message_ids=tuple(m.id for m in reversed(parts)),
            replies_to=reference.message_id if reference else None,
        )
        parts.clear()
        if reference and isinstance(reference.resolved, discord.DeletedReferencedMessage):
            return None
        return turn

    async def _user_turn(self, message: discord.Message, text: str) -> Turn | None:
        """The turn of a person's `message` (its text `text`): its forwards, text and files;
        the message it replies to is quoted later, when the turns read are known."""
        author = message.author
        name = speaker_name(author.display_name, author.id)
        images: tuple[ImagePart, ...] = ()
        names: tuple[str, ...] = ()
        counter = self.prompts.counter
        pointed = await pointed_at(
            message, counter=counter, max_tokens=quote_budget(self.budget), fetch=False
        )
        if pointed.reply_quote is not None:
            self.replies[message.id] = pointed
        text = dataclasses.replace(pointed, reply_quote=None).text(text, lambda _: True)
        attachments = [*message.attachments, *pointed.attachments]
        files = self.files
        if files is not None and attachments:
            fetch_images = files.vision and has_images(attachments)
            fetch_images = fetch_images and self.image_turns < IMAGE_TURNS
            self.image_turns += fetch_images
            got = await files.read(
                attachments,
                text_tokens=counter.count_message("user", text, name),
                images=fetch_images,
            )
            text = "\n\n".join(filter(None, [text, got.text]))
            images, names = got.images, got.names
        if not text:
            return None
        turn, _ = self.prompts.turn("user", text, name, images, names)
        return dataclasses.replace(turn, message_ids=(message.id,))


def _answered_in_own_thread(message: discord.Message, bot_id: int) -> bool:
    """Whether the thread started from `message` is the bot's (thread mode answers a
    message in a thread it starts), so the message is that thread's first turn. A thread
    people started, or one not known, leaves the message in its channel."""
    thread = message.thread
    return thread is not None and thread.owner_id == bot_id


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
