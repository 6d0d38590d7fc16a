"""Benchmark of the Discord bot against a minimal relay bot: `make bench` (or `--quick`).

Both bots, ours (bot.py) and the floor (bench/relay_bot.py: message in, model, reply
out; no memory, no counting, no splitting, no typing), are driven the same way through
the stand-ins of tests/standins/, over real sockets, with the real discord.py and
OpenAI SDK. Absolute times on a shared 2-core machine drift from run to run, so each
figure is measured for both bots back to back and reported with the ratio ours/relay.
Times are `time.monotonic()` in this process: the dispatch time is taken right before
`DiscordStandIn.user_says(...)`; everything else is a stand-in's record of a request
(`.at` = when the request arrived, `OpenAIRequest.finished_at` = when the model's
answer was complete, `.sent_chunks` = when each streamed piece was sent). Latencies
are the median and p99 of 200 turns per case (`--quick`: 30), sent one at a time.
Targets are shown next to the figures, never asserted.

A full run takes about half an hour on 2 cores, most of it for figures 9 (2 x 100,000
turns) and 4 (2 x 20,000 turns) through real bot processes, figure 10 about 3 minutes;
`--quick` is a ~90 s smoke run with less of everything; `--only 1,6` runs some figures.

1. Dispatch -> model. From the dispatch of a MESSAGE_CREATE to the chat-completions
   request arriving at the OpenAI stand-in: what the bot does before asking the model
   (gateway parsing, memory, prompt, typing indicator, SDK request). Each bot runs as
   its own process, as in figure 4 (non-streamed, no per-user rate limit), with the
   stand-ins in this process: the stand-ins' own work (sending the event, parsing
   requests, the OpenAI stand-in's token count) is not on the bot's event loop. Both
   ends are still timed here (`time.monotonic()` is CLOCK_MONOTONIC, one clock for
   all processes), so the interval includes the stand-ins sending the event and
   reading the request; the relay's figure is that floor plus what every bot pays
   (discord.py's gateway parsing, the OpenAI SDK building its request). The JSON
   splits ours at its typing indicator's POST, which the bot sends beside the model
   call.
   (a) short history: turns spread over 50 channels, a few turns each;
   (b) full budget: one channel first filled with ~64-token turns until the history is
   trimmed, so every request carries ~the whole prompt budget (MAX_CONTEXT_TOKENS -
   MAX_REPLY_TOKENS = 3072); the stand-in's own token count of each request is
   reported to show it. (c) the first message in a channel whose history (a budget's
   worth, posted while the bot was away) our bot reads back from Discord first; 50
   channels, median only. The relay always sends the one message. The short-history
   channels get one untimed message first, so (a) never includes a read-back.
2. Answer -> Discord. From the model's answer being complete (`finished_at`) to the
   bot's first POST of it arriving at the Discord stand-in; the full-budget turns of 1,
   so the bots are processes here too.
3. Throughput. 50 channels x 20 messages dispatched at once, instant model (the
   stand-in's echo), bots in-process: time from the first dispatch until all 1000
   messages are handled (the last answer posted), and messages per second. The relay
   answers each message; our bot answers a channel in order and, when more than 3
   messages wait, answers the newest with the rest as context, so it is done when
   each channel's last message is answered. Answers posted are shown too.
4. Memory. The bot as a process (`python bot.py` with a .env; the relay as
   `python bench/relay_bot.py`), both at once, each with its own stand-ins: psutil
   RSS once on_ready has logged, then after 1000 channels x 20 turns of ~200 characters
   (turn t of every channel before turn t+1; at most 16 messages unanswered; instant
   model), and the
   peak: the kernel's high-water mark (VmHWM), which includes start-up. In waves: a
   fresh process of ours (the relay's floor is the steady form's), the same channels
   and turns, but each turn one message (~60 tokens) in every channel dispatched at
   once, the next wave once all are answered; the peak (VmHWM).
5. Token work per turn. Our bot in-process with a TokenCounter that records every
   `count_text` call; one channel, turns 1..N of ~64 tokens each (N = 80), so the
   history grows to the budget and is then trimmed. Per turn: characters and tokens
   encoded, which must stay flat as the history grows (each message is counted once,
   when it arrives), and the bot-side time of the turn (dispatch -> model plus
   answer -> post), which shows whatever else grows with the history.
6. Launch -> READY. A process started (the bot as `python bot.py`, the relay as
   `python bench/relay_bot.py`) until the Discord stand-in has sent READY and
   GUILD_CREATE, and until the bot's own "Connected as" log line (on_ready); the
   median of 5 launches each, alternating.
7. Streaming. A scripted 20-second answer (200 chunks 0.1 s apart; non-streamed: the
   same answer after 19.9 s), three bot processes at once, each with its own
   stand-ins: ours streamed, ours not streamed, the relay. From the dispatch: the
   first POST (first visible text), and the last POST/PATCH (the channel shows the
   final answer); the model's first token (first streamed chunk sent) for reference.
8. Busy channel, streamed. One channel filled to the budget as in 1b, then messages one
   after another, each dispatched once the previous answer's first post arrived (so
   its last edit may still be due); instant model; ours streams (the relay cannot).
   Per message: dispatch -> model request, and dispatch -> the first POST or PATCH
   that shows the whole answer; p50/p95/p99 of `samples` messages, bots as processes.
9. Many channels. Both bots as processes at once (as figure 4): DMs from new users
   (user_1, user_2, ...), one message each (a new channel each), at most 16
   unanswered; RSS after the first checkpoint (10,000) and the last (100,000), once
   every message so far is answered. Most of a full run's time (2 x 100,000 turns).
10. Prompt cache. Two people (alice, bob) take turns in one channel, each message
   (~64 tokens) answered before the next, our bot in-process (as figure 5) with the
   OpenAI stand-in caching prompts by OpenAI's rules (tests/standins/prompt_cache.py,
   keyed by the bot's prompt_cache_key). At MAX_CONTEXT_TOKENS 4,096 (300 messages;
   `--quick`: 60) and 32,768 (1,000; `--quick`: 250), each twice in the same run:
   trimmed in steps (memory.LOW_MARK as shipped) and one turn at a time, as before
   (memory.LOW_MARK = 1.0), each with fresh stand-ins. Counted from the first request
   whose prompt reaches 90 % of the budget: the share of prompt tokens the stand-in
   served from its cache, the mean history tokens sent (the prompt without its system
   message) as a share of the budget, and the billed input cost per answer at
   gpt-5.4-mini's prices (PRICE_INPUT, PRICE_CACHED_INPUT).
11a. Knowledge search: 1,000,000 indexed messages on SQLite (`--quick`: 100,000), a
   person who reads 50 of 200 channels; see bench/knowledge_search.py.

12. llama.cpp prefix reuse: bench/llama_prefix.py (its docstring says what and why).

13. One process against two shard processes on one PostgreSQL, and the p99 the message
   claim adds to dispatch -> model; see bench/shard_throughput.py.

Output: a table on stdout (figure, ours, relay, ours/relay, target), then the same as
JSON, also written to bench/results/latest.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bot.py, tests/

import argparse
import asyncio
import dataclasses
import itertools
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import discord
import knowledge_search
import llama_prefix
import shard_throughput
import tiktoken
from harness import (
    KINDS,
    AnswerTracker,
    Distribution,
    Kind,
    RssSampler,
    StandIns,
    Tail,
    bot_in_process,
    bot_process,
    chat_text,
    is_message_post,
    is_typing,
    launch,
    next_matching,
    settle,
    standins,
)
from knowledge_index import figures_11bc

import memory
from config import Settings
from tests.standins.openai_standin import OpenAIRequest, Reply
from tests.standins.prompt_cache import prompt_sequence
from tests.standins.recording import RecordedRequest
from text.splitting import split_for_discord
from text.tokens import TokenCounter, load_encoding

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
PROMPT_BUDGET = Settings(discord_bot_token="unused").prompt_budget  # the default: 3072
SHORT_CHANNELS = 50  # figure 1a spreads its turns over this many channels
LONG_TURN_CHARS = 360  # ~64 tokens: the turns that fill a history to the budget
UNSEEN_HISTORY = 50  # figure 1c: messages in a channel before the bot's first (> budget)
MIB = 1024 * 1024
MEMORY_IN_FLIGHT = 16  # figure 4: unanswered messages at most
BURST_CHARS = 270  # figure 4 in waves: ~60 tokens a message
# Figure 10: gpt-5.4-mini's standard prices in USD per million input tokens, as listed
# for March 2026 (input $0.75; cached input $0.075, i.e. 90 % off, as for the GPT-5
# family). Not found on openai.com from here: taken from a pricing table that cites
# OpenAI's (docs.rs/crate/adk-model, src/openai/pricing.rs) and third-party listings
# that agree on $0.75. Only their ratio (0.1) matters for the cost targets.
PRICE_INPUT = 0.75
PRICE_CACHED_INPUT = 0.075
CACHE_FULL_SHARE = 0.9  # figure 10 counts from the first prompt this full of the budget


@dataclass(frozen=True)
class Plan:
    """How much work each figure does (full mode; `--quick` scales it down)."""

    samples: int = 200  # latency samples per bot and case (figures 1, 2)
    first_contacts: int = 50  # figure 1c: channels whose first message is timed
    warmup: int = 20
    fill_turns: int = 30  # turns that fill a channel past the budget (~140 tokens each)
    burst_channels: int = 50
    burst_messages: int = 20
    memory_channels: int = 1000
    memory_turns: int = 20
    growth_turns: int = 80
    launches: int = 5
    stream_chunks: int = 200
    chunk_delay: float = 0.1
    seen_checkpoints: tuple[int, ...] = (10_000, 100_000)  # figure 9
    # Figure 10: MAX_CONTEXT_TOKENS -> messages in the conversation.
    cache_messages: tuple[tuple[int, int], ...] = ((4096, 300), (32768, 1000))


QUICK = Plan(
    samples=30,
    first_contacts=10,
    warmup=5,
    burst_channels=10,
    burst_messages=5,
    memory_channels=50,
    memory_turns=5,
    growth_turns=40,
    launches=2,
    stream_chunks=20,
    seen_checkpoints=(500, 2_000),
    cache_messages=((4096, 60), (32768, 250)),
)


@dataclass
class Row:
    """One line of the table: a figure for both bots and its target."""

    figure: str
    label: str
    unit: str
    ours: float | None
    relay: float | None = None
    target: str = ""
    met: bool | None = None  # None: no target

    @property
    def ratio(self) -> float | None:
        if self.ours is None or not self.relay:
            return None
        return self.ours / self.relay

    def as_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "ratio": self.ratio}


@dataclass
class Results:
    """The table's rows, and the figures' raw numbers for the JSON."""

    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------
# One timed turn
# ---------------------------------------------------------------------------------


@dataclass
class TurnTiming:
    """One message through a bot, non-streamed: the times the stand-ins recorded."""

    dispatched: float
    request: OpenAIRequest
    post: RecordedRequest
    typing_at: float | None  # our bot's typing indicator, if it sent one first

    @property
    def to_model(self) -> float:
        """Dispatch -> the model request arrived (figure 1), seconds."""
        return self.request.at - self.dispatched

    @property
    def to_post(self) -> float:
        """Model answer complete -> the first post arrived (figure 2), seconds."""
        assert self.request.finished_at is not None
        return self.post.at - self.request.finished_at

    @property
    def prompt_tokens(self) -> int:
        """The request's prompt tokens as the OpenAI stand-in counted them."""
        assert self.request.usage is not None
        return int(self.request.usage["prompt_tokens"])


