"""Who may use the bot, and how much: access rules and per-user limits.

Pure logic with the clock passed in, so it is tested directly; audience.py asks these
objects about each message and acts on the answer.
"""

from __future__ import annotations

import enum
import math
from collections import defaultdict, deque
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from config import AccessRules
from conversation.recency import RecentlyUsed

RATE_WINDOW = 60.0  # seconds: USER_RATE_LIMIT counts messages per minute


class Access(enum.Enum):
    """What to do with a message, by the access rules."""

    ALLOWED = "allowed"
    IGNORED = "ignored"  # out of scope: say nothing
    BLOCKED_IN_DM = "blocked in DM"  # a blocked user wrote a DM: tell them once


def check_access(
    rules: AccessRules,
    user_id: int,
    role_ids: Iterable[int],
    channel_ids: Iterable[int],
    in_dm: bool,
) -> Access:
    """Judge a message by `user_id` with `role_ids` in a channel known by `channel_ids`
    (the channel, its category, a thread's parent; empty in a DM) by `rules`.

    A block always wins over an allow; an empty allow list allows everyone. Channel
    lists match a channel, its category, or a thread's parent channel. Role lists apply
    in servers, where roles exist; with an allowed-roles list, a DM is allowed only to
    users allowed by id. Admins pass every user, role and DM rule (the channel lists
    still decide where the bot talks).
    """
    if not in_dm:
        where = set(channel_ids)
        if where & rules.blocked_channels:
            return Access.IGNORED
        if rules.allowed_channels and not where & rules.allowed_channels:
            return Access.IGNORED
    if user_id in rules.admins:
        return Access.ALLOWED
    roles = set(role_ids)
    blocked = user_id in rules.blocked_users or bool(roles & rules.blocked_roles)
    if blocked:
        return Access.BLOCKED_IN_DM if in_dm else Access.IGNORED
    if in_dm and not rules.allow_dms:
        return Access.IGNORED
    if rules.allowed_users or rules.allowed_roles:
        if user_id not in rules.allowed_users and not roles & rules.allowed_roles:
            return Access.IGNORED
    return Access.ALLOWED


class UserLimits:
    """USER_RATE_LIMIT messages per minute and USER_DAILY_TOKENS per UTC day, per user.

    `check` says whether a user's message may be answered now and, the first time a
    user hits a limit, the one notice to send them; further messages while limited
    get no notice (no spam). Usage is counted here as answers are given; the bot also
    sets it from the stored usage (`set_usage`), so it holds across restarts.

    Of users whose limits no longer hold anything (no message in the last minute, no
    tokens spent today), only the `max_users` most recent are kept: the rest are
    forgotten, which changes no answer. Users still counted are never forgotten.

    `rate_elsewhere`: the rate limit is counted in the shared database instead
    (operations/claims.py, when several processes share PostgreSQL); `check` then
    leaves it alone.
    """

    def __init__(
        self, rate_limit: int, daily_tokens: int, admins: frozenset[int], max_users: int = 1000
    ) -> None:
        self.rate_limit = rate_limit  # 0: off
        self.daily_tokens = daily_tokens  # 0: off
        self.admins = admins
        self._users: RecentlyUsed[int] = RecentlyUsed(max_users)
        self._recent: defaultdict[int, deque[float]] = defaultdict(deque)
        self._spent: dict[int, tuple[str, int]] = {}  # user -> (UTC day, tokens)
        self._noticed: dict[int, str] = {}  # user -> limit period they were told about
        self.rate_elsewhere = False

    def check(self, user_id: int, now: float, today: datetime) -> tuple[bool, str | None]:
        """Whether to answer `user_id` now (monotonic `now`, UTC `today`), and a notice.

        An allowed message counts toward the rate limit.
        """
        if user_id in self.admins:
            return True, None
        self._use(user_id, now, today)
        if self.daily_tokens and self.tokens_spent(user_id, today) >= self.daily_tokens:
            return False, self._notice_once(user_id, f"day:{today.date()}", _daily_notice(today))
        if self.rate_limit and not self.rate_elsewhere:
            recent = self._recent[user_id]
            while recent and recent[0] <= now - RATE_WINDOW:
                recent.popleft()
            if len(recent) >= self.rate_limit:
                notice = rate_notice(self.rate_limit, recent[0] + RATE_WINDOW - now)
                return False, self._notice_once(user_id, f"rate:{recent[0]}", notice)
            recent.append(now)
        return True, None

    def record_usage(self, user_id: int, tokens: int, today: datetime) -> None:
        """Add `tokens` (prompt + completion) to what `user_id` spent on `today`."""
        self._use(user_id, None, today)
        self._spent[user_id] = (str(today.date()), self.tokens_spent(user_id, today) + tokens)

    def set_usage(self, user_id: int, tokens: int, today: datetime) -> None:
        """Set what `user_id` spent on `today` (read back from the stored usage)."""
        self._spent[user_id] = (str(today.date()), tokens)

    def tokens_spent(self, user_id: int, today: datetime) -> int:
        day, tokens = self._spent.get(user_id, ("", 0))
        return tokens if day == str(today.date()) else 0

    def _use(self, user_id: int, now: float | None, today: datetime) -> None:
        """Mark `user_id` as active; forget idle users beyond `max_users`."""
        self._users.use(user_id)
        for idle in self._users.overflow(lambda user: self._counted(user, now, today)):
            self._recent.pop(idle, None)
            self._spent.pop(idle, None)
            self._noticed.pop(idle, None)

    def _counted(self, user_id: int, now: float | None, today: datetime) -> bool:
        """Whether forgetting `user_id` would change a limit (`now` None: unknown)."""
        recent = self._recent.get(user_id)
        if recent and (now is None or recent[-1] > now - RATE_WINDOW):
            return True
        return self.tokens_spent(user_id, today) > 0

    def _notice_once(self, user_id: int, period: str, notice: str) -> str | None:
        if self._noticed.get(user_id) == period:
            return None
        self._noticed[user_id] = period
        return notice


def rate_notice(limit: int, wait: float) -> str:
    """What a user over USER_RATE_LIMIT (`limit` a minute) is told, once: answers resume
    in `wait` seconds (rounded up)."""
    return (
        f"You're sending messages faster than I can answer ({limit} a minute). "
        f"I'll answer you again in {math.ceil(wait)} s; until then I'm only reading."
    )


def _daily_notice(today: datetime) -> str:
    midnight = datetime.combine(today.date() + timedelta(days=1), datetime.min.time(), UTC)
    hours, rest = divmod(int((midnight - today).total_seconds()), 3600)
    return (
        "You've used your share of the model for today. It resets at 00:00 UTC "
        f"(in {hours} h {rest // 60} min); until then I'm only reading."
    )
