"""Keeping the knowledge index up to date with what happens in the channels: `Keeper`.

The bot's events hand it messages to index (new ones, edits, its own finished answers)
and ids to forget (deleted messages, channels and threads). None of that waits for the
database: `saw`, `edited`, `answered`, `deleted` and `channel_deleted` only queue, and a
background task writes the queue every FLUSH_SECONDS, or at once when BATCH messages
wait or something is deleted. Whether knowledge is on is decided there, per channel,
through the channel settings' cache, so the message path never reads the store either.

A deletion also drops the message from the queue, and is remembered for a while
(RECENT_DELETIONS ids) so that a backfill page read just before it cannot bring the
message back: a deleted message is never found again. A deleted channel or thread is
remembered the same way (its id), so that neither the queue nor a backfill page, nor
its threads' messages, write anything of it later (and the backfill stops reading it:
`channel_gone`); a backfill page is written under the flush's lock, so a deletion
arriving meanwhile is written after it. A failed write of messages is
logged and dropped (the index is a best effort); a failed deletion is kept and tried
again at the next flush.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from typing import TYPE_CHECKING

from conversation.channel_settings import Place
from conversation.recency import RecentlyUsed
from knowledge.indexing import counts, indexed
from store import StoreError
from store.knowledge import IndexedMessage

if TYPE_CHECKING:
    import discord

    from store import Store

log = logging.getLogger("chatbot")

FLUSH_SECONDS = 0.5
BATCH = 200  # messages written in one call, and a queue this long is written at once
RECENT_DELETIONS = 10_000
RETENTION_CHECK_SECONDS = 24 * 3600.0
# With a shared store, how stale this process's list of forgotten people may be.
FORGOTTEN_READ_SECONDS = 2.0


def place_of(message: IndexedMessage) -> Place:
    """The settings place of an indexed message (a thread's settings are its channel's)."""
    return Place(message.guild_id, message.channel_id, message.parent_id)


class Keeper:
    """The index's live upkeep; `start` it once the store is open, `close` it before.

    `knowledge_on(place)` says whether messages at a place are indexed (the channel
    settings' `effective(place).knowledge`); `me_id()` is the bot's user id.
    """

    def __init__(
        self,
        store: Store,
        knowledge_on: Callable[[Place], Awaitable[bool]],
        me_id: Callable[[], int],
        *,
        flush_seconds: float = FLUSH_SECONDS,
        batch: int = BATCH,
    ) -> None:
        self.store = store
        self.knowledge_on = knowledge_on
        self.me_id = me_id
        self.flush_seconds = flush_seconds
        self.batch = batch
        self._pending: dict[int, IndexedMessage] = {}  # message id -> its newest form
        self._forget: set[int] = set()
        self._forget_channels: set[int] = set()
        self._deleted: RecentlyUsed[int] = RecentlyUsed(RECENT_DELETIONS)  # message ids
        self._deleted_channels: RecentlyUsed[int] = RecentlyUsed(RECENT_DELETIONS)
        self._forgotten: dict[int, dt.datetime] = {}  # author id -> when forget-me ran
        self._forgotten_read: float | None = None  # when the store's record was read
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()  # one flush at a time
        self._tasks: list[asyncio.Task[None]] = []

    # ---- events (never wait) -----------------------------------------------------------

    def saw(self, message: discord.Message) -> None:
        """A new message anywhere: queued if it counts (the bot's own answers come
        through `answered` once final, not here)."""
        try:
            me = self.me_id()
            if message.author.id == me or not counts(message, me):
                return
            self.queue(indexed(message))
        except Exception:  # the index must never cost an answer
            log.exception("knowledge: message %s not indexed", message.id)

    def edited(self, message: discord.Message) -> None:
        """A person's message was edited: its new text replaces the old (an upsert)."""
        self.saw(message)

    def answered(self, posted: Sequence[discord.Message], texts: Sequence[str]) -> None:
        """The bot's answer is final: `posted[i]` shows `texts[i]` (the text its last
        edit leaves, not a streamed part)."""
        for message, text in zip(posted, texts, strict=False):
            try:
                self.queue(indexed(message, text))
            except Exception:  # as in `saw`
                log.exception("knowledge: answer %s not indexed", message.id)

    def deleted(self, message_ids: Iterable[int]) -> None:
        """Messages were deleted: never found again (also when still queued)."""
        for message_id in message_ids:
            self._pending.pop(message_id, None)
            self._forget.add(message_id)
            self._deleted.use(message_id)
        self._deleted.overflow()
        self._wake.set()

    def channel_deleted(self, channel_id: int) -> None:
        """A channel or thread was deleted: its messages (and its threads') go, and
        none of them is written later (`channel_gone`)."""
        self.drop_queued({channel_id})
        self._forget_channels.add(channel_id)
        self._deleted_channels.use(channel_id)
        self._deleted_channels.overflow()
        self._wake.set()

    def channel_gone(self, channel_id: int, parent_id: int | None) -> bool:
        """Whether the channel `channel_id` (a thread: of `parent_id`) was deleted lately."""
        return channel_id in self._deleted_channels or parent_id in self._deleted_channels

    def drop_queued(self, channel_ids: Collection[int]) -> None:
        """Leave the queued messages of `channel_ids` (and their threads) unwritten."""
        self._pending = {
            i: m
            for i, m in self._pending.items()
            if m.channel_id not in channel_ids and m.parent_id not in channel_ids
        }

    async def forget_author(self, author_id: int) -> int:
        """/knowledge forget-me: `settle_author`, then remove what they wrote from the
        index, recording when they asked (it holds after a restart); how many messages
        were removed. Raises StoreError."""
        asked_at = await self.settle_author(author_id)
        return await self.store.forget_author(author_id, asked_at)

    async def settle_author(self, author_id: int) -> dt.datetime:
        """Before forgetting a person: their queued messages are dropped, a write under
        way is waited for, and a backfill page read later leaves out what they wrote
        until now, so nothing of theirs lands after the forgetting (what they write
        next is indexed again). Returns that moment."""
        self._pending = {i: m for i, m in self._pending.items() if m.author_id != author_id}
        asked_at = self._forgotten[author_id] = dt.datetime.now(dt.UTC)
        await self.flush()
        return asked_at

    def queue(self, message: IndexedMessage | None) -> None:
        """Index `message` (None: nothing) at the next flush, unless deleted meanwhile."""
        if message is None or self._dropped(message):
            return
        self._pending[message.message_id] = message
        if len(self._pending) >= self.batch:
            self._wake.set()

    # ---- writing -----------------------------------------------------------------------

    def _dropped(self, message: IndexedMessage) -> bool:
        """Whether `message`, or its channel or thread, was deleted lately."""
        gone = self.channel_gone(message.channel_id, message.parent_id)
        return gone or message.message_id in self._deleted

    async def write(self, messages: Collection[IndexedMessage]) -> int:
        """Index `messages` now (a backfill page), leaving out those deleted meanwhile
        (or whose channel or thread was) and those of people forgotten since; how many
        were written. Raises StoreError."""
        async with self._lock:  # a deletion arriving now is written after this page
            await self._read_forgotten()
            kept = [m for m in messages if not self._dropped(m) and not self._gone(m)]
            if kept:
                await self.store.index_messages(kept)
        return len(kept)

    async def _read_forgotten(self) -> None:
        """Before anything is written: who asked to be forgotten (in an earlier run, or
        through another process sharing the store), so that neither a backfill page nor
        an edit brings back what they had written. Read once per process with SQLite
        (one process); with a shared store again after FORGOTTEN_READ_SECONDS, as a
        sibling process may have recorded a forget-me. Raises StoreError (then nothing
        is written)."""
        now = time.monotonic()
        if self._forgotten_read is not None:
            if not self.store.shared or now - self._forgotten_read < FORGOTTEN_READ_SECONDS:
                return
        for author_id, asked_at in (await self.store.forgotten_authors()).items():
            self._forgotten[author_id] = max(asked_at, self._forgotten.get(author_id, asked_at))
        self._forgotten_read = now

    def _gone(self, message: IndexedMessage) -> bool:
        """Whether `message`'s author asked to be forgotten after writing it."""
        forgotten = self._forgotten.get(message.author_id)
        return forgotten is not None and message.created_at <= forgotten

    async def flush(self) -> None:
        """Write what is queued: deletions first, then the messages of places where
        knowledge is on. Never raises (failures are logged)."""
        async with self._lock:
            self._wake.clear()
            await self._forget_queued()
            while self._pending:
                ids = list(self._pending)[: self.batch]
                taken = [self._pending.pop(i) for i in ids]
                try:
                    wanted = await self._wanted(taken)
                    if wanted:
                        await self.store.index_messages(wanted)
                except StoreError as error:
                    log.warning("knowledge: %d messages not indexed: %s", len(taken), error)
            await self._forget_queued()  # deletions that arrived while writing

    async def _wanted(self, messages: list[IndexedMessage]) -> list[IndexedMessage]:
        await self._read_forgotten()
        messages = [m for m in messages if not self._gone(m)]  # an old message edited
        on: dict[Place, bool] = {}
        for message in messages:
            place = place_of(message)
            if place not in on:
                on[place] = await self.knowledge_on(place)
        return [m for m in messages if on[place_of(m)] and not self._dropped(m)]

    async def _forget_queued(self) -> None:
        forget, self._forget = self._forget, set()
        channels, self._forget_channels = self._forget_channels, set()
        try:
            if forget:
                await self.store.forget_messages(forget)
            for channel_id in channels:
                await self.store.forget_channel(channel_id)
                channels = channels - {channel_id}
        except StoreError as error:
            log.warning("knowledge: deletion not written yet, trying again: %s", error)
            self._forget |= forget
            self._forget_channels |= channels

    # ---- background --------------------------------------------------------------------

    def start(self, retention_days: int) -> None:
        """Start writing the queue, and forgetting messages older than `retention_days`
        once a day (the first time now)."""
        self._tasks = [
            asyncio.create_task(self._writing()),
            asyncio.create_task(self._retention(retention_days)),
        ]

    async def _writing(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.flush_seconds):
                    await self._wake.wait()
            await self.flush()

    async def _retention(self, days: int) -> None:
        while True:
            await self.forget_old(days)
            await asyncio.sleep(RETENTION_CHECK_SECONDS)

    async def forget_old(self, days: int, now: dt.datetime | None = None) -> int:
        """Forget the messages written more than `days` days before `now`; how many.
        Never raises (a failure is logged and tried again tomorrow)."""
        cutoff = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=days)
        try:
            removed = await self.store.forget_older_than(cutoff)
        except StoreError as error:
            log.warning("knowledge: could not apply retention: %s", error)
            return 0
        if removed:
            log.info("knowledge: forgot %d messages older than %d days", removed, days)
        return removed

    async def close(self) -> None:
        """Stop the background tasks and write what is queued. Safe to call again."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.flush()
