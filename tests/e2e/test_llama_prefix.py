"""The real bot against a real llama.cpp server: what the server evaluates per answer.

llama-cpp-python's server keeps the previous prompt (and its answer) evaluated and,
for the next request, evaluates only the tokens after the longest common beginning
(it logs "N prefix-match hit, remaining M prompt tokens to eval"). Trimmed in steps
(memory.LOW_MARK, as shipped), a full channel's requests between two steps only append
to the one before, so the server evaluates just the new tokens; trimmed one turn at a
time (LOW_MARK = 1.0, as the bot used to), every request drops its oldest turn, so once
the budget is full the server evaluates the whole prompt for every answer. Read from the
server's own log (`LlamaServer.evaluations`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import memory
from tests.helpers import final_messages
from tests.llama_server import Evaluation, LlamaServer, skip_without_llama, tiny_server
from tests.standins.discord import DiscordStandIn

skip_without_llama()

TURNS = 40
# In the bot's own (o200k) tokens; the bot learns from the server's usage that the
# tiny model counts about three times as many, and aims its budget at the server's
# count: prompts of up to ~1,000 server tokens, well inside the server's 2,048, filled
# by about 13 exchanges of ~80 server tokens, so 40 turns take several steps.
MAX_CONTEXT = "1152"
MAX_REPLY = "64"
SYSTEM = "You are a helpful assistant in a Discord channel."
SENTENCE = "How do I configure the deploy script for staging so the build passes?"


@pytest.fixture(scope="module")
def terse_llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """A llama.cpp server whose answers run about four tokens (eos bias 2.0)."""
    with tiny_server(tmp_path_factory.mktemp("terse-llama"), "terse.gguf", eos_bias=2.0) as server:
        yield server


async def conversation(
    start_bot, discord_api: DiscordStandIn, server: LlamaServer
) -> list[Evaluation]:
    """Alice and bob take TURNS turns in one channel, each answered before the next;
    the server's report of each answer, in order."""
    await start_bot(
        OPENAI_BASE_URL=server.base_url,
        OPENAI_MODEL=server.model,
        OPENAI_TIMEOUT="30",
        MAX_CONTEXT_TOKENS=MAX_CONTEXT,
        MAX_REPLY_TOKENS=MAX_REPLY,
        SYSTEM_PROMPT=SYSTEM,
    )
    since = server.log_size()
    for n in range(TURNS):
        await discord_api.user_says("general", ("alice", "bob")[n % 2], f"{n}: {SENTENCE}")
        await final_messages(discord_api, "general", n + 1)
    found = server.evaluations(since)
    assert len(found) == TURNS, server.log_tail()
    return found


def steps(found: list[Evaluation]) -> list[int]:
    """The requests whose prompt is shorter than the one before: turns were dropped."""
    return [n for n in range(1, len(found)) if found[n].prompt_tokens < found[n - 1].prompt_tokens]


async def test_between_steps_only_the_new_tokens_are_evaluated(
    start_bot, discord_api: DiscordStandIn, terse_llama: LlamaServer
) -> None:
    found = await conversation(start_bot, discord_api, terse_llama)
    dropped = steps(found)
    assert len(dropped) >= 2, [e.prompt_tokens for e in found]  # the budget filled often
    appended = [n for n in range(dropped[0], len(found)) if n not in dropped]
    assert len(appended) >= len(dropped) * 3  # most requests only append
    for n in appended:
        # New: what the prompt gained beyond the previous prompt and the part of its
        # answer the server holds, as generated, after it.
        before = found[n - 1]
        new = found[n].prompt_tokens - before.prompt_tokens - before.answer_held
        assert abs(found[n].evaluated - new) <= 0.1 * new, (n, before, found[n])


async def test_one_turn_at_a_time_evaluates_the_whole_prompt(
    start_bot,
    discord_api: DiscordStandIn,
    terse_llama: LlamaServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(memory, "LOW_MARK", 1.0)  # the old trimming
    found = await conversation(start_bot, discord_api, terse_llama)
    full = steps(found)
    assert full, [e.prompt_tokens for e in found]
    # All but the system prompt (about 6 % of these prompts) is evaluated again.
    for e in found[full[0] :]:
        assert e.evaluated >= 0.9 * e.prompt_tokens, e
