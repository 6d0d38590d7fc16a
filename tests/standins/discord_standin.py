"""A local stand-in for Discord: REST API v10 and the gateway websocket, on 127.0.0.1.

The bot under test runs unmodified (discord.py included) and talks real HTTP and a
real websocket to this server, which holds a small fixed world: one guild with a
category, two text channels ("general", "random"), a thread in general, an
announcement channel, a voice and a stage channel (with their text chat), a
private thread the bot was added to and a forum channel ("forum"); users alice, bob
(display name "Zoë 🌟"), carol (Moderators role), other_bot and owner (owns the guild
and the app) besides the bot "ChatBot" (with its managed role), plus "user_0",
"user_1", ... made on first use; DMs made on demand. Tests drive it like people on
Discord would and inspect what the bot did::

    async with DiscordStandIn() as discord_:
        # point the bot at discord_.url (REST under /api/v10) and discord_.gateway_url
        await discord_.wait_until_ready()                # READY + GUILD_CREATE sent
        await discord_.user_says("general", "alice", "hi", mention_bot=True)
        await discord_.wait_for(lambda: discord_.bot_messages("general"))

Behaviour copied from Discord (and relied on by discord.py):

* Gateway: HELLO on connect; IDENTIFY checks the token (close 4004) and privileged
  intents (close 4014 when the portal switch is off); READY then GUILD_CREATE;
  HEARTBEAT is ACKed; RESUME is answered INVALID_SESSION (no resuming here).
  Frames are uncompressed JSON text; discord.py accepts them although it asks for
  zlib-stream. A new IDENTIFY (the bot restarted) takes over event delivery.
* Without the Message Content intent in IDENTIFY, guild messages arrive with empty
  content, embeds, attachments and components unless they mention the bot or are
  the bot's own; DMs keep their content. MESSAGE_CREATE also needs the
  GUILD_MESSAGES / DIRECT_MESSAGES intents.
* REST: every call needs ``Authorization: Bot <token>`` (else 401) except the
  interaction callback and webhook routes, where the token in the path is the
  credential; errors use Discord's JSON error bodies and codes; the bot's own posts
  and edits are echoed over the gateway as MESSAGE_CREATE / MESSAGE_UPDATE.
* Slash commands: ``CommandTree.sync()`` bulk-overwrites validated commands (ids kept
  by name); ``user_runs_command`` dispatches INTERACTION_CREATE for a registered one.
  The bot answers once, within 3 s (``interaction_response_deadline``; else 10062; a
  second answer 40060): type 4 posts a message (type 20; ephemeral ones, flag 64, stay
  out of the history and the gateway), type 5 posts a "thinking" message (flag 128)
  that the first followup or a PATCH of @original fills in. ``interaction_responses``
  and ``wait_for_interaction_response`` show what it answered::

      sent = await discord_.user_runs_command("general", "carol", "reset")
      answer = await discord_.wait_for_interaction_response(sent)  # content, ephemeral...

  Option autocomplete: ``user_types_option`` sends the APPLICATION_COMMAND_AUTOCOMPLETE
  interaction (type 4) for what is typed so far; the bot answers with type 8 and its
  ``choices`` (at most 25, names and string values 1-100 characters, else 50035), read
  with ``wait_for_autocomplete``.

Situations and faults tests can inject (each method's docstring has the details):
``fail_requests`` / ``fail_with_cloudflare_502`` / ``rate_limit`` (REST answers),
``deny`` / ``restore`` (the bot's permissions per channel; ``forbid``, ``forbid_read``
and ``allow`` are the older, silent forms), ``user_says(mention_roles=...)``,
``user_edits`` / ``user_deletes`` / ``bulk_delete`` (``deliver=False``: while the bot
is away), ``burst`` / ``crowd_says`` (many members at once), ``FakeAttachment`` with
``fail_downloads`` and ``downloaded`` (the CDN). Threads: the bot starts them from a
message (``POST .../messages/{id}/threads``; ``threads_in`` lists them; the thread has
the message's id), ``user_posts_in_forum`` (a post: a thread whose starter message has
its id), ``archive_thread`` / ``lock_thread`` / ``delete_thread`` (THREAD_UPDATE,
THREAD_DELETE; a person's message unarchives, a locked thread refuses the bot).

Adding a REST route: add a row to ``ROUTES`` (method, path under /api/v10, name of
a handler method), then write ``async def api_<name>(self, call: ApiCall)`` on
``DiscordStandIn``. The handler returns the JSON body (status 200), or None for
204, or raises ``DiscordError`` (see the ``unknown_*`` helpers). Recording and the
token check happen for you. Gateway opcodes are dispatched the same way through
``GATEWAY_OPS``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import json
import logging
import math
import mimetypes
import re
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from aiohttp import WSMsgType, web

from tests.standins.recording import RecordedRequest, Recorder

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------
# Route table: (HTTP method, path under /api/v10, handler method "api_<name>").
# aiohttp tries routes in this order, so fixed paths (/users/@me) come before
# patterns that would also match them (/users/{user_id}).
# --------------------------------------------------------------------------------------
ROUTES: tuple[tuple[str, str, str], ...] = (
    ("GET", "/users/@me", "get_current_user"),
    ("POST", "/users/@me/channels", "create_dm"),
    ("GET", "/users/{user_id}", "get_user"),
    ("GET", "/gateway", "get_gateway"),
    ("GET", "/gateway/bot", "get_gateway_bot"),
    ("GET", "/oauth2/applications/@me", "get_application"),  # what discord.py calls
    ("GET", "/applications/@me", "get_application"),
    ("GET", "/guilds/{guild_id}/members/{user_id}", "get_member"),
    ("GET", "/channels/{channel_id}", "get_channel"),
    ("GET", "/channels/{channel_id}/messages", "list_messages"),
    ("POST", "/channels/{channel_id}/messages", "create_message"),
    ("GET", "/channels/{channel_id}/messages/{message_id}", "get_message"),
    ("PATCH", "/channels/{channel_id}/messages/{message_id}", "edit_message"),
    ("DELETE", "/channels/{channel_id}/messages/{message_id}", "delete_message"),
    ("PUT", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me", "add_reaction"),
    ("POST", "/channels/{channel_id}/messages/{message_id}/threads", "start_thread"),
    ("POST", "/channels/{channel_id}/typing", "trigger_typing"),
    # Application commands: bulk overwrite (what CommandTree.sync calls) and listing.
    ("GET", "/applications/{application_id}/commands", "get_global_commands"),
    ("PUT", "/applications/{application_id}/commands", "overwrite_global_commands"),
    ("GET", "/applications/{application_id}/guilds/{guild_id}/commands", "get_guild_commands"),
    (
        "PUT",
        "/applications/{application_id}/guilds/{guild_id}/commands",
        "overwrite_guild_commands",
    ),
    # Interactions: the initial response, then the interaction webhook (no bot token).
    ("POST", "/interactions/{interaction_id}/{token}/callback", "interaction_callback"),
    ("POST", "/webhooks/{application_id}/{token}", "create_followup"),
    ("GET", "/webhooks/{application_id}/{token}/messages/{message_id}", "get_webhook_message"),
    ("PATCH", "/webhooks/{application_id}/{token}/messages/{message_id}", "edit_webhook_message"),
    (
        "DELETE",
        "/webhooks/{application_id}/{token}/messages/{message_id}",
        "delete_webhook_message",
    ),
)

ROUTE_NAMES = frozenset(name for _, _, name in ROUTES)

# Paths (under /api/v10) Discord serves without ``Authorization``: the interaction
# token in the path is the credential, and discord.py sends no bot token there.
UNAUTHENTICATED_PATHS = re.compile(r"/interactions/\d+/[^/]+/callback|/webhooks/\d+/[^/]+(/.*)?")

# Gateway opcodes the client may send -> handler method "_op_<name>".
GATEWAY_OPS: dict[int, str] = {
    1: "heartbeat",
    2: "identify",
    3: "presence_update",
    4: "voice_state_update",
    6: "resume",
    8: "request_guild_members",
}

API_PREFIX = "/api/v10"
# Attachment downloads: ``url`` is /attachments/... (cdn.discordapp.com on Discord) and
# ``proxy_url`` /media/attachments/... (media.discordapp.net).
CDN_MEDIA_PREFIX = "media"
CDN_PATHS = ("/attachments/{channel_id}/{attachment_id}/{filename}",
             "/media/attachments/{channel_id}/{attachment_id}/{filename}")  # fmt: skip
CDN_GONE = "This content is no longer available."
GATEWAY_PATH = "/gateway"
DISCORD_EPOCH_MS = 1_420_070_400_000
MAX_CONTENT_LENGTH = 2000
MAX_EMBEDS = 10

# Gateway opcodes the server sends.
OP_DISPATCH, OP_HEARTBEAT, OP_INVALID_SESSION, OP_HELLO, OP_HEARTBEAT_ACK = 0, 1, 9, 10, 11

# Gateway intents (https://discord.com/developers/docs/events/gateway#gateway-intents).
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_PRESENCES = 1 << 8
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = INTENT_GUILD_MEMBERS | INTENT_GUILD_PRESENCES | INTENT_MESSAGE_CONTENT

# Application flags: the portal switches for privileged intents (unverified app).
APP_FLAG_PRESENCE_LIMITED = 1 << 13
APP_FLAG_GUILD_MEMBERS_LIMITED = 1 << 15
APP_FLAG_MESSAGE_CONTENT_LIMITED = 1 << 19

# Channel and message types.
CHANNEL_TEXT, CHANNEL_DM, CHANNEL_CATEGORY, CHANNEL_PUBLIC_THREAD = 0, 1, 4, 11
CHANNEL_VOICE, CHANNEL_ANNOUNCEMENT, CHANNEL_PRIVATE_THREAD, CHANNEL_STAGE = 2, 5, 12, 13
CHANNEL_FORUM = 15  # its posts are public threads (resources/channel#channel-object-channel-types)
VOICE_TYPES = frozenset({CHANNEL_VOICE, CHANNEL_STAGE})  # their text chat needs Connect too
THREAD_TYPES = frozenset({CHANNEL_PUBLIC_THREAD, CHANNEL_PRIVATE_THREAD})
MESSAGE_DEFAULT, MESSAGE_USER_JOIN, MESSAGE_REPLY = 0, 7, 19
MESSAGE_CHAT_INPUT_COMMAND = 20  # the message an interaction response creates

# Message flags.
FLAG_SUPPRESS_EMBEDS, FLAG_EPHEMERAL, FLAG_LOADING = 1 << 2, 1 << 6, 1 << 7
FLAG_HAS_THREAD = 1 << 5  # a thread was started from this message
MAX_THREAD_NAME = (
    100  # a thread's name: 1-100 characters (resources/channel#start-thread-from-message)
)

# Application commands and interactions.
COMMAND_CHAT_INPUT, COMMAND_USER, COMMAND_MESSAGE, COMMAND_PRIMARY_ENTRY_POINT = 1, 2, 3, 4
INTERACTION_APPLICATION_COMMAND, INTERACTION_AUTOCOMPLETE = 2, 4
CONTEXT_GUILD, CONTEXT_BOT_DM, CONTEXT_PRIVATE_CHANNEL = 0, 1, 2
CALLBACK_CHANNEL_MESSAGE, CALLBACK_DEFERRED_CHANNEL_MESSAGE = 4, 5
CALLBACK_AUTOCOMPLETE_RESULT = 8  # the only answer to an autocomplete interaction
MAX_CHOICE_NAME = 100  # a choice's name, and a string choice's value: 1-100 characters
OPTION_SUB_COMMAND, OPTION_SUB_COMMAND_GROUP, OPTION_STRING, OPTION_INTEGER = 1, 2, 3, 4
OPTION_BOOLEAN, OPTION_USER, OPTION_CHANNEL, OPTION_NUMBER = 5, 6, 7, 10
SUBCOMMAND_TYPES = (OPTION_SUB_COMMAND, OPTION_SUB_COMMAND_GROUP)
COMMAND_NAME = re.compile(r"[-_'\w]{1,32}")  # Discord: [-_'\p{L}\p{N}\p{sc=Deva}\p{sc=Thai}]
MAX_COMMANDS, MAX_OPTIONS, MAX_CHOICES = 100, 25, 25
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024  # interactions carry it; discord.py requires it

# Permission bits used by the fixed roles.
P_CREATE_INVITE, P_KICK, P_ADD_REACTIONS = 1 << 0, 1 << 1, 1 << 6
P_VIEW_CHANNEL, P_SEND_MESSAGES, P_MANAGE_MESSAGES = 1 << 10, 1 << 11, 1 << 13
P_EMBED_LINKS, P_ATTACH_FILES, P_READ_HISTORY = 1 << 14, 1 << 15, 1 << 16
P_MENTION_EVERYONE, P_EXTERNAL_EMOJIS, P_CONNECT, P_SPEAK = 1 << 17, 1 << 18, 1 << 20, 1 << 21
P_CHANGE_NICKNAME, P_MANAGE_THREADS, P_CREATE_PUBLIC_THREADS = 1 << 26, 1 << 34, 1 << 35
P_SEND_IN_THREADS, P_MODERATE_MEMBERS = 1 << 38, 1 << 40
P_ADMINISTRATOR, P_USE_APPLICATION_COMMANDS = 1 << 3, 1 << 31
P_SEND_TTS, P_CREATE_PRIVATE_THREADS = 1 << 12, 1 << 36
ALL_PERMISSIONS = (1 << 53) - 1
# Discord's names for the permission bits a test may deny the bot in a channel
# (https://discord.com/developers/docs/topics/permissions#permissions-bitwise-permission-flags).
PERMISSIONS: dict[str, int] = {
    "CREATE_INSTANT_INVITE": P_CREATE_INVITE,
    "ADD_REACTIONS": P_ADD_REACTIONS,
    "VIEW_CHANNEL": P_VIEW_CHANNEL,
    "SEND_MESSAGES": P_SEND_MESSAGES,
    "SEND_TTS_MESSAGES": P_SEND_TTS,
    "MANAGE_MESSAGES": P_MANAGE_MESSAGES,
    "EMBED_LINKS": P_EMBED_LINKS,
    "ATTACH_FILES": P_ATTACH_FILES,
    "READ_MESSAGE_HISTORY": P_READ_HISTORY,
    "MENTION_EVERYONE": P_MENTION_EVERYONE,
    "USE_EXTERNAL_EMOJIS": P_EXTERNAL_EMOJIS,
    "CONNECT": P_CONNECT,
    "SPEAK": P_SPEAK,
    "USE_APPLICATION_COMMANDS": P_USE_APPLICATION_COMMANDS,
    "MANAGE_THREADS": P_MANAGE_THREADS,
    "CREATE_PUBLIC_THREADS": P_CREATE_PUBLIC_THREADS,
    "CREATE_PRIVATE_THREADS": P_CREATE_PRIVATE_THREADS,
    "SEND_MESSAGES_IN_THREADS": P_SEND_IN_THREADS,
}
# Denying SEND_MESSAGES implicitly denies these too (topics/permissions#implicit-permissions).
IMPLIED_BY_SEND = P_MENTION_EVERYONE | P_SEND_TTS | P_ATTACH_FILES | P_EMBED_LINKS
OVERWRITE_ROLE, OVERWRITE_MEMBER = 0, 1
EVERYONE_PERMISSIONS = (
    P_CREATE_INVITE | P_ADD_REACTIONS | P_VIEW_CHANNEL | P_SEND_MESSAGES | P_EMBED_LINKS
    | P_ATTACH_FILES | P_READ_HISTORY | P_EXTERNAL_EMOJIS | P_CONNECT | P_SPEAK
    | P_CHANGE_NICKNAME | P_CREATE_PUBLIC_THREADS | P_SEND_IN_THREADS | P_USE_APPLICATION_COMMANDS
)  # fmt: skip
MODERATOR_PERMISSIONS = (
    P_KICK | P_MANAGE_MESSAGES | P_MENTION_EVERYONE | P_MANAGE_THREADS | P_MODERATE_MEMBERS
)
BOT_ROLE_PERMISSIONS = EVERYONE_PERMISSIONS | P_MANAGE_MESSAGES | P_MENTION_EVERYONE
# What an app may do in a DM with its bot user (app_permissions of a DM interaction).
DM_APP_PERMISSIONS = (
    P_ADD_REACTIONS | P_VIEW_CHANNEL | P_SEND_MESSAGES | P_EMBED_LINKS | P_ATTACH_FILES
    | P_READ_HISTORY | P_MENTION_EVERYONE | P_EXTERNAL_EMOJIS | P_USE_APPLICATION_COMMANDS
)  # fmt: skip

_OPEN_THREAD = {"archived": False, "locked": False}
ALL_MENTIONS: dict[str, Any] = {"parse": ["users", "roles", "everyone"]}
# What the middleware hands the route wrapper (parsed once, recorded and passed on).
BODY_KEY = web.RequestKey("discord_standin_body", object)
FILES_KEY = web.RequestKey("discord_standin_files", list)
USER_MENTION = re.compile(r"<@!?(\d+)>")
ROLE_MENTION = re.compile(r"<@&(\d+)>")
# Users made on first mention ("user_0", "user_1", ...): a crowd for load and burst tests.
CROWD_USER = re.compile(r"user_(\d+)")


# --------------------------------------------------------------------------------------
# Errors, as Discord words them.
# --------------------------------------------------------------------------------------
class DiscordError(Exception):
    """Raised by a route handler to answer with Discord's error JSON."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{status} {body}")
        self.status = status
        self.body = body


