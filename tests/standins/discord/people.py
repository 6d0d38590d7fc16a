"""What people (and Discord) do in the world, and what tests inspect afterwards."""

from __future__ import annotations

import base64
import copy
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tests.standins.discord.objects import FakeAttachment, FakeChannel, FakeUser, InteractionRecord
from tests.standins.discord.protocol import (
    ALL_MENTIONS,
    API_PREFIX,
    ATTACHMENT_SIZE_LIMIT,
    CHANNEL_CATEGORY,
    CHANNEL_FORUM,
    COMPONENT_ACTION_ROW,
    COMPONENT_BUTTON,
    CONTEXT_BOT_DM,
    CONTEXT_GUILD,
    FLAG_HAS_THREAD,
    INTERACTION_APPLICATION_COMMAND,
    INTERACTION_AUTOCOMPLETE,
    INTERACTION_MESSAGE_COMPONENT,
    MESSAGE_DEFAULT,
    MESSAGE_USER_JOIN,
)
from tests.standins.recording import RecordedRequest


class People:
    """What people do (say, edit, delete, run commands) and what the bot did."""

    # ---- driving the bot: what people (and Discord) do --------------------------------

    async def user_says(
        self,
        channel: FakeChannel | str | int,
        user: FakeUser | str | int,
        content: str,
        *,
        mention_bot: bool = False,
        mention_roles: Sequence[str | int] = (),
        reply_to: dict[str, Any] | str | int | None = None,
        ping_reply: bool = True,
        attachments: Sequence[FakeAttachment | str] = (),
        deliver: bool = True,
        resolve_reply: bool = True,
        embeds: Sequence[dict[str, Any]] = (),
    ) -> dict[str, Any]:
        """``user`` posts ``content`` in ``channel``; the bot gets MESSAGE_CREATE.

        ``mention_bot`` puts ``<@BOT_ID>`` in front of the content unless it is there.
        ``mention_roles`` (names in ``roles`` or ids; "bot" is the bot's managed role,
        which Discord's client offers next to the bot when someone types "@ChatBot")
        puts ``<@&ROLE_ID>`` in front for each role not already in the content; every
        role mentioned in the content is listed in ``mention_roles``, and the bot user
        is not in ``mentions`` for a role mention.
        ``reply_to`` (a message dict or id in the same channel) makes it a reply
        (type 19) that pings the replied-to author unless ``ping_reply`` is False.
        ``attachments`` are ``FakeAttachment``s (or bare file names: the name is the
        content, no content_type); they become attachment objects whose ``url`` and
        ``proxy_url`` this server serves (see ``downloads``, ``fail_downloads``), e.g.
        ``attachments=[FakeAttachment("cat.png", png, width=64, height=48)]``.
        ``deliver=False`` only stores the message (history the bot never saw live);
        otherwise a bot must be connected. ``resolve_reply=False`` leaves
        ``referenced_message`` out of every view of the reply, as Discord does when it
        did not fetch the target (the bot must GET it). ``embeds`` are embed objects (an
        alert bot's message). Returns the full message as stored.
        """
        where, author = self.channel(channel), self.user(user)
        if where.type == CHANNEL_FORUM:
            raise ValueError("a forum takes posts, not messages: use user_posts_in_forum")
        if where.is_thread and deliver:
            await self._before_post_in_thread(where, author)
        for role in reversed(mention_roles):
            role_mention = f"<@&{self.role(role)}>"
            if role_mention not in content:
                content = f"{role_mention} {content}"
        if mention_bot and self.bot_user.mention not in content:
            content = f"{self.bot_user.mention} {content}"
        reference = None
        if reply_to is not None:
            target_id = int(reply_to["id"] if isinstance(reply_to, dict) else reply_to)
            if target_id not in self._messages[where.id]:
                raise KeyError(f"no message {target_id} in {where.key}")
            reference = {"type": 0, "message_id": str(target_id), "channel_id": str(where.id)}
            if where.guild_id is not None:
                reference["guild_id"] = str(where.guild_id)
        files = [
            self._attachment_json(
                where,
                file
                if isinstance(file, FakeAttachment)
                else FakeAttachment(file, file.encode(), guess_content_type=False),
            )
            for file in attachments
        ]
        message = self._new_message(
            where,
            author,
            content,
            reference=reference,
            attachments=files,
            # None: Discord's default, which pings the replied-to author too.
            allowed_mentions=None if ping_reply else {**ALL_MENTIONS, "replied_user": False},
            embeds=embeds,
        )
        if not resolve_reply:
            self._unresolved_replies.add(int(message["id"]))
        return await self._post_as_user(message, deliver)

    async def deliver(self, message: dict[str, Any]) -> None:
        """Send MESSAGE_CREATE now for ``message``, stored earlier with ``deliver=False``,
        rendered as Discord renders it now (a reply whose target was deleted since gets
        ``referenced_message: null``, as when the target goes while the reply is sent)."""
        self._require_connected_bot()
        await self._dispatch_message_event("MESSAGE_CREATE", self._stored_message(message))
        await self.notify()

    async def user_forwards(
        self,
        channel: FakeChannel | str | int,
        user: FakeUser | str | int,
        source: dict[str, Any],
        *,
        deliver: bool = True,
    ) -> dict[str, Any]:
        """``user`` forwards the message ``source`` (from any channel, even one the bot
        cannot see) to ``channel``: a message with empty content, a ``message_reference``
        of type 1 (FORWARD) and ``message_snapshots: [{"message": {...}}]`` carrying the
        source's content, embeds, attachments and timestamps, as Discord sends it
        (resources/message#message-reference-types). Returns the stored message."""
        where, author = self.channel(channel), self.user(user)
        if where.is_thread and deliver:
            await self._before_post_in_thread(where, author)
        reference = {
            "type": 1,
            "message_id": source["id"],
            "channel_id": source["channel_id"],
        }
        if "guild_id" in source:
            reference["guild_id"] = source["guild_id"]
        message = self._new_message(where, author, "", message_type=MESSAGE_DEFAULT)
        message["message_reference"] = reference
        message["message_snapshots"] = [self._snapshot(source)]
        return await self._post_as_user(message, deliver)

    async def user_starts_thread(
        self, user: FakeUser | str | int, message: dict[str, Any], name: str = "a thread"
    ) -> FakeChannel:
        """``user`` starts a public thread from ``message`` (as Discord's client does):
        the thread gets the message's id and ``user`` as owner, the message the
        HAS_THREAD flag (MESSAGE_UPDATE), and the bot THREAD_CREATE."""
        stored = self._stored_message(message)
        parent = self.channel(int(stored["channel_id"]))
        if stored["flags"] & FLAG_HAS_THREAD:
            raise ValueError(f"a thread was already started from message {stored['id']}")
        thread = self._add_thread(parent, int(stored["id"]), name, self.user(user))
        stored["flags"] |= FLAG_HAS_THREAD
        await self._dispatch_message_event("MESSAGE_UPDATE", stored)
        await self.dispatch("THREAD_CREATE", {**self._channel_json(thread), "newly_created": True})
        await self.notify()
        return thread

    async def crowd_says(
        self,
        channel: FakeChannel | str | int,
        lines: Sequence[tuple[FakeUser | str | int, str]],
        *,
        mention_bot: bool = False,
    ) -> list[dict[str, Any]]:
        """Each ``(user, content)`` of ``lines`` is posted in ``channel`` at once, in order.

        Like ``user_says`` for every line (stored, then MESSAGE_CREATE each), but built
        first and sent back to back without waking waiters in between, so hundreds go
        out in a fraction of a second, as in a busy channel. Returns the messages.
        """
        where = self.channel(channel)
        self._require_connected_bot()
        messages = []
        for user, content in lines:
            if mention_bot and self.bot_user.mention not in content:
                content = f"{self.bot_user.mention} {content}"
            message = self._new_message(where, self.user(user), content)
            self._store(message)
            messages.append(message)
        for message in messages:
            await self._dispatch_message_event("MESSAGE_CREATE", message)
        await self.notify()
        return [self._render(m, rest=False) for m in messages]

    async def burst(
        self,
        channel: FakeChannel | str | int,
        count: int,
        *,
        text: str = "message {n} from {user}",
        first: int = 0,
        mention_bot: bool = False,
    ) -> list[dict[str, Any]]:
        """``count`` different members ("user_{first}" ... "user_{first + count - 1}")
        each say ``text`` (formatted with ``n`` and ``user``) in ``channel`` at once::

            said = await standin.burst("general", 500, mention_bot=True)
        """
        lines = [
            (f"user_{first + n}", text.format(n=n, user=f"user_{first + n}")) for n in range(count)
        ]
        return await self.crowd_says(channel, lines, mention_bot=mention_bot)

    async def user_dms(
        self, user: FakeUser | str | int, content: str, *, deliver: bool = True
    ) -> dict[str, Any]:
        """``user`` sends the bot a direct message (no guild_id, content always visible)."""
        return await self.user_says(self.dm_channel(user), user, content, deliver=deliver)

    async def system_message(
        self,
        channel: FakeChannel | str | int = "general",
        user: FakeUser | str | int = "alice",
        *,
        message_type: int = MESSAGE_USER_JOIN,
        content: str = "",
        deliver: bool = True,
    ) -> dict[str, Any]:
        """A message of a non-default type, e.g. 7 ("alice joined the server")."""
        message = self._new_message(
            self.channel(channel), self.user(user), content, message_type=message_type
        )
        return await self._post_as_user(message, deliver)

    async def user_edits(
        self, message: dict[str, Any] | str | int, content: str, *, deliver: bool = True
    ) -> dict[str, Any]:
        """The author of ``message`` edits it; the bot gets MESSAGE_UPDATE.

        As on Discord (events/gateway-events#message-update) the event carries the whole
        message as MESSAGE_CREATE would, with ``edited_timestamp`` set, ``tts`` false and
        mentions parsed again; the stored history shows the edit. discord.py fires
        ``on_message_edit`` only for messages in its cache, ``on_raw_message_edit``
        always. ``deliver=False`` edits the history only (done while the bot was away).
        """
        stored = self._stored_message(message)
        if deliver:
            self._require_connected_bot()
        self._apply_edit(stored, {"content": content})
        stored["tts"] = False
        if deliver:
            await self._dispatch_message_event("MESSAGE_UPDATE", stored)
        await self.notify()
        return self._render(stored, rest=False)

    async def user_deletes(
        self, message: dict[str, Any] | str | int, *, deliver: bool = True
    ) -> dict[str, Any]:
        """``message`` is deleted (by its author or a moderator: Discord does not say who).

        It leaves the history; the bot gets MESSAGE_DELETE ``{id, channel_id, guild_id}``
        (events/gateway-events#message-delete); replies to it keep their
        ``message_reference`` and get ``referenced_message: null``. discord.py fires
        ``on_message_delete`` only for cached messages, ``on_raw_message_delete`` always.
        Returns the event; ``deliver=False`` deletes without telling the bot.
        """
        stored = self._stored_message(message)
        if deliver:
            self._require_connected_bot()
        channel = self.channel(int(stored["channel_id"]))
        del self._messages[channel.id][int(stored["id"])]
        event = {"id": stored["id"], "channel_id": str(channel.id)}
        if channel.guild_id is not None:
            event["guild_id"] = str(channel.guild_id)
        if deliver:
            await self.dispatch("MESSAGE_DELETE", event)
        await self.notify()
        return event

    async def bulk_delete(
        self,
        channel: FakeChannel | str | int,
        messages: Sequence[dict[str, Any] | str | int],
        *,
        deliver: bool = True,
    ) -> dict[str, Any]:
        """A moderator (or a moderation bot) deletes ``messages`` of ``channel`` at once.

        They leave the history; the bot gets one MESSAGE_DELETE_BULK ``{ids, channel_id,
        guild_id}`` (events/gateway-events#message-delete-bulk); discord.py fires
        ``on_bulk_message_delete`` (cached ones) and ``on_raw_bulk_message_delete``.
        Guild channels only, 2 to 100 messages, as Discord's bulk delete allows.
        """
        where = self.channel(channel)
        if where.guild_id is None:
            raise ValueError("bulk deletion exists only in guild channels")
        if not 2 <= len(messages) <= 100:
            raise ValueError("Discord bulk-deletes 2 to 100 messages at a time")
        stored = [self._stored_message(m) for m in messages]
        if any(int(m["channel_id"]) != where.id for m in stored):
            raise ValueError(f"every message must be in {where.key}")
        if deliver:
            self._require_connected_bot()
        for message in stored:
            del self._messages[where.id][int(message["id"])]
        event = {
            "ids": [m["id"] for m in stored],
            "channel_id": str(where.id),
            "guild_id": str(where.guild_id),
        }
        if deliver:
            await self.dispatch("MESSAGE_DELETE_BULK", event)
        await self.notify()
        return event

    def _stored_message(self, message: dict[str, Any] | str | int) -> dict[str, Any]:
        message_id = int(message["id"] if isinstance(message, dict) else message)
        stored = self._find_message(message_id)
        if stored is None:
            raise KeyError(f"no message {message_id}")
        return stored

    async def user_runs_command(
        self,
        channel: FakeChannel | str | int,
        user: FakeUser | str | int,
        name: str,
        options: Mapping[str, Any] | list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """``user`` runs the slash command ``/name`` in ``channel``: INTERACTION_CREATE.

        Only what Discord's client would offer can be run (else KeyError): a synced
        command, guild commands in their guild, global ones in the guild and, unless
        their ``contexts`` (or ``dm_permission``) exclude it, in the bot's DM with
        ``user``. A member lacking the command's ``default_member_permissions`` gets
        PermissionError (Discord hides the command from them).
        ``options`` maps option names to values (str, int, float, bool; for user and
        channel options a name, id or Fake* object, resolved as Discord does); a list is
        sent as the raw ``options`` array. A subcommand is named by its path, as a user
        types it: ``"settings persona"`` or ``"group sub command"``; its options are
        sent nested in the subcommand (group) options, as Discord does. Returns the
        interaction as dispatched: pass it to ``wait_for_interaction_response`` /
        ``interaction_responses``.
        """
        where, who, command, leaf, nest = self._command_invoked(channel, user, name)
        raw_options, resolved = self._interaction_options(
            leaf, options, in_guild=where.guild_id is not None
        )
        return await self._dispatch_interaction(
            INTERACTION_APPLICATION_COMMAND, where, who, command, nest(raw_options), resolved
        )

    async def user_types_option(
        self,
        channel: FakeChannel | str | int,
        user: FakeUser | str | int,
        name: str,
        focused: str,
        typed: str,
        options: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``user`` types ``typed`` into the autocomplete option ``focused`` of ``/name``
        (a path, as for ``user_runs_command``) in ``channel``, with the other ``options``
        filled in so far: the APPLICATION_COMMAND_AUTOCOMPLETE interaction (type 4).

        As on Discord, the focused option carries ``"focused": true`` and the text typed
        (a string, whatever the option's type), and required options may be missing.
        Raises KeyError for an option that does not exist or has no autocomplete.
        Returns the interaction as dispatched (for ``wait_for_autocomplete``).
        """
        where, who, command, leaf, nest = self._command_invoked(channel, user, name)
        spec = next((o for o in leaf.get("options", []) if o["name"] == focused), None)
        if spec is None or not spec.get("autocomplete"):
            raise KeyError(f"/{name} has no autocomplete option {focused!r}")
        raw_options, resolved = self._interaction_options(
            leaf, options, in_guild=where.guild_id is not None, partial=True
        )
        raw_options.append({"name": focused, "type": spec["type"], "value": typed, "focused": True})
        return await self._dispatch_interaction(
            INTERACTION_AUTOCOMPLETE, where, who, command, nest(raw_options), resolved
        )

    def _command_invoked(
        self, channel: FakeChannel | str | int, user: FakeUser | str | int, name: str
    ) -> tuple[
        FakeChannel,
        FakeUser,
        dict[str, Any],
        dict[str, Any],
        Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
    ]:
        """Where, who, the command and the (sub)command ``name`` names, and how to nest
        its options; raises as ``user_runs_command`` says."""
        name, *path = name.split()
        where, who = self.channel(channel), self.user(user)
        if where.type == CHANNEL_CATEGORY:
            raise ValueError("commands run in text channels, threads and DMs")
        if where.is_dm and where.recipient_id != who.id:
            raise ValueError(f"{who.key} is not in {where.key}")
        self._require_connected_bot()
        command = self._command_for(where, who, name)
        leaf, nest = self._subcommand(command, path)
        return where, who, command, leaf, nest

    async def press(
        self,
        message: dict[str, Any] | str | int,
        button: str,
        user: FakeUser | str | int,
    ) -> dict[str, Any]:
        """``user`` presses ``button`` (its ``custom_id``, or its label) on ``message``:
        INTERACTION_CREATE of type 3 (MESSAGE_COMPONENT) as Discord sends it, with
        ``data.custom_id`` and ``data.component_type`` 2, the presser's ``member`` (with
        roles and permissions) in a guild or ``user`` in a DM, the ``message`` as it is
        now, and a fresh ``token``. The bot answers once, within 3 s: type 7 edits the
        message, 6 acknowledges it (an edit of @original may follow), 4 posts a message
        (flag 64: only the presser sees it); a second answer is refused (40060).
        Raises KeyError when the message has no such enabled button, ValueError when the
        user is not in the DM. Returns the interaction (for ``interaction_responses``).
        """
        stored = self._stored_message(message)
        where, who = self.channel(int(stored["channel_id"])), self.user(user)
        if where.is_dm and where.recipient_id != who.id:
            raise ValueError(f"{who.key} is not in {where.key}")
        self._require_connected_bot()
        found = _button(stored.get("components") or [], button)
        data = {"custom_id": found["custom_id"], "component_type": COMPONENT_BUTTON}
        payload = self._interaction_payload(INTERACTION_MESSAGE_COMPONENT, where, who, data)
        payload["message"] = self._render(stored, rest=True)
        return await self._send_interaction(payload, where, who)

    async def _dispatch_interaction(
        self,
        kind: int,
        where: FakeChannel,
        who: FakeUser,
        command: dict[str, Any],
        raw_options: list[dict[str, Any]],
        resolved: dict[str, Any],
    ) -> dict[str, Any]:
        """Send INTERACTION_CREATE of type ``kind`` for ``command``; the payload sent."""
        data: dict[str, Any] = {
            "id": command["id"],
            "name": command["name"],
            "type": command["type"],
        }
        if "guild_id" in command:
            data["guild_id"] = command["guild_id"]  # discord.py looks guild commands up by it
        if raw_options:
            data["options"] = raw_options
        if resolved:
            data["resolved"] = resolved
        payload = self._interaction_payload(kind, where, who, data)
        return await self._send_interaction(payload, where, who)

    def _interaction_payload(
        self, kind: int, where: FakeChannel, who: FakeUser, data: dict[str, Any]
    ) -> dict[str, Any]:
        """An interaction of type ``kind`` with ``data``, by ``who`` in ``where``."""
        in_guild = where.guild_id is not None
        interaction_id = self._snowflake()
        secret = f"interaction:{interaction_id}:{uuid.uuid4().hex}{uuid.uuid4().hex}"
        payload: dict[str, Any] = {
            "id": str(interaction_id),
            "application_id": str(self.application_id),
            "type": kind,
            "data": data,
            "channel_id": str(where.id),
            "channel": self._interaction_channel_json(where, who),
            "token": base64.urlsafe_b64encode(secret.encode()).decode().rstrip("="),
            "version": 1,
            "app_permissions": str(self._app_permissions(where)),
            "locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(where.guild_id) if in_guild else "0"},
            "context": CONTEXT_GUILD if in_guild else CONTEXT_BOT_DM,
            "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
        }
        if in_guild:
            payload.update(
                guild_id=str(where.guild_id),
                guild={"id": str(where.guild_id), "locale": "en-US", "features": []},
                guild_locale="en-US",
                member={**self._member_json(who), "permissions": str(self._permissions(who))},
            )
        else:
            payload["user"] = who.to_json()
        return payload

    async def _send_interaction(
        self, payload: dict[str, Any], where: FakeChannel, who: FakeUser
    ) -> dict[str, Any]:
        self._interactions[int(payload["id"])] = InteractionRecord(payload, where, who)
        await self.dispatch("INTERACTION_CREATE", payload)
        await self.notify()
        return copy.deepcopy(payload)

    # ---- inspecting what the bot did ---------------------------------------------------

    def messages(self, channel: FakeChannel | str | int) -> list[dict[str, Any]]:
        """Every message in ``channel``, oldest first, as the REST API returns them."""
        stored = self._messages[self.channel(channel).id]
        return [self._render(stored[i], rest=True) for i in sorted(stored)]

    def bot_messages(self, channel: FakeChannel | str | int) -> list[dict[str, Any]]:
        """The bot's messages in ``channel`` that still exist, oldest first, as edited."""
        bot_id = str(self.bot_user.id)
        return [m for m in self.messages(channel) if m["author"]["id"] == bot_id]

    def requests_to(
        self, method: str, path: str, channel: FakeChannel | str | int | None = None
    ) -> list[RecordedRequest]:
        """Recorded requests with this method whose path (under /api/v10) matches.

        ``path`` is a regular expression matched against the whole path; with
        ``channel`` given, ``{channel_id}`` in it is replaced by that channel's id.
        """
        if channel is not None:
            path = path.replace("{channel_id}", str(self.channel(channel).id))
        pattern = re.compile(re.escape(API_PREFIX) + path)
        return [r for r in self.requests if r.method == method and pattern.fullmatch(r.path)]

    def posts(self, channel: FakeChannel | str | int) -> list[RecordedRequest]:
        """POST /channels/{id}/messages requests for ``channel`` (successful or not)."""
        return self.requests_to("POST", "/channels/{channel_id}/messages", channel)

    def edits(self, channel: FakeChannel | str | int) -> list[RecordedRequest]:
        """PATCH /channels/{id}/messages/{mid} requests for ``channel``."""
        return self.requests_to("PATCH", r"/channels/{channel_id}/messages/\d+", channel)

    def typing_requests(self, channel: FakeChannel | str | int) -> list[RecordedRequest]:
        """POST /channels/{id}/typing requests for ``channel``."""
        return self.requests_to("POST", "/channels/{channel_id}/typing", channel)

    def registered_commands(self, guild: int | str | None = None) -> list[dict[str, Any]]:
        """The application commands as Discord stores them: global ones, or ``guild``'s."""
        return copy.deepcopy(self._commands.get(None if guild is None else int(guild), []))

    def interaction_responses(
        self, interaction: dict[str, Any] | int | str | None = None
    ) -> list[dict[str, Any]]:
        """What the bot answered to interactions (or to ``interaction``), in order.

        One entry per successful call: ``kind`` is "callback" (the initial response;
        ``type`` 4 or 5), "followup", "edit" or "delete"; ``content``, ``flags``,
        ``ephemeral`` and ``deferred`` (still "thinking") describe the message after the
        call; ``message_id``, ``channel_id``, ``interaction_id``, ``command`` and the
        request ``payload`` too. Ephemeral answers are here but not in ``messages()``.
        """
        wanted = None if interaction is None else self._interaction_id_of(interaction)
        return [
            copy.deepcopy(entry)
            for entry in self._interaction_log
            if wanted is None or entry["interaction_id"] == wanted
        ]

    async def wait_for_interaction_response(
        self,
        interaction: dict[str, Any] | int | str,
        timeout: float = 2.0,
        *,
        deferred: bool = False,
    ) -> dict[str, Any]:
        """The first answer to ``interaction`` (an ``interaction_responses`` entry).

        A bare deferral does not count unless ``deferred``: then this waits for the
        followup or edit that fills in the "thinking" message.
        """
        wanted = self._interaction_id_of(interaction)

        def answer() -> dict[str, Any] | None:
            for entry in self._interaction_log:
                if entry["interaction_id"] != wanted or entry["kind"] == "delete":
                    continue
                if deferred or not entry["deferred"]:
                    return copy.deepcopy(entry)
            return None

        return await self.wait_for(answer, timeout)

    async def wait_for_autocomplete(
        self, interaction: dict[str, Any] | int | str, timeout: float = 2.0
    ) -> list[dict[str, Any]]:
        """The ``choices`` the bot suggested for ``interaction`` (``user_types_option``)."""
        wanted = self._interaction_id_of(interaction)

        def answered() -> dict[str, Any] | None:
            for entry in self._interaction_log:
                if entry["interaction_id"] == wanted and entry["kind"] == "autocomplete":
                    return entry
            return None

        return copy.deepcopy((await self.wait_for(answered, timeout))["choices"])


def _button(rows: list[dict[str, Any]], wanted: str) -> dict[str, Any]:
    """The enabled button whose custom_id (or else label) is ``wanted`` in ``rows``."""
    buttons = [
        b
        for row in rows
        if row.get("type") == COMPONENT_ACTION_ROW
        for b in row.get("components", [])
        if b.get("type") == COMPONENT_BUTTON and "custom_id" in b
    ]
    for key in ("custom_id", "label"):
        for found in buttons:
            if found.get(key) == wanted:
                if found.get("disabled"):
                    raise KeyError(f"the button {wanted!r} is disabled")
                return found
    raise KeyError(f"no button {wanted!r} on the message (has {[b.get('label') for b in buttons]})")
