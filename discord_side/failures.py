"""How a Discord post or edit fails, and retrying the failures that pass.

A transient failure (a 5xx discord.py does not retry itself, such as 503, a 429 it gave
up waiting out, or a dropped connection) is retried a few times with backoff; a request
Discord leaves unanswered for REQUEST_TIMEOUT seconds is given up.

A post or edit Discord refuses for good is named by `refusal` (moderation, size, or
anything else), with a notice for the chat user that never repeats the refused text,
so the notice cannot be blocked in turn by the rule that blocked the answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import aiohttp
import discord

if TYPE_CHECKING:
    from operations.metrics import Metrics

log = logging.getLogger(__name__)

# Seconds to wait before each further attempt at a post or edit that failed transiently.
RETRY_DELAYS = (0.5, 1.0, 2.0)
# discord.py's HTTPClient.request already retries these statuses itself (five tries,
# sleeping 1, 3, 5, 7 s): retrying them again would only stretch a long outage.
RETRIED_BY_DISCORD_PY = frozenset({500, 502, 504, 524})
# The most one post or edit may take, discord.py's own retries included (they sleep
# 1 + 3 + 5 + 7 s): a request Discord leaves hanging must not hold the channel up.
REQUEST_TIMEOUT = 20.0
# Discord's answer to an edit of a message that no longer exists (deleted by a person).
UNKNOWN_MESSAGE = 10008
# Discord's error codes for a channel that is no longer there for the bot (Unknown
# Channel, Missing Access): nothing more can be posted or edited in it.
CHANNEL_GONE = frozenset({10003, 50001})
# Discord's JSON error codes for a message its moderation blocked (docs: topics/
# opcodes-and-status-codes, "JSON Error Codes"): 200000 "Message was blocked by
# automatic moderation", 200001 "Title was blocked by automatic moderation" (AutoMod
# keyword, regex and spam rules of the server), 240000 "Message blocked by harmful
# links filter" (Discord's own filter).
BLOCKED_BY_AUTOMOD = frozenset({200000, 200001})
BLOCKED_LINKS = 240000
# Refusals for the message's size: 40005 "Request entity too large", 50006 "Cannot send
# an empty message"; 50035 "Invalid Form Body" is one only when its field error is about
# a length (BASE_TYPE_MAX_LENGTH: "Must be 2000 or fewer in length.").
TOO_LARGE = 40005
EMPTY_MESSAGE = 50006
INVALID_FORM_BODY = 50035

T = TypeVar("T")


class NoAnswerFromDiscord(Exception):
    """Discord did not answer a post or edit within REQUEST_TIMEOUT seconds."""

    def __init__(self) -> None:
        super().__init__(f"Discord did not answer within {REQUEST_TIMEOUT:g} s")


# How a post or edit can fail: Discord refuses, the connection breaks, or no answer.
REQUEST_FAILURES = (discord.HTTPException, aiohttp.ClientError, NoAnswerFromDiscord)


def is_transient(error: Exception) -> bool:
    """Whether a failed Discord request may well succeed if tried again soon: a server
    error discord.py did not already retry, a rate limit it gave up waiting out (it
    raises the fifth 429 in a row), or a connection that broke."""
    if isinstance(error, discord.DiscordServerError):
        return error.status not in RETRIED_BY_DISCORD_PY
    if isinstance(error, discord.HTTPException):
        return error.status == 429
    return isinstance(error, aiohttp.ClientError)


def describe(error: Exception) -> str:
    """A short description of a failed Discord request for the log (no page bodies)."""
    if isinstance(error, discord.HTTPException):
        # An edge proxy's error page (Cloudflare's HTML) says nothing the status does not.
        text = "an HTML error page" if error.text.lstrip().startswith("<") else error.text
        return f"{error.status} {error.code}: {text[:200]}"
    return repr(error)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why Discord refused a post or edit for good: `rule` for the log (which rule or
    code), `kind` ("moderation", "links", "size", "other") for the chat user's notice."""

    kind: str
    rule: str
    code: int = 0  # Discord's JSON error code (0: none)

    def notice(self, *, partial: bool) -> str:
        """The chat user's notice (`partial`: some of the answer is shown, the rest is
        not). It names no blocked word or text: the rule that blocked the answer must
        not block the notice too."""
        what = "Part of my answer" if partial else "My answer"
        why = {
            "moderation": "was blocked by this server's AutoMod rules",
            "links": "was blocked by Discord's harmful links filter",
            "size": "was refused by Discord as too long or empty",
        }.get(self.kind, "was refused by Discord")
        after = ", so what is shown is incomplete." if partial else "."
        return f"⚠️ {what} {why}{after}"

    def minimal_notice(self) -> str:
        """The notice to try once when `notice` itself was refused (a rule wide enough
        to block its words): neutral, and sharing no word with it."""
        return f"⚠️ Reply cut short (error {self.code})." if self.code else "⚠️ Reply cut short."


def refusal(error: Exception) -> Refusal:
    """How Discord refused a post or edit (`error`, as raised by discord.py or
    `retrying`); anything not a known moderation or size code is kind "other"."""
    if not isinstance(error, discord.HTTPException):
        return Refusal("other", describe(error))
    code, detail = error.code, describe(error)
    if code in BLOCKED_BY_AUTOMOD:
        return Refusal("moderation", f"AutoMod rule ({detail})", code)
    if code == BLOCKED_LINKS:
        return Refusal("links", f"harmful links filter ({detail})", code)
    if (
        code in (TOO_LARGE, EMPTY_MESSAGE)
        or error.status == 413
        or (code == INVALID_FORM_BODY and "length" in error.text.lower())
    ):
        return Refusal("size", f"size ({detail})", code)
    return Refusal("other", f"code {code} ({detail})", code)


async def retrying(
    request: Callable[[], Awaitable[T]],
    delays: tuple[float, ...],
    channel_id: int | str | None,
    metrics: Metrics | None = None,
) -> T:
    """`request()`, tried again after each of `delays` (seconds) while it fails
    transiently (each retry counted in `metrics`, when given); the last failure is
    raised. One that Discord leaves unanswered for REQUEST_TIMEOUT seconds raises
    NoAnswerFromDiscord and is not tried again: the channel (`channel_id`, for the log;
    a str names a request that is no channel's) moves on."""
    where = channel_id if isinstance(channel_id, str) else f"channel {channel_id}"
    for delay in delays:
        try:
            return await _timed(request)
        except REQUEST_FAILURES as error:
            if not is_transient(error):
                raise
            log.info(
                "%s: Discord failed transiently (%s); trying again in %.1f s",
                where,
                describe(error),
                delay,
            )
        if metrics is not None:
            metrics.discord_retry()
        await asyncio.sleep(delay)
    return await _timed(request)


async def _timed(request: Callable[[], Awaitable[T]]) -> T:
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT):
            return await request()
    except TimeoutError:
        raise NoAnswerFromDiscord from None
