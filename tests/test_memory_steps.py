"""Trimming in steps (memory.py): consecutive requests in a full channel share their
beginning except at a step, and a simulation of OpenAI's prompt caching rules that
justifies LOW_MARK."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from conversation.prompts import PromptBuilder
from memory import LOW_MARK, ChannelMemory, ImagePart, Turn, image_placeholder
from text.tokens import TokenCounter

# OpenAI's prompt caching (platform.openai.com/docs/guides/prompt-caching): prompts of
# at least 1,024 tokens; the longest exact prefix cached, in 128-token increments.
CACHE_MINIMUM = 1024
CACHE_STEP = 128


def words(n: int) -> str:
    return " ".join(["word"] * n)


def user(builder: PromptBuilder, speaker: str, size: int, n: int) -> Turn:
    turn, _ = builder.turn("user", f"{n} {words(size)}", speaker)
    return dataclasses.replace(turn, message_ids=(n,))


def answer(builder: PromptBuilder, size: int, n: int) -> Turn:
    turn, _ = builder.turn("assistant", f"{n} {words(size)}")
    return dataclasses.replace(turn, replies_to=n)


def shared(previous: list[dict[str, Any]], current: list[dict[str, Any]]) -> bool:
    """Whether `current` starts with every message of `previous`."""
    return current[: len(previous)] == previous


def message_tokens(counter: TokenCounter, message: dict[str, Any]) -> int:
    content = message["content"]
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content)
    return counter.count_message(message["role"], content, message.get("name"))


def cached(counter: TokenCounter, previous: list[dict[str, Any]], current: list[dict]) -> int:
    """The tokens of `current` OpenAI serves from the cache after `previous` (one key)."""
    total = sum(message_tokens(counter, m) for m in current)
    if total < CACHE_MINIMUM:
        return 0
    common = 0
    for old, new in zip(previous, current, strict=False):
        if old != new:
            break
        common += message_tokens(counter, new)
    return common // CACHE_STEP * CACHE_STEP


def simulate(
    counter: TokenCounter, budget: int, low_mark: float, turns: int
) -> tuple[float, float]:
    """A two-person channel of `turns` questions and answers, each answered in turn:
    (share of prompt tokens cached once the budget was first full, mean history tokens
    sent as a share of the history budget over those requests)."""
    builder = PromptBuilder(counter, "You are a helpful Discord bot. " * 10, budget)
    memory = ChannelMemory(builder.history_budget, low_mark=low_mark)
    rng = random.Random(7)
    previous: list[dict[str, Any]] = []
    full = False
    prompt_tokens = cached_tokens = history = requests = 0
    for n in range(turns):
        dropped = memory.remember(user(builder, rng.choice(["Ana", "Bo"]), rng.randint(10, 80), n))
        full = full or bool(dropped)
        prompt = builder.prompt(memory)
        if full:
            prompt_tokens += prompt.tokens
            cached_tokens += cached(counter, previous, prompt.messages)
            history += memory.tokens
            requests += 1
        previous = prompt.messages
        memory.remember(answer(builder, rng.randint(20, 200), n))
    return cached_tokens / prompt_tokens, history / requests / memory.budget


def test_low_mark_caches_most_prompt_tokens_and_sends_most_of_the_budget(
    o200k: TokenCounter,
) -> None:
    share, sent = simulate(o200k, 3072, LOW_MARK, 300)
    assert share >= 0.65 and sent >= 0.75
    # Today's trimming, one turn at a time, reuses little more than the system prompt.
    old_share, old_sent = simulate(o200k, 3072, 1.0, 300)
    assert old_share < 0.25 and old_sent > sent
    large, _ = simulate(o200k, 32_768 - 4096, LOW_MARK, 1000)
    assert large >= 0.85


@given(
    turns=st.lists(
        st.tuples(st.sampled_from(["Ana", "Bo", "Cy"]), st.integers(1, 120), st.integers(1, 200)),
        min_size=1,
        max_size=60,
    ),
    budget=st.integers(300, 1500),
)
@settings(max_examples=80, deadline=None)
def test_consecutive_requests_share_their_beginning_except_at_a_step(
    o200k: TokenCounter, turns: list[tuple[str, int, int]], budget: int
) -> None:
    builder = PromptBuilder(o200k, "Be brief.", budget)
    memory = ChannelMemory(builder.history_budget)
    previous: list[dict[str, Any]] | None = None
    for n, (speaker, asked, answered) in enumerate(turns):
        was_labelled = memory.labelled
        step = bool(memory.remember(user(builder, speaker, asked, n)))
        prompt = builder.prompt(memory)
        assert prompt.messages[-1]["content"].endswith(words(asked)[-20:])  # newest stays
        assert prompt.tokens <= budget
        changed = step or memory.labelled != was_labelled
        if previous is not None and not changed:
            assert shared(previous, prompt.messages)
        previous = prompt.messages
        step = bool(memory.remember(answer(builder, answered, n)))
        if step:
            previous = None


def test_labels_stay_on_when_the_second_speaker_leaves_the_window(o200k: TokenCounter) -> None:
    builder = PromptBuilder(o200k, "Be brief.", 600)
    memory = ChannelMemory(builder.history_budget)
    memory.remember(user(builder, "Ana", 5, 0))
    memory.remember(user(builder, "Bo", 5, 1))
    assert memory.labelled
    before = builder.prompt(memory).messages
    memory.forget({1})  # Bo's message deleted: labels stay until a step
    memory.remember(user(builder, "Ana", 5, 2))
    assert memory.labelled and shared(before[:2], builder.prompt(memory).messages)
    while not memory.remember(user(builder, "Ana", 50, len(memory) + 10)):
        pass
    assert not memory.labelled  # the step left a single speaker
    assert memory.tokens == sum(turn.tokens for turn in memory)


def test_older_images_are_let_go_of_only_at_a_step(o200k: TokenCounter) -> None:
    builder = PromptBuilder(o200k, "Be brief.", 3000)
    memory = ChannelMemory(builder.history_budget, image_turns=1)
    previous = None
    for n in range(4):
        name = f"shot{n}.png"
        picture = ImagePart(name, f"data:image/png;base64,{n}", "low", 85)
        turn, _ = builder.turn("user", image_placeholder(name), "Ana", (picture,), (name,))
        assert not memory.remember(turn)
        messages = builder.prompt(memory).messages
        if previous is not None:
            assert shared(previous, messages)  # the older pictures are still sent
        previous = messages
    assert memory.attachments == (4, 4)


def test_a_smaller_learnt_window_also_moves_in_steps(o200k: TokenCounter) -> None:
    builder = PromptBuilder(o200k, "Be brief.", 3000)
    memory = ChannelMemory(builder.history_budget)
    for n in range(40):
        memory.remember(user(builder, "Ana", 20, n))
        builder.prompt(memory)  # each one answered
    window = 600  # learnt from the server: well under the memory's budget
    first = builder.prompt(memory, window)
    assert first.tokens <= window * LOW_MARK + 40
    memory.remember(user(builder, "Ana", 20, 100))
    second = builder.prompt(memory, window)
    assert shared(first.messages, second.messages)
    assert second.tokens <= window


def test_a_backlog_answered_together_survives_a_step(o200k: TokenCounter) -> None:
    builder = PromptBuilder(o200k, "Be brief.", 1000)
    memory = ChannelMemory(builder.history_budget)
    for n in range(20):
        memory.remember(user(builder, "Ana", 20, n))
        builder.prompt(memory)
    backlog = [user(builder, "Bo", 20, 100 + n) for n in range(30)]
    while sum(t.tokens + t.label_tokens for t in backlog) > memory.budget:
        backlog.pop()
    for turn in backlog:  # a burst, answered in one request (conversations.py)
        memory.remember(turn)
    sent = builder.prompt(memory).messages
    assert sent[-len(backlog) :] == [t.as_message(memory.labelled) for t in backlog]
    assert memory.tokens <= memory.budget
    # Smaller, learnt windows keep the backlog too, as far as it fits.
    for turn in backlog:
        memory.remember(dataclasses.replace(turn, message_ids=(turn.message_ids[0] + 50,)))
    window = builder.prompt(memory, 700)
    assert window.messages[-1]["content"].endswith(backlog[-1].content)
    assert window.tokens <= 700


def test_a_memory_report_changes_nothing_the_next_request_depends_on(
    o200k: TokenCounter,
) -> None:
    builder = PromptBuilder(o200k, "Be brief.", 3000)
    memory = ChannelMemory(builder.history_budget)
    for n in range(40):
        memory.remember(user(builder, "Ana", 20, n))
        builder.prompt(memory)
    window = 600
    first = builder.prompt(memory, window)
    start, unsent = memory.prompt_start, memory.unsent
    memory.remember(user(builder, "Ana", 20, 100))  # waiting, not yet sent
    # /memory builds the request that would be sent (sending=False), and leaves the
    # memory as it was: the waiting turn is still unsent, the start unmoved.
    reported = builder.prompt(memory, window, sending=False)
    assert memory.prompt_start is start and memory.unsent == unsent + 1
    sent = builder.prompt(memory, window)
    assert reported == sent and shared(first.messages, sent.messages)
