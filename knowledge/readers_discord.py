"""The readers' rule (knowledge/readers.py) on discord.py's objects: which channel and
thread ids a member can read now, and which an answer may show.

- `Readers.readable_by(member)`: the rooms of the member's server they read now, from
  discord.py's `permissions_for` (roles and overwrites as the cache holds them; a thread:
  its parent's) and, for a private thread, whether they are in it (Discord's Get Thread
  Member, GET /channels/{id}/thread-members/{user}: listing all members would need the
  privileged members intent), cached for CACHE_SECONDS only, so that leaving a thread
  applies within seconds.
- `Readers.posted_in(channel)`: the rooms an answer posted in `channel` may show
  (readers.allowed_for_post).
- `Readers.private_for(user, guild_ids)`: for an answer only `user` sees (a DM, an
  ephemeral reply): everything they read in those servers, their Member fetched afresh
  for each answer (GET /guilds/{id}/members/{user}: one request per server; not a
  member: nothing there), so a role lost applies at once.

The rooms are the server's channels with text (text, announcement, forum, voice and stage
chats) and its threads: the active ones discord.py knows, remembered after they are
archived (discord.py forgets those), and the archived ones `find_archived` lists from
Discord (public ones, and private ones the bot is in); a thread whose parent is unknown
is left out, and so is one deleted (`forget_channel`: a deleted thread, or a deleted
channel's threads, never counts again, even if the index still holds some of it).
Failures of Discord requests leave the room out (logged): never more than can be
established.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Iterable

import discord

from conversation.recency import RecentlyUsed
from discord_side.failures import REQUEST_FAILURES, describe
from knowledge.readers import READ, VOICE_READ, Overwrite, Room, allowed_for_post, may_read

log = logging.getLogger("chatbot")

CACHE_SECONDS = 2.0  # how long a private thread's membership is trusted ("read now")
CACHE_LIMIT = 10_000
THREADS_LIMIT = 50_000  # threads remembered (archived ones are not in discord.py's cache)
TEXT_TYPES = frozenset(
    {
        discord.ChannelType.text,
        discord.ChannelType.news,
        discord.ChannelType.forum,
        discord.ChannelType.voice,
        discord.ChannelType.stage_voice,
    }
)
VOICE_TYPES = frozenset({discord.ChannelType.voice, discord.ChannelType.stage_voice})
Readable = discord.abc.GuildChannel | discord.Thread


def overwrites_of(channel: discord.abc.GuildChannel) -> tuple[Overwrite, ...]:
    """`channel`'s permission overwrites as plain data."""
    found = []
    for target, overwrite in channel.overwrites.items():
        is_role = isinstance(target, discord.Role) or getattr(target, "type", None) is discord.Role
        allow, deny = overwrite.pair()
        found.append(Overwrite(target.id, is_role, allow.value, deny.value))
    return tuple(found)


def room_of(
    channel: Readable, overwrites: dict[int, tuple[Overwrite, ...]] | None = None
) -> Room | None:
    """The `Room` of a channel or thread with messages; None for others (a category) or
    a thread whose parent is not cached. `overwrites`: parents' overwrites already read,
    by parent id (filled in as they are read)."""
    if isinstance(channel, discord.Thread):
        parent = channel.parent
        if parent is None:
            return None
        private = channel.type is discord.ChannelType.private_thread
        known = overwrites if overwrites is not None else {}
        if parent.id not in known:
            known[parent.id] = overwrites_of(parent)
        return Room(channel.id, channel.guild.id, parent.id, known[parent.id], READ, private)
    if channel.type not in TEXT_TYPES:
        return None
    needs = VOICE_READ if channel.type in VOICE_TYPES else READ
    return Room(channel.id, channel.guild.id, channel.id, overwrites_of(channel), needs)


class _Expiring:
    """A small cache whose entries are trusted for CACHE_SECONDS."""

    def __init__(self) -> None:
        self._entries: dict[object, tuple[float, object]] = {}

    def get(self, key: object) -> tuple[bool, object]:
        entry = self._entries.get(key)
        if entry is None or time.monotonic() - entry[0] > CACHE_SECONDS:
            return False, None
        return True, entry[1]

    def put(self, key: object, value: object) -> None:
        if len(self._entries) >= CACHE_LIMIT:
            self._entries.clear()  # rare; the next reads ask Discord again
        self._entries[key] = (time.monotonic(), value)


