"""The Discord bot: `python bot.py` starts it.

This module is the adapter between Discord and the bot's logic: it decides which
messages are conversation turns, keeps one `ChannelMemory` per channel, asks the model,
and posts the answer split for Discord. Settings come from config.py, the text logic
from memory.py, tokenizer.py and splitting.py, the API calls from chat_model.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import discord
import openai
import yarl
from discord import app_commands

from chat_model import Answer, ChatModel, EmptyAnswer, explain_failure
from config import ConfigError, Settings, load_settings, read_environment
from guards import Access, UserLimits
from history import RESET_MESSAGE, read_back
from live_reply import LiveReply
from memory import ChannelMemory, Prompt, PromptBuilder, Turn, speaker_name
from splitting import split_for_discord
from summaries import Summarizer
from tokenizer import TokenCounter, encoding_name_for_model, load_encoding

log = logging.getLogger("chatbot")

# What the bot needs in a channel: see it, read it back (replies need this), post in
# channels and threads.
PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    read_message_history=True,
)
CONVERSATION_MESSAGE_TYPES = (discord.MessageType.default, discord.MessageType.reply)
SHORTENED_NOTE = "-# Your message was too long for me to read whole; I answered its beginning."
BLOCKED_NOTE = "Sorry, you can't use this bot."
# More waiting messages than this in one channel are answered together, in one call.
COALESCE_AFTER = 3


@dataclass(frozen=True, slots=True)
class PendingTurn:
    """A message waiting for its channel's turn; `answer`: whether to answer it."""

    message: discord.Message
    text: str
    answer: bool


def channel_scope(channel: object) -> set[int]:
    """The ids the channel lists match: the channel, a thread's parent, the category."""
    ids = {getattr(channel, "id", 0), getattr(channel, "parent_id", None)}
    parent = getattr(channel, "parent", None)  # a thread's category is its parent's
    for holder in (channel, parent):
        ids.add(getattr(holder, "category_id", None))
    ids.discard(None)
    return ids  # type: ignore[return-value]


