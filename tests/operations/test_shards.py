"""Shard leases against a real PostgreSQL: one holder per shard, spares that wait and take
over when the holder goes, a lost lease connection noticed; and the small pure helpers."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from operations.shards import (
    LeaseLost,
    ShardLeases,
    describe,
    servers_line,
    shard_list,
)
from store.leases import LEASE_NAMESPACE, lease_key
from tests.helpers import closed_port_url, until
from tests.postgres import PostgresServer, postgres_server  # noqa: F401 - fixture


@given(st.integers(1, 1 << 20 - 1), st.data())
def test_lease_keys_are_namespaced_positive_bigints_one_per_shard_and_count(count, data):
    shard = data.draw(st.integers(0, count - 1))
    key = lease_key(shard, count)
    assert 0 < key < 1 << 63
    assert key >> 40 == LEASE_NAMESPACE
    assert (key >> 20 & (1 << 20) - 1, key & (1 << 20) - 1) == (count, shard)


def test_lease_keys_of_different_shards_or_counts_differ():
    keys = [lease_key(i, n) for n in range(1, 40) for i in range(n)]
    assert len(set(keys)) == len(keys)
    for shard, count in [(2, 2), (-1, 2), (0, 0), (0, 1 << 20)]:
        with pytest.raises(ValueError):
            lease_key(shard, count)


def test_the_shards_a_process_runs_and_how_the_log_names_them():
    assert shard_list(3, None) == [0, 1, 2]
    assert shard_list(8, (5, 1, 5)) == [1, 5]
    assert describe([0], 1) == "shard 0 of 1"
    assert describe([1], 2) == "shard 1 of 2"
    assert describe([0, 1, 3], 4) == "shards 0, 1 and 3 of 4"
    assert describe(range(8), 8) == "all 8 shards"
    assert servers_line([]) == "0 server(s)"
    assert servers_line([("A", 1), ("B", 2)]) == "2 server(s): A (id 1), B (id 2)"
    many = [(f"S{n}", n) for n in range(12)]
    assert servers_line(many, limit=2) == "12 server(s): S0 (id 0), S1 (id 1) and 10 more"


def test_sqlite_has_no_leases():
    for url in ("data/bot.db", "sqlite:///data/bot.db", "/tmp/x.db"):
        assert ShardLeases.for_database(url, lambda why: None) is None


@pytest.fixture
def lease_url(postgres_server: PostgresServer) -> str:  # noqa: F811 - the fixture
    return postgres_server.url()


@pytest.fixture
async def leases(lease_url: str) -> AsyncIterator[Callable[[], ShardLeases]]:
    """Make ShardLeases on the test PostgreSQL (each keeps its losses in `.losses`);
    all closed after the test."""
    made: list[ShardLeases] = []

    def make() -> ShardLeases:
        losses: list[str] = []
        lease = ShardLeases.for_database(lease_url, losses.append)
        assert lease is not None
        lease.losses = losses  # type: ignore[attr-defined]
        made.append(lease)
        return lease

    yield make
    for lease in made:
        await lease.close()


# Each test takes shards of a count of its own: the server is shared by the whole session.
counts = itertools.count(1000)


async def test_a_spare_waits_and_takes_over_when_the_holder_lets_go(leases, caplog):
    caplog.set_level(logging.INFO, "chatbot.shards")
    count = next(counts)
    holder, spare = leases(), leases()
    assert await holder.hold(count, [0])
    assert holder.held
    waiting = asyncio.create_task(spare.hold(count, [0]))
    waits = "shard 0 is held by another process: waiting as a spare for shard 0"
    await until(lambda: waits in caplog.text)
    await asyncio.sleep(0.3)
    assert not waiting.done() and not spare.held

    await holder.close()  # as at SIGTERM: Discord closed first, then the lease goes
    assert await asyncio.wait_for(waiting, 5) is True
    assert spare.held and not holder.held
    assert f"took over the lease on shard 0 of {count}" in caplog.text
    assert holder.losses == [] and spare.losses == []
    assert (spare.takeovers, holder.takeovers) == (1, 0)  # chatbot_shard_lease_takeovers_total


async def test_other_shards_and_other_counts_are_other_leases(leases):
    count = next(counts)
    first, second, third = leases(), leases(), leases()
    assert await first.hold(count, [0])
    assert await asyncio.wait_for(second.hold(count, [1]), 5)
    assert await asyncio.wait_for(third.hold(count + 1, [0]), 5)


async def test_a_killed_holder_loses_its_lease_and_the_spare_takes_over(
    leases,
    postgres_server: PostgresServer,  # noqa: F811 - the fixture
):
    count = next(counts)
    holder, spare = leases(), leases()
    assert await holder.hold(count, [0, 1])
    waiting = asyncio.create_task(spare.hold(count, [1]))
    await asyncio.sleep(0.3)
    # The server ends the holder's session, as when its process or machine dies.
    postgres_server.sql(
        "bot",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        f" WHERE application_name = 'chatbot shard lease' AND pid IN (SELECT pid FROM pg_locks"
        f" WHERE locktype = 'advisory' AND granted AND objid = {count << 20})",
    )
    assert await asyncio.wait_for(waiting, 10) is True
    await until(lambda: holder.losses, timeout=10)
    [reason] = holder.losses
    assert reason.startswith(f"lost the lease on shards 0 and 1 of {count}")
    assert holder.lost == reason and spare.lost is None
    assert (holder.times_lost, spare.times_lost) == (1, 0)  # chatbot_shard_leases_lost_total
    assert spare.takeovers == 1


async def test_closing_a_spare_ends_its_wait(leases):
    count = next(counts)
    holder, spare = leases(), leases()
    assert await holder.hold(count, [0])
    waiting = asyncio.create_task(spare.hold(count, [0]))
    await asyncio.sleep(0.3)
    await asyncio.wait_for(spare.close(), 5)
    assert await asyncio.wait_for(waiting, 5) is False
    assert not spare.held and holder.held and spare.losses == []


async def test_an_unreachable_database_is_a_lease_lost_saying_where():
    lease = ShardLeases.for_database(closed_port_url().replace("http", "postgresql"), print)
    assert lease is not None
    with pytest.raises(LeaseLost, match=r"shard leases in PostgreSQL at 127\.0\.0\.1"):
        await lease.hold(1, [0])
    await lease.close()


async def test_a_spare_whose_connection_fails_while_waiting_gets_lease_lost(
    leases,
    postgres_server: PostgresServer,  # noqa: F811 - the fixture
):
    count = next(counts)
    holder, spare = leases(), leases()
    assert await holder.hold(count, [0])
    waiting = asyncio.create_task(spare.hold(count, [0]))
    await asyncio.sleep(0.3)
    postgres_server.sql(
        "bot",
        "SELECT pg_terminate_backend(pid) FROM pg_locks"
        f" WHERE locktype = 'advisory' AND NOT granted AND objid = {count << 20}",
    )
    with pytest.raises(LeaseLost, match=r"^shard leases in PostgreSQL at 127\.0\.0\.1:\d+: "):
        await asyncio.wait_for(waiting, 10)
    assert holder.held and holder.losses == []


async def test_a_process_wanting_several_shards_holds_none_while_it_waits(leases, caplog):
    # One process holds shard 1; another wants 0 and 1. It must not sit on 0 while it waits
    # for 1 (shard 0 would then be served by nobody): a third process wanting 0 gets it.
    caplog.set_level(logging.INFO, "chatbot.shards")
    count = next(counts)
    one, both, zero = leases(), leases(), leases()
    assert await one.hold(count, [1])
    waiting = asyncio.create_task(both.hold(count, [0, 1]))
    await until(lambda: "waiting as a spare for shard 1" in caplog.text)
    assert both.waiting_for == [1]
    assert await asyncio.wait_for(zero.hold(count, [0]), 5)
    assert not waiting.done() and not both.held

    await one.close()  # shard 1 frees, but 0 is zero's: both still holds nothing
    await until(lambda: both.waiting_for == [0])
    await asyncio.sleep(0.3)
    assert not waiting.done()
    second = leases()
    assert await asyncio.wait_for(second.hold(count, [1]), 5)  # 1 is free for anyone
    await second.close()
    await zero.close()
    assert await asyncio.wait_for(waiting, 10) is True
    assert both.held and both.waiting_for == []
    assert f"took over the lease on shards 0 and 1 of {count}" in caplog.text
