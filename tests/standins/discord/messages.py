"""Messages as Discord stores, validates and renders them."""

from __future__ import annotations

import contextlib
import copy
import time
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from tests.standins.discord.errors import form_error, invalid_form_body
from tests.standins.discord.objects import FakeAttachment, FakeChannel, FakeUser, iso_timestamp
from tests.standins.discord.protocol import (
    ALL_MENTIONS,
    BUTTON_LINK,
    BUTTON_PREMIUM,
    CDN_MEDIA_PREFIX,
    COMPONENT_ACTION_ROW,
    COMPONENT_BUTTON,
    FLAG_HAS_THREAD,
    INTENT_DIRECT_MESSAGES,
    INTENT_GUILD_MESSAGES,
    INTENT_MESSAGE_CONTENT,
    MAX_BUTTON_LABEL,
    MAX_CONTENT_LENGTH,
    MAX_CUSTOM_ID,
    MAX_EMBEDS,
    MAX_ROW_BUTTONS,
    MAX_ROWS,
    MESSAGE_DEFAULT,
    MESSAGE_REPLY,
    P_MENTION_EVERYONE,
    ROLE_MENTION,
    USER_MENTION,
)


class Messages:
    """Messages: validation, mentions, attachments, storage and rendering."""

    # ---- messages ------------------------------------------------------------------------

    @staticmethod
    def _validate_message_fields(payload: dict[str, Any]) -> None:
        """Field checks shared by create and edit (Discord's 400 / 50035 errors)."""
        content = payload.get("content")
        if content is not None and not isinstance(content, str):
            raise invalid_form_body("content", "BASE_TYPE_STRING", "Must be a string.")
        if content is not None and len(content) > MAX_CONTENT_LENGTH:
            limit = f"Must be {MAX_CONTENT_LENGTH} or fewer in length."
            raise invalid_form_body("content", "BASE_TYPE_MAX_LENGTH", limit)
        if len(payload.get("embeds") or []) > MAX_EMBEDS:
            raise invalid_form_body(
                "embeds", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_EMBEDS} or fewer in length."
            )
        _validate_components(payload.get("components") or [])
        allowed = payload.get("allowed_mentions") or {}
        for kind in ("users", "roles"):
            if kind in allowed.get("parse", []) and allowed.get(kind):
                raise invalid_form_body(
                    "allowed_mentions",
                    "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                    f'parse:["{kind}"] and {kind}: [ids...] are mutually exclusive.',
                )

    def _checked_reference(
        self, channel: FakeChannel, reference: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """The message_reference to store; 400 if its message is missing (and must exist)."""
        if not reference:
            return None
        target_channel = int(reference.get("channel_id") or channel.id)
        message_id = reference.get("message_id")
        exists = (
            message_id is not None
            and target_channel == channel.id
            and int(message_id) in self._messages[channel.id]
        )
        if not exists:
            if reference.get("fail_if_not_exists", True) is False:
                return None  # Discord posts it as a plain message
            if target_channel != channel.id:
                raise invalid_form_body(
                    "message_reference",
                    "REPLIES_CANNOT_REFERENCE_OTHER_CHANNEL",
                    "Cannot reply to a message in a different channel",
                )
            raise invalid_form_body(
                "message_reference", "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message"
            )
        stored = {"type": 0, "message_id": str(message_id), "channel_id": str(channel.id)}
        if channel.guild_id is not None:
            stored["guild_id"] = str(channel.guild_id)
        return stored

    def _new_message(
        self,
        channel: FakeChannel,
        author: FakeUser,
        content: str,
        *,
        message_type: int | None = None,
        reference: dict[str, Any] | None = None,
        attachments: Sequence[dict[str, Any]] = (),
        embeds: Sequence[dict[str, Any]] = (),
        components: Sequence[dict[str, Any]] = (),
        flags: int = 0,
        tts: bool = False,
        nonce: str | int | None = None,
        allowed_mentions: dict[str, Any] | None = None,
        sticker_ids: Sequence[str] = (),
        message_id: int | None = None,
    ) -> dict[str, Any]:
        """A full message object in gateway form (guild_id and member for guild channels);
        ``message_id`` is given only to a forum post's starter message (the thread's id)."""
        message_id = message_id if message_id is not None else self._snowflake()
        message: dict[str, Any] = {
            "id": str(message_id),
            "channel_id": str(channel.id),
            "author": author.to_json(),
            "content": content,
            "timestamp": iso_timestamp(),
            "edited_timestamp": None,
            "tts": tts,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": list(attachments),
            "embeds": [{"type": "rich", **e} for e in embeds],
            "components": list(components),
            "sticker_items": [
                {"id": str(s), "name": "sticker", "format_type": 1} for s in sticker_ids
            ],
            "pinned": False,
            "type": message_type
            if message_type is not None
            else (MESSAGE_REPLY if reference else MESSAGE_DEFAULT),
            "flags": flags,
        }
        if nonce is not None:
            message["nonce"] = nonce
        if reference is not None:
            message["message_reference"] = reference
        if channel.guild_id is not None:
            message["guild_id"] = str(channel.guild_id)
            message["member"] = self._member_json(author, with_user=False)
        self._fill_mentions(message, allowed_mentions)
        return message

    def _fill_mentions(self, message: dict[str, Any], allowed: dict[str, Any] | None) -> None:
        """Set mentions / mention_roles / mention_everyone from the content.

        ``allowed`` is the message's allowed_mentions: None means everything the
        author may mention (Discord's default), including the replied-to author.
        """
        author = self.user(int(message["author"]["id"]))
        content = message["content"] or ""
        parse = set((allowed if allowed is not None else ALL_MENTIONS).get("parse", []))
        user_ids = {int(u) for u in (allowed or {}).get("users", [])}
        role_ids = {int(r) for r in (allowed or {}).get("roles", [])}

        mentioned: list[FakeUser] = []
        for raw in USER_MENTION.findall(content):
            with contextlib.suppress(KeyError):
                who = self.user(int(raw))
                if ("users" in parse or who.id in user_ids) and who not in mentioned:
                    mentioned.append(who)
        reference = message.get("message_reference")
        replied_user = allowed is None or allowed.get("replied_user", False)
        if reference and replied_user:
            target = self._find_message(int(reference["message_id"]))
            if target is not None:
                who = self.user(int(target["author"]["id"]))
                if who != author and who not in mentioned:
                    mentioned.append(who)

        in_guild = "guild_id" in message
        message["mentions"] = [
            {**u.to_json(), "member": self._member_json(u, with_user=False)}
            if in_guild
            else u.to_json()
            for u in mentioned
        ]
        known_roles = set(self.roles.values()) - {self.everyone_role_id}
        message["mention_roles"] = [
            raw
            for raw in dict.fromkeys(ROLE_MENTION.findall(content))
            if in_guild and int(raw) in known_roles and ("roles" in parse or int(raw) in role_ids)
        ]
        message["mention_everyone"] = bool(
            in_guild
            and ("@everyone" in content or "@here" in content)
            and "everyone" in parse
            and self._permissions(author) & P_MENTION_EVERYONE
        )

    def _apply_edit(
        self,
        message: dict[str, Any],
        payload: dict[str, Any],
        new_files: Sequence[dict[str, Any]] = (),
    ) -> None:
        """Change the fields ``payload`` names, as a PATCH does."""
        if "content" in payload:
            message["content"] = payload["content"] or ""
        if "embeds" in payload:
            message["embeds"] = [{"type": "rich", **e} for e in payload["embeds"] or []]
        if "components" in payload:
            message["components"] = payload["components"] or []
        if "flags" in payload and payload["flags"] is not None:
            message["flags"] = payload["flags"]
        if "attachments" in payload:
            keep = {str(a.get("id")) for a in payload["attachments"] or []}
            message["attachments"] = [a for a in message["attachments"] if a["id"] in keep]
        message["attachments"] += list(new_files)
        message["edited_timestamp"] = iso_timestamp()
        self._fill_mentions(message, payload.get("allowed_mentions"))

    def _attachment_json(self, channel: FakeChannel, file: FakeAttachment) -> dict[str, Any]:
        """An attachment object (resources/message#attachment-object) whose ``url`` (and
        ``proxy_url``) this server serves, signed and expiring in form like Discord's CDN
        links; the bytes are kept for the download."""
        attachment_id = self._snowflake()
        now = int(time.time())
        signature = uuid.uuid5(uuid.NAMESPACE_URL, str(attachment_id)).hex * 2
        query = f"?ex={now + 86400:x}&is={now:x}&hm={signature}&"
        path = f"attachments/{channel.id}/{attachment_id}/{quote(file.filename)}"
        data: dict[str, Any] = {
            "id": str(attachment_id),
            "filename": file.filename,
            "size": file.declared_size,
            "url": f"{self.url}/{path}{query}",
            "proxy_url": f"{self.url}/{CDN_MEDIA_PREFIX}/{path}{query}",
        }
        content_type = file.media_type()
        if content_type:
            data["content_type"] = content_type
        if file.width is not None and file.height is not None:
            data.update(width=file.width, height=file.height)
        if file.description is not None:
            data["description"] = file.description
        if file.duration_secs is not None:
            data["duration_secs"] = file.duration_secs
        self._files[attachment_id] = (channel.id, file)
        return data

    def _uploaded(
        self, channel: FakeChannel, files: Sequence[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Attachment objects for files the bot uploaded (multipart parts), served back."""
        return [
            self._attachment_json(
                channel,
                FakeAttachment(
                    f["filename"] or "file", f["data"], content_type=f["content_type"],
                    guess_content_type=False,
                ),
            )
            for f in files
        ]  # fmt: skip

    def _store(self, message: dict[str, Any]) -> None:
        channel_id, message_id = int(message["channel_id"]), int(message["id"])
        self._messages[channel_id][message_id] = message
        self._channel_of[message_id] = channel_id

    def _find_message(self, message_id: int) -> dict[str, Any] | None:
        # By index, not a scan of every channel: the benchmark opens 100,000 DM channels.
        channel_id = self._channel_of.get(message_id)
        return self._messages.get(channel_id, {}).get(message_id)  # None once deleted

    async def _post_as_user(self, message: dict[str, Any], deliver: bool) -> dict[str, Any]:
        if deliver:
            self._require_connected_bot()
        self._store(message)
        if deliver:
            await self._dispatch_message_event("MESSAGE_CREATE", message)
        await self.notify()
        return self._render(message, rest=False)

    def _require_connected_bot(self) -> None:
        if not self.connected:
            raise RuntimeError(
                "no bot is connected to the stand-in: await wait_until_ready() first, "
                "or pass deliver=False to only add the message to the channel's history"
            )

    def _render(
        self, message: dict[str, Any], *, rest: bool, content_intent: bool = True
    ) -> dict[str, Any]:
        """A copy of a stored message with ``referenced_message`` filled in.

        ``rest=True`` gives the REST form: no guild_id, member or mention members.
        ``content_intent=False`` shows a guild message as an app without the Message
        Content intent sees it.
        """
        out = copy.deepcopy(message)
        reference = message.get("message_reference")
        resolve = int(message["id"]) not in self._unresolved_replies
        if reference is not None and message["type"] == MESSAGE_REPLY and resolve:
            target = self._find_message(int(reference["message_id"]))
            out["referenced_message"] = None if target is None else self._render(target, rest=True)
        if message["flags"] & FLAG_HAS_THREAD and (thread := self._started_thread(message)):
            out["thread"] = self._channel_json(thread)  # as Discord includes it
        if not content_intent and "guild_id" in message:
            out = self._without_content(out)
            if out.get("referenced_message"):
                out["referenced_message"] = self._without_content(out["referenced_message"])
        if rest:
            out.pop("guild_id", None)
            out.pop("member", None)
            for mention in out["mentions"]:
                mention.pop("member", None)
        return out

    def _without_content(self, message: dict[str, Any]) -> dict[str, Any]:
        """A guild message with its content fields emptied, unless the bot may see them.

        Without the intent an app still sees its own messages and those mentioning it.
        """
        bot_id = str(self.bot_user.id)
        if message["author"]["id"] == bot_id or any(m["id"] == bot_id for m in message["mentions"]):
            return message
        hidden = {"content": "", "embeds": [], "attachments": [], "components": []}
        if message.get("message_snapshots"):  # a forward's content is its snapshots'
            hidden["message_snapshots"] = [
                {"message": {**snapshot["message"], **hidden}}
                for snapshot in message["message_snapshots"]
            ]
        return {**message, **hidden}

    def _started_thread(self, message: dict[str, Any]) -> FakeChannel | None:
        """The thread started from ``message`` (it has the message's id), if it exists."""
        with contextlib.suppress(KeyError):
            thread = self.channel(int(message["id"]))
            return thread if thread.is_thread else None
        return None

    def _snapshot(self, source: dict[str, Any]) -> dict[str, Any]:
        """A forward's snapshot of ``source``: the fields Discord copies (resources/message
        #message-snapshot-object): no author, no id, no channel."""
        copied = (
            "type", "content", "embeds", "attachments", "timestamp", "edited_timestamp",
            "flags", "mentions", "mention_roles", "sticker_items", "components",
        )  # fmt: skip
        return {"message": {key: copy.deepcopy(source[key]) for key in copied if key in source}}

    async def _dispatch_message_event(self, event: str, message: dict[str, Any]) -> bool:
        """Send MESSAGE_CREATE / MESSAGE_UPDATE to each session of the message's shard whose
        intents allow it; whether any was sent it."""
        guild_id = int(message["guild_id"]) if "guild_id" in message else None
        needed = INTENT_GUILD_MESSAGES if guild_id is not None else INTENT_DIRECT_MESSAGES
        sent = False
        for session in self._receivers(guild_id):
            if session.has(needed):
                content_intent = session.has(INTENT_MESSAGE_CONTENT)
                data = self._render(message, rest=False, content_intent=content_intent)
                sent = await self._send_dispatch(session, event, data) or sent
        return sent


def _validate_components(rows: list[dict[str, Any]]) -> None:
    """Discord's checks of a message's buttons (components/reference): at most 5 action
    rows of at most 5 buttons; a button other than a link has a ``custom_id`` of 1-100
    characters, unique in the message; a label is at most 80 characters. Other
    component types are passed through unchecked."""
    if len(rows) > MAX_ROWS:
        raise form_error(["components"], "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_ROWS} or fewer.")
    seen: set[str] = set()
    for r, row in enumerate(rows):
        if row.get("type") != COMPONENT_ACTION_ROW:
            continue
        buttons = row.get("components") or []
        if not 1 <= len(buttons) <= MAX_ROW_BUTTONS:
            where = ["components", r, "components"]
            raise form_error(where, "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length.")
        for b, button in enumerate(buttons):
            if button.get("type") != COMPONENT_BUTTON:
                continue
            where = ["components", r, "components", b]
            if len(button.get("label") or "") > MAX_BUTTON_LABEL:
                raise form_error([*where, "label"], "BASE_TYPE_MAX_LENGTH", "Must be 80 or fewer.")
            if button.get("style") in (BUTTON_LINK, BUTTON_PREMIUM):
                continue
            custom_id = button.get("custom_id")
            if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= MAX_CUSTOM_ID:
                raise form_error([*where, "custom_id"], "BASE_TYPE_REQUIRED", "Required.")
            if custom_id in seen:
                raise form_error(
                    [*where, "custom_id"], "COMPONENT_CUSTOM_ID_DUPLICATED", "Duplicate custom_id"
                )
            seen.add(custom_id)
