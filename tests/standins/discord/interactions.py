"""Interactions: dispatching slash commands and autocomplete, and the callback and
webhook routes the bot answers them with."""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tests.standins.discord.errors import (
    DiscordError,
    already_acknowledged,
    empty_message,
    form_error,
    invalid_webhook_token,
    nested_form_error,
    unknown_interaction,
    unknown_message,
    unknown_webhook,
)
from tests.standins.discord.objects import ApiCall, FakeChannel, FakeUser, InteractionRecord
from tests.standins.discord.protocol import (
    CALLBACK_AUTOCOMPLETE_RESULT,
    CALLBACK_CHANNEL_MESSAGE,
    CALLBACK_DEFERRED_CHANNEL_MESSAGE,
    CALLBACK_DEFERRED_UPDATE_MESSAGE,
    CALLBACK_UPDATE_MESSAGE,
    COMMAND_CHAT_INPUT,
    CONTEXT_BOT_DM,
    CONTEXT_GUILD,
    FLAG_EPHEMERAL,
    FLAG_LOADING,
    FLAG_SUPPRESS_EMBEDS,
    INTERACTION_APPLICATION_COMMAND,
    INTERACTION_AUTOCOMPLETE,
    INTERACTION_MESSAGE_COMPONENT,
    MAX_CHOICE_NAME,
    MAX_CHOICES,
    MESSAGE_CHAT_INPUT_COMMAND,
    MESSAGE_DEFAULT,
    MESSAGE_REPLY,
    OPTION_BOOLEAN,
    OPTION_CHANNEL,
    OPTION_INTEGER,
    OPTION_NUMBER,
    OPTION_STRING,
    OPTION_USER,
    P_ADMINISTRATOR,
    P_READ_HISTORY,
    P_VIEW_CHANNEL,
    SUBCOMMAND_TYPES,
)


