"""idle_buckets.py on real discord.py rate-limit buckets (fails if its internals change), and
through the real bot against the stand-ins."""

from __future__ import annotations

import asyncio

import discord

from discord_side.idle_buckets import IDLE_SECONDS, forget_idle_buckets
from tests.helpers import final_messages
from tests.standins.discord import DiscordStandIn
from tests.standins.openai_standin import OpenAIStandIn


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


async def test_a_channel_answers_on_after_its_buckets_were_let_go(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    # Through the real bot and discord.py: what the bot's 15 s sweep does, done now.
    bot = await start_bot(STREAM_REPLIES="true")
    await discord_api.user_says("general", "alice", "first question")
    assert await final_messages(discord_api, "general", 1) == ["echo: first question"]
    await asyncio.sleep(0.2)  # the last edit's request has finished
    later = asyncio.get_running_loop().time() + IDLE_SECONDS
    assert forget_idle_buckets(bot.http, later) >= 2  # posting and editing in #general
    assert not bot.http._buckets

    await discord_api.user_says("general", "alice", "second question")
    answers = await final_messages(discord_api, "general", 2)
    assert answers == ["echo: first question", "echo: second question"]
    last = openai_api.completions[-1]["messages"]
    assert [m["content"] for m in last[1:]] == [
        "first question",
        "echo: first question",
        "second question",
    ]
