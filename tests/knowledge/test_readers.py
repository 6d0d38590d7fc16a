"""The readers' rule (knowledge/readers.py) against a model of Discord's own permission
algorithm (topics/permissions, "permission overwrites"), on random servers: an answer
posted in a room never shows a room that some possible reader of it cannot read."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from knowledge.readers import (
    ADMINISTRATOR,
    CONNECT,
    MANAGE_THREADS,
    READ,
    READ_MESSAGE_HISTORY,
    VIEW_CHANNEL,
    VOICE_READ,
    Overwrite,
    Room,
    allowed_for_post,
    at_least_as_open,
    may_read,
    open_to_everyone,
)

GUILD = 1
ROLES = (11, 12, 13)
MEMBERS = (21, 22, 23)  # 23 never has an overwrite of its own
CHANNEL_BITS = (VIEW_CHANNEL, READ_MESSAGE_HISTORY, CONNECT)
ALL = (1 << 53) - 1


@dataclass(frozen=True)
class Member:
    id: int
    roles: frozenset[int]
    timed_out: bool


def discord_permissions(
    member: Member, roles: dict[int, int], overwrites: tuple[Overwrite, ...]
) -> int:
    """Discord's algorithm (as discord.py's GuildChannel.permissions_for): roles, then
    @everyone's overwrite, the roles' overwrites, the member's; no View: nothing; in a
    timeout only View and Read Message History remain."""
    base = roles[GUILD]
    for role in member.roles:
        base |= roles[role]
    if base & ADMINISTRATOR:
        return ALL
    for overwrite in overwrites:
        if overwrite.is_role and overwrite.target_id == GUILD:
            base = (base & ~overwrite.deny) | overwrite.allow
    allow = deny = 0
    for overwrite in overwrites:
        if overwrite.is_role and overwrite.target_id in member.roles:
            allow, deny = allow | overwrite.allow, deny | overwrite.deny
    base = (base & ~deny) | allow
    for overwrite in overwrites:
        if not overwrite.is_role and overwrite.target_id == member.id:
            base = (base & ~overwrite.deny) | overwrite.allow
    if not base & VIEW_CHANNEL:
        return 0
    if member.timed_out:
        base &= VIEW_CHANNEL | READ_MESSAGE_HISTORY
    return base


def everyone_possible() -> list[Member]:
    """Every kind of member the random servers can hold: each set of roles, each member
    id (with or without overwrites), in a timeout or not."""
    found = []
    for size in range(len(ROLES) + 1):
        for roles in itertools.combinations(ROLES, size):
            for member_id, timed_out in itertools.product(MEMBERS, (False, True)):
                found.append(Member(member_id, frozenset(roles), timed_out))
    return found


POPULATION = everyone_possible()

bits = st.sampled_from(CHANNEL_BITS).map(int) | st.just(0) | st.just(READ)
targets = st.sampled_from([(True, GUILD), *((True, r) for r in ROLES), (False, 21), (False, 22)])
overwrite = st.builds(
    lambda target, allow, deny: Overwrite(target[1], target[0], allow, deny & ~allow),
    targets,
    bits,
    bits,
)
overwrites = st.lists(overwrite, max_size=4, unique_by=lambda o: (o.is_role, o.target_id)).map(
    tuple
)
guild_bits = st.sets(st.sampled_from((VIEW_CHANNEL, READ_MESSAGE_HISTORY, CONNECT, MANAGE_THREADS)))
role_permissions = st.fixed_dictionaries(
    {
        GUILD: guild_bits.map(sum),
        **{role: st.one_of(guild_bits.map(sum), st.just(ADMINISTRATOR)) for role in ROLES},
    }
)


@st.composite
def servers(draw: st.DrawFn) -> tuple[dict[int, int], list[Room], dict[int, frozenset[int]]]:
    """Role permissions, rooms (channels, voice chats, their public and private threads)
    and each private thread's members."""
    roles = draw(role_permissions)
    rooms: list[Room] = []
    members: dict[int, frozenset[int]] = {}
    next_id = itertools.count(100)
    for _ in range(draw(st.integers(1, 4))):
        channel_id = next(next_id)
        channel_overwrites = draw(overwrites)
        voice = draw(st.booleans())
        rooms.append(
            Room(channel_id, GUILD, channel_id, channel_overwrites, VOICE_READ if voice else READ)
        )
        if voice:
            continue
        for private in draw(st.lists(st.booleans(), max_size=2)):
            thread_id = next(next_id)
            rooms.append(Room(thread_id, GUILD, channel_id, channel_overwrites, READ, private))
            if private:
                members[thread_id] = frozenset(draw(st.sets(st.sampled_from(MEMBERS))))
    if draw(st.booleans()):  # a room of another server, open to all there
        rooms.append(Room(next(next_id), 2, 999, ()))
    return roles, rooms, members


def reads(
    member: Member, room: Room, roles: dict[int, int], members: dict[int, frozenset[int]]
) -> bool:
    if room.guild_id != GUILD:
        return False  # the population are members of server 1 only
    permissions = discord_permissions(member, roles, room.overwrites)
    return may_read(permissions, room, thread_member=member.id in members.get(room.channel_id, ()))


