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
there is text, then edits at most once per `edit_interval` per message; when the text
outgrows a message, that message gets its final chunk and the stream continues in a new
one. The final messages are exactly `split_for_discord(text)` plus any note.

What the channel shows is what the bot remembers: `shown_text` is the posted messages
joined by newlines, which is also what read-back rebuilds after a restart. Notes under
an answer ("cut off", "too long") are part of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

import discord

from splitting import DISCORD_MESSAGE_LIMIT, ReplySplitter

log = logging.getLogger(__name__)

WRITING_MARKER = " ▌"  # shown at the end of a message that is still being written


class Reply:
    """The bot's messages answering `message`, whole, streamed or as a notice."""

    def __init__(self, message: discord.Message, edit_interval: float = 1.0) -> None:
        self.message = message
        self.edit_interval = edit_interval
        self.splitter = ReplySplitter()
        self._parts: list[str] = []
        self.final_chunks: list[str] = []
        self.posted: list[discord.Message] = []  # the bot's messages, in order
        self.shown: list[str] = []  # what each posted message shows now
        self.last_edit: list[float] = []  # per posted message, for pacing
        self.failed = False  # Discord refused a post or edit: stop trying
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
        """What the channel shows of the answer: its messages joined by newlines."""
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

    async def retract(self) -> None:
        """Withdraw everything streamed so far (it turned out to be the model's reasoning):
        delete the messages posted for it and start the answer afresh, so the next
        `add` posts a new reply."""
        if self._painter is not None:
            self._finishing.set()  # let the painter stop on its own, as in `finish`
            self._changed.set()
            await self._painter
            self._painter = None
        for posted in self.posted:
            try:
                await posted.delete()
            except discord.HTTPException as error:
                self._refused("delete", error)
        self.splitter = ReplySplitter()
        self._parts.clear()
        self.final_chunks.clear()
        self.posted.clear()
        self.shown.clear()
        self.last_edit.clear()
        self._finishing.clear()
        self._changed.clear()

    async def finish(self, note: str | None = None) -> None:
        """Show the whole answer as its final messages, with `note` after it if given."""
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
        await self._show(chunks, pace=True)

    async def _paint_while_streaming(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            if self._finishing.is_set():
                return
            preview = self.splitter.preview()
            wanted = self.final_chunks + ([preview + WRITING_MARKER] if preview else [])
            await self._show(wanted, pace=False)
            # Rest until the next edit is due, or until the answer is complete.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._finishing.wait(), self.edit_interval)

    async def _show(self, wanted: list[str], *, pace: bool) -> None:
        """Make the posted messages show `wanted`, posting new ones as needed."""
        for index, text in enumerate(wanted):
            if self.failed:
                return
            if index == len(self.posted):
                if await self._send(text, silent=False) is None:
                    return
            elif self.shown[index] != text:
                if pace:  # even the last edit keeps the per-message pace
                    wait = self.last_edit[index] + self.edit_interval - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                try:
                    await self.posted[index].edit(content=text)
                except discord.HTTPException as error:
                    self._refused("edit", error)
                    return
                self.shown[index] = text
                self.last_edit[index] = time.monotonic()

    async def _send(self, text: str, *, silent: bool) -> discord.Message | None:
        """Post `text`: the one way this reply reaches Discord. The first message
        replies to the user's message without pinging; None if Discord refused."""
        channel = self.message.channel
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
        self.last_edit.append(time.monotonic())
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
