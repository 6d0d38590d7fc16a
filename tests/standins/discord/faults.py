"""Opt-in faults: permissions taken from the bot, refused or rate-limited REST calls,
failed downloads."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any

from tests.standins.discord.errors import error
from tests.standins.discord.objects import CLOUDFLARE_502_PAGE, FakeChannel, InjectedFault
from tests.standins.discord.protocol import ALL_PERMISSIONS, CDN_GONE
from tests.standins.recording import RecordedRequest

# Discord's messages for its moderation codes (topics/opcodes-and-status-codes).
MODERATION_MESSAGES = {
    200000: "Message was blocked by automatic moderation",
    200001: "Title was blocked by automatic moderation",
    240000: "Message blocked by harmful links filter",
}


class Faults:
    """The faults and situations a test can inject."""

    # ---- fault injection ---------------------------------------------------------------

    async def deliver_again(self, message: dict[str, Any] | str | int) -> bool:
        """Send the stored ``message``'s MESSAGE_CREATE once more, to every session of its
        shard, as Discord may deliver an event twice (an at-least-once gateway; a resumed
        session replays what it missed). Whether any session was sent it."""
        return await self._dispatch_message_event("MESSAGE_CREATE", self._stored_message(message))

    def forbid_read(self, channel: FakeChannel | str | int) -> None:
        """Reading ``channel`` over REST (history, one message) now gets 403 / 50001
        Missing Access, as when the bot lost View Channel there, while posting still works."""
        self._forbidden_read.add(self.channel(channel).id)

    def allow(self, channel: FakeChannel | str | int) -> None:
        """Undo ``forbid_read`` and ``deny(..., tell_bot=False)`` (silently);
        ``restore`` gives back what ``deny`` took and tells the bot."""
        self._hidden_denied.pop(self.channel(channel).id, None)
        self._forbidden_read.discard(self.channel(channel).id)

    async def deny(
        self,
        channel: FakeChannel | str | int,
        *permissions: str | int,
        tell_bot: bool = True,
    ) -> int:
        """Take ``permissions`` ("READ_MESSAGE_HISTORY", or bits) from the bot in ``channel``.

        As a moderator would: a member permission overwrite for the bot
        (``{"id": BOT_ID, "type": 1, "allow": "0", "deny": "65536"}``) in the channel's
        ``permission_overwrites``, in GUILD_CREATE and, if the bot is connected, in a
        CHANNEL_UPDATE now, so discord.py's ``channel.permissions_for(guild.me)`` agrees.
        Threads have no overwrites: deny on the parent channel (SEND_MESSAGES_IN_THREADS,
        READ_MESSAGE_HISTORY, ...); the thread inherits it. ``tell_bot=False`` keeps the
        overwrite secret (the bot's cache is stale), and works on threads too.

        REST then refuses like Discord (``bot_permissions`` has the result): without
        VIEW_CHANNEL every call on the channel gets 403 / 50001; without SEND_MESSAGES
        (SEND_MESSAGES_IN_THREADS in a thread) posting, editing and typing get 403 / 50013,
        and ATTACH_FILES, EMBED_LINKS, MENTION_EVERYONE go too (implicit permissions);
        without ATTACH_FILES uploads get 50013; without READ_MESSAGE_HISTORY a reply
        (``message_reference``) gets 403 / 160002 while a plain post works, GET messages
        answers ``[]`` (resources/message#get-channel-messages), one message and reactions
        50013. Returns the bits now denied in ``channel``::

            await standin.deny("general", "READ_MESSAGE_HISTORY")
        """
        where = self.channel(channel)
        bits = self._permission_bits(permissions)
        if where.is_dm or where.guild_id is None:
            raise ValueError("DMs have no permission overwrites")
        if not tell_bot:
            self._hidden_denied[where.id] = self._hidden_denied.get(where.id, 0) | bits
            return self._hidden_denied[where.id]
        if where.is_thread:
            raise ValueError(
                f"{where.key} is a thread: threads take their permissions from their parent; "
                "deny on the parent channel (or pass tell_bot=False)"
            )
        self._denied[where.id] = self._denied.get(where.id, 0) | bits
        await self._channel_updated(where)
        return self._denied[where.id]

    async def restore(self, channel: FakeChannel | str | int, *permissions: str | int) -> int:
        """Give back ``permissions`` (all, if none are named) that ``deny`` took in
        ``channel``, told to the bot as ``deny`` was (CHANNEL_UPDATE); the bits still
        denied::

            await standin.restore("general", "READ_MESSAGE_HISTORY")
        """
        where = self.channel(channel)
        bits = self._permission_bits(permissions) if permissions else ALL_PERMISSIONS
        for denied in (self._denied, self._hidden_denied):
            left = denied.get(where.id, 0) & ~bits
            if left:
                denied[where.id] = left
            else:
                denied.pop(where.id, None)
        if not where.is_thread:
            await self._channel_updated(where)
        return self._denied.get(where.id, 0) | self._hidden_denied.get(where.id, 0)

    async def _channel_updated(self, channel: FakeChannel) -> None:
        """CHANNEL_UPDATE to the connected bot (if any), as Discord sends on an overwrite change."""
        if self.connected:
            await self.dispatch("CHANNEL_UPDATE", self._channel_json(channel))
        await self.notify()

    def fail_requests(
        self,
        method: str,
        route: str | Callable[[str], bool],
        *,
        status: int = 503,
        body: Mapping[str, Any] | str | bytes | None = None,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        times: int = 1,
        channel: FakeChannel | str | int | None = None,
        take_effect: bool = False,
        delay: float = 0.0,
        hang: bool = False,
        description: str | None = None,
    ) -> InjectedFault:
        """Answer the next ``times`` matching REST requests with ``status`` and ``body``.

        ``route`` is a handler name from ``ROUTES`` ("create_message"), a regular
        expression for the whole path under /api/v10 (as in ``requests_to``), or a
        predicate on that path; ``channel`` narrows it to requests whose path names that
        channel. The default body is Discord's JSON for a server error,
        ``{"message": "503: Service Unavailable", "code": 0}``; a dict is sent as
        ``application/json``, a str or bytes as ``content_type`` (default text/plain).
        ``take_effect=True`` handles the request first (a message is posted, events go
        out) and then answers with the failure, as when Discord's edge times out on a
        request Discord completed; ``delay`` waits that many seconds before answering and
        ``hang`` never answers (until the stand-in stops: discord.py has no REST timeout).
        The token check comes first (a 401 is not replaced). Faults are used in the
        order they were added; each hit is recorded with ``RecordedRequest.fault`` set.

        discord.py retries 500, 502, 504 and 524 up to five times (sleeping 1, 3, 5, 7 s)
        and 429s after ``retry_after``; other statuses raise at once::

            standin.fail_requests("POST", "create_message", status=503, channel="general")
        """
        if body is None:
            body = {"message": f"{status}: {HTTPStatus(status).phrase}", "code": 0}
        if isinstance(body, Mapping):
            raw = json.dumps(body, ensure_ascii=False).encode()
            content_type = content_type or "application/json"
        else:
            raw = body.encode() if isinstance(body, str) else bytes(body)
            content_type = content_type or "text/plain"
        where = None if channel is None else self.channel(channel).id
        fault = InjectedFault(
            method=method.upper(),
            route=route,
            channel_id=where,
            status=status,
            body=raw,
            content_type=content_type,
            headers=dict(headers or {}),
            remaining=times,
            description=description or f"{status} {content_type.split(';')[0]}",
            take_effect=take_effect,
            delay=delay,
            hang=hang,
        )
        self._faults.append(fault)
        return fault

    async def drop_gateway(self, code: int = 4000) -> int:
        """Close every open gateway session with ``code`` (4000 "Unknown error", after
        which Discord lets a client reconnect and resume), as when Discord's edge drops
        the connection; how many sessions were closed. The stand-in refuses RESUME, so
        discord.py then identifies again (after the 5 s its identify hook waits)."""
        sessions = [session for session in self._sessions if not session.ws.closed]
        for session in sessions:
            await session.ws.close(code=code, message=b"Unknown error.")
        return len(sessions)

    def block_words(self, *words: str, code: int = 200000) -> None:
        """A moderation rule: from now on, the bot's posts and edits whose content holds
        any of ``words`` (case-insensitive) are refused with 400 and ``code``, worded as
        Discord words it (topics/opcodes-and-status-codes): 200000 "Message was blocked
        by automatic moderation" (a server's AutoMod keyword rule), 200001 "Title was
        blocked by automatic moderation", 240000 "Message blocked by harmful links
        filter". Nothing is posted or changed; each refusal is in ``blocked``::

            standin.block_words("pineapple")
        """
        if code not in MODERATION_MESSAGES:
            raise ValueError(f"not a moderation code: {code}")
        self._blocked_words += [(word.lower(), code) for word in words]

    def _moderate(self, payload: dict[str, Any]) -> None:
        """Refuse ``payload`` as ``block_words`` says, recording the refusal."""
        content = str(payload.get("content") or "").lower()
        for word, code in self._blocked_words:
            if word in content:
                self.blocked.append({"content": payload.get("content"), "code": code})
                raise error(400, code, MODERATION_MESSAGES[code])

    def fail_with_cloudflare_502(
        self,
        method: str,
        route: str | Callable[[str], bool],
        *,
        times: int = 1,
        channel: FakeChannel | str | int | None = None,
        take_effect: bool = False,
    ) -> InjectedFault:
        """Cloudflare's HTML "502 Bad Gateway" page (``text/html``) instead of Discord's
        JSON, as Discord's edge answers while the API behind it is down. discord.py gets
        the page as a str (``HTTPException.text``) and retries 502s itself::

            standin.fail_with_cloudflare_502("POST", "create_message", times=5)
        """
        return self.fail_requests(
            method, route, status=502, body=CLOUDFLARE_502_PAGE, content_type="text/html",
            headers={"Server": "cloudflare"}, times=times, channel=channel,
            take_effect=take_effect, description="502 cloudflare html",
        )  # fmt: skip

    def rate_limit(
        self,
        method: str,
        route: str | Callable[[str], bool],
        *,
        retry_after: float = 0.2,
        is_global: bool = False,
        scope: str = "user",
        code: int | None = None,
        times: int = 1,
        channel: FakeChannel | str | int | None = None,
    ) -> InjectedFault:
        """A 429 with Discord's rate-limit body and headers (topics/rate-limits.mdx).

        Body ``{"message": "You are being rate limited.", "retry_after": 0.2,
        "global": false}`` (plus ``code`` if given, e.g. 20028 for a channel's write
        limit); headers ``Retry-After`` (whole seconds), ``X-RateLimit-*`` with
        ``X-RateLimit-Scope`` ("user", "shared"; "global" with ``X-RateLimit-Global``)
        and ``Via``: discord.py treats a 429 without ``Via`` as a Cloudflare ban and
        raises instead of waiting. discord.py sleeps ``retry_after`` and retries::

            standin.rate_limit("POST", "create_message", retry_after=0.5, channel="general")
        """
        body: dict[str, Any] = {
            "message": "You are being rate limited.", "retry_after": retry_after,
            "global": is_global,
        }  # fmt: skip
        if code is not None:
            body["code"] = code
        headers = {"Retry-After": str(max(1, math.ceil(retry_after))), "Via": "1.1 google"}
        if is_global:
            headers.update({"X-RateLimit-Global": "true", "X-RateLimit-Scope": "global"})
        else:
            headers.update(
                {
                    "X-RateLimit-Limit": "5",
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
                    "X-RateLimit-Reset-After": f"{retry_after:.3f}",
                    "X-RateLimit-Bucket": "stand-in-" + route if isinstance(route, str) else "x",
                    "X-RateLimit-Scope": scope,
                }
            )
        return self.fail_requests(
            method, route, status=429, body=body, headers=headers, times=times, channel=channel,
            description="429 rate limit",
        )  # fmt: skip

    def fail_downloads(
        self,
        attachment: dict[str, Any] | str | int | None = None,
        *,
        status: int = 404,
        times: int = 1,
        hang: bool = False,
    ) -> InjectedFault:
        """The next ``times`` downloads of ``attachment`` (an attachment object or id; None:
        any) fail with ``status`` (404: the CDN's "This content is no longer available.",
        as for an expired link; else its status phrase) or, with ``hang``, never answer
        (until the stand-in stops; the client must time out). Hits are in ``downloads``
        with ``fault`` set::

            standin.fail_downloads(said["attachments"][0], status=500)
        """
        wanted = None
        if attachment is not None:
            wanted = str(attachment["id"] if isinstance(attachment, dict) else int(attachment))
        body = CDN_GONE if status == 404 else f"{status}: {HTTPStatus(status).phrase}"
        fault = InjectedFault(
            method="GET",
            route=lambda path: wanted is None or f"/{wanted}/" in path,
            channel_id=None,
            status=status,
            body=body.encode(),
            content_type="text/plain",
            headers={},
            remaining=times,
            description="hang" if hang else f"{status} download",
            hang=hang,
        )
        self._download_faults.append(fault)
        return fault

    def downloaded(
        self, attachment: dict[str, Any] | str | int | None = None
    ) -> list[RecordedRequest]:
        """Downloads (``url`` or ``proxy_url``) of ``attachment`` (None: of any), in order,
        failed ones included: a test can check that a 50 MB video was never fetched."""
        if attachment is None:
            return list(self.downloads)
        wanted = str(attachment["id"] if isinstance(attachment, dict) else int(attachment))
        return [r for r in self.downloads if r.path.split("/")[-2] == wanted]

    def injected_failures(self) -> list[RecordedRequest]:
        """Requests answered with an injected fault, in order."""
        return [r for r in self.requests if r.fault is not None]
