"""Reading history back into the knowledge index when knowledge is turned on: `Backfiller`.

Turning knowledge on for a server or a channel starts a `Job`: the channels it covers
(for a server, its text and announcement channels and its forums; for a channel, that
one), their threads (the active ones the bot knows, and the archived public ones, listed
from Discord), those the bot may read (View Channel and Read Message History) and where
knowledge is on. Each gets a `Backfill` row in the store; then the history of each is
read newest first, back to KNOWLEDGE_BACKFILL_DAYS, 100 messages a request (Discord's
most per page: resources/message#get-channel-messages), and each page is indexed and
its resume point saved, so a restart resumes where it stopped (`resume`). A channel or
thread deleted meanwhile is read no further and its row dropped (the keeper leaves out
what was read of it: Keeper.channel_gone).

Pacing: one job reads at a time, one page at a time, with PAGE_PAUSE seconds between
pages, so answers keep most of Discord's rate limit for the bot; discord.py itself waits
when a bucket's headers say it is spent, or after a 429. Progress (`Progress.line`) goes
to the job's `report` (the /settings command's reply, edited) at most every
REPORT_SECONDS and when the job ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import discord

from conversation.channel_settings import Place
from knowledge.indexing import counts, indexed
from knowledge.keeper import Keeper
from store import StoreError
from store.knowledge import Backfill

log = logging.getLogger("chatbot")

PAGE = 100  # Discord's largest page of history
PAGE_PAUSE = 0.2  # seconds between two pages of history
REPORT_SECONDS = 2.0
CLOSE_SECONDS = 5.0  # how long closing waits for the page being read
Report = Callable[[str], Awaitable[None]]


@dataclass(slots=True)
class Progress:
    """How far a job has got: channels listed and done, messages indexed."""

    channels: int = 0
    done: int = 0
    messages: int = 0
    finished: bool = False

    def line(self) -> str:
        """ "Reading history: 3 of 12 channels, 4,200 messages" (or, once finished,
        "Read the history: 12 channels, 4,200 messages.")."""
        channels = "channel" if self.channels == 1 else "channels"
        if self.finished:
            return f"Read the history: {self.channels:,} {channels}, {self.messages:,} messages."
        return (
            f"Reading history: {self.done:,} of {self.channels:,} {channels}, "
            f"{self.messages:,} messages"
        )


def next_point(
    page: Sequence[tuple[int, dt.datetime]], since: dt.datetime, limit: int = PAGE
) -> tuple[int | None, bool, int]:
    """After a page of history (ids and times, newest first): the id to read before
    next, whether the channel is done (a short page, or one reaching past `since`), and
    how many of the page are recent enough to keep (the newest ones)."""
    keep = sum(1 for _, when in page if when >= since)
    done = len(page) < limit or keep < len(page)
    return (page[-1][0] if page else None), done, keep


@dataclass(eq=False)
class Job:
    """One turning-on: a server (`channel_id` None) or a channel, read in the background."""

    guild_id: int
    channel_id: int | None
    report: Report | None = None
    rows: list[Backfill] = field(default_factory=list)  # set for a resumed job
    progress: Progress = field(default_factory=Progress)
    cancelled: bool = False
    skip: set[int] = field(default_factory=set)  # channels turned off meanwhile
    reported_at: float = 0.0

    def covers(self, channel: discord.abc.GuildChannel | discord.Thread) -> bool:
        """Whether reading `channel` is still wanted."""
        parent = getattr(channel, "parent_id", None)
        return not self.cancelled and channel.id not in self.skip and parent not in self.skip


class Backfiller:
    """Runs `Job`s one at a time in the background."""

    def __init__(
        self,
        client: discord.Client,
        keeper: Keeper,
        days: int,
        *,
        page_pause: float = PAGE_PAUSE,
    ) -> None:
        self.client = client
        self.keeper = keeper
        self.store = keeper.store
        self.days = days
        self.page_pause = page_pause
        self.jobs: list[Job] = []  # waiting and running, oldest first
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self, guild_id: int, channel_id: int | None, report: Report | None = None) -> Job:
        """Read the history of a server (`channel_id` None) or of one channel."""
        job = Job(guild_id, channel_id, report)
        self._add(job)
        return job

    async def resume(self) -> None:
        """Carry on with the backfills a previous run left unfinished (from the store)."""
        try:
            rows = await self.store.backfills()
        except StoreError as error:
            log.warning("knowledge: cannot read unfinished backfills: %s", error)
            return
        by_guild: dict[int, list[Backfill]] = {}
        for row in rows:
            by_guild.setdefault(row.guild_id, []).append(row)
        for guild_id, guild_rows in by_guild.items():
            log.info("knowledge: resuming %d unfinished backfills", len(guild_rows))
            self._add(Job(guild_id, None, rows=guild_rows))

    def stop(self, guild_id: int, channel_ids: set[int] | None = None) -> None:
        """Knowledge was turned off: stop reading the server (`channel_ids` None) or
        those channels (and their threads)."""
        for job in self.jobs:
            if job.guild_id != guild_id:
                continue
            if channel_ids is None:
                job.cancelled = True
            else:
                job.skip |= channel_ids

    def jobs_in(self, guild_id: int) -> list[Job]:
        """The jobs of a server that are waiting or running."""
        return [job for job in self.jobs if job.guild_id == guild_id]

    def _add(self, job: Job) -> None:
        self.jobs.append(job)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        """Stop reading after the page being read is saved (waiting at most
        CLOSE_SECONDS for it), so a restart resumes at the next page and reads none twice."""
        self._closing = True
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_SECONDS):
                await asyncio.shield(self._task)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        await self.client.wait_until_ready()
        while self.jobs and not self._closing:
            job = self.jobs[0]
            try:
                await self._do(job)
            except Exception:
                log.exception("knowledge: a backfill failed")
            finally:
                self.jobs.remove(job)

    async def _do(self, job: Job) -> None:
        if not job.rows:
            job.rows = await self._plan(job)
        job.progress.channels = len(job.rows)
        for row in job.rows:
            if self._closing:
                return
            channel = await self._channel(row)
            if channel is not None and self._gone(channel):
                await self.store.forget_backfill(row.channel_id)
            elif channel is not None and job.covers(channel):
                if await self._on(channel):
                    await self._read(job, channel, row)
                else:  # turned off while the bot was away
                    await self.store.forget_backfill(row.channel_id)
            job.progress.done += 1
            await self._report(job)
        job.progress.finished = not job.cancelled
        await self._report(job, last=True)
        where = job.channel_id or job.guild_id
        log.info("knowledge: backfill of %s: %s", where, job.progress.line())

    async def _plan(self, job: Job) -> list[Backfill]:
        """The channels and threads of `job` to read, each saved as a Backfill row from
        the newest message: all of them, those read before too, since turning knowledge
        on reads everything again (off and on again: what was written meanwhile, in a
        thread empty before too; a message read twice is written once)."""
        guild = self.client.get_guild(job.guild_id)
        if guild is None:
            return []
        wanted = await self._readable(guild, job.channel_id)
        since = dt.datetime.now(dt.UTC) - dt.timedelta(days=self.days)
        rows = [Backfill(c.id, guild.id, None, since, 0, False) for c in wanted]
        for row in rows:
            await self.store.save_backfill(row)
        return rows

    async def _readable(
        self, guild: discord.Guild, channel_id: int | None
    ) -> list[discord.abc.GuildChannel | discord.Thread]:
        """The channels (then their threads) the bot may read where knowledge is on."""
        parents: list[discord.TextChannel | discord.ForumChannel] = [
            c
            for c in [*guild.text_channels, *guild.forums]
            if channel_id is None or c.id == channel_id
        ]
        parents = [c for c in parents if _may_read(c) and await self._on(c)]
        found: list[discord.abc.GuildChannel | discord.Thread] = [
            c for c in parents if isinstance(c, discord.TextChannel)
        ]
        ids = {c.id for c in parents}
        found += [t for t in guild.threads if t.parent_id in ids and _may_read(t)]
        for parent in parents:
            try:
                async for thread in parent.archived_threads(limit=None):
                    if _may_read(thread) and thread.id not in {c.id for c in found}:
                        found.append(thread)
            except discord.HTTPException as error:
                log.info("knowledge: cannot list #%s's archived threads: %s", parent.name, error)
        return found

    def _gone(self, channel: discord.abc.GuildChannel | discord.Thread) -> bool:
        """Whether `channel` (or a thread's parent) was deleted: its job reads no more."""
        return self.keeper.channel_gone(channel.id, getattr(channel, "parent_id", None))

    async def _on(self, channel: discord.abc.GuildChannel | discord.Thread) -> bool:
        return await self.keeper.knowledge_on(Place.of(channel))

    async def _channel(self, row: Backfill) -> discord.abc.GuildChannel | discord.Thread | None:
        """The channel or thread of `row`, fetched if not known (an archived thread);
        None (its row dropped) when it is gone or unreadable."""
        channel = self.client.get_channel(row.channel_id)
        if channel is None:
            try:
                channel = await self.client.fetch_channel(row.channel_id)
            except discord.HTTPException as error:
                log.info("knowledge: channel %s is gone (%s): not read", row.channel_id, error)
                await self.store.forget_backfill(row.channel_id)
                return None
        return channel  # type: ignore[return-value]

    async def _read(
        self, job: Job, channel: discord.abc.GuildChannel | discord.Thread, row: Backfill
    ) -> None:
        """Read `channel`'s history from `row`'s point, a page at a time, saving each."""
        me = self.client.user.id if self.client.user else 0
        while job.covers(channel) and not self._gone(channel) and not self._closing:
            before = discord.Object(row.before_id) if row.before_id is not None else None
            try:
                page = [m async for m in channel.history(limit=PAGE, before=before)]  # type: ignore[union-attr]
            except discord.HTTPException as error:
                log.info("knowledge: stopped reading channel %s: %s", channel.id, error)
                return
            point, done, keep = next_point([(m.id, m.created_at) for m in page], row.since)
            kept = [i for m in page[:keep] if counts(m, me) and (i := indexed(m)) is not None]
            written = await self.keeper.write(kept)
            row = Backfill(
                row.channel_id, row.guild_id, point or row.before_id, row.since,
                row.messages + written, done,
            )  # fmt: skip
            if self._gone(channel):  # deleted meanwhile: the keeper forgot its messages
                await self.store.forget_backfill(row.channel_id)
                return
            if not job.covers(channel):  # turned off while this page was read: forget it
                await self.store.forget_messages([m.message_id for m in kept])
                return
            await self.store.save_backfill(row)
            job.progress.messages += written
            await self._report(job)
            if done or self._closing:
                return
            await asyncio.sleep(self.page_pause)

    async def _report(self, job: Job, *, last: bool = False) -> None:
        now = time.monotonic()
        if job.report is None or (not last and now - job.reported_at < REPORT_SECONDS):
            return
        job.reported_at = now
        try:
            await job.report(job.progress.line())
        except Exception as error:  # the reply may be gone or expired: log only
            log.info("knowledge: progress not shown (%r): %s", error, job.progress.line())
            job.report = None


def _may_read(channel: discord.abc.GuildChannel | discord.Thread) -> bool:
    permissions = channel.permissions_for(channel.guild.me)
    return permissions.read_messages and permissions.read_message_history