def error(status: int, code: int, message: str) -> DiscordError:
    """A plain Discord error: ``{"message": ..., "code": ...}``."""
    return DiscordError(status, {"message": message, "code": code})


def invalid_form_body(field_name: str, code: str, message: str) -> DiscordError:
    """400 / 50035 with one field error, the way Discord reports validation failures."""
    errors = {field_name: {"_errors": [{"code": code, "message": message}]}}
    return DiscordError(400, {"code": 50035, "errors": errors, "message": "Invalid Form Body"})


def unauthorized() -> DiscordError:
    return error(401, 0, "401: Unauthorized")


def not_found() -> DiscordError:
    return error(404, 0, "404: Not Found")


def unknown_channel() -> DiscordError:
    return error(404, 10003, "Unknown Channel")


def unknown_member() -> DiscordError:
    return error(404, 10007, "Unknown Member")


def unknown_message() -> DiscordError:
    return error(404, 10008, "Unknown Message")


def unknown_user() -> DiscordError:
    return error(404, 10013, "Unknown User")


def missing_permissions() -> DiscordError:
    return error(403, 50013, "Missing Permissions")


def empty_message() -> DiscordError:
    return error(400, 50006, "Cannot send an empty message")


def form_error(path: Sequence[str | int], code: str, message: str) -> DiscordError:
    """400 / 50035 with the error nested at ``path``, e.g. ``["0", "options", "1", "name"]``.

    An empty path puts it at the top: ``{"errors": {"_errors": [...]}}``.
    """
    errors: dict[str, Any] = {"_errors": [{"code": code, "message": message}]}
    for key in reversed(path):
        errors = {str(key): errors}
    return DiscordError(400, {"code": 50035, "errors": errors, "message": "Invalid Form Body"})


def nested_form_error(failure: DiscordError, key: str) -> DiscordError:
    """A 50035 raised for a body's fields, re-reported as fields of ``key`` ("data")."""
    if failure.body.get("code") != 50035:
        return failure
    return DiscordError(400, {**failure.body, "errors": {key: failure.body["errors"]}})


def missing_access() -> DiscordError:
    return error(403, 50001, "Missing Access")


def cannot_reply_without_history() -> DiscordError:
    return error(403, 160002, "Cannot reply without permission to read message history")


def unknown_interaction() -> DiscordError:
    return error(404, 10062, "Unknown interaction")


def already_acknowledged() -> DiscordError:
    return error(400, 40060, "Interaction has already been acknowledged.")


def unknown_webhook() -> DiscordError:
    return error(404, 10015, "Unknown Webhook")


def invalid_webhook_token() -> DiscordError:
    return error(401, 50027, "Invalid Webhook Token")


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


@dataclass(eq=False)  # compared and hashed by identity: sessions live in a set
class GatewaySession:
    """One websocket connection to the gateway."""

    ws: web.WebSocketResponse
    session_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    intents: int = 0
    identified: bool = False
    sequence: int = 0
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def has(self, intent: int) -> bool:
        return bool(self.intents & intent)


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


