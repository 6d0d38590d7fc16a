"""Reply on a real discord.py channel and message, against the Discord stand-in.

The stand-in answers with the failures injected (its `fail_requests`, `deny`), so the
failure rules (retries, the final edit, the reply fallback) are checked one by one on
what Discord received. The end-to-end tests drive the same rules through the whole bot.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import discord
import pytest

from discord_side.failures import Refusal, describe, is_transient, refusal
from discord_side.pacing import ChannelPacer
from discord_side.permissions import PermissionNotes
from discord_side.replies import WRITING_MARKER, Reply
from tests.helpers import http_error
from tests.standins.discord import DiscordStandIn
from text.splitting import split_for_discord

MISSING_PERMISSIONS = {"code": 50013, "message": "Missing Permissions"}


def server_error(status: int = 503) -> discord.HTTPException:
    return http_error(discord.DiscordServerError, status, 0, f"{status}: Service Unavailable")


def reference_refused() -> discord.HTTPException:
    return http_error(
        discord.Forbidden, 403, 160002, "Cannot reply without permission to read message history"
    )


async def user_message(discord_api: DiscordStandIn, client: discord.Client) -> discord.Message:
    """alice's question in general, as discord.py reads it."""
    said = await discord_api.user_says("general", "alice", "a question")
    channel = client.get_channel(discord_api.channel("general").id)
    assert isinstance(channel, discord.TextChannel)
    return await channel.fetch_message(int(said["id"]))


def unpaced() -> ChannelPacer:
    return ChannelPacer(writes=10_000, window=0.001)


async def reply_to_alice(
    discord_api: DiscordStandIn, client: discord.Client, **options: Any
) -> Reply:
    message = await user_message(discord_api, client)
    return Reply(
        message,
        options.pop("pacer", None) or unpaced(),
        notes=options.pop("notes", None) or PermissionNotes(message.channel.id),
        retry_delays=options.pop("retry_delays", (0.0, 0.0)),
    )


def shown(discord_api: DiscordStandIn) -> list[str]:
    """What the bot's messages in general show now."""
    return [m["content"] for m in discord_api.bot_messages("general")]


def posted(discord_api: DiscordStandIn) -> list[dict[str, Any]]:
    """The JSON of every post the bot tried in general, landed or not."""
    return [request.json for request in discord_api.posts("general")]


async def finished(reply: Reply, note: str | None = None) -> None:
    """`finish`, then wait for the last edits it started in the background."""
    await reply.finish(note)
    if reply.final_edits is not None:
        await reply.final_edits


async def test_a_transient_post_failure_is_retried_with_the_same_nonce(
    discord_api: DiscordStandIn, discord_client: discord.Client
) -> None:
    discord_api.fail_requests("POST", "create_message", status=503, times=2, channel="general")
    reply = await reply_to_alice(discord_api, discord_client)
    assert await reply.whole("Alpha")
    assert shown(discord_api) == ["Alpha"]
    assert len(posted(discord_api)) == 3
    nonces = {post["nonce"] for post in posted(discord_api)}
    assert len(nonces) == 1 and len(nonces.pop()) <= 25  # Discord's limit for a nonce
    assert reply.shown_text == "Alpha"


async def test_retries_are_bounded_and_a_lost_answer_is_remembered_as_nothing(
    discord_api: DiscordStandIn, discord_client: discord.Client
) -> None:
    discord_api.fail_requests("POST", "create_message", status=503, times=10, channel="general")
    reply = await reply_to_alice(discord_api, discord_client, retry_delays=(0.0, 0.0, 0.0))
    assert not await reply.whole("Alpha")
    assert len(posted(discord_api)) == 4  # the first attempt and three more
    assert reply.shown_text == ""


async def test_backoff_waits_between_attempts(
    discord_api: DiscordStandIn, discord_client: discord.Client
) -> None:
    discord_api.fail_requests("POST", "create_message", status=503, times=2, channel="general")
    reply = await reply_to_alice(discord_api, discord_client, retry_delays=(0.05, 0.1))
    started = asyncio.get_running_loop().time()
    await reply.whole("Alpha")
    assert asyncio.get_running_loop().time() - started >= 0.15


async def test_a_permanent_refusal_is_not_retried_and_nothing_more_is_posted(
    discord_api: DiscordStandIn, discord_client: discord.Client
) -> None:
    discord_api.fail_requests(
        "POST", "create_message", status=403, body=MISSING_PERMISSIONS, channel="general"
    )
    reply = await reply_to_alice(discord_api, discord_client)
    assert not await reply.whole("word " * 900)  # two messages' worth
    assert len(posted(discord_api)) == 1
    assert reply.failed