async def timed_turn(apis: StandIns, channel: str, text: str, user: str = "alice") -> TurnTiming:
    """`user` says `text` in `channel`; wait for the bot's answer to be posted."""
    discord_tail, openai_tail = Tail(apis.discord), Tail(apis.openai)
    dispatched = time.monotonic()
    await apis.discord.user_says(channel, user, text)
    post, before = await next_matching(apis.discord, discord_tail, is_message_post)
    [request] = [r for r in openai_tail.new() if isinstance(r, OpenAIRequest)]
    typing_at = next((r.at for r in before if is_typing(r)), None)
    await settle()
    return TurnTiming(dispatched, request, post, typing_at)


def ms(seconds: float) -> float:
    return seconds * 1000


# ---------------------------------------------------------------------------------
# Figures 1 and 2: latency around the model, short history and full budget
# ---------------------------------------------------------------------------------


@dataclass
class LatencySamples:
    """Figure 1's three cases for one bot."""

    short: list[TurnTiming]  # a few turns of history
    full: list[TurnTiming]  # history at the prompt budget
    first: list[TurnTiming]  # first message in a channel with a budget's worth of history


async def latency_turns(kind: Kind, plan: Plan) -> LatencySamples:
    """Figure 1's samples of one bot process, one message at a time."""
    short_channels = [f"channel-{c}" for c in range(SHORT_CHANNELS)]
    first_channels = [f"channel-{SHORT_CHANNELS + c}" for c in range(plan.first_contacts)]
    with tempfile.TemporaryDirectory() as folder:
        async with (
            standins(extra_text_channels=SHORT_CHANNELS + plan.first_contacts) as apis,
            bot_process(kind, apis, Path(folder)),
        ):
            # History the bot never saw live (stored, not sent to it, as if posted while
            # it was away): our bot reads it back on the first message in the channel.
            for c, channel in enumerate(first_channels):
                for i in range(UNSEEN_HISTORY):
                    text = chat_text(100_000 * c + i, LONG_TURN_CHARS)
                    author = ("alice", "bob")[i % 2]
                    await apis.discord.user_says(channel, author, text, deliver=False)
            for i in range(plan.warmup):
                await timed_turn(apis, "random", chat_text(i, 60))
            for channel in short_channels:  # its first message: nothing to read back
                await timed_turn(apis, channel, chat_text(500, 60))
            short = [
                await timed_turn(apis, short_channels[i % SHORT_CHANNELS], chat_text(1000 + i, 60))
                for i in range(plan.samples)
            ]
            first = [
                await timed_turn(apis, channel, chat_text(1500, LONG_TURN_CHARS))
                for channel in first_channels
            ]
            for i in range(plan.fill_turns):
                await timed_turn(apis, "general", chat_text(2000 + i, LONG_TURN_CHARS))
            full = [
                await timed_turn(apis, "general", chat_text(3000 + i, LONG_TURN_CHARS))
                for i in range(plan.samples)
            ]
    return LatencySamples(short, full, first)


