"""A start-up that fails at any step of setup_hook closes what it had started, and says
why in one line: the real bot in this event loop (each step made to fail in turn), and
`python bot.py` for the two a user meets (a taken HEALTH_PORT, a database it cannot
reach)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import bot as bot_module
from bot import ChatBot
from config import load_settings
from knowledge.backfill import Backfiller
from operations.health import Health
from tests.helpers import (
    bot_environment,
    dotenv_for,
    finish,
    free_port,
    launch,
    point_discord_at_standin,
)
from tests.standins.discord import DiscordStandIn
from tests.standins.openai_standin import OpenAIStandIn
from text.tokens import TokenCounter

UNREACHABLE_DATABASE = "postgresql://nobody@127.0.0.1:{port}/bot"
NOISE = ("Traceback", "Task was destroyed", "Exception ignored", "Unclosed", "never retrieved")


class Broken(Exception):
    """The failure put into one step of setup_hook."""


def breaks(*_: object, **__: object) -> None:
    raise Broken("this step failed")


# Each step of setup_hook in order, and how it is made to fail.
STEPS = {
    "the knowledge index": (Backfiller, "__init__"),  # the keeper is running by then
    "history reading": (Backfiller, "resume"),
    "claims": (bot_module, "claims_for"),
    "the health server": (Health, "start"),
    "registering commands": (bot_module.ChatTree, "register"),
}


@pytest.mark.parametrize("step", list(STEPS))
async def test_a_start_up_failing_at_any_step_closes_what_it_started(
    step: str,
    tmp_path: Path,
    discord_api: DiscordStandIn,
    openai_api: OpenAIStandIn,
    o200k: TokenCounter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    point_discord_at_standin(monkeypatch, discord_api.url)
    owner, name = STEPS[step]
    monkeypatch.setattr(owner, name, breaks)
    overrides = {"DATABASE_URL": str(tmp_path / "bot.db"), "HEALTH_PORT": str(free_port())}
    settings = load_settings(bot_environment(discord_api, openai_api, **overrides))
    loaded = asyncio.get_running_loop().create_future()
    loaded.set_result(o200k)
    before = asyncio.all_tasks()
    chat_bot = ChatBot(settings, loaded)
    with pytest.raises(Broken):
        await chat_bot.start(settings.discord_bot_token)
    await chat_bot.close()  # as `async with bot` in bot.run does
    await asyncio.sleep(0.1)
    left = [t for t in asyncio.all_tasks() - before if not t.done()]
    assert left == []  # nothing for "Task was destroyed but it is pending!" at exit
    assert chat_bot.is_closed()


async def start_up_output(folder: Path, dotenv: dict[str, str]) -> list[str]:
    """`python bot.py` that cannot start: checked to exit 1; the lines it printed."""
    await asyncio.to_thread(folder.mkdir)
    status, output = await finish(await launch(folder, dotenv))
    assert status == 1
    for noise in NOISE:
        assert noise not in output, output
    return output.strip().splitlines()


async def test_a_taken_health_port_and_an_unreachable_database_each_say_one_line(
    tmp_path: Path, start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    port = free_port()
    await start_bot(HEALTH_PORT=str(port))
    dotenv = {**dotenv_for(discord_api, openai_api), "HEALTH_PORT": str(port)}
    lines = await start_up_output(tmp_path / "port", dotenv)
    assert lines[-1] == (
        f"Configuration error: HEALTH_PORT: cannot serve health checks on 127.0.0.1:{port}: "
        "address already in use."
    )
    closed = free_port()
    url = UNREACHABLE_DATABASE.format(port=closed)
    dotenv = {**dotenv_for(discord_api, openai_api), "DATABASE_URL": url}
    lines = await start_up_output(tmp_path / "database", dotenv)
    assert lines[-1] == (
        f"Configuration error: DATABASE_URL: cannot connect to PostgreSQL at 127.0.0.1:{closed}:"
        " connection refused"
    )
    assert sum("error" in line.lower() for line in lines) == 1
