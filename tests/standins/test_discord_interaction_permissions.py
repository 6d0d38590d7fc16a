"""Self-test of the Discord stand-in: an interaction carries the member's permissions in
its channel, overwrites included, as Discord sends them (`member.permissions`)."""

# The stand-in fixtures are test_discord_standin.py's, imported by name.
# ruff: noqa: F811

from __future__ import annotations

from tests.standins.discord import DiscordStandIn
from tests.standins.test_discord_standin import (  # noqa: F401 (fixtures)
    CommandClient,
    make_client,
    make_standin,
    standin,
)


async def test_an_interaction_carries_the_members_permissions_in_its_channel(
    standin: DiscordStandIn, make_client
) -> None:
    client = await make_client(client_class=CommandClient)
    await standin.set_overwrite("general", "alice", deny=["READ_MESSAGE_HISTORY"], member=True)
    for where in ("general", "thread", "random"):  # a thread has its parent's
        sent = await standin.user_runs_command(where, "alice", "reset")
        await standin.wait_for_interaction_response(sent)
    in_general, in_thread, in_random = client.runs
    assert not in_general.permissions.read_message_history
    assert in_general.permissions.view_channel and in_general.permissions.send_messages
    assert not in_thread.permissions.read_message_history
    assert in_random.permissions.read_message_history
    assert in_general.user.guild_permissions.read_message_history  # roles alone allow it
