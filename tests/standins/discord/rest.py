"""The REST API v10: recording, token check, fault answers, and one handler per
``ROUTES`` row; and the CDN that serves attachments."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from tests.standins.discord.errors import (
    DiscordError,
    cannot_reply_without_history,
    empty_message,
    error,
    form_error,
    invalid_form_body,
    missing_access,
    missing_permissions,
    not_found,
    unauthorized,
    unknown_channel,
    unknown_member,
    unknown_message,
    unknown_user,
)
from tests.standins.discord.objects import ApiCall, FakeChannel, InjectedFault, json_response
from tests.standins.discord.protocol import (
    API_PREFIX,
    BODY_KEY,
    CDN_GONE,
    CHANNEL_ANNOUNCEMENT,
    CHANNEL_TEXT,
    FILES_KEY,
    FLAG_HAS_THREAD,
    GATEWAY_PATH,
    MAX_THREAD_NAME,
    P_ADD_REACTIONS,
    P_ATTACH_FILES,
    P_CONNECT,
    P_CREATE_PUBLIC_THREADS,
    P_READ_HISTORY,
    P_SEND_IN_THREADS,
    P_SEND_MESSAGES,
    P_VIEW_CHANNEL,
    UNAUTHENTICATED_PATHS,
    VOICE_TYPES,
)
from tests.standins.recording import RecordedRequest

log = logging.getLogger(__name__)


class RestApi:
    """The REST routes, their plumbing and the CDN."""

    # ---- REST plumbing -----------------------------------------------------------------

    @web.middleware
    async def _api_middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Record every request; answer unknown routes 404 and bad tokens 401.

        Interaction callbacks and interaction webhooks need no token (as on Discord).

        The gateway's websocket upgrade passes straight through (it records itself).
        """
        if request.path.rstrip("/") == GATEWAY_PATH and request.match_info.http_exception is None:
            return await handler(request)
        if request.match_info.get("attachment_id") is not None:
            return await handler(request)  # the CDN: no token, recorded in ``downloads``
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            json=None,
            headers=dict(request.headers),
            query=dict(request.query),
        )
        try:
            record.json, record.files = await self._read_body(request)
            if request.match_info.http_exception is not None:
                raise not_found()
            path = request.path.removeprefix(API_PREFIX)
            needs_token = path == request.path or not UNAUTHENTICATED_PATHS.fullmatch(path)
            if needs_token and request.headers.get("Authorization") != f"Bot {self.bot_token}":
                raise unauthorized()
            request[BODY_KEY], request[FILES_KEY] = record.json, record.files
            fault = self._take_fault(request)
            if fault is None or fault.take_effect:
                try:
                    response = await handler(request)
                except DiscordError as failure:
                    if fault is None:
                        raise
                    log.debug("request failed before its injected fault: %r", failure)
            if fault is not None:
                response = await self._fault_response(fault, record)
        except DiscordError as failure:
            response = json_response(failure.body, failure.status)
        except Exception as failure:  # a bug in the stand-in: make it visible to tests
            log.exception("stand-in route failed: %s %s", request.method, request.path)
            self.errors.append(failure)
            response = json_response({"message": "500: Internal Server Error", "code": 0}, 500)
        record.status = response.status
        await self.record(record)
        return response

    def _take_fault(self, request: web.Request) -> InjectedFault | None:
        """The first injected fault this request matches (one use of it), if any."""
        route = request.match_info.route.resource
        pattern = route.canonical if route is not None else ""
        name = self._route_names.get((request.method, pattern))
        path = request.path.removeprefix(API_PREFIX)
        channel_id = request.match_info.get("channel_id")
        for fault in self._faults:
            if fault.matches(request.method, name, path, channel_id):
                fault.remaining -= 1
                return fault
        return None

    async def _fault_response(self, fault: InjectedFault, record: RecordedRequest) -> web.Response:
        record.fault = fault.description
        fault.hits.append(record)
        if fault.hang:
            await self.notify()  # a test may wait for the request to be hanging
            await self._stopping.wait()
        if fault.delay:
            await asyncio.sleep(fault.delay)
        response = web.Response(status=fault.status, body=fault.body, headers=fault.headers)
        response.content_type = fault.content_type.split(";")[0]
        if "charset=" in fault.content_type:
            response.charset = fault.content_type.split("charset=")[1]
        return response

    @staticmethod
    async def _read_body(request: web.Request) -> tuple[Any, list[dict[str, Any]]]:
        """The JSON body (for multipart: its payload_json part) and any uploaded files."""
        if not request.can_read_body:
            return None, []
        if request.content_type == "multipart/form-data":
            payload, files = None, []
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if part.name == "payload_json":
                    payload = json.loads(await part.text())  # type: ignore[union-attr]
                else:
                    data = await part.read()  # type: ignore[union-attr]
                    files.append(
                        {
                            "field": part.name,
                            "filename": part.filename,  # type: ignore[union-attr]
                            "content_type": part.headers.get("Content-Type"),
                            "size": len(data),
                            "data": data,
                        }
                    )
            return payload, files
        text = await request.text()
        if not text:
            return None, []
        try:
            return json.loads(text), []
        except ValueError:
            raise error(400, 50109, "The request body contains invalid JSON.") from None

    def _route(self, method: Callable[[ApiCall], Awaitable[Any]]) -> web.Handler:
        """Wrap an ``api_*`` method as an aiohttp handler."""

        async def handler(request: web.Request) -> web.StreamResponse:
            call = ApiCall(
                request=request,
                params=dict(request.match_info),
                body=request[BODY_KEY],
                query=dict(request.query),
                files=request[FILES_KEY],
            )
            result = await method(call)
            return web.Response(status=204) if result is None else json_response(result)

        return handler

    def _rest_view(self, message: dict[str, Any]) -> dict[str, Any]:
        """A message as the bot's REST calls see it (content hidden if the portal says so)."""
        return self._render(message, rest=True, content_intent=self.message_content_intent_enabled)

    def _channel_param(self, call: ApiCall) -> FakeChannel:
        try:
            return self.channel(int(call.params["channel_id"]))
        except (KeyError, ValueError):
            raise unknown_channel() from None

    def _message_param(self, channel: FakeChannel, call: ApiCall) -> dict[str, Any]:
        try:
            return self._messages[channel.id][int(call.params["message_id"])]
        except (KeyError, ValueError):
            raise unknown_message() from None

    def _check_may_view(self, channel: FakeChannel) -> int:
        """The bot's permissions in ``channel``; 403 / 50001 if it cannot see it."""
        permissions = self.bot_permissions(channel)
        if not permissions & P_VIEW_CHANNEL:
            raise missing_access()
        if channel.type in VOICE_TYPES and not permissions & P_CONNECT:
            raise missing_access()  # a voice channel's chat also needs Connect
        return permissions

    def _check_may_write(self, channel: FakeChannel, *also: int) -> int:
        """50001 without View Channel; 50013 without Send Messages (in Threads) or ``also``."""
        permissions = self._check_may_view(channel)
        need = P_SEND_IN_THREADS if channel.is_thread else P_SEND_MESSAGES
        for bit in (need, *also):
            if not permissions & bit:
                raise missing_permissions()
        return permissions

    def _check_may_read(self, channel: FakeChannel) -> int:
        """50001 if the bot cannot see the channel (or ``forbid_read`` says so)."""
        if channel.id in self._forbidden_read:
            raise missing_access()
        return self._check_may_view(channel)

    # ---- REST routes (one per ROUTES row) ----------------------------------------------

    async def api_get_current_user(self, call: ApiCall) -> Any:
        return self._bot_user_json()

    def _bot_user_json(self) -> dict[str, Any]:
        """The bot's own user object (GET /users/@me, READY)."""
        return {
            **self.bot_user.to_json(),
            "verified": True,
            "mfa_enabled": False,
            "email": None,
            "locale": "en-US",
            "premium_type": 0,
            "bio": "",
        }

    async def api_get_user(self, call: ApiCall) -> Any:
        try:
            return self.user(int(call.params["user_id"])).to_json()
        except (KeyError, ValueError):
            raise unknown_user() from None

    async def api_get_gateway(self, call: ApiCall) -> Any:
        return {"url": self.gateway_url}

    async def api_get_gateway_bot(self, call: ApiCall) -> Any:
        return {
            "url": self.gateway_url,
            "shards": self.recommended_shards,
            "session_start_limit": {
                "total": 1000,
                "remaining": 1000 - len(self.identifies),
                "reset_after": 86_400_000,
                "max_concurrency": self.max_concurrency,
            },
        }

    async def api_get_application(self, call: ApiCall) -> Any:
        return {
            "id": str(self.bot_user.id),
            "name": self.bot_user.username,
            "icon": None,
            "description": "",
            "summary": "",
            "type": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "owner": self.owner.to_json(),
            "team": None,
            "flags": self._application_flags(),
            "bot": self.bot_user.to_json(),
            "redirect_uris": [],
            "interactions_endpoint_url": None,
            "approximate_guild_count": 1,
        }

    async def api_get_member(self, call: ApiCall) -> Any:
        try:
            user = self.user(int(call.params["user_id"]))
        except (KeyError, ValueError):
            raise unknown_member() from None
        try:
            self.guild_of(int(call.params["guild_id"]))
        except (KeyError, ValueError):
            raise error(404, 10004, "Unknown Guild") from None
        return self._member_json(user)

    async def api_get_channel(self, call: ApiCall) -> Any:
        channel = self._channel_param(call)
        self._check_may_view(channel)
        return self._channel_json(channel)

    async def api_create_dm(self, call: ApiCall) -> Any:
        try:
            recipient = self.user(int((call.body or {})["recipient_id"]))
        except (KeyError, ValueError, TypeError):
            raise invalid_form_body(
                "recipient_id", "BASE_TYPE_REQUIRED", "This field is required"
            ) from None
        return self._channel_json(self.dm_channel(recipient))

    async def api_list_messages(self, call: ApiCall) -> Any:
        """Newest first, like Discord, for ``before``, ``after`` and ``around`` alike.

        ``after`` gives the ``limit`` messages right after it (discord.py's
        ``history(after=...)`` reverses each page and pages on from ``data[0]``).
        """
        channel = self._channel_param(call)
        permissions = self._check_may_read(channel)
        try:
            limit = int(call.query.get("limit", 50))
        except ValueError:
            raise invalid_form_body("limit", "NUMBER_TYPE_COERCE", "Value is not int.") from None
        if not 1 <= limit <= 100:
            raise invalid_form_body("limit", "NUMBER_TYPE_MAX", "Must be between 1 and 100.")
        ids = sorted(self._messages[channel.id])  # oldest first
        if "around" in call.query:
            around = int(call.query["around"])
            older = [i for i in ids if i < around][-(limit // 2) :] if limit > 1 else []
            rest = [i for i in ids if i >= around][: limit - len(older)]
            chosen = older + rest
        elif "after" in call.query:
            chosen = [i for i in ids if i > int(call.query["after"])][:limit]
        else:
            before = int(call.query.get("before", 1 << 63))
            chosen = [i for i in ids if i < before][-limit:]
        if not permissions & P_READ_HISTORY:
            return []  # "no messages will be returned" (resources/message#get-channel-messages)
        return [self._rest_view(self._messages[channel.id][i]) for i in reversed(chosen)]

    async def api_get_message(self, call: ApiCall) -> Any:
        channel = self._channel_param(call)
        if not self._check_may_read(channel) & P_READ_HISTORY:
            raise missing_permissions()
        return self._rest_view(self._message_param(channel, call))

    async def api_create_message(self, call: ApiCall) -> Any:
        """Validate like Discord, store, echo MESSAGE_CREATE, return the message."""
        channel = self._channel_param(call)
        permissions = self._check_may_write(channel)
        if channel.is_thread:
            await self._before_post_in_thread(channel, self.bot_user)
        payload = call.body if isinstance(call.body, dict) else {}
        if payload.get("message_reference") and not permissions & P_READ_HISTORY:
            raise cannot_reply_without_history()
        if call.files and not permissions & P_ATTACH_FILES:
            raise missing_permissions()
        if channel.is_dm and self.user(channel.recipient_id or 0).bot:
            raise error(400, 50007, "Cannot send messages to this user")
        self._validate_message_fields(payload)
        self._moderate(payload)
        attachments = self._uploaded(channel, call.files)
        has_other = any(payload.get(k) for k in ("embeds", "sticker_ids", "components"))
        if not payload.get("content") and not has_other and not attachments:
            raise empty_message()

        nonce = payload.get("nonce")
        if nonce is not None and payload.get("enforce_nonce"):
            for earlier in self._messages[channel.id].values():
                if earlier.get("nonce") == nonce and earlier["author"]["id"] == str(
                    self.bot_user.id
                ):
                    return self._render(earlier, rest=True)

        reference = self._checked_reference(channel, payload.get("message_reference"))
        message = self._new_message(
            channel,
            self.bot_user,
            payload.get("content") or "",
            reference=reference,
            attachments=attachments,
            embeds=payload.get("embeds") or [],
            components=payload.get("components") or [],
            flags=payload.get("flags") or 0,
            tts=bool(payload.get("tts")),
            nonce=nonce,
            allowed_mentions=payload.get("allowed_mentions"),
            sticker_ids=payload.get("sticker_ids") or [],
        )
        self._store(message)
        await self._dispatch_message_event("MESSAGE_CREATE", message)
        await self.notify()
        return self._render(message, rest=True)

    async def api_edit_message(self, call: ApiCall) -> Any:
        channel = self._channel_param(call)
        message = self._message_param(channel, call)
        self._check_may_write(channel)
        if channel.is_thread and self.thread_state(channel)["archived"]:
            raise error(400, 50083, "Thread is archived")
        if channel.is_thread and self.thread_state(channel)["locked"]:
            if not self._may_manage_threads(self.bot_user, channel):
                raise missing_permissions()
        if message["author"]["id"] != str(self.bot_user.id):
            raise error(403, 50005, "Cannot edit a message authored by another user")
        payload = call.body if isinstance(call.body, dict) else {}
        self._validate_message_fields(payload)
        self._moderate(payload)
        new_files = self._uploaded(channel, call.files)
        edited = copy.deepcopy(message)
        self._apply_edit(edited, payload, new_files)
        if not (
            edited["content"] or edited["embeds"] or edited["attachments"] or edited["components"]
        ):
            raise empty_message()
        message.clear()
        message.update(edited)
        await self._dispatch_message_event("MESSAGE_UPDATE", message)
        await self.notify()
        return self._render(message, rest=True)

    async def api_delete_message(self, call: ApiCall) -> Any:
        channel = self._channel_param(call)
        message = self._message_param(channel, call)
        if channel.is_dm and message["author"]["id"] != str(self.bot_user.id):
            raise error(403, 50003, "Cannot execute action on a DM channel")
        del self._messages[channel.id][int(message["id"])]
        event = {"id": message["id"], "channel_id": str(channel.id)}
        if channel.guild_id is not None:
            event["guild_id"] = str(channel.guild_id)
        await self.dispatch("MESSAGE_DELETE", event)
        await self.notify()
        return None

    async def api_start_thread(self, call: ApiCall) -> Any:
        """Start a public thread from a message (resources/channel#start-thread-from-message).

        Like Discord: only in text and announcement channels (else 400 / 50024); needs
        Create Public Threads (403 / 50013); ``name`` 1-100 characters (50035);
        ``auto_archive_duration`` one of 60, 1440, 4320, 10080; one thread per message
        (400 / 160004). The thread gets the message's id; the message gets the
        HAS_THREAD flag (MESSAGE_UPDATE); THREAD_CREATE goes to the bot."""
        channel = self._channel_param(call)
        permissions = self._check_may_view(channel)
        if channel.type not in (CHANNEL_TEXT, CHANNEL_ANNOUNCEMENT):
            raise error(400, 50024, "Cannot execute action on this channel type")
        message = self._message_param(channel, call)
        if not permissions & P_CREATE_PUBLIC_THREADS:
            raise missing_permissions()
        payload = call.body if isinstance(call.body, dict) else {}
        name = payload.get("name")
        if not isinstance(name, str) or not name.strip():
            raise form_error(["name"], "BASE_TYPE_REQUIRED", "This field is required")
        if len(name) > MAX_THREAD_NAME:
            raise form_error(
                ["name"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."
            )
        duration = payload.get("auto_archive_duration", 1440)
        if duration not in (60, 1440, 4320, 10080):
            raise form_error(
                ["auto_archive_duration"],
                "BASE_TYPE_CHOICES",
                "Value must be one of {60, 1440, 4320, 10080}.",
            )
        if message["flags"] & FLAG_HAS_THREAD:
            raise error(400, 160004, "A thread has already been created for this message")
        thread = self._add_thread(channel, int(message["id"]), name, self.bot_user)
        message["flags"] |= FLAG_HAS_THREAD
        await self._dispatch_message_event("MESSAGE_UPDATE", message)
        await self.dispatch("THREAD_CREATE", {**self._channel_json(thread), "newly_created": True})
        await self.notify()
        return self._channel_json(thread)

    async def api_add_reaction(self, call: ApiCall) -> Any:
        """Needs Read Message History and Add Reactions (not Send Messages)."""
        channel = self._channel_param(call)
        permissions = self._check_may_view(channel)
        if not (permissions & P_READ_HISTORY and permissions & P_ADD_REACTIONS):
            raise missing_permissions()
        self._message_param(channel, call)
        return None

    async def api_trigger_typing(self, call: ApiCall) -> Any:
        channel = self._channel_param(call)
        self._check_may_write(channel)
        return None

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        """An attachment's bytes, as Discord's CDN serves them (no token needed)."""
        record = RecordedRequest(
            method=request.method, path=request.path, json=None,
            headers=dict(request.headers), query=dict(request.query),
        )  # fmt: skip
        self.downloads.append(record)
        fault = next(
            (f for f in self._download_faults if f.matches("GET", None, request.path, None)), None
        )
        if fault is not None:
            fault.remaining -= 1
            response = await self._fault_response(fault, record)
        else:
            found = None
            with contextlib.suppress(ValueError):
                found = self._files.get(int(request.match_info["attachment_id"]))
            if found is None or str(found[0]) != request.match_info["channel_id"]:
                response = web.Response(status=404, text=CDN_GONE)
            else:
                file = found[1]
                response = web.Response(body=file.data)
                response.content_type = (file.media_type() or "application/octet-stream").split(
                    ";"
                )[0]
        record.status = response.status
        await self.notify()
        return response
