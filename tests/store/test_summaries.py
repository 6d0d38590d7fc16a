"""The summaries table, on SQLite and PostgreSQL."""

from __future__ import annotations

from store import (
    Store,
)


async def test_summaries_round_trip(store: Store) -> None:
    assert await store.get_summary(300) is None
    await store.put_summary(300, "Ana asked about tides.", tokens=7, last_message_id=2**62)
    first = await store.get_summary(300)
    assert first is not None
    assert (first.channel_id, first.text, first.tokens, first.last_message_id) == (
        300, "Ana asked about tides.", 7, 2**62,
    )  # fmt: skip
    assert first.updated_at.tzinfo is not None

    await store.put_summary(300, "Ana and Bo discussed tides.", tokens=9, last_message_id=2**62 + 5)
    second = await store.get_summary(300)
    assert second is not None
    assert (second.text, second.tokens, second.last_message_id) == (
        "Ana and Bo discussed tides.", 9, 2**62 + 5,
    )  # fmt: skip
    assert second.updated_at >= first.updated_at
    assert await store.get_summary(301) is None

    assert await store.delete_summary(300) is True
    assert await store.delete_summary(300) is False
    assert await store.get_summary(300) is None
