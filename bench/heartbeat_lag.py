"""Is discord.py's "Can't keep up, websocket is N s behind" a blocked event loop?

Usage: python bench/heartbeat_lag.py INTERVAL_MS SECONDS BURNERS

An idle `discord.Client` (not the bot) against the Discord stand-in, in one event loop as
in the end-to-end tests, with BURNERS processes spinning to load the machine. It prints
each heartbeat ACK's "latency" as discord.py computes it and how late the event loop ran
a 5 ms sleep (its lag).

discord.py's heartbeat thread sets `_last_send` only after `send_heartbeat` returns to
it; an ACK from a server on the same machine can be read first, so `ack()` measures from
the previous heartbeat: the "latency" is the heartbeat interval (the stand-in's default
41.25 s gives "41 s behind"), while the loop is never late by more than milliseconds.
Observed here (2 shared cores): interval 10.5 s, 2 burners, 45 s: four warnings of
10.5-10.6 s, event loop lag at most 79 ms; interval 0.1 s, 2 burners: 129 of 178 ACKs
at ~0.1 s, lag at most 54 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import sys
import time
from pathlib import Path

import discord

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from operations.process import point_discord_at
from tests.standins.discord import DiscordStandIn

latencies: list[float] = []
_ack = discord.gateway.KeepAliveHandler.ack


def _recording_ack(self: discord.gateway.KeepAliveHandler) -> None:
    _ack(self)
    latencies.append(self.latency)


def _burn() -> None:
    while True:
        pass


async def main(interval_ms: int, seconds: float, burners: int) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")
    discord.gateway.KeepAliveHandler.ack = _recording_ack  # type: ignore[method-assign]
    loads = [multiprocessing.Process(target=_burn, daemon=True) for _ in range(burners)]
    for load in loads:
        load.start()
    lags: list[float] = []

    async def watch() -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - started - 0.005)

    async with DiscordStandIn(heartbeat_interval_ms=interval_ms) as standin:
        point_discord_at(standin.url)
        client = discord.Client(intents=discord.Intents.default())
        watcher = asyncio.create_task(watch())
        running = asyncio.create_task(client.start(standin.bot_token))
        await asyncio.sleep(seconds)
        await client.close()
        watcher.cancel()
        with contextlib.suppress(BaseException):
            await running
    for load in loads:
        load.terminate()
    interval = interval_ms / 1000
    late = [round(x, 3) for x in latencies if x > interval / 2]
    print(f"heartbeat interval {interval} s: {len(latencies)} ACKs, {len(late)} measured as")
    print(f"  more than half the interval: {late}")
    print(f"event loop lag: at most {max(lags) * 1000:.1f} ms over {len(lags)} samples")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])))
