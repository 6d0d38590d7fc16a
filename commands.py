"""The slash commands. Add a command here: an `app_commands` function whose docstring
is its description, listed in `COMMANDS`.

`ChatTree` applies the access rules to every command, as to messages, and answers a
failed check or an error with one short private line.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands

from guards import Access
from history import RESET_MESSAGE

if TYPE_CHECKING:
    from bot import ChatBot

log = logging.getLogger(__name__)


class ChatTree(app_commands.CommandTree["ChatBot"]):
    """The bot's command tree: access rules first, brief answers to errors."""

    async def register(self, dev_guild_id: int | None) -> None:
        """Register the slash commands with Discord: in the `dev_guild_id` server at once,
        else globally (Discord can take a while to show global changes). A failure of
        any kind (a refusal, or an answer discord.py cannot parse) is logged; the bot
        runs on without commands."""
        guild = None
        if dev_guild_id is not None:
            guild = discord.Object(dev_guild_id)
            self.copy_global_to(guild=guild)
        try:
            synced = await self.sync(guild=guild)
        except Exception as error:
            log.warning("could not register the slash commands, running without: %r", error)
            return
        log.info("registered /%s", ", /".join(command.name for command in synced))

    async def interaction_check(self, interaction: discord.Interaction[ChatBot]) -> bool:
        """The access rules apply to commands as to messages; say so if they refuse."""
        access = interaction.client.audience.access_of(
            interaction.user, interaction.channel, interaction.guild is None
        )
        if access is Access.ALLOWED:
            return True
        await interaction.response.send_message("You can't use this bot here.", ephemeral=True)
        return False

    async def on_error(
        self, interaction: discord.Interaction[ChatBot], error: app_commands.AppCommandError
    ) -> None:
        if isinstance(error, app_commands.CheckFailure):
            text = str(error)  # the checks below word their refusals for the user
        else:
            log.error("command /%s failed", interaction.command, exc_info=error)
            text = "Sorry, that command failed. Please try again."
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True)
        else:
            await interaction.response.send_message(text, ephemeral=True)


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


@app_commands.command()
@app_commands.check(may_reset)
async def reset(interaction: discord.Interaction[ChatBot]) -> None:
    """Forget this channel's conversation."""
    conversations = await interaction.client.conversations()
    assert interaction.channel_id is not None  # checked by may_reset
    conversations.reset(interaction.channel_id)
    log.info("channel %s: conversation reset by %s", interaction.channel_id, interaction.user.id)
    # A visible message: it marks the boundary that read-back never crosses.
    await interaction.response.send_message(RESET_MESSAGE)


@app_commands.command()
async def memory(interaction: discord.Interaction[ChatBot]) -> None:
    """What I remember in this channel."""
    await interaction.response.defer(ephemeral=True, thinking=True)
    conversations = await interaction.client.conversations()
    channel = interaction.channel
    assert channel is not None
    report = await conversations.report(channel)  # type: ignore[arg-type]
    await interaction.followup.send(report, ephemeral=True)


COMMANDS = (reset, memory)
