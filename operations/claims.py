"""Each message and slash command acted on by one process, however many see it: `Claims`.

Two processes on one shard (a rolling restart, a split brain) both receive every event,
and Discord may deliver one event twice. Before a message is answered (or told about a
limit) and before a command runs, its id is claimed:

- One process on its own database (SQLite): `Claims` makes no query at all. It keeps
  the ids of the events it took lately in memory, so an event delivered twice is acted
  on once.
- Processes sharing PostgreSQL: `SharedClaims` also claims each id in the database
  (store.claims: one INSERT that only one process can win), and counts each user's rate
  limit there, on the messages let through, so USER_RATE_LIMIT holds across processes.
  (The daily allowance, USER_DAILY_TOKENS, is read from the shared usage table already:
  conversations.load_allowance.) Settings changes reach the other processes at once
  (settings_news.py). If the database fails, events are acted on as if won (a double
  answer is better than none), logged once until it answers again.

What the process that loses a message remembers: nothing of it. The winner answers it,
and the loser cannot see that answer come (the bot ignores its own messages), so
keeping the question alone would leave its memory with a question never answered.
Instead it gives up the channel's loaded memory (`unload`): the next time it answers
there, it reads the channel back from Discord, the other process's answers included
(those posted by then). A lost slash command does the same (a /reset, say). A
duplicate of an event this process took itself is simply dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import discord

from conversation.access import RATE_WINDOW, UserLimits, rate_notice
from conversation.audience import Verdict
from conversation.recency import RecentlyUsed
from operations.settings_news import SettingsNews
from store import CLAIM_RETENTION, ClaimKind, Store, StoreError

if TYPE_CHECKING:
    from conversation.conversations import Conversations
    from conversation.services import Services

log = logging.getLogger("chatbot")

# Ids of the events this process took lately, to drop a second delivery of one.
REMEMBERED_EVENTS = 10_000
PRUNE_SECONDS = 600.0  # between prunings of old claims


def acts(verdict: Verdict) -> bool:
    """Whether acting on `verdict` shows something in Discord (an answer or a notice),
    which must then happen once; remembering a message only changes nothing there."""
    return verdict.answer or bool(verdict.notices)


def skipped(verdict: Verdict, *, elsewhere: bool = False) -> Verdict:
    """`verdict` for a message this process leaves alone: not remembered, not answered
    (`elsewhere`: because another process claimed it)."""
    return Verdict(remember=False, answer=False, reply_to=verdict.reply_to, elsewhere=elsewhere)


class Claims:
    """One process alone: no queries; an event delivered twice is acted on once."""

    def __init__(self, remembered: int = REMEMBERED_EVENTS) -> None:
        self._taken: RecentlyUsed[int] = RecentlyUsed(remembered)

    def first_sight(self, event_id: int) -> bool:
        """Whether this process has not taken `event_id` lately (now it has)."""
        if event_id in self._taken:
            return False
        self._taken.use(event_id)
        self._taken.overflow()
        return True

    async def message(self, message: discord.Message, verdict: Verdict) -> Verdict:
        """The verdict to act on for `message`, judged `verdict` by this process."""
        if not (verdict.remember or acts(verdict)):
            return verdict
        if not self.first_sight(message.id):
            log.info("message %s delivered again: skipped", message.id)
            return skipped(verdict)
        return verdict

    async def interaction(self, interaction: discord.Interaction) -> bool:
        """Whether this process handles `interaction` (False: another one does)."""
        return self.first_sight(interaction.id)

    async def close(self) -> None:
        """Stop any background work."""


class SharedClaims(Claims):
    """Processes sharing PostgreSQL: each event claimed in the database, the rate limit
    counted there, old claims pruned, settings changes announced (see the module)."""

    def __init__(
        self,
        store: Store,
        limits: UserLimits,
        unload: Callable[[int], None],
        news: SettingsNews | None = None,
        *,
        remembered: int = REMEMBERED_EVENTS,
    ) -> None:
        super().__init__(remembered)
        self.store = store
        self.limits = limits
        self.unload = unload  # gives a channel's loaded memory up (read back when next used)
        self.news = news
        self.lost = 0  # events another process took (messages: bot.py counts them)
        limits.rate_elsewhere = True
        self._failing = False
        self._pruner = asyncio.create_task(self._prune())

    async def message(self, message: discord.Message, verdict: Verdict) -> Verdict:
        verdict = await super().message(message, verdict)
        if not acts(verdict):
            return verdict
        if not await self._claim("message", message.id, message.author.id, message.created_at):
            if verdict.answer:
                self.unload(message.channel.id)
            return skipped(verdict, elsewhere=True)
        limits = self.limits
        if verdict.answer and limits.rate_limit and message.author.id not in limits.admins:
            return await self._rate(message, verdict)
        return verdict

    async def interaction(self, interaction: discord.Interaction) -> bool:
        if not await super().interaction(interaction):
            return False
        who = interaction.user.id
        if await self._claim("interaction", interaction.id, who, interaction.created_at):
            return True
        command = interaction.type is discord.InteractionType.application_command
        if command and interaction.channel_id is not None:
            self.unload(interaction.channel_id)  # a /reset there, say
        return False

    async def _claim(self, kind: ClaimKind, event_id: int, user_id: int, at: dt.datetime) -> bool:
        """Whether this process won `event_id` (True too when the database fails)."""
        try:
            won = await self.store.claim(kind, event_id, user_id, at)
        except StoreError as error:
            self._failed(error)
            return True
        self._answering()
        if not won:
            self.lost += 1
            log.debug("%s %s: taken by another process", kind, event_id)
        return won

    async def _rate(self, message: discord.Message, verdict: Verdict) -> Verdict:
        """`verdict` after the user's rate limit, counted in the database."""
        window = dt.timedelta(seconds=RATE_WINDOW)
        sent = message.created_at
        try:
            check = await self.store.count_message(
                message.id, message.author.id, sent, limit=self.limits.rate_limit, window=window
            )
        except StoreError as error:
            self._failed(error)
            return verdict
        if check.allowed:
            return verdict
        notices = verdict.notices
        if check.first_refusal and check.oldest is not None:
            wait = (check.oldest + window - sent).total_seconds()
            notices = (*notices, rate_notice(self.limits.rate_limit, wait))
        return dataclasses.replace(verdict, answer=False, notices=notices)

    def _failed(self, error: StoreError) -> None:
        if not self._failing:
            log.warning("claims: acting on every message the database cannot claim: %s", error)
        self._failing = True

    def _answering(self) -> None:
        if self._failing:
            log.info("claims: the database answers again")
        self._failing = False

    async def _prune(self) -> None:
        """Delete claims older than CLAIM_RETENTION, every PRUNE_SECONDS."""
        while True:
            try:
                await self.store.prune_claims(dt.datetime.now(dt.UTC) - CLAIM_RETENTION)
            except StoreError as error:
                log.warning("claims: could not prune old claims: %s", error)
            await asyncio.sleep(PRUNE_SECONDS)

    async def close(self) -> None:
        self._pruner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._pruner
        if self.news is not None:
            await self.news.stop()


def unloader(conversations: Conversations) -> Callable[[int], None]:
    """Gives a channel's loaded memory up, so it is read back from Discord when next
    used (as when its settings change: recall.Recall.profile)."""

    def unload(channel_id: int) -> None:
        conversation = conversations.channels.get(channel_id)
        if conversation is not None and conversation.memory is not None:
            conversation.memory = None
            log.info("channel %s: answered by another process; read back next time", channel_id)

    return unload


def claims_for(services: Services, limits: UserLimits, conversations: Conversations) -> Claims:
    """The claims for this process's store: `SharedClaims` (with settings news started)
    on PostgreSQL, else `Claims`, which makes no query. Call with the loop running."""
    store = services.store
    if not store.shared:
        return Claims()
    news = SettingsNews(store, services.channel_settings)
    news.start()
    return SharedClaims(store, limits, unloader(conversations), news)
