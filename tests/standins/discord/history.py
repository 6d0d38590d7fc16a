"""Reading history back as Discord serves it: the rate-limit headers of history reads,
archived threads listed, a channel deleted, and old history put in place.

Discord's rate limits (topics/rate-limits): every response carries ``X-RateLimit-Limit``
(requests per window), ``-Remaining``, ``-Reset`` (epoch seconds), ``-Reset-After``
(seconds) and ``-Bucket`` (a hash naming the limit); a bucket is kept per route and
major parameter (the channel). discord.py reads them and, when ``Remaining`` is 0,
waits ``Reset-After`` before its next request in that bucket; a request over the limit
gets 429. Here history reads (GET .../messages and GET .../threads/archived/public) are
counted per channel in fixed windows of ``HISTORY_WINDOW`` seconds,
``HISTORY_REQUESTS`` each unless ``limit_history_reads`` says otherwise.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from tests.standins.discord.errors import missing_permissions
from tests.standins.discord.objects import ApiCall, FakeChannel, FakeUser, json_response
from tests.standins.discord.protocol import (
    CHANNEL_PUBLIC_THREAD,
    DISCORD_EPOCH_MS,
    P_READ_HISTORY,
)

HISTORY_REQUESTS = 50  # requests per window and channel unless a test says otherwise
HISTORY_WINDOW = 1.0  # seconds
HISTORY_ROUTES = frozenset({"list_messages", "list_archived_threads"})


class History:
    """History reads' rate limits, archived threads, deleting channels, old messages."""

    def limit_history_reads(self, requests: int, per_seconds: float) -> None:
        """From now on, at most ``requests`` history reads per channel every
        ``per_seconds`` seconds, as the headers say; one more gets 429 (``Via`` set, so
        discord.py waits and retries). ``history_429s`` counts those."""
        self._history_limit = (requests, per_seconds)

    def _spend_history(self, route: str, channel_id: str | None) -> dict[str, str] | web.Response:
        """The rate-limit headers of one history read, or the 429 answering it."""
        requests, window = getattr(self, "_history_limit", (HISTORY_REQUESTS, HISTORY_WINDOW))
        buckets: dict[tuple[str, str | None], list[float]] = self.__dict__.setdefault(
            "_history_buckets", {}
        )
        now = time.time()
        bucket = buckets.setdefault((route, channel_id), [now, 0])
        if now - bucket[0] >= window:
            bucket[:] = [now, 0]
        reset_after = max(0.0, bucket[0] + window - now)
        headers = {
            "X-RateLimit-Limit": str(requests),
            "X-RateLimit-Reset": f"{bucket[0] + window:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": f"stand-in-{route}",
        }
        if bucket[1] >= requests:
            self.history_429s = getattr(self, "history_429s", 0) + 1
            body = {
                "message": "You are being rate limited.", "retry_after": reset_after,
                "global": False,
            }  # fmt: skip
            response = json_response(body, 429)
            response.headers.update(
                {**headers, "X-RateLimit-Remaining": "0", "X-RateLimit-Scope": "user",
                 "Retry-After": str(max(1, math.ceil(reset_after))), "Via": "1.1 google"}
            )  # fmt: skip
            return response
        bucket[1] += 1
        return {**headers, "X-RateLimit-Remaining": str(requests - int(bucket[1]))}

    async def api_list_archived_threads(self, call: ApiCall) -> Any:
        """A channel's (or forum's) archived public threads, most recently archived
        first (resources/channel#list-public-archived-threads): ``{"threads", "members",
        "has_more"}``; needs Read Message History. ``limit`` 2-100 (default 50)."""
        channel = self._channel_param(call)
        if not self._check_may_read(channel) & P_READ_HISTORY:
            raise missing_permissions()
        limit = self._limit_param(call, lowest=2)
        archived = [
            c for c in reversed(self.threads_in(channel))
            if c.type == CHANNEL_PUBLIC_THREAD and self.thread_state(c)["archived"]
        ]  # fmt: skip
        return {
            "threads": [self._channel_json(c) for c in archived[:limit]],
            "members": [],
            "has_more": len(archived) > limit,
        }

    async def delete_channel(self, channel: FakeChannel | str | int) -> None:
        """Delete a server channel with its threads and messages; the bot gets
        CHANNEL_DELETE (events/gateway-events#channel-delete; no THREAD_DELETE for its
        threads, as on Discord) and every REST call on it then answers 404 / 10003."""
        where = self.channel(channel)
        if where.guild_id is None or where.is_thread:
            raise ValueError(f"{where.key} is not a server channel")
        event = self._channel_json(where)
        for gone in [where, *self.threads_in(where)]:
            del self.channels[gone.key]
            self._channels_by_id.pop(gone.id, None)
            self._messages.pop(gone.id, None)
        await self.dispatch("CHANNEL_DELETE", event)
        await self.notify()

    def past_messages(
        self,
        channel: FakeChannel | str | int,
        lines: Sequence[tuple[FakeUser | str | int, str]],
        *,
        days_ago: float,
        spacing: timedelta = timedelta(seconds=1),
    ) -> list[dict[str, Any]]:
        """History written ``days_ago`` days ago (the first line then, each next one
        ``spacing`` later), as if before the bot joined: stored, never delivered; ids
        and timestamps from that time, as Discord's snowflakes carry it."""
        where = self.channel(channel)
        start = datetime.now(UTC) - timedelta(days=days_ago)
        made = []
        for n, (user, content) in enumerate(lines):
            when = start + n * spacing
            message = self._new_message(
                where, self.user(user), content, message_id=self._past_snowflake(when)
            )
            message["timestamp"] = when.isoformat(timespec="microseconds")
            self._store(message)
            made.append(self._render(message, rest=False))
        return made

    def _past_snowflake(self, when: datetime) -> int:
        """A unique id for a message written at ``when`` (its low bits a counter)."""
        self._past_count = getattr(self, "_past_count", 0) + 1
        ms = int(when.timestamp() * 1000) - DISCORD_EPOCH_MS
        return ms << 22 | 1 << 16 | self._past_count % (1 << 16)
