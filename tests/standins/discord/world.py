"""The state: the guild, its channels, members and roles, the bot's permissions, and
the JSON Discord shows them as."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from tests.standins.discord.objects import (
    FakeChannel,
    FakeGuild,
    FakeUser,
    GatewaySession,
    iso_timestamp,
)
from tests.standins.discord.protocol import (
    ALL_PERMISSIONS,
    APP_FLAG_GUILD_MEMBERS_LIMITED,
    APP_FLAG_MESSAGE_CONTENT_LIMITED,
    APP_FLAG_PRESENCE_LIMITED,
    BOT_ROLE_PERMISSIONS,
    CHANNEL_ANNOUNCEMENT,
    CHANNEL_CATEGORY,
    CHANNEL_DM,
    CHANNEL_FORUM,
    CHANNEL_PRIVATE_THREAD,
    CHANNEL_PUBLIC_THREAD,
    CHANNEL_STAGE,
    CHANNEL_TEXT,
    CHANNEL_VOICE,
    CROWD_USER,
    DM_APP_PERMISSIONS,
    EVERYONE_PERMISSIONS,
    IMPLIED_BY_SEND,
    INTENT_GUILD_PRESENCES,
    MODERATOR_PERMISSIONS,
    OVERWRITE_MEMBER,
    P_ADMINISTRATOR,
    P_SEND_IN_THREADS,
    P_SEND_MESSAGES,
    P_VIEW_CHANNEL,
    PERMISSIONS,
    VOICE_TYPES,
)


class World:
    """The guild, its channels, members and roles, and the bot's permissions."""

    # ---- the world ---------------------------------------------------------------------

    def _build_world(self) -> None:
        new_id = self._snowflake
        self.guild_id = new_id.on_shard_zero()  # shard 0 of any count up to 16
        self.everyone_role_id = self.guild_id  # as on Discord
        self.moderators_role_id = new_id()
        self.bot_role_id = new_id()  # the managed role Discord gives a bot on joining
        self.helpers_role_id = new_id()  # an ordinary, mentionable role nobody holds
        # Roles by name, for user_says(mention_roles=...) and role().
        self.roles: dict[str, int] = {
            "everyone": self.everyone_role_id,
            "moderators": self.moderators_role_id,
            "helpers": self.helpers_role_id,
            "bot": self.bot_role_id,
        }
        self.guild_name = "Stand-in Guild"
        self.guild = FakeGuild("guild", self.guild_id, self.guild_name)
        # Every guild the bot is in, by key: the fixed one and those from add_guild().
        self.guilds: dict[str, FakeGuild] = {"guild": self.guild}

        def user(key: str, username: str, global_name: str | None, **kw: Any) -> FakeUser:
            return FakeUser(key=key, id=new_id(), username=username, global_name=global_name, **kw)

        self.bot_user = user("bot", "ChatBot", None, bot=True, discriminator="4821")
        self.owner = user("owner", "owner", "Guild Owner")  # owns the guild and the app
        self.alice = user("alice", "alice", "Alice")
        self.bob = user("bob", "bob", "Zoë 🌟")  # non-ASCII on purpose
        self.carol = user("carol", "carol", "Carol")
        self.other_bot = user("other_bot", "OtherBot", None, bot=True, discriminator="1337")
        self.users: dict[str, FakeUser] = {
            u.key: u
            for u in (self.bot_user, self.owner, self.alice, self.bob, self.carol, self.other_bot)
        }
        self.bot_user_id = self.bot_user.id
        self.member_roles: dict[int, list[int]] = {
            self.bot_user.id: [self.bot_role_id],
            self.owner.id: [],
            self.alice.id: [],
            self.bob.id: [],
            self.carol.id: [self.moderators_role_id],
            self.other_bot.id: [],
        }
        self.joined_at = iso_timestamp()

        guild = {"guild_id": self.guild_id}
        self.category = FakeChannel(
            "category", new_id(), CHANNEL_CATEGORY, "Text Channels", **guild
        )
        self.general = FakeChannel(
            "general", new_id(), CHANNEL_TEXT, "general", parent_id=self.category.id, **guild
        )
        self.random = FakeChannel(
            "random", new_id(), CHANNEL_TEXT, "random", parent_id=self.category.id, position=1,
            **guild,
        )  # fmt: skip
        self.thread = FakeChannel(
            "thread", new_id(), CHANNEL_PUBLIC_THREAD, "a thread", parent_id=self.general.id,
            owner_id=self.alice.id, **guild,
        )  # fmt: skip
        # Other kinds of channel with text chat (resources/channel#channel-object-channel-types).
        self.announcements = FakeChannel(
            "announcements", new_id(), CHANNEL_ANNOUNCEMENT, "announcements",
            parent_id=self.category.id, position=2, **guild,
        )  # fmt: skip
        self.voice = FakeChannel("voice", new_id(), CHANNEL_VOICE, "Lounge", **guild)
        self.stage = FakeChannel("stage", new_id(), CHANNEL_STAGE, "Town Hall", position=1, **guild)
        # A private thread: only its members (the bot was added) and moderators see it.
        self.private_thread = FakeChannel(
            "private_thread", new_id(), CHANNEL_PRIVATE_THREAD, "a private thread",
            parent_id=self.general.id, owner_id=self.carol.id, **guild,
        )  # fmt: skip
        # A forum channel: its posts are threads (see ``user_posts_in_forum``).
        self.forum = FakeChannel(
            "forum", new_id(), CHANNEL_FORUM, "help-forum", parent_id=self.category.id,
            position=3, **guild,
        )  # fmt: skip
        self._channels_by_id: dict[int, FakeChannel] = {}  # filled by channel()
        self.channels: dict[str, FakeChannel] = {
            c.key: c
            for c in (
                self.category, self.general, self.random, self.thread, self.announcements,
                self.voice, self.stage, self.private_thread, self.forum,
            )
        }  # fmt: skip

    async def add_guild(
        self, key: str, *, shard: tuple[int, int] | None = None, name: str | None = None
    ) -> FakeGuild:
        """Another guild the bot is in, with text channels "KEY/general" and "KEY/random".

        Everyone is a member, with the roles they have in the fixed guild. ``shard=(id,
        count)`` gives it an id whose events go to that shard (the fixed guild is on shard
        0 of any count up to 16). Sessions of its shard are sent GUILD_CREATE, as when a
        bot is added to a server.
        """
        if key in self.guilds:
            raise ValueError(f"there is a guild {key!r} already")
        guild_id = self._snowflake.on_shard(*shard) if shard else self._snowflake()
        guild = FakeGuild(key, guild_id, name or f"Guild {key}")
        self.guilds[key] = guild
        for position, channel_name in enumerate(("general", "random")):
            channel = FakeChannel(
                f"{key}/{channel_name}", self._snowflake(), CHANNEL_TEXT, channel_name,
                guild_id=guild_id, position=position,
            )  # fmt: skip
            self.channels[channel.key] = channel
            self._messages[channel.id] = {}
        for session in self._receivers(guild_id):
            await self._send_dispatch(session, "GUILD_CREATE", self._guild_json(session, guild))
        await self.notify()
        return guild

    def guild_of(self, ref: FakeGuild | str | int) -> FakeGuild:
        """The guild named ``ref`` ("guild": the fixed one), or with that id."""
        if isinstance(ref, FakeGuild):
            return ref
        if isinstance(ref, str) and ref in self.guilds:
            return self.guilds[ref]
        with contextlib.suppress(TypeError, ValueError):
            for guild in self.guilds.values():
                if guild.id == int(ref):
                    return guild
        raise KeyError(f"no guild {ref!r}; known: {sorted(self.guilds)}")

    def user(self, ref: FakeUser | str | int) -> FakeUser:
        """The user named ``ref`` ("alice"), or with that id (int or digit string).

        "user_0", "user_1", ... name a crowd of ordinary members without roles, made on
        first use (username "user_17", display name "User 17")."""
        if isinstance(ref, FakeUser):
            return ref
        if isinstance(ref, str) and ref in self.users:
            return self.users[ref]
        if isinstance(ref, str) and (crowd := CROWD_USER.fullmatch(ref)):
            member = FakeUser(ref, self._snowflake(), ref, f"User {int(crowd[1])}")
            self.users[ref] = member
            self._users_by_id[member.id] = member
            self.member_roles[member.id] = []
            return member
        with contextlib.suppress(TypeError, ValueError):
            found = self._users_by_id.get(int(ref))
            if found is not None:
                return found
        raise KeyError(f"no user {ref!r}; known: {sorted(self.users)}")

    def role(self, ref: str | int) -> int:
        """The id of the role named ``ref`` in ``roles`` ("bot": the bot's managed role,
        "moderators", "helpers", "everyone"), or ``ref`` itself if it is a role's id."""
        if isinstance(ref, str) and ref in self.roles:
            return self.roles[ref]
        with contextlib.suppress(TypeError, ValueError):
            if int(ref) in self.roles.values():
                return int(ref)
        raise KeyError(f"no role {ref!r}; known: {sorted(self.roles)}")

    def channel(self, ref: FakeChannel | str | int) -> FakeChannel:
        """The channel named ``ref`` ("general", "dm:alice"), or with that id."""
        if isinstance(ref, FakeChannel):
            return ref
        if isinstance(ref, str) and ref in self.channels:
            return self.channels[ref]
        with contextlib.suppress(TypeError, ValueError):
            wanted = int(ref)
            # An index, so that a benchmark's 100,000 DMs are not a scan per request;
            # rebuilt when a channel added since is asked for.
            found = self._channels_by_id.get(wanted)
            if found is None:
                self._channels_by_id = {c.id: c for c in self.channels.values()}
                found = self._channels_by_id.get(wanted)
            if found is not None:
                return found
        raise KeyError(f"no channel {ref!r}; known: {sorted(self.channels)}")

    def dm_channel(self, user: FakeUser | str | int) -> FakeChannel:
        """The DM channel between the bot and ``user``, created on first use."""
        who = self.user(user)
        key = f"dm:{who.key}"
        if key not in self.channels:
            dm = FakeChannel(key, self._snowflake(), CHANNEL_DM, recipient_id=who.id)
            self.channels[key] = dm
            self._channels_by_id[dm.id] = dm
            self._messages[dm.id] = {}
        return self.channels[key]

    def _permissions(self, user: FakeUser) -> int:
        """Guild-level permissions of ``user`` (owner: everything)."""
        if user.id == self.owner.id:
            return (1 << 53) - 1
        role_permissions = {
            self.everyone_role_id: EVERYONE_PERMISSIONS,
            self.moderators_role_id: MODERATOR_PERMISSIONS,
            self.bot_role_id: BOT_ROLE_PERMISSIONS,
        }
        total = EVERYONE_PERMISSIONS
        for role_id in self.member_roles.get(user.id, []):
            total |= role_permissions.get(role_id, 0)
        return total

    def bot_permissions(self, channel: FakeChannel | str | int) -> int:
        """The bot's permissions in ``channel`` as Discord computes them (what REST enforces):
        its roles, the channel's (for a thread: its parent's) overwrites, hidden denials,
        then the implicit rules for VIEW_CHANNEL and SEND_MESSAGES."""
        where = self.channel(channel)
        if where.is_dm:
            return DM_APP_PERMISSIONS
        permissions = self._permissions(self.bot_user)
        if permissions & P_ADMINISTRATOR:
            return ALL_PERMISSIONS
        source = self.channel(where.parent_id) if where.is_thread and where.parent_id else where
        for denied in (self._denied, self._hidden_denied):
            permissions &= ~denied.get(source.id, 0)
        permissions &= ~self._hidden_denied.get(where.id, 0)
        if not permissions & P_VIEW_CHANNEL:
            return 0
        send = P_SEND_IN_THREADS if where.is_thread else P_SEND_MESSAGES
        if not permissions & send:
            permissions &= ~IMPLIED_BY_SEND
        return permissions

    @staticmethod
    def _permission_bits(permissions: Sequence[str | int]) -> int:
        bits = 0
        for permission in permissions:
            if isinstance(permission, str):
                try:
                    bits |= PERMISSIONS[permission.upper()]
                except KeyError:
                    raise KeyError(
                        f"unknown permission {permission!r}; known: {sorted(PERMISSIONS)}"
                    ) from None
            else:
                bits |= int(permission)
        if not bits:
            raise ValueError("name at least one permission")
        return bits

    # ---- JSON for the world --------------------------------------------------------------

    def _application_flags(self) -> int:
        if not self.message_content_intent_enabled:
            return 0
        return (
            APP_FLAG_MESSAGE_CONTENT_LIMITED
            | APP_FLAG_GUILD_MEMBERS_LIMITED
            | APP_FLAG_PRESENCE_LIMITED
        )

    def _member_json(self, user: FakeUser, *, with_user: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "roles": [str(r) for r in self.member_roles.get(user.id, [])],
            "nick": None,
            "avatar": None,
            "banner": None,
            "joined_at": self.joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "pending": False,
            "flags": 0,
            "communication_disabled_until": None,
        }
        if with_user:
            data["user"] = user.to_json()
        return data

    def _role_json(
        self, role_id: int, name: str, permissions: int, position: int, **extra: Any
    ) -> dict[str, Any]:
        return {
            "id": str(role_id),
            "name": name,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": position,
            "permissions": str(permissions),
            "managed": False,
            "mentionable": False,
            "flags": 0,
            **extra,
        }

    def _last_message_id(self, channel: FakeChannel) -> str | None:
        ids = self._messages.get(channel.id)
        return str(max(ids)) if ids else None

    def _channel_json(self, channel: FakeChannel) -> dict[str, Any]:
        """A channel object: category, text channel, thread or DM."""
        if channel.is_dm:
            return {
                "id": str(channel.id),
                "type": CHANNEL_DM,
                "last_message_id": self._last_message_id(channel),
                "flags": 0,
                "recipients": [self.user(channel.recipient_id or 0).to_json()],
            }
        data: dict[str, Any] = {
            "id": str(channel.id),
            "type": channel.type,
            "guild_id": str(channel.guild_id),
            "name": channel.name,
            "parent_id": str(channel.parent_id) if channel.parent_id else None,
            "flags": 0,
        }
        if channel.is_thread:
            thread = {
                **data,
                "owner_id": str(channel.owner_id),
                "last_message_id": self._last_message_id(channel),
                "rate_limit_per_user": 0,
                "message_count": len(self._messages[channel.id]),
                "member_count": 1,
                "total_message_sent": len(self._messages[channel.id]),
                "thread_metadata": {
                    **self.thread_state(channel),
                    "auto_archive_duration": 1440,
                    "archive_timestamp": self.joined_at,
                    "create_timestamp": self.joined_at,
                },
            }
            if channel.type == CHANNEL_PRIVATE_THREAD:
                thread["thread_metadata"]["invitable"] = True
                thread["member_count"] = 2
                # The bot's own thread member (topics/threads#thread-membership): it was added.
                thread["member"] = {
                    "id": str(channel.id),
                    "user_id": str(self.bot_user.id),
                    "join_timestamp": self.joined_at,
                    "flags": 0,
                }
            return thread
        overwrites = []
        if self._denied.get(channel.id):
            overwrites.append(
                {
                    "id": str(self.bot_user.id),
                    "type": OVERWRITE_MEMBER,
                    "allow": "0",
                    "deny": str(self._denied[channel.id]),
                }
            )
        data.update(position=channel.position, permission_overwrites=overwrites, nsfw=False)
        if channel.type == CHANNEL_FORUM:
            data.update(
                topic=None,
                last_message_id=self._last_message_id(channel),
                rate_limit_per_user=0,
                default_auto_archive_duration=1440,
                default_thread_rate_limit_per_user=0,
                available_tags=[],
                default_reaction_emoji=None,
                default_sort_order=None,
                default_forum_layout=0,
            )
        elif channel.type in (CHANNEL_TEXT, CHANNEL_ANNOUNCEMENT):
            data.update(
                topic=None,
                last_message_id=self._last_message_id(channel),
                rate_limit_per_user=0,
                default_auto_archive_duration=1440,
            )
        elif channel.type in VOICE_TYPES:
            data.update(
                bitrate=64000,
                user_limit=0,
                rtc_region=None,
                last_message_id=self._last_message_id(channel),
                rate_limit_per_user=0,
            )
            if channel.type == CHANNEL_VOICE:
                data["video_quality_mode"] = 1
            else:
                data["topic"] = None
        return data

    def _guild_json(
        self, session: GatewaySession, guild: FakeGuild | None = None
    ) -> dict[str, Any]:
        """The full guild of GUILD_CREATE (the fixed guild unless ``guild`` is given).

        As on Discord, ``members`` lists everyone only with the GUILD_PRESENCES intent;
        otherwise just the bot (discord.py then chunks if it has GUILD_MEMBERS).
        """
        guild = guild or self.guild
        everyone = list(self.users.values())
        listed = everyone if session.has(INTENT_GUILD_PRESENCES) else [self.bot_user]
        guild_channels = [c for c in self.channels.values() if c.guild_id == guild.id]
        system_channel = next(c for c in guild_channels if c.type == CHANNEL_TEXT)
        return {
            "id": str(guild.id),
            "name": guild.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.owner.id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 1,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "premium_progress_bar_enabled": False,
            "preferred_locale": "en-US",
            "features": [],
            "system_channel_id": str(system_channel.id),
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "max_members": 500000,
            "max_video_channel_users": 25,
            "application_id": None,
            "incidents_data": None,
            "joined_at": self.joined_at,
            "large": False,
            "lazy": True,
            "member_count": len(everyone),
            "roles": [
                # @everyone has the guild's id (in the fixed guild: everyone_role_id).
                self._role_json(guild.id, "@everyone", EVERYONE_PERMISSIONS, 0),
                self._role_json(
                    self.moderators_role_id, "Moderators", MODERATOR_PERMISSIONS, 1, hoist=True
                ),
                self._role_json(self.helpers_role_id, "Helpers", 0, 1, mentionable=True),
                self._role_json(
                    self.bot_role_id,
                    self.bot_user.username,
                    BOT_ROLE_PERMISSIONS,
                    2,
                    managed=True,
                    tags={"bot_id": str(self.bot_user.id)},
                ),
            ],
            "emojis": [],
            "stickers": [],
            "channels": [self._channel_json(c) for c in guild_channels if not c.is_thread],
            "threads": [  # the active threads only, as on Discord
                self._channel_json(c)
                for c in guild_channels
                if c.is_thread and not self.thread_state(c)["archived"]
            ],
            "members": [self._member_json(u) for u in listed],
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }
