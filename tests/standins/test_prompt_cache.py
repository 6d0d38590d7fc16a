"""The OpenAI stand-in's prompt caching (OpenAI's documented rules), through the SDK."""

from __future__ import annotations

import pytest

from tests.standins.openai_standin import prompt_tokens
from tests.standins.prompt_cache import IDLE_SECONDS, PromptCache, prompt_sequence

SYSTEM = {"role": "system", "content": "You are a helpful bot. " + "Be kind and brief. " * 300}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def cached(client, messages: list[dict], **extra) -> tuple[int, int]:
    """(prompt tokens, cached tokens) the stand-in reports for `messages`."""
    completion = await client.chat.completions.create(
        model="gpt-4o", messages=messages, extra_body=extra or None
    )
    usage = completion.usage
    return usage.prompt_tokens, usage.prompt_tokens_details.cached_tokens


async def test_caching_is_opt_in(standin, client) -> None:
    assert (await cached(client, [SYSTEM, user("a")]))[1] == 0
    assert (await cached(client, [SYSTEM, user("b")]))[1] == 0


def user(text: str) -> dict:
    return {"role": "user", "content": text}


async def test_an_exact_prefix_hits_in_128_token_increments(standin, client) -> None:
    standin.cache_prompts()
    first, hit = await cached(client, [SYSTEM, user("first question")])
    assert first >= 1024 and hit == 0  # nothing cached yet
    prompt, hit = await cached(client, [SYSTEM, user("first question"), user("more")])
    shared = first - 3  # the earlier prompt, less its reply priming
    assert hit == shared // 128 * 128 and hit >= 1024 and hit < prompt
    # A change in the first message: nothing matches.
    changed = {**SYSTEM, "content": "X" + SYSTEM["content"]}
    assert (await cached(client, [changed, user("first question")]))[1] == 0


async def test_short_prompts_never_hit(standin, client) -> None:
    standin.cache_prompts()
    short = [{"role": "system", "content": "Be brief."}, user("hi")]
    for _ in range(3):
        assert (await cached(client, short))[1] == 0


async def test_routes_by_prompt_cache_key_and_expires_when_idle(standin, client) -> None:
    clock = Clock()
    standin.cache_prompts(clock=clock)
    await cached(client, [SYSTEM, user("one")], prompt_cache_key="a")
    # Another key is another cache.
    assert (await cached(client, [SYSTEM, user("two")], prompt_cache_key="b"))[1] == 0
    assert (await cached(client, [SYSTEM, user("two")], prompt_cache_key="a"))[1] >= 1024
    clock.now += IDLE_SECONDS - 1  # a hit keeps the entry warm...
    assert (await cached(client, [SYSTEM, user("three")], prompt_cache_key="a"))[1] >= 1024
    clock.now += IDLE_SECONDS + 1  # ...a few minutes idle evicts it
    assert (await cached(client, [SYSTEM, user("four")], prompt_cache_key="a"))[1] == 0
    assert [request.usage["prompt_tokens_details"]["cached_tokens"] > 0 for request in
            standin.chat_requests] == [False, False, True, True, False]  # fmt: skip


async def test_streamed_usage_reports_cached_tokens(standin, client) -> None:
    standin.cache_prompts()
    await cached(client, [SYSTEM, user("one")])
    stream = await client.chat.completions.create(
        model="gpt-4o",
        messages=[SYSTEM, user("two")],
        stream=True,
        stream_options={"include_usage": True},
    )
    usage = [chunk.usage async for chunk in stream if chunk.usage is not None][-1]
    assert usage.prompt_tokens_details.cached_tokens >= 1024


def test_the_flattened_prompt_counts_as_the_stand_in_does() -> None:
    cache = PromptCache()
    body = {"model": "gpt-4o", "messages": [SYSTEM, {**user("hi"), "name": "Ana"}]}
    tokens = prompt_sequence(body, "o200k_base", lambda url, detail: 85)
    assert len(tokens) == prompt_tokens(body) - 3  # the reply priming is not a prefix
    assert cache.lookup(tokens, None) == 0
    assert cache.lookup(tokens, None) == len(tokens) // 128 * 128
    assert cache.share() == pytest.approx((len(tokens) // 128 * 128) / (2 * len(tokens)))
