"""Field reports of the kind "a slash command misses Discord's 3-second deadline" (10062
Unknown interaction, "The application did not respond"): slow work such as a busy
database before the first response. The bot defers first, then answers in a follow-up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from discord_side.commands import RESET_MESSAGE
from tests.helpers import write_lock
from tests.standins.discord import DiscordStandIn


@asynccontextmanager
async def store_held(tmp_path: Path) -> AsyncIterator[None]:
    """Another process holds the bot's database write lock while the block runs."""
    holder = await write_lock(tmp_path / "data" / "bot.db")
    try:
        yield
    finally:
        holder.execute("COMMIT")
        holder.close()


async def test_a_command_reading_a_slow_database_defers_within_3_seconds(
    start_bot, discord_api: DiscordStandIn, tmp_path: Path
) -> None:
    """Stefouch/sebedius-yearzero-discord-bot#176 — command deadline: "DiscordAPIError
    [10062]: Unknown interaction", which the maintainer puts down to "a slow database
    response" past the 3 s window. A read queued behind a waiting write is deferred
    first and answered when the store is free."""
    await start_bot()
    async with store_held(tmp_path):
        # The bot's own write waits for the lock; its reads queue behind that write.
        await discord_api.user_runs_command("random", "owner", "settings streaming", {"mode": "on"})
        await asyncio.sleep(0.2)
        shown = await discord_api.user_runs_command("general", "alice", "settings show")
        early = await discord_api.wait_for(lambda: discord_api.interaction_responses(shown), 3)
        await asyncio.sleep(3)  # past Discord's 3 s
    assert [(r["kind"], r["deferred"]) for r in early] == [("callback", True)]
    answer = await discord_api.wait_for_interaction_response(shown, timeout=10)
    assert "**Model:**" in answer["content"]


async def test_a_command_that_forgets_then_replies_answers_within_3_seconds(
    start_bot, discord_api: DiscordStandIn, tmp_path: Path
) -> None:
    """discordjs/discord.js#9476 — command deadline: a command that deletes messages and
    then replies ("Successfully deleted 2 messages") fails with 10062. /reset forgets in
    memory and answers at once, however busy the store is: nothing slow comes first."""
    await start_bot()
    async with store_held(tmp_path):
        sent = await discord_api.user_runs_command("general", "owner", "reset")
        answer = await discord_api.wait_for_interaction_response(sent, timeout=3)
    assert answer["kind"] == "callback" and answer["content"] == RESET_MESSAGE
