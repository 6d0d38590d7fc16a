"""Who may read what: the rule behind every knowledge search, over plain data (no Discord).

A person "can read" a channel when their permissions there hold View Channel and Read
Message History (a voice or stage channel's text chat: Connect too); a thread takes its
parent's permissions, and a private thread is read only by its members and by those with
Manage Threads on its parent (Discord's docs: topics/threads, "private threads"). Their
permissions come from discord.py's `permissions_for` (readers_discord.py); this module
holds the part of the rule that is pure:

- `may_read`: whether given permissions (and thread membership) read a `Room`;
- `allowed_for_post`: the rooms whose messages an answer POSTED in a room may show. Every
  person who can read where the answer is posted must also be able to read each of them,
  for EVERY possible member (any roles, any member overwrite), established from
  overwrites alone; when it cannot be, the room is left out. Three sound reasons:
  1. it is the room itself;
  2. it is at least as open as the room's permission source (its parent, for a thread),
     overwrite by overwrite (`at_least_as_open`): a thread of the same parent, the parent
     itself, a channel synced to the same category, a channel with fewer denials;
  3. it is open to everyone in the server (`open_to_everyone`).
  Private threads are never shown elsewhere, nor a voice channel's chat in a text channel
  (it needs Connect too, which readers there need not hold: a member in timeout loses it).
  Rooms of another server are never allowed.

Discord computes a member's permissions in a channel as: the @everyone role's and their
roles' permissions OR-ed (Administrator: all), then the channel's @everyone overwrite,
then all their roles' overwrites (denials, then allows), then their own overwrite
(topics/permissions, "permission overwrites"). Each step is monotone: more allowed and less
denied never reads less. That is why reason 2 is sound; the property tests in
tests/knowledge/test_readers.py check all three against that algorithm.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# Permission bits (topics/permissions#permissions-bitwise-permission-flags).
ADMINISTRATOR = 1 << 3
VIEW_CHANNEL = 1 << 10
READ_MESSAGE_HISTORY = 1 << 16
CONNECT = 1 << 20
MANAGE_THREADS = 1 << 34
READ = VIEW_CHANNEL | READ_MESSAGE_HISTORY
VOICE_READ = READ | CONNECT


@dataclass(frozen=True, slots=True)
class Overwrite:
    """One permission overwrite of a channel: for a role (`is_role`; the @everyone role's
    id is the server's id) or a member, the bits it allows and denies."""

    target_id: int
    is_role: bool
    allow: int
    deny: int


@dataclass(frozen=True, slots=True)
class Room:
    """A channel or thread as the rule sees it. `source_id` is the channel whose
    overwrites decide it (itself; a thread's parent) and `overwrites` are the source's;
    `needs` the bits a reader needs; `private` a private thread (members only)."""

    channel_id: int
    guild_id: int
    source_id: int
    overwrites: tuple[Overwrite, ...]
    needs: int = READ
    private: bool = False


def may_read(permissions: int, room: Room, *, thread_member: bool = False) -> bool:
    """Whether someone with `permissions` in `room` (resolved as Discord does; for a
    thread, those in its parent) reads it; `thread_member`: they are in the private
    thread `room`."""
    if permissions & ADMINISTRATOR:
        return True
    if permissions & room.needs != room.needs:
        return False
    return not room.private or thread_member or bool(permissions & MANAGE_THREADS)


def _overwrite_map(room: Room) -> dict[tuple[bool, int], tuple[int, int]]:
    found: dict[tuple[bool, int], tuple[int, int]] = {}
    for overwrite in room.overwrites:
        key = (overwrite.is_role, overwrite.target_id)
        allow, deny = found.get(key, (0, 0))
        found[key] = (allow | overwrite.allow, deny | overwrite.deny)
    return found


def at_least_as_open(wider: Room, narrower: Room, bits: int) -> bool:
    """Whether every member holds each of `bits` in `wider` when they hold it in
    `narrower` (same server): each overwrite of `wider` allows at least and denies at
    most what the same target's overwrite of `narrower` does, for those bits (a missing
    overwrite allows and denies nothing)."""
    if wider.guild_id != narrower.guild_id:
        return False
    mine, theirs = _overwrite_map(wider), _overwrite_map(narrower)
    for key in mine.keys() | theirs.keys():
        allow, deny = mine.get(key, (0, 0))
        other_allow, other_deny = theirs.get(key, (0, 0))
        if other_allow & bits & ~allow or deny & bits & ~other_deny:
            return False
    return True


def open_to_everyone(room: Room, everyone: int, bits: int) -> bool:
    """Whether every member of the server holds all of `bits` in `room`, the @everyone
    role having the server-wide permissions `everyone`: @everyone gets them (from its
    permissions or its overwrite) and no overwrite of a role or member denies any."""
    if everyone & ADMINISTRATOR:
        return True
    for overwrite in room.overwrites:
        is_everyone = overwrite.is_role and overwrite.target_id == room.guild_id
        if is_everyone:
            everyone = (everyone & ~overwrite.deny) | overwrite.allow
        elif overwrite.deny & bits:
            return False
    return everyone & bits == bits


def _shown_in(candidate: Room, where: Room, everyone: int) -> bool:
    """Whether everyone who reads `where` reads `candidate` (see the module's rule)."""
    if candidate.channel_id == where.channel_id:
        return True
    if candidate.private or candidate.guild_id != where.guild_id:
        return False
    # A voice channel's chat also needs Connect, which the readers of a text channel
    # need not hold (a member in timeout loses it whatever the overwrites say).
    if candidate.needs & ~where.needs:
        return False
    bits = candidate.needs
    return at_least_as_open(candidate, where, bits) or open_to_everyone(candidate, everyone, bits)


def allowed_for_post(where: Room, rooms: Iterable[Room], everyone: int) -> frozenset[int]:
    """The ids of `rooms` whose messages an answer posted in `where` may show: those
    that everyone who reads `where` also reads (always `where` itself). `everyone`: the
    server's @everyone role permissions."""
    allowed = {where.channel_id}
    # Rooms of one source with the same needs are decided alike (a forum's thousands of
    # posts): each kind is decided once.
    decided: dict[tuple[int, int, int, bool], bool] = {}
    for room in rooms:
        kind = (room.guild_id, room.source_id, room.needs, room.private)
        shown = decided.get(kind) if room.channel_id != where.channel_id else True
        if shown is None:
            shown = decided[kind] = _shown_in(room, where, everyone)
        if shown:
            allowed.add(room.channel_id)
    return frozenset(allowed)
