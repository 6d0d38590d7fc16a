"""Shards and spares with real `python bot.py` processes against the stand-ins (which shard
as Discord does) and, for spares, a real PostgreSQL.

Each process is given an OPENAI_MODEL of its own, so the model requests say which process
answered a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_health import get, metrics, value
from tests.helpers import dotenv_for, free_port, launch, run_command, until
from tests.postgres import PostgresServer, postgres_server  # noqa: F401 - fixture
from tests.standins.discord import DiscordStandIn
from tests.standins.openai_standin import OpenAIStandIn, Reply

MODELS = ("gpt-5.4-mini", "gpt-4.1-mini", "gpt-4o-mini")


class BotProcess:
    """`python bot.py` in a folder of its own; its output read as it comes (a full pipe
    would stop it) and kept in `lines`."""

    def __init__(self, process: asyncio.subprocess.Process, model: str) -> None:
        self.process, self.model = process, model
        self.lines: list[str] = []
        self._readers = [
            asyncio.ensure_future(self._read(stream))
            for stream in (process.stdout, process.stderr)
            if stream is not None
        ]

    async def _read(self, stream: asyncio.StreamReader) -> None:
        async for line in stream:
            self.lines.append(line.decode(errors="replace").rstrip())

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    async def stop(self, signum: int = signal.SIGTERM) -> int:
        """Send `signum` unless it has exited; its exit status."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signum)
        status = await asyncio.wait_for(self.process.wait(), 30)
        await asyncio.gather(*self._readers)
        return status

    @property
    def output(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
async def start(
    tmp_path: Path, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> AsyncIterator[Callable[..., Any]]:
    """`await start(n, **settings)`: bot process n (its own folder and model) running."""
    running: list[BotProcess] = []

    async def make(n: int, **settings: str) -> BotProcess:
        folder = tmp_path / f"bot{n}"
        folder.mkdir()
        dotenv = {**dotenv_for(discord_api, openai_api), "OPENAI_MODEL": MODELS[n], **settings}
        bot = BotProcess(await launch(folder, dotenv), MODELS[n])
        running.append(bot)
        return bot

    yield make
    for bot in running:
        await bot.stop(signal.SIGKILL)


async def active_and_spare(
    start: Callable[..., Any], discord_api: DiscordStandIn, **settings: str
) -> tuple[BotProcess, BotProcess]:
    """Bot process 0 connected, then bot process 1 waiting as its spare."""
    active = await start(0, **settings)
    await discord_api.wait_until_ready(timeout=30)
    spare = await start(1, **settings)
    await until(lambda: spare.said("shard 0 is held by another process: waiting as a spare"), 20)
    assert len(discord_api.live_sessions) == 1 and len(discord_api.identifies) == 1
    return active, spare


@pytest.fixture
def shared_database(postgres_server: PostgresServer) -> str:  # noqa: F811 - the fixture
    """The URL of a new database on the test PostgreSQL, for the processes to share."""
    return postgres_server.create_database()


async def answered_by(
    discord_api: DiscordStandIn, openai_api: OpenAIStandIn, channel: str, text: str
) -> list[str]:
    """Say `text` in `channel` (a mention, so that any channel answers) and wait for the
    answer; the models of every request made for it (one per answering process)."""
    said = await discord_api.user_says(channel, "alice", text)
    await discord_api.wait_for(
        lambda: [m for m in discord_api.bot_messages(channel) if text in m["content"]],
        timeout=20,
    )
    await asyncio.sleep(0.5)  # room for a second, wrong answer to show up
    assert said["content"] == text
    return [r.json["model"] for r in openai_api.chat_requests if text in str(r.json["messages"])]


async def test_two_shard_processes_answer_only_their_own_servers(
    discord_api: DiscordStandIn, openai_api: OpenAIStandIn, start
) -> None:
    far = await discord_api.add_guild("far", shard=(1, 2))
    zero = await start(0, SHARD_COUNT="2", SHARD_IDS="0")
    one = await start(1, SHARD_COUNT="2", SHARD_IDS="1")
    await discord_api.wait_until_ready(count=2, timeout=30)
    await until(lambda: zero.said("Connected as") and one.said("Connected as"), timeout=20)
    assert sorted(s.shard for s in discord_api.live_sessions) == [(0, 2), (1, 2)]

    assert await answered_by(discord_api, openai_api, "general", "home server?") == [MODELS[0]]
    assert await answered_by(discord_api, openai_api, "far/general", "far server?") == [MODELS[1]]
    dm = discord_api.dm_channel("bob").key
    assert await answered_by(discord_api, openai_api, dm, "a direct message?") == [MODELS[0]]

    # The log says which shard each server is on.
    assert zero.said(f"shard 0 of 2 ready: 1 server(s): Stand-in Guild (id {discord_api.guild_id})")
    assert one.said(f"shard 1 of 2 ready: 1 server(s): Guild far (id {far.id})")
    assert zero.said("Connected as ChatBot#4821") and zero.said("on shard 0 of 2")
    assert await zero.stop() == 0 and await one.stop() == 0
    assert "Traceback" not in zero.output + one.output


async def test_one_process_on_two_shards_answers_messages_threads_commands_and_dms(
    discord_api: DiscordStandIn, openai_api: OpenAIStandIn, start_bot
) -> None:
    far = await discord_api.add_guild("far", shard=(1, 2))
    bot = await start_bot(SHARD_COUNT="2", REPLY_TO="mention-thread")
    # discord.py identifies the second shard 5 s after the first.
    await until(lambda: bot.get_guild(far.id), timeout=20)
    assert sorted(s.shard for s in discord_api.live_sessions) == [(0, 2), (1, 2)]
    assert (bot.get_guild(discord_api.guild_id).shard_id, bot.get_guild(far.id).shard_id) == (0, 1)

    await discord_api.user_says("far/general", "alice", "a question", mention_bot=True)
    [thread] = await discord_api.wait_for(lambda: discord_api.threads_in("far/general"))
    await discord_api.wait_for(lambda: discord_api.bot_messages(thread.id))
    answer = await run_command(discord_api, "far/random", "carol", "reset")
    assert "Conversation reset" in answer["content"]
    await discord_api.user_says(discord_api.dm_channel("bob"), "bob", "hello in a DM")
    await discord_api.wait_for(lambda: discord_api.bot_messages(discord_api.dm_channel("bob")))
    assert len(openai_api.chat_requests) == 2


async def test_too_few_shards_for_discord_says_what_to_set(
    discord_api: DiscordStandIn, openai_api: OpenAIStandIn, start
) -> None:
    discord_api.max_guilds_per_session = 1  # Discord's is 2,500
    await discord_api.add_guild("far", shard=(1, 2))
    bot = await start(0, SHARD_COUNT="1")
    assert await asyncio.wait_for(bot.process.wait(), 30) == 1
    await bot.stop()
    assert bot.lines[-1].startswith("Discord requires more shards")
    assert "Traceback" not in bot.output


# Close codes discord.py does not reconnect after, and how the one line it prints begins.
GATEWAY_REFUSALS = {
    4004: ("Authentication failed", "Discord rejected DISCORD_BOT_TOKEN"),
    4010: ("Invalid shard.", "Discord refused the shard"),
    4012: ("Invalid API version", "Discord refused the gateway API version"),
    4013: ("Invalid intent(s).", "Discord refused the bot's intents"),
}


@pytest.mark.parametrize("code", list(GATEWAY_REFUSALS))
async def test_each_gateway_refusal_is_one_clear_line_and_exit_1(
    discord_api: DiscordStandIn, openai_api: OpenAIStandIn, start, code: int
) -> None:
    reason, line = GATEWAY_REFUSALS[code]
    discord_api.identify_closed_with = (code, reason)
    bot = await start(0)
    assert await asyncio.wait_for(bot.process.wait(), 30) == 1
    await bot.stop()
    assert bot.lines[-1].startswith(line), bot.output
    assert "Traceback" not in bot.output


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
async def test_discord_s_recommended_count_is_asked_again_after_a_503(
    discord_api,
    openai_api,
    start,
    postgres_server,  # noqa: F811 - fixture
    database,
) -> None:
    # No SHARD_COUNT: the count comes from GET /gateway/bot, asked by discord.py (SQLite)
    # or before the leases (PostgreSQL). One 503 is waited out, not a crash.
    fault = discord_api.fail_requests("GET", "get_gateway_bot", status=503, times=1)
    shared = {"DATABASE_URL": postgres_server.create_database()} if database != "sqlite" else {}
    bot = await start(0, **shared)
    await discord_api.wait_until_ready(timeout=30)
    assert len(fault.hits) == 1
    assert await bot.stop() == 0
    assert "Traceback" not in bot.output


async def test_discord_s_count_never_answered_is_one_line_and_exit_1(
    discord_api, openai_api, start
) -> None:
    discord_api.fail_requests("GET", "get_gateway_bot", status=503, times=100)
    bot = await start(0)
    assert await asyncio.wait_for(bot.process.wait(), 90) == 1
    await bot.stop()
    assert bot.lines[-1].startswith("Could not ask Discord how many shards to run")
    assert "503" in bot.lines[-1] and "SHARD_COUNT" in bot.lines[-1]
    assert "Traceback" not in bot.output


async def test_a_second_process_on_the_same_sqlite_file_refuses_to_start(
    discord_api, openai_api, start, tmp_path
) -> None:
    # SQLite is one process's: two would both answer every message (no leases, no claims).
    shared = {"DATABASE_URL": str(tmp_path / "shared" / "bot.db")}
    first = await start(0, **shared)
    await discord_api.wait_until_ready(timeout=30)
    second = await start(1, **shared)
    assert await asyncio.wait_for(second.process.wait(), 30) == 1
    await second.stop()
    assert second.lines[-1] == (
        f"Configuration error: DATABASE_URL: {shared['DATABASE_URL']} is in use by another"
        " bot process: SQLite serves one process; for several, use PostgreSQL"
        " (DATABASE_URL=postgresql://...)."
    ), second.output
    assert "Traceback" not in second.output
    assert len(discord_api.identifies) == 1  # the second never connected
    assert await answered_by(discord_api, openai_api, "general", "one?") == [MODELS[0]]

    assert await first.stop() == 0
    third = await start(2, **shared)  # the file is free again once the first has gone
    await discord_api.wait_until_ready(count=2, timeout=30)
    assert await answered_by(discord_api, openai_api, "general", "three?") == [MODELS[2]]
    assert await third.stop() == 0


async def test_a_spare_takes_over_from_a_killed_process_then_from_a_stopped_one(
    discord_api, openai_api, start, shared_database
) -> None:
    shared = {"DATABASE_URL": shared_database}
    # No SHARD_COUNT: Discord's recommended count, 1.
    active, spare = await active_and_spare(start, discord_api, **shared)
    assert await answered_by(discord_api, openai_api, "general", "first?") == [MODELS[0]]

    assert await active.stop(signal.SIGKILL) == -signal.SIGKILL
    await discord_api.wait_until_ready(count=2, timeout=30)
    await until(lambda: spare.said("took over the lease on shard 0 of 1"))
    assert [s.shard for s in discord_api.live_sessions] == [(0, 1)]
    assert await answered_by(discord_api, openai_api, "general", "second?") == [MODELS[1]]

    # A third process waits; the second is stopped as systemd stops it: it exits 0, and
    # only then does the third connect and answer.
    port = free_port()  # its /metrics count the takeover (served while it waits)
    third = await start(2, **shared, HEALTH_PORT=str(port))
    await until(lambda: third.said("waiting as a spare"), 20)
    takeovers = "chatbot_shard_lease_takeovers_total"
    assert value(await metrics(port), takeovers) == 0
    assert await spare.stop(signal.SIGTERM) == 0
    await discord_api.wait_until_ready(count=3, timeout=30)
    assert len(discord_api.live_sessions) == 1
    assert await answered_by(discord_api, openai_api, "general", "third?") == [MODELS[2]]
    page = await metrics(port)
    assert value(page, takeovers) == 1
    assert value(page, "chatbot_shard_leases_lost_total") == 0
    assert "Traceback" not in spare.output + third.output


async def test_a_spare_taking_over_mid_burst_answers_each_message_at_most_once(
    discord_api, openai_api, start, shared_database
) -> None:
    shared = {"DATABASE_URL": shared_database}
    active, spare = await active_and_spare(start, discord_api, **shared)
    # The active process is killed while its answers are still being written.
    openai_api.script(Reply("slow answer", delay=5.0, times=3))
    before = [
        await discord_api.user_says("general", user, f"in flight {user}", mention_bot=True)
        for user in ("alice", "bob", "carol")
    ]
    await until(lambda: len(openai_api.chat_requests) >= 1)
    assert await active.stop(signal.SIGKILL) == -signal.SIGKILL
    openai_api.clear_script()
    await discord_api.wait_until_ready(count=2, timeout=30)
    await until(lambda: spare.said("took over the lease on shard 0 of 1"))

    after = [f"after takeover {n}?" for n in range(3)]
    for text in after:
        assert await answered_by(discord_api, openai_api, "general", text) == [MODELS[1]]
    targets = [
        int(m["message_reference"]["message_id"])
        for m in discord_api.bot_messages("general")
        if m.get("message_reference")
    ]
    assert len(targets) == len(set(targets))  # nothing answered twice
    # What the killed process had in flight died with it: the spare never received those
    # messages (Discord does not deliver them again to a new session) and answers none.
    assert not {int(m["id"]) for m in before} & set(targets)
    assert await spare.stop() == 0


async def test_a_waiting_spare_stops_cleanly_without_connecting(
    discord_api, openai_api, start, shared_database
) -> None:
    shared = {"DATABASE_URL": shared_database, "SHARD_COUNT": "1"}
    active = await start(0, **shared)
    await discord_api.wait_until_ready(timeout=30)
    port = free_port()
    spare = await start(1, HEALTH_PORT=str(port), **shared)
    await until(lambda: spare.said("waiting as a spare for shard 0"), 20)
    # Alive (a container's HEALTHCHECK asks /healthz) but not ready, and says why.
    assert await get(port, "/healthz") == (200, "ok\n")
    assert await get(port, "/readyz") == (503, "not ready: waiting as a spare for shard 0\n")
    assert await spare.stop(signal.SIGTERM) == 0
    assert len(discord_api.identifies) == 1  # the spare never connected
    assert await answered_by(discord_api, openai_api, "general", "still here?") == [MODELS[0]]
    assert await active.stop(signal.SIGTERM) == 0
    assert "Traceback" not in spare.output + active.output


async def test_a_process_that_loses_its_lease_stops_and_exits_1(
    discord_api,
    openai_api,
    start,
    shared_database,
    postgres_server,  # noqa: F811 - fixture
) -> None:
    url = shared_database
    active, _spare = await active_and_spare(
        start, discord_api, DATABASE_URL=url, SHARD_COUNT="2", SHARD_IDS="0"
    )
    # The database ends the holder's lease session (a restart, a network cut).
    postgres_server.sql(
        url.rsplit("/", 1)[1],
        "SELECT pg_terminate_backend(pid) FROM pg_locks"
        " WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    assert await asyncio.wait_for(active.process.wait(), 30) == 1
    await active.stop()  # all its output read
    assert active.said("lost the lease on shard 0 of 2 (its database connection closed)")
    await discord_api.wait_until_ready(count=2, timeout=30)
    assert len(discord_api.live_sessions) == 1
    assert await answered_by(discord_api, openai_api, "general", "who now?") == [MODELS[1]]
    assert "Traceback" not in active.output