class ChatBot(discord.Client):
    """A Discord client that chats with an OpenAI model in every channel it can read."""

    def __init__(self, settings: Settings, tokenizer: Awaitable[TokenCounter]) -> None:
        """`tokenizer` may still be loading (it takes ~0.5 s): the bot connects meanwhile
        and waits for it only before its first conversation turn (`ready_to_chat`)."""
        intents = discord.Intents.default()
        intents.message_content = True  # privileged: must be enabled in the Developer Portal
        super().__init__(
            intents=intents,
            # Nothing the bot posts may ping anyone, whatever the model writes.
            allowed_mentions=discord.AllowedMentions.none(),
            # discord.py waits this long after the last server arrives before on_ready
            # (default 2 s). The bot needs no complete cache to answer, so don't wait long.
            guild_ready_timeout=0.5,
        )
        self.settings = settings
        self.tokenizer = asyncio.ensure_future(tokenizer)
        # Set by ready_to_chat(), before anything uses them.
        self.prompts: PromptBuilder
        self.memory_budget: int
        self.model: ChatModel | None = None
        self.access = settings.access
        self.limits = UserLimits(
            settings.user_rate_limit, settings.user_daily_tokens, settings.access.admins
        )
        self.told_blocked: set[int] = set()  # blocked users already told so in a DM
        self.summarizer: Summarizer | None = None
        self.memories: dict[int, ChannelMemory] = {}  # filled from history on first use
        # Per channel, the messages not yet taken into the conversation, and a lock so
        # that they are taken one turn at a time, in order.
        self.waiting: defaultdict[int, deque[PendingTurn]] = defaultdict(deque)
        self.channel_locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.tree = app_commands.CommandTree(self)
        self.add_commands()

    async def setup_hook(self) -> None:
        # The HTTP client belongs to the running event loop, so it is made here.
        self.model = ChatModel(self.settings)
        await self.sync_commands()

    async def ready_to_chat(self) -> None:
        """Finish setting up what needs the tokenizer, the first time it is needed."""
        if hasattr(self, "prompts"):
            return
        counter = await self.tokenizer
        prompts = PromptBuilder(counter, self.settings.system_prompt, self.settings.prompt_budget)
        # With summaries, part of the history budget is kept for the summary.
        self.memory_budget = prompts.history_budget
        if self.settings.memory_strategy == "summarize":
            assert self.model is not None
            self.summarizer = Summarizer(self.model, prompts)
            self.memory_budget -= self.summarizer.max_tokens
        self.prompts = prompts

    async def sync_commands(self) -> None:
        """Register the slash commands: in DEV_GUILD_ID at once, else globally (Discord
        can take a while to show global changes)."""
        guild = None
        if self.settings.dev_guild_id is not None:
            guild = discord.Object(self.settings.dev_guild_id)
            self.tree.copy_global_to(guild=guild)
        try:
            synced = await self.tree.sync(guild=guild)
        except discord.HTTPException as error:
            log.warning("could not register the slash commands: %s", error)
            return
        log.info("registered /%s", ", /".join(command.name for command in synced))

    async def close(self) -> None:
        if self.summarizer is not None:
            await self.summarizer.close()
        if self.model is not None:
            await self.model.close()
        await super().close()

    def add_commands(self) -> None:
        """The slash commands: /reset and /memory (they work in threads and DMs too)."""

        @self.tree.command(name="reset", description="Forget this channel's conversation.")
        async def reset(interaction: discord.Interaction) -> None:
            if await self.may_use_commands(interaction):
                await self.reset_conversation(interaction)

        @self.tree.command(name="memory", description="What I remember in this channel.")
        async def memory(interaction: discord.Interaction) -> None:
            if await self.may_use_commands(interaction):
                await self.describe_memory(interaction)

    async def may_use_commands(self, interaction: discord.Interaction) -> bool:
        """The access rules apply to commands as to messages; say so if they refuse."""
        access = self.access_of(interaction.user, interaction.channel, interaction.guild is None)
        if access is Access.ALLOWED:
            return True
        await interaction.response.send_message("You can't use this bot here.", ephemeral=True)
        return False

    async def reset_conversation(self, interaction: discord.Interaction) -> None:
        """Forget the channel's conversation, with a visible message that marks the
        boundary, so a restarted bot does not read back past it either."""
        allowed = (
            interaction.guild is None
            or self.settings.reset_permission == "everyone"
            or interaction.permissions.manage_messages
        )
        if not allowed:
            await interaction.response.send_message(
                "You need the Manage Messages permission to reset the conversation here.",
                ephemeral=True,
            )
            return
        await self.ready_to_chat()
        channel_id = interaction.channel_id or 0
        # A new, empty memory: an answer in progress finishes into the old one, unseen.
        self.memories[channel_id] = ChannelMemory(self.memory_budget)
        if self.summarizer is not None:
            self.summarizer.forget(channel_id)
        log.info("channel %s: conversation reset by %s", channel_id, interaction.user.id)
        await interaction.response.send_message(RESET_MESSAGE)

    async def describe_memory(self, interaction: discord.Interaction) -> None:
        """Answer (only to the asker) what the bot remembers in this channel."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self.ready_to_chat()
        channel = interaction.channel
        assert channel is not None
        async with self.channel_locks[channel.id]:
            waiting = self.waiting[channel.id]
            memory = await self.channel_memory(
                channel,  # type: ignore[arg-type]
                before=waiting[0].message if waiting else None,
            )
        if memory.summary is not None:
            older = f"older messages are summarised ({memory.summary.tokens} tokens)"
        elif self.settings.memory_strategy == "summarize":
            older = "older messages will be summarised when they no longer fit"
        else:
            older = "older messages are forgotten when they no longer fit"
        mode = "streamed" if self.settings.stream_replies else "posted when complete"
        who = "every message" if self.settings.reply_to == "all" else "mentions, replies and DMs"
        prompt = self.prompts.prompt(memory)
        await interaction.followup.send(
            f"**Memory in this channel:** {len(memory)} messages, {prompt.tokens:,} of "
            f"{self.settings.prompt_budget:,} prompt tokens used; {older}.\n"
            f"**Model:** {self.settings.openai_model}, answers {mode}, answering {who}.",
            ephemeral=True,
        )

    async def on_ready(self) -> None:
        assert self.user is not None
        log.info(
            "Connected as %s (id %s) to %d server(s), model %s. Invite link: %s",
            self.user,
            self.user.id,
            len(self.guilds),
            self.settings.openai_model,
            discord.utils.oauth_url(
                self.user.id, permissions=PERMISSIONS, scopes=("bot", "applications.commands")
            ),
        )

    async def on_message(self, message: discord.Message) -> None:
        if not self.is_conversation(message):
            return
        text = message.clean_content.strip()
        if not text:
            return  # an image or sticker alone, or content hidden without the intent
        access = self.access_of(message.author, message.channel, message.guild is None)
        if access is Access.BLOCKED_IN_DM and message.author.id not in self.told_blocked:
            self.told_blocked.add(message.author.id)
            await self.post(message, [BLOCKED_NOTE], notice=True)
        if access is not Access.ALLOWED:
            return

        answer = self.is_addressed(message)
        notice = None
        if answer:
            now = discord.utils.utcnow()
            answer, notice = self.limits.check(message.author.id, time.monotonic(), now)
        # Queue before the first await, so the queue is in arrival order; whichever
        # handler holds the channel's lock works from the head of the queue.
        waiting = self.waiting[message.channel.id]
        waiting.append(PendingTurn(message, text, answer))
        if notice is not None:
            await self.post(message, [notice], notice=True)
        async with self.channel_locks[message.channel.id]:
            if not waiting:
                return  # answered together with others
            if len(waiting) > COALESCE_AFTER:
                # Falling behind: answer the newest with everything waiting as context.
                batch = list(waiting)
                waiting.clear()
            else:
                batch = [waiting.popleft()]
            await self.take_turns(batch)

    def is_conversation(self, message: discord.Message) -> bool:
        """Whether `message` is a person's chat message (not a bot's or the system's)."""
        if message.author.bot or message.webhook_id is not None:
            return False  # itself, other bots, webhooks: never reply-loop
        return message.type in CONVERSATION_MESSAGE_TYPES  # not joins, pins...

    def access_of(self, author: discord.abc.User, channel: object, in_dm: bool) -> Access:
        """The access rules' verdict on `author` (a Member carries roles) in `channel`."""
        return self.access.check(
            author.id,
            [role.id for role in getattr(author, "roles", [])],
            channel_scope(channel) if channel is not None else set(),
            in_dm=in_dm,
        )

    def history_filter(self) -> Callable[[discord.Message], Awaitable[bool]]:
        """Whether a message read back from history belongs in the conversation.

        History comes without members' roles; where role rules are set, each author's
        roles are looked up once (an author who left the server is left out).
        """
        members: dict[int, discord.Member | None] = {}
        needs_roles = bool(self.access.allowed_roles or self.access.blocked_roles)

        async def remembered(message: discord.Message) -> bool:
            if not self.is_conversation(message):
                return False
            author = message.author
            if needs_roles and message.guild and not isinstance(author, discord.Member):
                if author.id not in members:
                    try:
                        members[author.id] = await message.guild.fetch_member(author.id)
                    except discord.HTTPException:
                        members[author.id] = None
                if members[author.id] is None:
                    return False
                author = members[author.id]
            return self.access_of(author, message.channel, message.guild is None) is Access.ALLOWED

        return remembered

    def is_addressed(self, message: discord.Message) -> bool:
        """Whether the bot should answer `message` (not only remember it)."""
        if self.settings.reply_to == "all" or message.guild is None:
            return True
        assert self.user is not None
        if self.user in message.mentions:
            return True
        replied_to = message.reference.resolved if message.reference else None
        return isinstance(replied_to, discord.Message) and replied_to.author == self.user

    async def take_turns(self, batch: list[PendingTurn]) -> None:
        """Remember the messages of `batch`, in order, and answer the newest one to be
        answered (if any), with all of them in the conversation."""
        await self.ready_to_chat()
        channel = batch[0].message.channel
        channel_id = channel.id
        memory = await self.channel_memory(channel, before=batch[0].message)
        shortened = False
        for pending in batch:
            author = pending.message.author
            turn, shortened = self.prompts.turn(
                "user", pending.text, speaker_name(author.display_name, author.id)
            )
            self.remember(channel_id, memory, turn)
            log.debug("channel %s: %s said %r", channel_id, turn.name, pending.text)
        to_answer = [pending for pending in batch if pending.answer]
        if not to_answer:
            return
        message = to_answer[-1].message
        if len(batch) > 1:
            log.info("channel %s: answering %d waiting messages at once", channel_id, len(batch))

        prompt = self.prompts.prompt(memory)
        note = SHORTENED_NOTE if shortened and to_answer[-1] is batch[-1] else None
        started = time.perf_counter()
        if self.settings.stream_replies:
            answer = await self.answer_streaming(message, prompt, note)
        else:
            answer = await self.answer_whole(message, prompt, note)
        if answer is None:
            return
        self.remember(channel_id, memory, self.prompts.turn("assistant", answer.text)[0])
        log_answer(channel_id, prompt.tokens, answer, time.perf_counter() - started)

    async def channel_memory(
        self, channel: discord.abc.Messageable, before: discord.Message | None
    ) -> ChannelMemory:
        """The channel's memory; the first time, rebuilt from its history before `before`.

        Call with the channel's lock held. A channel that cannot be read back starts empty.
        """
        channel_id = getattr(channel, "id", 0)
        memory = self.memories.get(channel_id)
        if memory is not None:
            return memory
        memory = self.memories[channel_id] = ChannelMemory(self.memory_budget)
        assert self.user is not None
        try:
            turns = await read_back(
                channel,
                before=before,
                bot_id=self.user.id,
                prompts=self.prompts,
                budget=self.memory_budget,
                remembered=self.history_filter(),
            )
        except discord.HTTPException as error:
            log.warning(
                "channel %s: could not read its history, starting empty: %s", channel_id, error
            )
            return memory
        for turn in turns:
            memory.remember(turn)  # what does not fit is simply dropped, not summarised
        log.info("channel %s: read back %d turns from its history", channel_id, len(memory))
        return memory

    def remember(self, channel_id: int, memory: ChannelMemory, turn: Turn) -> None:
        """Add `turn`; with summaries on, turns that no longer fit go to the summarizer."""
        dropped = memory.remember(turn)
        if self.summarizer is not None:
            self.summarizer.add(channel_id, memory, dropped)

    async def answer_whole(
        self, message: discord.Message, prompt: Prompt, note: str | None
    ) -> Answer | None:
        """Get the whole answer, then post it; the answer if any of it was posted."""
        assert self.model is not None
        try:
            async with show_typing(message.channel):
                answer = await self.model.complete(prompt.messages)
        except Exception as error:
            await self.report_failure(message, error)
            return None
        self.charge(message, prompt, answer)
        text = f"{answer.text}\n\n{note}" if note else answer.text
        return answer if await self.post(message, split_for_discord(text)) else None

    async def answer_streaming(
        self, message: discord.Message, prompt: Prompt, note: str | None
    ) -> Answer | None:
        """Show the answer while it streams; the answer (or what arrived) if it was shown.

        A stream that breaks after some text keeps that text visible, marked as cut
        off, and it is remembered as the bot's turn: it is what the channel saw.
        """
        assert self.model is not None
        reply = LiveReply(message)
        answer = None
        try:
            async with show_typing(message.channel):
                async for piece in self.model.stream(prompt.messages):
                    if isinstance(piece, Answer):
                        answer = piece
                        self.charge(message, prompt, answer)
                    else:
                        reply.add(piece)
        except Exception as error:
            if not reply.text:
                await reply.finish()
                await self.report_failure(message, error)
                return None
            log.warning("channel %s: the answer stream broke: %r", message.channel.id, error)
            cut_off = f"-# ⚠️ The answer was cut off: {explain_failure(error)}"
            note = "\n".join(filter(None, [cut_off, note]))
            answer = Answer(reply.text, None, None, "interrupted")
            self.charge(message, prompt, answer)
        await reply.finish(note)
        return answer if reply.visible else None

    def charge(self, message: discord.Message, prompt: Prompt, answer: Answer) -> None:
        """Count an answer's tokens against its asker's daily allowance, before it is
        shown, so their next message is judged with it."""
        if not self.limits.daily_tokens:
            return  # no allowance to count against: skip re-encoding an answer without usage
        completion = answer.completion_tokens
        if completion is None:
            completion = self.prompts.counter.count_text(answer.text)
        spent = (answer.prompt_tokens or prompt.tokens) + completion
        self.limits.record_usage(message.author.id, spent, discord.utils.utcnow())

    async def report_failure(self, message: discord.Message, error: Exception) -> None:
        """Tell the user briefly why no answer came; the log gets the detail."""
        if isinstance(error, openai.OpenAIError | EmptyAnswer):
            log.warning("channel %s: no answer from the model: %r", message.channel.id, error)
        else:  # a reply the SDK could not parse, say: keep serving
            log.error("channel %s: unexpected failure", message.channel.id, exc_info=error)
        await self.post(message, [explain_failure(error)], notice=True)

    async def post(
        self, message: discord.Message, chunks: list[str], *, notice: bool = False
    ) -> bool:
        """Post `chunks` as the answer to `message`; whether any of it reached Discord.

        The first chunk is a reply that does not ping the author; a failure (no
        permission to post, say) is logged, never raised. A `notice` (an error, a limit)
        is posted silently, which also tells history read-back that it is no answer.
        """
        reference = message.to_reference(fail_if_not_exists=False)
        posted = 0
        try:
            for chunk in chunks:
                if posted == 0:
                    await message.channel.send(
                        chunk, reference=reference, mention_author=False, silent=notice
                    )
                else:
                    await message.channel.send(chunk, silent=notice)
                posted += 1
        except discord.HTTPException as error:
            log.warning(
                "channel %s: could not post the answer (%s %s: %s)",
                message.channel.id,
                error.status,
                error.code,
                error.text,
            )
        return posted > 0