class Readers:
    """Who reads what on `client`'s servers (see the module's docstring)."""

    def __init__(self, client: discord.Client) -> None:
        self.client = client
        self._in_threads = _Expiring()  # (thread id, user id) -> bool
        self._threads: dict[int, discord.Thread] = {}  # id -> thread, oldest remembered first
        self._deleted: RecentlyUsed[int] = RecentlyUsed(THREADS_LIMIT)  # channels, threads

    def rooms(self, guild: discord.Guild) -> list[tuple[Readable, Room]]:
        """The rooms of `guild` discord.py knows, each with its channel: its channels,
        its active threads, and the threads remembered (discord.py drops a thread from
        its cache when it is archived, but its messages stay in the index)."""
        for thread in guild.threads:
            self.remember_thread(thread)
        channels: list[Readable] = [c for c in guild.channels if c.id not in self._deleted]
        channels += [t for t in self._threads.values() if t.guild.id == guild.id]
        found = []
        parents: dict[int, tuple[Overwrite, ...]] = {}
        for channel in channels:
            room = room_of(channel, parents)
            if room is not None:
                found.append((channel, room))
        return found

    def remember_thread(self, thread: discord.Thread) -> None:
        """Count `thread` among its server's rooms, archived or not (the oldest
        remembered are forgotten past THREADS_LIMIT; listing finds them again)."""
        self._threads.pop(thread.id, None)
        if thread.id in self._deleted or thread.parent_id in self._deleted:
            return  # listed, or in discord.py's cache, just before its deletion arrived
        self._threads[thread.id] = thread
        while len(self._threads) > THREADS_LIMIT:
            del self._threads[next(iter(self._threads))]

    def forget_channel(self, channel_id: int) -> None:
        """A channel or thread was deleted: neither it nor a thread of it is a room again
        (the last THREADS_LIMIT deletions are remembered)."""
        self._deleted.use(channel_id)
        self._deleted.overflow()
        gone = [t.id for t in self._threads.values() if channel_id in (t.id, t.parent_id)]
        for thread_id in gone:
            del self._threads[thread_id]

    async def find_archived(self, guild: discord.Guild) -> int:
        """Remember `guild`'s archived threads in the channels whose history the bot
        reads (Discord's listings need Read Message History): the public ones (forum
        posts too) and the private ones the bot is in; how many. A channel Discord
        refuses is skipped (logged)."""
        found = 0
        for channel in guild.channels:
            if not isinstance(channel, discord.TextChannel | discord.ForumChannel):
                continue
            if not channel.permissions_for(guild.me).read_message_history:
                continue
            try:
                async for thread in channel.archived_threads(limit=None):
                    self.remember_thread(thread)
                    found += 1
                if isinstance(channel, discord.TextChannel):  # those it is in (to read them)
                    async for thread in channel.archived_threads(private=True, joined=True):
                        self.remember_thread(thread)
                        found += 1
            except REQUEST_FAILURES as error:
                log.warning("could not list %s's archived threads: %s", channel.id, describe(error))
        return found

    def posted_in(self, channel: Readable) -> frozenset[int]:
        """The ids an answer posted in `channel` (a server's channel or thread) may use."""
        where = room_of(channel)
        if where is None:
            return frozenset()
        everyone = channel.guild.default_role.permissions.value
        return allowed_for_post(where, (room for _, room in self.rooms(channel.guild)), everyone)

    def thread(self, thread_id: int) -> discord.Thread | None:
        """A thread remembered (`remember_thread`), archived or not."""
        return self._threads.get(thread_id)

    async def readable_by(
        self, member: discord.Member, among: Collection[int] | None = None
    ) -> frozenset[int]:
        """The ids of `member`'s server's rooms (those `among`, if given) they can read
        now."""
        found: set[int] = set()
        resolved: dict[int, int] = {}  # source channel id -> the member's permissions there
        for channel, room in self.rooms(member.guild):
            if among is not None and room.channel_id not in among:
                continue
            source = channel.parent if isinstance(channel, discord.Thread) else channel
            if source is None:
                continue
            if source.id not in resolved:
                resolved[source.id] = source.permissions_for(member).value
            permissions = resolved[source.id]
            if not may_read(permissions, room):
                if not room.private or not may_read(permissions, room, thread_member=True):
                    continue
                if not await self._in_thread(channel, member.id):  # type: ignore[arg-type]
                    continue
            found.add(room.channel_id)
        return frozenset(found)

    async def private_for(self, user: discord.abc.User, guild_ids: Iterable[int]) -> frozenset[int]:
        """Everything `user` reads in the servers `guild_ids` that they share with the bot."""
        found: set[int] = set()
        for guild_id in guild_ids:
            guild = self.client.get_guild(guild_id)
            if guild is None:
                continue
            member = await self.member(guild, user.id)
            if member is not None:
                found |= await self.readable_by(member)
        return frozenset(found)

    async def member(self, guild: discord.Guild, user_id: int) -> discord.Member | None:
        """`user_id`'s Member in `guild` as it is now, or None if not in it (or not
        known: the request failed). Always fetched, never kept: without the members
        intent no event says when their roles change (discord.py's cache may hold a
        member seen in voice, with the roles they had then)."""
        try:
            member = await guild.fetch_member(user_id)
        except discord.NotFound:
            member = None
        except REQUEST_FAILURES as error:
            log.warning(
                "could not read member %s of server %s: %s", user_id, guild.id, describe(error)
            )
            return None
        return member

    async def _in_thread(self, thread: discord.Thread, user_id: int) -> bool:
        cached, value = self._in_threads.get((thread.id, user_id))
        if cached:
            return bool(value)
        try:
            async with asyncio.timeout(10):
                await thread.fetch_member(user_id)
        except discord.NotFound:
            member = False
        except (*REQUEST_FAILURES, TimeoutError) as error:
            log.warning("could not read thread %s's members: %s", thread.id, describe(error))
            return False
        else:
            member = True
        self._in_threads.put((thread.id, user_id), member)
        return member
