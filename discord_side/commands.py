"""The slash commands. Add a command here: an `app_commands` function whose docstring
is its description, listed in `COMMANDS`.

/settings (per channel, per server, per DM: channel_settings.py) and /usage (usage.py)
are command groups; who may use which command is checked by the decorators of
permissions.py, since `default_permissions` only hides a command and /settings show and
/usage me are for everyone.

`ChatTree` applies the access rules to every command, as to messages, and answers a
failed check or an error with one short private line.

Discord forgets an interaction that gets no first response within 3 seconds ("The
application did not respond"; interactions/receiving-and-responding). A command whose
answer is private defers first whenever it reads the store or the model server; one
that may announce publicly runs its slow work through `in_time`, which defers privately
if the work outlasts RESPOND_WITHIN. Autocomplete cannot defer: it offers what it has
by then (the model list keeps reading into its cache for the next keystroke).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands

from config import ReplyTo
from conversation.channel_settings import (
    LABELS,
    REASONING_EFFORTS,
    Place,
    SettingKey,
    describe,
    model_suggestions,
    persona_refusal,
    reply_to_refusal,
    show,
)
from conversation.services import MODELS_READ_SECONDS
from conversation.usage import REPORT_DAYS, Prices, personal_report, server_report, usage_csv
from discord_side import permissions
from discord_side.deadline import Answer, arrived, in_time, respond, within
from discord_side.failures import describe as describe_failure
from discord_side.memory_report import memory_report
from discord_side.readback import RESET_MESSAGE
from store import ScopeTarget, StoreError
from text.markdown import inline_code

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
            if self.client.is_closed():
                return  # start-up failed meanwhile (a bad setting): that is the news
            log.warning("could not register the slash commands, running without: %r", error)
            return
        log.info("registered /%s", ", /".join(command.name for command in synced))

    async def interaction_check(self, interaction: discord.Interaction[ChatBot]) -> bool:
        """The access rules apply to commands as to messages; say so if they refuse."""
        arrived(interaction)
        if not await interaction.client.claims.interaction(interaction):
            return False  # another process (or this one, delivered twice) has it
        return await permissions.may_use_commands(interaction)

    async def on_error(
        self, interaction: discord.Interaction[ChatBot], error: app_commands.AppCommandError
    ) -> None:
        """Answer a failed check with its own words, any other error with an apology
        (logged with the command's full name, "/settings model"). An apology Discord
        refuses in turn (the interaction expired, say) is logged, never raised."""
        if isinstance(error, app_commands.CheckFailure):
            text = str(error)  # the checks (permissions.py) word their refusals for the user
        else:
            name = interaction.command.qualified_name if interaction.command else "?"
            log.error("command /%s failed", name, exc_info=error)
            text = "Sorry, that command failed. Please try again."
        try:
            await respond(interaction, Answer(text))
        except discord.HTTPException as refused:
            log.warning("could not answer the failed command: %s", describe_failure(refused))


@app_commands.command()
@permissions.can_reset()
async def reset(interaction: discord.Interaction[ChatBot]) -> None:
    """Forget this channel's conversation."""
    conversations = interaction.client.conversations
    assert interaction.channel_id is not None  # checked by permissions.may_reset
    conversations.reset(interaction.channel_id)
    log.info("channel %s: conversation reset by %s", interaction.channel_id, interaction.user.id)
    # A visible message: it marks the boundary that read-back never crosses.
    await interaction.response.send_message(RESET_MESSAGE)


@app_commands.command()
async def memory(interaction: discord.Interaction[ChatBot]) -> None:
    """What I remember in this channel."""
    await interaction.response.defer(ephemeral=True, thinking=True)
    conversations = interaction.client.conversations
    channel = interaction.channel
    assert channel is not None
    facts = await conversations.report(channel)  # type: ignore[arg-type]
    await interaction.followup.send(memory_report(facts), ephemeral=True)


# --- /settings ------------------------------------------------------------------------

STORE_DOWN = "The settings database is not answering right now; nothing was changed."
MAX_LISTED = 1_500  # characters of model names in a refusal (a message holds 2,000)


def _where(place: Place, scope: ScopeTarget) -> str:
    if place.guild_id is None:
        return "this DM"
    if scope == "server":
        return "this server (its default)"
    return "this thread" if place.parent_id is not None else "this channel"


async def _change(
    interaction: discord.Interaction[ChatBot],
    key: SettingKey,
    value: str | None,
    scope: ScopeTarget,
    *,
    check: Awaitable[str | None] | None = None,
) -> None:
    """Store `key` = `value` (None: remove it here) and announce it in the channel, in
    time (`in_time`); a bad value, a refusal by `check` (awaited first: why not, or
    None) or a store failure is answered privately."""
    refusal = await in_time(interaction, check) if check is not None else None
    if refusal is not None:
        await respond(interaction, Answer(refusal))
        return
    await respond(interaction, await in_time(interaction, _changed(interaction, key, value, scope)))


async def _changed(
    interaction: discord.Interaction[ChatBot],
    key: SettingKey,
    value: str | None,
    scope: ScopeTarget,
) -> Answer:
    channel_settings = interaction.client.services.channel_settings
    place = Place.of(interaction.channel)
    target = place.scope(scope)
    try:
        if value is None:
            await channel_settings.unset(target, key)
        else:
            value = await channel_settings.change(target, key, value, by=interaction.user.id)
    except ValueError as error:
        return Answer(f"Not changed: {error}.")
    except StoreError as error:
        log.warning("settings: could not save %s: %s", key, error)
        return Answer(STORE_DOWN)
    where = _where(place, scope)
    log.info(
        "settings: %s (%s) set %s for %s (%s) to %r",
        interaction.user,
        interaction.user.id,
        key,
        target.kind,
        target.id,
        value,
    )
    now = "back to the inherited value" if value is None else describe(key, value)
    # Visible to everyone in the channel, silently (no notification) and pinging no one;
    # read-back skips silent bot messages, so it never enters the conversation.
    return Answer(
        f"⚙️ {interaction.user.display_name} set the {LABELS[key].lower()} for {where}: {now}",
        public=True,
    )


settings_group = app_commands.Group(
    name="settings", description="How I answer here: persona, model, reply mode, tools."
)
SCOPE_HELP = "channel: here only (a thread: this thread); server: the server's default"


@settings_group.command(name="show")
async def settings_show(interaction: discord.Interaction[ChatBot]) -> None:
    """The settings in effect here and where each comes from."""
    await interaction.response.defer(ephemeral=True, thinking=True)  # the store may be slow
    services = interaction.client.services
    effective = await services.channel_settings.effective(Place.of(interaction.channel))
    await interaction.followup.send(show(effective), ephemeral=True)


@settings_group.command(name="persona")
@app_commands.describe(text="The system prompt: who I am and how I answer", scope=SCOPE_HELP)
@permissions.can_change_settings()
async def settings_persona(
    interaction: discord.Interaction[ChatBot],
    text: app_commands.Range[str, 1, 4000],
    scope: ScopeTarget = "channel",
) -> None:
    """Set my persona (the system prompt)."""
    await _change(interaction, "persona", text, scope, check=_persona_refusal(interaction, text))


async def _persona_refusal(interaction: discord.Interaction[ChatBot], text: str) -> str | None:
    """Why `text` cannot be this place's persona (too many tokens for its model), or None."""
    services = interaction.client.services
    effective = await services.channel_settings.effective(Place.of(interaction.channel))
    counter = await services.counters.for_model(effective.model)  # may load an encoding
    tokens = counter.count_message("system", text.strip())
    return persona_refusal(tokens, interaction.client.settings.prompt_budget)


@settings_group.command(name="model")
@app_commands.describe(name="A model the model server offers", scope=SCOPE_HELP)
@permissions.can_change_settings()
async def settings_model(
    interaction: discord.Interaction[ChatBot], name: str, scope: ScopeTarget = "channel"
) -> None:
    """Set the model I answer with."""
    await _change(interaction, "model", name, scope, check=_model_refusal(interaction, name))


async def _model_refusal(interaction: discord.Interaction[ChatBot], name: str) -> str | None:
    """Why `name` cannot be chosen (the model server lists models, not this one), or None."""
    # The command is deferred while this waits: a slow list is read, not skipped.
    model_list = interaction.client.services.model_list
    listed = await model_list.models(wait=MODELS_READ_SECONDS)
    if listed is not None and name.strip() not in listed:
        # The server's list may have changed since it was read: check again.
        listed = await model_list.models(fresh=True, wait=MODELS_READ_SECONDS)
    if listed is None or name.strip() in listed:
        return None
    offered = ", ".join(listed)
    if len(offered) > MAX_LISTED:
        offered = offered[:MAX_LISTED].rsplit(", ", 1)[0] + ", …"
    shown = inline_code(name.strip()[:100])
    return f"The model server does not offer {shown}. It offers: {offered}"


@settings_model.autocomplete("name")
async def _model_names(
    interaction: discord.Interaction[ChatBot], current: str
) -> list[app_commands.Choice[str]]:
    """The server's models matching what is typed (`model_suggestions`); a server that
    lists none offers the model in effect here, if it matches. Suggestions cannot be
    deferred: what is not read within RESPOND_WITHIN seconds is offered at the next
    keystroke (the model list caches it), none this time."""
    listed = await within(_offered_models(interaction), "reading the model list")
    if listed is None:
        return []
    return [app_commands.Choice(name=m, value=m) for m in model_suggestions(listed, current)]


async def _offered_models(interaction: discord.Interaction[ChatBot]) -> list[str]:
    listed = await interaction.client.services.model_list.models()
    if listed is None:
        channel_settings = interaction.client.services.channel_settings
        listed = [(await channel_settings.effective(Place.of(interaction.channel))).model]
    return listed


@settings_group.command(name="reply-to")
@app_commands.describe(
    mode="all; mention: mentions, replies, DMs; thread, mention-thread: the same, each in a thread",
    scope=SCOPE_HELP,
)
@permissions.can_change_settings()
async def settings_reply_to(
    interaction: discord.Interaction[ChatBot],
    mode: ReplyTo,
    scope: ScopeTarget = "channel",
) -> None:
    """Choose which messages I answer, and whether in threads."""
    refusal = reply_to_refusal(mode, Place.of(interaction.channel), scope)
    if refusal is not None:
        await interaction.response.send_message(refusal, ephemeral=True)
        return
    await _change(interaction, "reply_to", mode, scope)


@settings_group.command(name="reasoning-effort")
@app_commands.describe(
    level="How hard a reasoning model thinks; default: not sent", scope=SCOPE_HELP
)
@app_commands.choices(
    level=[app_commands.Choice(name=v, value=v) for v in ("default", *REASONING_EFFORTS)]
)
@permissions.can_change_settings()
async def settings_reasoning_effort(
    interaction: discord.Interaction[ChatBot], level: str, scope: ScopeTarget = "channel"
) -> None:
    """Set the reasoning effort sent to the model."""
    await _change(interaction, "reasoning_effort", None if level == "default" else level, scope)


@settings_group.command(name="streaming")
@app_commands.describe(mode="on: show answers as they are written", scope=SCOPE_HELP)
@permissions.can_change_settings()
async def settings_streaming(
    interaction: discord.Interaction[ChatBot],
    mode: Literal["on", "off"],
    scope: ScopeTarget = "channel",
) -> None:
    """Show answers as they are written, or when complete."""
    await _change(interaction, "streaming", mode, scope)


@settings_group.command(name="tools")
@app_commands.describe(
    mode="on: the model may use the bot's tools (MCP servers); off: none offered",
    scope=SCOPE_HELP,
)
@permissions.can_change_settings()
async def settings_tools(
    interaction: discord.Interaction[ChatBot],
    mode: Literal["on", "off"],
    scope: ScopeTarget = "channel",
) -> None:
    """Let the model use tools here (those that change things ask first), or not."""
    await _change(interaction, "tools", mode, scope)


@settings_group.command(name="reset")
@app_commands.describe(scope=SCOPE_HELP)
@permissions.can_change_settings()
async def settings_reset(
    interaction: discord.Interaction[ChatBot], scope: ScopeTarget = "channel"
) -> None:
    """Remove the settings made here, back to the inherited values."""
    await respond(interaction, await in_time(interaction, _reset_settings(interaction, scope)))


async def _reset_settings(interaction: discord.Interaction[ChatBot], scope: ScopeTarget) -> Answer:
    place = Place.of(interaction.channel)
    try:
        removed = await interaction.client.services.channel_settings.reset(place.scope(scope))
    except StoreError as error:
        log.warning("settings: could not reset: %s", error)
        return Answer(STORE_DOWN)
    log.info(
        "settings: %s (%s) reset %d settings of %s",
        interaction.user,
        interaction.user.id,
        removed,
        place.scope(scope),
    )
    return Answer(
        f"⚙️ {interaction.user.display_name} reset the settings of {_where(place, scope)}: "
        "inherited values apply again.",
        public=True,
    )


# --- /usage ---------------------------------------------------------------------------

usage_group = app_commands.Group(name="usage", description="Tokens used by the bot's answers.")


def _prices(interaction: discord.Interaction[ChatBot]) -> Prices | None:
    settings = interaction.client.settings
    if settings.price_input_per_million is None and settings.price_output_per_million is None:
        return None
    return Prices(
        settings.price_input_per_million or 0.0,
        settings.price_output_per_million or 0.0,
        settings.price_cached_input_per_million,
    )


@usage_group.command(name="me")
async def usage_me(interaction: discord.Interaction[ChatBot]) -> None:
    """Your tokens and answers today, this week and in the last 30 days."""
    await interaction.response.defer(ephemeral=True, thinking=True)
    try:
        totals = await interaction.client.services.usage.user_totals(interaction.user.id)
    except StoreError as error:
        log.warning("usage: could not read: %s", error)
        await interaction.followup.send("Usage can't be read right now; try again later.")
        return
    await interaction.followup.send(personal_report(totals, _prices(interaction)), ephemeral=True)


@usage_group.command(name="server")
@permissions.can_see_server_usage()
async def usage_server(interaction: discord.Interaction[ChatBot]) -> None:
    """This server's top users and channels over 30 days, with a CSV export."""
    await interaction.response.defer(ephemeral=True, thinking=True)
    guild_id = interaction.guild.id
    try:
        usage = interaction.client.services.usage
        users, channels, rows = await usage.server_usage(guild_id, days=REPORT_DAYS)
    except StoreError as error:
        log.warning("usage: could not read: %s", error)
        await interaction.followup.send("Usage can't be read right now; try again later.")
        return
    export = discord.File(io.BytesIO(usage_csv(rows)), filename=f"usage-{guild_id}.csv")
    await interaction.followup.send(
        server_report(users, channels, _prices(interaction)),
        file=export,
        ephemeral=True,
        allowed_mentions=discord.AllowedMentions.none(),
    )


COMMANDS = (reset, memory, settings_group, usage_group)
