"""How the benchmark drives a bot: stand-ins, bots in-process or as processes, waiting, stats.

Nothing here measures anything by itself; bench/run.py composes these pieces into the
figures. Both bots (ours and the relay floor) are driven through the same stand-ins
from tests/standins/, unmodified: dispatch times are taken in this process right
before `DiscordStandIn.user_says`, and every other time comes from the stand-ins'
own records (`RecordedRequest.at`, `OpenAIRequest.finished_at`, `.sent_chunks`),
all on the same `time.monotonic` clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import discord
import openai
import psutil
import relay_bot

from bot import ChatBot
from config import load_settings
from operations.process import point_discord_at
from tests.standins.discord import DiscordStandIn
from tests.standins.openai_standin import OpenAIStandIn
from tests.standins.recording import RecordedRequest, Recorder
from text.tokens import TokenCounter

ROOT = Path(__file__).resolve().parent.parent
BOT_SCRIPT = ROOT / "bot.py"
RELAY_SCRIPT = ROOT / "bench" / "relay_bot.py"
MODEL = "gpt-5.4-mini"  # the bot's default model: o200k_base
OPENAI_KEY = "sk-bench"

Kind = Literal["ours", "relay"]
KINDS: tuple[Kind, Kind] = ("ours", "relay")
# A wait longer than this is a hang (a bug), not a slow bot: the run stops with an error.
STUCK_AFTER = 300.0

# ---------------------------------------------------------------------------------
# Stand-ins
# ---------------------------------------------------------------------------------


@dataclass
class StandIns:
    """One Discord stand-in and one OpenAI stand-in, serving one bot."""

    discord: DiscordStandIn
    openai: OpenAIStandIn


@contextlib.asynccontextmanager
async def standins(extra_text_channels: int = 0) -> AsyncIterator[StandIns]:
    """Fresh stand-ins (default heartbeat interval: no heartbeat traffic in a run)."""
    async with (
        DiscordStandIn(extra_text_channels=extra_text_channels) as discord_api,
        OpenAIStandIn() as openai_api,
    ):
        yield StandIns(discord_api, openai_api)
        if discord_api.errors:
            print(f"  warning: the Discord stand-in failed: {discord_api.errors[:3]!r}")


def bot_environment(apis: StandIns, *, stream: bool = False, **extra: str) -> dict[str, str]:
    """The .env a user would write, pointed at the stand-ins (`extra`: more settings,
    or others in place of these, e.g. OPENAI_BASE_URL for a real model server)."""
    return {
        "DISCORD_BOT_TOKEN": apis.discord.bot_token,
        "OPENAI_API_KEY": OPENAI_KEY,
        "OPENAI_BASE_URL": apis.openai.base_url,
        "OPENAI_MODEL": MODEL,
        "DISCORD_API_URL": apis.discord.url,
        "STREAM_REPLIES": "true" if stream else "false",
        # All the load comes from one user (alice): measure the bot's work, never its
        # per-user rate limiter, whatever that setting's default.
        "USER_RATE_LIMIT": "0",
        **extra,
    }


class Tail:
    """The requests a stand-in recorded since the last look, without rescanning the log."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.seen = len(recorder.requests)

    def new(self) -> list[RecordedRequest]:
        fresh = self.recorder.requests[self.seen :]
        self.seen += len(fresh)
        return fresh


def is_message_post(request: RecordedRequest) -> bool:
    """A bot's POST /channels/{id}/messages that Discord accepted."""
    return request.method == "POST" and request.path.endswith("/messages") and request.status == 200


def is_typing(request: RecordedRequest) -> bool:
    return request.method == "POST" and request.path.endswith("/typing")


async def next_matching(
    recorder: Recorder,
    tail: Tail,
    match: Callable[[RecordedRequest], bool],
) -> tuple[RecordedRequest, list[RecordedRequest]]:
    """Wait for the next recorded request that `match`es.

    Returns it and every request recorded before it since the tail's last look.
    """
    passed: list[RecordedRequest] = []
    found: list[RecordedRequest] = []

    def check() -> bool:
        for request in tail.new():
            (found if match(request) and not found else passed).append(request)
        return bool(found)

    await recorder.wait_for(check, STUCK_AFTER)
    return found[0], passed


class AnswerTracker:
    """Which user messages the bot has answered: the messages its posts reply to.

    Reads the Discord stand-in's log incrementally, so waiting on thousands of
    answers costs no rescans. Our bot may answer a backlog of several messages in one
    post (replying to the newest), so a message counts as handled when it or a later
    message of its channel was answered; callers wait for the last message of each
    channel.
    """

    def __init__(self, discord_api: DiscordStandIn) -> None:
        self.discord_api = discord_api
        self.tail = Tail(discord_api)
        self.answered: set[str] = set()
        self.posts = 0
        self.last_post_at = 0.0

    def update(self) -> set[str]:
        for request in self.tail.new():
            if is_message_post(request):
                self.posts += 1
                self.last_post_at = max(self.last_post_at, request.at)
                reference = (request.json or {}).get("message_reference") or {}
                if "message_id" in reference:
                    self.answered.add(str(reference["message_id"]))
        return self.answered

    async def wait_for(self, message_ids: Iterable[str]) -> None:
        """Wait until every message of `message_ids` has been answered."""
        wanted = set(message_ids)
        await self.discord_api.wait_for(lambda: wanted <= self.update(), STUCK_AFTER)


async def settle() -> None:
    """Let the bot finish the turn after its post (remember the answer, log) before the next.

    Messages then arrive one at a time, as in a quiet channel.
    """
    await asyncio.sleep(0.005)


# ---------------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------------

WORDS = (
    "the bot answers every message in the channel and remembers what people said before "
    "so a question about yesterday's build can refer to the error log that somebody pasted "
    "earlier while another person asks how to configure the deploy script for staging and "
    "whether tokens are counted before or after the history is trimmed to fit the budget"
).split()


def chat_text(seed: int, chars: int) -> str:
    """Deterministic English-like text of about `chars` characters (~4.5 chars a token)."""
    rng = random.Random(seed)
    words: list[str] = []
    length = 0
    while length < chars:
        word = rng.choice(WORDS)
        words.append(word)
        length += len(word) + 1
    return " ".join(words).capitalize() + "?"


# ---------------------------------------------------------------------------------
# Bots in this process (as tests/conftest.py runs ours)
# ---------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def bot_in_process(
    kind: Kind, apis: StandIns, counter: TokenCounter, *, stream: bool = False, **extra: str
) -> AsyncIterator[discord.Client]:
    """Run our bot or the relay in this event loop until the block ends (`extra`: more
    settings for our bot, e.g. MAX_CONTEXT_TOKENS="32768"; by default each bot has a
    database of its own in a temporary folder).

    Yields once on_ready has fired (the server and its channels are cached).
    """
    with tempfile.TemporaryDirectory() as folder:
        extra = {"DATABASE_URL": str(Path(folder) / "bot.db"), **extra}
        env = bot_environment(apis, stream=stream, **extra)
        client: discord.Client
        if kind == "ours":
            point_discord_at(apis.discord.url)
            loaded = asyncio.get_running_loop().create_future()
            loaded.set_result(counter)  # loaded once for the whole run
            client = ChatBot(load_settings(env), loaded)
        else:
            relay_bot.point_discord_at(apis.discord.url)
            client = relay_bot.RelayBot(
                MODEL, openai.AsyncOpenAI(api_key=OPENAI_KEY, base_url=apis.openai.base_url)
            )
        async with client:  # sets up the client's loop state, closes it at the end
            running = asyncio.create_task(client.start(env["DISCORD_BOT_TOKEN"]))
            ready = asyncio.create_task(client.wait_until_ready())
            await asyncio.wait({running, ready}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
            if running.done():
                ready.cancel()
                running.result()  # raise what stopped it
                raise RuntimeError(f"{kind} bot stopped before it was ready")
            if not ready.done():
                raise RuntimeError(f"{kind} bot was not ready within 30 s")
            try:
                yield client
            finally:
                await client.close()
                await asyncio.wait_for(running, 10)


# ---------------------------------------------------------------------------------
# Bots as processes (`python bot.py` with a .env, as a user runs it)
# ---------------------------------------------------------------------------------

CONNECTED_LINE = "Connected as"


@dataclass
class BotProcess:
    """A bot running as a child process, with its output watched line by line."""

    kind: Kind
    process: asyncio.subprocess.Process
    started_at: float
    connected_at: float | None = None
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=40))
    reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    async def watch_output(self) -> None:
        """Keep reading (a full pipe would block the bot); note when on_ready logs."""
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            line = raw.decode(errors="replace").rstrip()
            self.tail.append(line)
            if self.connected_at is None and CONNECTED_LINE in line:
                self.connected_at = time.monotonic()
                self.connected.set()

    async def wait_connected(self) -> float:
        """Wait for the bot's "Connected as" log line (on_ready); when it was read."""
        try:
            await asyncio.wait_for(self.connected.wait(), 60)
        except TimeoutError:
            output = "\n".join(self.tail)
            raise RuntimeError(f"{self.kind} bot never connected; it said:\n{output}") from None
        assert self.connected_at is not None
        return self.connected_at

    def rss(self) -> int:
        """Resident memory now, in bytes (psutil)."""
        return psutil.Process(self.pid).memory_info().rss

    def peak_rss(self) -> int:
        """The kernel's high-water mark of resident memory (VmHWM), in bytes."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmHWM in /proc/<pid>/status")

    async def stop(self) -> None:
        """SIGTERM (the bot closes cleanly; the relay just dies), then reap it."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self.reader is not None:
            await self.reader


