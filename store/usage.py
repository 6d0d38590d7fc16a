"""The usage table: tokens and answers per UTC day, user, guild, channel and model."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from store.database import Table
from store.values import read_day
from text.setting_values import MAX_MODEL_NAME

DEFAULT_RETENTION_DAYS = 90

# The model column's width, checked before writing: PostgreSQL enforces it and SQLite
# does not, so an over-long name must fail the same way (ValueError) on both.
MAX_MODEL_LENGTH = MAX_MODEL_NAME  # the size of the usage.model column (store.migrations)

# The counted columns of usage, in the order of Totals' fields.
_COUNTS = ("prompt_tokens", "completion_tokens", "answers", "cached_tokens")


@dataclass(frozen=True, slots=True)
class Totals:
    """Token counts and answer count summed over some rows of usage;
    `cached_tokens`: of `prompt_tokens`, those the server served from its prompt cache."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    answers: int = 0
    cached_tokens: int = 0

    @property
    def tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class UserTotals:
    """A user's usage over UTC days ending today: today, the last 7 and the last 30 days."""

    today: Totals
    last_7_days: Totals
    last_30_days: Totals


@dataclass(frozen=True, slots=True)
class UserUsage:
    """One line of a guild's top users."""

    user_id: int
    totals: Totals


@dataclass(frozen=True, slots=True)
class ChannelUsage:
    """One line of a guild's top channels."""

    channel_id: int
    totals: Totals


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One stored usage row: one user's use of one model in one channel on one UTC day."""

    day: dt.date
    user_id: int
    guild_id: int
    channel_id: int
    model: str
    prompt_tokens: int
    completion_tokens: int
    answers: int
    cached_tokens: int = 0  # of prompt_tokens, served from the server's prompt cache


def _utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


