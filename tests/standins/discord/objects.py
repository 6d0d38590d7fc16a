"""The objects of the fixed world (users, channels, attachments) and the records the
stand-in keeps of calls, interactions, gateway sessions and injected faults."""

from __future__ import annotations

import asyncio
import json
import mimetypes
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tests.standins.discord.protocol import CHANNEL_DM, DISCORD_EPOCH_MS, ROUTE_NAMES, THREAD_TYPES
from tests.standins.recording import RecordedRequest


# --------------------------------------------------------------------------------------
# The fixed world.
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FakeUser:
    """A Discord user of the fixed world; ``key`` is its name in ``standin.users``."""

    key: str
    id: int
    username: str
    global_name: str | None
    bot: bool = False
    discriminator: str = "0"

    @property
    def display_name(self) -> str:
        return self.global_name or self.username

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"

    def to_json(self) -> dict[str, Any]:
        """The user object as Discord sends it."""
        data: dict[str, Any] = {
            "id": str(self.id),
            "username": self.username,
            "global_name": self.global_name,
            "discriminator": self.discriminator,
            "avatar": None,
            "public_flags": 0,
            "flags": 0,
            "banner": None,
            "accent_color": None,
            "avatar_decoration_data": None,
            "collectibles": None,
            "primary_guild": None,
        }
        if self.bot:
            data["bot"] = True
        return data


@dataclass(frozen=True)
class FakeChannel:
    """A channel of the fixed world (or a DM); ``key`` is its name in ``standin.channels``."""

    key: str
    id: int
    type: int
    name: str | None = None
    guild_id: int | None = None
    parent_id: int | None = None  # category of a text channel, channel of a thread
    position: int = 0
    owner_id: int | None = None  # threads: who started it
    recipient_id: int | None = None  # DMs: the other user

    @property
    def is_dm(self) -> bool:
        return self.type == CHANNEL_DM

    @property
    def is_thread(self) -> bool:
        return self.type in THREAD_TYPES

    @property
    def mention(self) -> str:
        return f"<#{self.id}>"


@dataclass(frozen=True)
class FakeAttachment:
    """A file a user attaches to a message (``user_says(..., attachments=[...])``).

    ``data`` is what a download gets; ``size`` is the size the attachment object
    declares (default ``len(data)``): a "50 MB video" need not be backed by 50 MB.
    ``content_type`` is sent as given; if None it is guessed from the file name (text
    types get ``; charset=utf-8``, as Discord labels them) unless
    ``guess_content_type`` is False, and then the field is missing, which Discord does
    for some files. ``width``/``height`` are for images and videos::

        FakeAttachment("clip.mp4", b"", size=50 * 1024 * 1024, content_type="video/mp4")
    """

    filename: str
    data: bytes = b""
    size: int | None = None
    content_type: str | None = None
    guess_content_type: bool = True
    width: int | None = None
    height: int | None = None
    description: str | None = None
    duration_secs: float | None = None

    @property
    def declared_size(self) -> int:
        return len(self.data) if self.size is None else self.size

    def media_type(self) -> str | None:
        """The ``content_type`` field, or None to leave it out."""
        if self.content_type is not None or not self.guess_content_type:
            return self.content_type
        guessed, _ = mimetypes.guess_type(self.filename)
        if guessed is not None and guessed.startswith("text/"):
            return f"{guessed}; charset=utf-8"
        return guessed


@dataclass
class ApiCall:
    """What a REST route handler gets: path parameters, parsed body, query, uploads."""

    request: web.Request
    params: dict[str, str]
    body: Any
    query: dict[str, str]
    files: list[dict[str, Any]]


@dataclass(eq=False)
class InteractionRecord:
    """One INTERACTION_CREATE sent to the bot, and what the bot did with it."""

    payload: dict[str, Any]  # as dispatched
    channel: FakeChannel
    user: FakeUser
    created: float = field(default_factory=time.monotonic)
    callback_type: int | None = None  # set by the (only) initial response
    original_id: int | None = None  # the message the initial response created
    # Every message made through this interaction (ephemeral ones live only here).
    messages: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def id(self) -> int:
        return int(self.payload["id"])

    @property
    def token(self) -> str:
        return str(self.payload["token"])


@dataclass(frozen=True)
class FakeGuild:
    """A guild of the world; ``key`` is its name in ``standin.guilds`` ("guild": the fixed
    one, others from ``add_guild``)."""

    key: str
    id: int
    name: str


def shard_of(guild_id: int | None, shard_count: int) -> int:
    """The shard that receives a guild's events: ``(guild_id >> 22) % shard_count``; DMs
    (no guild) go to shard 0 (topics/gateway#sharding)."""
    return 0 if guild_id is None else (guild_id >> 22) % shard_count