class Interactions:
    """Slash command and autocomplete interactions and the bot's answers to them."""

    # ---- interactions --------------------------------------------------------------------

    def _command_for(self, where: FakeChannel, who: FakeUser, name: str) -> dict[str, Any]:
        """The registered chat input command ``/name`` as ``who`` may run it in ``where``."""

        def named(scope: int | None) -> list[dict[str, Any]]:
            return [
                c
                for c in self._commands.get(scope, [])
                if c["name"] == name and c["type"] == COMMAND_CHAT_INPUT
            ]

        context = CONTEXT_BOT_DM if where.is_dm else CONTEXT_GUILD
        usable = (named(where.guild_id) if where.guild_id is not None else []) + [
            c for c in named(None) if self._command_allowed_in(c, context)
        ]
        if not usable:
            anywhere = any(named(scope) for scope in self._commands)
            why = f"is not usable in {where.key}" if anywhere else "is not registered (not synced)"
            raise KeyError(f"/{name} {why}")
        command = usable[0]  # the guild's own command first, as Discord lists it
        required = command.get("default_member_permissions")
        if where.guild_id is not None and required is not None:
            have, need = self._permissions(who), int(required)
            if not (have & P_ADMINISTRATOR or (need and have & need == need)):
                raise PermissionError(f"{who.key} may not use /{name} (needs permissions {need})")
        return command

    @staticmethod
    def _command_allowed_in(command: dict[str, Any], context: int) -> bool:
        contexts = command.get("contexts")
        if contexts is not None:
            return context in contexts
        return context == CONTEXT_GUILD or bool(command.get("dm_permission", True))

    def _interaction_options(
        self,
        command: dict[str, Any],
        options: Mapping[str, Any] | list[dict[str, Any]] | None,
        *,
        in_guild: bool,
        partial: bool = False,
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """``data.options`` and ``data.resolved`` for the given option values (``partial``:
        a command still being typed, so required options may be missing)."""
        if options is None:
            options = {}
        if isinstance(options, list):
            return copy.deepcopy(options), {}
        specs = {o["name"]: o for o in command.get("options", [])}
        missing = [n for n, spec in specs.items() if spec.get("required") and n not in options]
        if missing and not partial:
            raise ValueError(f"/{command['name']} needs option(s) {missing}")
        out: list[dict[str, Any]] = []
        resolved: dict[str, Any] = {}
        for key, value in options.items():
            if key not in specs:
                raise KeyError(f"/{command['name']} has no option {key!r}")
            kind = specs[key]["type"]
            if kind == OPTION_USER:
                target = self.user(value)
                value = str(target.id)
                resolved.setdefault("users", {})[value] = target.to_json()
                if in_guild:
                    member = self._member_json(target, with_user=False)
                    member["permissions"] = str(self._permissions(target))
                    resolved.setdefault("members", {})[value] = member
            elif kind == OPTION_CHANNEL:
                place = self.channel(value)
                value = str(place.id)
                resolved.setdefault("channels", {})[value] = self._channel_json(place)
            elif kind not in (OPTION_STRING, OPTION_INTEGER, OPTION_BOOLEAN, OPTION_NUMBER):
                raise NotImplementedError(f"option type {kind}: pass options as a raw list")
            out.append({"name": key, "type": kind, "value": value})
        return out, resolved

    @staticmethod
    def _subcommand(
        command: dict[str, Any], path: Sequence[str]
    ) -> tuple[dict[str, Any], Callable[[list[dict[str, Any]]], list[dict[str, Any]]]]:
        """The (sub)command ``path`` names under ``command``, and how to nest its options
        (a subcommand's options go inside it, and it inside its group)."""
        leaf, names = command, []
        for part in path:
            found = next(
                (
                    o
                    for o in leaf.get("options", [])
                    if o["name"] == part and o["type"] in SUBCOMMAND_TYPES
                ),
                None,
            )
            if found is None:
                raise KeyError(f"/{command['name']} has no subcommand {' '.join(path)!r}")
            leaf = found
            names.append((part, found["type"]))
        if any(o["type"] in SUBCOMMAND_TYPES for o in leaf.get("options", [])):
            raise ValueError(f"/{command['name']} {' '.join(path)} needs a subcommand")

        def nest(options: list[dict[str, Any]]) -> list[dict[str, Any]]:
            for part, kind in reversed(names):
                options = [{"name": part, "type": kind, "options": options}]
            return options

        return leaf, nest

    def _interaction_channel_json(self, where: FakeChannel, who: FakeUser) -> dict[str, Any]:
        """The interaction's ``channel``: the channel, with the user's permissions there."""
        data = self._channel_json(where)
        if where.guild_id is not None:
            data["permissions"] = str(self.user_permissions(who, where))
        return data

    def _app_permissions(self, where: FakeChannel) -> int:
        """The bot's permissions in ``where`` as Discord computes them for an interaction."""
        permissions = self.bot_permissions(where)
        if where.id in self._forbidden_read:
            permissions &= ~(P_VIEW_CHANNEL | P_READ_HISTORY)
        return permissions

    @staticmethod
    def _interaction_id_of(interaction: dict[str, Any] | int | str) -> str:
        return str(interaction["id"] if isinstance(interaction, dict) else int(interaction))

    def _interaction_for_callback(self, call: ApiCall) -> InteractionRecord:
        try:
            record = self._interactions[int(call.params["interaction_id"])]
        except (KeyError, ValueError):
            raise unknown_interaction() from None
        if record.token != call.params["token"]:
            raise unknown_interaction()
        if record.callback_type is not None:
            raise already_acknowledged()
        if time.monotonic() - record.created > self.interaction_response_deadline:
            raise unknown_interaction()  # the 3 s are over: Discord forgot it
        return record

    def _interaction_for_webhook(self, call: ApiCall) -> InteractionRecord:
        if call.params["application_id"] != str(self.application_id):
            raise unknown_webhook()
        token = call.params["token"]
        record = next((r for r in self._interactions.values() if r.token == token), None)
        if record is None or time.monotonic() - record.created > self.interaction_token_lifetime:
            raise invalid_webhook_token()
        if record.callback_type is None or record.payload["type"] == INTERACTION_AUTOCOMPLETE:
            raise unknown_webhook()  # no initial response yet, or suggestions (no message)
        return record

    def _webhook_message(self, record: InteractionRecord, call: ApiCall) -> dict[str, Any]:
        """The interaction's message named by ``{message_id}`` ("@original" or an id)."""
        raw = call.params["message_id"]
        message_id = record.original_id if raw == "@original" else None
        with contextlib.suppress(ValueError):
            message_id = message_id or int(raw)
        message = record.messages.get(message_id or 0)
        if message is None or not (
            message["flags"] & FLAG_EPHEMERAL
            or int(message["id"]) in self._messages[record.channel.id]
        ):
            raise unknown_message()
        return message

    def _interaction_message(
        self,
        record: InteractionRecord,
        payload: dict[str, Any],
        files: Sequence[dict[str, Any]],
        *,
        flags: int,
        reference: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A message sent through the interaction: by the bot, via the app's webhook."""
        attachments = self._uploaded(record.channel, files)
        message = self._new_message(
            record.channel,
            self.bot_user,
            payload.get("content") or "",
            message_type=MESSAGE_REPLY if reference else _response_type(record),
            reference=reference,
            attachments=attachments,
            embeds=payload.get("embeds") or [],
            components=payload.get("components") or [],
            flags=flags,
            tts=bool(payload.get("tts")),
            allowed_mentions=payload.get("allowed_mentions"),
        )
        command = record.payload["data"]
        metadata: dict[str, Any] = {
            "id": str(record.id),
            "type": record.payload["type"],
            "user": record.user.to_json(),
            "authorizing_integration_owners": dict(
                record.payload["authorizing_integration_owners"]
            ),
        }
        if reference is not None:
            metadata["original_response_message_id"] = str(record.original_id)
        if record.payload["type"] == INTERACTION_MESSAGE_COMPONENT:
            metadata["interacted_message_id"] = record.payload["message"]["id"]
            message.update(
                webhook_id=str(self.application_id),
                application_id=str(self.application_id),
                interaction_metadata=metadata,
            )
            record.messages[int(message["id"])] = message
            return message
        metadata.update(name=command["name"], command_type=command["type"])
        legacy: dict[str, Any] = {
            "id": str(record.id),
            "type": INTERACTION_APPLICATION_COMMAND,
            "name": command["name"],
            "user": record.user.to_json(),
        }
        if record.channel.guild_id is not None:
            legacy["member"] = self._member_json(record.user, with_user=False)
        message.update(
            webhook_id=str(self.application_id),
            application_id=str(self.application_id),
            interaction_metadata=metadata,
            interaction=legacy,
        )
        record.messages[int(message["id"])] = message
        return message

    async def _publish_interaction_message(self, message: dict[str, Any]) -> None:
        """Non-ephemeral messages join the channel's history and go out as MESSAGE_CREATE."""
        if not message["flags"] & FLAG_EPHEMERAL:
            self._store(message)
            await self._dispatch_message_event("MESSAGE_CREATE", message)
        else:  # only its user sees it; its buttons can still be pressed
            self._ephemeral[int(message["id"])] = message

    async def _fill_in(
        self,
        message: dict[str, Any],
        payload: dict[str, Any],
        files: Sequence[dict[str, Any]],
    ) -> None:
        """Edit an interaction message (PATCH, or the first followup after a deferral).

        Only SUPPRESS_EMBEDS of ``flags`` can change; EPHEMERAL stays as it was and
        LOADING ("thinking") goes. Completing a deferral does not mark it edited.
        """
        self._validate_message_fields(payload)
        new_files = self._uploaded(self.channel(int(message["channel_id"])), files)
        was_loading = bool(message["flags"] & FLAG_LOADING)
        edited = copy.deepcopy(message)
        self._apply_edit(edited, {k: v for k, v in payload.items() if k != "flags"}, new_files)
        suppress = payload["flags"] if payload.get("flags") is not None else message["flags"]
        edited["flags"] = message["flags"] & FLAG_EPHEMERAL | suppress & FLAG_SUPPRESS_EMBEDS
        if was_loading:
            edited["edited_timestamp"] = None
        if not (
            edited["content"] or edited["embeds"] or edited["attachments"] or edited["components"]
        ):
            raise empty_message()
        message.clear()
        message.update(edited)
        if not message["flags"] & FLAG_EPHEMERAL:
            await self._dispatch_message_event("MESSAGE_UPDATE", message)

    def _log_interaction_response(
        self,
        record: InteractionRecord,
        kind: str,
        message: dict[str, Any],
        payload: Any,
        callback_type: int | None = None,
    ) -> None:
        self._interaction_log.append(
            {
                "interaction_id": str(record.id),
                "command": record.payload["data"].get("name"),
                "custom_id": record.payload["data"].get("custom_id"),
                "kind": kind,
                "type": callback_type,
                "content": message["content"],
                "flags": message["flags"],
                "ephemeral": bool(message["flags"] & FLAG_EPHEMERAL),
                "deferred": bool(message["flags"] & FLAG_LOADING),
                "message_id": message["id"],
                "channel_id": message["channel_id"],
                "payload": copy.deepcopy(payload),
            }
        )

    async def api_interaction_callback(self, call: ApiCall) -> Any:
        """The initial response, once and within 3 s: type 4 (a message) or 5 (deferred).

        With ``?with_response=true`` (discord.py always sends ``with_response=1`` and
        reads the body) the answer is the interaction callback response object, else 204.
        """
        record = self._interaction_for_callback(call)
        body = call.body if isinstance(call.body, dict) else {}
        kind = body.get("type")
        if record.payload["type"] == INTERACTION_AUTOCOMPLETE:
            return await self._autocomplete_result(record, call, body)
        component = record.payload["type"] == INTERACTION_MESSAGE_COMPONENT
        if component and kind in (CALLBACK_DEFERRED_UPDATE_MESSAGE, CALLBACK_UPDATE_MESSAGE):
            return await self._update_message(record, call, body)
        if kind not in (CALLBACK_CHANNEL_MESSAGE, CALLBACK_DEFERRED_CHANNEL_MESSAGE):
            if kind in (9, 12):  # modal, launch activity: valid, but not modelled here
                raise NotImplementedError(f"interaction callback type {kind}")
            allowed = "{4, 5, 6, 7, 9, 12}" if component else "{4, 5, 9, 12}"
            raise form_error(["type"], "BASE_TYPE_CHOICES", f"Value must be one of {allowed}.")
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        flags = int(data.get("flags") or 0)
        if kind == CALLBACK_CHANNEL_MESSAGE:
            try:
                self._validate_message_fields(data)
            except DiscordError as failure:
                raise nested_form_error(failure, "data") from None
            if not (
                data.get("content")
                or any(data.get(k) for k in ("embeds", "components", "poll"))
                or call.files
            ):
                raise empty_message()
            allowed = FLAG_EPHEMERAL | FLAG_SUPPRESS_EMBEDS | 1 << 12  # SUPPRESS_NOTIFICATIONS
            message = self._interaction_message(record, data, call.files, flags=flags & allowed)
        else:  # "ChatBot is thinking...": an empty message with the LOADING flag
            message = self._interaction_message(
                record, {}, (), flags=flags & FLAG_EPHEMERAL | FLAG_LOADING
            )
        record.callback_type, record.original_id = kind, int(message["id"])
        await self._publish_interaction_message(message)
        return await self._callback_answer(record, call, message, kind)

    async def _callback_answer(
        self, record: InteractionRecord, call: ApiCall, message: dict[str, Any], kind: int
    ) -> Any:
        """Record the initial response of type ``kind`` and answer the callback: with
        ``?with_response``, the interaction callback response object (the message it
        created or changed, for types 4 and 7), else 204."""
        self._log_interaction_response(record, "callback", message, call.body, kind)
        await self.notify()
        if call.query.get("with_response", "").lower() not in ("true", "1"):
            return None
        resource: dict[str, Any] = {"type": kind}
        if kind in (CALLBACK_CHANNEL_MESSAGE, CALLBACK_UPDATE_MESSAGE):
            resource["message"] = self._render(message, rest=True)
        return {
            "interaction": {
                "id": str(record.id),
                "type": record.payload["type"],
                "response_message_id": message["id"],
                "response_message_loading": kind == CALLBACK_DEFERRED_CHANNEL_MESSAGE,
                "response_message_ephemeral": bool(message["flags"] & FLAG_EPHEMERAL),
            },
            "resource": resource,
        }

    async def _update_message(
        self, record: InteractionRecord, call: ApiCall, body: dict[str, Any]
    ) -> Any:
        """The answer to a button press that changes the pressed message itself:
        DEFERRED_UPDATE_MESSAGE (6, nothing changes yet; @original is that message, to
        edit later) or UPDATE_MESSAGE (7, ``data`` edits it as a PATCH would, echoed as
        MESSAGE_UPDATE)."""
        message = self._find_message(int(record.payload["message"]["id"]))
        if message is None:
            raise unknown_message()
        kind = body["type"]
        if kind == CALLBACK_UPDATE_MESSAGE:
            data = body.get("data") if isinstance(body.get("data"), dict) else {}
            try:
                self._validate_message_fields(data)
            except DiscordError as failure:
                raise nested_form_error(failure, "data") from None
            edited = copy.deepcopy(message)
            self._apply_edit(edited, {k: v for k, v in data.items() if k != "flags"})
            if not any(edited[k] for k in ("content", "embeds", "attachments", "components")):
                raise empty_message()
            message.clear()
            message.update(edited)
            if not message["flags"] & FLAG_EPHEMERAL:  # the gateway never shows those
                await self._dispatch_message_event("MESSAGE_UPDATE", message)
        record.callback_type, record.original_id = kind, int(message["id"])
        record.messages[int(message["id"])] = message
        return await self._callback_answer(record, call, message, kind)

    async def _autocomplete_result(
        self, record: InteractionRecord, call: ApiCall, body: dict[str, Any]
    ) -> Any:
        """The answer to an autocomplete interaction: only type 8, with ``data.choices``
        (at most 25; each ``name`` 1-100 characters and a ``value`` of the focused
        option's type, a string one 1-100 characters), as Discord checks them."""
        if body.get("type") != CALLBACK_AUTOCOMPLETE_RESULT:
            raise form_error(["type"], "BASE_TYPE_CHOICES", "Value must be one of {8}.")
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        choices = data.get("choices")
        if not isinstance(choices, list):
            raise form_error(["data", "choices"], "BASE_TYPE_REQUIRED", "This field is required")
        if len(choices) > MAX_CHOICES:
            raise form_error(
                ["data", "choices"],
                "BASE_TYPE_MAX_LENGTH",
                f"Must be {MAX_CHOICES} or fewer in length.",
            )
        focused = _focused_option(record.payload["data"].get("options", []))
        types = {OPTION_STRING: (str,), OPTION_INTEGER: (int,), OPTION_NUMBER: (int, float)}
        for index, choice in enumerate(choices):
            where = ["data", "choices", index]
            name = choice.get("name") if isinstance(choice, dict) else None
            value = choice.get("value") if isinstance(choice, dict) else None
            if not isinstance(name, str) or not 1 <= len(name) <= MAX_CHOICE_NAME:
                raise form_error(
                    [*where, "name"],
                    "BASE_TYPE_BAD_LENGTH",
                    f"Must be between 1 and {MAX_CHOICE_NAME} in length.",
                )
            wanted = types.get(focused["type"], (str,))
            if not isinstance(value, wanted) or isinstance(value, bool):
                raise form_error([*where, "value"], "BASE_TYPE_INVALID", "Invalid value.")
            if isinstance(value, str) and not 1 <= len(value) <= MAX_CHOICE_NAME:
                raise form_error(
                    [*where, "value"],
                    "BASE_TYPE_BAD_LENGTH",
                    f"Must be between 1 and {MAX_CHOICE_NAME} in length.",
                )
        record.callback_type = CALLBACK_AUTOCOMPLETE_RESULT
        self._interaction_log.append(
            {
                "interaction_id": str(record.id),
                "command": record.payload["data"]["name"],
                "kind": "autocomplete",
                "type": CALLBACK_AUTOCOMPLETE_RESULT,
                "choices": copy.deepcopy(choices),
                "content": "",
                "flags": 0,
                "ephemeral": False,
                "deferred": False,
                "message_id": None,
                "channel_id": str(record.channel.id),
                "payload": copy.deepcopy(call.body),
            }
        )
        await self.notify()
        if call.query.get("with_response", "").lower() not in ("true", "1"):
            return None
        return {
            "interaction": {"id": str(record.id), "type": INTERACTION_AUTOCOMPLETE},
            "resource": {"type": CALLBACK_AUTOCOMPLETE_RESULT},
        }

    async def api_create_followup(self, call: ApiCall) -> Any:
        """A followup (POST /webhooks/{app}/{token}); the message itself with ``?wait=true``.

        The first followup after a deferral fills in the "thinking" message and keeps
        the deferral's ephemerality (its own ephemeral flag is ignored), as on Discord;
        later ones are new messages replying to the original response.
        """
        record = self._interaction_for_webhook(call)
        payload = call.body if isinstance(call.body, dict) else {}
        self._validate_message_fields(payload)
        has_other = any(payload.get(k) for k in ("embeds", "components", "poll"))
        if not payload.get("content") and not has_other and not call.files:
            raise empty_message()
        original = record.messages.get(record.original_id or 0)
        if original is not None and original["flags"] & FLAG_LOADING:
            await self._fill_in(original, payload, call.files)
            message = original
        else:
            reference = {
                "type": 0,
                "message_id": str(record.original_id),
                "channel_id": str(record.channel.id),
            }
            if record.channel.guild_id is not None:
                reference["guild_id"] = str(record.channel.guild_id)
            allowed = FLAG_EPHEMERAL | FLAG_SUPPRESS_EMBEDS | 1 << 12
            flags = int(payload.get("flags") or 0) & allowed
            message = self._interaction_message(
                record, payload, call.files, flags=flags, reference=reference
            )
            await self._publish_interaction_message(message)
        self._log_interaction_response(record, "followup", message, call.body)
        await self.notify()
        if call.query.get("wait", "").lower() in ("true", "1"):
            return self._render(message, rest=True)
        return None

    async def api_get_webhook_message(self, call: ApiCall) -> Any:
        record = self._interaction_for_webhook(call)
        return self._render(self._webhook_message(record, call), rest=True)

    async def api_edit_webhook_message(self, call: ApiCall) -> Any:
        """PATCH @original (or a followup): edits it, MESSAGE_UPDATE unless ephemeral."""
        record = self._interaction_for_webhook(call)
        message = self._webhook_message(record, call)
        payload = call.body if isinstance(call.body, dict) else {}
        await self._fill_in(message, payload, call.files)
        self._log_interaction_response(record, "edit", message, call.body)
        await self.notify()
        return self._render(message, rest=True)

    async def api_delete_webhook_message(self, call: ApiCall) -> Any:
        record = self._interaction_for_webhook(call)
        message = self._webhook_message(record, call)
        message_id = int(message["id"])
        if message["flags"] & FLAG_EPHEMERAL:
            del record.messages[message_id]
        else:
            del self._messages[record.channel.id][message_id]
            event = {"id": message["id"], "channel_id": message["channel_id"]}
            if record.channel.guild_id is not None:
                event["guild_id"] = str(record.channel.guild_id)
            await self.dispatch("MESSAGE_DELETE", event)
        self._log_interaction_response(record, "delete", message, None)
        await self.notify()
        return None


def _focused_option(options: list[dict[str, Any]]) -> dict[str, Any]:
    """The option marked ``focused`` in an autocomplete interaction's (nested) options."""
    for option in options:
        if option.get("focused"):
            return option
        if option["type"] in SUBCOMMAND_TYPES:
            with contextlib.suppress(LookupError):
                return _focused_option(option.get("options", []))
    raise LookupError("no focused option")


def _response_type(record: InteractionRecord) -> int:
    """The type of the message an initial response creates: a command's (20), or a
    plain message for a component interaction."""
    if record.payload["type"] == INTERACTION_MESSAGE_COMPONENT:
        return MESSAGE_DEFAULT
    return MESSAGE_CHAT_INPUT_COMMAND
