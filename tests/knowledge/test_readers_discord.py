"""The readers' rule on discord.py's own objects, through the Discord stand-in: roles and
overwrites as the gateway delivers them, members fetched, private threads' members asked."""

from __future__ import annotations

import discord

from knowledge.readers_discord import Readers, room_of
from tests.helpers import until
from tests.standins.discord import DiscordStandIn


async def staff_server(discord_api: DiscordStandIn, client: discord.Client) -> int:
    """A "staff" role held by alice; #random hidden from everyone but staff (and the bot)."""
    staff = await discord_api.add_role("staff")
    discord_api.give_role("alice", "staff")
    await discord_api.set_overwrite("random", "everyone", deny=["VIEW_CHANNEL"])
    await discord_api.set_overwrite("random", "staff", allow=["VIEW_CHANNEL"])
    await discord_api.set_overwrite("random", "bot", allow=["VIEW_CHANNEL"])
    random = discord_api.channel("random")
    await until(lambda: len(client.get_channel(random.id).overwrites) == 3)
    return staff


async def test_staff_read_the_staff_channel_others_do_not(discord_api, discord_client) -> None:
    client = discord_client
    await staff_server(discord_api, client)
    guild = client.get_guild(discord_api.guild_id)
    readers = Readers(client)
    alice = await readers.member(guild, discord_api.user("alice").id)
    bob = await readers.member(guild, discord_api.user("bob").id)
    assert alice is not None and bob is not None
    random, general = discord_api.channel("random").id, discord_api.channel("general").id
    for member in (alice, bob):
        # discord.py's permissions agree with what the stand-in computes, room by room.
        readable = await readers.readable_by(member)
        for channel, room in readers.rooms(guild):
            assert (room.channel_id in readable) == discord_api.may_read(member.id, channel.id)
    assert random in await readers.readable_by(alice)
    assert random not in await readers.readable_by(bob)
    # An answer posted in #general never shows #random; one in #random may show #general.
    assert random not in readers.posted_in(client.get_channel(general))
    assert general in readers.posted_in(client.get_channel(random))


async def test_a_private_thread_is_read_by_its_members_only(discord_api, discord_client) -> None:
    client = discord_client
    guild = client.get_guild(discord_api.guild_id)
    readers = Readers(client)
    private = discord_api.channel("private_thread")
    assert guild.get_thread(private.id) is not None
    carol = await readers.member(guild, discord_api.user("carol").id)  # its owner, a moderator
    bob = await readers.member(guild, discord_api.user("bob").id)
    alice = await readers.member(guild, discord_api.user("alice").id)
    assert private.id in await readers.readable_by(carol)
    assert private.id not in await readers.readable_by(bob)
    discord_api.add_to_thread("private_thread", "alice")
    assert private.id in await readers.readable_by(alice)
    asked = [r.path for r in discord_api.requests if "thread-members" in r.path]
    assert asked, "membership is asked of Discord, not guessed"
    # Only its own answers show it; the public thread beside it never shows it.
    public_thread = client.get_channel(discord_api.channel("thread").id)
    assert private.id not in readers.posted_in(public_thread)
    assert private.id in readers.posted_in(guild.get_thread(private.id))


async def test_a_member_of_no_server_reads_nothing(discord_api, discord_client) -> None:
    readers = Readers(discord_client)
    stranger = discord.Object(id=4242)
    assert await readers.private_for(stranger, [discord_api.guild_id]) == frozenset()  # type: ignore[arg-type]
    alice = discord_api.user("alice")
    everything = await readers.private_for(alice, [discord_api.guild_id])  # type: ignore[arg-type]
    assert discord_api.channel("general").id in everything


async def test_rooms_are_channels_with_text(discord_api, discord_client) -> None:
    guild = discord_client.get_guild(discord_api.guild_id)
    kinds = {room_of(channel) is not None: channel.type for channel in guild.channels}
    assert room_of(guild.get_channel(discord_api.channel("category").id)) is None
    assert kinds[True]
    voice = room_of(guild.get_channel(discord_api.channel("voice").id))
    assert (
        voice is not None
        and voice.needs != room_of(guild.get_channel(discord_api.channel("general").id)).needs
    )


async def test_a_deleted_thread_or_channel_is_never_a_room_again(
    discord_api, discord_client
) -> None:
    guild = discord_client.get_guild(discord_api.guild_id)
    readers = Readers(discord_client)
    thread = guild.get_thread(discord_api.channel("thread").id)
    general = discord_api.channel("general").id
    alice = await readers.member(guild, discord_api.user("alice").id)
    assert {thread.id, general} <= await readers.readable_by(alice)
    readers.forget_channel(thread.id)
    readers.remember_thread(thread)  # listed just before its deletion arrived
    assert thread.id not in {room.channel_id for _, room in readers.rooms(guild)}
    readers.forget_channel(general)  # a channel: with its threads
    readable = await readers.readable_by(alice)
    assert general not in readable and discord_api.channel("random").id in readable
