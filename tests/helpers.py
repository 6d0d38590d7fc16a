"""Helpers shared by the tests: waiting for what the bot shows in Discord, running
commands, reading the log, Discord's refusals and grapheme clusters, free ports, and
starting `python bot.py` as a user does.

The fixtures that start the stand-ins and the bot are in conftest.py.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import discord
import pytest
import regex

from operations.process import point_discord_at
from tests.standins.discord import DiscordStandIn
from tests.standins.openai_standin import OpenAIStandIn

MARKER = "▌"  # the end of a streamed message still being written
BOT = Path(__file__).resolve().parents[1] / "bot.py"
CLUSTER = regex.compile(r"\X")  # a grapheme cluster


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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def closed_port_url() -> str:
    """An http URL on loopback where nothing listens (the port was just free)."""
    return f"http://127.0.0.1:{free_port()}"


def point_discord_at_standin(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """`operations.process.point_discord_at(url)` for one test: discord.py's class
    attributes it changes are put back after the test."""
    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)
    gateway = discord.gateway.DiscordWebSocket
    monkeypatch.setattr(gateway, "DEFAULT_GATEWAY", gateway.DEFAULT_GATEWAY)
    point_discord_at(url)


def http_error(
    kind: type[discord.HTTPException], status: int, code: int = 0, text: str = ""
) -> discord.HTTPException:
    """A refusal as discord.py builds it: Discord's JSON error body with `code` and `text`
    (an HTML page, for `text` starting with "<" and no code)."""
    response: Any = SimpleNamespace(status=status, reason="Reason")
    body: Any = {"code": code, "message": text} if code or not text.startswith("<") else text
    return kind(response, body)


def cluster_edges(text: str) -> set[int]:
    """The positions in text between grapheme clusters, its two ends included."""
    return {0, len(text)} | {match.start() for match in CLUSTER.finditer(text)}


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


async def run_command(
    discord_api: DiscordStandIn, channel: object, user: str, command: str, **options: object
) -> dict:
    """Run `/command` and return the bot's first answer to it."""
    sent = await discord_api.user_runs_command(channel, user, command, options)
    return await discord_api.wait_for_interaction_response(sent, timeout=5)


def words(text: str, per_chunk: int = 4) -> list[str]:
    """`text` cut into stream chunks of a few words each (joined, they are `text`)."""
    parts = text.split(" ")
    return [
        " ".join(parts[i : i + per_chunk]) + (" " if i + per_chunk < len(parts) else "")
        for i in range(0, len(parts), per_chunk)
    ]


def logged(caplog: pytest.LogCaptureFixture, text: str, level: int | None = None) -> list[str]:
    """The log messages containing `text`, only those of `level` if given."""
    return [
        r.getMessage()
        for r in caplog.records
        if text in r.getMessage() and (level is None or r.levelno == level)
    ]


# --- `python bot.py` in a folder of its own -------------------------------------------


async def launch(folder: Path, dotenv: dict[str, str]) -> asyncio.subprocess.Process:
    """Start `python bot.py` in `folder` with `dotenv` as its .env and a bare environment."""
    dotenv = {"DATABASE_URL": str(folder / "data" / "bot.db"), **dotenv}
    (folder / ".env").write_text("".join(f"{k}={v}\n" for k, v in dotenv.items()))
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(BOT),
        cwd=folder,
        env={"PATH": os.environ["PATH"], "HOME": str(folder)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish(process: asyncio.subprocess.Process) -> tuple[int, str]:
    """Wait for the process to exit; its status and everything it printed."""
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, (stdout + stderr).decode()


def dotenv_for(discord_api: DiscordStandIn, openai_api: OpenAIStandIn) -> dict[str, str]:
    """The .env a user writes for `python bot.py`, pointed at the stand-ins."""
    return {
        "DISCORD_BOT_TOKEN": discord_api.bot_token,
        "OPENAI_API_KEY": "sk-test-key",
        "OPENAI_BASE_URL": openai_api.base_url,
        "DISCORD_API_URL": discord_api.url,
        "STREAM_REPLIES": "false",
    }


async def write_lock(path: Path) -> sqlite3.Connection:
    """A connection holding `path`'s write lock (the bot may hold it for a moment first;
    some of SQLite's WAL locks are not waited for by its busy timeout)."""
    holder = sqlite3.connect(path, isolation_level=None, timeout=0)  # never block the loop
    for _ in range(50):
        try:
            holder.execute("BEGIN IMMEDIATE")
            return holder
        except sqlite3.OperationalError:
            await asyncio.sleep(0.1)
    raise AssertionError(f"could not lock {path}")
