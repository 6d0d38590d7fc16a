"""Figures 11b and 11c: keeping the knowledge index (issue 23).

11b. Backfill throughput: a channel with `history` messages written days ago; /settings
     knowledge on; messages indexed per second until the history is read, through the
     Discord stand-in (pages of 100, its rate-limit headers obeyed by discord.py) at the
     bot's own pace (backfill.PAGE_PAUSE between pages, so answers keep the rate limit),
     our bot in this process on SQLite.
11c. What indexing live traffic adds to message -> model request in figure 8's busy
     channel (streamed, one message after another): two bot processes at once, one with
     knowledge off and one with it on (turned on before the channel fills), their
     messages interleaved so that the machine's load falls on both alike; the figure is
     p99(on) - p99(off). Target <= 1 ms: the message path only queues a message, the
     index is written in the background.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from harness import Distribution, bot_in_process, bot_process, chat_text, standins

from knowledge.backfill import PAGE_PAUSE
from text.tokens import TokenCounter

ON = {"mode": "on", "scope": "channel"}


@dataclass(frozen=True)
class KnowledgePlan:
    history: int = 20_000  # messages read back for 11b
    fill_turns: int = 30  # as figure 8
    samples: int = 200  # as figure 8


QUICK = KnowledgePlan(history=2_000, samples=30)


async def backfill_throughput(plan: KnowledgePlan, counter: TokenCounter) -> dict[str, float]:
    """Messages per second read back into the index (11b)."""
    with tempfile.TemporaryDirectory() as folder:
        async with standins() as apis:
            lines = [("alice", chat_text(n, 200)) for n in range(plan.history)]
            apis.discord.past_messages("general", lines, days_ago=30, spacing=timedelta(seconds=5))
            url = str(Path(folder) / "bot.db")
            async with bot_in_process("ours", apis, counter, DATABASE_URL=url):
                started = time.monotonic()
                sent = await apis.discord.user_runs_command(
                    "general", "owner", "settings knowledge", ON
                )
                await apis.discord.wait_for_interaction_response(sent, 10)

                def finished() -> bool:
                    shown = apis.discord.interaction_responses(sent)
                    return any("Read the history" in (r["content"] or "") for r in shown)

                await apis.discord.wait_for(finished, 600)
                seconds = time.monotonic() - started
    pages = len(apis.discord.requests_to("GET", rf"/channels/{apis.discord.general.id}/messages"))
    return {"messages": plan.history, "seconds": seconds, "pages": pages,
            "per_second": plan.history / seconds, "page_pause_s": PAGE_PAUSE}  # fmt: skip


async def busy_to_model(plan: KnowledgePlan) -> dict[bool, list[float]]:
    """Figure 8's busy channel, streamed, through two bot processes at once, knowledge
    off and on, their messages interleaved (so load on the machine falls on both alike):
    dispatch -> model request per message, ms, by whether knowledge is on."""
    from run import LONG_TURN_CHARS, ms, timed_turn  # run.py imports this module first

    with tempfile.TemporaryDirectory() as off_dir, tempfile.TemporaryDirectory() as on_dir:
        async with (
            standins() as off,
            standins() as on,
            bot_process("ours", off, Path(off_dir), stream=True),
            bot_process("ours", on, Path(on_dir), stream=True),
        ):
            sent = await on.discord.user_runs_command("general", "owner", "settings knowledge", ON)
            await on.discord.wait_for_interaction_response(sent, 10)
            for i in range(plan.fill_turns):
                for apis in (off, on):
                    await timed_turn(apis, "general", chat_text(2000 + i, LONG_TURN_CHARS))
            samples: dict[bool, list[float]] = {False: [], True: []}
            for i in range(plan.samples):
                for knowledge in (False, True) if i % 2 else (True, False):
                    apis = on if knowledge else off
                    text = chat_text(8000 + i, LONG_TURN_CHARS)
                    turn = await timed_turn(apis, "general", text)
                    samples[knowledge].append(ms(turn.to_model))
    return samples


async def figures_11bc(quick: bool, counter: TokenCounter, results: Any, row: type) -> None:
    """Figures 11b and 11c into `results` (run.py's Results), as `row`s (run.py's Row)."""
    plan = QUICK if quick else KnowledgePlan()
    details = results.details

    def add_row(*fields: Any) -> None:
        results.rows.append(row(*fields))

    backfill = await backfill_throughput(plan, counter)
    samples = await busy_to_model(plan)
    off, on = Distribution.of(samples[False]), Distribution.of(samples[True])
    details["knowledge_index"] = {
        "plan": dataclasses.asdict(plan),
        "backfill": backfill,
        "busy_channel_to_model_ms": {"off": dataclasses.asdict(off), "on": dataclasses.asdict(on)},
    }
    add_row("11b", "knowledge backfill: messages indexed per second", "msg/s",
            backfill["per_second"])  # fmt: skip
    added = on.p99 - off.p99
    add_row("11c", "knowledge on: added p99, busy channel message -> model", "ms", added,
            None, "<= 1 ms", added <= 1.0)  # fmt: skip
    add_row("11c", "knowledge on: added median, busy channel message -> model", "ms",
            on.median - off.median)  # fmt: skip
    add_row("11c", "busy channel message -> model p99, knowledge on", "ms", on.p99)
