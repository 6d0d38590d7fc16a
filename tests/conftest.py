"""Shared fixtures: the real encodings, and the real bot wired to the stand-ins."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from hypothesis import settings

from bot import ChatBot
from config import load_settings
from tests.helpers import bot_environment, point_discord_at_standin, until
from tests.standins.discord import DiscordStandIn
from tests.standins.openai_standin import OpenAIStandIn
from text.tokens import TokenCounter, load_encoding

# The same examples in the same order on every run, so a property test takes the same
# time each run and a failure seen once is seen again. No deadline: two cores shared by
# parallel runs make any per-example time limit flaky. A test that needs more examples,
# or must suppress a health check, says so in its own @settings.
settings.register_profile(
    "pinned", derandomize=True, max_examples=100, deadline=None, database=None
)
settings.load_profile("pinned")

TESTS = Path(__file__).resolve().parent
# Tests that start the bot or test a stand-in server; `-m "not e2e"` leaves them out.
# (The Discord side's own tests talk to the Discord stand-in through a plain discord.py
# client, as fast as unit tests: they are e2e only where they start the bot.)
E2E_FOLDERS = (TESTS / "e2e", TESTS / "standins", TESTS / "field")
E2E_FIXTURES = {"start_bot"}
# Fixtures and parameters that start a real third-party server: such a test is slow
# (seconds of start-up) and end to end.
SLOW_FIXTURES = {"llama_server", "endless_llama", "postgres_server", "own_postgres_server"}
SLOW_PARAMS = {"postgresql"}


def starts_a_server(item: pytest.Item) -> bool:
    params = getattr(getattr(item, "callspec", None), "params", {})
    return bool(
        SLOW_FIXTURES & set(getattr(item, "fixturenames", ()))
        or SLOW_PARAMS & {value for value in params.values() if isinstance(value, str)}
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests `e2e` by folder and when they start the bot, and `slow` and `e2e` by the
    servers they start."""
    for item in items:
        slow = starts_a_server(item)
        if slow:
            item.add_marker(pytest.mark.slow)
        starts_the_bot = E2E_FIXTURES & set(getattr(item, "fixturenames", ()))
        if slow or starts_the_bot or any(folder in item.path.parents for folder in E2E_FOLDERS):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def o200k() -> TokenCounter:
    return TokenCounter(load_encoding("o200k_base"))


@pytest.fixture(scope="session")
def cl100k() -> TokenCounter:
    return TokenCounter(load_encoding("cl100k_base"))


# --- End-to-end: the real bot against the Discord and OpenAI stand-ins ---------------


@pytest.fixture
async def discord_api(request: pytest.FixtureRequest) -> AsyncIterator[DiscordStandIn]:
    """The Discord stand-in; `@pytest.mark.discord_world(**kwargs)` passes options to it."""
    marker = request.node.get_closest_marker("discord_world")
    options = marker.kwargs if marker else {}
    async with DiscordStandIn(heartbeat_interval_ms=200, **options) as standin:
        yield standin
    assert standin.errors == []


@pytest.fixture
async def openai_api() -> AsyncIterator[OpenAIStandIn]:
    async with OpenAIStandIn() as standin:
        yield standin


@pytest.fixture
async def start_bot(
    discord_api: DiscordStandIn,
    openai_api: OpenAIStandIn,
    o200k: TokenCounter,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> AsyncIterator[Callable[..., Awaitable[ChatBot]]]:
    """Start the real ChatBot in this event loop; settings as in .env (strings).

    Every bot of one test shares one database file (a restart keeps its state)."""
    point_discord_at_standin(monkeypatch, discord_api.url)
    running: list[tuple[ChatBot, asyncio.Task[None]]] = []

    async def start(**overrides: str) -> ChatBot:
        overrides = {"DATABASE_URL": str(tmp_path / "data" / "bot.db"), **overrides}
        settings = load_settings(bot_environment(discord_api, openai_api, **overrides))
        loaded = asyncio.get_running_loop().create_future()
        loaded.set_result(o200k)  # the default model's encoding, loaded once per run
        bot = ChatBot(settings, loaded)
        task = asyncio.create_task(bot.start(settings.discord_bot_token))
        running.append((bot, task))
        # The bot handles messages as soon as the server is in its cache, before on_ready.
        await until(lambda: task.done() or bot.get_guild(discord_api.guild_id), timeout=10)
        if task.done():
            task.result()  # raise what stopped it
        return bot

    yield start
    for bot, task in running:
        await bot.close()
        await asyncio.wait_for(task, 5)


# The llama.cpp server fixture `llama_server` and its hooks (tests/llama_server.py).
pytest_plugins = ["tests.llama_server"]