async def test_a_failed_intermediate_edit_does_not_stop_the_final_edit(
    discord_api: DiscordStandIn, discord_client: discord.Client
) -> None:
    reply = await reply_to_alice(discord_api, discord_client)
    reply.add("Alpha")
    await discord_api.wait_for(lambda: shown(discord_api))  # the painter posts "Alpha ▌"
    assert shown(discord_api) == ["Alpha" + WRITING_MARKER]
    # Every try of the next edit.
    discord_api.fail_requests("PATCH", "edit_message", status=503, times=3, channel="general")
    reply.add(" Beta")
    await discord_api.wait_for(lambda: len(discord_api.edits("general")) == 3)
    assert shown(discord_api) == ["Alpha" + WRITING_MARKER]
    await finished(reply)
    assert shown(discord_api) == ["Alpha Beta"]
    assert reply.shown_text == reply.final_text == "Alpha Beta"


async def test_when_even_the_final_edit_fails_memory_holds_what_is_shown_unmarked(
    discord_api: DiscordStandIn, discord_client: discord.Client
) -> None:
    reply = await reply_to_alice(discord_api, discord_client)
    reply.add("Alpha")
    await discord_api.wait_for(lambda: shown(discord_api))
    unknown = {"code": 10008, "message": "Unknown Message"}
    discord_api.fail_requests("PATCH", "edit_message", status=404, body=unknown)
    reply.add(" Beta")
    await finished(reply)
    assert shown(discord_api)[0] == "Alpha" + WRITING_MARKER
    assert reply.shown_text == "Alpha"  # what the channel shows, less the marker
    assert reply.final_text == "Alpha Beta"  # what it meant to show


async def test_a_later_part_that_cannot_be_posted_leaves_earlier_parts_final(
    discord_api: DiscordStandIn, discord_client: discord.Client
) -> None:
    text = "word " * 900
    parts = split_for_discord(text)
    assert len(parts) == 3
    discord_api.fail_requests(
        "POST",
        lambda path: len(discord_api.bot_messages("general")) >= 2,  # the third post
        status=403,
        body=MISSING_PERMISSIONS,
        channel="general",
    )
    reply = await reply_to_alice(discord_api, discord_client)
    await reply.whole(text)
    assert shown(discord_api) == parts[:2]
    assert reply.shown_text == "\n".join(parts[:2])


async def test_a_refused_reference_is_posted_plain_and_logged_once(
    discord_api: DiscordStandIn, discord_client: discord.Client, caplog
) -> None:
    caplog.set_level(logging.WARNING)
    notes = PermissionNotes(discord_api.channel("general").id)
    reply = await reply_to_alice(discord_api, discord_client, notes=notes)
    second = await reply_to_alice(discord_api, discord_client, notes=notes)
    # The bot's cache still says it may read the history; Discord refuses the reply.
    await discord_api.deny("general", "READ_MESSAGE_HISTORY", tell_bot=False)
    assert await reply.whole("Alpha")
    assert shown(discord_api) == ["Alpha"]
    first, plain = posted(discord_api)
    assert "message_reference" in first and "message_reference" not in plain
    # The next answer in that channel goes out plain at once, and nothing more is logged.
    assert await second.notice("a notice")
    assert "message_reference" not in posted(discord_api)[2]
    assert caplog.text.count("Read Message History") == 1
    assert "lacks the Read Message History permission" in caplog.text


async def test_permissions_known_from_the_cache_skip_the_refused_request(
    discord_api: DiscordStandIn, discord_client: discord.Client
) -> None:
    reply = await reply_to_alice(discord_api, discord_client, retry_delays=())
    await discord_api.deny("general", "READ_MESSAGE_HISTORY")  # told to the bot
    channel = reply.message.channel
    assert isinstance(channel, discord.TextChannel)
    await discord_api.wait_for(
        lambda: not channel.permissions_for(channel.guild.me).read_message_history
    )
    assert await reply.whole("Alpha")
    [post] = posted(discord_api)
    assert "message_reference" not in post


async def test_the_first_message_is_a_reply_that_pings_nobody(
    discord_api: DiscordStandIn, discord_client: discord.Client
) -> None:
    await (await reply_to_alice(discord_api, discord_client)).whole("word " * 500)
    assert [
        ("message_reference" in post, post.get("allowed_mentions", {}).get("replied_user"))
        for post in posted(discord_api)
    ] == [(True, False), (False, None)]


async def test_the_final_edit_does_not_wait_for_the_pace_and_finish_does_not_wait_for_it(
    discord_api: DiscordStandIn, discord_client: discord.Client
) -> None:
    one_a_minute = ChannelPacer(writes=1, window=60)
    reply = await reply_to_alice(discord_api, discord_client, pacer=one_a_minute)
    reply.add("Alpha")
    await discord_api.wait_for(lambda: shown(discord_api))
    reply.add(" Beta")  # an in-between edit would wait a minute
    async with asyncio.timeout(5):
        await reply.finish()  # returns with the last edit under way, not landed
        assert reply.final_edits is not None and reply.final_text == "Alpha Beta"
        await reply.final_edits
    assert shown(discord_api) == ["Alpha Beta"]