def typing_breakdown(turns: list[TurnTiming]) -> dict[str, float] | None:
    """Medians of dispatch -> typing POST arrived -> model request arrived, in ms.

    Our bot sends the typing indicator from a task of its own while the SDK sends the
    model request, so the two overlap: the second interval is short, and negative
    when the model request arrived first.
    """
    typed = [t for t in turns if t.typing_at is not None]
    if not typed:
        return None
    return {
        "dispatch_to_typing_post_ms": statistics.median(
            ms(t.typing_at - t.dispatched) for t in typed if t.typing_at is not None
        ),
        "typing_post_to_model_ms": statistics.median(
            ms(t.request.at - t.typing_at) for t in typed if t.typing_at is not None
        ),
    }


async def figures_1_2(plan: Plan, results: Results) -> None:
    short: dict[Kind, Distribution] = {}
    full: dict[Kind, Distribution] = {}
    first: dict[Kind, Distribution] = {}
    to_post: dict[Kind, Distribution] = {}
    details: dict[str, Any] = {}
    for kind in KINDS:
        samples = await latency_turns(kind, plan)
        short[kind] = Distribution.of([ms(t.to_model) for t in samples.short])
        full[kind] = Distribution.of([ms(t.to_model) for t in samples.full])
        first[kind] = Distribution.of([ms(t.to_model) for t in samples.first])
        to_post[kind] = Distribution.of([ms(t.to_post) for t in samples.full])
        tokens = [t.prompt_tokens for t in samples.full]
        details[kind] = {
            "short_history_ms": dataclasses.asdict(short[kind]),
            "full_budget_ms": dataclasses.asdict(full[kind]),
            "first_message_reading_back_ms": dataclasses.asdict(first[kind]),
            "answer_to_post_ms": dataclasses.asdict(to_post[kind]),
            "full_budget_prompt_tokens": {
                "min": min(tokens),
                "median": statistics.median(tokens),
                "max": max(tokens),
                "budget": PROMPT_BUDGET,
            },
            "short_history_prompt_tokens_max": max(t.prompt_tokens for t in samples.short),
            "first_message_prompt_tokens_median": statistics.median(
                t.prompt_tokens for t in samples.first
            ),
            "typing_indicator_short_history": typing_breakdown(samples.short),
            "typing_indicator_full_budget": typing_breakdown(samples.full),
        }
    results.details["latency"] = details
    ours_p99, relay_p99 = full["ours"].p99, full["relay"].p99
    results.rows += [
        Row("1a", "dispatch -> model, short history, median", "ms",
            short["ours"].median, short["relay"].median),
        Row("1a", "dispatch -> model, short history, p99", "ms",
            short["ours"].p99, short["relay"].p99),
        Row("1b", "dispatch -> model, full budget, median", "ms",
            full["ours"].median, full["relay"].median),
        Row("1b", "dispatch -> model, full budget, p99", "ms", ours_p99, relay_p99,
            "< 3 ms and <= 2x relay", ours_p99 < 3 and ours_p99 <= 2 * relay_p99),
        Row("1c", "dispatch -> model, 1st msg, reads history back, median", "ms",
            first["ours"].median, first["relay"].median),
        Row("2", "answer complete -> first post, median", "ms",
            to_post["ours"].median, to_post["relay"].median),
        Row("2", "answer complete -> first post, p99", "ms",
            to_post["ours"].p99, to_post["relay"].p99),
    ]  # fmt: skip


# ---------------------------------------------------------------------------------
# Figure 3: throughput, many channels at once
# ---------------------------------------------------------------------------------


