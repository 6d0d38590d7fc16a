"""HEALTH_PORT's HTTP server: `/healthz`, `/readyz` and `/metrics`, for one bot.

Served on the aiohttp that discord.py already brings, bound to HEALTH_HOST (127.0.0.1
unless set), started in setup_hook once the services exist, and stopped at shutdown
after the answers in flight and the store (/readyz says "shutting down" meanwhile):

- `/healthz`: 200 while the event loop answers (the handler runs on it).
- `/readyz`: 200 once the bot is connected and READY on every shard it holds and the
  store answers a trivial query; 503 with a one-line reason before that (a spare says
  which shards it waits for), while a shard is disconnected, when the store fails, and
  once shutdown has begun.
- `/metrics`: the bot's own `Metrics` registry (metrics.py) in Prometheus' text
  format, through prometheus_client's aiohttp handler.

Readiness reads discord.py's state as discord.py gives it (client.py, shard.py):
`is_ready()` (READY received; cleared only when the client closes), and per shard
`ShardInfo.is_closed()` on an `AutoShardedClient` (`shards`), or the one websocket's
`open` on a plain `Client`.
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from config import ConfigError
from operations.metrics import Live, Metrics
from operations.shards import shards_named
from store import StoreError

if TYPE_CHECKING:
    from bot import ChatBot

# The most /readyz waits for the store's trivial query (a pool with every connection
# busy answers late): past it the store counts as failing.
STORE_SECONDS = 3.0


async def readiness(bot: ChatBot) -> str | None:
    """Why `bot` is not ready to answer (one line), or None when it is."""
    if bot.is_closing():
        return "shutting down"
    if bot.leases is not None and bot.leases.waiting_for:
        return f"waiting as a spare for {shards_named(bot.leases.waiting_for)}"
    if not bot.is_ready():
        return "waiting for Discord's READY"
    shards = getattr(bot, "shards", None)  # an AutoShardedClient's, by shard id
    if shards is not None:
        closed = sorted(shard_id for shard_id, shard in shards.items() if shard.is_closed())
        if closed or not shards:
            return f"disconnected from Discord on shard(s) {closed}" if closed else "no shards"
    elif bot.ws is None or not bot.ws.open:
        return "disconnected from Discord"
    try:
        async with asyncio.timeout(STORE_SECONDS):
            await bot.services.store.ping()
    except StoreError as error:
        return f"the store fails: {error}"
    except TimeoutError:
        return f"the store did not answer within {STORE_SECONDS:g} s"
    return None


def latencies(bot: ChatBot) -> list[tuple[int, float]]:
    """Each shard's heartbeat round trip in seconds, as (shard id, seconds)."""
    per_shard = getattr(bot, "latencies", None)  # an AutoShardedClient's
    if per_shard is not None:
        return list(per_shard)
    return [(bot.shard_id or 0, bot.latency)]


class Health:
    """The running server and the bot's `metrics`; `start` it, `close` it."""

    def __init__(self, bot: ChatBot, metrics: Metrics, runner: web.AppRunner) -> None:
        self.bot = bot
        self.metrics = metrics
        self.runner = runner

    @classmethod
    async def start(cls, bot: ChatBot) -> Health:
        """Build the bot's `Metrics` and serve them with the checks on HEALTH_HOST:
        HEALTH_PORT. Call once the bot's services and conversations exist. Raises
        ConfigError naming HEALTH_PORT when the address cannot be had (a port in use,
        a privileged port, a HEALTH_HOST that is not this machine's), or HEALTH_HOST
        when that name does not resolve."""
        metrics = Metrics()
        metrics.watch(
            Live(
                latencies=lambda: latencies(bot),
                channels=lambda: len(bot.conversations.channels),
                store_errors=lambda: bot.services.store.failures,
                lease_takeovers=lambda: bot.leases.takeovers if bot.leases else 0,
                leases_lost=lambda: bot.leases.times_lost if bot.leases else 0,
            )
        )
        app = web.Application()
        runner = web.AppRunner(app, access_log=None)
        health = cls(bot, metrics, runner)
        app.router.add_get("/healthz", health.healthz)
        app.router.add_get("/readyz", health.readyz)
        app.router.add_get("/metrics", make_aiohttp_handler(metrics.registry))
        await runner.setup()
        host, port = bot.settings.health_host, bot.settings.health_port
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as error:
            await runner.cleanup()
            where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            if isinstance(error, socket.gaierror):  # its errno is getaddrinfo's, not errno's
                raise ConfigError(
                    f"HEALTH_HOST: cannot serve health checks on {where}: the name {host} "
                    f"could not be resolved ({error.strerror}): give an address of this "
                    "machine, such as 127.0.0.1 or 0.0.0.0."
                ) from None
            why = os.strerror(error.errno).lower() if error.errno else str(error)
            raise ConfigError(
                f"HEALTH_PORT: cannot serve health checks on {where}: {why}."
            ) from None
        return health

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(self, request: web.Request) -> web.Response:
        problem = await readiness(self.bot)
        if problem is None:
            return web.Response(text="ready\n")
        return web.Response(status=503, text=f"not ready: {problem}\n")

    async def close(self) -> None:
        """Stop serving (the open requests are answered first)."""
        await self.runner.cleanup()
