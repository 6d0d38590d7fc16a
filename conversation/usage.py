"""Usage per person: recorded per answer, kept per UTC day, reported by /usage.

`UsageLedger.record` is called once per answer and never waits or raises: the answer's
tokens go to a queue that one background task writes to the store, everything queued
in one transaction (store.record_usage). When the database fails, the counts stay in memory,
the failure is logged once, and they are written when it answers again. The daily
allowance (USER_DAILY_TOKENS) is read from the store, so it holds across restarts and
across bot processes sharing one database.

The report texts and the CSV export are pure functions, tested directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime as dt
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from store import ChannelUsage, Store, StoreError, Totals, UsageRow, UserTotals, UserUsage

log = logging.getLogger("chatbot")

RETRY_SECONDS = 30.0  # between attempts to write usage while the database fails
CLOSE_SECONDS = 5.0  # how long shutdown waits for usage still being written
PRUNE_EVERY = dt.timedelta(days=1)
REPORT_DAYS = 30  # /usage server: the top users and channels, and the CSV, over this many days
CSV_COLUMNS = (
    "day",
    "user_id",
    "guild_id",
    "channel_id",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "answers",
    "cached_tokens",
)


@dataclass(frozen=True, slots=True)
class UsageKey:
    """One usage row's key: a UTC day, a user, a guild (None: a DM), a channel, a model."""

    day: dt.date
    user_id: int
    guild_id: int | None
    channel_id: int
    model: str


@dataclass(frozen=True, slots=True)
class Prices:
    """Prices per million prompt (input) and completion (output) tokens, and per
    million prompt tokens served from the server's prompt cache (None: billed as input;
    OpenAI bills them at a fraction of the input price)."""

    input_per_million: float
    output_per_million: float
    cached_input_per_million: float | None = None

    def cost(self, totals: Totals) -> float:
        """What `totals` cost at these prices."""
        cached = totals.cached_tokens if self.cached_input_per_million is not None else 0
        return (
            (totals.prompt_tokens - cached) * self.input_per_million
            + cached * (self.cached_input_per_million or 0.0)
            + totals.completion_tokens * self.output_per_million
        ) / 1_000_000


