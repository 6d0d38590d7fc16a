"""Every permission check: what the bot may do in a channel, and who may use which command.

The bot's own permissions are read from discord.py's cache before it acts (it may be
stale, so a refusal from Discord is handled too) and from Discord's refusals; each one
it lacks is logged once per channel (`PermissionNotes`, kept with the channel's
conversation). The slash commands' checks are `app_commands.check` decorators: a refusal
raises `CheckFailure` worded for the person, which the command tree answers privately
(commands.ChatTree.on_error).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import discord
from discord import app_commands

from store import ScopeTarget

if TYPE_CHECKING:
    from bot import ChatBot

log = logging.getLogger("chatbot")

T = TypeVar("T")

# What the bot needs in a channel (for the invite link): see it, read it back (replies
# need it), post in channels and threads, start a thread per question (thread mode).
INVITE_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    create_public_threads=True,
    read_message_history=True,
)
# What the bot needs to answer a channel's messages in threads, by discord.py's names.
THREAD_MODE_PERMISSIONS = ("create_public_threads", "send_messages_in_threads")

# Discord's JSON error codes (topics/opcodes-and-status-codes#json-json-error-codes)
# that mean the bot lacks a permission in the channel, and which permission it is.
MISSING_ACCESS = 50001
MISSING_PERMISSIONS = 50013
REPLY_WITHOUT_HISTORY = 160002  # "Cannot reply without permission to read message history"
HISTORY = "Read Message History"

# What the bot does without each permission, for the log line naming it.
CONSEQUENCES = {
    HISTORY: "answers are posted as plain messages instead of replies, and the "
    "conversation cannot be read back after a restart",
    "View Channel": "it cannot post there",
    "Send Messages": "it cannot answer there",
    "Send Messages in Threads": "it cannot answer in threads there",
}


class PermissionNotes:
    """What the bot was found unable to do in the channel `channel_id`, each logged once."""

    __slots__ = ("_logged", "channel_id")

    def __init__(self, channel_id: int) -> None:
        self.channel_id = channel_id
        self._logged: set[str] = set()  # what was logged there

    def missing(self, permission: str, consequence: str) -> bool:
        """Log that the bot lacks `permission` (Discord's name for it) in the channel
        and what that means, unless already logged; whether this call logged it."""
        return self.refusing(
            permission, "the bot lacks the %s permission there; %s", permission, consequence
        )

    def refusing(self, what: str, text: str, *args: object) -> bool:
        """Log `text % args` for the channel unless `what` was already logged there;
        whether this call logged it."""
        if what in self._logged:
            return False
        self._logged.add(what)
        log.warning("channel %s: " + text, self.channel_id, *args)
        return True

    def lacks(self, permission: str) -> bool:
        """Whether the bot is known to lack `permission` in the channel."""
        return permission in self._logged


def missing_permission(error: Exception, channel: object) -> str | None:
    """The name of the permission a refusal says the bot lacks in `channel`, if any."""
    if not isinstance(error, discord.Forbidden):
        return None
    if error.code == REPLY_WITHOUT_HISTORY:
        return HISTORY
    if error.code == MISSING_ACCESS:
        return "View Channel"
    if error.code == MISSING_PERMISSIONS:
        in_thread = isinstance(channel, discord.Thread)
        return "Send Messages in Threads" if in_thread else "Send Messages"
    return None


def note_missing(notes: PermissionNotes, permission: str, error: Exception | None = None) -> None:
    """Log once that the bot lacks `permission` in the channel of `notes`, with what
    that means and the code of Discord's refusal `error`, if it came from one."""
    consequence = CONSEQUENCES[permission]
    if isinstance(error, discord.HTTPException):
        consequence += f" (Discord error {error.code})"
    notes.missing(permission, consequence)


def may_reply(message: discord.Message, notes: PermissionNotes) -> bool:
    """Whether a reply to `message` (with a reference) may work: not where the bot is
    known to lack Read Message History (Discord refuses replies there: 403 / 160002).
    `notes`: those of `message`'s channel."""
    if notes.lacks(HISTORY):
        return False
    guild = message.guild
    permissions_for = getattr(message.channel, "permissions_for", None)
    if guild is None or guild.me is None or permissions_for is None:
        return True
    if permissions_for(guild.me).read_message_history:
        return True  # the cache may be stale: a refusal is still handled
    note_missing(notes, HISTORY)
    return False


def may_answer_in(channel: object, notes: PermissionNotes) -> bool:
    """Whether the bot may post in `channel`, by discord.py's cache of its
    permissions: not in a thread that is locked (without Manage Threads), nor where
    it may not send (logged once per channel). The model is not asked for an
    answer nobody could see. A DM, or a channel whose permissions the cache does not
    know, is given the benefit of the doubt (a refused post is handled anyway).
    `notes`: those of `channel`."""
    guild = getattr(channel, "guild", None)
    me = getattr(guild, "me", None)
    if me is None or not hasattr(channel, "permissions_for"):
        return True
    if not isinstance(channel, discord.Thread):
        if channel.permissions_for(me).send_messages:  # type: ignore[attr-defined]
            return True
        notes.refusing("send", "reading, not answering: needs Send Messages")
        return False
    permissions = channel.permissions_for(me)
    if channel.locked and not permissions.manage_threads:
        notes.refusing("locked", "the thread is locked: reading, not answering")
        return False
    if not permissions.send_messages_in_threads:
        notes.refusing("send", "reading, not answering: needs Send Messages in Threads")
        return False
    return True


def may_start_threads(channel: discord.TextChannel, notes: PermissionNotes) -> bool:
    """Whether the bot may answer `channel`'s messages in threads of their own; if not,
    which permissions it lacks is logged once in `notes` (those of `channel`)."""
    missing = missing_permissions(
        channel.permissions_for(channel.guild.me), THREAD_MODE_PERMISSIONS
    )
    if not missing:
        return True
    labels = " and ".join(permission_label(name) for name in missing)
    notes.refusing("permissions", "answering in the channel: needs %s", labels)
    return False


def missing_permissions(permissions: discord.Permissions, names: tuple[str, ...]) -> list[str]:
    """Which of `names` (discord.py's permission names) `permissions` lacks."""
    return [name for name in names if not getattr(permissions, name)]


def permission_label(name: str) -> str:
    """Discord's wording of a discord.py permission name: "Create Public Threads"."""
    return " ".join(word.capitalize() for word in name.split("_"))


# --- who may use which slash command ---------------------------------------------------


async def may_use_commands(interaction: discord.Interaction[ChatBot]) -> bool:
    """The access rules apply to commands as to messages; says so if they refuse."""
    audience = interaction.client.audience
    if audience.allows(interaction.user, interaction.channel, interaction.guild is None):
        return True
    if interaction.type is discord.InteractionType.autocomplete:
        return False  # suggestions cannot carry a message: offer none
    await interaction.response.send_message("You can't use this bot here.", ephemeral=True)
    return False


def change_refusal(
    target: ScopeTarget,
    *,
    in_dm: bool,
    is_admin: bool,
    manage_channels: bool,
    manage_guild: bool,
) -> str | None:
    """Why this person may not change settings at `target`, in one line, or None.

    Manage Channels for a channel's (or thread's) settings, Manage Server for the
    server's defaults, ADMIN_USER_IDS everywhere; in a DM, its person for that DM.
    """
    if in_dm:
        if target == "server":
            return "There is no server here: in a DM, use scope channel (this DM)."
        return None
    if is_admin:
        return None
    if target == "server" and not manage_guild:
        return "You need the Manage Server permission to change the server's defaults."
    if target == "channel" and not manage_channels:
        return "You need the Manage Channels permission to change this channel's settings."
    return None


def may_decide_approval(user_id: int, *, asker_id: int, admins: frozenset[int]) -> bool:
    """Whether `user_id` may press Allow or Deny on a tool call: the person whose
    message the model is answering, or an ADMIN_USER_IDS user; nobody else (a
    moderator included: it is the asker's request, and admins are the bot's owners)."""
    return user_id == asker_id or user_id in admins


def may_reset(interaction: discord.Interaction[ChatBot]) -> bool:
    """RESET_PERMISSION: Manage Messages in a server (unless `everyone`); anyone in a DM.

    Raises `CheckFailure` worded for the user when refused.
    """
    if interaction.channel_id is None:
        raise app_commands.CheckFailure("I can't tell which conversation to reset here.")
    if (
        interaction.guild is None
        or interaction.client.settings.reset_permission == "everyone"
        or interaction.permissions.manage_messages
    ):
        return True
    raise app_commands.CheckFailure(
        "You need the Manage Messages permission to reset the conversation here."
    )


def may_change_settings(interaction: discord.Interaction[ChatBot]) -> bool:
    """`change_refusal` for the command's `scope` option ("channel" when not given, as
    every /settings command defaults it). Raises `CheckFailure` with the refusal."""
    scope = interaction.namespace.scope or "channel"
    permissions = interaction.permissions
    refusal = change_refusal(
        scope,
        in_dm=interaction.guild is None,
        is_admin=interaction.user.id in interaction.client.settings.access.admins,
        manage_channels=permissions.manage_channels,
        manage_guild=permissions.manage_guild,
    )
    if refusal is not None:
        raise app_commands.CheckFailure(refusal)
    return True


def may_see_server_usage(interaction: discord.Interaction[ChatBot]) -> bool:
    """In a server, for Manage Server and ADMIN_USER_IDS. Raises `CheckFailure` worded
    for the user when refused."""
    if interaction.guild is None:
        raise app_commands.CheckFailure("This report is for servers.")
    admins = interaction.client.settings.access.admins
    if not interaction.permissions.manage_guild and interaction.user.id not in admins:
        raise app_commands.CheckFailure(
            "You need the Manage Server permission to see the server's usage."
        )
    return True


def may_catch_up(interaction: discord.Interaction[ChatBot]) -> bool:
    """/catchup: in a server channel whose history both the person and the bot may read
    (View Channel and Read Message History, as Discord resolved them for this
    interaction: `permissions` and `app_permissions`). Raises `CheckFailure` worded for
    the user when refused."""
    if interaction.guild is None:
        raise app_commands.CheckFailure("Catch-up is for server channels.")
    mine, theirs = interaction.app_permissions, interaction.permissions
    if not (theirs.view_channel and theirs.read_message_history):
        raise app_commands.CheckFailure(
            "You need the Read Message History permission here to catch up on it."
        )
    if not (mine.view_channel and mine.read_message_history):
        raise app_commands.CheckFailure(
            "I can't read this channel's history: I need View Channel and Read Message "
            "History here."
        )
    return True


def can_reset() -> Callable[[T], T]:
    """The check of /reset (`may_reset`)."""
    return app_commands.check(may_reset)


def can_change_settings() -> Callable[[T], T]:
    """The check of every /settings command that changes something (`may_change_settings`)."""
    return app_commands.check(may_change_settings)


def can_see_server_usage() -> Callable[[T], T]:
    """The check of /usage server (`may_see_server_usage`)."""
    return app_commands.check(may_see_server_usage)


def can_catch_up() -> Callable[[T], T]:
    """The check of /catchup (`may_catch_up`)."""
    return app_commands.check(may_catch_up)