@contextlib.asynccontextmanager
async def show_typing(channel: discord.abc.Messageable) -> AsyncIterator[None]:
    """Show "typing..." in `channel` while the block runs.

    The indicator is sent from a task of its own, so the block (the model call) never
    waits for a round trip to Discord; a channel that refuses is left alone.
    """

    sending = asyncio.Lock()

    async def keep_typing() -> None:
        try:
            while True:
                async with sending:
                    await channel.typing()  # lasts about 10 s on Discord's side
                await asyncio.sleep(8)
        except discord.HTTPException as error:
            log.debug("could not show typing: %s", error)

    task = asyncio.create_task(keep_typing())
    try:
        yield
    finally:
        # An indicator that reached Discord after the answer would show "typing..."
        # for 10 s more, so let one in flight land first.
        async with sending:
            task.cancel()


def log_answer(channel_id: int, prompt_tokens: int, answer: Answer, latency: float) -> None:
    """One INFO line per answered message; the API's usage figures when it sent them."""
    log.info(
        "answered channel=%s prompt_tokens=%s completion_tokens=%s latency=%.2fs",
        channel_id,
        answer.prompt_tokens if answer.prompt_tokens is not None else prompt_tokens,
        answer.completion_tokens,
        latency,
    )


def point_discord_at(url: str) -> None:
    """Send discord.py's REST and gateway traffic to `url` (the test stand-in)."""
    base = yarl.URL(url)
    discord.http.Route.BASE = str(base / "api" / "v10")
    scheme = "wss" if base.scheme == "https" else "ws"
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = base.with_scheme(scheme) / "gateway"