@dataclass(eq=False)  # compared and hashed by identity: sessions live in a set
class GatewaySession:
    """One websocket connection to the gateway; ``shard`` is IDENTIFY's ``[id, count]``
    (a session that sends none is shard 0 of 1, which receives everything)."""

    ws: web.WebSocketResponse
    session_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    intents: int = 0
    identified: bool = False
    sequence: int = 0
    shard: tuple[int, int] = (0, 1)
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def has(self, intent: int) -> bool:
        return bool(self.intents & intent)

    @property
    def live(self) -> bool:
        """Identified and still open: it is sent events."""
        return self.identified and not self.ws.closed

    def receives(self, guild_id: int | None) -> bool:
        """Whether this session's shard gets the events of ``guild_id`` (None: a DM)."""
        shard_id, shard_count = self.shard
        return shard_of(guild_id, shard_count) == shard_id


# A Cloudflare error page, as discord.py logs it when Discord's edge answers for the API.
CLOUDFLARE_502_PAGE = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    "</body>\r\n</html>\r\n"
)


@dataclass(eq=False)
class InjectedFault:
    """Requests that will be answered with a canned failure instead of Discord's answer.

    Made by ``DiscordStandIn.fail_requests`` (and its 502 / 429 variants). The next
    ``remaining`` requests that match ``method``, ``route`` and ``channel_id`` get
    ``status`` with ``body`` (bytes, of ``content_type``) and ``headers``; each one is
    kept in ``hits`` (its ``RecordedRequest.fault`` is ``description``).
    """

    method: str
    route: str | Callable[[str], bool]  # a ROUTES handler name, a path regex or a predicate
    channel_id: int | None
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str]
    remaining: int
    description: str
    take_effect: bool = False  # handle the request first (it happened), then fail the answer
    delay: float = 0.0  # seconds to wait before answering
    hang: bool = False  # never answer (until the stand-in stops)
    hits: list[RecordedRequest] = field(default_factory=list)

    def matches(
        self, method: str, route_name: str | None, path: str, channel_id: str | None
    ) -> bool:
        """Whether a request (path under /api/v10) is one this fault is for."""
        if self.remaining <= 0 or method != self.method:
            return False
        if self.channel_id is not None and channel_id != str(self.channel_id):
            return False
        if callable(self.route):
            return bool(self.route(path))
        if self.route in ROUTE_NAMES:
            return route_name == self.route
        return re.fullmatch(self.route, path) is not None


class SnowflakeFactory:
    """Discord ids: milliseconds since 2015 in the high bits, strictly increasing."""

    def __init__(self) -> None:
        self._last = 0

    def __call__(self) -> int:
        now_ms = int(time.time() * 1000)
        snowflake = max((now_ms - DISCORD_EPOCH_MS) << 22 | 1 << 17, self._last + 1)
        self._last = snowflake
        return snowflake

    def on_shard(self, shard_id: int, shard_count: int) -> int:
        """The next id whose guild would be on shard ``shard_id`` of ``shard_count``: its
        timestamp moved up by less than ``shard_count`` milliseconds."""
        if not 0 <= shard_id < shard_count:
            raise ValueError(f"shard {shard_id} of {shard_count} does not exist")
        snowflake = self()
        ms = snowflake >> 22
        moved = (ms + (shard_id - ms) % shard_count) << 22 | snowflake & (1 << 22) - 1
        self._last = max(self._last, moved)
        return moved

    def on_shard_zero(self) -> int:
        """An id (from up to 12 minutes ago) whose guild is on shard 0 of any count from 1
        to 16, so that the fixed guild is where tests expect it whatever count they use.
        Only for the first id made: it may be older than ids made before it."""
        ms = (self() >> 22) // ZERO_FOR_ALL * ZERO_FOR_ALL
        return ms << 22 | 1 << 17


# Least common multiple of 1..16: a timestamp divisible by it is 0 modulo each of them.
ZERO_FOR_ALL = 720_720


def iso_timestamp(when: datetime | None = None) -> str:
    """A timestamp the way Discord writes them: ``2024-05-01T12:34:56.789000+00:00``."""
    return (when or datetime.now(UTC)).isoformat(timespec="microseconds")


def json_response(data: Any, status: int = 200) -> web.Response:
    """A JSON response whose Content-Type is exactly ``application/json``.

    discord.py parses a body as JSON only if the header is exactly that; aiohttp's
    ``web.json_response`` would add ``; charset=utf-8`` and the bot would see a str.
    """
    body = json.dumps(data, ensure_ascii=False).encode()
    return web.Response(status=status, body=body, content_type="application/json")
