"""The knowledge commands: /settings knowledge (added to the /settings group), and the
/knowledge group: forget-me (for anyone, anywhere, confirmed first) and status.

Turning knowledge on starts reading the history back (backfill.py): the command's
public reply is edited as it goes, for as long as Discord lets an interaction's
messages be edited (15 minutes: interactions/receiving-and-responding); after that
progress is only logged. Turning it off stops reading and forgets what was indexed
there (the privacy-friendly choice: "off" means the bot no longer knows it).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands

from conversation.channel_settings import Place, knowledge_place
from discord_side import permissions
from discord_side.commands import SCOPE_HELP, STORE_DOWN, settings_group
from discord_side.deadline import Answer, in_time, respond
from knowledge.backfill import Report
from store import ScopeTarget, StoreError

if TYPE_CHECKING:
    from bot import ChatBot

log = logging.getLogger("chatbot")

# An interaction's token works for 15 minutes; edits stop a little before.
EDITABLE_SECONDS = 14 * 60.0
CONFIRM_SECONDS = 60.0
NOT_IN_DMS = "DMs are never indexed: knowledge is for a server's channels."
FORGET_QUESTION = (
    "Remove every message you wrote from my search index, in every server? The messages "
    "stay on Discord; I just won't find them any more. New messages are indexed again "
    "where knowledge is on."
)
NOT_YOURS = "This question is for the person who asked; /knowledge forget-me asks for yours."


@settings_group.command(name="knowledge")
@app_commands.describe(
    mode="on: index messages here so answers can search them (history read back); "
    "off: stop and forget them",
    scope=SCOPE_HELP,
)
@permissions.can_change_settings()
async def settings_knowledge(
    interaction: discord.Interaction[ChatBot],
    mode: Literal["on", "off"],
    scope: ScopeTarget = "channel",
) -> None:
    """Index this channel's (or server's) messages so answers can search them, or stop."""
    place = knowledge_place(Place.of(interaction.channel))  # a thread: its channel
    if place is None:
        await interaction.response.send_message(NOT_IN_DMS, ephemeral=True)
        return
    answer = await in_time(interaction, _turn(interaction, place, mode, scope))
    message = await _say(interaction, answer)
    if answer.public:  # changed: a DM is offered the tools (or not) from now on
        interaction.client.knowledge_offer.read_now()
    if mode == "on" and answer.public:
        channel_id = None if scope == "server" else place.channel_id
        report = _reporter(message, answer.text) if message is not None else None
        interaction.client.backfiller.start(place.guild_id, channel_id, report)


async def _turn(
    interaction: discord.Interaction[ChatBot], place: Place, mode: str, scope: ScopeTarget
) -> Answer:
    """Store the setting; when off, stop reading and forget that scope's messages."""
    client = interaction.client
    target = place.scope(scope)
    try:
        await client.services.channel_settings.change(
            target, "knowledge", mode, by=interaction.user.id
        )
        forgotten = 0 if mode == "on" else await _forget_scope(client, place, scope)
    except StoreError as error:
        log.warning("knowledge: could not turn %s: %s", mode, error)
        return Answer(STORE_DOWN)
    if scope == "server":
        where = "this server"
    elif place.channel_id != interaction.channel_id:  # asked in a thread or forum post
        where = f"<#{place.channel_id}> and its threads"
    else:
        where = "this channel"
    who = interaction.user.display_name
    log.info("knowledge: %s (%s) turned it %s for %s", who, interaction.user.id, mode, target)
    if mode == "on":
        text = f"📚 {who} turned knowledge on for {where}: I'll index its messages."
    else:
        text = (
            f"📚 {who} turned knowledge off for {where}: I stopped indexing and forgot "
            f"{forgotten:,} indexed messages."
        )
    return Answer(text, public=True)


async def _forget_scope(client: ChatBot, place: Place, scope: ScopeTarget) -> int:
    """Stop reading, and forget the messages of each channel of the scope where
    knowledge is now off (a channel turned on by itself keeps its own); how many."""
    guild = client.get_guild(place.guild_id or 0)
    if scope == "server" and guild is not None:
        channels = [c.id for c in guild.channels if not isinstance(c, discord.CategoryChannel)]
    else:
        channels = [place.channel_id]
    channel_settings = client.services.channel_settings
    off = set()
    for channel_id in channels:
        if not (await channel_settings.effective(Place(place.guild_id, channel_id))).knowledge:
            off.add(channel_id)
    client.backfiller.stop(place.guild_id or 0, off)
    client.keeper.drop_queued(off)
    removed = 0
    for channel_id in off:
        removed += await client.services.store.forget_channel(channel_id)
    return removed


