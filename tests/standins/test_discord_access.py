"""Self-tests of the Discord stand-in's roles, overwrites and private threads' members
(access.py), through discord.py: what discord.py computes from what the stand-in sends
agrees with the stand-in's own rule, which REST enforces for the bot."""

# The stand-in fixtures are test_discord_standin.py's, imported by name.
# ruff: noqa: F811

from __future__ import annotations

import random

import discord
import pytest

from tests.standins.discord import DiscordStandIn
from tests.standins.discord.protocol import P_MANAGE_THREADS, P_READ_HISTORY, P_VIEW_CHANNEL
from tests.standins.test_discord_standin import (  # noqa: F401 (fixtures)
    ProbeClient,
    client,
    make_client,
    make_standin,
    standin,
)

DECIDING = P_VIEW_CHANNEL | P_READ_HISTORY | P_MANAGE_THREADS


async def test_roles_and_overwrites_reach_discord_py_and_agree(
    standin: DiscordStandIn, client: ProbeClient
) -> None:
    staff = await standin.add_role("staff", ["MANAGE_THREADS"])
    standin.give_role("alice", "staff")
    await standin.set_overwrite("random", "everyone", deny=["VIEW_CHANNEL"])
    await standin.set_overwrite("random", "staff", allow=["VIEW_CHANNEL"])
    await standin.set_overwrite("general", "bob", member=True, deny=["READ_MESSAGE_HISTORY"])
    random = standin.channel("random")
    await client.wait_until(lambda: len(client.get_channel(random.id).overwrites) == 2)
    guild = client.get_guild(standin.guild_id)
    await client.wait_until(lambda: guild.get_role(staff))
    assert guild.get_role(staff) is not None and guild.get_role(staff).permissions.manage_threads
    for name in ("alice", "bob", "carol"):
        member = await guild.fetch_member(standin.user(name).id)
        for channel in ("general", "random", "thread"):
            where = client.get_channel(standin.channel(channel).id)
            # The bits that decide reading agree (discord.py also drops voice bits in a
            # text channel, which the stand-in does not model).
            ours = standin.user_permissions(name, channel)
            computed = where.permissions_for(member)
            assert (computed.value ^ ours) & DECIDING == 0, (name, channel)
            reads = computed.view_channel and computed.read_message_history
            assert reads == standin.may_read(name, channel), (name, channel)
    assert standin.may_read("alice", "random") and not standin.may_read("bob", "random")
    assert not standin.may_read("bob", "general") and standin.may_read("carol", "general")
    standin.take_role("alice", "staff")  # GET member shows it at once
    assert staff not in [r.id for r in (await guild.fetch_member(standin.user("alice").id)).roles]
    assert not standin.may_read("alice", "random")


async def test_an_overwrite_hiding_a_channel_from_everyone_hides_it_from_the_bot_too(
    standin: DiscordStandIn, client: ProbeClient
) -> None:
    await standin.set_overwrite("random", "everyone", deny=["VIEW_CHANNEL"])
    with pytest.raises(discord.Forbidden):
        await client.http.logs_from(standin.random.id, 10)
    await standin.set_overwrite("random", "bot", allow=["VIEW_CHANNEL"])
    assert await client.http.logs_from(standin.random.id, 10) == []


async def test_private_thread_members_are_asked_one_at_a_time(
    standin: DiscordStandIn, client: ProbeClient
) -> None:
    thread = client.get_guild(standin.guild_id).get_thread(standin.private_thread.id)
    assert (await thread.fetch_member(standin.user("carol").id)).id == standin.user("carol").id
    with pytest.raises(discord.NotFound):
        await thread.fetch_member(standin.user("alice").id)
    standin.add_to_thread("private_thread", "alice")
    assert await thread.fetch_member(standin.user("alice").id)
    standin.remove_from_thread("private_thread", "alice")
    with pytest.raises(discord.NotFound):
        await thread.fetch_member(standin.user("alice").id)
    await standin.archive_thread("private_thread")
    general = client.get_channel(standin.general.id)
    joined = [t async for t in general.archived_threads(private=True, joined=True)]
    assert [t.id for t in joined] == [standin.private_thread.id]
    assert [t.id async for t in general.archived_threads()] == []  # public ones only


async def test_random_overwrites_read_alike_in_discord_py_and_the_stand_in(
    standin: DiscordStandIn, client: ProbeClient
) -> None:
    """Twenty random overwrite sets on one channel: discord.py's permissions_for, from
    what the stand-in sends, and the stand-in's own rule agree on the bits that decide
    reading, for members with and without roles and overwrites of their own."""
    rng = random.Random(23)
    await standin.add_role("staff")
    standin.give_role("alice", "staff")
    guild = client.get_guild(standin.guild_id)
    members = [await guild.fetch_member(standin.user(n).id) for n in ("alice", "bob", "carol")]
    names = ("VIEW_CHANNEL", "READ_MESSAGE_HISTORY", "MANAGE_THREADS")
    channel = client.get_channel(standin.general.id)
    for round_number in range(20):
        for target, member in (
            ("everyone", False),
            ("staff", False),
            ("moderators", False),
            ("bob", True),
        ):
            allow = [n for n in names if rng.random() < 0.3]
            deny = [n for n in names if n not in allow and rng.random() < 0.3]
            await standin.set_overwrite("general", target, allow=allow, deny=deny, member=member)
        sent = {
            int(o["id"]): (int(o["allow"]), int(o["deny"]))
            for o in standin.get_overwrites("general")
        }
        await client.wait_until(lambda sent=sent: seen(channel) == sent)
        for member in members:
            ours = standin.user_permissions(member.id, "general")
            theirs = channel.permissions_for(member).value
            assert (ours ^ theirs) & DECIDING == 0, (round_number, member.name)


def seen(channel: discord.abc.GuildChannel) -> dict[int, tuple[int, int]]:
    """The overwrites discord.py holds for `channel`: {target id: (allow, deny)}."""
    found = {}
    for target, overwrite in channel.overwrites.items():
        allow, deny = overwrite.pair()
        found[target.id] = (allow.value, deny.value)
    return found
