"""The Discord bot: `python bot.py` starts it.

The thin adapter between discord.py and the bot: `ChatBot` builds the services
(conversation/services.py) and the conversations once, in `setup_hook`, and hands each
person's message to conversations.py, which remembers and answers it.
"""

from __future__ import annotations

import signal
import sys


def _stop_early(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


# A SIGTERM before run() installs the event loop's handlers (while discord.py and the
# SDK import, ~1-2 s) would otherwise kill the process (status 143): it is a clean stop.
if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _stop_early)

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING

import aiohttp
import discord
from discord.ext import tasks

from config import Settings, load_settings, read_environment
from conversation.audience import Audience, is_conversation
from conversation.channel_settings import Place
from conversation.conversations import Conversations
from conversation.services import Services
from discord_side.approvals import ToolUse
from discord_side.commands import COMMANDS, ChatTree
from discord_side.failures import REQUEST_FAILURES, retrying
from discord_side.failures import describe as describe_failure
from discord_side.idle_buckets import IDLE_SECONDS, forget_idle_buckets
from discord_side.permissions import INVITE_PERMISSIONS, may_answer_in
from discord_side.references import is_forward
from discord_side.threads import answer_channel, opening_text
from knowledge.backfill import Backfiller
from knowledge.catchup_command import catchup
from knowledge.commands import COMMANDS as KNOWLEDGE_COMMANDS
from knowledge.keeper import Keeper
from knowledge.offer import KnowledgeOffer
from operations.claims import Claims, claims_for
from operations.process import (
    START_UP_ERRORS,
    ShardCountUnknown,
    configure_logging,
    point_discord_at,
    start_up_failure,
    use_one_malloc_arena,
)
from operations.shards import (
    ShardLeases,
    claim_sqlite_file,
    describe,
    servers_line,
    shard_list,
)
from text.tokens import TokenCounter, encoding_name_for_model, load_encoding

if TYPE_CHECKING:
    from operations.health import Health
    from operations.metrics import Metrics

log = logging.getLogger("chatbot")

# Seconds between the tries at Discord's recommended shard count (GET /gateway/bot) while
# it fails transiently (a 503): ~30 s in all, as discord.py's own retries of other 5xx.
GATEWAY_RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 15.0)


# What shutdown closes, in this order: the answers in flight first (they need Discord,
# the model and the store), the health server last (its /readyz says "shutting down").
CLOSED_IN_ORDER = (
    "_conversations", "knowledge_offer", "backfiller", "keeper", "claims", "_services", "health",
)  # fmt: skip


