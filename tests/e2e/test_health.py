"""HEALTH_PORT through the real bot and the stand-ins: /healthz, /readyz, /metrics.

The metrics are read with prometheus_client's own parser, and each counter is checked
to move by exactly what the test did.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bot import ChatBot
from tests.helpers import dotenv_for, finish, free_port, launch, replies, until
from tests.standins.discord import DiscordStandIn
from tests.standins.openai_standin import Error, OpenAIStandIn

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
