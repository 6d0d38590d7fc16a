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

import pytest

from tests.helpers import dotenv_for, launch, until
from tests.postgres import PostgresServer, postgres_server  # noqa: F401 - fixture
from tests.standins.discord import DiscordStandIn
from tests.standins.openai_standin import OpenAIStandIn

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
) -> AsyncIterator[Callable[..., object]]:
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


async def test_a_spare_takes_over_from_a_killed_process_then_from_a_stopped_one(
    discord_api: DiscordStandIn,
    openai_api: OpenAIStandIn,
    start,
    postgres_server: PostgresServer,  # noqa: F811 - the fixture
) -> None:
    shared = {"DATABASE_URL": postgres_server.create_database()}
    active = await start(0, **shared)  # no SHARD_COUNT: Discord's recommended count, 1
    await discord_api.wait_until_ready(timeout=30)
    spare = await start(1, **shared)
    await until(lambda: spare.said("shard 0 is held by another process: waiting as a spare"), 20)
    assert len(discord_api.live_sessions) == 1 and len(discord_api.identifies) == 1
    assert await answered_by(discord_api, openai_api, "general", "first?") == [MODELS[0]]

    assert await active.stop(signal.SIGKILL) == -signal.SIGKILL
    await discord_api.wait_until_ready(count=2, timeout=30)
    assert spare.said("took over the lease on shard 0 of 1")
    assert [s.shard for s in discord_api.live_sessions] == [(0, 1)]
    assert await answered_by(discord_api, openai_api, "general", "second?") == [MODELS[1]]

    # A third process waits; the second is stopped as systemd stops it: it exits 0, and
    # only then does the third connect and answer.
    third = await start(2, **shared)
    await until(lambda: third.said("waiting as a spare"), 20)
    assert await spare.stop(signal.SIGTERM) == 0
    await discord_api.wait_until_ready(count=3, timeout=30)
    assert len(discord_api.live_sessions) == 1
    assert await answered_by(discord_api, openai_api, "general", "third?") == [MODELS[2]]
    assert "Traceback" not in spare.output + third.output


async def test_a_waiting_spare_stops_cleanly_without_connecting(
    discord_api: DiscordStandIn,
    openai_api: OpenAIStandIn,
    start,
    postgres_server: PostgresServer,  # noqa: F811 - the fixture
) -> None:
    shared = {"DATABASE_URL": postgres_server.create_database(), "SHARD_COUNT": "1"}
    active = await start(0, **shared)
    await discord_api.wait_until_ready(timeout=30)
    spare = await start(1, **shared)
    await until(lambda: spare.said("waiting as a spare"), 20)
    assert await spare.stop(signal.SIGTERM) == 0
    assert len(discord_api.identifies) == 1  # the spare never connected
    assert await answered_by(discord_api, openai_api, "general", "still here?") == [MODELS[0]]
    assert await active.stop(signal.SIGTERM) == 0
    assert "Traceback" not in spare.output + active.output


async def test_a_process_that_loses_its_lease_stops_and_exits_1(
    discord_api: DiscordStandIn,
    openai_api: OpenAIStandIn,
    start,
    postgres_server: PostgresServer,  # noqa: F811 - the fixture
) -> None:
    url = postgres_server.create_database()
    active = await start(0, DATABASE_URL=url, SHARD_COUNT="1")
    await discord_api.wait_until_ready(timeout=30)
    spare = await start(1, DATABASE_URL=url, SHARD_COUNT="1")
    await until(lambda: spare.said("waiting as a spare"), 20)
    # The database ends the holder's lease session (a restart, a network cut).
    postgres_server.sql(
        url.rsplit("/", 1)[1],
        "SELECT pg_terminate_backend(pid) FROM pg_locks"
        " WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    assert await asyncio.wait_for(active.process.wait(), 30) == 1
    assert active.said("lost the lease on shard 0 of 1 (its database connection closed)")
    await discord_api.wait_until_ready(count=2, timeout=30)
    assert len(discord_api.live_sessions) == 1
    assert await answered_by(discord_api, openai_api, "general", "who now?") == [MODELS[1]]
    assert "Traceback" not in active.output
