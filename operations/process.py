"""The bot's process around the client: where discord.py connects, logging, the malloc
arena, and the one line printed for each failure that stops start-up."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

import aiohttp
import discord
import yarl

from config import ConfigError, Settings
from operations.shards import LeaseLost


class ShardCountUnknown(Exception):
    """Discord did not say how many shards to run; str() is the last failure."""


# The one line printed for an error that stops the bot from starting.
START_UP_FAILURES = {
    discord.LoginFailure: "Discord rejected DISCORD_BOT_TOKEN: copy a fresh token from the "
    "Developer Portal (your application -> Bot -> Reset Token) into .env (or the environment).",
    discord.PrivilegedIntentsRequired: "Discord refused the Message Content intent: enable "
    "MESSAGE CONTENT INTENT in the Developer Portal (your application -> Bot -> Privileged "
    "Gateway Intents).",
}

# Gateway close codes discord.py does not reconnect after (4014 is PrivilegedIntentsRequired
# above): the one line for each. A code not here keeps discord.py's own wording.
SHARDING_REQUIRED = (
    "Discord requires more shards (each may hold at most 2,500 servers): raise SHARD_COUNT, "
    "or unset SHARD_COUNT and SHARD_IDS to use Discord's recommended count."
)
GATEWAY_CLOSES = {
    4004: START_UP_FAILURES[discord.LoginFailure],
    4010: "Discord refused the shard: SHARD_IDS must each be below SHARD_COUNT, and "
    "SHARD_COUNT must match Discord's (unset both to use Discord's recommended count).",
    4011: SHARDING_REQUIRED,
    4012: "Discord refused the gateway API version: upgrade discord.py "
    "(pip install -r requirements.txt).",
    4013: "Discord refused the bot's intents as invalid: upgrade discord.py "
    "(pip install -r requirements.txt).",
}

# Every error `start_up_failure` has a line for.
START_UP_ERRORS = (
    ConfigError,
    discord.LoginFailure,
    discord.PrivilegedIntentsRequired,
    aiohttp.ClientError,
    OSError,
    discord.ConnectionClosed,
    LeaseLost,
    ShardCountUnknown,
)


def start_up_failure(error: BaseException) -> str:
    """The one line that says why the bot stopped, for any of START_UP_ERRORS."""
    if isinstance(error, ConfigError):
        return f"Configuration error: {error}"
    for kind, line in START_UP_FAILURES.items():
        if isinstance(error, kind):
            return line
    if isinstance(error, discord.ConnectionClosed):  # codes it cannot reconnect after
        return GATEWAY_CLOSES.get(error.code, f"Discord closed the gateway: {error}")
    if isinstance(error, LeaseLost):
        return f"Could not hold the shards: {error}"
    if isinstance(error, ShardCountUnknown):
        return (
            f"Could not ask Discord how many shards to run (GET /gateway/bot: {error}): "
            "Discord may be down, try again later, or set SHARD_COUNT."
        )
    return f"Could not reach Discord ({error}): check the network connection."


def point_discord_at(url: str) -> None:
    """Send discord.py's REST and gateway traffic to `url` (the test stand-in)."""
    base = yarl.URL(url)
    discord.http.Route.BASE = str(base / "api" / "v10")
    scheme = "wss" if base.scheme == "https" else "ws"
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = base.with_scheme(scheme) / "gateway"


def configure_logging(settings: Settings) -> None:
    discord.utils.setup_logging(level=getattr(logging, settings.log_level))
    # A text bot needs no voice: skip discord.py's start-up warnings about voice libraries.
    discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
    if settings.log_level != "DEBUG":  # the SDK's HTTP library logs each request at INFO
        for name in ("httpx", "httpx2"):
            logging.getLogger(name).setLevel(logging.WARNING)


M_ARENA_MAX = -8  # glibc's <malloc.h>


def use_one_malloc_arena() -> None:
    """Have every thread allocate from glibc's main arena; call before any thread starts.

    glibc gives threads arenas of their own (up to 8 per core), and memory freed in one
    is reused by that arena alone. The bot's few threads (aiosqlite's connection, the
    tokenizer being built, images and PDFs being read) mostly hold the GIL, so more
    arenas buy no speed and strand memory: ~6 MB of RSS after 1,000 channels. Does
    nothing where the C library is not glibc.
    """
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError, TypeError):
        return
    mallopt(M_ARENA_MAX, 1)