async def _say(interaction: discord.Interaction[ChatBot], answer: Answer) -> discord.Message | None:
    """Send `answer` (as `respond` does) and return its public message, to edit later."""
    await respond(interaction, answer)
    if not answer.public:
        return None
    try:
        return await interaction.original_response()
    except discord.HTTPException:
        return None


def _reporter(message: discord.Message, text: str) -> Report:
    """Edits `message` (`text`, then the progress line) until its interaction expires."""
    started = time.monotonic()

    async def report(line: str) -> None:
        if time.monotonic() - started > EDITABLE_SECONDS:
            raise TimeoutError("the command's reply can no longer be edited")
        await message.edit(content=f"{text}\n{line}")

    return report


# --- /knowledge --------------------------------------------------------------------------

knowledge_group = app_commands.Group(
    name="knowledge", description="The index of this server's messages that answers search."
)


class ForgetMe(discord.ui.View):
    """Confirm and Cancel buttons for /knowledge forget-me; only the asker sees them."""

    def __init__(self, interaction: discord.Interaction[ChatBot]) -> None:
        super().__init__(timeout=CONFIRM_SECONDS)
        self.asked = interaction  # its private reply holds the buttons
        self.client = interaction.client
        self.user_id = interaction.user.id

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """Only the asker decides (the question is private, but its buttons must not
        remove one person's messages on another's press); anyone else is told privately."""
        if interaction.user.id == self.user_id:
            return True
        await interaction.response.send_message(NOT_YOURS, ephemeral=True)
        return False

    async def on_timeout(self) -> None:
        """Unanswered: the buttons go (a press would no longer be heard)."""
        try:
            await self.asked.edit_original_response(
                content="Nothing was removed (no answer within a minute).", view=None
            )
        except discord.HTTPException as error:
            log.info("knowledge: forget-me question not closed: %s", error)

    @discord.ui.button(label="Remove my messages", style=discord.ButtonStyle.danger)
    async def confirm(self, interaction: discord.Interaction, _: discord.ui.Button) -> None:
        self.stop()
        await interaction.response.defer()  # the store may be slow: edit afterwards
        try:
            removed = await self.client.keeper.forget_author(self.user_id)
        except StoreError as error:
            log.warning("knowledge: forget-me failed: %s", error)
            text = "The index is not answering right now; nothing was removed. Try again later."
        else:
            log.info("knowledge: forgot %d messages of %s", removed, self.user_id)
            text = f"Removed {removed:,} of your messages from the search index."
        await interaction.edit_original_response(content=text, view=None)

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary)
    async def cancel(self, interaction: discord.Interaction, _: discord.ui.Button) -> None:
        self.stop()
        await interaction.response.edit_message(content="Nothing was removed.", view=None)


@knowledge_group.command(name="forget-me")
async def knowledge_forget_me(interaction: discord.Interaction[ChatBot]) -> None:
    """Remove every message you wrote from the search index (asks first)."""
    view = ForgetMe(interaction)
    await interaction.response.send_message(FORGET_QUESTION, view=view, ephemeral=True)


@knowledge_group.command(name="status")
async def knowledge_status(interaction: discord.Interaction[ChatBot]) -> None:
    """Where knowledge is on in this server, and how reading the history is going."""
    await interaction.response.defer(ephemeral=True, thinking=True)
    await interaction.followup.send(await _status(interaction), ephemeral=True)


async def _status(interaction: discord.Interaction[ChatBot]) -> str:
    guild = interaction.guild
    if guild is None:
        return f"{NOT_IN_DMS} /knowledge forget-me works here too."
    client = interaction.client
    channel_settings = client.services.channel_settings
    user = interaction.user  # a channel they cannot read is not theirs to know about
    reads = (
        await client.knowledge_offer.readers.readable_by(user)
        if isinstance(user, discord.Member)
        else frozenset()
    )
    on = []
    for channel in [*guild.text_channels, *guild.forums]:
        if channel.id in reads and (await channel_settings.effective(Place.of(channel))).knowledge:
            on.append(channel.mention)
    lines = [f"**Indexed channels:** {', '.join(on) if on else 'none'}"]
    lines += [job.progress.line() for job in client.backfiller.jobs_in(guild.id)]
    try:
        waiting = [r for r in await client.services.store.backfills() if r.guild_id == guild.id]
    except StoreError:
        waiting = []
    if waiting and not client.backfiller.jobs_in(guild.id):
        lines.append(f"{len(waiting)} channels' history still to read (after a restart).")
    days = client.settings.knowledge_retention_days
    lines.append(f"Messages are kept {days:,} days; /knowledge forget-me removes yours.")
    return "\n".join(lines)


COMMANDS = (knowledge_group,)
