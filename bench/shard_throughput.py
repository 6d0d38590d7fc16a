"""Figure 13: one process against two shard processes on one PostgreSQL (issue 25), and
what the message claim adds before the model is asked.

(a) Throughput. `guilds` servers (2 text channels each), half of them on each shard of
two (the stand-in places a server on a chosen shard), are known to the bot before it
connects. `messages` messages per channel are dispatched at once (instant model, the
stand-in's echo, non-streamed, no rate limit), and the time from the first dispatch
until each channel's last message is answered gives messages answered per second
(a channel with several messages waiting answers its newest with the rest as context,
as in figure 3). Run twice on fresh stand-ins and a fresh database each: one process
running both shards (SHARD_COUNT=2), and two processes, SHARD_IDS=0 and SHARD_IDS=1.
Every process claims each message in PostgreSQL before answering it.

(b) The claim on the message path. Our bot in this process (as figure 3) on one shard
and PostgreSQL, one message at a time (each answered before the next, spread over 20
channels), alternately with its claims and with them swapped for those of a process
alone (no query), so drift on a shared machine hits both alike: dispatch -> the model
request arriving at the OpenAI stand-in, p50 and p99 of `samples` each (settings
cached, no rate limit: the claim's INSERT is the only query on this path). The claim
itself, `Store.claim` from this process to the same PostgreSQL, is timed too
(`samples` round trips, p50 and p99). With SQLite there is no claim query at all.

The PostgreSQL server is tests/postgres.py's throwaway cluster (Debian's binaries;
fsync off, as in the tests). Absolute figures on a shared 2-core machine drift: compare
the rows of one run, not runs.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from harness import (
    AnswerTracker,
    Distribution,
    StandIns,
    bot_in_process,
    chat_text,
    launch,
    standins,
)

from bot import ChatBot
from operations.claims import Claims
from store import Store
from tests.postgres import SUPERUSER, PostgresServer, find_server_binaries
from text.tokens import TokenCounter, load_encoding

# (label, unit, value, target): the rows run.py shows as figure 13.
Rows = list[tuple[str, str, float | None, str]]
FULL = {"guilds": 20, "messages": 10, "samples": 200}
QUICK = {"guilds": 8, "messages": 4, "samples": 40}


def _postgres() -> PostgresServer:
    """A started throwaway PostgreSQL; RuntimeError where none is installed."""
    bin_dir = find_server_binaries()
    if bin_dir is None:
        raise RuntimeError("no PostgreSQL server binaries (apt-get install postgresql)")
    server = PostgresServer(bin_dir, SUPERUSER if os.geteuid() == 0 else None)
    server.start()
    return server


async def _processes(
    stack: AsyncExitStack, apis: StandIns, database: str, shards: list[dict[str, str]]
) -> None:
    """Start one bot process per entry of `shards` (its SHARD_* settings), all on
    `database`, and wait until each has connected (its on_ready)."""
    for n, shard in enumerate(shards):
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        bot = await launch("ours", apis, folder, DATABASE_URL=database, **shard)
        stack.push_async_callback(bot.stop)
        await apis.discord.wait_until_ready(timeout=60, count=n + 1)
        await bot.wait_connected()


async def _throughput(server: PostgresServer, sizes: dict[str, int], two: bool) -> float:
    """Messages answered per second, by one process or two shard processes."""
    async with standins() as apis, AsyncExitStack() as stack:
        keys = [f"g{n}" for n in range(sizes["guilds"])]
        for n, key in enumerate(keys):
            await apis.discord.add_guild(key, shard=(n % 2, 2))
        shards = [{"SHARD_COUNT": "2", "SHARD_IDS": str(i)} for i in (0, 1)] if two else [
            {"SHARD_COUNT": "2"}
        ]  # fmt: skip
        await _processes(stack, apis, server.create_database(), shards)
        channels = [f"{key}/{name}" for key in keys for name in ("general", "random")]
        answers = AnswerTracker(apis.discord)
        last: dict[str, str] = {}
        started = time.monotonic()
        for m in range(sizes["messages"]):
            for c, channel in enumerate(channels):
                said = await apis.discord.user_says(channel, "alice", chat_text(1000 * m + c, 80))
                last[channel] = said["id"]
        await answers.wait_for(last.values())
        return len(channels) * sizes["messages"] / (answers.last_post_at - started)


async def _claim_ab(database: str, samples: int, counter: TokenCounter) -> list[Distribution]:
    """Dispatch -> model request of our bot in this process on `database`, one message
    at a time, alternately with its claims (on PostgreSQL) and without (the claims of
    one process alone: no query); [with, without]."""
    channels = 20
    async with (
        standins(extra_text_channels=channels) as apis,
        bot_in_process("ours", apis, counter, DATABASE_URL=database, SHARD_COUNT="1") as bot,
    ):
        assert isinstance(bot, ChatBot)
        shared, alone = bot.claims, Claims()
        delays: list[list[float]] = [[], []]
        for i in range(2 * samples + channels):  # each channel's first message reads back
            arm = i % 2
            bot.claims = bot.conversations.claims = (shared, alone)[arm]
            dispatched = time.monotonic()
            await apis.discord.user_says(f"channel-{i % channels}", "alice", chat_text(i, 60))
            request = (await apis.openai.wait_for_requests(i + 1, timeout=60))[i]
            if i >= channels:
                delays[arm].append(request.at - dispatched)
            await apis.discord.wait_for(lambda n=i: len(_posts(apis)) > n, 60)
        bot.claims = bot.conversations.claims = shared  # closed with the bot
        return [Distribution.of(arm) for arm in delays]


def _posts(apis: StandIns) -> list[Any]:
    return [r for r in apis.discord.requests if r.method == "POST" and "/messages" in r.path]


async def _claim_round_trips(url: str, samples: int) -> Distribution:
    """`Store.claim` from this process to PostgreSQL, one at a time."""
    store = await Store.open(url)
    try:
        times: list[float] = []
        now = dt.datetime.now(dt.UTC)
        for n in range(samples):
            started = time.perf_counter()
            await store.claim("message", 1_000_000 + n, 1, now)
            times.append(time.perf_counter() - started)
        return Distribution.of(times)
    finally:
        await store.close()


async def measure(quick: bool) -> tuple[Rows, dict[str, Any]]:
    """Figure 13's rows and its details for the JSON."""
    sizes = QUICK if quick else FULL
    server = await asyncio.to_thread(_postgres)
    try:
        one = await _throughput(server, sizes, two=False)
        two = await _throughput(server, sizes, two=True)
        samples = sizes["samples"]
        counter = TokenCounter(await asyncio.to_thread(load_encoding, "o200k_base"))
        claimed, alone = await _claim_ab(server.create_database(), samples, counter)
        claim = await _claim_round_trips(server.create_database(), samples)
    finally:
        await asyncio.to_thread(server.stop)
    total = sizes["guilds"] * 2 * sizes["messages"]
    rows: Rows = [
        (f"{total} msgs on 2 shards: one process", "msg/s", one, ""),
        (f"{total} msgs on 2 shards: two shard processes", "msg/s", two, ""),
        ("dispatch -> model p50, claimed", "ms", ms(claimed.median), ""),
        ("dispatch -> model p50, not claimed", "ms", ms(alone.median), ""),
        ("dispatch -> model p99, claimed", "ms", ms(claimed.p99), ""),
        ("dispatch -> model p99, not claimed", "ms", ms(alone.p99), ""),
        ("p99 the claim adds", "ms", ms(claimed.p99 - alone.p99), ""),
        ("claim round trip alone p50", "ms", ms(claim.median), ""),
        ("claim round trip alone p99", "ms", ms(claim.p99), ""),
    ]  # fmt: skip
    details = {
        "sizes": sizes,
        "messages_per_second": {"one_process": one, "two_shard_processes": two},
        "dispatch_to_model_ms": {
            name: {"p50": ms(d.median), "p95": ms(d.p95), "p99": ms(d.p99), "n": d.n}
            for name, d in (("claimed", claimed), ("not_claimed", alone))
        },
        "claim_round_trip_ms": {"p50": ms(claim.median), "p99": ms(claim.p99), "n": claim.n},
    }
    return rows, details


def ms(seconds: float) -> float:
    return seconds * 1000
