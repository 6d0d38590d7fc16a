"""A plain discord.py client on the Discord stand-in: real channels and messages for the
Discord side's own objects (a `Reply`, read-back) without the whole bot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import discord
import pytest

from tests.helpers import point_discord_at_standin, until
from tests.standins.discord import DiscordStandIn


@pytest.fixture
async def discord_client(
    discord_api: DiscordStandIn, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[discord.Client]:
    """A discord.py client logged in as the stand-in's bot, its server in the cache."""
    point_discord_at_standin(monkeypatch, discord_api.url)
    intents = discord.Intents.default()
    intents.message_content = True
    client = discord.Client(intents=intents, max_messages=None)
    task = asyncio.create_task(client.start(discord_api.bot_token))
    await until(lambda: task.done() or client.get_guild(discord_api.guild_id), timeout=10)
    if task.done():
        task.result()  # raise what stopped it
    yield client
    await client.close()
    await asyncio.wait_for(task, 5)
