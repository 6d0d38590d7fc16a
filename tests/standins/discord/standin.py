"""`DiscordStandIn`: the facade that puts the world, the gateway, the REST API, the
interactions and the faults together, and starts and stops the server."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

from aiohttp import web

from tests.standins.discord.access import Access
from tests.standins.discord.commands import Commands
from tests.standins.discord.faults import Faults
from tests.standins.discord.gateway import Gateway
from tests.standins.discord.history import History
from tests.standins.discord.interactions import Interactions
from tests.standins.discord.messages import Messages
from tests.standins.discord.objects import (
    FakeAttachment,
    FakeChannel,
    FakeUser,
    GatewaySession,
    InjectedFault,
    InteractionRecord,
    SnowflakeFactory,
)
from tests.standins.discord.people import People
from tests.standins.discord.protocol import (
    API_PREFIX,
    CDN_PATHS,
    CHANNEL_TEXT,
    GATEWAY_PATH,
    ROUTES,
)
from tests.standins.discord.rest import RestApi
from tests.standins.discord.threads import Threads
from tests.standins.discord.world import World
from tests.standins.recording import RecordedRequest, Recorder


class DiscordStandIn(
    History,
    People,
    Threads,
    Faults,
    Access,
    Interactions,
    Commands,
    RestApi,
    Messages,
    World,
    Gateway,
    Recorder,
):
    """Discord's REST API v10 and gateway for one bot, with a fixed guild and users.

    Attributes tests use most: ``users`` / ``channels`` (lookups by name), the ids
    ``bot_user_id``, ``guild_id``, ``moderators_role_id``, ``requests`` (every REST
    call), ``identifies`` (IDENTIFY payloads), ``heartbeats`` (monotonic times),
    ``gateway_frames`` (everything the bot sent on the gateway), ``ready_count``.

    Each base class holds one concern (its module says which); they share the state
    that ``__init__`` sets up here, so a fault or a permission is seen by every route.
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
        # Ephemeral interaction messages by id: in no history, but their buttons work.
        self._ephemeral: dict[int, dict[str, Any]] = {}
        # Permissions taken from the bot per channel id: ``_denied`` is shown to the bot as
        # a member permission overwrite; ``_hidden_denied`` is not (see ``deny``).
        self._denied: dict[int, int] = {}
        self._hidden_denied: dict[int, int] = {}
        self._forbidden_read: set[int] = set()
        # Who reads what (access.py): channel id -> (overwrite type, target id) -> (allow,
        # deny); roles added by tests, id -> (name, permissions); private thread members.
        self._overwrites: dict[int, dict[tuple[int, int], tuple[int, int]]] = {}
        self._added_roles: dict[int, tuple[str, int]] = {}
        self._thread_members: dict[int, set[int]] = {}
        # Replies sent without ``referenced_message`` (Discord did not fetch the target).
        self._unresolved_replies: set[int] = set()
        # Thread id -> {"archived": bool, "locked": bool}; threads not listed are open.
        self._thread_state: dict[int, dict[str, bool]] = {}
        self._faults: list[InjectedFault] = []
        # Moderation (``block_words``): (lowercase word, error code); refusals made.
        self._blocked_words: list[tuple[str, int]] = []
        self.blocked: list[dict[str, Any]] = []
        # Attachments: id -> (channel id, file); downloads of them and faults for them.
        self._files: dict[int, tuple[int, FakeAttachment]] = {}
        self.downloads: list[RecordedRequest] = []  # every GET of an attachment URL
        self._download_faults: list[InjectedFault] = []
        self._stopping = asyncio.Event()  # releases hanging answers when the server stops
        self._route_names: dict[tuple[str, str], str] = {}  # (method, path pattern) -> name
        # GET /gateway/bot: the shard count Discord recommends, and how many shards may
        # IDENTIFY at once (session_start_limit.max_concurrency). Tests may change both.
        self.recommended_shards = 1
        self.max_concurrency = 1
        # Guilds one session may hold before IDENTIFY is closed with 4011 "Sharding
        # required" (Discord: 2,500); None: no limit. Tests set a small one.
        self.max_guilds_per_session: int | None = None
        # (code, reason) every IDENTIFY is closed with, as Discord would for a token reset
        # since login (4004) or an outdated library (4012, 4013); None: IDENTIFY as usual.
        self.identify_closed_with: tuple[int, str] | None = None
        # Application commands: guild id (None: global) -> commands as Discord stores them.
        self._commands: dict[int | None, list[dict[str, Any]]] = {}
        self._interactions: dict[int, InteractionRecord] = {}
        self._interaction_log: list[dict[str, Any]] = []  # see interaction_responses()
        self._sessions: set[GatewaySession] = set()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

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
        return bool(self.live_sessions)

    async def wait_until_ready(self, timeout: float = 5.0, count: int = 1) -> None:
        """Wait until READY and GUILD_CREATE have been sent to ``count`` sessions in all.

        The bot's on_ready fires later: discord.py waits ``guild_ready_timeout``
        (2 s unless the client was given another value) after the last GUILD_CREATE.
        """
        await self.wait_for(lambda: self.ready_count >= count and self.connected, timeout)
