"""Which answers are offered the knowledge tools, and for whom: `KnowledgeOffer`.

In a server, an answer is offered them where /settings knowledge is on; what they read
is what both the asker and everyone who can read where the answer is posted can read
(readers.py). In a DM (a private answer), they are offered when knowledge is on
somewhere in a server the bot is in, and read everything the asker can read in those
servers. Which servers have knowledge on is read from the stored settings as soon as a
shard is ready (`read_now`), then in the
background when an answer finds the last read older than REFRESH_SECONDS (the settings'
own cache time), and learnt at once from any answer in such a server; so a DM may go
without the tools for that long after knowledge is first turned on (tools_for is
synchronous: it cannot wait for the store). Before the first such read, a DM is offered
them if knowledge is on anywhere in the stored settings (read at start-up, `start`), and
waits for that read: the first DM after a restart has them. The same read lists each
such server's archived threads, every ARCHIVED_SECONDS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from typing import TYPE_CHECKING

import discord

from knowledge.readers_discord import Readable, Readers
from knowledge.tools import Audience, KnowledgeTools
from store import Scope, StoreError

if TYPE_CHECKING:
    from conversation.channel_settings import Effective
    from discord_side.replies import Reply
    from store import Store

log = logging.getLogger("chatbot")

REFRESH_SECONDS = 30.0
ARCHIVED_SECONDS = 600.0  # how often a server's archived threads are listed again
SETTLE_SECONDS = 5.0  # the longest an answer's first tool call waits for a read under way
SCOPES_PER_READ = 500  # scopes per settings query (PostgreSQL takes at most 32,767 values)


class KnowledgeOffer:
    """`ToolUse`'s knowledge side: called per answer, a bound `KnowledgeTools` or None."""

    def __init__(self, client: discord.Client, store: Store) -> None:
        self.client = client
        self.store = store
        self.readers = Readers(client)
        self.guilds_on: set[int] = set()  # servers with knowledge on somewhere
        self._stored_on = False  # on somewhere, as stored at start-up, until the first read
        self._closed = False
        self._learnt: set[int] = set()  # servers learnt from answers during a read
        self._read_at = -REFRESH_SECONDS
        self._reading: asyncio.Task[None] | None = None
        self._listed_at: dict[int, float] = {}  # guild id -> when its archived threads were

    def __call__(self, reply: Reply, effective: Effective) -> KnowledgeTools | None:
        """The knowledge tools for the answer `reply` shows, or None where not offered."""
        self._refresh_soon()
        channel = reply.channel
        guild = getattr(channel, "guild", None)
        if guild is None:  # a DM: a private answer
            if not (self.guilds_on or self._stored_on):
                return None
            user = reply.message.author
            return self._tools(lambda: self._private(user), home=None)
        if not getattr(effective, "knowledge", False):
            return None
        self.guilds_on.add(guild.id)
        self._learnt.add(guild.id)
        author = reply.message.author
        return self._tools(lambda: self._posted(channel, author), home=channel.id)

    def _tools(
        self, allowed: Callable[[], Awaitable[Collection[int]]], *, home: int | None
    ) -> KnowledgeTools:
        return KnowledgeTools(self.store, Audience(allowed, self.name_of, home, self.server_of))

    async def _private(self, user: discord.abc.User) -> Collection[int]:
        """What a private answer to `user` may use: all they read where knowledge is on."""
        await self._settled()
        return await self.readers.private_for(user, frozenset(self.guilds_on))

    async def _posted(self, channel: Readable, author: discord.abc.User) -> Collection[int]:
        """What an answer to `author` posted in `channel` may use: what every reader of
        `channel` reads, and the asker too (they may lack Read Message History there)."""
        await self._settled()
        shown = self.readers.posted_in(channel)
        member = author if isinstance(author, discord.Member) else None
        if member is None:
            member = await self.readers.member(channel.guild, author.id)
        if member is None:
            return frozenset()
        return shown & await self.readers.readable_by(member, among=shown)

    def channel_deleted(self, channel_id: int) -> None:
        """A channel or thread was deleted: nobody reads it (or its threads) again."""
        self.readers.forget_channel(channel_id)

    def name_of(self, channel_id: int) -> str | None:
        """A channel's or thread's name, if discord.py knows it."""
        channel = self.client.get_channel(channel_id) or self.readers.thread(channel_id)
        return getattr(channel, "name", None)

    def server_of(self, channel_id: int) -> tuple[int, str] | None:
        """A channel's or thread's server, (id, name), if discord.py knows it."""
        channel = self.client.get_channel(channel_id) or self.readers.thread(channel_id)
        guild = getattr(channel, "guild", None)
        return None if guild is None else (guild.id, guild.name)

    async def _settled(self) -> None:
        """Wait (a little) for a read of the settings and threads under way."""
        if self._reading is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SETTLE_SECONDS):
                    await asyncio.shield(self._reading)

    async def start(self) -> None:
        """At start-up, before Discord connects: whether knowledge is on anywhere, as
        stored. Never raises (a failure is logged: DMs then wait for the first read)."""
        try:
            self._stored_on = bool(await self.store.scopes_where("knowledge", "on"))
        except StoreError as error:
            log.warning("knowledge: could not read where it is on: %s", error)

    async def close(self) -> None:
        """Stop a read under way, and read no more (at shutdown)."""
        self._closed = True
        if self._reading is not None:
            self._reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reading

    def read_now(self) -> None:
        """Read which servers have knowledge on now, whenever it was last read (a shard
        has just connected: its servers are known); after the read under way, if any
        (it may have missed those servers)."""
        if self._reading is not None:
            self._reading.add_done_callback(lambda _: self.read_now())
            return
        self._read_at = -REFRESH_SECONDS
        self._refresh_soon()

    def _refresh_soon(self) -> None:
        if self._closed:
            return
        if self._reading is None and time.monotonic() - self._read_at >= REFRESH_SECONDS:
            self._reading = asyncio.get_running_loop().create_task(self._refresh())
            self._reading.add_done_callback(lambda _: setattr(self, "_reading", None))

    async def _refresh(self) -> None:
        """Read which of the bot's servers have knowledge on (server default, a channel
        or a thread)."""
        self._read_at = time.monotonic()
        self._learnt.clear()
        owner: dict[Scope, int] = {}
        for guild in self.client.guilds:
            owner[Scope("guild", guild.id)] = guild.id
            for channel in [*guild.channels, *guild.threads]:
                owner[Scope("channel", channel.id)] = guild.id
        scopes = list(owner)
        on: set[int] = set()
        try:
            for start in range(0, len(scopes), SCOPES_PER_READ):
                found = await self.store.get_settings(scopes[start : start + SCOPES_PER_READ])
                for scope, settings in found.items():
                    stored = settings.get("knowledge")
                    if stored is not None and stored.value == "on":
                        on.add(owner[scope])
        except StoreError as error:
            log.warning("knowledge: could not read where it is on: %s", error)
            return
        self.guilds_on = on | self._learnt
        self._stored_on = False  # read with the servers known: guilds_on says it now
        for guild_id in list(self.guilds_on):  # answers may add to it meanwhile
            guild = self.client.get_guild(guild_id)
            listed = self._listed_at.get(guild_id)
            if guild is None or (listed is not None and self._read_at - listed < ARCHIVED_SECONDS):
                continue
            self._listed_at[guild_id] = self._read_at
            try:
                await self.readers.find_archived(guild)
            except Exception as error:  # a background read: logged, never unretrieved
                log.warning("knowledge: could not list server %s's threads: %r", guild_id, error)
