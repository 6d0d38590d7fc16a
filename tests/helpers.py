"""Helpers for the end-to-end tests: waiting for what the bot shows in Discord.

The fixtures that start the stand-ins and the bot are in conftest.py.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

from tests.standins.discord_standin import DiscordStandIn
from tests.standins.openai_standin import OpenAIStandIn

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


def answered(openai_api: OpenAIStandIn) -> list[str]:
    """The newest user message of each model request, in order."""
    return [r["messages"][-1]["content"] for r in openai_api.completions]


def closed_port_url() -> str:
    """An http URL on loopback where nothing listens (the port was just free)."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{free.getsockname()[1]}"


def bot_environment(
    discord_api: DiscordStandIn, openai_api: OpenAIStandIn, **overrides: str
) -> dict[str, str]:
    """The settings a user would put in .env, pointed at the stand-ins."""
    return {
        "DISCORD_BOT_TOKEN": discord_api.bot_token,
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": openai_api.base_url,
        "DISCORD_API_URL": discord_api.url,
        "STREAM_REPLIES": "false",
        "OPENAI_TIMEOUT": "5",
        **overrides,
    }
