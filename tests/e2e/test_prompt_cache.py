"""Cacheable prompts (issue 24), through the stand-ins: prompt_cache_key on every request
until a server refuses it, cached tokens counted into /usage and the log, and a long
two-person conversation served mostly from OpenAI's prompt cache (the stand-in's
rules), far more than with the old one-turn-at-a-time trimming."""

from __future__ import annotations

import logging
import random
import re

import pytest

import memory
from model.request import cache_key
from tests.helpers import replies, run_command, until
from tests.standins.discord import DiscordStandIn
from tests.standins.openai_standin import OpenAIStandIn

# A persona long enough that every prompt passes OpenAI's 1,024-token caching minimum.
PERSONA = "You are a patient helper for a Discord server. " + "Answer kindly and briefly. " * 220


async def converse(
    discord_api: DiscordStandIn, channel: str, exchanges: int, seed: int, *, first: int = 0
) -> None:
    """Alice and Bob take turns asking in `channel`; each waits for its answer."""
    rng = random.Random(seed)
    for n in range(exchanges):
        speaker = ("alice", "bob")[n % 2]
        text = f"question {n}: " + " ".join(rng.choice(["tide", "moon", "sea"]) for _ in range(
            rng.randint(20, 60)))  # fmt: skip
        await discord_api.user_says(channel, speaker, text)
        await replies(discord_api, channel, first + n + 1)


def cached_share_once_full(openai_api: OpenAIStandIn, start: int) -> float:
    """Cached share of prompt tokens of the requests from `start` on, counted from the
    first one that no longer carries the conversation's first message."""
    requests = openai_api.chat_requests[start:]
    opening = requests[0].json["messages"][1]
    full = next(i for i, r in enumerate(requests) if r.json["messages"][1] != opening)
    billed = [r.usage for r in requests[full:]]
    prompt = sum(u["prompt_tokens"] for u in billed)
    return sum(u["prompt_tokens_details"]["cached_tokens"] for u in billed) / prompt


async def test_cached_tokens_reach_usage_and_the_log(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, caplog
) -> None:
    caplog.set_level(logging.INFO)
    openai_api.cache_prompts()
    await start_bot(
        SYSTEM_PROMPT=PERSONA,
        PRICE_INPUT_PER_MILLION="2",
        PRICE_OUTPUT_PER_MILLION="8",
        PRICE_CACHED_INPUT_PER_MILLION="0.5",
    )
    await converse(discord_api, "general", 3, seed=1)
    billed = [r.usage for r in openai_api.chat_requests]
    cached = sum(u["prompt_tokens_details"]["cached_tokens"] for u in billed)
    assert billed[0]["prompt_tokens_details"]["cached_tokens"] == 0
    assert all(u["prompt_tokens_details"]["cached_tokens"] >= 1024 for u in billed[1:])
    pattern = r"answered channel=\d+ .*cached_tokens=(\d+)"
    await until(lambda: len(re.findall(pattern, caplog.text)) == len(billed))
    logged = [int(n) for n in re.findall(pattern, caplog.text)]
    assert logged == [u["prompt_tokens_details"]["cached_tokens"] for u in billed]

    mine = await run_command(discord_api, "general", "alice", "usage me")
    alice = [u for n, u in enumerate(billed) if n % 2 == 0]
    prompt = sum(u["prompt_tokens"] for u in alice)
    hits = sum(u["prompt_tokens_details"]["cached_tokens"] for u in alice)
    completion = sum(u["completion_tokens"] for u in alice)
    cost = ((prompt - hits) * 2 + hits * 0.5 + completion * 8) / 1_000_000
    assert (
        f"**Today:** {prompt + completion:,} tokens ({prompt:,} in, {hits:,} of them cached, "
        f"{completion:,} out), 2 answers, cost {cost:.4f}" in mine["content"]
    )
    assert cached > 0


async def test_the_prompt_cache_key_is_sent_and_dropped_once_when_refused(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn, caplog
) -> None:
    caplog.set_level(logging.WARNING)
    bot = await start_bot()
    await discord_api.user_says("general", "alice", "hello")
    await replies(discord_api, "general")
    [request] = openai_api.completions
    general = discord_api.channels["general"].id
    assert request["prompt_cache_key"] == cache_key(general, bot.settings.openai_model)
    assert str(general) not in request["prompt_cache_key"]
    assert "safety_identifier" not in request  # OpenAI's own API only (unit-tested)

    openai_api.refuse_fields("prompt_cache_key")
    for n, text in enumerate(["one", "two"]):
        await discord_api.user_says("random", "bob", text)
        await replies(discord_api, "random", n + 1)
    refused, *accepted = openai_api.chat_requests[1:]
    assert refused.status == 400 and "prompt_cache_key" in refused.json
    assert [r.status for r in accepted] == [200, 200]
    assert all("prompt_cache_key" not in r.json for r in accepted)
    assert caplog.text.count("refused the request field 'prompt_cache_key'") == 1


@pytest.mark.parametrize("context", ["4096"])
async def test_a_long_two_person_conversation_is_mostly_served_from_the_cache(
    start_bot,
    discord_api: DiscordStandIn,
    openai_api: OpenAIStandIn,
    monkeypatch: pytest.MonkeyPatch,
    context: str,
) -> None:
    openai_api.cache_prompts()
    first = await start_bot(MAX_CONTEXT_TOKENS=context)
    await converse(discord_api, "general", 90, seed=2)
    stepped = cached_share_once_full(openai_api, 0)
    await first.close()

    # The bench-only switch: trimming one turn at a time, as before issue 24.
    monkeypatch.setattr(memory, "LOW_MARK", 1.0)
    start = len(openai_api.chat_requests)
    await start_bot(MAX_CONTEXT_TOKENS=context)
    await converse(discord_api, "random", 90, seed=2)
    one_at_a_time = cached_share_once_full(openai_api, start)
    assert stepped >= 0.6
    assert one_at_a_time < 0.3 and stepped >= 2 * one_at_a_time
