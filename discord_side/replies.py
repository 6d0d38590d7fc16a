"""A `Reply`: the Discord messages that show one answer to one user message.

Everything the bot posts for that message goes through the reply's one send path
(`_send`): the whole answer, the streamed answer and silent notices, so the rules live
in one place:

* The first message is a reply to the user's message that pings nobody (the client's
  `allowed_mentions` is none; `mention_author=False`); later messages are plain.
* A notice (an error, a limit) is posted with the silent flag
  (`SUPPRESS_NOTIFICATIONS`). That flag is also how history read-back knows a message
  is no answer: notices are never part of the conversation (see readback.py).
* A transient failure is retried (failures.py); every post carries a nonce that Discord
  enforces, so a retried post that did land is not doubled.
* The reply decoration is optional: when Discord refuses the reference (403 / 160002,
  the bot lacks Read Message History) or the cached permissions already say so, the
  same message goes out plain. Each missing permission is logged once per channel
  (permissions.py).
* A post Discord refuses for good is logged, never raised, and nothing more is posted;
  an edit that fails is logged and the final edit is still attempted. Once the answer
  is complete, if any of it is missing from the channel for a refusal (AutoMod, size,
  an unknown code; failures.refusal), one silent notice says so without repeating the
  refused text, and the log names the rule or code. The notice is no part of the
  answer (`posted`, `shown`), so the answer remembered is what the channel shows.

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

What the channel shows is what the bot remembers: `final_text` is what the posted
messages show once their last edits land, joined by newlines, which is also what
read-back rebuilds after a restart; `shown_text` is what Discord has accepted so far
(the two differ only when Discord refuses a last edit, and the conversation then
corrects its memory). Notes under an answer ("cut off", "too long") are part of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import discord

from discord_side.failures import (
    CHANNEL_GONE,
    REQUEST_FAILURES,
    RETRY_DELAYS,
    UNKNOWN_MESSAGE,
    Refusal,
    describe,
    is_transient,
    refusal,
    retrying,
)
from discord_side.pacing import ChannelPacer
from discord_side.permissions import (
    HISTORY,
    PermissionNotes,
    may_reply,
    missing_permission,
    note_missing,
)
from text.splitting import DISCORD_MESSAGE_LIMIT, ReplySplitter

if TYPE_CHECKING:
    from operations.metrics import Metrics

log = logging.getLogger(__name__)

WRITING_MARKER = " ▌"  # shown at the end of a message that is still being written
T = TypeVar("T")


class Reply:
    """The Discord messages showing one answer to `message`: whole, streamed or a notice."""

    def __init__(
        self,
        message: discord.Message,
        pacer: ChannelPacer | None = None,
        channel: discord.abc.Messageable | None = None,
        *,
        notes: PermissionNotes,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
        metrics: Metrics | None = None,
    ) -> None:
        """`pacer`: the channel's, shared by all its replies (a new one if not given);
        `channel`: where to answer, if not in `message`'s channel (a thread started
        from it; there the answer is no reply, the thread shows the message on top);
        `notes`: the permission notes of that channel, which outlive one answer;
        `retry_delays`: the waits before each further attempt at a transiently failed
        post or edit; `metrics`: where retries are counted (HEALTH_PORT)."""
        self.message = message
        self.pacer = pacer if pacer is not None else ChannelPacer()
        self.channel = channel if channel is not None else message.channel
        self.retry_delays = retry_delays
        self.metrics = metrics
        self.notes = notes
        self.splitter = ReplySplitter()
        self._parts: list[str] = []
        self.final_chunks: list[str] = []
        self.posted: list[discord.Message] = []  # the bot's messages, in order
        self.shown: list[str] = []  # what each posted message shows now
        # What the posted messages show once `final_edits` land (set by `finish`).
        self.final: list[str] = []
        # The last edits of messages posted while streaming, started by `finish` and
        # not awaited there: the channel's next turn need not wait for them.
        self.final_edits: asyncio.Task[None] | None = None
        self.failed = False  # Discord refused a post for good: post nothing more
        # Post and edit nothing more: the channel is gone or out of reach (deleted, say),
        # or someone deleted one of the answer's messages while it was being written.
        self.stopped = False
        # Someone deleted one of the answer's messages: it is not to be remembered.
        self.withdrawn = False
        # The answer's own task is showing its final messages or a notice: from then on
        # it talks only to Discord, and cancelling it could lose a post (see `finish`).
        self.final_pass = False
        # The first refusal of a post or edit of the answer (None: none): if the answer
        # is left incomplete by it, `refusal_notice` is what told the user.
        self.refusal: Refusal | None = None
        self.refusal_notice: discord.Message | None = None
        self._edits_refused = False  # in-between edits stop: they would be refused again
        self._changed = asyncio.Event()
        self._finishing = asyncio.Event()
        self._painter: asyncio.Task[None] | None = None
        # A line saying what the answer waits for (a tool running), shown under the
        # streamed text, or alone while there is none; never part of the final answer.
        self._status: str | None = None

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
        """What the channel shows of the answer now: its messages joined by newlines,
        without the "still writing" marker of a message whose last edit Discord
        refused (the marker is no part of the answer)."""
        return "\n".join(text.removesuffix(WRITING_MARKER) for text in self.shown)

    @property
    def final_text(self) -> str:
        """What the channel shows of the answer once `final_edits` land (the same as
        `shown_text` unless Discord refuses one of them)."""
        return "\n".join(self.final)

    async def notice(self, text: str) -> bool:
        """Post `text` as a silent notice (an error, a limit); whether it was posted."""
        self.final_pass = True
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

    def show_status(self, line: str | None) -> None:
        """Show `line` (a subtext line: a tool running) under the answer so far, or as
        the answer's message while it has no text yet; None takes it away. The painter
        shows it soon, at the channel's pace; `finish` never shows it."""
        self._status = line
        self._changed.set()
        if self._painter is None and line is not None:
            self._painter = asyncio.create_task(self._paint_while_streaming())

    async def drop_status(self) -> None:
        """Take the status line away before a notice: when the answer has no text, the
        message that showed only the status is deleted, so no "running" line stays."""
        self._status = None
        if not self.text:
            await self.stop_painting()  # a post under way lands first, to be deleted
            if self.posted:
                await self.retract()

    async def retract(self) -> None:
        """Withdraw everything streamed so far (it turned out to be the model's reasoning):
        delete the messages posted for it and start the answer afresh, so the next
        `add` posts a new reply."""
        await self.stop_painting()
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
        self._finishing.clear()
        self._changed.clear()

    async def stop_painting(self) -> None:
        """Stop showing the streamed answer as it grows, without finishing it: the
        painter is woken and left to stop on its own (cancelling it mid-post could
        leave a message on Discord we do not know about)."""
        if self._painter is not None:
            self._finishing.set()
            self._changed.set()
            await self._painter
            self._painter = None

    async def finish(self, note: str | None = None) -> None:
        """Show the whole answer as its final messages, with `note` after it if given.

        Returns once every message of the answer is posted, in order; the last edits
        of messages posted earlier are then under way in `final_edits` (None if there
        are none), unpaced. Every posted message gets its last edit attempted, whatever
        failed before."""
        self.final_pass = True
        await self.stop_painting()
        chunks = self.final_chunks + self.splitter.finish()
        if note is not None:
            if chunks and len(chunks[-1]) + 1 + len(note) <= DISCORD_MESSAGE_LIMIT:
                chunks[-1] = f"{chunks[-1]}\n{note}"
            else:
                chunks.append(note)
        for text in chunks[len(self.posted) :]:
            if self.failed or self.stopped or await self._send(text, silent=False) is None:
                break
        self.final = chunks[: len(self.posted)]
        if len(self.posted) < len(chunks):
            await self._tell_refused()
        edits = [(i, text) for i, text in enumerate(self.final) if self.shown[i] != text]
        if edits:
            self.final_edits = asyncio.create_task(self._edit_all(edits))

    async def _paint_while_streaming(self) -> None:
        while True:
            await self._changed.wait()
            if self.posted:
                # Wait for the channel's pace before looking, so the edit shows the
                # newest text; stop waiting when the answer is complete.
                await self._paced()
            self._changed.clear()
            if self._finishing.is_set() or self.failed or self.stopped or self._edits_refused:
                return  # `finish` still edits what was posted
            await self._show(self._wanted())

    def _wanted(self) -> list[str]:
        """What the messages should show while the answer streams: its chunks so far,
        the message being written with its marker, and the status line under it (in a
        message of its own when it does not fit)."""
        preview = self.splitter.preview()
        wanted = self.final_chunks + ([preview + WRITING_MARKER] if preview else [])
        if self._status is not None:
            if wanted and len(wanted[-1]) + 1 + len(self._status) <= DISCORD_MESSAGE_LIMIT:
                wanted[-1] = f"{wanted[-1]}\n{self._status}"
            else:
                wanted.append(self._status)
        return wanted

    async def _paced(self) -> bool:
        """Wait until the pacer lets an in-between edit go; False if the answer
        became complete meanwhile (its final edits never wait)."""
        delay = self.pacer.delay()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._finishing.wait()
        return not self._finishing.is_set()

    async def _show(self, wanted: list[str]) -> None:
        """Make the posted messages show `wanted` while the answer streams (edits keep
        the channel's pace), posting new ones as needed."""
        for index, text in enumerate(wanted):
            if self.failed or self.stopped:
                return
            if index == len(self.posted):
                if await self._send(text, silent=False) is None:
                    return
            elif self.shown[index] != text:
                if not await self._paced() or not await self._edit(index, text):
                    return

    async def _edit_all(self, edits: list[tuple[int, str]]) -> None:
        """The last edits: each is attempted even if one before it failed; if one is
        refused, the user is told once they are all done."""
        refused = False
        for index, text in edits:
            if self.stopped:
                return
            if not await self._edit(index, text):
                refused = True
                await self._unmark(index)
        if refused:
            await self._tell_refused()

    async def _unmark(self, index: int) -> None:
        """After message `index`'s last edit was refused: show what it showed, without
        the writing marker (and the status under it), so it does not look unfinished."""
        shown = self.shown[index]
        if self.stopped:  # deleted, or the channel is gone: nothing to tidy
            return
        if WRITING_MARKER in shown and (done := shown.split(WRITING_MARKER)[0]):
            await self._edit(index, done)

    async def _edit(self, index: int, text: str) -> bool:
        """Make posted message `index` show `text`; whether Discord accepted it."""
        self.pacer.record()
        try:
            await self._retrying(lambda: self.posted[index].edit(content=text))
        except REQUEST_FAILURES as error:
            self._refused("edit", error)
            self._edits_refused |= not is_transient(error)
            return False
        self.shown[index] = text
        return True

    async def _send(self, text: str, *, silent: bool, part: bool = True) -> discord.Message | None:
        """Post `text`: the one way this reply reaches Discord. The first message
        replies to the user's message without pinging, if Discord lets it; None if
        Discord refused. `part`: the message is one of the answer's (`posted`), not the
        notice of a refusal."""
        channel = self.channel
        as_reply = (
            not self.posted
            and channel is self.message.channel
            and may_reply(self.message, self.notes)
        )
        # Discord enforces the nonce for a few minutes: a retried post that did land
        # the first time returns that message instead of posting it twice.
        nonce = uuid.uuid4().hex[:25]
        options = {"silent": silent, "nonce": nonce}
        if as_reply:
            options |= {
                "reference": self.message.to_reference(fail_if_not_exists=False),
                "mention_author": False,
            }
        self.pacer.record()
        try:
            sent = await self._retrying(lambda: channel.send(text, **options))
        except REQUEST_FAILURES as error:
            if as_reply and missing_permission(error, channel) == HISTORY:
                note_missing(self.notes, HISTORY, error)
                # Now without the reference.
                return await self._send(text, silent=silent, part=part)
            self._refused("post" if part else "post the notice about", error)
            if not is_transient(error) and part:
                self.failed = True
            return None
        if part:
            self.posted.append(sent)
            self.shown.append(text)
        return sent

    async def _tell_refused(self) -> None:
        """Tell the user, once, that a refusal (`self.refusal`) left the answer
        incomplete: a silent notice naming the kind of refusal, never the text.
        Nothing is said when the channel is gone or the answer was deleted."""
        if self.refusal is None or self.stopped or self.refusal_notice is not None:
            return
        text = self.refusal.notice(partial=bool(self.posted))
        self.refusal_notice = await self._send(text, silent=True, part=False)
        if self.refusal_notice is None and not self.stopped:
            log.info(
                "channel %s: the notice was refused too; posting a minimal one", self.channel.id
            )
            minimal = self.refusal.minimal_notice()
            self.refusal_notice = await self._send(minimal, silent=True, part=False)

    async def _retrying(self, request: Callable[[], Awaitable[T]]) -> T:
        """`request()`, retried while it fails transiently (failures.retrying)."""
        return await retrying(request, self.retry_delays, self.channel.id, self.metrics)

    def _refused(self, what: str, error: Exception) -> None:
        channel = self.channel
        if isinstance(error, discord.HTTPException) and error.code in CHANNEL_GONE:
            self.stopped = self.failed = True
        if isinstance(error, discord.NotFound) and error.code == UNKNOWN_MESSAGE:
            # Deleted while the answer was being written: the person wants it gone.
            self.stopped = self.failed = self.withdrawn = True
            log.info("channel %s: the answer was deleted while it was written", channel.id)
            return
        if (permission := missing_permission(error, channel)) is not None:
            note_missing(self.notes, permission, error)
            return
        if what not in ("post", "edit") or self.stopped:  # a deletion, or the channel is gone
            log.warning(
                "channel %s: could not %s the answer (%s)", channel.id, what, describe(error)
            )
            return
        refused = refusal(error)
        if isinstance(error, discord.HTTPException) and not is_transient(error):
            # Refused for good: the user is told. Not when Discord is down or silent: a
            # notice would fail (or hang) the same way and hold the channel up longer.
            self.refusal = self.refusal or refused
        log.warning(
            "channel %s: Discord refused to %s the answer: %s", channel.id, what, refused.rule
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
