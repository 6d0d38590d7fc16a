"""Claims: one winner per event id, however many processes claim it at once, and the
rate limit counted on the claims, decided one after the other per user."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from store import Store

T0 = dt.datetime(2026, 3, 31, 12, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


async def test_exactly_one_claim_of_an_id_wins(store: Store) -> None:
    assert await store.claim("message", 10, 1, T0)
    assert not await store.claim("message", 10, 1, T0)
    assert not await store.claim("interaction", 10, 2, T0)  # ids are unique across kinds
    assert await store.claim("interaction", 11, 1, T0)


async def test_concurrent_claims_from_several_stores_have_one_winner(store_url: str) -> None:
    stores = [await Store.open(store_url) for _ in range(3)]
    try:
        results = await asyncio.gather(
            *(s.claim("message", event, 1, T0) for event in range(20) for s in stores)
        )
    finally:
        for each in stores:
            await each.close()
    per_event = [results[i * 3 : i * 3 + 3] for i in range(20)]
    assert all(sum(wins) == 1 for wins in per_event)


async def test_the_rate_limit_counts_messages_let_through_in_the_window(store: Store) -> None:
    for n in range(3):
        await store.claim("message", n, 7, at(n))
        assert (await store.count_message(n, 7, at(n), limit=3, window=MINUTE)).allowed
    await store.claim("message", 3, 7, at(10))
    refused = await store.count_message(3, 7, at(10), limit=3, window=MINUTE)
    assert not refused.allowed
    assert refused.oldest == at(0) and refused.first_refusal
    await store.claim("message", 4, 7, at(20))
    again = await store.count_message(4, 7, at(20), limit=3, window=MINUTE)
    assert not again.allowed and not again.first_refusal  # told once per shut window
    # Another user is not affected; a refused message does not count.
    await store.claim("message", 5, 8, at(20))
    assert (await store.count_message(5, 8, at(20), limit=1, window=MINUTE)).allowed
    # A minute after the first message, one place is free again.
    await store.claim("message", 6, 7, at(60))
    assert (await store.count_message(6, 7, at(60), limit=3, window=MINUTE)).allowed
    await store.claim("message", 7, 7, at(60.5))
    refused = await store.count_message(7, 7, at(60.5), limit=3, window=MINUTE)
    assert not refused.allowed and refused.oldest == at(1) and refused.first_refusal


async def test_concurrent_decisions_on_one_user_never_exceed_the_limit(store_url: str) -> None:
    stores = [await Store.open(store_url) for _ in range(3)]
    try:
        for n in range(12):
            await stores[0].claim("message", n, 7, at(n / 10))
        checks = await asyncio.gather(
            *(
                stores[n % 3].count_message(n, 7, at(n / 10), limit=5, window=MINUTE)
                for n in range(12)
            )
        )
    finally:
        for each in stores:
            await each.close()
    assert sum(check.allowed for check in checks) == 5


async def test_a_limit_below_one_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        await store.count_message(1, 1, T0, limit=0, window=MINUTE)


async def test_pruning_drops_old_claims_so_their_ids_could_be_claimed_again(store: Store) -> None:
    await store.claim("message", 1, 7, at(0))
    await store.claim("message", 2, 7, at(3600))
    await store.count_message(2, 7, at(3600), limit=1, window=MINUTE)
    assert await store.prune_claims(at(1800)) == 1
    assert await store.claim("message", 1, 7, at(0))
    assert not await store.claim("message", 2, 7, at(3600))


async def test_only_postgresql_is_shared(store: Store, store_url: str) -> None:
    assert store.shared == store_url.startswith("postgresql")
