"""The usage table, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from store import (
    ChannelUsage,
    Store,
    Totals,
    UsageRow,
    UserUsage,
)
from tests.store.helpers import (
    TODAY,
    days_ago,
    record,
)


async def test_usage_increments_one_row_per_day_user_channel_model(store: Store) -> None:
    await record(store, TODAY, 100, 10)
    await record(store, TODAY, 50, 5)
    await record(store, TODAY, 1, 1, model="o3")
    await record(store, TODAY, 7, 3, guild=None, channel=900)  # a DM
    await store.record_usage([UsageRow(TODAY, 1, 100, 200, "gpt-4o", 0, 0, 0)])

    rows = await store.usage_rows(100, days=1, today=TODAY)
    assert rows == [
        UsageRow(TODAY, 1, 100, 200, "gpt-4o", 150, 15, 2),
        UsageRow(TODAY, 1, 100, 200, "o3", 1, 1, 1),
    ]
    assert await store.usage_rows(0, days=1, today=TODAY) == [
        UsageRow(TODAY, 1, 0, 900, "gpt-4o", 7, 3, 1)
    ]
    with pytest.raises(ValueError):
        await record(store, TODAY, -1, 0)


async def test_user_totals_today_7_and_30_days(store: Store) -> None:
    await record(store, TODAY, 100, 10)
    await record(store, TODAY, 1, 1, guild=None, channel=900)
    await record(store, days_ago(6), 20, 2)  # last day inside the 7-day window
    await record(store, days_ago(7), 3000, 300, guild=555)  # just outside it
    await record(store, days_ago(29), 40000, 4000)  # last day inside 30
    await record(store, days_ago(30), 999999, 99999)  # outside everything
    await record(store, TODAY, 5, 5, user=2)  # somebody else

    totals = await store.user_totals(1, today=TODAY)
    assert totals.today == Totals(101, 11, 2)
    assert totals.last_7_days == Totals(121, 13, 3)
    assert totals.last_30_days == Totals(43121, 4313, 5)
    assert totals.last_30_days.tokens == 47434

    in_guild = await store.user_totals(1, guild_id=100, today=TODAY)
    assert in_guild.today == Totals(100, 10, 1)
    assert in_guild.last_7_days == Totals(120, 12, 2)
    assert in_guild.last_30_days == Totals(40120, 4012, 3)
    assert (await store.user_totals(1, guild_id=0, today=TODAY)).today == Totals(1, 1, 1)

    nobody = await store.user_totals(42, today=TODAY)
    assert nobody.today == nobody.last_30_days == Totals(0, 0, 0)


async def test_top_users_and_channels_of_a_guild(store: Store) -> None:
    await record(store, TODAY, 100, 0, user=1, channel=10)
    await record(store, days_ago(3), 100, 50, user=2, channel=10)
    await record(store, days_ago(29), 100, 100, user=3, channel=11)
    await record(store, days_ago(29), 0, 100, user=1, channel=12)  # ties user 3 in total
    await record(store, days_ago(30), 10**6, 0, user=4, channel=13)  # too old
    await record(store, TODAY, 10**6, 0, user=5, guild=999, channel=14)  # another guild

    users = await store.top_users(100, today=TODAY)
    assert users == [
        UserUsage(1, Totals(100, 100, 2)),  # ties with 3 on 200 tokens: lower id first
        UserUsage(3, Totals(100, 100, 1)),
        UserUsage(2, Totals(100, 50, 1)),
    ]
    assert await store.top_users(100, limit=1, today=TODAY) == users[:1]
    assert await store.top_users(100, days=7, today=TODAY) == [
        UserUsage(2, Totals(100, 50, 1)),
        UserUsage(1, Totals(100, 0, 1)),
    ]

    channels = await store.top_channels(100, today=TODAY)
    assert channels == [
        ChannelUsage(10, Totals(200, 50, 2)),
        ChannelUsage(11, Totals(100, 100, 1)),
        ChannelUsage(12, Totals(0, 100, 1)),
    ]
    assert await store.top_channels(12345, today=TODAY) == []


async def test_usage_rows_for_export_cover_n_days_in_order(store: Store) -> None:
    await record(store, TODAY, 1, 1, user=2, channel=20)
    await record(store, TODAY, 2, 2, user=1, channel=21, model="b")
    await record(store, TODAY, 3, 3, user=1, channel=21, model="a")
    await record(store, days_ago(2), 4, 4, user=9)
    await record(store, days_ago(3), 5, 5, user=9)  # outside 3 days
    await record(store, TODAY, 6, 6, guild=7)  # another guild

    rows = await store.usage_rows(100, days=3, today=TODAY)
    assert [(r.day, r.user_id, r.channel_id, r.model) for r in rows] == [
        (days_ago(2), 9, 200, "gpt-4o"),
        (TODAY, 1, 21, "a"),
        (TODAY, 1, 21, "b"),
        (TODAY, 2, 20, "gpt-4o"),
    ]
    assert all(r.guild_id == 100 for r in rows)
    assert rows[1] == UsageRow(TODAY, 1, 100, 21, "a", 3, 3, 1)


async def test_tokens_on_a_day_count_every_guild_and_dm(store: Store) -> None:
    await record(store, TODAY, 100, 20, guild=1)
    await record(store, TODAY, 30, 4, guild=2, model="o3")
    await record(store, TODAY, 5, 1, guild=None, channel=3)
    await record(store, days_ago(1), 1000, 1000)
    await record(store, TODAY, 1000, 1000, user=2)

    assert await store.tokens_on_day(1, TODAY) == 160
    assert await store.tokens_on_day(1, days_ago(1)) == 2000
    assert await store.tokens_on_day(1, days_ago(2)) == 0


async def test_prune_keeps_exactly_the_retention_window(store: Store) -> None:
    for age in (0, 1, 89, 90, 91, 400):
        await record(store, days_ago(age), age + 1, 0, channel=age)

    assert await store.prune_usage(90, today=TODAY) == 3  # ages 90, 91 and 400
    kept = await store.usage_rows(100, days=1000, today=TODAY)
    assert sorted(r.channel_id for r in kept) == [0, 1, 89]
    assert await store.prune_usage(90, today=TODAY) == 0
    assert await store.prune_usage(1, today=TODAY) == 2
    with pytest.raises(ValueError):
        await store.prune_usage(0, today=TODAY)


async def test_cached_prompt_tokens_add_up_in_every_report(store: Store) -> None:
    row = UsageRow(TODAY, 1, 100, 200, "gpt-4o", 2048, 10, 1, cached_tokens=1920)
    await store.record_usage([row, row])
    await record(store, TODAY, 100, 10)  # a server that reported no cache
    [stored] = await store.usage_rows(100, days=1, today=TODAY)
    assert (stored.prompt_tokens, stored.cached_tokens, stored.answers) == (4196, 3840, 3)
    assert (await store.user_totals(1, today=TODAY)).today == Totals(4196, 30, 3, 3840)
    [top] = await store.top_users(100, today=TODAY)
    assert top.totals.cached_tokens == 3840
    with pytest.raises(ValueError):
        await store.record_usage([UsageRow(TODAY, 1, 100, 200, "m", 1, 1, 1, cached_tokens=-1)])