def test_what_counts_as_transient() -> None:
    assert is_transient(server_error(503))
    assert not is_transient(server_error(502))  # discord.py retried it already
    assert is_transient(aiohttp.ServerDisconnectedError())
    assert not is_transient(reference_refused())
    assert not is_transient(http_error(discord.HTTPException, 400, 50035, "Invalid Form Body"))
    # The fifth 429 in a row, which discord.py raises instead of waiting out again.
    assert is_transient(http_error(discord.HTTPException, 429, 0, "You are being rate limited."))


def test_an_html_error_page_is_not_logged_whole() -> None:
    page = "<html><head><title>502 Bad Gateway</title></head>" + "x" * 5000
    error = http_error(discord.DiscordServerError, 502, 0, page)
    assert describe(error) == "502 0: an HTML error page"


# --- the status line while a tool runs (issue 22) -----------------------------------


async def test_a_status_line_alone_then_under_the_text_never_in_the_final(
    discord_api: DiscordStandIn, discord_client: discord.Client
) -> None:
    reply = await reply_to_alice(discord_api, discord_client)
    reply.show_status("-# running")
    await discord_api.wait_for(lambda: shown(discord_api) == ["-# running"])
    reply.show_status(None)
    reply.add("Found it")
    reply.show_status("-# running again")
    await discord_api.wait_for(
        lambda: shown(discord_api) == [f"Found it{WRITING_MARKER}\n-# running again"]
    )
    await finished(reply, "-# note")
    assert shown(discord_api) == ["Found it\n-# note"]
    assert reply.final_text == "Found it\n-# note" and len(posted(discord_api)) == 1


async def test_a_status_line_with_no_answer_is_taken_away(
    discord_api: DiscordStandIn, discord_client: discord.Client
) -> None:
    reply = await reply_to_alice(discord_api, discord_client)
    reply.show_status("-# running")
    await discord_api.wait_for(lambda: shown(discord_api) == ["-# running"])
    await reply.drop_status()
    assert await reply.notice("It failed.")
    assert shown(discord_api) == ["It failed."]


def test_refusals_are_named_by_kind_and_their_notices_repeat_no_text() -> None:
    automod = http_error(
        discord.HTTPException, 400, 200000, "Message was blocked by automatic moderation"
    )
    title = http_error(
        discord.HTTPException, 400, 200001, "Title was blocked by automatic moderation"
    )
    links = http_error(
        discord.HTTPException, 400, 240000, "Message blocked by harmful links filter"
    )
    too_long = http_error(
        discord.HTTPException,
        400,
        50035,
        "Invalid Form Body\nIn content: Must be 2000 or fewer in length.",
    )
    other_form = http_error(discord.HTTPException, 400, 50035, "Invalid Form Body\nIn nonce: Bad")
    too_large = http_error(discord.HTTPException, 413, 40005, "Request entity too large")
    empty = http_error(discord.HTTPException, 400, 50006, "Cannot send an empty message")
    assert [refusal(e).kind for e in (automod, title, links, too_long, too_large, empty)] == [
        "moderation", "moderation", "links", "size", "size", "size",
    ]  # fmt: skip
    assert refusal(other_form).kind == "other" and "code 50035" in refusal(other_form).rule
    assert (
        refusal(automod).rule
        == "AutoMod rule (400 200000: Message was blocked by automatic moderation)"
    )
    assert refusal(aiohttp.ServerDisconnectedError()).kind == "other"
    for error in (automod, links, too_long, other_form):
        for partial in (False, True):
            notice = refusal(error).notice(partial=partial)
            assert notice.startswith("⚠️ Part of" if partial else "⚠️ My answer")
            assert "Must be" not in notice and "blocked by automatic" not in notice


@pytest.mark.parametrize("kind", ["moderation", "links", "size", "other"])
@pytest.mark.parametrize("partial", [False, True])
@pytest.mark.parametrize("code", [0, 200000])
def test_the_minimal_notice_shares_no_word_with_the_notice(kind, partial, code) -> None:
    # A rule that blocked the notice must not block the minimal one for the same words.
    refused = Refusal(kind, "rule", code)

    def words(text: str) -> set[str]:
        return {w.strip(".,()'").lower() for w in text.split()} - {"⚠️", ""}

    assert not words(refused.notice(partial=partial)) & words(refused.minimal_notice())
    assert (str(code) in refused.minimal_notice()) == bool(code)
