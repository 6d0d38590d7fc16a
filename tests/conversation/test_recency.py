"""The bound on idle channels and users (`RecentlyUsed`), tested directly."""

from __future__ import annotations

import copy
from collections.abc import Hashable, Iterable
from typing import TypeVar

from hypothesis import given
from hypothesis import strategies as st

from conversation.recency import RecentlyUsed

Key = TypeVar("Key", bound=Hashable)


def order(recent: RecentlyUsed[Key], keys: Iterable[Key]) -> list[Key]:
    """`recent`'s keys (among `keys`) from the least to the most recently used: a copy
    bound to one key lets the others go, oldest first, and keeps the newest."""
    drained = copy.deepcopy(recent)
    drained.limit = 1
    return drained.overflow() + [key for key in dict.fromkeys(keys) if key in drained]


def test_recently_used_lets_the_least_recent_go_first() -> None:
    recent: RecentlyUsed[int] = RecentlyUsed(2)
    for key in (1, 2, 1, 3):
        recent.use(key)
    assert recent.overflow() == [2]
    assert order(recent, (1, 2, 3)) == [1, 3]
    assert recent.overflow() == []


def test_busy_keys_are_kept_beyond_the_limit() -> None:
    recent: RecentlyUsed[str] = RecentlyUsed(1)
    for key in "abc":
        recent.use(key)
    assert recent.overflow(busy=lambda key: key == "a") == ["b"]
    assert order(recent, "abc") == ["c", "a"]  # a busy key counts as just used
    assert recent.overflow(busy=lambda key: True) == []
    assert len(recent) == 2


@given(st.lists(st.integers(0, 20), max_size=200), st.integers(1, 10))
def test_recently_used_keeps_exactly_the_latest_keys(keys: list[int], limit: int) -> None:
    recent: RecentlyUsed[int] = RecentlyUsed(limit)
    for key in keys:
        recent.use(key)
        recent.overflow()
    latest = list(dict.fromkeys(reversed(keys)))[:limit]
    assert order(recent, keys) == list(reversed(latest))
