"""Let go of discord.py's rate-limit buckets once their channel has gone quiet.

discord.py keeps one `Ratelimit` per route and channel (`HTTPClient._buckets`), about
1 KB each, and drops one only after 300 s without a request; and while 256 or more
exist it scans them all each time it makes a new one. A bot answering many channels
(new DM users, large servers) makes three per channel (reading history, posting,
typing), so its memory and that scan grew with every channel seen in five minutes.

A bucket whose window has reset and that has no request outgoing or waiting knows
nothing a new one would not learn from the next response's headers (a new bucket lets
one request through, then follows Discord's X-RateLimit headers; a 429 is still waited
out by discord.py). Forgetting those after IDLE_SECONDS bounds the buckets by the
channels active in that time.

This reads discord.py 2.x internals (`HTTPClient._buckets`; a Ratelimit's `outgoing`,
`expires`, `_pending_requests`, `_sleeping`, `_last_request`), checked against 2.7;
tests/discord_side/test_idle_buckets.py builds real discord.py objects and fails if they change.
"""

from __future__ import annotations

import discord

IDLE_SECONDS = 15.0  # and how often the bot looks (ChatBot.forget_idle_rate_limits)


def forget_idle_buckets(
    http: discord.http.HTTPClient, now: float, idle: float = IDLE_SECONDS
) -> int:
    """Drop the buckets with no request for `idle` seconds before `now` (the event
    loop's clock), whose window has reset and with nothing outgoing, waiting or
    sleeping; how many were dropped."""
    stale = [key for key, bucket in http._buckets.items() if _forgettable(bucket, now, idle)]
    for key in stale:
        del http._buckets[key]
    return len(stale)


def _forgettable(bucket: discord.http.Ratelimit, now: float, idle: float) -> bool:
    return (
        bucket.outgoing == 0
        and not bucket._pending_requests
        and not bucket._sleeping.locked()
        and (bucket.expires is None or bucket.expires <= now)
        and now - bucket._last_request >= idle
    )
