"""HEALTH_PORT through the real bot and the stand-ins: /healthz, /readyz, /metrics.

The metrics are read with prometheus_client's own parser, and each counter is checked
to move by exactly what the test did.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot import ChatBot
from tests.helpers import dotenv_for, finish, free_port, launch, replies, until
from tests.postgres import PostgresServer, own_postgres_server  # noqa: F401 - a fixture
from tests.standins.discord import DiscordStandIn
from tests.standins.openai_standin import Error, OpenAIStandIn, Reply

StartBot = Callable[..., Awaitable[ChatBot]]


async def get(port: int, path: str) -> tuple[int, str]:
    """GET http://127.0.0.1:`port``path`: the status and the body."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}{path}") as response,
    ):
        return response.status, await response.text()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a /metrics page, by name and labels, parsed by prometheus_client."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(page: dict, name: str, **labels: str) -> float:
    return page[name, frozenset(labels.items())]


async def metrics(port: int) -> dict:
    status, text = await get(port, "/metrics")
    assert status == 200
    return samples(text)


async def test_ready_only_after_discord_s_ready(
    start_bot: StartBot, discord_api: DiscordStandIn
) -> None:
    # Hold start-up inside setup_hook (the command sync answers late): the health
    # server is up, the gateway cannot connect before the sync is answered.
    sync = discord_api.fail_requests("PUT", "overwrite_global_commands", status=503, delay=3)
    port = free_port()
    starting = asyncio.ensure_future(start_bot(HEALTH_PORT=str(port)))
    await until(lambda: sync.hits, timeout=10)
    assert await get(port, "/healthz") == (200, "ok\n")
    assert await get(port, "/readyz") == (503, "not ready: waiting for Discord's READY\n")
    assert discord_api.ready_count == 0

    bot = await starting
    await until(bot.is_ready, timeout=10)
    assert await get(port, "/readyz") == (200, "ready\n")
    assert await get(port, "/healthz") == (200, "ok\n")
    assert bot.health is not None
    assert bot.health.runner.addresses == [("127.0.0.1", port)]  # HEALTH_HOST's default


async def test_health_host_is_honoured(start_bot: StartBot) -> None:
    port = free_port()
    bot = await start_bot(HEALTH_PORT=str(port), HEALTH_HOST="0.0.0.0")
    assert bot.health is not None
    assert bot.health.runner.addresses == [("0.0.0.0", port)]
    assert (await get(port, "/healthz"))[0] == 200


async def test_no_port_no_server_and_no_counting(start_bot: StartBot) -> None:
    bot = await start_bot()
    assert bot.health is None and bot.metrics is None
    assert bot.conversations.answers.metrics is None