# --------------------------------------------------------------------------------------
# The stand-in.
# --------------------------------------------------------------------------------------
class DiscordStandIn(Recorder):
    """Discord's REST API v10 and gateway for one bot, with a fixed guild and users.

    Attributes tests use most: ``users`` / ``channels`` (lookups by name), the ids
    ``bot_user_id``, ``guild_id``, ``moderators_role_id``, ``requests`` (every REST
    call), ``identifies`` (IDENTIFY payloads), ``heartbeats`` (monotonic times),
    ``gateway_frames`` (everything the bot sent on the gateway), ``ready_count``.
    """

    # Seconds the bot has for its initial interaction response (then 10062, as on Discord).
    interaction_response_deadline: float = 3.0
    # Lifetime of an interaction token for followups and edits.
    interaction_token_lifetime: float = 15 * 60.0

    def __init__(
        self,
        *,
        bot_token: str = "test-bot-token",
        message_content_intent_enabled: bool = True,
        heartbeat_interval_ms: int = 41250,
        extra_text_channels: int = 0,
    ) -> None:
        """``extra_text_channels`` adds that many text channels named "channel-0", ...
        (for load tests) to the fixed world."""
        super().__init__()
        self.bot_token = bot_token
        # The "Message Content Intent" switch in the Developer Portal.
        self.message_content_intent_enabled = message_content_intent_enabled
        self.heartbeat_interval_ms = heartbeat_interval_ms

        self.identifies: list[dict[str, Any]] = []
        self.heartbeats: list[float] = []
        self.gateway_frames: list[dict[str, Any]] = []  # every frame the bot sent
        self.ready_count = 0  # how many sessions were sent READY + GUILD_CREATE
        self.errors: list[BaseException] = []  # the stand-in's own failures (bugs): keep empty

        self._snowflake = SnowflakeFactory()
        self._build_world()
        self._users_by_id: dict[int, FakeUser] = {u.id: u for u in self.users.values()}
        for n in range(extra_text_channels):
            key = f"channel-{n}"
            self.channels[key] = FakeChannel(
                key, self._snowflake(), CHANNEL_TEXT, key, guild_id=self.guild_id,
                parent_id=self.category.id, position=2 + n,
            )  # fmt: skip
        # channel id -> message id -> stored message (gateway form, no referenced_message)
        self._messages: dict[int, dict[int, dict[str, Any]]] = {
            channel.id: {} for channel in self.channels.values()
        }
        self._channel_of: dict[int, int] = {}  # message id -> channel id
        # Permissions taken from the bot per channel id: ``_denied`` is shown to the bot as
        # a member permission overwrite; ``_hidden_denied`` is not (see ``deny``).
        self._denied: dict[int, int] = {}
        self._hidden_denied: dict[int, int] = {}
        self._forbidden_read: set[int] = set()
        # Thread id -> {"archived": bool, "locked": bool}; threads not listed are open.
        self._thread_state: dict[int, dict[str, bool]] = {}
        self._faults: list[InjectedFault] = []
        # Attachments: id -> (channel id, file); downloads of them and faults for them.
        self._files: dict[int, tuple[int, FakeAttachment]] = {}
        self.downloads: list[RecordedRequest] = []  # every GET of an attachment URL
        self._download_faults: list[InjectedFault] = []
        self._stopping = asyncio.Event()  # releases hanging answers when the server stops
        self._route_names: dict[tuple[str, str], str] = {}  # (method, path pattern) -> name
        # Application commands: guild id (None: global) -> commands as Discord stores them.
        self._commands: dict[int | None, list[dict[str, Any]]] = {}
        self._interactions: dict[int, InteractionRecord] = {}
        self._interaction_log: list[dict[str, Any]] = []  # see interaction_responses()
        self._sessions: set[GatewaySession] = set()
        self._current: GatewaySession | None = None  # receives dispatched events
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # ---- the world ---------------------------------------------------------------------

    def _build_world(self) -> None:
        new_id = self._snowflake
        self.guild_id = new_id()
        self.everyone_role_id = self.guild_id  # as on Discord
        self.moderators_role_id = new_id()
        self.bot_role_id = new_id()  # the managed role Discord gives a bot on joining
        self.helpers_role_id = new_id()  # an ordinary, mentionable role nobody holds
        # Roles by name, for user_says(mention_roles=...) and role().
        self.roles: dict[str, int] = {
            "everyone": self.everyone_role_id,
            "moderators": self.moderators_role_id,
            "helpers": self.helpers_role_id,
            "bot": self.bot_role_id,
        }
        self.guild_name = "Stand-in Guild"

        def user(key: str, username: str, global_name: str | None, **kw: Any) -> FakeUser:
            return FakeUser(key=key, id=new_id(), username=username, global_name=global_name, **kw)

        self.bot_user = user("bot", "ChatBot", None, bot=True, discriminator="4821")
        self.owner = user("owner", "owner", "Guild Owner")  # owns the guild and the app
        self.alice = user("alice", "alice", "Alice")
        self.bob = user("bob", "bob", "Zoë 🌟")  # non-ASCII on purpose
        self.carol = user("carol", "carol", "Carol")
        self.other_bot = user("other_bot", "OtherBot", None, bot=True, discriminator="1337")
        self.users: dict[str, FakeUser] = {
            u.key: u
            for u in (self.bot_user, self.owner, self.alice, self.bob, self.carol, self.other_bot)
        }
        self.bot_user_id = self.bot_user.id
        self.member_roles: dict[int, list[int]] = {
            self.bot_user.id: [self.bot_role_id],
            self.owner.id: [],
            self.alice.id: [],
            self.bob.id: [],
            self.carol.id: [self.moderators_role_id],
            self.other_bot.id: [],
        }
        self.joined_at = iso_timestamp()

        guild = {"guild_id": self.guild_id}
        self.category = FakeChannel(
            "category", new_id(), CHANNEL_CATEGORY, "Text Channels", **guild
        )
        self.general = FakeChannel(
            "general", new_id(), CHANNEL_TEXT, "general", parent_id=self.category.id, **guild
        )
        self.random = FakeChannel(
            "random", new_id(), CHANNEL_TEXT, "random", parent_id=self.category.id, position=1,
            **guild,
        )  # fmt: skip
        self.thread = FakeChannel(
            "thread", new_id(), CHANNEL_PUBLIC_THREAD, "a thread", parent_id=self.general.id,
            owner_id=self.alice.id, **guild,
        )  # fmt: skip
        # Other kinds of channel with text chat (resources/channel#channel-object-channel-types).
        self.announcements = FakeChannel(
            "announcements", new_id(), CHANNEL_ANNOUNCEMENT, "announcements",
            parent_id=self.category.id, position=2, **guild,
        )  # fmt: skip
        self.voice = FakeChannel("voice", new_id(), CHANNEL_VOICE, "Lounge", **guild)
        self.stage = FakeChannel("stage", new_id(), CHANNEL_STAGE, "Town Hall", position=1, **guild)
        # A private thread: only its members (the bot was added) and moderators see it.
        self.private_thread = FakeChannel(
            "private_thread", new_id(), CHANNEL_PRIVATE_THREAD, "a private thread",
            parent_id=self.general.id, owner_id=self.carol.id, **guild,
        )  # fmt: skip
        # A forum channel: its posts are threads (see ``user_posts_in_forum``).
        self.forum = FakeChannel(
            "forum", new_id(), CHANNEL_FORUM, "help-forum", parent_id=self.category.id,
            position=3, **guild,
        )  # fmt: skip
        self._channels_by_id: dict[int, FakeChannel] = {}  # filled by channel()
        self.channels: dict[str, FakeChannel] = {
            c.key: c
            for c in (
                self.category, self.general, self.random, self.thread, self.announcements,
                self.voice, self.stage, self.private_thread, self.forum,
            )
        }  # fmt: skip

    def user(self, ref: FakeUser | str | int) -> FakeUser:
        """The user named ``ref`` ("alice"), or with that id (int or digit string).

        "user_0", "user_1", ... name a crowd of ordinary members without roles, made on
        first use (username "user_17", display name "User 17")."""
        if isinstance(ref, FakeUser):
            return ref
        if isinstance(ref, str) and ref in self.users:
            return self.users[ref]
        if isinstance(ref, str) and (crowd := CROWD_USER.fullmatch(ref)):
            member = FakeUser(ref, self._snowflake(), ref, f"User {int(crowd[1])}")
            self.users[ref] = member
            self._users_by_id[member.id] = member
            self.member_roles[member.id] = []
            return member
        with contextlib.suppress(TypeError, ValueError):
            found = self._users_by_id.get(int(ref))
            if found is not None:
                return found
        raise KeyError(f"no user {ref!r}; known: {sorted(self.users)}")

    def role(self, ref: str | int) -> int:
        """The id of the role named ``ref`` in ``roles`` ("bot": the bot's managed role,
        "moderators", "helpers", "everyone"), or ``ref`` itself if it is a role's id."""
        if isinstance(ref, str) and ref in self.roles:
            return self.roles[ref]
        with contextlib.suppress(TypeError, ValueError):
            if int(ref) in self.roles.values():
                return int(ref)
        raise KeyError(f"no role {ref!r}; known: {sorted(self.roles)}")

    def channel(self, ref: FakeChannel | str | int) -> FakeChannel:
        """The channel named ``ref`` ("general", "dm:alice"), or with that id."""
        if isinstance(ref, FakeChannel):
            return ref
        if isinstance(ref, str) and ref in self.channels:
            return self.channels[ref]
        with contextlib.suppress(TypeError, ValueError):
            wanted = int(ref)
            # An index, so that a benchmark's 100,000 DMs are not a scan per request;
            # rebuilt when a channel added since is asked for.
            found = self._channels_by_id.get(wanted)
            if found is None:
                self._channels_by_id = {c.id: c for c in self.channels.values()}
                found = self._channels_by_id.get(wanted)
            if found is not None:
                return found
        raise KeyError(f"no channel {ref!r}; known: {sorted(self.channels)}")

    def dm_channel(self, user: FakeUser | str | int) -> FakeChannel:
        """The DM channel between the bot and ``user``, created on first use."""
        who = self.user(user)
        key = f"dm:{who.key}"
        if key not in self.channels:
            dm = FakeChannel(key, self._snowflake(), CHANNEL_DM, recipient_id=who.id)
            self.channels[key] = dm
            self._channels_by_id[dm.id] = dm
            self._messages[dm.id] = {}
        return self.channels[key]

    def _permissions(self, user: FakeUser) -> int:
        """Guild-level permissions of ``user`` (owner: everything)."""
        if user.id == self.owner.id:
            return (1 << 53) - 1
        role_permissions = {
            self.everyone_role_id: EVERYONE_PERMISSIONS,
            self.moderators_role_id: MODERATOR_PERMISSIONS,
            self.bot_role_id: BOT_ROLE_PERMISSIONS,
        }
        total = EVERYONE_PERMISSIONS
        for role_id in self.member_roles.get(user.id, []):
            total |= role_permissions.get(role_id, 0)
        return total

    # ---- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on an ephemeral port of 127.0.0.1."""
        app = web.Application(middlewares=[self._api_middleware])
        app.router.add_get(GATEWAY_PATH, self._gateway)
        app.router.add_get(GATEWAY_PATH + "/", self._gateway)
        for path in CDN_PATHS:
            app.router.add_get(path, self._cdn)
        for method, path, name in ROUTES:
            handler = self._route(getattr(self, f"api_{name}"))
            app.router.add_route(method, API_PREFIX + path, handler)
            self._route_names[method, API_PREFIX + path] = name
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        """Close every gateway connection (code 1001) and the server."""
        self._stopping.set()
        for session in list(self._sessions):
            with contextlib.suppress(Exception):
                await session.ws.close(code=1001, message=b"Stand-in shutting down")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> DiscordStandIn:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``; the REST API is under ``/api/v10``."""
        if self._port is None:
            raise RuntimeError("the stand-in is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_url(self) -> str:
        return self.url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        """``ws://127.0.0.1:PORT/gateway``."""
        return self.url.replace("http://", "ws://", 1) + GATEWAY_PATH

    @property
    def connected(self) -> bool:
        """Whether a bot session has been sent READY and is still open."""
        return self._current is not None and not self._current.ws.closed

    async def wait_until_ready(self, timeout: float = 5.0, count: int = 1) -> None:
        """Wait until READY and GUILD_CREATE have been sent to ``count`` sessions in all.

        The bot's on_ready fires later: discord.py waits ``guild_ready_timeout``
        (2 s unless the client was given another value) after the last GUILD_CREATE.
        """
        await self.wait_for(lambda: self.ready_count >= count and self.connected, timeout)

    # ---- driving the bot: what people (and Discord) do --------------------------------

    async def user_says(
        self,
        channel: FakeChannel | str | int,
        user: FakeUser | str | int,
        content: str,
        *,
        mention_bot: bool = False,
        mention_roles: Sequence[str | int] = (),
        reply_to: dict[str, Any] | str | int | None = None,
        ping_reply: bool = True,
        attachments: Sequence[FakeAttachment | str] = (),
        deliver: bool = True,
    ) -> dict[str, Any]:
        """``user`` posts ``content`` in ``channel``; the bot gets MESSAGE_CREATE.

        ``mention_bot`` puts ``<@BOT_ID>`` in front of the content unless it is there.
        ``mention_roles`` (names in ``roles`` or ids; "bot" is the bot's managed role,
        which Discord's client offers next to the bot when someone types "@ChatBot")
        puts ``<@&ROLE_ID>`` in front for each role not already in the content; every
        role mentioned in the content is listed in ``mention_roles``, and the bot user
        is not in ``mentions`` for a role mention.
        ``reply_to`` (a message dict or id in the same channel) makes it a reply
        (type 19) that pings the replied-to author unless ``ping_reply`` is False.
        ``attachments`` are ``FakeAttachment``s (or bare file names: the name is the
        content, no content_type); they become attachment objects whose ``url`` and
        ``proxy_url`` this server serves (see ``downloads``, ``fail_downloads``), e.g.
        ``attachments=[FakeAttachment("cat.png", png, width=64, height=48)]``.
        ``deliver=False`` only stores the message (history the bot never saw live);
        otherwise a bot must be connected. Returns the full message as stored.
        """
        where, author = self.channel(channel), self.user(user)
        if where.type == CHANNEL_FORUM:
            raise ValueError("a forum takes posts, not messages: use user_posts_in_forum")
        if where.is_thread and deliver:
            await self._before_post_in_thread(where, author)
        for role in reversed(mention_roles):
            role_mention = f"<@&{self.role(role)}>"
            if role_mention not in content:
                content = f"{role_mention} {content}"
        if mention_bot and self.bot_user.mention not in content:
            content = f"{self.bot_user.mention} {content}"
        reference = None
        if reply_to is not None:
            target_id = int(reply_to["id"] if isinstance(reply_to, dict) else reply_to)
            if target_id not in self._messages[where.id]:
                raise KeyError(f"no message {target_id} in {where.key}")
            reference = {"type": 0, "message_id": str(target_id), "channel_id": str(where.id)}
            if where.guild_id is not None:
                reference["guild_id"] = str(where.guild_id)
        files = [
            self._attachment_json(
                where,
                file
                if isinstance(file, FakeAttachment)
                else FakeAttachment(file, file.encode(), guess_content_type=False),
            )
            for file in attachments
        ]
        message = self._new_message(
            where,
            author,
            content,
            reference=reference,
            attachments=files,
            # None: Discord's default, which pings the replied-to author too.
            allowed_mentions=None if ping_reply else {**ALL_MENTIONS, "replied_user": False},
        )
        return await self._post_as_user(message, deliver)

    async def crowd_says(
        self,
        channel: FakeChannel | str | int,
        lines: Sequence[tuple[FakeUser | str | int, str]],
        *,
        mention_bot: bool = False,
    ) -> list[dict[str, Any]]:
        """Each ``(user, content)`` of ``lines`` is posted in ``channel`` at once, in order.

        Like ``user_says`` for every line (stored, then MESSAGE_CREATE each), but built
        first and sent back to back without waking waiters in between, so hundreds go
        out in a fraction of a second, as in a busy channel. Returns the messages.
        """
        where = self.channel(channel)
        self._require_connected_bot()
        messages = []
        for user, content in lines:
            if mention_bot and self.bot_user.mention not in content:
                content = f"{self.bot_user.mention} {content}"
            message = self._new_message(where, self.user(user), content)
            self._store(message)
            messages.append(message)
        for message in messages:
            await self._dispatch_message_event("MESSAGE_CREATE", message)
        await self.notify()
        return [self._render(m, rest=False) for m in messages]

    async def burst(
        self,
        channel: FakeChannel | str | int,
        count: int,
        *,
        text: str = "message {n} from {user}",
        first: int = 0,
        mention_bot: bool = False,
    ) -> list[dict[str, Any]]:
        """``count`` different members ("user_{first}" ... "user_{first + count - 1}")
        each say ``text`` (formatted with ``n`` and ``user``) in ``channel`` at once::

            said = await standin.burst("general", 500, mention_bot=True)
        """
        lines = [
            (f"user_{first + n}", text.format(n=n, user=f"user_{first + n}")) for n in range(count)
        ]
        return await self.crowd_says(channel, lines, mention_bot=mention_bot)

    async def user_dms(
        self, user: FakeUser | str | int, content: str, *, deliver: bool = True
    ) -> dict[str, Any]:
        """``user`` sends the bot a direct message (no guild_id, content always visible)."""
        return await self.user_says(self.dm_channel(user), user, content, deliver=deliver)

    async def system_message(
        self,
        channel: FakeChannel | str | int = "general",
        user: FakeUser | str | int = "alice",
        *,
        message_type: int = MESSAGE_USER_JOIN,
        content: str = "",
        deliver: bool = True,
    ) -> dict[str, Any]:
        """A message of a non-default type, e.g. 7 ("alice joined the server")."""
        message = self._new_message(
            self.channel(channel), self.user(user), content, message_type=message_type
        )
        return await self._post_as_user(message, deliver)

    async def user_edits(
        self, message: dict[str, Any] | str | int, content: str, *, deliver: bool = True
    ) -> dict[str, Any]:
        """The author of ``message`` edits it; the bot gets MESSAGE_UPDATE.

        As on Discord (events/gateway-events#message-update) the event carries the whole
        message as MESSAGE_CREATE would, with ``edited_timestamp`` set, ``tts`` false and
        mentions parsed again; the stored history shows the edit. discord.py fires
        ``on_message_edit`` only for messages in its cache, ``on_raw_message_edit``
        always. ``deliver=False`` edits the history only (done while the bot was away).
        """
        stored = self._stored_message(message)
        if deliver:
            self._require_connected_bot()
        self._apply_edit(stored, {"content": content})
        stored["tts"] = False
        if deliver:
            await self._dispatch_message_event("MESSAGE_UPDATE", stored)
        await self.notify()
        return self._render(stored, rest=False)

    async def user_deletes(
        self, message: dict[str, Any] | str | int, *, deliver: bool = True
    ) -> dict[str, Any]:
        """``message`` is deleted (by its author or a moderator: Discord does not say who).

        It leaves the history; the bot gets MESSAGE_DELETE ``{id, channel_id, guild_id}``
        (events/gateway-events#message-delete); replies to it keep their
        ``message_reference`` and get ``referenced_message: null``. discord.py fires
        ``on_message_delete`` only for cached messages, ``on_raw_message_delete`` always.
        Returns the event; ``deliver=False`` deletes without telling the bot.
        """
        stored = self._stored_message(message)
        if deliver:
            self._require_connected_bot()
        channel = self.channel(int(stored["channel_id"]))
        del self._messages[channel.id][int(stored["id"])]
        event = {"id": stored["id"], "channel_id": str(channel.id)}
        if channel.guild_id is not None:
            event["guild_id"] = str(channel.guild_id)
        if deliver:
            await self.dispatch("MESSAGE_DELETE", event)
        await self.notify()
        return event

    async def bulk_delete(
        self,
        channel: FakeChannel | str | int,
        messages: Sequence[dict[str, Any] | str | int],
        *,
        deliver: bool = True,
    ) -> dict[str, Any]:
        """A moderator (or a moderation bot) deletes ``messages`` of ``channel`` at once.

        They leave the history; the bot gets one MESSAGE_DELETE_BULK ``{ids, channel_id,
        guild_id}`` (events/gateway-events#message-delete-bulk); discord.py fires
        ``on_bulk_message_delete`` (cached ones) and ``on_raw_bulk_message_delete``.
        Guild channels only, 2 to 100 messages, as Discord's bulk delete allows.
        """
        where = self.channel(channel)
        if where.guild_id is None:
            raise ValueError("bulk deletion exists only in guild channels")
        if not 2 <= len(messages) <= 100:
            raise ValueError("Discord bulk-deletes 2 to 100 messages at a time")
        stored = [self._stored_message(m) for m in messages]
        if any(int(m["channel_id"]) != where.id for m in stored):
            raise ValueError(f"every message must be in {where.key}")
        if deliver:
            self._require_connected_bot()
        for message in stored:
            del self._messages[where.id][int(message["id"])]
        event = {
            "ids": [m["id"] for m in stored],
            "channel_id": str(where.id),
            "guild_id": str(where.guild_id),
        }
        if deliver:
            await self.dispatch("MESSAGE_DELETE_BULK", event)
        await self.notify()
        return event

    def _stored_message(self, message: dict[str, Any] | str | int) -> dict[str, Any]:
        message_id = int(message["id"] if isinstance(message, dict) else message)
        stored = self._find_message(message_id)
        if stored is None:
            raise KeyError(f"no message {message_id}")
        return stored

    async def dispatch(self, event: str, data: dict[str, Any]) -> bool:
        """Send any DISPATCH event to the connected bot; whether it was sent."""
        session = self._current
        if session is None or not session.identified:
            return False
        return await self._send_dispatch(session, event, data)

    async def user_runs_command(
        self,
        channel: FakeChannel | str | int,
        user: FakeUser | str | int,
        name: str,
        options: Mapping[str, Any] | list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """``user`` runs the slash command ``/name`` in ``channel``: INTERACTION_CREATE.

        Only what Discord's client would offer can be run (else KeyError): a synced
        command, guild commands in their guild, global ones in the guild and, unless
        their ``contexts`` (or ``dm_permission``) exclude it, in the bot's DM with
        ``user``. A member lacking the command's ``default_member_permissions`` gets
        PermissionError (Discord hides the command from them).
        ``options`` maps option names to values (str, int, float, bool; for user and
        channel options a name, id or Fake* object, resolved as Discord does); a list is
        sent as the raw ``options`` array. A subcommand is named by its path, as a user
        types it: ``"settings persona"`` or ``"group sub command"``; its options are
        sent nested in the subcommand (group) options, as Discord does. Returns the
        interaction as dispatched: pass it to ``wait_for_interaction_response`` /
        ``interaction_responses``.
        """
        where, who, command, leaf, nest = self._command_invoked(channel, user, name)
        raw_options, resolved = self._interaction_options(
            leaf, options, in_guild=where.guild_id is not None
        )
        return await self._dispatch_interaction(
            INTERACTION_APPLICATION_COMMAND, where, who, command, nest(raw_options), resolved
        )

    async def user_types_option(
        self,
        channel: FakeChannel | str | int,
        user: FakeUser | str | int,
        name: str,
        focused: str,
        typed: str,
        options: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``user`` types ``typed`` into the autocomplete option ``focused`` of ``/name``
        (a path, as for ``user_runs_command``) in ``channel``, with the other ``options``
        filled in so far: the APPLICATION_COMMAND_AUTOCOMPLETE interaction (type 4).

        As on Discord, the focused option carries ``"focused": true`` and the text typed
        (a string, whatever the option's type), and required options may be missing.
        Raises KeyError for an option that does not exist or has no autocomplete.
        Returns the interaction as dispatched (for ``wait_for_autocomplete``).
        """
        where, who, command, leaf, nest = self._command_invoked(channel, user, name)
        spec = next((o for o in leaf.get("options", []) if o["name"] == focused), None)
        if spec is None or not spec.get("autocomplete"):
            raise KeyError(f"/{name} has no autocomplete option {focused!r}")
        raw_options, resolved = self._interaction_options(
            leaf, options, in_guild=where.guild_id is not None, partial=True
        )
        raw_options.append({"name": focused, "type": spec["type"], "value": typed, "focused": True})
        return await self._dispatch_interaction(
            INTERACTION_AUTOCOMPLETE, where, who, command, nest(raw_options), resolved
        )

    def _command_invoked(
        self, channel: FakeChannel | str | int, user: FakeUser | str | int, name: str
    ) -> tuple[
        FakeChannel,
        FakeUser,
        dict[str, Any],
        dict[str, Any],
        Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
    ]:
        """Where, who, the command and the (sub)command ``name`` names, and how to nest
        its options; raises as ``user_runs_command`` says."""
        name, *path = name.split()
        where, who = self.channel(channel), self.user(user)
        if where.type == CHANNEL_CATEGORY:
            raise ValueError("commands run in text channels, threads and DMs")
        if where.is_dm and where.recipient_id != who.id:
            raise ValueError(f"{who.key} is not in {where.key}")
        self._require_connected_bot()
        command = self._command_for(where, who, name)
        leaf, nest = self._subcommand(command, path)
        return where, who, command, leaf, nest

    async def _dispatch_interaction(
        self,
        kind: int,
        where: FakeChannel,
        who: FakeUser,
        command: dict[str, Any],
        raw_options: list[dict[str, Any]],
        resolved: dict[str, Any],
    ) -> dict[str, Any]:
        """Send INTERACTION_CREATE of type ``kind`` for ``command``; the payload sent."""
        in_guild = where.guild_id is not None
        data: dict[str, Any] = {
            "id": command["id"],
            "name": command["name"],
            "type": command["type"],
        }
        if "guild_id" in command:
            data["guild_id"] = command["guild_id"]  # discord.py looks guild commands up by it
        if raw_options:
            data["options"] = raw_options
        if resolved:
            data["resolved"] = resolved
        interaction_id = self._snowflake()
        secret = f"interaction:{interaction_id}:{uuid.uuid4().hex}{uuid.uuid4().hex}"
        payload: dict[str, Any] = {
            "id": str(interaction_id),
            "application_id": str(self.application_id),
            "type": kind,
            "data": data,
            "channel_id": str(where.id),
            "channel": self._interaction_channel_json(where, who),
            "token": base64.urlsafe_b64encode(secret.encode()).decode().rstrip("="),
            "version": 1,
            "app_permissions": str(self._app_permissions(where)),
            "locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(self.guild_id) if in_guild else "0"},
            "context": CONTEXT_GUILD if in_guild else CONTEXT_BOT_DM,
            "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
        }
        if in_guild:
            payload.update(
                guild_id=str(self.guild_id),
                guild={"id": str(self.guild_id), "locale": "en-US", "features": []},
                guild_locale="en-US",
                member={**self._member_json(who), "permissions": str(self._permissions(who))},
            )
        else:
            payload["user"] = who.to_json()
        self._interactions[interaction_id] = InteractionRecord(payload, where, who)
        await self.dispatch("INTERACTION_CREATE", payload)
        await self.notify()
        return copy.deepcopy(payload)

    # ---- threads and forum posts ----------------------------------------------------------

    def threads_in(self, parent: FakeChannel | str | int) -> list[FakeChannel]:
        """The threads of ``parent`` (a text or forum channel), oldest first."""
        where = self.channel(parent)
        found = [c for c in self.channels.values() if c.is_thread and c.parent_id == where.id]
        return sorted(found, key=lambda c: c.id)

    def thread_state(self, thread: FakeChannel | str | int) -> dict[str, bool]:
        """``{"archived": ..., "locked": ...}`` of ``thread`` now."""
        return dict(self._thread_state.get(self.channel(thread).id, _OPEN_THREAD))

    async def user_posts_in_forum(
        self,
        forum: FakeChannel | str | int,
        user: FakeUser | str | int,
        title: str,
        content: str,
        *,
        mention_bot: bool = False,
    ) -> tuple[FakeChannel, dict[str, Any]]:
        """``user`` creates a post titled ``title`` in the forum channel ``forum``.

        As on Discord, the post is a public thread (type 11) named ``title`` whose
        starter message (``content``) is inside it and has the thread's id; the bot gets
        THREAD_CREATE (``newly_created``) and then MESSAGE_CREATE. Returns the thread and
        the starter message."""
        where, author = self.channel(forum), self.user(user)
        if where.type != CHANNEL_FORUM:
            raise ValueError(f"{where.key} is not a forum channel")
        if not 1 <= len(title) <= MAX_THREAD_NAME:
            raise ValueError("a post's title has 1-100 characters")
        self._require_connected_bot()
        if mention_bot and self.bot_user.mention not in content:
            content = f"{self.bot_user.mention} {content}"
        thread_id = self._snowflake()
        thread = self._add_thread(where, thread_id, title, author)
        message = self._new_message(thread, author, content, message_id=thread_id)
        self._store(message)
        await self.dispatch("THREAD_CREATE", {**self._channel_json(thread), "newly_created": True})
        await self._dispatch_message_event("MESSAGE_CREATE", message)
        await self.notify()
        return thread, self._render(message, rest=False)

    async def archive_thread(
        self, thread: FakeChannel | str | int, *, locked: bool = False
    ) -> None:
        """Archive ``thread`` (and lock it if ``locked``), as auto-archiving or a moderator
        would; the bot gets THREAD_UPDATE. A person's next message unarchives it unless it
        is locked (see ``user_says``)."""
        await self._set_thread_state(self.channel(thread), archived=True, locked=locked)

    async def lock_thread(self, thread: FakeChannel | str | int) -> None:
        """A moderator locks ``thread`` (it stays open): only members with Manage Threads
        may post in it now; the bot (without it) gets 403 / 50013. THREAD_UPDATE."""
        await self._set_thread_state(self.channel(thread), archived=False, locked=True)

    async def delete_thread(self, thread: FakeChannel | str | int) -> None:
        """Delete ``thread`` and its messages; the bot gets THREAD_DELETE, and every REST
        call on it then answers 404 / 10003 Unknown Channel."""
        where = self.channel(thread)
        if not where.is_thread:
            raise ValueError(f"{where.key} is not a thread")
        del self.channels[where.key]
        self._channels_by_id.pop(where.id, None)
        self._messages.pop(where.id, None)
        self._thread_state.pop(where.id, None)
        event = {
            "id": str(where.id),
            "guild_id": str(where.guild_id),
            "parent_id": str(where.parent_id),
            "type": where.type,
        }
        await self.dispatch("THREAD_DELETE", event)
        await self.notify()

    def _add_thread(
        self, parent: FakeChannel, thread_id: int, name: str, owner: FakeUser
    ) -> FakeChannel:
        thread = FakeChannel(
            f"thread-{thread_id}", thread_id, CHANNEL_PUBLIC_THREAD, name,
            guild_id=parent.guild_id, parent_id=parent.id, owner_id=owner.id,
        )  # fmt: skip
        self.channels[thread.key] = thread
        self._messages[thread.id] = {}
        return thread

    async def _set_thread_state(self, thread: FakeChannel, **state: bool) -> None:
        if not thread.is_thread:
            raise ValueError(f"{thread.key} is not a thread")
        self._thread_state[thread.id] = {**self.thread_state(thread), **state}
        await self.dispatch("THREAD_UPDATE", self._channel_json(thread))
        await self.notify()

    def _may_manage_threads(self, user: FakeUser, thread: FakeChannel) -> bool:
        if user.id == self.bot_user.id:
            return bool(self.bot_permissions(thread) & P_MANAGE_THREADS)
        return bool(self._permissions(user) & P_MANAGE_THREADS)

    async def _before_post_in_thread(self, thread: FakeChannel, author: FakeUser) -> None:
        """Discord's rules for a post in a thread: a locked thread takes posts only from
        members with Manage Threads; a post in an archived thread unarchives it."""
        state = self.thread_state(thread)
        if state["locked"] and not self._may_manage_threads(author, thread):
            if author.id == self.bot_user.id:
                raise missing_permissions()
            raise ValueError(f"{thread.key} is locked: only moderators may post in it")
        if state["archived"]:
            await self._set_thread_state(thread, archived=False)

    # ---- fault injection ---------------------------------------------------------------

    def forbid(self, channel: FakeChannel | str | int) -> None:
        """Posts, edits, reactions and typing in ``channel`` now get 403 / 50013 Missing
        Permissions (Send Messages, or Send Messages in Threads in a thread, and Add
        Reactions are gone).

        The bot is not told (its cached permissions still say it may post), like a
        moderator removing the permission in a way the bot did not follow. ``deny``
        is the general form.
        """
        where = self.channel(channel)
        send = P_SEND_IN_THREADS if where.is_thread else P_SEND_MESSAGES
        self._hidden_denied[where.id] = (
            self._hidden_denied.get(where.id, 0) | send | P_ADD_REACTIONS
        )

    def forbid_read(self, channel: FakeChannel | str | int) -> None:
        """Reading ``channel`` over REST (history, one message) now gets 403 / 50001
        Missing Access, as when the bot lost View Channel there. Posting is ``forbid``'s."""
        self._forbidden_read.add(self.channel(channel).id)

    def allow(self, channel: FakeChannel | str | int) -> None:
        """Undo ``forbid``, ``forbid_read`` and ``deny(..., tell_bot=False)`` (silently);
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

    def bot_permissions(self, channel: FakeChannel | str | int) -> int:
        """The bot's permissions in ``channel`` as Discord computes them (what REST enforces):
        its roles, the channel's (for a thread: its parent's) overwrites, hidden denials,
        then the implicit rules for VIEW_CHANNEL and SEND_MESSAGES."""
        where = self.channel(channel)
        if where.is_dm:
            return DM_APP_PERMISSIONS
        permissions = self._permissions(self.bot_user)
        if permissions & P_ADMINISTRATOR:
            return ALL_PERMISSIONS
        source = self.channel(where.parent_id) if where.is_thread and where.parent_id else where
        for denied in (self._denied, self._hidden_denied):
            permissions &= ~denied.get(source.id, 0)
        permissions &= ~self._hidden_denied.get(where.id, 0)
        if not permissions & P_VIEW_CHANNEL:
            return 0
        send = P_SEND_IN_THREADS if where.is_thread else P_SEND_MESSAGES
        if not permissions & send:
            permissions &= ~IMPLIED_BY_SEND
        return permissions

    @staticmethod
    def _permission_bits(permissions: Sequence[str | int]) -> int:
        bits = 0
        for permission in permissions:
            if isinstance(permission, str):
                try:
                    bits |= PERMISSIONS[permission.upper()]
                except KeyError:
                    raise KeyError(
                        f"unknown permission {permission!r}; known: {sorted(PERMISSIONS)}"
                    ) from None
            else:
                bits |= int(permission)
        if not bits:
            raise ValueError("name at least one permission")
        return bits

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

    def injected_failures(self) -> list[RecordedRequest]:
        """Requests answered with an injected fault, in order."""
        return [r for r in self.requests if r.fault is not None]

    # ---- inspecting what the bot did ---------------------------------------------------

    def messages(self, channel: FakeChannel | str | int) -> list[dict[str, Any]]:
        """Every message in ``channel``, oldest first, as the REST API returns them."""
        stored = self._messages[self.channel(channel).id]
        return [self._render(stored[i], rest=True) for i in sorted(stored)]

    def bot_messages(self, channel: FakeChannel | str | int) -> list[dict[str, Any]]:
        """The bot's messages in ``channel`` that still exist, oldest first, as edited."""
        bot_id = str(self.bot_user.id)
        return [m for m in self.messages(channel) if m["author"]["id"] == bot_id]

    def requests_to(
        self, method: str, path: str, channel: FakeChannel | str | int | None = None
    ) -> list[RecordedRequest]:
        """Recorded requests with this method whose path (under /api/v10) matches.

        ``path`` is a regular expression matched against the whole path; with
        ``channel`` given, ``{channel_id}`` in it is replaced by that channel's id.
        """
        if channel is not None:
            path = path.replace("{channel_id}", str(self.channel(channel).id))
        pattern = re.compile(re.escape(API_PREFIX) + path)
        return [r for r in self.requests if r.method == method and pattern.fullmatch(r.path)]

    def posts(self, channel: FakeChannel | str | int) -> list[RecordedRequest]:
        """POST /channels/{id}/messages requests for ``channel`` (successful or not)."""
        return self.requests_to("POST", "/channels/{channel_id}/messages", channel)

    def edits(self, channel: FakeChannel | str | int) -> list[RecordedRequest]:
        """PATCH /channels/{id}/messages/{mid} requests for ``channel``."""
        return self.requests_to("PATCH", r"/channels/{channel_id}/messages/\d+", channel)

    def typing_requests(self, channel: FakeChannel | str | int) -> list[RecordedRequest]:
        """POST /channels/{id}/typing requests for ``channel``."""
        return self.requests_to("POST", "/channels/{channel_id}/typing", channel)

    def registered_commands(self, guild: int | str | None = None) -> list[dict[str, Any]]:
        """The application commands as Discord stores them: global ones, or ``guild``'s."""
        return copy.deepcopy(self._commands.get(None if guild is None else int(guild), []))

    def interaction_responses(
        self, interaction: dict[str, Any] | int | str | None = None
    ) -> list[dict[str, Any]]:
        """What the bot answered to interactions (or to ``interaction``), in order.

        One entry per successful call: ``kind`` is "callback" (the initial response;
        ``type`` 4 or 5), "followup", "edit" or "delete"; ``content``, ``flags``,
        ``ephemeral`` and ``deferred`` (still "thinking") describe the message after the
        call; ``message_id``, ``channel_id``, ``interaction_id``, ``command`` and the
        request ``payload`` too. Ephemeral answers are here but not in ``messages()``.
        """
        wanted = None if interaction is None else self._interaction_id_of(interaction)
        return [
            copy.deepcopy(entry)
            for entry in self._interaction_log
            if wanted is None or entry["interaction_id"] == wanted
        ]

    async def wait_for_interaction_response(
        self,
        interaction: dict[str, Any] | int | str,
        timeout: float = 2.0,
        *,
        deferred: bool = False,
    ) -> dict[str, Any]:
        """The first answer to ``interaction`` (an ``interaction_responses`` entry).

        A bare deferral does not count unless ``deferred``: then this waits for the
        followup or edit that fills in the "thinking" message.
        """
        wanted = self._interaction_id_of(interaction)

        def answer() -> dict[str, Any] | None:
            for entry in self._interaction_log:
                if entry["interaction_id"] != wanted or entry["kind"] == "delete":
                    continue
                if deferred or not entry["deferred"]:
                    return copy.deepcopy(entry)
            return None

        return await self.wait_for(answer, timeout)

    async def wait_for_autocomplete(
        self, interaction: dict[str, Any] | int | str, timeout: float = 2.0
    ) -> list[dict[str, Any]]:
        """The ``choices`` the bot suggested for ``interaction`` (``user_types_option``)."""
        wanted = self._interaction_id_of(interaction)

        def answered() -> dict[str, Any] | None:
            for entry in self._interaction_log:
                if entry["interaction_id"] == wanted and entry["kind"] == "autocomplete":
                    return entry
            return None

        return copy.deepcopy((await self.wait_for(answered, timeout))["choices"])

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
            "shards": 1,
            "session_start_limit": {
                "total": 1000,
                "remaining": 1000 - len(self.identifies),
                "reset_after": 86_400_000,
                "max_concurrency": 1,
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
        if call.params["guild_id"] != str(self.guild_id):
            raise error(404, 10004, "Unknown Guild")
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

    # ---- REST routes: application commands ----------------------------------------------

    @property
    def application_id(self) -> int:
        """The app's id (READY's ``application.id``): the bot user's id, as for today's apps."""
        return self.bot_user.id

    def _check_application(self, call: ApiCall) -> None:
        if call.params["application_id"] != str(self.application_id):
            raise missing_access()

    def _command_guild(self, call: ApiCall) -> int:
        if call.params["guild_id"] != str(self.guild_id):
            raise error(404, 10004, "Unknown Guild")
        return self.guild_id

    async def api_get_global_commands(self, call: ApiCall) -> Any:
        self._check_application(call)
        return self.registered_commands()

    async def api_get_guild_commands(self, call: ApiCall) -> Any:
        self._check_application(call)
        return self.registered_commands(self._command_guild(call))

    async def api_overwrite_global_commands(self, call: ApiCall) -> Any:
        self._check_application(call)
        return await self._overwrite_commands(None, call.body)

    async def api_overwrite_guild_commands(self, call: ApiCall) -> Any:
        self._check_application(call)
        return await self._overwrite_commands(self._command_guild(call), call.body)

    async def _overwrite_commands(self, guild_id: int | None, body: Any) -> list[dict[str, Any]]:
        """Bulk overwrite: validate every command, then replace the scope's commands.

        A command keeps its id (and version, if unchanged) when one of the same name and
        type was there; the others get new ids; commands not in ``body`` are deleted.
        """
        if not isinstance(body, list):
            raise form_error([], "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType.")
        checked = [
            self._checked_command(raw, [index], in_guild=guild_id is not None)
            for index, raw in enumerate(body)
        ]
        if sum(c["type"] == COMMAND_CHAT_INPUT for c in checked) > MAX_COMMANDS:
            raise form_error(
                [], "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_COMMANDS} or fewer in length."
            )
        seen: set[tuple[str, int]] = set()
        for index, command in enumerate(checked):
            key = (command["name"], command["type"])
            if key in seen:
                raise form_error(
                    [index, "name"],
                    "APPLICATION_COMMANDS_DUPLICATE_NAME",
                    "Application command names must be unique",
                )
            seen.add(key)
        previous = {(c["name"], c["type"]): c for c in self._commands.get(guild_id, [])}
        stored = []
        for command in checked:
            before = previous.get((command["name"], command["type"]))
            unchanged = before is not None and all(before.get(k) == v for k, v in command.items())
            stored.append(
                {
                    "id": before["id"] if before else str(self._snowflake()),
                    "application_id": str(self.application_id),
                    "version": before["version"]
                    if before and unchanged
                    else str(self._snowflake()),
                    **command,
                    **({"guild_id": str(guild_id)} if guild_id is not None else {}),
                }
            )
        self._commands[guild_id] = stored
        await self.notify()
        return copy.deepcopy(stored)

    @staticmethod
    def _checked_name(name: Any, path: list[str | int], *, chat_input: bool) -> str:
        if not isinstance(name, str):
            raise form_error(path, "BASE_TYPE_REQUIRED", "This field is required")
        if not 1 <= len(name) <= 32:
            raise form_error(path, "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32 in length.")
        if chat_input and (not COMMAND_NAME.fullmatch(name) or name != name.lower()):
            raise form_error(path, "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
        return name

    @staticmethod
    def _checked_description(description: Any, path: list[str | int]) -> str:
        if not isinstance(description, str):
            raise form_error(path, "BASE_TYPE_REQUIRED", "This field is required")
        if not 1 <= len(description) <= 100:
            raise form_error(path, "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
        return description

    def _checked_command(
        self, raw: Any, path: list[str | int], *, in_guild: bool
    ) -> dict[str, Any]:
        """One command of a bulk overwrite, as Discord stores it (without id and version)."""
        if not isinstance(raw, dict):
            raise form_error(
                path, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType"
            )
        kind = raw.get("type") or COMMAND_CHAT_INPUT
        if kind not in (
            COMMAND_CHAT_INPUT,
            COMMAND_USER,
            COMMAND_MESSAGE,
            COMMAND_PRIMARY_ENTRY_POINT,
        ):
            raise form_error(
                [*path, "type"], "BASE_TYPE_CHOICES", "Value must be one of {1, 2, 3, 4}."
            )
        chat_input = kind == COMMAND_CHAT_INPUT
        command: dict[str, Any] = {
            "type": kind,
            "name": self._checked_name(raw.get("name"), [*path, "name"], chat_input=chat_input),
            "name_localizations": raw.get("name_localizations"),
            # Context menu commands have an empty description.
            "description": self._checked_description(raw.get("description"), [*path, "description"])
            if chat_input
            else "",
            "description_localizations": raw.get("description_localizations"),
            "default_member_permissions": None,
            "nsfw": bool(raw.get("nsfw")),
            "integration_types": [0],
        }
        permissions = raw.get("default_member_permissions")
        if permissions is not None:
            if isinstance(permissions, bool) or not str(permissions).isdigit():
                raise form_error(
                    [*path, "default_member_permissions"], "NUMBER_TYPE_COERCE", "Value is not int."
                )
            command["default_member_permissions"] = str(int(permissions))  # a string, always
        if chat_input and raw.get("options"):
            command["options"] = self._checked_options(raw["options"], [*path, "options"])
        if not in_guild:  # contexts and install types only apply to global commands
            command["dm_permission"] = raw.get("dm_permission") is not False
            command["contexts"] = self._checked_values(
                raw.get("contexts"), [*path, "contexts"], (0, 1, 2)
            )
            command["integration_types"] = self._checked_values(
                raw.get("integration_types"), [*path, "integration_types"], (0, 1)
            ) or [0]
        return command

    @staticmethod
    def _checked_values(values: Any, path: list[str | int], allowed: tuple[int, ...]) -> Any:
        if values is None:
            return None
        if not isinstance(values, list):
            raise form_error(path, "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType.")
        for index, value in enumerate(values):
            if value not in allowed:
                choices = ", ".join(map(str, allowed))
                raise form_error(
                    [*path, index], "BASE_TYPE_CHOICES", f"Value must be one of {{{choices}}}."
                )
        return list(values)

    def _checked_options(self, options: Any, path: list[str | int]) -> list[dict[str, Any]]:
        """Options of a chat input command (or subcommand), checked like Discord does."""
        if not isinstance(options, list):
            raise form_error(path, "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType.")
        if len(options) > MAX_OPTIONS:
            raise form_error(
                path, "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_OPTIONS} or fewer in length."
            )
        checked: list[dict[str, Any]] = []
        names: set[str] = set()
        optional_seen = False
        for index, raw in enumerate(options):
            where: list[str | int] = [*path, index]
            if not isinstance(raw, dict):
                raise form_error(
                    where, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType"
                )
            kind = raw.get("type")
            if kind not in range(1, 12):
                raise form_error(
                    [*where, "type"],
                    "BASE_TYPE_CHOICES",
                    "Value must be one of {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}.",
                )
            name = self._checked_name(raw.get("name"), [*where, "name"], chat_input=True)
            if name in names:
                raise form_error(
                    [*where, "name"],
                    "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS",
                    "Option names must be unique",
                )
            names.add(name)
            option = {k: v for k, v in raw.items() if v is not None}
            option["description"] = self._checked_description(
                raw.get("description"), [*where, "description"]
            )
            if kind in (OPTION_SUB_COMMAND, OPTION_SUB_COMMAND_GROUP):
                if raw.get("options"):
                    option["options"] = self._checked_options(raw["options"], [*where, "options"])
            else:
                required = bool(raw.get("required"))
                if required and optional_seen:
                    raise form_error(
                        where,
                        "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                        "Required options must be placed before non-required options",
                    )
                optional_seen = optional_seen or not required
                if len(raw.get("choices") or []) > MAX_CHOICES:
                    raise form_error(
                        [*where, "choices"],
                        "BASE_TYPE_MAX_LENGTH",
                        f"Must be {MAX_CHOICES} or fewer in length.",
                    )
            checked.append(option)
        return checked

    # ---- interactions --------------------------------------------------------------------

    def _command_for(self, where: FakeChannel, who: FakeUser, name: str) -> dict[str, Any]:
        """The registered chat input command ``/name`` as ``who`` may run it in ``where``."""

        def named(scope: int | None) -> list[dict[str, Any]]:
            return [
                c
                for c in self._commands.get(scope, [])
                if c["name"] == name and c["type"] == COMMAND_CHAT_INPUT
            ]

        context = CONTEXT_BOT_DM if where.is_dm else CONTEXT_GUILD
        usable = (named(where.guild_id) if where.guild_id is not None else []) + [
            c for c in named(None) if self._command_allowed_in(c, context)
        ]
        if not usable:
            anywhere = any(named(scope) for scope in self._commands)
            why = f"is not usable in {where.key}" if anywhere else "is not registered (not synced)"
            raise KeyError(f"/{name} {why}")
        command = usable[0]  # the guild's own command first, as Discord lists it
        required = command.get("default_member_permissions")
        if where.guild_id is not None and required is not None:
            have, need = self._permissions(who), int(required)
            if not (have & P_ADMINISTRATOR or (need and have & need == need)):
                raise PermissionError(f"{who.key} may not use /{name} (needs permissions {need})")
        return command

    @staticmethod
    def _command_allowed_in(command: dict[str, Any], context: int) -> bool:
        contexts = command.get("contexts")
        if contexts is not None:
            return context in contexts
        return context == CONTEXT_GUILD or bool(command.get("dm_permission", True))

    def _interaction_options(
        self,
        command: dict[str, Any],
        options: Mapping[str, Any] | list[dict[str, Any]] | None,
        *,
        in_guild: bool,
        partial: bool = False,
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """``data.options`` and ``data.resolved`` for the given option values (``partial``:
        a command still being typed, so required options may be missing)."""
        if options is None:
            options = {}
        if isinstance(options, list):
            return copy.deepcopy(options), {}
        specs = {o["name"]: o for o in command.get("options", [])}
        missing = [n for n, spec in specs.items() if spec.get("required") and n not in options]
        if missing and not partial:
            raise ValueError(f"/{command['name']} needs option(s) {missing}")
        out: list[dict[str, Any]] = []
        resolved: dict[str, Any] = {}
        for key, value in options.items():
            if key not in specs:
                raise KeyError(f"/{command['name']} has no option {key!r}")
            kind = specs[key]["type"]
            if kind == OPTION_USER:
                target = self.user(value)
                value = str(target.id)
                resolved.setdefault("users", {})[value] = target.to_json()
                if in_guild:
                    member = self._member_json(target, with_user=False)
                    member["permissions"] = str(self._permissions(target))
                    resolved.setdefault("members", {})[value] = member
            elif kind == OPTION_CHANNEL:
                place = self.channel(value)
                value = str(place.id)
                resolved.setdefault("channels", {})[value] = self._channel_json(place)
            elif kind not in (OPTION_STRING, OPTION_INTEGER, OPTION_BOOLEAN, OPTION_NUMBER):
                raise NotImplementedError(f"option type {kind}: pass options as a raw list")
            out.append({"name": key, "type": kind, "value": value})
        return out, resolved

    @staticmethod
    def _subcommand(
        command: dict[str, Any], path: Sequence[str]
    ) -> tuple[dict[str, Any], Callable[[list[dict[str, Any]]], list[dict[str, Any]]]]:
        """The (sub)command ``path`` names under ``command``, and how to nest its options
        (a subcommand's options go inside it, and it inside its group)."""
        leaf, names = command, []
        for part in path:
            found = next(
                (
                    o
                    for o in leaf.get("options", [])
                    if o["name"] == part and o["type"] in SUBCOMMAND_TYPES
                ),
                None,
            )
            if found is None:
                raise KeyError(f"/{command['name']} has no subcommand {' '.join(path)!r}")
            leaf = found
            names.append((part, found["type"]))
        if any(o["type"] in SUBCOMMAND_TYPES for o in leaf.get("options", [])):
            raise ValueError(f"/{command['name']} {' '.join(path)} needs a subcommand")

        def nest(options: list[dict[str, Any]]) -> list[dict[str, Any]]:
            for part, kind in reversed(names):
                options = [{"name": part, "type": kind, "options": options}]
            return options

        return leaf, nest

    def _interaction_channel_json(self, where: FakeChannel, who: FakeUser) -> dict[str, Any]:
        """The interaction's ``channel``: the channel, with the user's permissions there."""
        data = self._channel_json(where)
        if where.guild_id is not None:
            data["permissions"] = str(self._permissions(who))
        return data

    def _app_permissions(self, where: FakeChannel) -> int:
        """The bot's permissions in ``where`` as Discord computes them for an interaction."""
        permissions = self.bot_permissions(where)
        if where.id in self._forbidden_read:
            permissions &= ~(P_VIEW_CHANNEL | P_READ_HISTORY)
        return permissions

    @staticmethod
    def _interaction_id_of(interaction: dict[str, Any] | int | str) -> str:
        return str(interaction["id"] if isinstance(interaction, dict) else int(interaction))

    def _interaction_for_callback(self, call: ApiCall) -> InteractionRecord:
        try:
            record = self._interactions[int(call.params["interaction_id"])]
        except (KeyError, ValueError):
            raise unknown_interaction() from None
        if record.token != call.params["token"]:
            raise unknown_interaction()
        if record.callback_type is not None:
            raise already_acknowledged()
        if time.monotonic() - record.created > self.interaction_response_deadline:
            raise unknown_interaction()  # the 3 s are over: Discord forgot it
        return record

    def _interaction_for_webhook(self, call: ApiCall) -> InteractionRecord:
        if call.params["application_id"] != str(self.application_id):
            raise unknown_webhook()
        token = call.params["token"]
        record = next((r for r in self._interactions.values() if r.token == token), None)
        if record is None or time.monotonic() - record.created > self.interaction_token_lifetime:
            raise invalid_webhook_token()
        if record.callback_type is None or record.payload["type"] == INTERACTION_AUTOCOMPLETE:
            raise unknown_webhook()  # no initial response yet, or suggestions (no message)
        return record

    def _webhook_message(self, record: InteractionRecord, call: ApiCall) -> dict[str, Any]:
        """The interaction's message named by ``{message_id}`` ("@original" or an id)."""
        raw = call.params["message_id"]
        message_id = record.original_id if raw == "@original" else None
        with contextlib.suppress(ValueError):
            message_id = message_id or int(raw)
        message = record.messages.get(message_id or 0)
        if message is None or not (
            message["flags"] & FLAG_EPHEMERAL
            or int(message["id"]) in self._messages[record.channel.id]
        ):
            raise unknown_message()
        return message

    def _interaction_message(
        self,
        record: InteractionRecord,
        payload: dict[str, Any],
        files: Sequence[dict[str, Any]],
        *,
        flags: int,
        reference: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A message sent through the interaction: by the bot, via the app's webhook."""
        attachments = self._uploaded(record.channel, files)
        message = self._new_message(
            record.channel,
            self.bot_user,
            payload.get("content") or "",
            message_type=MESSAGE_REPLY if reference else MESSAGE_CHAT_INPUT_COMMAND,
            reference=reference,
            attachments=attachments,
            embeds=payload.get("embeds") or [],
            components=payload.get("components") or [],
            flags=flags,
            tts=bool(payload.get("tts")),
            allowed_mentions=payload.get("allowed_mentions"),
        )
        command = record.payload["data"]
        metadata: dict[str, Any] = {
            "id": str(record.id),
            "type": INTERACTION_APPLICATION_COMMAND,
            "user": record.user.to_json(),
            "authorizing_integration_owners": dict(
                record.payload["authorizing_integration_owners"]
            ),
            "name": command["name"],
            "command_type": command["type"],
        }
        if reference is not None:
            metadata["original_response_message_id"] = str(record.original_id)
        legacy: dict[str, Any] = {
            "id": str(record.id),
            "type": INTERACTION_APPLICATION_COMMAND,
            "name": command["name"],
            "user": record.user.to_json(),
        }
        if record.channel.guild_id is not None:
            legacy["member"] = self._member_json(record.user, with_user=False)
        message.update(
            webhook_id=str(self.application_id),
            application_id=str(self.application_id),
            interaction_metadata=metadata,
            interaction=legacy,
        )
        record.messages[int(message["id"])] = message
        return message

    async def _publish_interaction_message(self, message: dict[str, Any]) -> None:
        """Non-ephemeral messages join the channel's history and go out as MESSAGE_CREATE."""
        if not message["flags"] & FLAG_EPHEMERAL:
            self._store(message)
            await self._dispatch_message_event("MESSAGE_CREATE", message)

    async def _fill_in(
        self,
        message: dict[str, Any],
        payload: dict[str, Any],
        files: Sequence[dict[str, Any]],
    ) -> None:
        """Edit an interaction message (PATCH, or the first followup after a deferral).

        Only SUPPRESS_EMBEDS of ``flags`` can change; EPHEMERAL stays as it was and
        LOADING ("thinking") goes. Completing a deferral does not mark it edited.
        """
        self._validate_message_fields(payload)
        new_files = self._uploaded(self.channel(int(message["channel_id"])), files)
        was_loading = bool(message["flags"] & FLAG_LOADING)
        edited = copy.deepcopy(message)
        self._apply_edit(edited, {k: v for k, v in payload.items() if k != "flags"}, new_files)
        suppress = payload["flags"] if payload.get("flags") is not None else message["flags"]
        edited["flags"] = message["flags"] & FLAG_EPHEMERAL | suppress & FLAG_SUPPRESS_EMBEDS
        if was_loading:
            edited["edited_timestamp"] = None
        if not (
            edited["content"] or edited["embeds"] or edited["attachments"] or edited["components"]
        ):
            raise empty_message()
        message.clear()
        message.update(edited)
        if not message["flags"] & FLAG_EPHEMERAL:
            await self._dispatch_message_event("MESSAGE_UPDATE", message)

    def _log_interaction_response(
        self,
        record: InteractionRecord,
        kind: str,
        message: dict[str, Any],
        payload: Any,
        callback_type: int | None = None,
    ) -> None:
        self._interaction_log.append(
            {
                "interaction_id": str(record.id),
                "command": record.payload["data"]["name"],
                "kind": kind,
                "type": callback_type,
                "content": message["content"],
                "flags": message["flags"],
                "ephemeral": bool(message["flags"] & FLAG_EPHEMERAL),
                "deferred": bool(message["flags"] & FLAG_LOADING),
                "message_id": message["id"],
                "channel_id": message["channel_id"],
                "payload": copy.deepcopy(payload),
            }
        )

    async def api_interaction_callback(self, call: ApiCall) -> Any:
        """The initial response, once and within 3 s: type 4 (a message) or 5 (deferred).

        With ``?with_response=true`` (discord.py always sends ``with_response=1`` and
        reads the body) the answer is the interaction callback response object, else 204.
        """
        record = self._interaction_for_callback(call)
        body = call.body if isinstance(call.body, dict) else {}
        kind = body.get("type")
        if record.payload["type"] == INTERACTION_AUTOCOMPLETE:
            return await self._autocomplete_result(record, call, body)
        if kind not in (CALLBACK_CHANNEL_MESSAGE, CALLBACK_DEFERRED_CHANNEL_MESSAGE):
            if kind in (9, 12):  # modal, launch activity: valid, but not modelled here
                raise NotImplementedError(f"interaction callback type {kind}")
            raise form_error(["type"], "BASE_TYPE_CHOICES", "Value must be one of {4, 5, 9, 12}.")
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        flags = int(data.get("flags") or 0)
        if kind == CALLBACK_CHANNEL_MESSAGE:
            try:
                self._validate_message_fields(data)
            except DiscordError as failure:
                raise nested_form_error(failure, "data") from None
            if not (
                data.get("content")
                or any(data.get(k) for k in ("embeds", "components", "poll"))
                or call.files
            ):
                raise empty_message()
            allowed = FLAG_EPHEMERAL | FLAG_SUPPRESS_EMBEDS | 1 << 12  # SUPPRESS_NOTIFICATIONS
            message = self._interaction_message(record, data, call.files, flags=flags & allowed)
        else:  # "ChatBot is thinking...": an empty message with the LOADING flag
            message = self._interaction_message(
                record, {}, (), flags=flags & FLAG_EPHEMERAL | FLAG_LOADING
            )
        record.callback_type, record.original_id = kind, int(message["id"])
        await self._publish_interaction_message(message)
        self._log_interaction_response(record, "callback", message, call.body, kind)
        await self.notify()
        if call.query.get("with_response", "").lower() not in ("true", "1"):
            return None
        resource: dict[str, Any] = {"type": kind}
        if kind == CALLBACK_CHANNEL_MESSAGE:
            resource["message"] = self._render(message, rest=True)
        return {
            "interaction": {
                "id": str(record.id),
                "type": INTERACTION_APPLICATION_COMMAND,
                "response_message_id": message["id"],
                "response_message_loading": kind == CALLBACK_DEFERRED_CHANNEL_MESSAGE,
                "response_message_ephemeral": bool(message["flags"] & FLAG_EPHEMERAL),
            },
            "resource": resource,
        }

    async def _autocomplete_result(
        self, record: InteractionRecord, call: ApiCall, body: dict[str, Any]
    ) -> Any:
        """The answer to an autocomplete interaction: only type 8, with ``data.choices``
        (at most 25; each ``name`` 1-100 characters and a ``value`` of the focused
        option's type, a string one 1-100 characters), as Discord checks them."""
        if body.get("type") != CALLBACK_AUTOCOMPLETE_RESULT:
            raise form_error(["type"], "BASE_TYPE_CHOICES", "Value must be one of {8}.")
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        choices = data.get("choices")
        if not isinstance(choices, list):
            raise form_error(["data", "choices"], "BASE_TYPE_REQUIRED", "This field is required")
        if len(choices) > MAX_CHOICES:
            raise form_error(
                ["data", "choices"],
                "BASE_TYPE_MAX_LENGTH",
                f"Must be {MAX_CHOICES} or fewer in length.",
            )
        focused = _focused_option(record.payload["data"].get("options", []))
        types = {OPTION_STRING: (str,), OPTION_INTEGER: (int,), OPTION_NUMBER: (int, float)}
        for index, choice in enumerate(choices):
            where = ["data", "choices", index]
            name = choice.get("name") if isinstance(choice, dict) else None
            value = choice.get("value") if isinstance(choice, dict) else None
            if not isinstance(name, str) or not 1 <= len(name) <= MAX_CHOICE_NAME:
                raise form_error(
                    [*where, "name"],
                    "BASE_TYPE_BAD_LENGTH",
                    f"Must be between 1 and {MAX_CHOICE_NAME} in length.",
                )
            wanted = types.get(focused["type"], (str,))
            if not isinstance(value, wanted) or isinstance(value, bool):
                raise form_error([*where, "value"], "BASE_TYPE_INVALID", "Invalid value.")
            if isinstance(value, str) and not 1 <= len(value) <= MAX_CHOICE_NAME:
                raise form_error(
                    [*where, "value"],
                    "BASE_TYPE_BAD_LENGTH",
                    f"Must be between 1 and {MAX_CHOICE_NAME} in length.",
                )
        record.callback_type = CALLBACK_AUTOCOMPLETE_RESULT
        self._interaction_log.append(
            {
                "interaction_id": str(record.id),
                "command": record.payload["data"]["name"],
                "kind": "autocomplete",
                "type": CALLBACK_AUTOCOMPLETE_RESULT,
                "choices": copy.deepcopy(choices),
                "content": "",
                "flags": 0,
                "ephemeral": False,
                "deferred": False,
                "message_id": None,
                "channel_id": str(record.channel.id),
                "payload": copy.deepcopy(call.body),
            }
        )
        await self.notify()
        if call.query.get("with_response", "").lower() not in ("true", "1"):
            return None
        return {
            "interaction": {"id": str(record.id), "type": INTERACTION_AUTOCOMPLETE},
            "resource": {"type": CALLBACK_AUTOCOMPLETE_RESULT},
        }

    async def api_create_followup(self, call: ApiCall) -> Any:
        """A followup (POST /webhooks/{app}/{token}); the message itself with ``?wait=true``.

        The first followup after a deferral fills in the "thinking" message and keeps
        the deferral's ephemerality (its own ephemeral flag is ignored), as on Discord;
        later ones are new messages replying to the original response.
        """
        record = self._interaction_for_webhook(call)
        payload = call.body if isinstance(call.body, dict) else {}
        self._validate_message_fields(payload)
        has_other = any(payload.get(k) for k in ("embeds", "components", "poll"))
        if not payload.get("content") and not has_other and not call.files:
            raise empty_message()
        original = record.messages.get(record.original_id or 0)
        if original is not None and original["flags"] & FLAG_LOADING:
            await self._fill_in(original, payload, call.files)
            message = original
        else:
            reference = {
                "type": 0,
                "message_id": str(record.original_id),
                "channel_id": str(record.channel.id),
            }
            if record.channel.guild_id is not None:
                reference["guild_id"] = str(record.channel.guild_id)
            allowed = FLAG_EPHEMERAL | FLAG_SUPPRESS_EMBEDS | 1 << 12
            flags = int(payload.get("flags") or 0) & allowed
            message = self._interaction_message(
                record, payload, call.files, flags=flags, reference=reference
            )
            await self._publish_interaction_message(message)
        self._log_interaction_response(record, "followup", message, call.body)
        await self.notify()
        if call.query.get("wait", "").lower() in ("true", "1"):
            return self._render(message, rest=True)
        return None

    async def api_get_webhook_message(self, call: ApiCall) -> Any:
        record = self._interaction_for_webhook(call)
        return self._render(self._webhook_message(record, call), rest=True)

    async def api_edit_webhook_message(self, call: ApiCall) -> Any:
        """PATCH @original (or a followup): edits it, MESSAGE_UPDATE unless ephemeral."""
        record = self._interaction_for_webhook(call)
        message = self._webhook_message(record, call)
        payload = call.body if isinstance(call.body, dict) else {}
        await self._fill_in(message, payload, call.files)
        self._log_interaction_response(record, "edit", message, call.body)
        await self.notify()
        return self._render(message, rest=True)

    async def api_delete_webhook_message(self, call: ApiCall) -> Any:
        record = self._interaction_for_webhook(call)
        message = self._webhook_message(record, call)
        message_id = int(message["id"])
        if message["flags"] & FLAG_EPHEMERAL:
            del record.messages[message_id]
        else:
            del self._messages[record.channel.id][message_id]
            event = {"id": message["id"], "channel_id": message["channel_id"]}
            if record.channel.guild_id is not None:
                event["guild_id"] = str(record.channel.guild_id)
            await self.dispatch("MESSAGE_DELETE", event)
        self._log_interaction_response(record, "delete", message, None)
        await self.notify()
        return None

    # ---- messages ------------------------------------------------------------------------

    @staticmethod
    def _validate_message_fields(payload: dict[str, Any]) -> None:
        """Field checks shared by create and edit (Discord's 400 / 50035 errors)."""
        content = payload.get("content")
        if content is not None and not isinstance(content, str):
            raise invalid_form_body("content", "BASE_TYPE_STRING", "Must be a string.")
        if content is not None and len(content) > MAX_CONTENT_LENGTH:
            limit = f"Must be {MAX_CONTENT_LENGTH} or fewer in length."
            raise invalid_form_body("content", "BASE_TYPE_MAX_LENGTH", limit)
        if len(payload.get("embeds") or []) > MAX_EMBEDS:
            raise invalid_form_body(
                "embeds", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_EMBEDS} or fewer in length."
            )
        allowed = payload.get("allowed_mentions") or {}
        for kind in ("users", "roles"):
            if kind in allowed.get("parse", []) and allowed.get(kind):
                raise invalid_form_body(
                    "allowed_mentions",
                    "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                    f'parse:["{kind}"] and {kind}: [ids...] are mutually exclusive.',
                )

    def _checked_reference(
        self, channel: FakeChannel, reference: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """The message_reference to store; 400 if its message is missing (and must exist)."""
        if not reference:
            return None
        target_channel = int(reference.get("channel_id") or channel.id)
        message_id = reference.get("message_id")
        exists = (
            message_id is not None
            and target_channel == channel.id
            and int(message_id) in self._messages[channel.id]
        )
        if not exists:
            if reference.get("fail_if_not_exists", True) is False:
                return None  # Discord posts it as a plain message
            if target_channel != channel.id:
                raise invalid_form_body(
                    "message_reference",
                    "REPLIES_CANNOT_REFERENCE_OTHER_CHANNEL",
                    "Cannot reply to a message in a different channel",
                )
            raise invalid_form_body(
                "message_reference", "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message"
            )
        stored = {"type": 0, "message_id": str(message_id), "channel_id": str(channel.id)}
        if channel.guild_id is not None:
            stored["guild_id"] = str(channel.guild_id)
        return stored

    def _new_message(
        self,
        channel: FakeChannel,
        author: FakeUser,
        content: str,
        *,
        message_type: int | None = None,
        reference: dict[str, Any] | None = None,
        attachments: Sequence[dict[str, Any]] = (),
        embeds: Sequence[dict[str, Any]] = (),
        components: Sequence[dict[str, Any]] = (),
        flags: int = 0,
        tts: bool = False,
        nonce: str | int | None = None,
        allowed_mentions: dict[str, Any] | None = None,
        sticker_ids: Sequence[str] = (),
        message_id: int | None = None,
    ) -> dict[str, Any]:
        """A full message object in gateway form (guild_id and member for guild channels);
        ``message_id`` is given only to a forum post's starter message (the thread's id)."""
        message_id = message_id if message_id is not None else self._snowflake()
        message: dict[str, Any] = {
            "id": str(message_id),
            "channel_id": str(channel.id),
            "author": author.to_json(),
            "content": content,
            "timestamp": iso_timestamp(),
            "edited_timestamp": None,
            "tts": tts,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": list(attachments),
            "embeds": [{"type": "rich", **e} for e in embeds],
            "components": list(components),
            "sticker_items": [
                {"id": str(s), "name": "sticker", "format_type": 1} for s in sticker_ids
            ],
            "pinned": False,
            "type": message_type
            if message_type is not None
            else (MESSAGE_REPLY if reference else MESSAGE_DEFAULT),
            "flags": flags,
        }
        if nonce is not None:
            message["nonce"] = nonce
        if reference is not None:
            message["message_reference"] = reference
        if channel.guild_id is not None:
            message["guild_id"] = str(channel.guild_id)
            message["member"] = self._member_json(author, with_user=False)
        self._fill_mentions(message, allowed_mentions)
        return message

    def _fill_mentions(self, message: dict[str, Any], allowed: dict[str, Any] | None) -> None:
        """Set mentions / mention_roles / mention_everyone from the content.

        ``allowed`` is the message's allowed_mentions: None means everything the
        author may mention (Discord's default), including the replied-to author.
        """
        author = self.user(int(message["author"]["id"]))
        content = message["content"] or ""
        parse = set((allowed if allowed is not None else ALL_MENTIONS).get("parse", []))
        user_ids = {int(u) for u in (allowed or {}).get("users", [])}
        role_ids = {int(r) for r in (allowed or {}).get("roles", [])}

        mentioned: list[FakeUser] = []
        for raw in USER_MENTION.findall(content):
            with contextlib.suppress(KeyError):
                who = self.user(int(raw))
                if ("users" in parse or who.id in user_ids) and who not in mentioned:
                    mentioned.append(who)
        reference = message.get("message_reference")
        replied_user = allowed is None or allowed.get("replied_user", False)
        if reference and replied_user:
            target = self._find_message(int(reference["message_id"]))
            if target is not None:
                who = self.user(int(target["author"]["id"]))
                if who != author and who not in mentioned:
                    mentioned.append(who)

        in_guild = "guild_id" in message
        message["mentions"] = [
            {**u.to_json(), "member": self._member_json(u, with_user=False)}
            if in_guild
            else u.to_json()
            for u in mentioned
        ]
        known_roles = set(self.roles.values()) - {self.everyone_role_id}
        message["mention_roles"] = [
            raw
            for raw in dict.fromkeys(ROLE_MENTION.findall(content))
            if in_guild and int(raw) in known_roles and ("roles" in parse or int(raw) in role_ids)
        ]
        message["mention_everyone"] = bool(
            in_guild
            and ("@everyone" in content or "@here" in content)
            and "everyone" in parse
            and self._permissions(author) & P_MENTION_EVERYONE
        )

    def _apply_edit(
        self,
        message: dict[str, Any],
        payload: dict[str, Any],
        new_files: Sequence[dict[str, Any]] = (),
    ) -> None:
        """Change the fields ``payload`` names, as a PATCH does."""
        if "content" in payload:
            message["content"] = payload["content"] or ""
        if "embeds" in payload:
            message["embeds"] = [{"type": "rich", **e} for e in payload["embeds"] or []]
        if "components" in payload:
            message["components"] = payload["components"] or []
        if "flags" in payload and payload["flags"] is not None:
            message["flags"] = payload["flags"]
        if "attachments" in payload:
            keep = {str(a.get("id")) for a in payload["attachments"] or []}
            message["attachments"] = [a for a in message["attachments"] if a["id"] in keep]
        message["attachments"] += list(new_files)
        message["edited_timestamp"] = iso_timestamp()
        self._fill_mentions(message, payload.get("allowed_mentions"))

    def _attachment_json(self, channel: FakeChannel, file: FakeAttachment) -> dict[str, Any]:
        """An attachment object (resources/message#attachment-object) whose ``url`` (and
        ``proxy_url``) this server serves, signed and expiring in form like Discord's CDN
        links; the bytes are kept for the download."""
        attachment_id = self._snowflake()
        now = int(time.time())
        signature = uuid.uuid5(uuid.NAMESPACE_URL, str(attachment_id)).hex * 2
        query = f"?ex={now + 86400:x}&is={now:x}&hm={signature}&"
        path = f"attachments/{channel.id}/{attachment_id}/{quote(file.filename)}"
        data: dict[str, Any] = {
            "id": str(attachment_id),
            "filename": file.filename,
            "size": file.declared_size,
            "url": f"{self.url}/{path}{query}",
            "proxy_url": f"{self.url}/{CDN_MEDIA_PREFIX}/{path}{query}",
        }
        content_type = file.media_type()
        if content_type:
            data["content_type"] = content_type
        if file.width is not None and file.height is not None:
            data.update(width=file.width, height=file.height)
        if file.description is not None:
            data["description"] = file.description
        if file.duration_secs is not None:
            data["duration_secs"] = file.duration_secs
        self._files[attachment_id] = (channel.id, file)
        return data

    def _uploaded(
        self, channel: FakeChannel, files: Sequence[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Attachment objects for files the bot uploaded (multipart parts), served back."""
        return [
            self._attachment_json(
                channel,
                FakeAttachment(
                    f["filename"] or "file", f["data"], content_type=f["content_type"],
                    guess_content_type=False,
                ),
            )
            for f in files
        ]  # fmt: skip

    def _store(self, message: dict[str, Any]) -> None:
        channel_id, message_id = int(message["channel_id"]), int(message["id"])
        self._messages[channel_id][message_id] = message
        self._channel_of[message_id] = channel_id

    def _find_message(self, message_id: int) -> dict[str, Any] | None:
        # By index, not a scan of every channel: the benchmark opens 100,000 DM channels.
        channel_id = self._channel_of.get(message_id)
        return self._messages.get(channel_id, {}).get(message_id)  # None once deleted

    async def _post_as_user(self, message: dict[str, Any], deliver: bool) -> dict[str, Any]:
        if deliver:
            self._require_connected_bot()
        self._store(message)
        if deliver:
            await self._dispatch_message_event("MESSAGE_CREATE", message)
        await self.notify()
        return self._render(message, rest=False)

    def _require_connected_bot(self) -> None:
        if not self.connected:
            raise RuntimeError(
                "no bot is connected to the stand-in: await wait_until_ready() first, "
                "or pass deliver=False to only add the message to the channel's history"
            )

    def _render(
        self, message: dict[str, Any], *, rest: bool, content_intent: bool = True
    ) -> dict[str, Any]:
        """A copy of a stored message with ``referenced_message`` filled in.

        ``rest=True`` gives the REST form: no guild_id, member or mention members.
        ``content_intent=False`` shows a guild message as an app without the Message
        Content intent sees it.
        """
        out = copy.deepcopy(message)
        reference = message.get("message_reference")
        if reference is not None and message["type"] == MESSAGE_REPLY:
            target = self._find_message(int(reference["message_id"]))
            out["referenced_message"] = None if target is None else self._render(target, rest=True)
        if not content_intent and "guild_id" in message:
            out = self._without_content(out)
            if out.get("referenced_message"):
                out["referenced_message"] = self._without_content(out["referenced_message"])
        if rest:
            out.pop("guild_id", None)
            out.pop("member", None)
            for mention in out["mentions"]:
                mention.pop("member", None)
        return out

    def _without_content(self, message: dict[str, Any]) -> dict[str, Any]:
        """A guild message with its content fields emptied, unless the bot may see them.

        Without the intent an app still sees its own messages and those mentioning it.
        """
        bot_id = str(self.bot_user.id)
        if message["author"]["id"] == bot_id or any(m["id"] == bot_id for m in message["mentions"]):
            return message
        return {**message, "content": "", "embeds": [], "attachments": [], "components": []}

    async def _dispatch_message_event(self, event: str, message: dict[str, Any]) -> bool:
        """Send MESSAGE_CREATE / MESSAGE_UPDATE if the session's intents allow it."""
        session = self._current
        if session is None or not session.identified:
            return False
        needed = INTENT_GUILD_MESSAGES if "guild_id" in message else INTENT_DIRECT_MESSAGES
        if not session.has(needed):
            return False
        content_intent = session.has(INTENT_MESSAGE_CONTENT)
        data = self._render(message, rest=False, content_intent=content_intent)
        return await self._send_dispatch(session, event, data)

    # ---- JSON for the world --------------------------------------------------------------

    def _application_flags(self) -> int:
        if not self.message_content_intent_enabled:
            return 0
        return (
            APP_FLAG_MESSAGE_CONTENT_LIMITED
            | APP_FLAG_GUILD_MEMBERS_LIMITED
            | APP_FLAG_PRESENCE_LIMITED
        )

    def _member_json(self, user: FakeUser, *, with_user: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "roles": [str(r) for r in self.member_roles.get(user.id, [])],
            "nick": None,
            "avatar": None,
            "banner": None,
            "joined_at": self.joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "pending": False,
            "flags": 0,
            "communication_disabled_until": None,
        }
        if with_user:
            data["user"] = user.to_json()
        return data

    def _role_json(
        self, role_id: int, name: str, permissions: int, position: int, **extra: Any
    ) -> dict[str, Any]:
        return {
            "id": str(role_id),
            "name": name,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": position,
            "permissions": str(permissions),
            "managed": False,
            "mentionable": False,
            "flags": 0,
            **extra,
        }

    def _last_message_id(self, channel: FakeChannel) -> str | None:
        ids = self._messages.get(channel.id)
        return str(max(ids)) if ids else None

    def _channel_json(self, channel: FakeChannel) -> dict[str, Any]:
        """A channel object: category, text channel, thread or DM."""
        if channel.is_dm:
            return {
                "id": str(channel.id),
                "type": CHANNEL_DM,
                "last_message_id": self._last_message_id(channel),
                "flags": 0,
                "recipients": [self.user(channel.recipient_id or 0).to_json()],
            }
        data: dict[str, Any] = {
            "id": str(channel.id),
            "type": channel.type,
            "guild_id": str(channel.guild_id),
            "name": channel.name,
            "parent_id": str(channel.parent_id) if channel.parent_id else None,
            "flags": 0,
        }
        if channel.is_thread:
            thread = {
                **data,
                "owner_id": str(channel.owner_id),
                "last_message_id": self._last_message_id(channel),
                "rate_limit_per_user": 0,
                "message_count": len(self._messages[channel.id]),
                "member_count": 1,
                "total_message_sent": len(self._messages[channel.id]),
                "thread_metadata": {
                    **self.thread_state(channel),
                    "auto_archive_duration": 1440,
                    "archive_timestamp": self.joined_at,
                    "create_timestamp": self.joined_at,
                },
            }
            if channel.type == CHANNEL_PRIVATE_THREAD:
                thread["thread_metadata"]["invitable"] = True
                thread["member_count"] = 2
                # The bot's own thread member (topics/threads#thread-membership): it was added.
                thread["member"] = {
                    "id": str(channel.id),
                    "user_id": str(self.bot_user.id),
                    "join_timestamp": self.joined_at,
                    "flags": 0,
                }
            return thread
        overwrites = []
        if self._denied.get(channel.id):
            overwrites.append(
                {
                    "id": str(self.bot_user.id),
                    "type": OVERWRITE_MEMBER,
                    "allow": "0",
                    "deny": str(self._denied[channel.id]),
                }
            )
        data.update(position=channel.position, permission_overwrites=overwrites, nsfw=False)
        if channel.type == CHANNEL_FORUM:
            data.update(
                topic=None,
                last_message_id=self._last_message_id(channel),
                rate_limit_per_user=0,
                default_auto_archive_duration=1440,
                default_thread_rate_limit_per_user=0,
                available_tags=[],
                default_reaction_emoji=None,
                default_sort_order=None,
                default_forum_layout=0,
            )
        elif channel.type in (CHANNEL_TEXT, CHANNEL_ANNOUNCEMENT):
            data.update(
                topic=None,
                last_message_id=self._last_message_id(channel),
                rate_limit_per_user=0,
                default_auto_archive_duration=1440,
            )
        elif channel.type in VOICE_TYPES:
            data.update(
                bitrate=64000,
                user_limit=0,
                rtc_region=None,
                last_message_id=self._last_message_id(channel),
                rate_limit_per_user=0,
            )
            if channel.type == CHANNEL_VOICE:
                data["video_quality_mode"] = 1
            else:
                data["topic"] = None
        return data

    def _guild_json(self, session: GatewaySession) -> dict[str, Any]:
        """The full guild of GUILD_CREATE.

        As on Discord, ``members`` lists everyone only with the GUILD_PRESENCES intent;
        otherwise just the bot (discord.py then chunks if it has GUILD_MEMBERS).
        """
        everyone = list(self.users.values())
        listed = everyone if session.has(INTENT_GUILD_PRESENCES) else [self.bot_user]
        guild_channels = [c for c in self.channels.values() if c.guild_id is not None]
        return {
            "id": str(self.guild_id),
            "name": self.guild_name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.owner.id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 1,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "premium_progress_bar_enabled": False,
            "preferred_locale": "en-US",
            "features": [],
            "system_channel_id": str(self.general.id),
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "max_members": 500000,
            "max_video_channel_users": 25,
            "application_id": None,
            "incidents_data": None,
            "joined_at": self.joined_at,
            "large": False,
            "lazy": True,
            "member_count": len(everyone),
            "roles": [
                self._role_json(self.everyone_role_id, "@everyone", EVERYONE_PERMISSIONS, 0),
                self._role_json(
                    self.moderators_role_id, "Moderators", MODERATOR_PERMISSIONS, 1, hoist=True
                ),
                self._role_json(self.helpers_role_id, "Helpers", 0, 1, mentionable=True),
                self._role_json(
                    self.bot_role_id,
                    self.bot_user.username,
                    BOT_ROLE_PERMISSIONS,
                    2,
                    managed=True,
                    tags={"bot_id": str(self.bot_user.id)},
                ),
            ],
            "emojis": [],
            "stickers": [],
            "channels": [self._channel_json(c) for c in guild_channels if not c.is_thread],
            "threads": [  # the active threads only, as on Discord
                self._channel_json(c)
                for c in guild_channels
                if c.is_thread and not self.thread_state(c)["archived"]
            ],
            "members": [self._member_json(u) for u in listed],
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    # ---- gateway -------------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        """One gateway connection: HELLO, then answer frames until it closes."""
        await self.record(
            RecordedRequest(
                method="GET",
                path=request.path,
                json=None,
                headers=dict(request.headers),
                status=101,
                query=dict(request.query),
            )
        )
        ws = web.WebSocketResponse(max_msg_size=0, timeout=5.0)
        await ws.prepare(request)
        session = GatewaySession(ws=ws)
        self._sessions.add(session)
        try:
            hello = {"heartbeat_interval": self.heartbeat_interval_ms, "_trace": ["stand-in"]}
            await self._send(session, {"op": OP_HELLO, "d": hello, "s": None, "t": None})
            async for frame in ws:
                if frame.type is WSMsgType.TEXT:
                    await self._on_frame(session, frame.data)
                elif frame.type is WSMsgType.BINARY:
                    await self._on_frame(session, frame.data.decode("utf-8", "replace"))
        finally:
            self._sessions.discard(session)
            if self._current is session:
                self._current = None
            await self.notify()
        return ws

    async def _on_frame(self, session: GatewaySession, text: str) -> None:
        try:
            frame = json.loads(text)
            op = frame["op"]
        except (ValueError, KeyError, TypeError):
            await session.ws.close(code=4002, message=b"Error while decoding payload.")
            return
        self.gateway_frames.append(frame)
        name = GATEWAY_OPS.get(op)
        if name is None:
            await session.ws.close(code=4001, message=b"Unknown opcode.")
            return
        if not session.identified and name not in ("heartbeat", "identify", "resume"):
            await session.ws.close(code=4003, message=b"Not authenticated.")
            return
        await getattr(self, f"_op_{name}")(session, frame.get("d"))

    async def _op_heartbeat(self, session: GatewaySession, data: Any) -> None:
        self.heartbeats.append(time.monotonic())
        await self._send(session, {"op": OP_HEARTBEAT_ACK, "d": None, "s": None, "t": None})
        await self.notify()

    async def _op_identify(self, session: GatewaySession, data: Any) -> None:
        data = data if isinstance(data, dict) else {}
        self.identifies.append(data)
        await self.notify()
        if session.identified:
            await session.ws.close(code=4005, message=b"Already authenticated.")
            return
        if data.get("token") != self.bot_token:
            await session.ws.close(code=4004, message=b"Authentication failed")
            return
        intents = data.get("intents")
        if not isinstance(intents, int) or intents < 0:
            await session.ws.close(code=4013, message=b"Invalid intent(s).")
            return
        if intents & PRIVILEGED_INTENTS and not self.message_content_intent_enabled:
            await session.ws.close(code=4014, message=b"Disallowed intent(s)")
            return
        session.intents = intents
        session.identified = True
        self._current = session  # the newest session gets the events
        ready: dict[str, Any] = {
            "v": 10,
            "user": self._bot_user_json(),
            "guilds": [{"id": str(self.guild_id), "unavailable": True}],
            "session_id": session.session_id,
            "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(self.bot_user.id), "flags": self._application_flags()},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "user_settings": {},
            "geo_ordered_rtc_regions": [],
            "auth": {},
            "_trace": ["stand-in"],
        }
        if "shard" in data:
            ready["shard"] = data["shard"]
        await self._send_dispatch(session, "READY", ready)
        await self._send_dispatch(session, "GUILD_CREATE", self._guild_json(session))
        self.ready_count += 1
        await self.notify()

    async def _op_resume(self, session: GatewaySession, data: Any) -> None:
        """No resuming here: the bot must IDENTIFY again (discord.py waits 5 s first)."""
        await self._send(session, {"op": OP_INVALID_SESSION, "d": False, "s": None, "t": None})

    async def _op_request_guild_members(self, session: GatewaySession, data: Any) -> None:
        data = data if isinstance(data, dict) else {}
        wanted = {int(i) for i in data.get("user_ids") or []}
        query = (data.get("query") or "").lower()
        limit = data.get("limit") or len(self.users)
        members = [
            u
            for u in self.users.values()
            if (not wanted or u.id in wanted) and u.username.lower().startswith(query)
        ][:limit]
        chunk: dict[str, Any] = {
            "guild_id": str(self.guild_id),
            "members": [self._member_json(u) for u in members],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
        }
        if data.get("presences"):
            chunk["presences"] = []
        if data.get("nonce") is not None:
            chunk["nonce"] = data["nonce"]
        await self._send_dispatch(session, "GUILD_MEMBERS_CHUNK", chunk)

    async def _op_presence_update(self, session: GatewaySession, data: Any) -> None:
        """Recorded in ``gateway_frames``; nobody watches the bot's status here."""

    async def _op_voice_state_update(self, session: GatewaySession, data: Any) -> None:
        """Recorded in ``gateway_frames``; there is no voice here."""

    async def _send_dispatch(self, session: GatewaySession, event: str, data: Any) -> bool:
        async with session.send_lock:
            session.sequence += 1
            frame = {"op": OP_DISPATCH, "d": data, "s": session.sequence, "t": event}
            return await self._send(session, frame, locked=True)

    async def _send(
        self, session: GatewaySession, frame: dict[str, Any], *, locked: bool = False
    ) -> bool:
        """Send one JSON text frame; whether it went out (False if the socket closed)."""
        text = json.dumps(frame, ensure_ascii=False)
        try:
            if locked:
                await session.ws.send_str(text)
            else:
                async with session.send_lock:
                    await session.ws.send_str(text)
        except (ConnectionError, RuntimeError) as failure:
            log.debug("gateway frame not sent: %r", failure)
            return False
        return True


__all__ = [
    "ROUTES",
    "ApiCall",
    "DiscordError",
    "DiscordStandIn",
    "FakeAttachment",
    "FakeChannel",
    "FakeUser",
    "InjectedFault",
]


def _focused_option(options: list[dict[str, Any]]) -> dict[str, Any]:
    """The option marked ``focused`` in an autocomplete interaction's (nested) options."""
    for option in options:
        if option.get("focused"):
            return option
        if option["type"] in SUBCOMMAND_TYPES:
            with contextlib.suppress(LookupError):
                return _focused_option(option.get("options", []))
    raise LookupError("no focused option")
