"""Everything the bot posts in answer to one user message goes through one `Reply`.

A `Reply` has one private send path (`_send`) for the whole answer, the streamed answer
and silent notices, so the rules live in one place:

* The first message is a reply to the user's message that pings nobody (the client's
  `allowed_mentions` is none; `mention_author=False`); later messages are plain.
* A notice (an error, a limit) is posted with the silent flag
  (`SUPPRESS_NOTIFICATIONS`). That flag is also how history read-back knows a message
  is no answer: notices are never part of the conversation (see history.py).
* A post Discord refuses is logged, never raised, and nothing more is posted.

A streamed answer is shown while it grows: the model's text goes into a
`ReplySplitter`, and a separate painter task shows the splitter's state in Discord, so a
slow Discord request never holds up reading the stream. The painter posts as soon as
there is text, then edits as often as the channel's `ChannelPacer` allows (about one
write a second, counting all of the bot's writes in the channel, so several messages
of one answer, or answers in one channel, share the budget); when the text outgrows a
message, that message gets its final chunk and the stream continues in a new one. The
final messages are exactly `split_for_discord(text)` plus any note. When the answer is
complete, `finish` posts what is still missing, in order, and starts the last edits of
the messages already posted at once, unpaced, in a task of their own (`final_edits`):
the channel's next turn need not wait for them.

What the channel shows is what the bot remembers: `shown_text` is the posted messages
joined by newlines, which is also what read-back rebuilds after a restart. Notes under
an answer ("cut off", "too long") are part of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import discord

from pacing import ChannelPacer
from splitting import DISCORD_MESSAGE_LIMIT, ReplySplitter

log = logging.getLogger(__name__)

WRITING_MARKER = " ▌"  # shown at the end of a message that is still being written


class Reply:
    """The bot's messages answering `message`, whole, streamed or as a notice."""

    def __init__(self, message: discord.Message, pacer: ChannelPacer | None = None) -> None:
        """`pacer`: the channel's, shared by all its replies (a new one if not given)."""
        self.message = message
        self.pacer = pacer if pacer is not None else ChannelPacer()
        self.splitter = ReplySplitter()
        self._parts: list[str] = []
        self.final_chunks: list[str] = []
        self.posted: list[discord.Message] = []  # the bot's messages, in order
        self.shown: list[str] = []  # what each posted message shows (once final_edits land)
        self.failed = False  # Discord refused a post or edit: stop trying
        # The last edits of messages posted while streaming, started by `finish`.
        self.final_edits: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._finishing = asyncio.Event()
        self._painter: asyncio.Task[None] | None = None

    @property
    def visible(self) -> bool:
        """Whether any of the answer has reached Discord."""
        return bool(self.posted)

    @property
    def text(self) -> str:
        """All the answer's text received so far (without notes)."""
        return "".join(self._parts).strip()

    @property
    def shown_text(self) -> str:
        """What the channel shows of the answer (once `final_edits` land): its
        messages joined by newlines."""
        return "\n".join(self.shown)

    async def notice(self, text: str) -> bool:
        """Post `text` as a silent notice (an error, a limit); whether it was posted."""
        return await self._send(text, silent=True) is not None

    async def whole(self, text: str, note: str | None = None) -> bool:
        """Post a complete answer split for Discord, `note` after it; whether any of
        it was posted."""
        self._parts.append(text)
        self.final_chunks += self.splitter.feed(text)
        await self.finish(note)
        return self.visible

    def add(self, text: str) -> None:
        """Take the next piece of a streamed answer; the painter shows it soon."""
        self._parts.append(text)
        self.final_chunks += self.splitter.feed(text)
        self._changed.set()
        if self._painter is None:
            self._painter = asyncio.create_task(self._paint_while_streaming())

    async def finish(self, note: str | None = None) -> None:
        """Show the whole answer as its final messages, with `note` after it if given.

        Returns once every message of the answer is posted; the last edits of messages
        posted earlier are then under way in `final_edits` (None if there are none).
        """
        if self._painter is not None:
            # Never cancel the painter: a post cut off mid-request could leave a
            # message on Discord that we do not know about. Wake it and let it stop.
            self._finishing.set()
            self._changed.set()
            await self._painter
        chunks = self.final_chunks + self.splitter.finish()
        if note is not None:
            if chunks and len(chunks[-1]) + 1 + len(note) <= DISCORD_MESSAGE_LIMIT:
                chunks[-1] = f"{chunks[-1]}\n{note}"
            else:
                chunks.append(note)
        await self._show_final(chunks)

    async def _paint_while_streaming(self) -> None:
        while True:
            await self._changed.wait()
            if self.posted:
                # Wait for the channel's pace before looking, so the edit shows the
                # newest text; stop waiting when the answer is complete.
                await self._paced()
            self._changed.clear()
            if self._finishing.is_set():
                return
            preview = self.splitter.preview()
            wanted = self.final_chunks + ([preview + WRITING_MARKER] if preview else [])
            await self._show(wanted)

    async def _paced(self) -> bool:
        """Wait until the pacer lets an in-between edit go; False if the answer
        became complete meanwhile (its final edits never wait)."""
        delay = self.pacer.delay()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._finishing.wait(), delay)
        return not self._finishing.is_set()

    async def _show(self, wanted: list[str]) -> None:
        """Make the posted messages show `wanted` (in-between: edits keep the pace),
        posting new ones as needed."""
        for index, text in enumerate(wanted):
            if self.failed:
                return
            if index == len(self.posted):
                if await self._send(text, silent=False) is None:
                    return
            elif self.shown[index] != text:
                if not await self._paced() or not await self._edit(index, text):
                    return

    async def _show_final(self, wanted: list[str]) -> None:
        """Post the messages of `wanted` not yet posted, in order, then start the edits
        of the others in `final_edits`, unpaced."""
        for text in wanted[len(self.posted) :]:
            if self.failed or await self._send(text, silent=False) is None:
                break
        edits = [
            (index, text)
            for index, text in enumerate(wanted[: len(self.posted)])
            if self.shown[index] != text
        ]
        if edits:
            self.final_edits = asyncio.create_task(self._edit_all(edits))
            # What the channel shows once they land: what the conversation remembers.
            for index, text in edits:
                self.shown[index] = text

    async def _edit_all(self, edits: list[tuple[int, str]]) -> None:
        for index, text in edits:
            if not await self._edit(index, text):
                return

    async def _edit(self, index: int, text: str) -> bool:
        """Make posted message `index` show `text`; whether Discord took the edit."""
        self.pacer.record()
        try:
            await self.posted[index].edit(content=text)
        except discord.HTTPException as error:
            self._refused("edit", error)
            return False
        self.shown[index] = text
        return True

    async def _send(self, text: str, *, silent: bool) -> discord.Message | None:
        """Post `text`: the one way this reply reaches Discord. The first message
        replies to the user's message without pinging; None if Discord refused."""
        channel = self.message.channel
        self.pacer.record()
        try:
            if self.posted:
                sent = await channel.send(text, silent=silent)
            else:
                sent = await channel.send(
                    text,
                    reference=self.message.to_reference(fail_if_not_exists=False),
                    mention_author=False,
                    silent=silent,
                )
        except discord.HTTPException as error:
            self._refused("post", error)
            return None
        self.posted.append(sent)
        self.shown.append(text)
        return sent

    def _refused(self, what: str, error: discord.HTTPException) -> None:
        self.failed = True
        log.warning(
            "channel %s: could not %s the answer (%s %s: %s)",
            self.message.channel.id,
            what,
            error.status,
            error.code,
            error.text,
        )


@contextlib.asynccontextmanager
async def show_typing(channel: discord.abc.Messageable) -> AsyncIterator[None]:
    """Show "typing..." in `channel` while the block runs.

    The indicator is sent from a task of its own, so the block (the model call) never
    waits for a round trip to Discord; a channel that refuses is left alone.
    """

    sending = asyncio.Lock()

    async def keep_typing() -> None:
        try:
            while True:
                async with sending:
                    await channel.typing()  # lasts about 10 s on Discord's side
                await asyncio.sleep(8)
        except discord.HTTPException as error:
            log.debug("could not show typing: %s", error)

    task = asyncio.create_task(keep_typing())
    try:
        yield
    finally:
        # An indicator that reached Discord after the answer would show "typing..."
        # for 10 s more, so let one in flight land first.
        async with sending:
            task.cancel()
