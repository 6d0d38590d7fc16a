"""The gateway websocket: sessions, opcodes and dispatching events.

Sharding as Discord does it (topics/gateway#sharding): IDENTIFY's ``shard: [id, count]``
picks the events a session gets: a guild's go to shard ``(guild_id >> 22) % count``, DMs
to shard 0, and every live session of that shard gets each of them (two processes on one
shard both see every message). A session without ``shard`` is shard 0 of 1: everything.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from aiohttp import WSMsgType, web

from tests.standins.discord.objects import GatewaySession, shard_of
from tests.standins.discord.protocol import (
    GATEWAY_OPS,
    OP_DISPATCH,
    OP_HEARTBEAT_ACK,
    OP_HELLO,
    OP_INVALID_SESSION,
    PRIVILEGED_INTENTS,
)
from tests.standins.recording import RecordedRequest

log = logging.getLogger(__name__)


class Gateway:
    """The gateway: one session per connection, opcodes, dispatch."""

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
        if self.identify_closed_with is not None:
            code, reason = self.identify_closed_with
            await session.ws.close(code=code, message=reason.encode())
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
        shard = _valid_shard(data.get("shard", [0, 1]))
        if shard is None:
            await session.ws.close(code=4010, message=b"Invalid shard.")
            return
        session.shard = shard
        guilds = [g for g in self.guilds.values() if session.receives(g.id)]
        limit = self.max_guilds_per_session
        if limit is not None and len(guilds) > limit:
            await session.ws.close(code=4011, message=b"Sharding required.")
            return
        session.intents = intents
        session.identified = True
        ready: dict[str, Any] = {
            "v": 10,
            "user": self._bot_user_json(),
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
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
        for guild in guilds:
            await self._send_dispatch(session, "GUILD_CREATE", self._guild_json(session, guild))
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
            "guild_id": str(data.get("guild_id", self.guild_id)),
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

    # ---- who gets an event ---------------------------------------------------------------

    @property
    def live_sessions(self) -> list[GatewaySession]:
        """Every identified, open gateway session (``.shard`` says which shard it is)."""
        return [s for s in self._sessions if s.live]

    def sessions_of_shard(self, shard_id: int) -> list[GatewaySession]:
        """The live sessions that identified as shard ``shard_id`` (of any count)."""
        return [s for s in self.live_sessions if s.shard[0] == shard_id]

    async def dispatch(self, event: str, data: dict[str, Any]) -> bool:
        """Send a DISPATCH event to every live session of the shard its ``guild_id`` is on
        (shard 0 without one: a DM); whether any session was sent it."""
        guild_id = data.get("guild_id")
        sent = False
        for session in self._receivers(int(guild_id) if guild_id is not None else None):
            sent = await self._send_dispatch(session, event, data) or sent
        return sent

    def _receivers(self, guild_id: int | None) -> list[GatewaySession]:
        """The live sessions that get the events of ``guild_id`` (None: of a DM)."""
        return [s for s in self.live_sessions if s.receives(guild_id)]

    def shard_of(self, where: Any, shard_count: int) -> int:
        """The shard of ``shard_count`` that gets the events of ``where``: a guild, a
        channel (a DM: 0) or their key or id."""
        try:
            return shard_of(self.guild_of(where).id, shard_count)
        except KeyError:
            return shard_of(self.channel(where).guild_id, shard_count)

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


def _valid_shard(value: Any) -> tuple[int, int] | None:
    """IDENTIFY's ``shard`` as (id, count), or None when Discord would refuse it (4010)."""
    if not isinstance(value, list) or len(value) != 2:
        return None
    shard_id, shard_count = value
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in value):
        return None
    return (shard_id, shard_count) if 0 <= shard_id < shard_count else None
