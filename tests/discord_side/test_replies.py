"""Reply without a network: a small channel that records posts and edits and fails on cue.

The end-to-end tests drive the same rules through discord.py and the Discord stand-in;
here the failure rules (retries, the final edit, the reply fallback) are checked one
by one, fast. The exceptions are discord.py's own, built as discord.py builds them.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import aiohttp
import discord

from discord_side.failures import describe, is_transient
from discord_side.pacing import ChannelPacer
from discord_side.permissions import PermissionWarnings
from discord_side.replies import WRITING_MARKER, Reply
from text.splitting import split_for_discord


def http_error(kind: type[discord.HTTPException], status: int, code: int = 0, text: str = ""):
    response = SimpleNamespace(status=status, reason="Reason")
    body: Any = {"code": code, "message": text} if code or not text.startswith("<") else text
    return kind(response, body)  # type: ignore[arg-type]


def server_error(status: int = 503) -> discord.HTTPException:
    return http_error(discord.DiscordServerError, status, 0, f"{status}: Service Unavailable")


def reference_refused() -> discord.HTTPException:
    return http_error(
        discord.Forbidden, 403, 160002, "Cannot reply without permission to read message history"
    )


@dataclass
class FakeMessage:
    """A posted message: what it shows, and its channel's record of requests."""

    channel: FakeChannel
    content: str
    id: int = 0

    async def edit(self, *, content: str) -> FakeMessage:
        self.channel.calls.append(("edit", self.id, content))
        self.channel.raise_next("edit")
        self.content = content
        return self


@dataclass
class FakeChannel:
    """Records every request; `failures[kind]` are raised by the next requests of that kind."""

    id: int = 42
    calls: list[tuple[str, int, str]] = field(default_factory=list)
    options: list[dict[str, Any]] = field(default_factory=list)
    failures: dict[str, list[Exception]] = field(default_factory=dict)
    messages: list[FakeMessage] = field(default_factory=list)
    refuse_posts_after: int | None = None  # then raise `failures["refused"]`'s first

    def raise_next(self, kind: str) -> None:
        if self.failures.get(kind):
            raise self.failures[kind].pop(0)

    async def send(self, content: str, **options: Any) -> FakeMessage:
        self.calls.append(("send", len(self.messages), content))
        self.options.append(options)
        self.raise_next("send")
        if self.refuse_posts_after is not None and len(self.messages) >= self.refuse_posts_after:
            raise self.failures["refused"][0]
        message = FakeMessage(self, content, id=len(self.messages))
        self.messages.append(message)
        return message

    def shown(self) -> list[str]:
        return [m.content for m in self.messages]


def user_message(channel: FakeChannel) -> Any:
    """The user's message the reply answers (a DM: no guild, no permissions to check)."""
    return SimpleNamespace(
        channel=channel,
        guild=None,
        id=7,
        to_reference=lambda fail_if_not_exists: SimpleNamespace(message_id=7),
    )


def unpaced() -> ChannelPacer:
    return ChannelPacer(writes=10_000, window=0.001)


def reply_in(channel: FakeChannel, **options: Any) -> Reply:
    return Reply(
        user_message(channel),
        options.pop("pacer", None) or unpaced(),
        retry_delays=options.pop("retry_delays", (0.0, 0.0)),
        warnings=options.pop("warnings", PermissionWarnings()),
    )


async def finished(reply: Reply, note: str | None = None) -> None:
    """`finish`, then wait for the last edits it started in the background."""
    await reply.finish(note)
    if reply.final_edits is not None:
        await reply.final_edits


async def test_a_transient_post_failure_is_retried_with_the_same_nonce() -> None:
    channel = FakeChannel(failures={"send": [server_error(503), server_error(503)]})
    reply = reply_in(channel)
    assert await reply.whole("Alpha")
    assert channel.shown() == ["Alpha"]
    assert [c[0] for c in channel.calls] == ["send"] * 3
    nonces = {options["nonce"] for options in channel.options}
    assert len(nonces) == 1 and len(nonces.pop()) <= 25  # Discord's limit for a nonce
    assert reply.shown_text == "Alpha"


async def test_retries_are_bounded_and_a_lost_answer_is_remembered_as_nothing() -> None:
    channel = FakeChannel(failures={"send": [server_error(503)] * 10})
    reply = reply_in(channel, retry_delays=(0.0, 0.0, 0.0))
    assert not await reply.whole("Alpha")
    assert len(channel.calls) == 4  # the first attempt and three more
    assert reply.shown_text == ""


