"""Helpers for the end-to-end tests: waiting for what the bot shows in Discord.

The fixtures that start the stand-ins and the bot are in conftest.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tests.standins.discord_standin import DiscordStandIn

MARKER = "▌"  # the end of a streamed message still being written


async def until(condition: Callable[[], object], timeout: float = 5.0) -> None:
    """Wait for `condition` that no stand-in records (a log line, say), checking often."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def replies(discord_api: DiscordStandIn, channel: str, count: int = 1) -> list[dict]:
    """Wait until the bot has posted `count` messages in `channel`; return them."""
    return await discord_api.wait_for(
        lambda: (posted := discord_api.bot_messages(channel)) and len(posted) >= count and posted
    )


async def final_messages(discord_api: DiscordStandIn, channel: str, count: int) -> list[str]:
    """Wait until the bot shows `count` messages in `channel`, none still being written."""
    posted = await discord_api.wait_for(
        lambda: (
            len(m := discord_api.bot_messages(channel)) == count
            and not any(x["content"].endswith(MARKER) for x in m)
            and m
        ),
        timeout=20,
    )
    return [m["content"] for m in posted]


def conversation(request: dict) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in request["messages"][1:]]
