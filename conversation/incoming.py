"""Everything a message brings to its turn that needs the network: the message it
replies to (fetched when Discord left it out), the messages it forwards, and the files
of both (downloaded and read): `prepare`.

It runs as soon as the message arrives, before the channel's turn lock is taken, so a
slow download or fetch never holds up the channel's other work (/memory, the answer to
the message before it); turns are still taken in arrival order (conversations.py).
Whether the replied-to message is quoted is decided only when the turn is taken, as the
channel's memory may already hold it (`Prepared.text`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import discord

from discord_side.downloads import AttachmentContent, AttachmentReader
from discord_side.references import Pointed, pointed_at
from memory import ChannelMemory, ImagePart, Turn, speaker_name
from text.quoting import quote_budget, split_quotes, with_quotes
from text.tokens import TokenCounter

if TYPE_CHECKING:
    from conversation.channel import PendingTurn
    from conversation.prompts import PromptBuilder

log = logging.getLogger("chatbot")


NOTHING_POINTED = Pointed()
NO_FILES = AttachmentContent()


@dataclass(frozen=True, slots=True)
class Prepared:
    """What a message's references (`pointed`) and files (`files`: its own, then its
    forwarded ones) add to its turn."""

    pointed: Pointed = NOTHING_POINTED
    files: AttachmentContent = NO_FILES

    def text(self, own_text: str, holds: Callable[[int], bool]) -> str:
        """The turn's whole text: the quotes (not the replied-to message when `holds`
        says the memory has it), the person's `own_text`, then the files' text."""
        own = "\n\n".join(part for part in (own_text, self.files.text) if part)
        return self.pointed.text(own, holds)


async def prepare(
    message: discord.Message,
    text: str,
    files: AttachmentReader,
    counter: TokenCounter,
    history_budget: int,
) -> Prepared:
    """Fetch and read what `message` (its text `text`) points at and carries. The files
    get the room the text and the quotes leave. Never raises for a file or a reference
    that cannot be read (they become notes or "[replying to a message I can't read]")."""
    pointed = await pointed_at(message, counter=counter, max_tokens=quote_budget(history_budget))
    attachments = [*message.attachments, *pointed.attachments]
    if not attachments:
        return Prepared(pointed)
    author = message.author
    name = speaker_name(author.display_name, author.id)
    quoted = pointed.text(text, lambda _: False)  # the most the quotes can take
    text_tokens = counter.count_message("user", quoted, name)
    return Prepared(pointed, await files.read(attachments, text_tokens=text_tokens))


class Carried:
    """What the newest remembered messages carry besides their own text (their
    `Prepared` quotes, forwards and files), by message id, so an edit of one keeps them:
    the edit changes only the person's own text, as read-back would read it again."""

    LIMIT = 256  # messages; older edits fall back to the turn's own quotes and pictures

    def __init__(self) -> None:
        self._by_id: OrderedDict[int, Prepared] = OrderedDict()

    def keep(self, message_id: int, prepared: Prepared) -> None:
        """Remember what message `message_id` carries (nothing when it carries nothing)."""
        if prepared.pointed == NOTHING_POINTED and prepared.files == NO_FILES:
            return
        self._by_id[message_id] = prepared
        while len(self._by_id) > self.LIMIT:
            self._by_id.popitem(last=False)

    def edited(
        self, message_id: int, own_text: str, memory: ChannelMemory
    ) -> tuple[str, tuple[ImagePart, ...], tuple[str, ...]]:
        """The turn's text, images and file names for message `message_id` edited to
        `own_text`: what it carried kept. A message not kept here keeps the quotes and
        pictures of its remembered turn (`split_quotes`)."""
        prepared = self._by_id.get(message_id)
        if prepared is not None:
            files = prepared.files
            return prepared.text(own_text, memory.holds), files.images, files.names
        old = next((turn for turn in memory if message_id in turn.message_ids), None)
        if old is None:
            return own_text, (), ()
        quotes, _ = split_quotes(old.content)
        return with_quotes(quotes, own_text), old.images, old.files


def full_text(pending: PendingTurn) -> str:
    """The most text `pending`'s turn can have: its quotes (as if the memory held none
    of them) and files' text too once they are read, else its own text."""
    ready = pending.ready
    if ready is None or not ready.done() or ready.cancelled() or ready.exception():
        return pending.text
    return ready.result().text(pending.text, lambda _: False)


def is_ready(pending: PendingTurn) -> bool:
    """Whether `pending`'s references and files are read."""
    return pending.ready is None or pending.ready.done()


@dataclass(frozen=True, slots=True)
class Remembered:
    """What remembering a batch of messages left: whether the last one made a turn
    (`has_turn`) and the note for its shortening to fit (`shortened`, "" when whole:
    `PromptBuilder.turn`), the `notes` for the answer (files skipped
    or unseen), and whether an image went `unseen` (the model takes none)."""

    has_turn: bool
    shortened: str
    notes: list[str]
    unseen_images: bool


async def remember_batch(
    batch: Sequence[PendingTurn],
    memory: ChannelMemory,
    prompts: PromptBuilder,
    remember: Callable[[Turn], None],
    *,
    tell_no_vision: bool,
    carried: Carried | None = None,
) -> Remembered:
    """Make each message of `batch` a user turn (its quotes, text and files, once they
    are read) and `remember` it, in order; what each carries is kept in `carried` for
    its edits. Notes come only from messages to answer; `tell_no_vision`: whether they
    still say the model can't see pictures."""
    notes: list[str] = []
    has_turn = unseen_images = False
    shortened = ""
    for pending in batch:
        author = pending.message.author
        prepared = await pending.ready if pending.ready is not None else Prepared()
        files = prepared.files
        if pending.answer:
            notes += files.notes(tell_no_vision=tell_no_vision)
            unseen_images |= files.unseen_images
        text = prepared.text(pending.text, memory.holds)
        shortened, has_turn = "", False
        if not text:
            continue  # only files that could not be read: nothing to remember
        name = speaker_name(author.display_name, author.id)
        turn, shortened = prompts.turn("user", text, name, files.images, files.names)
        has_turn = True
        remember(dataclasses.replace(turn, message_ids=(pending.message.id,)))
        if carried is not None:
            carried.keep(pending.message.id, prepared)
        log.debug("channel %s: %s said %r", pending.channel.id, turn.name, pending.text)
    return Remembered(has_turn, shortened, notes, unseen_images)
