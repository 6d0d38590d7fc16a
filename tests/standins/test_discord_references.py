"""Self-tests of the Discord stand-in's replies, forwards and thread starts, through
discord.py as the bot sees them."""

# The stand-in fixtures are test_discord_standin.py's, imported by name.
# ruff: noqa: F811

from __future__ import annotations

import discord

from tests.standins.discord import DiscordStandIn, FakeAttachment
from tests.standins.test_discord_standin import (  # noqa: F401 (fixtures)
    ProbeClient,
    client,
    make_client,
    make_standin,
    standin,
)


async def test_a_forward_carries_its_source_in_message_snapshots(
    standin: DiscordStandIn, client: ProbeClient
) -> None:
    source = await standin.user_says(
        "random", "bob", "build is red", attachments=[FakeAttachment("a.log", b"x")],
        deliver=False, embeds=[{"title": "CI"}],
    )  # fmt: skip
    sent = await standin.user_forwards("general", "alice", source)
    assert sent["content"] == "" and sent["type"] == 0
    assert sent["message_reference"]["type"] == 1
    assert sent["message_reference"]["message_id"] == source["id"]
    [snapshot] = sent["message_snapshots"]
    assert set(snapshot["message"]) >= {"content", "attachments", "embeds", "timestamp", "type"}
    assert "author" not in snapshot["message"] and "id" not in snapshot["message"]

    got = await client.next_message(lambda m: m.id == int(sent["id"]))
    assert got.reference is not None
    assert got.reference.type is discord.MessageReferenceType.forward
    [seen] = got.message_snapshots
    assert seen.content == "build is red" and seen.embeds[0].title == "CI"
    assert [a.filename for a in seen.attachments] == ["a.log"]
    assert await seen.attachments[0].read() == b"x"  # served like any attachment


async def test_a_forward_hides_its_snapshots_without_the_content_intent(
    standin: DiscordStandIn, make_client
) -> None:
    client = await make_client(message_content=False)  # the intent not asked for
    source = await standin.user_says("random", "bob", "secret", deliver=False)
    sent = await standin.user_forwards("general", "alice", source)
    got = await client.next_message(lambda m: m.id == int(sent["id"]))
    assert [s.content for s in got.message_snapshots] == [""]


async def test_a_reply_can_come_without_referenced_message_and_be_fetched(
    standin: DiscordStandIn, client: ProbeClient
) -> None:
    target = await standin.user_says("general", "other_bot", "alert")
    reply = await standin.user_says(
        "general", "alice", "why?", reply_to=target, resolve_reply=False
    )
    got = await client.next_message(lambda m: m.id == int(reply["id"]))
    assert got.reference is not None and got.reference.resolved is None
    channel = client.get_channel(standin.general.id)
    assert isinstance(channel, discord.TextChannel)
    fetched = await channel.fetch_message(int(target["id"]))
    assert fetched.content == "alert"

    await standin.deny("general", "READ_MESSAGE_HISTORY")
    try:
        await channel.fetch_message(int(target["id"]))
    except discord.Forbidden as error:
        assert error.status == 403
    else:
        raise AssertionError("fetching without Read Message History must be refused")
    await standin.user_deletes(target)
    try:
        await channel.fetch_message(int(target["id"]))
    except discord.HTTPException as error:
        assert error.status in (403, 404)
    else:
        raise AssertionError("a deleted message cannot be fetched")


async def test_a_reply_delivered_after_its_target_is_deleted_has_a_null_reference(
    standin: DiscordStandIn, client: ProbeClient
) -> None:
    target = await standin.user_says("general", "bob", "oops", deliver=False)
    reply = await standin.user_says("general", "alice", "?", reply_to=target, deliver=False)
    await standin.user_deletes(target, deliver=False)
    await standin.deliver(reply)
    got = await client.next_message(lambda m: m.id == int(reply["id"]))
    assert got.reference is not None
    assert isinstance(got.reference.resolved, discord.DeletedReferencedMessage)


async def test_a_thread_people_start_is_theirs_and_its_message_carries_it(
    standin: DiscordStandIn, client: ProbeClient
) -> None:
    said = await standin.user_says("general", "alice", "notes")
    thread = await standin.user_starts_thread("bob", said, "talk")
    assert thread.id == int(said["id"]) and thread.owner_id == standin.users["bob"].id
    channel = client.get_channel(standin.general.id)
    assert isinstance(channel, discord.TextChannel)
    [message] = [m async for m in channel.history(limit=1)]
    assert message.flags.has_thread
    assert message.thread is not None and message.thread.owner_id == standin.users["bob"].id