async def launch(
    kind: Kind, apis: StandIns, folder: Path, *, stream: bool = False, **extra: str
) -> BotProcess:
    """Start `python bot.py` (with a .env in `folder`) or `python bench/relay_bot.py`.

    Both get a bare environment; the relay reads the same variables from it.
    """
    # A database of its own: two bots never share a SQLite file (the second refuses to).
    extra = {"DATABASE_URL": str(folder / "bot.db"), **extra}
    settings = bot_environment(apis, stream=stream, **extra)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(folder)}
    if kind == "ours":
        (folder / ".env").write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        script = BOT_SCRIPT
    else:
        env.update(settings)
        script = RELAY_SCRIPT
    started_at = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        cwd=folder,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    bot = BotProcess(kind, process, started_at)
    bot.reader = asyncio.create_task(bot.watch_output())
    return bot


@contextlib.asynccontextmanager
async def bot_process(
    kind: Kind, apis: StandIns, folder: Path, *, stream: bool = False, **extra: str
) -> AsyncIterator[BotProcess]:
    """A bot process, connected (its on_ready logged) for the block, stopped after."""
    bot = await launch(kind, apis, folder, stream=stream, **extra)
    try:
        try:
            await apis.discord.wait_until_ready(timeout=30)
        except AssertionError:
            output = "\n".join(bot.tail)
            raise RuntimeError(f"{kind} bot never became ready; it said:\n{output}") from None
        await bot.wait_connected()
        yield bot
    finally:
        await bot.stop()


class RssSampler:
    """Samples a process's RSS every `interval` seconds in the background; keeps the max."""

    def __init__(self, bot: BotProcess, interval: float = 0.05) -> None:
        self.bot = bot
        self.interval = interval
        self.max_rss = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.max_rss = max(self.max_rss, self.bot.rss())
            await asyncio.sleep(self.interval)

    def __enter__(self) -> RssSampler:
        self.max_rss = self.bot.rss()
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
        self.max_rss = max(self.max_rss, self.bot.rss())


# ---------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Distribution:
    """Median, 95th and 99th percentile of some samples (linear interpolation between
    ranks)."""

    median: float
    p99: float
    n: int
    p95: float

    @classmethod
    def of(cls, samples: list[float]) -> Distribution:
        if len(samples) < 2:
            raise ValueError("need at least two samples")
        cuts = statistics.quantiles(samples, n=100, method="inclusive")
        return cls(statistics.median(samples), cuts[98], len(samples), cuts[94])
