"""Access rules and per-user limits, tested directly."""

from __future__ import annotations

from datetime import UTC, datetime

from config import AccessRules
from conversation.access import RATE_WINDOW, Access, UserLimits, check_access

GENERAL, THREAD, CATEGORY, OTHER = 10, 11, 1, 20
NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def check(rules: AccessRules, user: int = 100, roles=(), where=(GENERAL, CATEGORY), dm=False):
    return check_access(rules, user, roles, [] if dm else where, in_dm=dm)


def test_empty_rules_allow_everyone_everywhere() -> None:
    assert check(AccessRules()) is Access.ALLOWED
    assert check(AccessRules(), dm=True) is Access.ALLOWED


def test_channel_lists_match_the_channel_its_parent_or_category() -> None:
    by_category = AccessRules(allowed_channels=frozenset({CATEGORY}))
    assert check(by_category, where=(THREAD, GENERAL, CATEGORY)) is Access.ALLOWED
    assert check(by_category, where=(OTHER, 2)) is Access.IGNORED
    blocked = AccessRules(blocked_channels=frozenset({GENERAL}))
    assert check(blocked, where=(THREAD, GENERAL, CATEGORY)) is Access.IGNORED
    assert check(blocked, dm=True) is Access.ALLOWED  # channel lists are about servers


def test_block_wins_over_allow() -> None:
    rules = AccessRules(allowed_users=frozenset({100}), blocked_roles=frozenset({7}))
    assert check(rules) is Access.ALLOWED
    assert check(rules, roles=[7]) is Access.IGNORED
    assert check(AccessRules(blocked_users=frozenset({100})), dm=True) is Access.BLOCKED_IN_DM


def test_user_and_role_allow_lists_combine() -> None:
    rules = AccessRules(allowed_users=frozenset({100}), allowed_roles=frozenset({7}))
    assert check(rules, user=100) is Access.ALLOWED
    assert check(rules, user=200, roles=[7]) is Access.ALLOWED
    assert check(rules, user=200, roles=[8]) is Access.IGNORED
    assert check(rules, user=200, dm=True) is Access.IGNORED  # no roles in a DM


def test_dms_can_be_turned_off_and_admins_always_pass() -> None:
    rules = AccessRules(
        allow_dms=False, blocked_users=frozenset({5}), admins=frozenset({5}),
        allowed_roles=frozenset({7}),
    )  # fmt: skip
    assert check(rules, user=100, dm=True) is Access.IGNORED
    assert check(rules, user=5, dm=True) is Access.ALLOWED
    assert check(rules, user=5) is Access.ALLOWED
    # ...but the channel lists still decide where the bot talks.
    assert check(AccessRules(blocked_channels=frozenset({GENERAL}), admins=frozenset({5})),
                 user=5) is Access.IGNORED  # fmt: skip


def test_rate_limit_notices_once_and_recovers() -> None:
    limits = UserLimits(rate_limit=3, daily_tokens=0, admins=frozenset())
    results = [limits.check(1, now, NOON) for now in (0.0, 1.0, 2.0, 3.0, 4.0, 5.0)]
    assert [allowed for allowed, _ in results] == [True, True, True, False, False, False]
    notices = [notice for _, notice in results if notice]
    assert len(notices) == 1 and "57 s" in notices[0]  # the oldest leaves the window at 60
    assert limits.check(2, 5.0, NOON) == (True, None)  # other users are unaffected
    assert limits.check(1, 60.5, NOON) == (True, None)


def test_daily_tokens_reset_at_utc_midnight() -> None:
    limits = UserLimits(rate_limit=0, daily_tokens=1000, admins=frozenset({9}))
    limits.record_usage(1, 1200, NOON)
    allowed, notice = limits.check(1, 0.0, NOON)
    assert not allowed and notice and "in 12 h 0 min" in notice
    assert limits.check(1, 1.0, NOON) == (False, None)  # told once
    tomorrow = datetime(2026, 11, 26, 0, 1, tzinfo=UTC)
    assert limits.check(1, 2.0, tomorrow) == (True, None)
    limits.record_usage(9, 10_000, NOON)
    assert limits.check(9, 3.0, NOON) == (True, None)  # admins have no limits


def test_user_limits_forget_idle_users_only() -> None:
    today = datetime(2026, 11, 30, 12, tzinfo=UTC)
    limits = UserLimits(rate_limit=2, daily_tokens=1000, admins=frozenset(), max_users=2)
    limits.record_usage(1, 600, today)  # user 1 has spent tokens today: kept
    for user in range(2, 50):
        assert limits.check(user, now=0.0, today=today) == (True, None)
    # Users 2..49 each sent a message in the last minute: all still counted. (What is
    # kept has no public view: the bound under test is on these private tables.)
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
    assert 1 not in limits._recent  # idle, beyond the bound: forgotten (no public view)
    assert limits.check(1, now=RATE_WINDOW + 5, today=today) == (True, None)