async def test_a_second_bot_on_a_taken_port_says_so_and_exits_1(
    tmp_path: Path, start_bot: StartBot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    port = free_port()
    await start_bot(HEALTH_PORT=str(port))
    dotenv = {**dotenv_for(discord_api, openai_api), "HEALTH_PORT": str(port)}
    (tmp_path / "second").mkdir()
    status, output = await finish(await launch(tmp_path / "second", dotenv))
    assert status == 1
    assert "Traceback" not in output
    assert output.strip().splitlines()[-1] == (
        f"Configuration error: HEALTH_PORT: cannot serve health checks on 127.0.0.1:{port}: "
        "address already in use."
    )
    assert (await get(port, "/readyz"))[0] == 200  # the first bot serves on


async def test_a_health_host_that_does_not_resolve_is_named(
    tmp_path: Path, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    port = free_port()
    dotenv = {
        **dotenv_for(discord_api, openai_api),
        **{"HEALTH_PORT": str(port), "HEALTH_HOST": "nosuchhost.invalid"},
    }
    status, output = await finish(await launch(tmp_path, dotenv))
    assert status == 1
    assert "Traceback" not in output
    line = output.strip().splitlines()[-1]
    assert line.startswith(
        "Configuration error: HEALTH_HOST: cannot serve health checks on "
        f"nosuchhost.invalid:{port}: the name nosuchhost.invalid could not be resolved ("
    ), line


async def test_metrics_move_by_exactly_what_happened(
    start_bot: StartBot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    port = free_port()
    bot = await start_bot(HEALTH_PORT=str(port), REPLY_TO="mention")
    model = bot.settings.openai_model
    before = await metrics(port)
    assert value(before, "chatbot_messages_total", outcome="answered") == 0
    assert value(before, "chatbot_model_failures_total", cause="bad_key") == 0

    for number in range(3):
        await discord_api.user_says("general", "alice", f"question {number}", mention_bot=True)
        await replies(discord_api, "general", number + 1)
    await discord_api.user_says("general", "bob", "just chatting")  # no mention: remembered
    openai_api.script(Error.bad_auth())  # not retried: the answer fails at once
    await discord_api.user_says("general", "alice", "one more?", mention_bot=True)
    await replies(discord_api, "general", 4)  # the notice saying why
    await until(lambda: len(openai_api.chat_requests) == 4)

    after = await metrics(port)
    for outcome, count in {"answered": 3, "remembered": 1, "failed": 1, "ignored": 0}.items():
        assert value(after, "chatbot_messages_total", outcome=outcome) == count, outcome
    assert value(after, "chatbot_model_failures_total", cause="bad_key") == 1
    assert sum(v for (name, _), v in after.items() if name == "chatbot_model_failures_total") == 1
    durations = "chatbot_answer_duration_seconds_count"
    assert value(after, durations, model=model, outcome="answered") == 3
    assert value(after, durations, model=model, outcome="failed") == 1
    usage = [r.usage for r in openai_api.chat_requests if r.usage is not None]
    assert len(usage) == 3
    prompt = sum(u["prompt_tokens"] for u in usage)
    assert value(after, "chatbot_tokens_total", kind="prompt") == prompt
    completion = sum(u["completion_tokens"] for u in usage)
    assert value(after, "chatbot_tokens_total", kind="completion") == completion
    assert value(after, "chatbot_tokens_total", kind="cached") == 0
    assert value(after, "chatbot_channels_in_memory") == 1
    assert value(after, "chatbot_store_errors_total") == 0
    assert value(after, "chatbot_discord_retries_total") == 0
    assert 0 <= value(after, "chatbot_gateway_latency_seconds", shard="0") < 5
    # No user, channel or server id in any label.
    ids = {str(discord_api.guild_id), str(discord_api.channel("general").id)}
    assert not ids & {v for _, labels in after for _, v in labels}


async def test_refusals_ignored_messages_and_discord_retries_are_counted(
    start_bot: StartBot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    port = free_port()
    bob = discord_api.user("bob").id
    await start_bot(HEALTH_PORT=str(port), USER_RATE_LIMIT="1", BLOCKED_USER_IDS=str(bob))
    # The answer's post fails once with a 503 (discord.py does not retry it): ours does.
    fault = discord_api.fail_requests("POST", "create_message", status=503, channel="general")
    await discord_api.user_says("general", "alice", "first")
    await replies(discord_api, "general", 1)
    assert len(fault.hits) == 1
    await discord_api.user_says("general", "alice", "second, too soon")
    await replies(discord_api, "general", 2)  # the rate limit's notice
    await discord_api.user_says("general", "bob", "hello?")  # blocked: not a word back

    async def ignored() -> float:
        return value(await metrics(port), "chatbot_messages_total", outcome="ignored")

    async with asyncio.timeout(5):
        while await ignored() < 1:
            await asyncio.sleep(0.05)
    page = await metrics(port)
    counts = {"answered": 1, "refused": 1, "ignored": 1, "remembered": 0, "failed": 0}
    for outcome, count in counts.items():
        assert value(page, "chatbot_messages_total", outcome=outcome) == count, outcome
    assert value(page, "chatbot_discord_retries_total") == 1
    assert len(openai_api.chat_requests) == 1


async def test_not_ready_while_disconnected_from_discord(
    start_bot: StartBot, discord_api: DiscordStandIn
) -> None:
    port = free_port()
    bot = await start_bot(HEALTH_PORT=str(port))
    await until(bot.is_ready, timeout=10)
    assert await get(port, "/readyz") == (200, "ready\n")

    assert await discord_api.drop_gateway() == 1
    # discord.py reconnects; READY comes again after its identify hook's 5 s.
    async with asyncio.timeout(5):
        while (answer := await get(port, "/readyz"))[0] == 200:
            await asyncio.sleep(0.02)
    # A plain Client has one websocket; an AutoShardedClient names the shards.
    assert answer[0] == 503 and answer[1].startswith("not ready: disconnected from Discord")
    await discord_api.wait_until_ready(timeout=15, count=2)
    async with asyncio.timeout(5):
        while (answer := await get(port, "/readyz"))[0] != 200:
            await asyncio.sleep(0.05)
    assert answer == (200, "ready\n")


@pytest.mark.usefixtures("own_postgres_server")  # in fixturenames: marked slow
async def test_not_ready_while_the_store_fails(
    start_bot: StartBot, request: pytest.FixtureRequest
) -> None:
    server: PostgresServer = request.getfixturevalue("own_postgres_server")
    port = free_port()
    bot = await start_bot(HEALTH_PORT=str(port), DATABASE_URL=server.url())
    await until(bot.is_ready, timeout=10)
    assert await get(port, "/readyz") == (200, "ready\n")
    assert value(await metrics(port), "chatbot_store_errors_total") == 0

    # The bot's database takes no connections, and those of the store's pool are cut
    # (not a shard lease's: losing that stops the bot, operations/shards.py).
    cut = (
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'bot' "
        "AND pid NOT IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory')"
    )
    await asyncio.to_thread(server.sql, "postgres", "ALTER DATABASE bot ALLOW_CONNECTIONS false")
    await asyncio.to_thread(server.sql, "postgres", cut)
    status, text = await get(port, "/readyz")
    assert status == 503
    where = f"PostgreSQL at 127.0.0.1:{server.port}"
    assert text.startswith(f"not ready: the store fails: cannot answer a health check in {where}")
    assert value(await metrics(port), "chatbot_store_errors_total") >= 1
    await asyncio.to_thread(server.sql, "postgres", "ALTER DATABASE bot ALLOW_CONNECTIONS true")
    assert await get(port, "/readyz") == (200, "ready\n")


async def test_not_ready_once_shutdown_begins_and_gone_after(
    start_bot: StartBot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    port = free_port()
    bot = await start_bot(HEALTH_PORT=str(port))
    await until(bot.is_ready, timeout=10)
    openai_api.script(Reply("Slow to come", delay=1.0))  # in flight when shutdown begins
    await discord_api.user_says("general", "alice", "hello?")
    await openai_api.wait_for_requests(1)
    closing = asyncio.ensure_future(bot.close())
    assert await get(port, "/readyz") == (503, "not ready: shutting down\n")
    assert await get(port, "/healthz") == (200, "ok\n")  # alive while answers finish
    await closing
    assert (await replies(discord_api, "general"))[0]["content"] == "Slow to come"
    with pytest.raises(aiohttp.ClientConnectionError):
        await get(port, "/healthz")