async def run(settings: Settings) -> None:
    """Run the bot until it is closed by SIGINT or SIGTERM."""
    if settings.discord_api_url:
        point_discord_at(settings.discord_api_url)
    # Building the encoding takes ~0.5 s of CPU: do it in a thread while the bot connects.
    encoding_name = encoding_name_for_model(settings.openai_model)
    tokenizer = asyncio.to_thread(lambda: TokenCounter(load_encoding(encoding_name)))
    bot = ChatBot(settings, tokenizer)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, lambda: asyncio.ensure_future(bot.close()))
    async with bot:
        await bot.start(settings.discord_bot_token)


def main() -> int:
    """Start the bot; the exit status is 0 after a clean shutdown, 1 if it cannot start."""
    try:
        settings = load_settings(read_environment())
    except ConfigError as error:
        print(f"Configuration error: {error}", file=sys.stderr)
        return 1
    discord.utils.setup_logging(level=getattr(logging, settings.log_level))
    # A text bot needs no voice: skip discord.py's start-up warnings about voice libraries.
    discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
    if settings.log_level != "DEBUG":
        # The OpenAI SDK's HTTP library logs every request at INFO; one line per answer
        # (ours) is enough.
        for name in ("httpx", "httpx2"):
            logging.getLogger(name).setLevel(logging.WARNING)
    try:
        asyncio.run(run(settings))
    except discord.LoginFailure:
        print(
            "Discord rejected DISCORD_BOT_TOKEN: copy a fresh token from the Developer Portal "
            "(your application -> Bot -> Reset Token) into .env.",
            file=sys.stderr,
        )
        return 1
    except (aiohttp.ClientError, OSError) as error:
        print(f"Could not reach Discord ({error}): check the network connection.", file=sys.stderr)
        return 1
    except discord.PrivilegedIntentsRequired:
        print(
            "Discord refused the Message Content intent: enable MESSAGE CONTENT INTENT in the "
            "Developer Portal (your application -> Bot -> Privileged Gateway Intents).",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
