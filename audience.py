"""Which Discord messages are conversation, who may use the bot, and whom it answers.

The Discord side of the access rules and limits in guards.py: these functions read
discord.py objects and hand plain ids to the pure rules. Answering and history
read-back use the same judgements, so what the bot remembers after a restart is what it
remembered before.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import discord

from config import Settings
from guards import Access, UserLimits
from recency import RecentlyUsed

CONVERSATION_MESSAGE_TYPES = (discord.MessageType.default, discord.MessageType.reply)
BLOCKED_NOTE = "Sorry, you can't use this bot."


def is_conversation(message: discord.Message) -> bool:
    """Whether `message` is a person's chat message (not a bot's or the system's)."""
    if message.author.bot or message.webhook_id is not None:
        return False  # itself, other bots, webhooks: never reply-loop
    return message.type in CONVERSATION_MESSAGE_TYPES  # not joins, pins...


def channel_scope(channel: object) -> set[int]:
    """The ids the channel lists match: the channel, a thread's parent, the category."""
    ids = {getattr(channel, "id", 0), getattr(channel, "parent_id", None)}
    parent = getattr(channel, "parent", None)  # a thread's category is its parent's
    for holder in (channel, parent):
        ids.add(getattr(holder, "category_id", None))
    ids.discard(None)
    return ids  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with a conversation message: `answer` it or only remember it, and
    `notices` to post to its author first (a limit reached, a blocked DM)."""

    remember: bool
    answer: bool
    notices: tuple[str, ...] = ()


class Audience:
    """Judges messages and interactions by the access rules, REPLY_TO and the limits."""

    def __init__(self, settings: Settings, limits: UserLimits) -> None:
        self.settings = settings
        self.access = settings.access
        self.limits = limits
        # Blocked users already told so in a DM; one forgotten is told once more.
        self.told_blocked: RecentlyUsed[int] = RecentlyUsed(settings.max_cached_channels)

    def access_of(self, author: discord.abc.User, channel: object, in_dm: bool) -> Access:
        """The access rules' verdict on `author` (a Member carries roles) in `channel`."""
        return self.access.check(
            author.id,
            [role.id for role in getattr(author, "roles", [])],
            channel_scope(channel) if channel is not None else set(),
            in_dm=in_dm,
        )

    def judge(self, message: discord.Message, me: discord.ClientUser) -> Verdict:
        """The verdict on a conversation message (see `is_conversation`). An answered
        message counts toward its author's rate limit."""
        access = self.access_of(message.author, message.channel, message.guild is None)
        if access is Access.BLOCKED_IN_DM and message.author.id not in self.told_blocked:
            self.told_blocked.use(message.author.id)
            self.told_blocked.overflow()
            return Verdict(remember=False, answer=False, notices=(BLOCKED_NOTE,))
        if access is not Access.ALLOWED:
            return Verdict(remember=False, answer=False)
        if not self.is_addressed(message, me):
            return Verdict(remember=True, answer=False)
        answer, notice = self.limits.check(
            message.author.id, time.monotonic(), discord.utils.utcnow()
        )
        return Verdict(remember=True, answer=answer, notices=(notice,) if notice else ())

    def is_addressed(self, message: discord.Message, me: discord.ClientUser) -> bool:
        """Whether the bot should answer `message` (not only remember it)."""
        if self.settings.reply_to == "all" or message.guild is None:
            return True
        if me in message.mentions:
            return True
        replied_to = message.reference.resolved if message.reference else None
        return isinstance(replied_to, discord.Message) and replied_to.author == me

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
            return self.access_of(author, message.channel, message.guild is None) is Access.ALLOWED

        return remembered
