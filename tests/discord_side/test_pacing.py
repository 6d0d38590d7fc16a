"""The per-channel edit pacer and the bound on idle channels and users, tested directly."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conversation.access import RATE_WINDOW, UserLimits
from conversation.recency import RecentlyUsed
from discord_side.pacing import ChannelPacer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_quiet_channel_may_be_edited_at_once() -> None:
    assert ChannelPacer(clock=Clock()).delay() == 0.0


def test_in_between_edits_are_spread_over_the_window() -> None:
    clock = Clock()
    pacer = ChannelPacer(writes=5, window=5.0, clock=clock)
    pacer.record()
    assert pacer.delay() == pytest.approx(1.0)
    clock.now += 0.4
    assert pacer.delay() == pytest.approx(0.6)
    clock.now += 0.6
    assert pacer.delay() == 0.0


def test_posts_and_final_edits_of_any_message_count_against_the_channel() -> None:
    clock = Clock()
    pacer = ChannelPacer(writes=5, window=5.0, clock=clock)
    for _ in range(5):  # say, two answers' posts and final edits, back to back
        pacer.record()
        clock.now += 0.1
    # Five writes from 0.5 s ago until 0.1 s ago: the next in-between edit waits for the oldest
    # to leave the window, not only for the spacing.
    assert pacer.delay() == pytest.approx(4.5)


def test_a_pacer_needs_a_budget() -> None:
    with pytest.raises(ValueError):
        ChannelPacer(writes=0)
    with pytest.raises(ValueError):
        ChannelPacer(window=0)


@given(
    st.lists(
        st.tuples(st.floats(0.0, 3.0), st.booleans()),  # (time passing, a final write?)
        max_size=60,
    )
)
def test_paced_writes_never_exceed_the_budget(steps: list[tuple[float, bool]]) -> None:
    """In-between edits sent only when delay() is 0 never make the channel exceed its
    budget unless final writes alone do; they keep their spacing from every write."""
    clock = Clock()
    pacer = ChannelPacer(writes=5, window=5.0, clock=clock)
    writes: list[tuple[float, bool]] = []
    for passed, final in steps:
        clock.now += passed
        if final:
            pacer.record()
            writes.append((clock.now, True))
        elif pacer.delay() == 0.0:
            pacer.record()
            writes.append((clock.now, False))
    for i, (at, final) in enumerate(writes):
        if final:
            continue
        earlier = [t for t, _ in writes[:i]]
        assert not earlier or at - earlier[-1] >= 1.0 - 1e-9
        assert len([t for t in earlier if t > at - 5.0]) < 5


def test_recently_used_lets_the_least_recent_go_first() -> None:
    recent: RecentlyUsed[int] = RecentlyUsed(2)
    for key in (1, 2, 1, 3):
        recent.use(key)
    assert recent.overflow() == [2]
    assert list(recent) == [1, 3]
    assert recent.overflow() == []


def test_busy_keys_are_kept_beyond_the_limit() -> None:
    recent: RecentlyUsed[str] = RecentlyUsed(1)
    for key in "abc":
        recent.use(key)
    assert recent.overflow(busy=lambda key: key == "a") == ["b"]
    assert list(recent) == ["c", "a"]  # a busy key counts as just used
    assert recent.overflow(busy=lambda key: True) == []
    assert len(recent) == 2


@given(st.lists(st.integers(0, 20), max_size=200), st.integers(1, 10))
def test_recently_used_keeps_exactly_the_latest_keys(keys: list[int], limit: int) -> None:
    recent: RecentlyUsed[int] = RecentlyUsed(limit)
    for key in keys:
        recent.use(key)
        recent.overflow()
    latest = list(dict.fromkeys(reversed(keys)))[:limit]
    assert list(recent) == list(reversed(latest))


def test_user_limits_forget_idle_users_only() -> None:
    today = datetime(2026, 11, 30, 12, tzinfo=UTC)
    limits = UserLimits(rate_limit=2, daily_tokens=1000, admins=frozenset(), max_users=2)
    limits.record_usage(1, 600, today)  # user 1 has spent tokens today: kept
    for user in range(2, 50):
        assert limits.check(user, now=0.0, today=today) == (True, None)
    # Users 2..49 each sent a message in the last minute: all still counted.
    assert len(limits._recent) == 48
    later = RATE_WINDOW + 1.0
    for user in range(100, 110):
        limits.check(user, now=later, today=today)
    # The minute of users 2..49 is over: they are forgotten; user 1's spending and the
    # users counting now are not, bound or no bound.
    assert set(limits._recent) == set(range(100, 110))
    assert set(limits._spent) == {1}
    assert limits.tokens_spent(1, today) == 600
    limits.record_usage(1, 500, today)
    assert limits.check(1, now=later, today=today)[0] is False  # over the allowance still


def test_an_idle_users_rate_is_unchanged_by_forgetting() -> None:
    today = datetime(2026, 11, 30, 12, tzinfo=UTC)
    limits = UserLimits(rate_limit=1, daily_tokens=0, admins=frozenset(), max_users=1)
    assert limits.check(1, now=0.0, today=today) == (True, None)
    assert limits.check(1, now=1.0, today=today)[0] is False  # within the minute: limited
    assert limits.check(2, now=1.0, today=today) == (True, None)  # 1 is still counted
    assert limits.check(1, now=2.0, today=today)[0] is False
    assert limits.check(2, now=RATE_WINDOW + 5, today=today) == (True, None)
    assert 1 not in limits._recent  # idle, beyond the bound: forgotten
    assert limits.check(1, now=RATE_WINDOW + 5, today=today) == (True, None)
