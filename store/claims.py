"""The claims table: which process answers a message or an interaction, and the shared
per-user rate limit counted on those claims.

Several bot processes on one database may all receive the same Discord event (two
sessions of one shard during a rolling restart or a split brain, or Discord delivering
an event twice). Each claims the event's id before acting on it; the id is the primary
key, so exactly one INSERT wins (`claim`), and only that process answers.

A user's rate limit (USER_RATE_LIMIT) is counted on the claims of the messages it let
through (`counted`). Each decision takes the user's row of user_limits first, so two
processes deciding on the same user's messages decide one after the other.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from store.database import Table
from store.values import read_moment

ClaimKind = Literal["message", "interaction"]
# How long claims and users' limit rows are kept: far longer than any event is
# delivered again, or than a rate limit's window.
CLAIM_RETENTION = dt.timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class RateCheck:
    """A rate-limit decision on one message: `allowed`, else `oldest`, the first of
    the messages in the window that holds it shut (aware UTC), and `first_refusal`:
    whether this is the first refusal while that message holds it shut (the user is
    told once)."""

    allowed: bool
    oldest: dt.datetime | None = None
    first_refusal: bool = False


class ClaimsTable(Table):
    """`Store`'s claims methods."""

    async def claim(
        self, kind: ClaimKind, event_id: int, user_id: int, created_at: dt.datetime
    ) -> bool:
        """Claim the message or interaction `event_id` (by `user_id`, sent at
        `created_at`, timezone-aware); True if this call won it, False if it was
        claimed before, by any process (this one included).

        One INSERT with ON CONFLICT DO NOTHING: of concurrent claims of one id in any
        number of processes exactly one changes a row.
        """
        won = await self._execute(
            "claim an event",
            "INSERT INTO claims (id, kind, user_id, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (id) DO NOTHING",
            event_id,
            kind,
            user_id,
            created_at,
        )
        return won == 1

    async def count_message(
        self,
        message_id: int,
        user_id: int,
        created_at: dt.datetime,
        *,
        limit: int,
        window: dt.timedelta,
    ) -> RateCheck:
        """Let the claimed message `message_id` through `user_id`'s rate limit if fewer
        than `limit` of their messages sent within `window` of `created_at` were let
        through (then it counts too), else refuse it.

        Times are the messages' own (Discord's clock, from their ids), so every process
        judges alike. Messages are mostly judged in the order they were sent, when only
        the window before `created_at` holds any; counting the window after it too keeps
        the limit when two processes judge a user's messages out of order. The user's
        user_limits row is written first: it locks out a concurrent decision on the same
        user until this one commits. Raises ValueError for a `limit` below 1.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        async with self._failing_as("count a message"), self._db.transaction() as tx:
            await tx.execute(
                "INSERT INTO user_limits (user_id, updated_at) VALUES (?, ?) "
                "ON CONFLICT (user_id) DO UPDATE SET updated_at = excluded.updated_at",
                user_id,
                dt.datetime.now(dt.UTC),
            )
            rows = await tx.fetch(
                "SELECT created_at FROM claims WHERE user_id = ? AND counted = 1 "
                "AND created_at > ? AND created_at < ? AND id <> ? ORDER BY created_at",
                user_id,
                created_at - window,
                created_at + window,
                message_id,
            )
            if len(rows) < limit:
                await tx.execute("UPDATE claims SET counted = 1 WHERE id = ?", message_id)
                return RateCheck(allowed=True)
            oldest = read_moment(rows[0][0])
            ((noticed,),) = await tx.fetch(
                "SELECT noticed FROM user_limits WHERE user_id = ?", user_id
            )
            first = noticed is None or read_moment(noticed) != oldest
            if first:
                await tx.execute(
                    "UPDATE user_limits SET noticed = ? WHERE user_id = ?", oldest, user_id
                )
            return RateCheck(allowed=False, oldest=oldest, first_refusal=first)

    async def prune_claims(self, before: dt.datetime) -> int:
        """Delete claims of events sent before `before`, and the limit rows of users not
        judged since; returns how many claims went."""
        async with self._failing_as("prune claims"), self._db.transaction() as tx:
            pruned = await tx.execute("DELETE FROM claims WHERE created_at < ?", before)
            await tx.execute("DELETE FROM user_limits WHERE updated_at < ?", before)
        return pruned
