"""Who is refused what: people running commands they may not, and the bot where Discord
refuses it. Refusals reach a person privately and change nothing; the bot logs each
permission it lacks once per channel, until the channel is forgotten."""

from __future__ import annotations

from types import SimpleNamespace
from typing import get_args

import discord
import pytest

from config import THREAD_MODES, ReplyTo
from discord_side.permissions import (
    INVITE_PERMISSIONS,
    THREAD_MODE_PERMISSIONS,
    PermissionNotes,
    change_refusal,
    missing_permission,
    missing_permissions,
    permission_label,
)
from tests.helpers import http_error, run_command
from tests.standins.discord import DiscordStandIn

# --- people --------------------------------------------------------------------------


async def test_a_member_without_manage_channels_is_refused_when_no_scope_is_given(
    start_bot, discord_api: DiscordStandIn
) -> None:
    await start_bot()
    refused = await run_command(discord_api, "general", "alice", "settings streaming", mode="on")
    assert refused["ephemeral"]
    assert refused["content"] == (
        "You need the Manage Channels permission to change this channel's settings."
    )
    shown = await run_command(discord_api, "general", "alice", "settings show")
    assert "**Streaming:** `off` (environment" in shown["content"]  # nothing was changed
    assert discord_api.bot_messages("general") == []  # nothing announced


async def test_a_dm_has_no_server_whose_defaults_its_person_could_change(
    start_bot, discord_api: DiscordStandIn
) -> None:
    await start_bot()
    dm = discord_api.dm_channel("alice")
    refused = await run_command(
        discord_api, dm, "alice", "settings streaming", mode="off", scope="server"
    )
    assert refused["ephemeral"]
    assert refused["content"] == "There is no server here: in a DM, use scope channel (this DM)."
    refused = await run_command(discord_api, dm, "alice", "usage server")
    assert refused["ephemeral"] and refused["content"] == "This report is for servers."


async def test_a_moderator_may_change_the_channel_but_not_the_server_defaults(
    start_bot, discord_api: DiscordStandIn
) -> None:
    await start_bot()
    refused = await run_command(
        discord_api, "general", "carol", "settings reasoning-effort", level="low", scope="server"
    )
    assert refused["ephemeral"]
    assert refused["content"] == (
        "You need the Manage Server permission to change the server's defaults."
    )
    await run_command(discord_api, "general", "owner", "settings reasoning-effort", level="low")
    [announced] = discord_api.bot_messages("general")
    assert announced["content"].startswith("⚙️ ")


def test_who_may_change_what_in_a_server_and_a_dm() -> None:
    def refusal(target, **kw):
        flags = {"in_dm": False, "is_admin": False, "manage_channels": False, "manage_guild": False}
        return change_refusal(target, **(flags | kw))

    assert refusal("server", manage_channels=True, manage_guild=False) is not None
    assert refusal("channel", manage_guild=True) is not None  # the server's rights are not enough
    assert refusal("channel", is_admin=True) is None and refusal("server", is_admin=True) is None
    assert refusal("server", in_dm=True, is_admin=True) is not None  # no server in a DM


# --- the bot ---------------------------------------------------------------------------


def test_refusals_name_the_missing_permission() -> None:
    thread = SimpleNamespace()
    reference_refused = http_error(
        discord.Forbidden, 403, 160002, "Cannot reply without permission to read message history"
    )
    assert missing_permission(reference_refused, thread) == "Read Message History"
    assert missing_permission(http_error(discord.Forbidden, 403, 50001, "x"), thread) == (
        "View Channel"
    )
    assert missing_permission(http_error(discord.Forbidden, 403, 50013, "x"), thread) == (
        "Send Messages"
    )
    server_error = http_error(discord.DiscordServerError, 503, 0, "503: Service Unavailable")
    assert missing_permission(server_error, thread) is None


@pytest.mark.parametrize("permission", ["Read Message History", "Send Messages"])
def test_each_missing_permission_is_logged_once_per_channel(permission: str, caplog) -> None:
    first, second = PermissionNotes(1), PermissionNotes(2)
    assert first.missing(permission, "it matters")
    assert not first.missing(permission, "it matters")
    assert second.missing(permission, "it matters")
    assert first.lacks(permission) and not PermissionNotes(3).lacks(permission)


def test_missing_thread_permissions_are_named_as_discord_names_them() -> None:
    permissions = discord.Permissions(send_messages_in_threads=True)
    names = ("create_public_threads", "send_messages_in_threads")
    assert missing_permissions(permissions, names) == ["create_public_threads"]
    assert permission_label("create_public_threads") == "Create Public Threads"


def test_the_invite_link_asks_for_what_thread_mode_needs() -> None:
    assert missing_permissions(INVITE_PERMISSIONS, THREAD_MODE_PERMISSIONS) == []


def test_only_the_thread_modes_start_threads() -> None:
    assert [m for m in get_args(ReplyTo) if m in THREAD_MODES] == ["thread", "mention-thread"]