async def test_backoff_waits_between_attempts() -> None:
    channel = FakeChannel(failures={"send": [server_error(503), server_error(503)]})
    reply = reply_in(channel, retry_delays=(0.05, 0.1))
    started = asyncio.get_running_loop().time()
    await reply.whole("Alpha")
    assert asyncio.get_running_loop().time() - started >= 0.15


async def test_a_permanent_refusal_is_not_retried_and_nothing_more_is_posted() -> None:
    forbidden = http_error(discord.Forbidden, 403, 50013, "Missing Permissions")
    channel = FakeChannel(failures={"send": [forbidden]})
    reply = reply_in(channel)
    assert not await reply.whole("word " * 900)  # two messages' worth
    assert len(channel.calls) == 1
    assert reply.failed


async def test_a_failed_intermediate_edit_does_not_stop_the_final_edit() -> None:
    channel = FakeChannel()
    reply = reply_in(channel)
    reply.add("Alpha")
    await asyncio.sleep(0.01)  # the painter posts "Alpha ▌"
    assert channel.shown() == ["Alpha" + WRITING_MARKER]
    channel.failures["edit"] = [server_error(503)] * 3  # every try of the next edit
    reply.add(" Beta")
    await asyncio.sleep(0.01)
    assert channel.shown() == ["Alpha" + WRITING_MARKER]
    await finished(reply)
    assert channel.shown() == ["Alpha Beta"]
    assert reply.shown_text == reply.final_text == "Alpha Beta"


async def test_when_even_the_final_edit_fails_memory_holds_what_is_shown_unmarked() -> None:
    channel = FakeChannel()
    reply = reply_in(channel)
    reply.add("Alpha")
    await asyncio.sleep(0.01)
    channel.failures["edit"] = [http_error(discord.NotFound, 404, 10008, "Unknown Message")]
    reply.add(" Beta")
    await finished(reply)
    assert channel.shown()[0] == "Alpha" + WRITING_MARKER
    assert reply.shown_text == "Alpha"  # what the channel shows, less the marker
    assert reply.final_text == "Alpha Beta"  # what it meant to show


async def test_a_later_part_that_cannot_be_posted_leaves_earlier_parts_final() -> None:
    text = "word " * 900
    parts = split_for_discord(text)
    assert len(parts) == 3
    forbidden = http_error(discord.Forbidden, 403, 50013, "Missing Permissions")
    channel = FakeChannel(refuse_posts_after=2, failures={"refused": [forbidden]})
    reply = reply_in(channel)
    await reply.whole(text)
    assert channel.shown() == parts[:2]
    assert reply.shown_text == "\n".join(parts[:2])


async def test_a_refused_reference_is_posted_plain_and_logged_once(caplog) -> None:
    caplog.set_level(logging.WARNING)
    channel = FakeChannel(failures={"send": [reference_refused()]})
    warnings = PermissionWarnings()
    reply = reply_in(channel, warnings=warnings)
    assert await reply.whole("Alpha")
    assert channel.shown() == ["Alpha"]
    assert "reference" in channel.options[0] and "reference" not in channel.options[1]
    # The next answer in that channel goes out plain at once, and nothing more is logged.
    second = reply_in(channel, warnings=warnings)
    assert await second.notice("a notice")
    assert "reference" not in channel.options[2]
    assert caplog.text.count("Read Message History") == 1
    assert "lacks the Read Message History permission" in caplog.text


async def test_permissions_known_from_the_cache_skip_the_refused_request() -> None:
    channel = FakeChannel()
    message = user_message(channel)
    message.guild = SimpleNamespace(me=object())
    channel.permissions_for = lambda member: discord.Permissions(read_message_history=False)
    reply = Reply(message, retry_delays=(), warnings=PermissionWarnings())
    assert await reply.whole("Alpha")
    assert len(channel.calls) == 1 and "reference" not in channel.options[0]


async def test_the_first_message_is_a_reply_that_pings_nobody() -> None:
    channel = FakeChannel()
    await reply_in(channel).whole("word " * 500)
    assert [("reference" in o, o.get("mention_author")) for o in channel.options] == [
        (True, False),
        (False, None),
    ]


async def test_the_final_edit_does_not_wait_for_the_pace_and_finish_does_not_wait_for_it() -> None:
    channel = FakeChannel()
    reply = reply_in(channel, pacer=ChannelPacer(writes=1, window=60))  # one write a minute
    reply.add("Alpha")
    await asyncio.sleep(0.01)
    reply.add(" Beta")  # an in-between edit would wait a minute
    async with asyncio.timeout(5):
        await reply.finish()  # returns with the last edit under way, not landed
        assert reply.final_edits is not None and reply.final_text == "Alpha Beta"
        await reply.final_edits
    assert channel.shown() == ["Alpha Beta"]


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