class ChatBot(discord.AutoShardedClient):
    """A Discord client that chats with an OpenAI model in every channel it can read, on
    the shards SHARD_COUNT/SHARD_IDS name (unset: every shard of Discord's count)."""

    def __init__(self, settings: Settings, tokenizer: Awaitable[TokenCounter]) -> None:
        """`tokenizer` may still be loading (it takes ~0.5 s) while the bot logs in."""
        intents = discord.Intents.default()
        intents.message_content = True  # privileged: must be enabled in the Developer Portal
        super().__init__(
            intents=intents,
            # Nothing the bot posts may ping anyone, whatever the model writes.
            allowed_mentions=discord.AllowedMentions.none(),
            # discord.py waits this long after the last server arrives before on_ready
            # (default 2 s). The bot needs no complete cache to answer, so don't wait long.
            guild_ready_timeout=0.5,
            # No message cache: edits and deletions arrive as raw events, and a reply
            # carries the message it answers. discord.py's default keeps 1,000 messages.
            max_messages=None,
            shard_count=settings.shard_count,
            shard_ids=None if settings.shard_ids is None else list(settings.shard_ids),
        )
        self.settings = settings
        # With PostgreSQL, a lease per shard keeps each with one live process; one lost
        # while running closes the bot (operations/shards.py says why it does not wait again).
        self.leases = ShardLeases.for_database(
            settings.database_url, lambda _why: asyncio.ensure_future(self.close())
        )
        self.audience = Audience(settings)
        self.tokenizer = asyncio.ensure_future(tokenizer)
        self._services: Services | None = None
        self._conversations: Conversations | None = None
        self._closing: asyncio.Future[None] | None = None
        # HEALTH_PORT's server and what it counts (operations/), built in setup_hook.
        self.health: Health | None = None
        self.metrics: Metrics | None = None
        self.claims = Claims()  # which events are this process's: see setup_hook
        self._setting_up = self.stop_asked = False  # see stop()
        self.tree = ChatTree(self)
        for command in (*COMMANDS, *KNOWLEDGE_COMMANDS, catchup):
            self.tree.add_command(command)

    def stop(self) -> None:
        """Begin shutdown (SIGINT, SIGTERM). Asked while setup_hook builds the services,
        it begins once they are built: closing them half-built would leave their tasks
        using a closed store, and a store opened after close() ran, open for good."""
        self.stop_asked = True
        if not self._setting_up:
            self._stopping = asyncio.ensure_future(self.close())

    async def setup_hook(self) -> None:
        self._setting_up = True
        try:
            await self._set_up()
        finally:
            self._setting_up = False
        if self.stop_asked:
            await self.close()  # discord.py then connects nothing
        elif self.leases is not None:  # last: a spare waits here, ready to take over at once
            await self._hold_shards(self.leases)

    async def _set_up(self) -> None:
        # Before the gateway connects: a bad DATABASE_URL or SYSTEM_PROMPT stops start-up.
        self._services = await Services.open(self.settings, self.tokenizer)
        self._conversations = Conversations(self.settings, self._services, self.audience, self)
        # The tools offered to each answer, and who approves their calls (approvals.py).
        self.knowledge_offer = KnowledgeOffer(self, self._services.store)  # issue 23's tools
        self.tool_use = ToolUse(self.settings, self._services.toolbox, self.knowledge_offer)
        await self.knowledge_offer.start()  # a DM right after a restart is offered them
        self._conversations.answers.tools_for = self.tool_use.tools_for
        await self._start_knowledge(self._services)  # first: close() stops what it starts
        # Shared PostgreSQL: each message and command claimed there (operations/claims.py).
        self.claims = self._conversations.claims = claims_for(
            self._services, self.audience.limits, self._conversations
        )
        await self._serve_health()
        await self.tree.register(self.settings.dev_guild_id)
        self.forget_idle_rate_limits.start()

    async def recommended_shard_count(self) -> int:
        """Discord's recommended shard count (GET /gateway/bot), asked again with backoff
        while Discord fails transiently. Raises ShardCountUnknown when it gives up."""

        async def ask() -> int:
            try:
                return (await self.http.get_bot_gateway())[0]
            except discord.GatewayNotFound as error:  # discord.py's wrapper hides the status
                raise (error.__cause__ or error) from None

        try:
            return await retrying(ask, GATEWAY_RETRY_DELAYS, "GET /gateway/bot")
        except (*REQUEST_FAILURES, discord.GatewayNotFound) as error:
            raise ShardCountUnknown(describe_failure(error)) from None

    async def launch_shards(self) -> None:
        # discord.py asks GET /gateway/bot once and lets one 503 end start-up.
        if self.shard_count is None and not self.is_closed():
            self.shard_count = await self.recommended_shard_count()
        await super().launch_shards()

    async def _hold_shards(self, leases: ShardLeases) -> None:
        """Take the lease on each shard before connecting; if closed while waiting as a
        spare, wait for the shutdown so that discord.py connects nothing."""
        if self.shard_count is None:  # a lease names the count: ask Discord for it now
            self.shard_count = await self.recommended_shard_count()
        if not await leases.hold(self.shard_count, shard_list(self.shard_count, self.shard_ids)):
            assert self._closing is not None
            await asyncio.shield(self._closing)

    async def _serve_health(self) -> None:
        """With HEALTH_PORT: /healthz, /readyz and /metrics (operations/health.py), and
        the counting for them; ConfigError when the port cannot be had."""
        if self.settings.health_port is None:
            return  # nor is prometheus_client imported: ~4 MB
        from operations.health import Health

        self.health = await Health.start(self)
        self.metrics = self.conversations.answers.metrics = self.health.metrics

    async def _start_knowledge(self, services: Services) -> None:
        """The knowledge index's upkeep (keeper.py) and history reading (backfill.py)."""

        async def knowledge_on(place: Place) -> bool:
            return (await services.channel_settings.effective(place)).knowledge

        self.keeper = Keeper(services.store, knowledge_on, lambda: self.user.id if self.user else 0)
        self.keeper.start(self.settings.knowledge_retention_days)
        self.conversations.answered = self.keeper.answered
        # History older than the retention would only be forgotten again at once.
        days = min(self.settings.knowledge_backfill_days, self.settings.knowledge_retention_days)
        self.backfiller = Backfiller(self, self.keeper, days)
        await self.backfiller.resume()  # what a restart left unread, once connected

    @tasks.loop(seconds=IDLE_SECONDS)
    async def forget_idle_rate_limits(self) -> None:
        """Keep discord.py's rate-limit buckets to the channels active lately."""
        forget_idle_buckets(self.http, asyncio.get_running_loop().time())

    @property
    def services(self) -> Services:
        """The store, settings, usage and model services, opened in `setup_hook`."""
        assert self._services is not None, "used before setup_hook"
        return self._services

    @property
    def conversations(self) -> Conversations:
        """The conversation layer, opened in `setup_hook` before any event arrives."""
        assert self._conversations is not None, "used before setup_hook"
        return self._conversations

    async def close(self) -> None:
        """Finish or close off the answers in flight, then close the model client, the
        store, then Discord (closing off an answer needs Discord). Safe to call again."""
        if self._closing is None:  # a second Ctrl+C waits for the first shutdown
            self._closing = asyncio.ensure_future(self._shut_down())
        await asyncio.shield(self._closing)

    def is_closing(self) -> bool:
        """Whether shutdown has begun (answers in flight may still be finishing)."""
        return self._closing is not None

    async def _shut_down(self) -> None:
        if self.leases is not None and not self.leases.held:
            await self.leases.close()  # a spare: stop waiting first
        self.forget_idle_rate_limits.cancel()
        # setup_hook may have stopped at any step: close only what it got to make.
        for name in CLOSED_IN_ORDER:
            part = getattr(self, name, None)
            if part is not None:
                await part.close()
        await super().close()
        if self.leases is not None:  # only now may a spare connect these shards
            await self.leases.close()

    async def on_ready(self) -> None:
        assert self.user is not None
        scopes = ("bot", "applications.commands")
        invite = discord.utils.oauth_url(
            self.user.id, permissions=INVITE_PERMISSIONS, scopes=scopes
        )
        shards = describe(shard_list(self.shard_count or 1, self.shard_ids), self.shard_count or 1)
        log.info(
            "Connected as %s (id %s) to %d server(s) on %s, model %s. Invite link: %s",
            *(self.user, self.user.id, len(self.guilds), shards, self.settings.openai_model),
            invite,
        )

    async def on_shard_ready(self, shard_id: int) -> None:
        servers = [(g.name, g.id) for g in self.guilds if g.shard_id == shard_id]
        log.info("shard %d of %s ready: %s", shard_id, self.shard_count, servers_line(servers))
        self.knowledge_offer.read_now()  # its servers are known now

    async def on_thread_update(self, _before: discord.Thread, after: discord.Thread) -> None:
        if after.archived:  # discord.py forgets it now: its messages stay findable
            self.knowledge_offer.readers.remember_thread(after)

    async def on_guild_join(self, guild: discord.Guild) -> None:
        log.info("joined server %s (id %d) on shard %d", guild.name, guild.id, guild.shard_id)

    async def on_message(self, message: discord.Message) -> None:
        self.keeper.saw(message)  # queued only: indexing never delays an answer
        if not is_conversation(message):
            return
        text = message.clean_content.strip()
        if not text and not message.attachments and not is_forward(message):
            if self.metrics is not None:
                self.metrics.message("ignored")
            return  # a sticker alone, or content hidden without the intent
        assert self.user is not None
        text = opening_text(message, text)  # a forum post: its title, then its first message
        conversations = self.conversations
        verdict = await conversations.judge(message, self.user)
        notes = conversations.permission_notes(message.channel.id)  # thread mode: the parent's
        if verdict.answer and not may_answer_in(message.channel, notes):
            verdict = dataclasses.replace(verdict, answer=False)  # a locked thread, say
        if self.metrics is not None and not verdict.answer:  # answers: counted as they end
            refused = bool(verdict.notices)
            self.metrics.judged(
                remember=verdict.remember, refused=refused, elsewhere=verdict.elsewhere
            )
        if verdict.remember or verdict.notices:
            channel = message.channel
            if verdict.answer:  # in thread mode, a thread of its own
                channel = await answer_channel(message, text, self.user, verdict.reply_to, notes)
            await conversations.receive(message, text, verdict, channel)

    # Raw events: discord.py fires them whether or not the thread or message is in its
    # cache (on_thread_delete, on_message_delete and on_message_edit need it there).

    async def on_raw_thread_delete(self, payload: discord.RawThreadDeleteEvent) -> None:
        self.keeper.channel_deleted(payload.thread_id)
        self.knowledge_offer.channel_deleted(payload.thread_id)
        self.conversations.forget_channel(payload.thread_id)

    async def on_guild_channel_delete(self, channel: discord.abc.GuildChannel) -> None:
        self.keeper.channel_deleted(channel.id)  # its threads' messages go with it
        self.knowledge_offer.channel_deleted(channel.id)

    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        self.keeper.deleted({payload.message_id})
        self.conversations.forget(payload.channel_id, {payload.message_id})

    async def on_raw_bulk_message_delete(self, payload: discord.RawBulkMessageDeleteEvent) -> None:
        self.keeper.deleted(payload.message_ids)
        self.conversations.forget(payload.channel_id, set(payload.message_ids))

    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        message = payload.message
        if "content" in payload.data:
            self.keeper.edited(message)  # by its new words only: the old text is replaced
        if not is_conversation(message) or "content" not in payload.data:
            return  # the bot's own edits, or an update without text (an embed unfurled)
        if is_forward(message):
            return  # a forward cannot be edited: an update (a thread started) keeps it
        self.conversations.replace(message, message.clean_content.strip())


