"""`python bot.py` as a user runs it: a .env, the real entry point, signals, exit codes."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
from pathlib import Path

import pytest

from conversation.in_flight import SHUTDOWN_GRACE, SHUTDOWN_NOTE, SHUTDOWN_NOTICE
from tests.helpers import MARKER, closed_port_url, dotenv_for, finish, launch, replies, until
from tests.standins.discord import DiscordStandIn
from tests.standins.openai_standin import OpenAIStandIn, Reply


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_runs_from_dotenv_answers_and_stops_cleanly(
    tmp_path: Path, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, signum: int
) -> None:
    process = await launch(tmp_path, dotenv_for(discord_api, openai_api))
    await discord_api.wait_until_ready(timeout=20)
    openai_api.script(Reply("Hi from a real process"))
    await discord_api.user_says("general", "alice", "hello?")
    [answer] = await replies(discord_api, "general")
    assert answer["content"] == "Hi from a real process"
    [request] = openai_api.chat_requests
    assert request.headers["authorization"] == "Bearer sk-test-key"

    process.send_signal(signum)
    status, output = await finish(process)
    assert status == 0
    assert "Traceback" not in output
    assert "answered channel=" in output  # logging at INFO by default
    assert "sk-test-key" not in output and discord_api.bot_token not in output
    await discord_api.wait_for(lambda: not discord_api.connected)


async def test_a_missing_setting_names_the_variable(tmp_path: Path) -> None:
    process = await launch(tmp_path, {"OPENAI_API_KEY": "sk-test"})
    status, output = await finish(process)
    assert status == 1
    assert output.strip().splitlines() == [
        line for line in output.strip().splitlines() if "DISCORD_BOT_TOKEN" in line
    ]
    assert len(output.strip().splitlines()) == 1


async def test_a_malformed_setting_names_the_variable(
    tmp_path: Path, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    dotenv = {**dotenv_for(discord_api, openai_api), "MAX_CONTEXT_TOKENS": "4k"}
    status, output = await finish(await launch(tmp_path, dotenv))
    assert status == 1
    assert output.strip() == (
        "Configuration error: MAX_CONTEXT_TOKENS must be a whole number, got '4k'."
    )


async def test_a_rejected_token_says_what_to_fix(
    tmp_path: Path, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    dotenv = {**dotenv_for(discord_api, openai_api), "DISCORD_BOT_TOKEN": "not-the-token"}
    status, output = await finish(await launch(tmp_path, dotenv))
    assert status == 1
    assert "Traceback" not in output
    assert output.strip().splitlines()[-1].startswith("Discord rejected DISCORD_BOT_TOKEN")
    assert "not-the-token" not in output


async def test_a_disabled_message_content_intent_says_what_to_fix(
    tmp_path: Path, openai_api: OpenAIStandIn
) -> None:
    async with DiscordStandIn(message_content_intent_enabled=False) as discord_api:
        status, output = await finish(await launch(tmp_path, dotenv_for(discord_api, openai_api)))
    assert status == 1
    assert "Traceback" not in output
    assert "MESSAGE CONTENT INTENT" in output.strip().splitlines()[-1]


async def test_unreachable_discord_says_so(tmp_path: Path, openai_api: OpenAIStandIn) -> None:
    dotenv = {"DISCORD_BOT_TOKEN": "t", "OPENAI_API_KEY": "k", "DISCORD_API_URL": closed_port_url()}
    status, output = await finish(await launch(tmp_path, dotenv))
    assert status == 1
    assert "Traceback" not in output
    assert output.strip().splitlines()[-1].startswith("Could not reach Discord")


@pytest.mark.parametrize("after", [0.3, 0.8, 1.5])
async def test_sigterm_while_starting_exits_0(
    tmp_path: Path, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, after: float
) -> None:
    # Before the event loop's handlers exist (importing, reading settings, logging in):
    # a stop as early is still a clean one, not death by the signal (status 143).
    process = await launch(tmp_path, dotenv_for(discord_api, openai_api))
    await asyncio.sleep(after)
    process.send_signal(signal.SIGTERM)
    status, output = await finish(process)
    assert status == 0, output
    assert "Traceback" not in output


async def test_sigterm_while_logging_in_exits_0_without_opening_what_would_hang(
    tmp_path: Path, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    # Stopped while discord.py logs in (slow: a 500, retried after 1 s): discord.py still
    # runs setup_hook after, and the store it opens must not keep the process alive.
    login = discord_api.fail_requests("GET", "get_current_user", status=500, delay=2)
    process = await launch(tmp_path, dotenv_for(discord_api, openai_api))
    await until(lambda: login.hits, timeout=30)
    process.send_signal(signal.SIGTERM)
    status, output = await finish(process)
    assert status == 0, output
    assert "Traceback" not in output
    assert not discord_api.identifies


async def test_sigterm_while_answering_exits_cleanly(
    tmp_path: Path, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    process = await launch(tmp_path, dotenv_for(discord_api, openai_api))
    await discord_api.wait_until_ready(timeout=20)
    openai_api.script(Reply("too late", delay=30))
    await discord_api.user_says("general", "alice", "a slow question")
    await openai_api.wait_for_requests(1)
    process.send_signal(signal.SIGTERM)
    status, output = await finish(process)
    assert status == 0
    assert "Traceback" not in output
    [notice] = discord_api.bot_messages("general")
    assert notice["content"] == SHUTDOWN_NOTICE


@pytest.mark.parametrize(
    "signals",
    [[signal.SIGTERM], [signal.SIGTERM, signal.SIGTERM], [signal.SIGINT, signal.SIGINT]],
    ids=["once", "twice", "ctrl-c twice"],
)
async def test_sigterm_during_a_streamed_answer_closes_it_off_then_exits(
    tmp_path: Path, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, signals: list
) -> None:
    dotenv = {**dotenv_for(discord_api, openai_api), "STREAM_REPLIES": "true"}
    process = await launch(tmp_path, dotenv)
    await discord_api.wait_until_ready(timeout=20)
    text = " ".join(f"word{n}" for n in range(60))
    chunks = [f"word{n} " for n in range(59)] + ["word59"]
    openai_api.script(Reply(text, chunks=chunks, chunk_delay=0.5))  # 30 s of streaming
    await discord_api.user_says("general", "alice", "a long story, please")
    await discord_api.wait_for(lambda: discord_api.bot_messages("general"), timeout=20)
    loop = asyncio.get_running_loop()
    signalled = loop.time()
    for signum in signals:  # a second signal waits for the shutdown under way
        process.send_signal(signum)
        await asyncio.sleep(0.2)
    status, output = await finish(process)
    assert loop.time() - signalled < SHUTDOWN_GRACE + 4  # finished off within seconds
    assert status == 0
    assert "Traceback" not in output
    [message] = discord_api.bot_messages("general")
    shown, note = message["content"].rsplit("\n", 1)
    assert note == SHUTDOWN_NOTE
    assert MARKER not in message["content"]
    assert text.startswith(shown) and len(shown) >= len("word0")
    # The model's stream was cut off (it had 25 s to go), not waited for.
    [request] = openai_api.chat_requests
    assert request.finished_at is None and request.disconnected_at is not None
    # What streamed was spent: the cut-off answer is in the stored usage.
    with contextlib.closing(sqlite3.connect(tmp_path / "data" / "bot.db")) as db:
        [(answers, completion)] = db.execute("SELECT answers, completion_tokens FROM usage")
    assert answers == 1 and completion >= 1


async def test_a_system_prompt_that_leaves_no_room_stops_start_up(
    tmp_path: Path, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    # The budget is checked once the tokenizer has loaded, which happens while the bot
    # connects: it must still end in one line and exit 1, not a bot that never answers.
    dotenv = dotenv_for(discord_api, openai_api)
    dotenv |= {"SYSTEM_PROMPT": "word " * 400, "MAX_CONTEXT_TOKENS": "700"}
    dotenv |= {"MAX_REPLY_TOKENS": "300"}
    status, output = await finish(await launch(tmp_path, dotenv))
    assert status == 1
    errors = [line for line in output.splitlines() if "Configuration error" in line]
    assert len(errors) == 1 and "SYSTEM_PROMPT is 404 tokens" in errors[0]
    assert "of the 400-token prompt budget" in errors[0]
    assert "Traceback" not in output
    assert "Connected as" not in output  # stopped before going online


async def test_a_model_name_too_long_for_the_store_stops_start_up(
    tmp_path: Path, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    # Before: accepted, the bot answered, and every usage write failed with a traceback.
    dotenv = {**dotenv_for(discord_api, openai_api), "OPENAI_MODEL": "org/" + "m" * 246}
    status, output = await finish(await launch(tmp_path, dotenv))
    assert status == 1
    [line] = output.strip().splitlines()
    assert line.startswith("Configuration error: OPENAI_MODEL must be a model name")
    assert "at most 200 characters" in line and "has 250" in line
