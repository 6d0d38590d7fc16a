"""The Discord stand-in's dropped gateway connection (`drop_gateway`)."""

from __future__ import annotations

import json

import aiohttp

from tests.standins.discord import DiscordStandIn


async def test_drop_gateway_closes_every_open_session_with_the_code() -> None:
    async with DiscordStandIn() as standin, aiohttp.ClientSession() as http:
        async with http.ws_connect(standin.gateway_url) as ws:
            await ws.receive_json()  # HELLO
            payload = {"token": standin.bot_token, "intents": 513, "properties": {}}
            await ws.send_str(json.dumps({"op": 2, "d": payload}))
            await standin.wait_until_ready()
            assert await standin.drop_gateway() == 1
            while (frame := await ws.receive()).type is aiohttp.WSMsgType.TEXT:
                pass  # READY and GUILD_CREATE came first
            assert frame.type is aiohttp.WSMsgType.CLOSE
            assert (frame.data, frame.extra) == (4000, "Unknown error.")
            await standin.wait_for(lambda: not standin.connected)
        assert await standin.drop_gateway() == 0
