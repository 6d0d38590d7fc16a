"""Several `python bot.py` processes on one PostgreSQL answer each message once
(operations/claims.py), share the rate limit, and hear of each other's settings changes.

Two processes on the same shard both receive every event, as Discord sends them to every
session of a shard (a rolling restart, a split brain); Discord may also deliver one event
twice to one process. Real processes, the Discord and OpenAI stand-ins, a real
PostgreSQL (tests/postgres.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import pytest

from conversation.access import RATE_WINDOW
from conversation.channel_settings import CACHE_SECONDS
from operations.claims import Claims
from tests.e2e.test_health import metrics, value
from tests.helpers import answered, dotenv_for, free_port, launch, replies, run_command, until
from tests.postgres import PostgresServer, postgres_server  # noqa: F401 - fixture
from tests.standins.discord import DiscordStandIn
from tests.standins.openai_standin import OpenAIStandIn

BURST_CHANNELS = 100
PER_CHANNEL = 3  # at most COALESCE_AFTER waiting: each message gets a request of its own
USERS = ("alice", "bob", "carol")
RATE_NOTICE = "faster than I can answer"


class BotProcess:
    """A running `python bot.py`, its output read as it comes (a full pipe would stop it)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        streams = (process.stdout, process.stderr)
        self._readers = [asyncio.create_task(self._read(s)) for s in streams if s is not None]

    async def _read(self, stream: asyncio.StreamReader) -> None:
        async for line in stream:
            self.lines.append(line.decode(errors="replace"))

    def logged(self, text: str) -> list[str]:
        return [line for line in self.lines if text in line]

    async def stop(self) -> int:
        """SIGTERM, as a user stops it; its exit status."""
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        status = await asyncio.wait_for(self.process.wait(), 30)
        await asyncio.gather(*self._readers)
        return status


@pytest.fixture
async def processes(
    tmp_path: Path,
    discord_api: DiscordStandIn,
    openai_api: OpenAIStandIn,
    postgres_server: PostgresServer,  # noqa: F811 - the fixture
):
    """`await start(**settings)`: one more bot process on this test's own PostgreSQL
    database, connected and ready; all are stopped at the end.

    Process n runs shard 0 of n + 1. A shard's lease (operations/shards.py) keeps a
    second process off the same shard of the same count, so this models what gets past
    it: a re-shard's rolling restart, old processes on one count and new ones on
    another, while both are connected. The stand-in's guild is on shard 0 of every
    count, so each process receives every message, as two sessions of one shard do."""
    url = postgres_server.create_database()
    started: list[BotProcess] = []

    async def start(**settings: str) -> BotProcess:
        folder = tmp_path / f"bot-{len(started)}"
        folder.mkdir()
        shard = {"SHARD_COUNT": str(len(started) + 1), "SHARD_IDS": "0"}
        dotenv = {**dotenv_for(discord_api, openai_api), "DATABASE_URL": url, **shard, **settings}
        bot = BotProcess(await launch(folder, dotenv))
        started.append(bot)
        live = len([b for b in started if b.process.returncode is None])
        await discord_api.wait_until_ready(timeout=30, count=len(started))
        await until(lambda: len(discord_api.live_sessions) >= live, timeout=10)
        return bot

    yield start
    for bot in started:
        assert await bot.stop() == 0
        assert not bot.logged("Traceback"), "".join(bot.lines)


def callbacks(discord_api: DiscordStandIn) -> list[object]:
    """Every initial interaction response the bot sent, accepted or refused (40060)."""
    return discord_api.requests_to("POST", r"/interactions/\d+/[^/]+/callback")


def reply_targets(discord_api: DiscordStandIn, channels: list[str]) -> list[int]:
    """The ids of the messages the bot's posts in `channels` reply to."""
    return [
        int(m["message_reference"]["message_id"])
        for channel in channels
        for m in discord_api.bot_messages(channel)
    ]