async def burst(kind: Kind, plan: Plan, counter: TokenCounter) -> tuple[float, int]:
    """Dispatch channels x messages at once; seconds until every message is handled,
    and how many answers were posted.

    The relay answers every message, in any order. Our bot answers a channel's
    messages in order and, when more than a few are waiting, answers the newest with
    the others as context (one post for several messages): its channel is done when
    the channel's last message is answered.
    """
    async with (
        standins(extra_text_channels=plan.burst_channels) as apis,
        bot_in_process(kind, apis, counter),
    ):
        await timed_turn(apis, "random", "warm up")
        answers = AnswerTracker(apis.discord)
        said: dict[int, list[str]] = {c: [] for c in range(plan.burst_channels)}
        started = time.monotonic()
        for m in range(plan.burst_messages):
            for c in range(plan.burst_channels):
                text = chat_text(10_000 * m + c, 80)
                message = await apis.discord.user_says(f"channel-{c}", "alice", text)
                said[c].append(message["id"])
        if kind == "ours":
            await answers.wait_for(ids[-1] for ids in said.values())
        else:
            await answers.wait_for(itertools.chain.from_iterable(said.values()))
        return answers.last_post_at - started, answers.posts


async def figure_3(plan: Plan, counter: TokenCounter, results: Results) -> None:
    total = plan.burst_channels * plan.burst_messages
    runs = {kind: await burst(kind, plan, counter) for kind in KINDS}
    seconds = {kind: runs[kind][0] for kind in KINDS}
    rate = {kind: total / seconds[kind] for kind in KINDS}
    results.details["throughput"] = {
        "messages": total,
        "seconds": seconds,
        "messages_per_second": rate,
        "answers_posted": {kind: runs[kind][1] for kind in KINDS},
    }
    name = f"{plan.burst_channels} ch x {plan.burst_messages} msgs"
    results.rows += [
        Row("3", f"{name}: time until all handled", "s", seconds["ours"], seconds["relay"]),
        Row("3", f"{name}: messages handled per second", "msg/s", rate["ours"], rate["relay"],
            ">= 0.8x relay", rate["ours"] >= 0.8 * rate["relay"]),
        Row("3", f"{name}: answers posted", "posts", runs["ours"][1], runs["relay"][1]),
    ]  # fmt: skip


# ---------------------------------------------------------------------------------
# Figure 4: memory of a bot process under many conversations
# ---------------------------------------------------------------------------------


async def memory_figures(kind: Kind, plan: Plan, waves: bool = False) -> dict[str, float]:
    """RSS of one bot process at READY and after every channel had its turns.

    Turn t of every channel is sent before turn t+1 of any, as a steady stream with
    at most MEMORY_IN_FLIGHT messages unanswered: what is measured is what a thousand
    conversations leave in memory, not a burst (figure 3 is the burst). A larger
    window only burns CPU in the relay, whose HTTP pool then grows to one connection
    per request in flight and scans them all for every request. `waves`: the burst
    form instead: each turn, a message (~60 tokens) in every channel dispatched at once
    (a busy server after an outage, or a raid); the next wave once all are answered.
    """
    channels = [f"channel-{c}" for c in range(plan.memory_channels)]
    send = send_waves if waves else send_steadily
    with tempfile.TemporaryDirectory() as folder:
        async with (
            standins(extra_text_channels=plan.memory_channels) as apis,
            bot_process(kind, apis, Path(folder)) as bot,
        ):
            ready_rss = bot.rss()
            started = time.monotonic()
            with RssSampler(bot) as sampler:
                await send(apis, channels, plan.memory_turns)
            return {
                "ready_mb": ready_rss / MIB,
                "end_mb": bot.rss() / MIB,
                "sampled_max_mb": sampler.max_rss / MIB,
                "peak_mb": bot.peak_rss() / MIB,
                "seconds": time.monotonic() - started,
            }


async def send_steadily(apis: StandIns, channels: list[str], turns: int) -> None:
    """Turn t of every channel before turn t+1, at most MEMORY_IN_FLIGHT unanswered."""
    answers = AnswerTracker(apis.discord)
    said: list[str] = []
    for turn in range(turns):
        for c, channel in enumerate(channels):
            if len(said) >= MEMORY_IN_FLIGHT:
                await answers.wait_for([said[-MEMORY_IN_FLIGHT]])
            message = await apis.discord.user_says(
                channel, "alice", chat_text(1_000_000 * turn + c, 200)
            )
            said.append(message["id"])
    await answers.wait_for(said)


async def send_waves(apis: StandIns, channels: list[str], turns: int) -> None:
    """Each turn, a message in every channel at once; the next once all are answered."""
    answers = AnswerTracker(apis.discord)
    for turn in range(turns):
        wave = [
            await apis.discord.user_says(
                channel, "alice", chat_text(2_000_000 * turn + c, BURST_CHARS)
            )
            for c, channel in enumerate(channels)
        ]
        await answers.wait_for(message["id"] for message in wave)


async def figure_4(plan: Plan, results: Results) -> None:
    # Both bots at once, each a process with its own stand-ins: RSS does not depend on
    # CPU contention, and this figure is most of the run's time (2 x 20,000 turns).
    ours, relay = await asyncio.gather(*(memory_figures(kind, plan) for kind in KINDS))
    memory = {"ours": ours, "relay": relay}
    # In waves, ours only: the relay's floor is the steady form's, and both at once (with
    # other runs on the machine) once waited on a wave past STUCK_AFTER.
    memory["bursts"] = {"ours": await memory_figures("ours", plan, waves=True)}
    results.details["memory"] = memory
    name = f"{plan.memory_channels} ch x {plan.memory_turns} turns"
    peak = {kind: memory[kind]["peak_mb"] for kind in KINDS}
    burst = memory["bursts"]["ours"]["peak_mb"]
    results.rows += [
        Row("4", "RSS at READY (on_ready)", "MB",
            memory["ours"]["ready_mb"], memory["relay"]["ready_mb"]),
        Row("4", f"RSS after {name}", "MB", memory["ours"]["end_mb"], memory["relay"]["end_mb"]),
        Row("4", f"peak RSS (VmHWM), {name}", "MB", peak["ours"], peak["relay"],
            "<= 150 MB", peak["ours"] <= 150),
        Row("4", f"peak RSS, {name} in waves of {plan.memory_channels}", "MB",
            burst, None, "<= 150 MB", burst <= 150),
    ]  # fmt: skip