class UsageTable(Table):
    """`Store`'s usage methods."""

    async def record_usage(self, rows: Sequence[UsageRow]) -> None:
        """Add each row's counts to the stored row with its (UTC day, user, guild,
        channel, model), creating it if need be; all rows in one transaction.

        A DM's `guild_id` is 0. Counts must be >= 0 and `model` at most
        MAX_MODEL_LENGTH characters (else ValueError, and nothing is written). Safe
        against concurrent writers in this and other processes.
        """
        for row in rows:
            if min(row.prompt_tokens, row.completion_tokens, row.answers, row.cached_tokens) < 0:
                raise ValueError("usage counts must not be negative")
            if len(row.model) > MAX_MODEL_LENGTH:
                raise ValueError(f"model name longer than {MAX_MODEL_LENGTH} characters")
        # One statement per row, as in set_setting: concurrent first answers of a day all
        # count. One transaction for them all: one fsync however many answers it holds.
        async with self._failing_as("record usage"), self._db.transaction() as tx:
            for row in rows:
                await tx.execute(
                    """
                    INSERT INTO usage (day, user_id, guild_id, channel_id, model,
                                       prompt_tokens, completion_tokens, answers, cached_tokens)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (day, user_id, guild_id, channel_id, model) DO UPDATE SET
                        prompt_tokens = usage.prompt_tokens + excluded.prompt_tokens,
                        completion_tokens = usage.completion_tokens + excluded.completion_tokens,
                        answers = usage.answers + excluded.answers,
                        cached_tokens = usage.cached_tokens + excluded.cached_tokens""",
                    row.day,
                    row.user_id,
                    row.guild_id,
                    row.channel_id,
                    row.model,
                    row.prompt_tokens,
                    row.completion_tokens,
                    row.answers,
                    row.cached_tokens,
                )

    async def user_totals(
        self, user_id: int, *, guild_id: int | None = None, today: dt.date | None = None
    ) -> UserTotals:
        """A user's usage today, over the last 7 and the last 30 UTC days (today included).

        With `guild_id`, only that guild's usage (0 for DMs); otherwise everywhere.
        """
        today = today or _utc_today()
        since = (today, today - dt.timedelta(days=6), today - dt.timedelta(days=29))
        sums = ", ".join(
            f"COALESCE(SUM(CASE WHEN day >= ? THEN {column} ELSE 0 END), 0)"
            for _ in since
            for column in _COUNTS
        )
        sql = f"SELECT {sums} FROM usage WHERE user_id = ? AND day BETWEEN ? AND ?"
        args: list[object] = [first for first in since for _ in _COUNTS]
        args += [user_id, since[-1], today]
        if guild_id is not None:
            sql += " AND guild_id = ?"
            args.append(guild_id)
        (row,) = await self._fetch("read usage", sql, *args)
        values = [int(value) for value in row]
        n = len(_COUNTS)
        return UserTotals(*(Totals(*values[i * n : (i + 1) * n]) for i in range(3)))

    async def _top(
        self,
        column: Literal["user_id", "channel_id"],
        guild_id: int,
        days: int,
        limit: int,
        today: dt.date | None,
    ) -> list[tuple[int, Totals]]:
        if days < 1 or limit < 1:
            raise ValueError("days and limit must be at least 1")
        today = today or _utc_today()
        rows = await self._fetch(
            "read usage",
            f"""
            SELECT {column}, SUM(prompt_tokens), SUM(completion_tokens), SUM(answers),
                   SUM(cached_tokens)
            FROM usage
            WHERE guild_id = ? AND day BETWEEN ? AND ?
            GROUP BY {column}
            ORDER BY SUM(prompt_tokens) + SUM(completion_tokens) DESC, {column}
            LIMIT ?""",
            guild_id,
            today - dt.timedelta(days=days - 1),
            today,
            limit,
        )
        return [(int(r[0]), Totals(*(int(v) for v in r[1:]))) for r in rows]

    async def top_users(
        self, guild_id: int, *, days: int = 30, limit: int = 10, today: dt.date | None = None
    ) -> list[UserUsage]:
        """A guild's users with the most tokens over the last `days` UTC days, most first."""
        top = await self._top("user_id", guild_id, days, limit, today)
        return [UserUsage(user_id, totals) for user_id, totals in top]

    async def top_channels(
        self, guild_id: int, *, days: int = 30, limit: int = 10, today: dt.date | None = None
    ) -> list[ChannelUsage]:
        """A guild's channels with the most tokens over the last `days` UTC days."""
        top = await self._top("channel_id", guild_id, days, limit, today)
        return [ChannelUsage(channel_id, totals) for channel_id, totals in top]

    async def usage_rows(
        self, guild_id: int, *, days: int, today: dt.date | None = None
    ) -> list[UsageRow]:
        """A guild's usage rows of the last `days` UTC days, for a CSV export.

        Ordered by day, user, channel, model.
        """
        if days < 1:
            raise ValueError("days must be at least 1")
        today = today or _utc_today()
        rows = await self._fetch(
            "read usage",
            """
            SELECT day, user_id, guild_id, channel_id, model,
                   prompt_tokens, completion_tokens, answers, cached_tokens
            FROM usage
            WHERE guild_id = ? AND day BETWEEN ? AND ?
            ORDER BY day, user_id, channel_id, model""",
            guild_id,
            today - dt.timedelta(days=days - 1),
            today,
        )
        return [UsageRow(read_day(day), *rest) for day, *rest in rows]

    async def tokens_on_day(self, user_id: int, day: dt.date) -> int:
        """Prompt plus completion tokens `user_id` spent on UTC `day`, everywhere."""
        ((tokens,),) = await self._fetch(
            "read usage",
            "SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0) FROM usage "
            "WHERE user_id = ? AND day = ?",
            user_id,
            day,
        )
        return int(tokens)

    async def prune_usage(
        self, retention_days: int = DEFAULT_RETENTION_DAYS, *, today: dt.date | None = None
    ) -> int:
        """Delete usage older than the last `retention_days` UTC days; returns rows deleted.

        Rows of today and the `retention_days - 1` days before it are kept.
        """
        if retention_days < 1:
            raise ValueError("retention_days must be at least 1")
        cutoff = (today or _utc_today()) - dt.timedelta(days=retention_days - 1)
        return await self._execute("prune usage", "DELETE FROM usage WHERE day < ?", cutoff)