class UsageLedger:
    """Records answers' tokens in the store without ever delaying or failing an answer."""

    def __init__(self, store: Store, *, retry_seconds: float = RETRY_SECONDS) -> None:
        self.store = store
        self.retry_seconds = retry_seconds
        # Counts not yet written: key -> [prompt, completion, answers, cached].
        self._unwritten: dict[UsageKey, list[int]] = {}
        self._writer: asyncio.Task[None] | None = None
        self._pruner: asyncio.Task[None] | None = None
        self._failing = False

    def record(
        self,
        *,
        user_id: int,
        guild_id: int | None,
        channel_id: int,
        model: str,
        prompt_tokens: int,
        completion_tokens: int,
        cached_tokens: int = 0,
        day: dt.date | None = None,
        answers: int = 1,
    ) -> None:
        """Count one answer's tokens (`cached_tokens`: of its prompt tokens, those the
        server served from its cache; `answers`=0: one more request of an answer counted
        already, as a tool round is); written in the background (never raises, never
        waits)."""
        key = UsageKey(day or _today(), user_id, guild_id, channel_id, model)
        counts = self._unwritten.setdefault(key, [0, 0, 0, 0])
        counts[0] += max(prompt_tokens, 0)
        counts[1] += max(completion_tokens, 0)
        counts[2] += answers
        counts[3] += min(max(cached_tokens, 0), max(prompt_tokens, 0))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())

    def unwritten_tokens(self, user_id: int, day: dt.date) -> int:
        """`user_id`'s tokens on `day` that are not in the store yet."""
        return sum(
            c[0] + c[1]
            for key, c in self._unwritten.items()
            if key.user_id == user_id and key.day == day
        )

    async def tokens_on_day(self, user_id: int, day: dt.date) -> int:
        """`user_id`'s tokens on UTC `day`: stored (by any process) plus not yet written.

        Raises StoreError when the database cannot be read.
        """
        return await self.store.tokens_on_day(user_id, day) + self.unwritten_tokens(user_id, day)

    async def flush(self) -> None:
        """Wait until what was recorded so far is written (or has failed to be)."""
        if self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    async def user_totals(self, user_id: int) -> UserTotals:
        """`user_id`'s totals (store.user_totals), with everything recorded so far written
        first. Raises StoreError when the database cannot be read."""
        await self.flush()
        return await self.store.user_totals(user_id)

    async def server_usage(
        self, guild_id: int, days: int
    ) -> tuple[list[UserUsage], list[ChannelUsage], list[UsageRow]]:
        """The server's top users, top channels and usage rows over `days` days, with
        everything recorded so far written first. Raises StoreError when the database
        cannot be read."""
        await self.flush()
        users = await self.store.top_users(guild_id, days=days)
        channels = await self.store.top_channels(guild_id, days=days)
        return users, channels, await self.store.usage_rows(guild_id, days=days)

    def start_pruning(self, retention_days: int) -> None:
        """Delete usage older than `retention_days` now and then once a day."""
        self._pruner = asyncio.create_task(self._prune(retention_days))

    async def close(self) -> None:
        """Stop pruning and write what is left (giving up after CLOSE_SECONDS)."""
        if self._pruner is not None:
            self._pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruner
        if self._writer is not None and not self._writer.done():
            try:
                async with asyncio.timeout(CLOSE_SECONDS):
                    await asyncio.shield(self._writer)
            except TimeoutError:
                self._writer.cancel()
        if self._unwritten:
            log.warning("usage: %d answers' usage could not be stored", self._answers_unwritten())

    def _answers_unwritten(self) -> int:
        return sum(c[2] for c in self._unwritten.values())

    async def _write(self) -> None:
        # Everything recorded so far in one transaction: one answer per transaction
        # falls behind a busy bot (a commit is an fsync), and the backlog grows.
        while self._unwritten:
            batch, self._unwritten = self._unwritten, {}
            rows = [
                UsageRow(key.day, key.user_id, key.guild_id or 0, key.channel_id, key.model, *c)
                for key, c in batch.items()
            ]
            try:
                await self.store.record_usage(rows)
            except StoreError as error:
                # Put it back (merged with what arrived meanwhile) and retry later.
                for key, counts in batch.items():
                    merged = self._unwritten.setdefault(key, [0, 0, 0, 0])
                    for index, value in enumerate(counts):
                        merged[index] += value
                if not self._failing:
                    log.warning("usage: counting in memory until the database answers: %s", error)
                self._failing = True
                await asyncio.sleep(self.retry_seconds)
            else:
                if self._failing:
                    log.info("usage: the database answers again; usage stored")
                self._failing = False

    async def _prune(self, retention_days: int) -> None:
        while True:
            try:
                deleted = await self.store.prune_usage(retention_days)
            except StoreError as error:
                log.warning("usage: could not delete old usage: %s", error)
            else:
                if deleted:
                    log.info("usage: deleted %d rows older than %d days", deleted, retention_days)
            await asyncio.sleep(PRUNE_EVERY.total_seconds())


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _line(totals: Totals, prices: Prices | None) -> str:
    answers = "answer" if totals.answers == 1 else "answers"
    cached = f", {totals.cached_tokens:,} of them cached" if totals.cached_tokens else ""
    text = (
        f"{totals.tokens:,} tokens ({totals.prompt_tokens:,} in{cached}, "
        f"{totals.completion_tokens:,} out), {totals.answers:,} {answers}"
    )
    if prices is not None:
        text += f", cost {prices.cost(totals):.4f}"
    return text


def personal_report(totals: UserTotals, prices: Prices | None) -> str:
    """/usage me: a person's tokens and answers today, this week and in 30 days."""
    return "\n".join(
        [
            "**Your usage** (UTC days, every server and DM):",
            f"**Today:** {_line(totals.today, prices)}",
            f"**Last 7 days:** {_line(totals.last_7_days, prices)}",
            f"**Last 30 days:** {_line(totals.last_30_days, prices)}",
        ]
    )


def server_report(
    users: Sequence[UserUsage], channels: Sequence[ChannelUsage], prices: Prices | None
) -> str:
    """/usage server: the top users and channels (mentions render as names, unpinged)."""
    lines = [f"**Top users, last {REPORT_DAYS} days:**"]
    lines += [f"{i}. <@{u.user_id}>: {_line(u.totals, prices)}" for i, u in enumerate(users, 1)]
    if not users:
        lines.append("No answers yet.")
    lines.append(f"**Top channels, last {REPORT_DAYS} days:**")
    lines += [
        f"{i}. <#{c.channel_id}>: {_line(c.totals, prices)}" for i, c in enumerate(channels, 1)
    ]
    if not channels:
        lines.append("No answers yet.")
    return "\n".join(lines)


def usage_csv(rows: Sequence[UsageRow]) -> bytes:
    """The rows as CSV (UTF-8, a header line first), one line per stored row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([getattr(row, column) for column in CSV_COLUMNS])
    return out.getvalue().encode("utf-8")
