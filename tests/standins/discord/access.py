"""Who may read what: roles people hold, channels' permission overwrites for roles and
members, and private threads' members (GET /channels/{id}/thread-members/{user}).

The bot lists the archived private threads it is in
(GET /channels/{id}/users/@me/threads/archived/private).

Discord computes a member's permissions in a channel from their roles, then the
channel's @everyone overwrite, the overwrites of their roles (denials, then allows),
then their own (topics/permissions#permission-overwrites); a thread has its parent's;
a private thread is seen only by its members and those with Manage Threads. The
overwrites set here show in the channel objects (permission_overwrites) and count in
the bot's own permissions (what REST enforces).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tests.standins.discord.errors import missing_permissions, unknown_member
from tests.standins.discord.objects import ApiCall, FakeChannel, FakeUser
from tests.standins.discord.protocol import (
    ALL_PERMISSIONS,
    CHANNEL_PRIVATE_THREAD,
    OVERWRITE_MEMBER,
    OVERWRITE_ROLE,
    P_ADMINISTRATOR,
    P_MANAGE_THREADS,
    P_READ_HISTORY,
    P_VIEW_CHANNEL,
)


class Access:
    """Roles, overwrites and private threads' members."""

    # ---- set-up by tests -----------------------------------------------------------------

    async def add_role(self, name: str, permissions: Sequence[str | int] = ()) -> int:
        """A new role ``name`` with these server-wide permissions (Discord's names, or
        bits); its id. A connected bot gets GUILD_ROLE_CREATE; later ones see it in
        GUILD_CREATE."""
        if name in self.roles:
            raise ValueError(f"there is a role {name!r} already")
        role_id = self._snowflake()
        self.roles[name] = role_id
        bits = self._permission_bits(permissions) if permissions else 0
        self._added_roles[role_id] = (name, bits)
        role = self._role_json(role_id, name, bits, 1)
        await self.dispatch("GUILD_ROLE_CREATE", {"guild_id": str(self.guild_id), "role": role})
        await self.notify()
        return role_id

    def give_role(self, user: FakeUser | str | int, role: str | int) -> None:
        """``user`` now holds ``role``: their next message's member, and GET member,
        show it (the bot has no members intent, so no GUILD_MEMBER_UPDATE reaches it)."""
        roles = self.member_roles.setdefault(self.user(user).id, [])
        if self.role(role) not in roles:
            roles.append(self.role(role))

    def take_role(self, user: FakeUser | str | int, role: str | int) -> None:
        """``user`` no longer holds ``role`` (as `give_role`: no event reaches the bot)."""
        roles = self.member_roles.setdefault(self.user(user).id, [])
        if self.role(role) in roles:
            roles.remove(self.role(role))

    async def set_overwrite(
        self,
        channel: FakeChannel | str | int,
        target: FakeUser | str | int,
        *,
        allow: Sequence[str | int] = (),
        deny: Sequence[str | int] = (),
        member: bool = False,
    ) -> None:
        """Give ``channel`` (not a thread) an overwrite for the role ``target`` (a name in
        ``roles`` or an id; "everyone"), or with ``member`` for the user ``target``:
        these bits allowed and denied (Discord's names). CHANNEL_UPDATE tells the bot."""
        where = self.channel(channel)
        if where.is_thread or where.is_dm:
            raise ValueError("threads and DMs have no overwrites of their own")
        key = (
            (OVERWRITE_MEMBER, self.user(target).id)
            if member
            else (OVERWRITE_ROLE, self.role(target))
        )
        allowed = self._permission_bits(allow) if allow else 0
        denied = self._permission_bits(deny) if deny else 0
        self._overwrites.setdefault(where.id, {})[key] = (allowed, denied)
        await self._channel_updated(where)

    def get_overwrites(self, channel: FakeChannel | str | int) -> list[dict[str, Any]]:
        """The overwrites set on ``channel`` as Discord shows them (``id``, ``type``,
        ``allow``, ``deny``; strings)."""
        return self._overwrites_json(self.channel(channel))

    def add_to_thread(self, thread: FakeChannel | str | int, user: FakeUser | str | int) -> None:
        """``user`` joins (or is added to) the private ``thread``."""
        self._members_of(self.channel(thread)).add(self.user(user).id)

    def remove_from_thread(
        self, thread: FakeChannel | str | int, user: FakeUser | str | int
    ) -> None:
        """``user`` leaves (or is removed from) the private ``thread``."""
        self._members_of(self.channel(thread)).discard(self.user(user).id)

    # ---- what Discord computes -------------------------------------------------------------

    def user_permissions(self, user: FakeUser | str | int, channel: FakeChannel | str | int) -> int:
        """``user``'s permissions in ``channel`` (a thread: its parent's) as Discord
        computes them from roles and overwrites; 0 without View Channel."""
        who, where = self.user(user), self.channel(channel)
        source = self.channel(where.parent_id) if where.is_thread and where.parent_id else where
        if who.id == self.owner.id:
            return ALL_PERMISSIONS
        base = self._permissions(who) | self._added_role_permissions(who)
        if base & P_ADMINISTRATOR:
            return ALL_PERMISSIONS
        return self._overwritten(who, source.id, base)

    def may_read(self, user: FakeUser | str | int, channel: FakeChannel | str | int) -> bool:
        """Whether ``user`` can read ``channel``'s history (View Channel and Read Message
        History; a private thread: as a member, or with Manage Threads)."""
        who, where = self.user(user), self.channel(channel)
        permissions = self.user_permissions(who, where)
        if permissions & (P_VIEW_CHANNEL | P_READ_HISTORY) != P_VIEW_CHANNEL | P_READ_HISTORY:
            return False
        if where.type != CHANNEL_PRIVATE_THREAD or permissions & P_MANAGE_THREADS:
            return True
        return who.id in self._members_of(where)

    def _overwritten(self, user: FakeUser, channel_id: int, base: int) -> int:
        overwrites = self._overwrites.get(channel_id, {})
        allow, deny = overwrites.get((OVERWRITE_ROLE, self.everyone_role_id), (0, 0))
        base = (base & ~deny) | allow
        allow = deny = 0
        for role_id in self.member_roles.get(user.id, []):
            role_allow, role_deny = overwrites.get((OVERWRITE_ROLE, role_id), (0, 0))
            allow, deny = allow | role_allow, deny | role_deny
        base = (base & ~deny) | allow
        allow, deny = overwrites.get((OVERWRITE_MEMBER, user.id), (0, 0))
        base = (base & ~deny) | allow
        return base if base & P_VIEW_CHANNEL else 0

    def _added_role_permissions(self, user: FakeUser) -> int:
        bits = 0
        for role_id in self.member_roles.get(user.id, []):
            bits |= self._added_roles.get(role_id, ("", 0))[1]
        return bits

    def _members_of(self, thread: FakeChannel) -> set[int]:
        if thread.type != CHANNEL_PRIVATE_THREAD:
            raise ValueError(f"{thread.key} is not a private thread")
        # The fixed private thread: its owner and the bot (who was added).
        return self._thread_members.setdefault(thread.id, {thread.owner_id or 0, self.bot_user.id})

    # ---- JSON ------------------------------------------------------------------------------

    def _added_roles_json(self) -> list[dict[str, Any]]:
        return [
            self._role_json(role_id, name, bits, 1)
            for role_id, (name, bits) in self._added_roles.items()
        ]

    def _overwrites_json(self, channel: FakeChannel) -> list[dict[str, Any]]:
        return [
            {"id": str(target), "type": kind, "allow": str(allow), "deny": str(deny)}
            for (kind, target), (allow, deny) in self._overwrites.get(channel.id, {}).items()
        ]

    # ---- REST ------------------------------------------------------------------------------

    async def api_get_thread_member(self, call: ApiCall) -> Any:
        """Get Thread Member: the member object, or 404 Unknown Member when not in it."""
        thread = self._channel_param(call)
        self._check_may_view(thread)
        user_id = int(call.params["user_id"])
        members = self._members_of(thread) if thread.type == CHANNEL_PRIVATE_THREAD else set()
        if user_id not in members:
            raise unknown_member()
        return {
            "id": str(thread.id),
            "user_id": str(user_id),
            "join_timestamp": self.joined_at,
            "flags": 0,
        }

    async def api_list_joined_private_archived_threads(self, call: ApiCall) -> Any:
        """The archived private threads of a channel that the bot is in, newest first
        (resources/channel#list-joined-private-archived-threads); needs Read Message
        History. ``{"threads", "members", "has_more"}``."""
        channel = self._channel_param(call)
        if not self._check_may_read(channel) & P_READ_HISTORY:
            raise missing_permissions()
        joined = [
            c for c in reversed(self.threads_in(channel))
            if c.type == CHANNEL_PRIVATE_THREAD and self.thread_state(c)["archived"]
            and self.bot_user.id in self._members_of(c)
        ]  # fmt: skip
        threads = [self._channel_json(c) for c in joined]
        return {"threads": threads, "members": [], "has_more": False}
