"""A streamed answer shown in Discord as it grows.

The model's text goes into a `ReplySplitter`; a separate painter task shows the
splitter's state in Discord, so a slow Discord request never holds up reading the
stream. The painter sends a message as soon as there is text, then edits it at most
once per `edit_interval` (per reply, so replies in other channels are independent);
when the text outgrows a message, that message gets its final chunk and the stream
continues in a new one. The final messages are exactly `split_for_discord(text)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import discord

from splitting import DISCORD_MESSAGE_LIMIT, ReplySplitter

log = logging.getLogger(__name__)

WRITING_MARKER = " ▌"  # shown at the end of a message that is still being written


class LiveReply:
    """The messages answering one user message, shown while the answer streams in."""

    def __init__(self, message: discord.Message, edit_interval: float = 1.0) -> None:
        self.message = message
        self.edit_interval = edit_interval
        self.splitter = ReplySplitter()
        self._parts: list[str] = []
        self.final_chunks: list[str] = []
        self.posted: list[discord.Message] = []  # the bot's messages, in order
        self.shown: list[str] = []  # what each posted message shows now
        self.last_edit: list[float] = []  # per posted message, for pacing
        self.failed = False  # Discord refused a post: stop trying
        self._changed = asyncio.Event()
        self._finishing = asyncio.Event()
        self._painter: asyncio.Task[None] | None = None

    @property
    def visible(self) -> bool:
        """Whether any of the answer has reached Discord."""
        return bool(self.posted)

    @property
    def text(self) -> str:
        """All the answer's text received so far."""
        return "".join(self._parts).strip()

    def add(self, text: str) -> None:
        """Take the next piece of the answer; the painter shows it soon."""
        self._parts.append(text)
        self.final_chunks += self.splitter.feed(text)
        self._changed.set()
        if self._painter is None:
            self._painter = asyncio.create_task(self._paint_while_streaming())

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
            try:
                if index == len(self.posted):
                    await self._post(text)
                elif self.shown[index] != text:
                    if pace:  # even the last edit keeps the per-message pace
                        wait = self.last_edit[index] + self.edit_interval - time.monotonic()
                        if wait > 0:
                            await asyncio.sleep(wait)
                    await self.posted[index].edit(content=text)
                    self.shown[index] = text
                    self.last_edit[index] = time.monotonic()
            except discord.HTTPException as error:
                self.failed = True
                log.warning(
                    "channel %s: could not show the answer (%s %s: %s)",
                    self.message.channel.id,
                    error.status,
                    error.code,
                    error.text,
                )

    async def _post(self, text: str) -> None:
        if self.posted:
            sent = await self.message.channel.send(text)
        else:
            sent = await self.message.channel.send(
                text,
                reference=self.message.to_reference(fail_if_not_exists=False),
                mention_author=False,
            )
        self.posted.append(sent)
        self.shown.append(text)
        self.last_edit.append(time.monotonic())
