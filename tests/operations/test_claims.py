"""Claims between processes (operations/claims.py) over real stores: one process wins
each event, the loser gives up the channel's memory, a duplicate is dropped, the rate
limit is counted in the database, a failing database answers rather than stays silent.

Messages and interactions are plain objects with the fields the claims read (the
Discord side is tested end to end in tests/e2e/test_claims.py)."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from types import SimpleNamespace
from typing import Any

import discord
import pytest

from conversation.access import UserLimits
from conversation.audience import Verdict
from operations.claims import Claims, SharedClaims
from store import Store, StoreError
from tests.helpers import logged
from tests.postgres import PostgresServer

ANSWER = Verdict(remember=True, answer=True)
CONTEXT = Verdict(remember=True, answer=False)
NOTICE = Verdict(remember=False, answer=False, notices=("Sorry, you can't use this bot.",))
SENT = dt.datetime.now(dt.UTC)  # recent: older claims are pruned as the claims start


def message(event_id: int, user: int = 7, channel: int = 100, seconds: float = 0) -> Any:
    return SimpleNamespace(
        id=event_id,
        author=SimpleNamespace(id=user),
        channel=SimpleNamespace(id=channel),
        created_at=SENT + dt.timedelta(seconds=seconds),
    )


def command(event_id: int, channel: int = 100) -> Any:
    return SimpleNamespace(
        id=event_id,
        user=SimpleNamespace(id=7),
        created_at=SENT,
        type=discord.InteractionType.application_command,
        channel_id=channel,
    )


def limits(rate: int = 0) -> UserLimits:
    return UserLimits(rate, 0, frozenset({1}))


class Processes:
    """Two processes' claims over two stores of one database; `unloaded[n]`: the
    channels process n gave its memory of up."""

    def __init__(self, first: Store, second: Store, rate: int = 0) -> None:
        self.unloaded: list[list[int]] = [[], []]
        self.claims = [
            SharedClaims(store, limits(rate), self.unloaded[n].append)
            for n, store in enumerate((first, second))
        ]

    async def close(self) -> None:
        for claims in self.claims:
            await claims.close()


async def two(store_url: str, rate: int = 0) -> tuple[Processes, list[Store]]:
    stores = [await Store.open(store_url), await Store.open(store_url)]
    return Processes(*stores, rate=rate), stores


async def test_alone_an_event_delivered_twice_is_acted_on_once() -> None:
    claims = Claims(remembered=2)
    assert await claims.message(message(1), ANSWER) == ANSWER
    assert await claims.message(message(1), ANSWER) == Verdict(False, False)
    assert await claims.message(message(2), CONTEXT) == CONTEXT
    assert await claims.message(message(2), CONTEXT) == Verdict(False, False)
    assert await claims.interaction(command(3))
    assert not await claims.interaction(command(3))
    # Only the latest few are kept: an event long gone would be taken again.
    assert await claims.message(message(1), ANSWER) == ANSWER


async def test_one_of_two_processes_wins_each_message_and_the_loser_reads_back(
    store_url: str,
) -> None:
    processes, stores = await two(store_url)
    first, second = processes.claims
    try:
        assert await first.message(message(1, channel=50), ANSWER) == ANSWER
        lost = await second.message(message(1, channel=50), ANSWER)
        assert lost == Verdict(False, False, elsewhere=True)  # counted apart (metrics.py)
        assert processes.unloaded == [[], [50]] and second.lost == 1
        # A message only remembered is claimed by no one: both remember it.
        assert await first.message(message(2), CONTEXT) == CONTEXT
        assert await second.message(message(2), CONTEXT) == CONTEXT
        # A notice goes out once; losing it unloads nothing.
        assert await second.message(message(3), NOTICE) == NOTICE
        assert await first.message(message(3), NOTICE) == Verdict(False, False, elsewhere=True)
        # A duplicate of its own is dropped without a query or an unload.
        assert await first.message(message(1, channel=50), ANSWER) == Verdict(False, False)
        assert processes.unloaded == [[], [50]] and first.lost == 1
        assert await second.interaction(command(4, channel=60))
        assert not await first.interaction(command(4, channel=60))
        assert processes.unloaded == [[60], [50]]
    finally:
        await processes.close()
        for store in stores:
            await store.close()


async def test_the_rate_limit_is_counted_across_processes(store_url: str) -> None:
    processes, stores = await two(store_url, rate=2)
    first, second = processes.claims
    try:
        verdicts = [
            await (first, second)[n % 2].message(message(n, seconds=n), ANSWER) for n in range(4)
        ]
        assert [v.answer for v in verdicts] == [True, True, False, False]
        [notice] = verdicts[2].notices
        assert "(2 a minute)" in notice and "again in 58 s" in notice
        assert verdicts[3].notices == ()  # told once
        # Admins have no limits; another user has their own.
        assert (await first.message(message(10, user=1, seconds=5), ANSWER)).answer
        assert (await second.message(message(11, user=8, seconds=5), ANSWER)).answer
        # The in-memory count is left to the database.
        assert first.limits.rate_elsewhere
        assert first.limits.check(7, 0.0, SENT) == (True, None)
    finally:
        await processes.close()
        for store in stores:
            await store.close()


async def test_a_failing_database_answers_rather_than_stays_silent(
    own_postgres_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "chatbot")
    store = await Store.open(own_postgres_server.url())
    claims = SharedClaims(store, limits(rate=1), [].append)
    try:
        assert await claims.message(message(1), ANSWER) == ANSWER
        own_postgres_server.halt()
        assert await claims.message(message(2), ANSWER) == ANSWER
        assert await claims.message(message(3), ANSWER) == ANSWER  # no rate counted either
        assert await claims.interaction(command(4))
        assert len(logged(caplog, "acting on every message")) == 1  # logged once
        own_postgres_server.resume()
        for _ in range(3):  # the pool replaces the connections the restart broke
            with contextlib.suppress(StoreError):
                await store.prune_claims(SENT - dt.timedelta(days=1))
        assert await claims.message(message(5, user=8), ANSWER) == ANSWER
        assert logged(caplog, "the database answers again")
        assert not await store.claim("message", 5, 8, SENT)  # claimed in the database again
    finally:
        await claims.close()
        await store.close()