@given(servers())
def test_an_answer_posted_anywhere_shows_only_rooms_all_its_readers_read(server) -> None:
    roles, rooms, members = server
    for where in rooms:
        allowed = allowed_for_post(where, rooms, roles[GUILD])
        assert where.channel_id in allowed
        for room in rooms:
            if room.channel_id not in allowed:
                continue
            for member in POPULATION:
                if reads(member, where, roles, members):
                    assert reads(member, room, roles, members), (where, room, member)


@given(servers())
def test_the_rule_is_not_empty_handed(server) -> None:
    """What is clearly shareable is shared: a room's own public threads and its parent,
    and any text room open to the whole server."""
    roles, rooms, _ = server
    for where in rooms:
        allowed = allowed_for_post(where, rooms, roles[GUILD])
        for room in rooms:
            same_source = room.source_id == where.source_id and room.guild_id == where.guild_id
            if same_source and not room.private and room.needs == where.needs:
                assert room.channel_id in allowed
            if room.guild_id == where.guild_id and room.needs == READ and not room.private:
                if open_to_everyone(room, roles[GUILD], READ):
                    assert room.channel_id in allowed


STAFF = 11
HIDDEN = Overwrite(GUILD, True, 0, VIEW_CHANNEL)
STAFF_SEES = Overwrite(STAFF, True, VIEW_CHANNEL, 0)
EVERYONE = VIEW_CHANNEL | READ_MESSAGE_HISTORY | CONNECT


def room(channel_id: int, *overwrites: Overwrite, source: int | None = None, **kw) -> Room:
    return Room(channel_id, GUILD, source or channel_id, tuple(overwrites), **kw)


def test_a_staff_channel_is_not_shown_in_a_public_one_but_the_public_one_is_in_staff() -> None:
    public, staff = room(100), room(200, HIDDEN, STAFF_SEES)
    assert allowed_for_post(public, [public, staff], EVERYONE) == {100}
    assert allowed_for_post(staff, [public, staff], EVERYONE) == {100, 200}


def test_threads_follow_their_parent_and_private_threads_stay_home() -> None:
    public = room(100)
    thread = room(101, source=100)
    private = room(102, source=100, private=True)
    rooms = [public, thread, private]
    assert allowed_for_post(public, rooms, EVERYONE) == {100, 101}
    assert allowed_for_post(thread, rooms, EVERYONE) == {100, 101}
    assert allowed_for_post(private, rooms, EVERYONE) == {100, 101, 102}


def test_a_staff_thread_is_shown_only_where_staff_alone_read() -> None:
    staff = room(200, HIDDEN, STAFF_SEES)
    staff_thread = room(201, HIDDEN, STAFF_SEES, source=200)
    synced = room(300, HIDDEN, STAFF_SEES)  # another channel of the staff category
    public = room(100)
    rooms = [staff, staff_thread, synced, public]
    assert allowed_for_post(synced, rooms, EVERYONE) == {100, 200, 201, 300}
    assert allowed_for_post(public, rooms, EVERYONE) == {100}


def test_a_member_denied_or_a_server_without_history_closes_a_channel() -> None:
    banned = room(100, Overwrite(21, False, 0, READ_MESSAGE_HISTORY))
    other = room(200)
    assert allowed_for_post(other, [banned, other], EVERYONE) == {200}
    assert not open_to_everyone(other, VIEW_CHANNEL, READ)
    assert open_to_everyone(
        room(300, Overwrite(GUILD, True, READ_MESSAGE_HISTORY, 0)), VIEW_CHANNEL, READ
    )


def test_voice_chats_and_other_servers_stay_out_of_text_channels() -> None:
    text, voice = room(100), room(200, needs=VOICE_READ)
    elsewhere = Room(300, 2, 300, ())
    assert allowed_for_post(text, [text, voice, elsewhere], EVERYONE) == {100}
    assert allowed_for_post(voice, [text, voice, elsewhere], EVERYONE) == {100, 200}


def test_at_least_as_open_compares_each_target_and_bit() -> None:
    narrow = room(1, HIDDEN, STAFF_SEES)
    assert at_least_as_open(room(2, STAFF_SEES), narrow, READ)
    assert not at_least_as_open(room(2), narrow, READ)  # open to all, by another reason
    assert not at_least_as_open(narrow, room(2), READ)
    assert at_least_as_open(narrow, narrow, READ)
    # Denying only a bit nobody needs here changes nothing.
    assert at_least_as_open(room(3, Overwrite(STAFF, True, 0, CONNECT)), room(4), READ)


def test_may_read_needs_both_bits_and_private_thread_membership() -> None:
    private = room(5, source=1, private=True)
    assert may_read(READ, room(1)) and not may_read(VIEW_CHANNEL, room(1))
    assert not may_read(READ, private)
    assert may_read(READ, private, thread_member=True)
    assert may_read(READ | MANAGE_THREADS, private)
    assert may_read(ADMINISTRATOR, private)
