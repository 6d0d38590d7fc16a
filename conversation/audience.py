"""The bot's audience: which Discord messages are conversation, and the `Verdict` on
each (answer it, only remember it, or ignore it; notices to post first).

The Discord side of the access rules and limits in access.py: these functions read
discord.py objects and hand plain ids to the pure rules. `addresses_bot` is the one
place that decides whether a message is addressed to the bot. Answering and history
read-back use the same judgements, so what the bot remembers after a restart is what it
remembered before.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import discord

from config import ReplyTo, Settings
from conversation.access import Access, UserLimits, check_access
from conversation.recency import RecentlyUsed

CONVERSATION_MESSAGE_TYPES = (discord.MessageType.default, discord.MessageType.reply)
BLOCKED_NOTE = "Sorry, you can't use this bot."


def is_conversation(message: discord.Message) -> bool:
    """Whether `message` is a person's chat message (not a bot's or the system's)."""
    if message.author.bot or message.webhook_id is not None:
        return False  # itself, other bots, webhooks: never reply-loop
    return message.type in CONVERSATION_MESSAGE_TYPES  # not joins, pins...


def addresses_bot(message: discord.Message, me: discord.abc.User) -> bool:
    """Whether `message` is addressed to the bot `me`: it mentions the bot, mentions a
    role the bot holds (its managed role, which Discord's autocomplete offers next to
    the bot for "@ChatBot", or any other), or replies to one of the bot's messages."""
    if any(user.id == me.id for user in message.mentions):
        return True
    if message.raw_role_mentions and message.guild is not None:
        if set(message.raw_role_mentions) & bot_role_ids(message.guild):
            return True
    reference = message.reference
    if reference is None:
        return False
    replied_to = reference.resolved or reference.cached_message
    return isinstance(replied_to, discord.Message) and replied_to.author.id == me.id


def bot_role_ids(guild: discord.Guild) -> set[int]:
    """The ids of the roles the bot holds in `guild`, @everyone aside."""
    ids = {role.id for role in guild.me.roles if not role.is_default()} if guild.me else set()
    if guild.self_role is not None:  # the managed role, even if the member is not cached
        ids.add(guild.self_role.id)
    return ids


def channel_scope(channel: discord.abc.Snowflake) -> set[int]:
    """The ids the channel lists match: the channel, a thread's parent, the category."""
    ids = {channel.id, getattr(channel, "parent_id", None)}
    parent = getattr(channel, "parent", None)  # a thread's category is its parent's
    for holder in (channel, parent):
        ids.add(getattr(holder, "category_id", None))
    ids.discard(None)
    return ids  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with a conversation message: `answer` it or only remember it, and
    `notices` to post to its author first (a limit reached, a blocked DM), and the
    channel's `reply_to` mode it was judged by."""

    remember: bool
    answer: bool
    notices: tuple[str, ...] = ()
    reply_to: ReplyTo = "all"  # the reply mode it was judged by: where to answer (threads.py)
    elsewhere: bool = False  # another process claimed it (operations/claims.py): left alone


class Audience:
    """Judges messages and interactions by the access rules, REPLY_TO and the limits."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.access = settings.access
        self.limits = UserLimits(
            settings.user_rate_limit,
            settings.user_daily_tokens,
            settings.access.admins,
            settings.max_cached_channels,
        )
        # Blocked users already told so in a DM; one forgotten is told once more.
        self.told_blocked: RecentlyUsed[int] = RecentlyUsed(settings.max_cached_channels)

    def access_of(
        self, author: discord.abc.User, channel: discord.abc.Snowflake | None, in_dm: bool
    ) -> Access:
        """The access rules' verdict on `author` (a Member carries roles) in `channel`."""
        return check_access(
            self.access,
            author.id,
            [role.id for role in getattr(author, "roles", [])],
            channel_scope(channel) if channel is not None else set(),
            in_dm=in_dm,
        )

    def allows(
        self, author: discord.abc.User, channel: discord.abc.Snowflake | None, in_dm: bool
    ) -> bool:
        """Whether the access rules let `author` use the bot in `channel`."""
        return self.access_of(author, channel, in_dm) is Access.ALLOWED

    def judge(
        self, message: discord.Message, me: discord.ClientUser, reply_to: ReplyTo | None = None
    ) -> Verdict:
        """The verdict on a conversation message (see `is_conversation`). An answered
        message counts toward its author's rate limit. `reply_to`: the channel's
        effective setting (default REPLY_TO), carried in the verdict."""
        mode = reply_to or self.settings.reply_to
        access = self.access_of(message.author, message.channel, message.guild is None)
        if access is Access.BLOCKED_IN_DM and message.author.id not in self.told_blocked:
            self.told_blocked.use(message.author.id)
            self.told_blocked.overflow()
            return Verdict(remember=False, answer=False, notices=(BLOCKED_NOTE,), reply_to=mode)
        if access is not Access.ALLOWED:
            return Verdict(remember=False, answer=False, reply_to=mode)
        if not self.is_addressed(message, me, mode):
            return Verdict(remember=True, answer=False, reply_to=mode)
        answer, notice = self.limits.check(
            message.author.id, time.monotonic(), discord.utils.utcnow()
        )
        notices = (notice,) if notice else ()
        return Verdict(remember=True, answer=answer, notices=notices, reply_to=mode)

    def is_addressed(
        self, message: discord.Message, me: discord.ClientUser, reply_to: ReplyTo | None = None
    ) -> bool:
        """Whether the bot should answer `message` (not only remember it), by the reply
        mode `reply_to` (the channel's setting, else REPLY_TO): every message in DMs and
        in `all` and `thread` mode; in `mention-thread` mode, every message in a thread
        the bot started (its conversation goes on without mentions) and elsewhere those
        `addresses_bot`, as in `mention` mode."""
        mode = reply_to or self.settings.reply_to
        # In thread mode every message is answered, in a thread of its own (threads.py).
        if mode in ("all", "thread") or message.guild is None:
            return True
        channel = message.channel
        if mode == "mention-thread" and isinstance(channel, discord.Thread):
            if channel.owner_id == me.id:
                return True
        return addresses_bot(message, me)

    def history_filter(self) -> Callable[[discord.Message], Awaitable[bool]]:
        """Whether a message read back from history belongs in the conversation.

        History comes without members' roles; where role rules are set, each author's
        roles are looked up once (an author who left the server is left out).
        """
        members: dict[int, discord.Member | None] = {}
        needs_roles = bool(self.access.allowed_roles or self.access.blocked_roles)

        async def remembered(message: discord.Message) -> bool:
            if not is_conversation(message):
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
            return self.allows(author, message.channel, message.guild is None)

        return remembered
