"""ratelimits.py on real discord.py rate-limit buckets (fails if its internals change)."""

from __future__ import annotations

import asyncio

import discord

from ratelimits import IDLE_SECONDS, forget_idle_buckets


async def test_only_quiet_reset_and_unused_buckets_are_forgotten() -> None:
    http = discord.http.HTTPClient(asyncio.get_running_loop())
    try:
        quiet = http.get_ratelimit("quiet")
        limited = http.get_ratelimit("limited")
        limited.expires = float("inf")  # Discord said: no more for now
        outgoing = http.get_ratelimit("outgoing")
        outgoing.outgoing = 1
        sleeping = http.get_ratelimit("sleeping")
        await sleeping._sleeping.acquire()  # waiting out a 429
        waiting = http.get_ratelimit("waiting")
        waiting._pending_requests.append(asyncio.get_running_loop().create_future())
        recent = http.get_ratelimit("recent")
        now = asyncio.get_running_loop().time()
        later = now + IDLE_SECONDS

        assert forget_idle_buckets(http, now + 1) == 0  # nothing is quiet yet
        recent._last_request = later - 1
        assert forget_idle_buckets(http, later) == 1
        assert set(http._buckets) == {"limited", "outgoing", "sleeping", "waiting", "recent"}
        assert http.get_ratelimit("quiet") is not quiet  # a new one, as discord.py makes

        # Once the window has reset and the requests are done, those go too.
        limited.expires = later
        outgoing.outgoing = 0
        sleeping._sleeping.release()
        waiting._pending_requests.clear()
        assert forget_idle_buckets(http, later + IDLE_SECONDS) == 6
        assert http._buckets == {}
    finally:
        await http.close()