# ---------------------------------------------------------------------------------
# Figure 5: token work per turn as the history grows
# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenWork:
    """Totals of `count_text` calls: how many, characters and tokens, time inside."""

    calls: int = 0
    chars: int = 0
    tokens: int = 0
    seconds: float = 0.0

    def __sub__(self, other: TokenWork) -> TokenWork:
        return TokenWork(
            self.calls - other.calls,
            self.chars - other.chars,
            self.tokens - other.tokens,
            self.seconds - other.seconds,
        )


class CountingTokenCounter(TokenCounter):
    """The bot's TokenCounter, recording what each `count_text` call encodes."""

    def __init__(self, encoding: tiktoken.Encoding) -> None:
        super().__init__(encoding)
        self.work = TokenWork()

    def count_text(self, text: str) -> int:
        started = time.perf_counter()
        tokens = super().count_text(text)
        w = self.work
        self.work = TokenWork(
            w.calls + 1, w.chars + len(text), w.tokens + tokens,
            w.seconds + time.perf_counter() - started,
        )  # fmt: skip
        return tokens


def series_turns(last: int) -> list[int]:
    return [t for t in (1, 5, 10, 20, 40, 80, 160) if t < last] + [last]


async def figure_5(plan: Plan, encoding: tiktoken.Encoding, results: Results) -> None:
    counter = CountingTokenCounter(encoding)
    series: list[dict[str, float]] = []
    async with standins() as apis, bot_in_process("ours", apis, counter):
        await timed_turn(apis, "random", "warm up")
        for turn in range(1, plan.growth_turns + 1):
            before = counter.work
            timing = await timed_turn(apis, "general", chat_text(5000 + turn, LONG_TURN_CHARS))
            work = counter.work - before
            series.append(
                {
                    "turn": turn,
                    "prompt_tokens": timing.prompt_tokens,
                    "count_calls": work.calls,
                    "chars_encoded": work.chars,
                    "tokens_encoded": work.tokens,
                    "encode_ms": ms(work.seconds),
                    "bot_side_ms": ms(timing.to_model + timing.to_post),
                }
            )
    shown = [series[t - 1] for t in series_turns(plan.growth_turns)]
    near_budget = [s["turn"] for s in series if s["prompt_tokens"] >= 0.95 * PROMPT_BUDGET]
    budget_turn = near_budget[0] if near_budget else None
    results.details["token_work"] = {"series": shown, "turn_reaching_95pct_budget": budget_turn}
    first, last = series[0], series[-1]
    tail = series[len(series) // 2 :]  # at the budget: the bot now trims every turn
    flat = last["chars_encoded"] <= 1.5 * first["chars_encoded"]
    results.rows += [
        Row("5", f"chars encoded in turn {last['turn']:.0f} (turn 1: {first['chars_encoded']:.0f})",
            "chars", last["chars_encoded"], None, "flat", flat),
        Row("5", f"bot-side time/turn, median turns {tail[0]['turn']:.0f}-{last['turn']:.0f}",
            "ms", statistics.median(s["bot_side_ms"] for s in tail)),
    ]  # fmt: skip


# ---------------------------------------------------------------------------------
# Figure 6: launch -> READY
# ---------------------------------------------------------------------------------


async def launch_times(kind: Kind) -> tuple[float, float]:
    """Seconds from the process start to READY sent, and to its "Connected as" line."""
    with tempfile.TemporaryDirectory() as folder:
        async with standins() as apis:
            bot = await launch(kind, apis, Path(folder))
            try:
                await apis.discord.wait_until_ready(timeout=30)
                ready = time.monotonic() - bot.started_at
                connected = await bot.wait_connected() - bot.started_at
            finally:
                await bot.stop()
    return ready, connected


async def figure_6(plan: Plan, results: Results) -> None:
    ready: dict[Kind, list[float]] = {kind: [] for kind in KINDS}
    connected: dict[Kind, list[float]] = {kind: [] for kind in KINDS}
    for _ in range(plan.launches):
        for kind in KINDS:
            to_ready, to_connected = await launch_times(kind)
            ready[kind].append(to_ready)
            connected[kind].append(to_connected)
    results.details["launch"] = {"ready_s": ready, "connected_s": connected}
    med_ready = {kind: statistics.median(ready[kind]) for kind in KINDS}
    med_connected = {kind: statistics.median(connected[kind]) for kind in KINDS}
    results.rows += [
        Row("6", "launch -> READY sent, median", "s", med_ready["ours"], med_ready["relay"],
            "< 1.5 s", med_ready["ours"] < 1.5),
        Row("6", "launch -> 'Connected as' (on_ready), median", "s",
            med_connected["ours"], med_connected["relay"]),
    ]  # fmt: skip


# ---------------------------------------------------------------------------------
# Figure 7: streaming a long answer
# ---------------------------------------------------------------------------------


def long_answer(chunks: int) -> tuple[str, list[str]]:
    """A ~1800-character answer (one Discord message) cut into `chunks` stream pieces."""
    words = chat_text(7, 1800).split(" ")
    per_chunk = [len(words) * i // chunks for i in range(chunks + 1)]
    pieces = [" ".join(words[a:b]) + " " for a, b in itertools.pairwise(per_chunk)]
    pieces[-1] = pieces[-1].rstrip()
    return "".join(pieces), pieces


async def streamed_answer(kind: Kind, stream: bool, plan: Plan) -> dict[str, float]:
    """One long answer through a bot process; seconds from the dispatch."""
    text, pieces = long_answer(plan.stream_chunks)
    model_seconds = plan.chunk_delay * (len(pieces) - 1)
    final = split_for_discord(text) if kind == "ours" else [text[:2000]]
    with tempfile.TemporaryDirectory() as folder:
        async with standins() as apis, bot_process(kind, apis, Path(folder), stream=stream):
            if stream:
                apis.openai.script(Reply(text, chunks=pieces, chunk_delay=plan.chunk_delay))
            else:
                apis.openai.script(Reply(text, delay=model_seconds))
            tail = Tail(apis.discord)
            dispatched = time.monotonic()
            await apis.discord.user_says("general", "alice", "Tell me the long story, please.")
            await apis.discord.wait_for(
                lambda: [m["content"] for m in apis.discord.bot_messages("general")] == final,
                timeout=model_seconds + 30,
            )
            writes = [
                r for r in tail.new() if r.method in ("POST", "PATCH") and "/messages" in r.path
            ]
            [request] = apis.openai.chat_requests
    first_token = request.sent_chunks[0][0] if request.sent_chunks else request.finished_at
    assert first_token is not None and request.finished_at is not None
    return {
        "first_visible_s": min(r.at for r in writes if r.method == "POST") - dispatched,
        "complete_s": max(r.at for r in writes) - dispatched,
        "model_first_token_s": first_token - dispatched,
        "model_done_s": request.finished_at - dispatched,
        "discord_writes": len(writes),
    }


async def figure_7(plan: Plan, results: Results) -> None:
    streamed, whole, relay = await asyncio.gather(
        streamed_answer("ours", True, plan),
        streamed_answer("ours", False, plan),
        streamed_answer("relay", False, plan),
    )
    results.details["streaming"] = {"ours_streamed": streamed, "ours_not_streamed": whole,
                                    "relay": relay}  # fmt: skip
    seconds = plan.chunk_delay * (plan.stream_chunks - 1)
    limit = streamed["model_first_token_s"] + 1.2
    results.rows += [
        Row("7", f"{seconds:.0f}-s answer, streamed: model first token", "s",
            streamed["model_first_token_s"]),
        Row("7", "streamed: first visible text", "s", streamed["first_visible_s"],
            relay["first_visible_s"], "<= model first token + 1.2 s",
            streamed["first_visible_s"] <= limit),
        Row("7", "streamed: model's last token", "s", streamed["model_done_s"],
            relay["model_done_s"]),
        Row("7", "streamed: complete answer shown", "s", streamed["complete_s"],
            relay["complete_s"], "<= model's last token + 0.1 s",
            streamed["complete_s"] <= streamed["model_done_s"] + 0.1),
        Row("7", "not streamed: first visible text", "s", whole["first_visible_s"],
            relay["first_visible_s"]),
        Row("7", "not streamed: complete answer shown", "s", whole["complete_s"],
            relay["complete_s"]),
    ]  # fmt: skip


# ---------------------------------------------------------------------------------
# Figure 8: a busy channel, streamed
# ---------------------------------------------------------------------------------


def final_write_times(discord_api: Any, finals: set[str]) -> dict[str, float]:
    """For each text of `finals`, when a POST or PATCH that shows it arrived first."""
    seen: dict[str, float] = {}
    for r in discord_api.requests:
        if r.method in ("POST", "PATCH") and r.status == 200 and isinstance(r.json, dict):
            content = r.json.get("content")
            if content in finals and content not in seen:
                seen[content] = r.at
    return seen


def final_text(turn: TurnTiming) -> str:
    """The answer as both bots show it whole (one message: the answers are short)."""
    return (turn.request.reply_text or "").strip()[:2000]


async def busy_channel(kind: Kind, plan: Plan) -> tuple[list[float], list[float]]:
    """One channel filled to the budget, then messages one after another (each sent
    once the previous answer's first post arrived); instant model. Ours streams.

    Returns per message: dispatch -> model request, and dispatch -> the complete
    answer shown (the first POST or PATCH carrying the whole answer), in ms.
    """
    with tempfile.TemporaryDirectory() as folder:
        async with (
            standins() as apis,
            bot_process(kind, apis, Path(folder), stream=kind == "ours"),
        ):
            for i in range(plan.fill_turns):
                await timed_turn(apis, "general", chat_text(2000 + i, LONG_TURN_CHARS))
            turns = [
                await timed_turn(apis, "general", chat_text(8000 + i, LONG_TURN_CHARS))
                for i in range(plan.samples)
            ]
            finals = {final_text(t) for t in turns}
            await apis.discord.wait_for(
                lambda: len(final_write_times(apis.discord, finals)) == len(finals), 60
            )
            shown = final_write_times(apis.discord, finals)
    to_model = [ms(t.to_model) for t in turns]
    complete = [ms(shown[final_text(t)] - t.dispatched) for t in turns]
    return to_model, complete


async def figure_8(plan: Plan, results: Results) -> None:
    to_model: dict[Kind, Distribution] = {}
    complete: dict[Kind, Distribution] = {}
    for kind in KINDS:
        model_ms, complete_ms = await busy_channel(kind, plan)
        to_model[kind] = Distribution.of(model_ms)
        complete[kind] = Distribution.of(complete_ms)
    results.details["busy_channel"] = {
        kind: {"to_model_ms": dataclasses.asdict(to_model[kind]),
               "to_complete_answer_ms": dataclasses.asdict(complete[kind])}
        for kind in KINDS
    }  # fmt: skip
    rows: list[Row] = []
    for name, stat in (("p50", "median"), ("p95", "p95"), ("p99", "p99")):
        ours, relay = getattr(to_model["ours"], stat), getattr(to_model["relay"], stat)
        target = ("<= 1.2x relay", ours <= 1.2 * relay) if stat == "p99" else ("", None)
        rows.append(Row("8", f"busy channel, streamed: message -> model, {name}", "ms",
                        ours, relay, *target))  # fmt: skip
    for name, stat in (("p50", "median"), ("p95", "p95"), ("p99", "p99")):
        ours, relay = getattr(complete["ours"], stat), getattr(complete["relay"], stat)
        target = ("<= relay + 50 ms", ours <= relay + 50) if stat == "p99" else ("", None)
        rows.append(Row("8", f"busy channel: message -> complete answer shown, {name}", "ms",
                        ours, relay, *target))  # fmt: skip
    results.rows += rows


# ---------------------------------------------------------------------------------
# Figure 9: memory after many channels
# ---------------------------------------------------------------------------------


async def channels_seen(kind: Kind, plan: Plan) -> dict[str, float]:
    """RSS of one bot process after `plan.seen_checkpoints` DM channels, one message
    each (a new user each time), at most MEMORY_IN_FLIGHT unanswered."""
    last = plan.seen_checkpoints[-1]
    rss: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        async with standins() as apis, bot_process(kind, apis, Path(folder)) as bot:
            answers = AnswerTracker(apis.discord)
            said: list[str] = []
            for n in range(1, last + 1):
                if len(said) >= MEMORY_IN_FLIGHT:
                    await answers.wait_for([said[-MEMORY_IN_FLIGHT]])
                message = await apis.discord.user_dms(f"user_{n}", chat_text(n, 200))
                said.append(message["id"])
                if n in plan.seen_checkpoints:
                    await answers.wait_for(said[-MEMORY_IN_FLIGHT:])
                    rss[str(n)] = bot.rss() / MIB
            rss["peak"] = bot.peak_rss() / MIB
    return rss


async def figure_9(plan: Plan, results: Results) -> None:
    ours, relay = await asyncio.gather(*(channels_seen(kind, plan) for kind in KINDS))
    results.details["channels_seen_rss_mb"] = {"ours": ours, "relay": relay}
    first, last = (str(n) for n in (plan.seen_checkpoints[0], plan.seen_checkpoints[-1]))
    growth = ours[last] / ours[first] - 1
    results.rows += [
        Row("9", f"RSS after {int(first):,} DM channels, 1 message each", "MB",
            ours[first], relay[first]),
        Row("9", f"RSS after {int(last):,} DM channels, 1 message each", "MB",
            ours[last], relay[last], f"within 10 % of {int(first):,} ({growth:+.1%})",
            abs(growth) <= 0.10),
    ]  # fmt: skip


# ---------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------
# Figure 10: prompt cache, trimmed in steps against one turn at a time
# ---------------------------------------------------------------------------------


def history_tokens(request: OpenAIRequest) -> int:
    """The tokens of a request's prompt without its system message(s), as the stand-in
    counts prompts (tests/standins/prompt_cache.py)."""
    assert request.json is not None
    history = [m for m in request.json.get("messages", []) if m.get("role") != "system"]
    return len(prompt_sequence({"messages": history}, "o200k_base", lambda url, detail: 0))


async def cached_conversation(
    plan_messages: int, context: int, low_mark: float | None, counter: TokenCounter
) -> dict[str, float]:
    """One conversation of `plan_messages` messages at MAX_CONTEXT_TOKENS `context`;
    `low_mark` None: memory as shipped, else memory.LOW_MARK for this run."""
    shipped = memory.LOW_MARK
    budget = context - Settings(discord_bot_token="unused").max_reply_tokens
    per_request: list[tuple[int, int, int]] = []  # prompt, cached, history tokens
    if low_mark is not None:
        memory.LOW_MARK = low_mark  # read when a channel's memory is made
    try:
        async with (
            standins() as apis,
            bot_in_process("ours", apis, counter, MAX_CONTEXT_TOKENS=str(context)),
        ):
            apis.openai.cache_prompts()
            for n in range(plan_messages):
                user = ("alice", "bob")[n % 2]
                turn = await timed_turn(
                    apis, "general", chat_text(10_000 + n, LONG_TURN_CHARS), user
                )
                per_request.append(
                    (turn.prompt_tokens, turn.request.cached_count, history_tokens(turn.request))
                )
    finally:
        memory.LOW_MARK = shipped
    full = [i for i, (p, _, _) in enumerate(per_request) if p >= CACHE_FULL_SHARE * budget]
    counted = per_request[full[0] :] if full else []
    prompt = sum(p for p, _, _ in counted)
    cached = sum(c for _, c, _ in counted)
    cost = (prompt - cached) * PRICE_INPUT + cached * PRICE_CACHED_INPUT  # USD per 1e6
    answers = max(len(counted), 1)
    return {
        "budget": budget,
        "messages": plan_messages,
        "counted_from_message": (full[0] + 1) if full else -1,
        "counted_requests": len(counted),
        "cached_share_pct": 100 * cached / prompt if prompt else 0.0,
        "mean_history_pct": (
            100 * statistics.mean(h for _, _, h in counted) / budget if counted else 0.0
        ),
        "mean_prompt_tokens": statistics.mean(p for p, _, _ in counted) if counted else 0.0,
        "cost_per_1000_answers_usd": cost / 1e6 / answers * 1000,
    }


CACHE_TARGETS = {4096: (65, 0.4), 32768: (90, 0.2)}  # cached share %, cost vs old
HISTORY_TARGET = 75  # mean history sent, % of the budget


async def figure_10(plan: Plan, counter: TokenCounter, results: Results) -> None:
    details: dict[str, Any] = {
        "prices_usd_per_million": {"input": PRICE_INPUT, "cached_input": PRICE_CACHED_INPUT},
        "low_mark": memory.LOW_MARK,
    }
    for context, messages in plan.cache_messages:
        steps = await cached_conversation(messages, context, None, counter)
        old = await cached_conversation(messages, context, 1.0, counter)
        details[str(context)] = {"steps": steps, "one_turn_at_a_time": old}
        cached_target, cost_target = CACHE_TARGETS.get(context, (None, None))
        ratio = (
            steps["cost_per_1000_answers_usd"] / old["cost_per_1000_answers_usd"]
            if old["cost_per_1000_answers_usd"]
            else None
        )
        size = f"{context:,}"
        results.rows += [
            Row("10", f"{size}: prompt tokens from cache, trimmed in steps", "%",
                steps["cached_share_pct"], None,
                f">= {cached_target} %" if cached_target else "",
                steps["cached_share_pct"] >= cached_target if cached_target else None),
            Row("10", f"{size}: prompt tokens from cache, one turn at a time", "%",
                old["cached_share_pct"]),
            Row("10", f"{size}: mean history sent / budget, in steps", "%",
                steps["mean_history_pct"], None, f">= {HISTORY_TARGET} %",
                steps["mean_history_pct"] >= HISTORY_TARGET),
            Row("10", f"{size}: mean history sent / budget, one at a time", "%",
                old["mean_history_pct"]),
            Row("10", f"{size}: input cost per 1,000 answers, in steps", "$",
                steps["cost_per_1000_answers_usd"]),
            Row("10", f"{size}: input cost per 1,000 answers, one at a time", "$",
                old["cost_per_1000_answers_usd"]),
            Row("10", f"{size}: input cost, in steps / one at a time", "x", ratio, None,
                f"<= {cost_target}x" if cost_target else "",
                ratio <= cost_target if cost_target and ratio is not None else None),
        ]  # fmt: skip
    results.details["prompt_cache"] = details


async def figure_11a(plan: Plan, results: Results) -> None:
    rows, results.details["knowledge_search"] = await knowledge_search.measure(plan is QUICK)
    results.rows += [Row("11a", *row) for row in rows]


async def figure_13(plan: Plan, results: Results) -> None:
    rows, results.details["shards"] = await shard_throughput.measure(plan is QUICK)
    results.rows += [Row("13", label, unit, ours, None, goal) for label, unit, ours, goal in rows]


def figure_order(row: Row) -> tuple[int, str]:
    """Rows in figure order: 1a, 1b, 2, ..., 9, 10 (not 10 before 1a)."""
    digits = "".join(itertools.takewhile(str.isdigit, row.figure))
    return int(digits or 0), row.figure[len(digits) :]


SHOWN = {  # unit -> how a value in it is printed; any other unit: "{value:.0f} {unit}"
    "ms": "{:.2f} ms",
    "s": "{:.2f} s",
    "MB": "{:.1f} MB",
    "msg/s": "{:.0f} msg/s",
    "%": "{:.1f} %",
    "x": "{:.2f}x",
    "$": "${:.4f}",
}


def show(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return SHOWN.get(unit, "{:.0f} " + unit).format(value)


def table(rows: list[Row]) -> str:
    header = ("fig", "measure", "ours", "relay", "ours/relay", "target")
    lines = [header]
    for row in rows:
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "-"
        verdict = {True: "met", False: "MISSED", None: ""}[row.met]
        target = f"{row.target} [{verdict}]" if row.target else ""
        lines.append((row.figure, row.label, show(row.ours, row.unit),
                      show(row.relay, row.unit), ratio, target))  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        cells = [
            cell.ljust(w) if i in (0, 1, 5) else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def series_table(series: list[dict[str, float]]) -> str:
    lines = [
        "turn  prompt tokens  count calls  chars encoded  tokens encoded  encode ms  bot-side ms"
    ]
    for s in series:
        lines.append(
            f"{s['turn']:>4.0f}  {s['prompt_tokens']:>13.0f}  {s['count_calls']:>11.0f}  "
            f"{s['chars_encoded']:>13.0f}  {s['tokens_encoded']:>14.0f}  "
            f"{s['encode_ms']:>9.3f}  {s['bot_side_ms']:>11.2f}"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------


async def run(plan: Plan, only: set[str] | None, quick: bool = False) -> Results:
    results = Results()
    encoding = await asyncio.to_thread(load_encoding, "o200k_base")
    counter = TokenCounter(encoding)

    def wanted(figure: str) -> bool:
        return only is None or figure in only

    steps: list[tuple[str, str, Callable[[], Awaitable[None]]]] = [
        ("6", "launch -> READY", lambda: figure_6(plan, results)),
        ("1", "latency around the model", lambda: figures_1_2(plan, results)),
        ("5", "token work per turn", lambda: figure_5(plan, encoding, results)),
        ("3", "throughput", lambda: figure_3(plan, counter, results)),
        ("7", "streaming", lambda: figure_7(plan, results)),
        ("4", "memory", lambda: figure_4(plan, results)),
        ("8", "busy channel", lambda: figure_8(plan, results)),
        ("9", "many channels", lambda: figure_9(plan, results)),
        ("10", "prompt cache", lambda: figure_10(plan, counter, results)),
        ("11", "knowledge search", lambda: figure_11a(plan, results)),
        ("11", "knowledge upkeep", lambda: figures_11bc(plan is QUICK, counter, results, Row)),
        ("12", "llama.cpp prefix", lambda: llama_prefix.figure_12(quick, counter, Row, results)),
        ("13", "one vs two shard processes", lambda: figure_13(plan, results)),
    ]
    for figure, name, step in steps:
        if not wanted(figure):
            continue
        started = time.monotonic()
        print(f"figure {figure}: {name} ...", end="", flush=True)
        await step()
        print(f" {time.monotonic() - started:.1f} s", flush=True)
    results.rows.sort(key=figure_order)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples: a smoke run")
    parser.add_argument("--only", help="comma-separated figures to run, e.g. 1,3 (2 runs with 1)")
    parser.add_argument(
        "--channels", help="figure 9's checkpoints, e.g. 10000,100000 (the full default)"
    )
    args = parser.parse_args()
    plan = QUICK if args.quick else Plan()
    if args.channels:
        checkpoints = tuple(int(n) for n in args.channels.split(","))
        plan = dataclasses.replace(plan, seen_checkpoints=checkpoints)
    only = {"1" if f == "2" else f for f in args.only.split(",")} if args.only else None
    # A text bot needs no voice: skip discord.py's warnings about voice libraries (as bot.py).
    discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False

    started = time.monotonic()
    load_before = os.getloadavg()
    results = asyncio.run(run(plan, only, args.quick))
    output = {
        "mode": "quick" if args.quick else "full",
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - started, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_before": load_before,
        },
        "plan": dataclasses.asdict(plan),
        "figures": [row.as_json() for row in results.rows],
        "details": results.details,
    }
    print()
    print(table(results.rows))
    if "token_work" in results.details:
        print()
        print("figure 5, per turn in one channel:")
        print(series_table(results.details["token_work"]["series"]))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(output, indent=2) + "\n")
    print()
    print(json.dumps(output, indent=2))
    print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    main()