async def run(settings: Settings) -> int:
    """Run the bot until it is closed by SIGINT or SIGTERM (0) or loses a shard lease (1)."""
    if settings.discord_api_url:
        point_discord_at(settings.discord_api_url)
    claim = await claim_sqlite_file(settings.database_url)  # SQLite: this process's alone
    # Building the encoding takes ~0.5 s of CPU: do it in a thread while the bot connects.
    encoding_name = encoding_name_for_model(settings.openai_model)
    tokenizer = asyncio.to_thread(lambda: TokenCounter(load_encoding(encoding_name)))
    bot = ChatBot(settings, tokenizer)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, bot.stop)
    try:
        async with bot:
            await bot.start(settings.discord_bot_token)
    except (aiohttp.ClientError, discord.HTTPException):
        if not bot.stop_asked:
            raise  # main() says what failed
        # Stopped while logging in: discord.py's request fails as its session closes.
    finally:
        if claim is not None:
            claim.close()
    return 1 if bot.leases is not None and bot.leases.lost else 0


def main() -> int:
    """Start the bot; the exit status is 0 after a clean shutdown, 1 if it cannot start."""
    signal.signal(signal.SIGTERM, _stop_early)  # until run() installs the loop's handler
    use_one_malloc_arena()
    try:
        settings = load_settings(read_environment())
        configure_logging(settings)
        return asyncio.run(run(settings))
    except START_UP_ERRORS as error:
        print(start_up_failure(error), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
