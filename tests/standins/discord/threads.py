"""Threads and forum posts: starting, archiving, locking and deleting them."""

from __future__ import annotations

from typing import Any

from tests.standins.discord.errors import missing_permissions
from tests.standins.discord.objects import FakeChannel, FakeUser
from tests.standins.discord.protocol import (
    _OPEN_THREAD,
    CHANNEL_FORUM,
    CHANNEL_PUBLIC_THREAD,
    MAX_THREAD_NAME,
    P_MANAGE_THREADS,
)


class Threads:
    """Threads and forum posts."""

    # ---- threads and forum posts ----------------------------------------------------------

    def threads_in(self, parent: FakeChannel | str | int) -> list[FakeChannel]:
        """The threads of ``parent`` (a text or forum channel), oldest first."""
        where = self.channel(parent)
        found = [c for c in self.channels.values() if c.is_thread and c.parent_id == where.id]
        return sorted(found, key=lambda c: c.id)

    def thread_state(self, thread: FakeChannel | str | int) -> dict[str, bool]:
        """``{"archived": ..., "locked": ...}`` of ``thread`` now."""
        return dict(self._thread_state.get(self.channel(thread).id, _OPEN_THREAD))

    async def user_posts_in_forum(
        self,
        forum: FakeChannel | str | int,
        user: FakeUser | str | int,
        title: str,
        content: str,
        *,
        mention_bot: bool = False,
    ) -> tuple[FakeChannel, dict[str, Any]]:
        """``user`` creates a post titled ``title`` in the forum channel ``forum``.

        As on Discord, the post is a public thread (type 11) named ``title`` whose
        starter message (``content``) is inside it and has the thread's id; the bot gets
        THREAD_CREATE (``newly_created``) and then MESSAGE_CREATE. Returns the thread and
        the starter message."""
        where, author = self.channel(forum), self.user(user)
        if where.type != CHANNEL_FORUM:
            raise ValueError(f"{where.key} is not a forum channel")
        if not 1 <= len(title) <= MAX_THREAD_NAME:
            raise ValueError("a post's title has 1-100 characters")
        self._require_connected_bot()
        if mention_bot and self.bot_user.mention not in content:
            content = f"{self.bot_user.mention} {content}"
        thread_id = self._snowflake()
        thread = self._add_thread(where, thread_id, title, author)
        message = self._new_message(thread, author, content, message_id=thread_id)
        self._store(message)
        await self.dispatch("THREAD_CREATE", {**self._channel_json(thread), "newly_created": True})
        await self._dispatch_message_event("MESSAGE_CREATE", message)
        await self.notify()
        return thread, self._render(message, rest=False)

    async def archive_thread(
        self, thread: FakeChannel | str | int, *, locked: bool = False
    ) -> None:
        """Archive ``thread`` (and lock it if ``locked``), as auto-archiving or a moderator
        would; the bot gets THREAD_UPDATE. A person's next message unarchives it unless it
        is locked (see ``user_says``)."""
        await self._set_thread_state(self.channel(thread), archived=True, locked=locked)

    async def lock_thread(self, thread: FakeChannel | str | int) -> None:
        """A moderator locks ``thread`` (it stays open): only members with Manage Threads
        may post in it now; the bot (without it) gets 403 / 50013. THREAD_UPDATE."""
        await self._set_thread_state(self.channel(thread), archived=False, locked=True)

    async def delete_thread(self, thread: FakeChannel | str | int) -> None:
        """Delete ``thread`` and its messages; the bot gets THREAD_DELETE, and every REST
        call on it then answers 404 / 10003 Unknown Channel."""
        where = self.channel(thread)
        if not where.is_thread:
            raise ValueError(f"{where.key} is not a thread")
        del self.channels[where.key]
        self._channels_by_id.pop(where.id, None)
        self._messages.pop(where.id, None)
        self._thread_state.pop(where.id, None)
        event = {
            "id": str(where.id),
            "guild_id": str(where.guild_id),
            "parent_id": str(where.parent_id),
            "type": where.type,
        }
        await self.dispatch("THREAD_DELETE", event)
        await self.notify()

    def _add_thread(
        self, parent: FakeChannel, thread_id: int, name: str, owner: FakeUser
    ) -> FakeChannel:
        thread = FakeChannel(
            f"thread-{thread_id}", thread_id, CHANNEL_PUBLIC_THREAD, name,
            guild_id=parent.guild_id, parent_id=parent.id, owner_id=owner.id,
        )  # fmt: skip
        self.channels[thread.key] = thread
        self._messages[thread.id] = {}
        return thread

    async def _set_thread_state(self, thread: FakeChannel, **state: bool) -> None:
        if not thread.is_thread:
            raise ValueError(f"{thread.key} is not a thread")
        self._thread_state[thread.id] = {**self.thread_state(thread), **state}
        await self.dispatch("THREAD_UPDATE", self._channel_json(thread))
        await self.notify()

    def _may_manage_threads(self, user: FakeUser, thread: FakeChannel) -> bool:
        if user.id == self.bot_user.id:
            return bool(self.bot_permissions(thread) & P_MANAGE_THREADS)
        return bool(self._permissions(user) & P_MANAGE_THREADS)

    async def _before_post_in_thread(self, thread: FakeChannel, author: FakeUser) -> None:
        """Discord's rules for a post in a thread: a locked thread takes posts only from
        members with Manage Threads; a post in an archived thread unarchives it."""
        state = self.thread_state(thread)
        if state["locked"] and not self._may_manage_threads(author, thread):
            if author.id == self.bot_user.id:
                raise missing_permissions()
            raise ValueError(f"{thread.key} is locked: only moderators may post in it")
        if state["archived"]:
            await self._set_thread_state(thread, archived=False)