@pytest.mark.discord_world(extra_text_channels=BURST_CHANNELS)
@pytest.mark.timeout(300)
async def test_two_processes_on_one_shard_answer_each_message_of_a_burst_once(
    processes, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    first, second = await processes(), await processes()
    assert len(discord_api.sessions_of_shard(0)) == 2  # both see every message
    channels = [f"channel-{n}" for n in range(BURST_CHANNELS)]
    sent = [
        await discord_api.user_says(channel, USERS[n % len(USERS)], f"message {round_}-{n}")
        for round_ in range(PER_CHANNEL)
        for n, channel in enumerate(channels)
    ]
    await discord_api.wait_for(lambda: len(openai_api.completions) >= len(sent), timeout=240)
    await discord_api.wait_for(
        lambda: len(reply_targets(discord_api, channels)) >= len(sent), timeout=60
    )
    await asyncio.sleep(1.0)  # a second answer to anything would have come by now

    assert sorted(answered(openai_api)) == sorted(m["content"] for m in sent)
    assert sorted(reply_targets(discord_api, channels)) == sorted(int(m["id"]) for m in sent)
    # Both took part: the claims split the burst between them.
    counts = [len(bot.logged("answered channel=")) for bot in (first, second)]
    assert sum(counts) == len(sent) and min(counts) > 0, counts


async def test_messages_another_process_claimed_are_counted_apart(
    processes, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    ports = [free_port(), free_port()]
    for port in ports:
        await processes(HEALTH_PORT=str(port))
    sent = [await discord_api.user_says("general", USERS[n], f"hello {n}") for n in range(3)]
    await discord_api.wait_for(
        lambda: len(reply_targets(discord_api, ["general"])) >= len(sent), timeout=30
    )
    await asyncio.sleep(1.0)  # a second answer to anything would have come by now
    pages = [await metrics(port) for port in ports]

    def outcome(page: dict, name: str) -> float:
        return value(page, "chatbot_messages_total", outcome=name)

    answers = [outcome(page, "answered") for page in pages]
    assert sum(answers) == len(sent)
    # What one process answered, the other counts as claimed elsewhere, not as ignored.
    assert [outcome(page, "claimed_elsewhere") for page in pages] == answers[::-1]
    assert [outcome(page, "ignored") for page in pages] == [0, 0]


async def test_a_message_or_command_delivered_twice_is_answered_once(
    processes, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await processes()
    said = await discord_api.user_says("general", "alice", "hello once")
    [answer] = await replies(discord_api, "general")
    assert await discord_api.deliver_again(said)
    await asyncio.sleep(1.0)
    assert answered(openai_api) == ["hello once"]
    assert discord_api.bot_messages("general") == [answer]

    sent = await discord_api.user_runs_command("general", "alice", "settings show", {})
    await discord_api.wait_for_interaction_response(sent, timeout=5)
    assert await discord_api.dispatch("INTERACTION_CREATE", sent)
    await asyncio.sleep(1.0)
    assert len(callbacks(discord_api)) == 1  # the second delivery was not even answered


async def test_a_command_seen_by_two_processes_is_handled_by_one(
    processes, discord_api: DiscordStandIn
) -> None:
    first, second = await processes(), await processes()
    for n in range(5):
        shown = await run_command(discord_api, "general", "alice", "settings show")
        assert "**Persona:**" in shown["content"], n
    await asyncio.sleep(1.0)
    assert len(callbacks(discord_api)) == 5  # one process answered each; none tried twice
    assert first.logged("registered") and second.logged("registered")


async def test_a_users_rate_limit_holds_across_processes(
    processes, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    first = await processes(USER_RATE_LIMIT="2")
    for text in ("one", "two"):
        await discord_api.user_says("general", "alice", text)
    await replies(discord_api, "general", 2)
    # The process that counted those two goes; the next one counts them too.
    second = await processes(USER_RATE_LIMIT="2")
    assert await first.stop() == 0
    await discord_api.wait_for(lambda: len(discord_api.live_sessions) == 1)
    await discord_api.user_says("random", "alice", "three")
    [notice] = await replies(discord_api, "random")
    assert RATE_NOTICE in notice["content"]
    await discord_api.user_says("random", "alice", "four")  # still limited: no second notice
    await discord_api.user_says("random", "bob", "bob is not limited")
    await replies(discord_api, "random", 2)
    await asyncio.sleep(0.5)
    asked = answered(openai_api)  # bob's turn is labelled with his name: two speakers
    assert asked[:2] == ["one", "two"] and len(asked) == 3
    assert asked[2].endswith("bob is not limited")
    shown = [m["content"] for m in discord_api.bot_messages("random")]
    assert shown[0] == notice["content"] and len(shown) == 2
    assert second.logged("answered channel=")
    assert RATE_WINDOW == 60.0  # the messages above were all sent well within it


async def test_a_setting_changed_through_one_process_applies_in_the_other_at_once(
    processes, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    bots = [await processes(), await processes()]
    channels = ["general", "random"]
    # Each process reads (and caches) the server's settings as it judges these.
    for n, channel in enumerate(channels * 3):
        await discord_api.user_says(channel, "alice", f"before {n}")
    await discord_api.wait_for(lambda: len(openai_api.completions) == 6, timeout=20)
    await until(lambda: sum(len(bot.logged("answered channel=")) for bot in bots) == 6)
    before = [len(bot.logged("answered channel=")) for bot in bots]

    pirate = "You are a pirate."
    await run_command(
        discord_api, "general", "owner", "settings persona", text=pirate, scope="server"
    )
    changed_at = asyncio.get_running_loop().time()
    # The news travels from PostgreSQL to the other process while the command's answer
    # travels to Discord: give it a moment, far less than the cache's 30 s.
    await asyncio.sleep(0.5)

    def answers_since_the_change() -> list[int]:
        done = [len(bot.logged("answered channel=")) for bot in bots]
        return [now - then for now, then in zip(done, before, strict=True)]

    # Until each process has answered after the change (which one wins is a race).
    for n in range(40):
        asked = len(openai_api.completions)
        await discord_api.user_says(channels[n % 2], "alice", f"after {n}")
        await discord_api.wait_for(lambda a=asked: len(openai_api.completions) > a, timeout=10)
        await until(lambda m=n: sum(answers_since_the_change()) > m, timeout=5)
        if min(answers_since_the_change()) > 0:
            break
    assert min(answers_since_the_change()) > 0, answers_since_the_change()
    assert asyncio.get_running_loop().time() - changed_at < CACHE_SECONDS / 2

    systems = [r["messages"][0]["content"] for r in openai_api.completions[6:]]
    assert systems == [pirate] * len(systems)


async def test_alone_on_sqlite_a_message_delivered_twice_is_answered_once(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    bot = await start_bot()
    assert type(bot.claims) is Claims  # one process: no query on the message path
    said = await discord_api.user_says("general", "alice", "hello once")
    await replies(discord_api, "general")
    assert await discord_api.deliver_again(said)
    sent = await discord_api.user_runs_command("general", "alice", "settings show", {})
    await discord_api.wait_for_interaction_response(sent, timeout=5)
    assert await discord_api.dispatch("INTERACTION_CREATE", sent)
    await asyncio.sleep(1.0)
    assert answered(openai_api) == ["hello once"]
    assert len(discord_api.bot_messages("general")) == 1
    assert len(callbacks(discord_api)) == 1
