"""/catchup's text work: parts within the budget, merging, links, the reply's words."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from knowledge.catchup import (
    LINE_CHARS,
    Span,
    heading,
    in_parts,
    linked,
    merge_request,
    nothing_new,
    part_request,
    reading_progress,
    request_overhead,
    summarise,
    transcript_line,
)
from store import IndexedMessage

START = dt.datetime(2026, 12, 7, 9, 30, tzinfo=dt.UTC)
GUILD, CHANNEL = 100, 200


def message(n: int, text: str = "hello", author: str = "Ana") -> IndexedMessage:
    at = START + dt.timedelta(minutes=n)
    return IndexedMessage(1000 + n, GUILD, CHANNEL, None, 7, author, at, text)


def words(text: str) -> int:
    """A stand-in token count: one per word."""
    return len(text.split())


def link(n: int) -> str:
    return f"https://discord.com/channels/{GUILD}/{CHANNEL}/{1000 + n}"


def test_a_transcript_line_is_numbered_timed_named_and_one_line() -> None:
    assert (
        transcript_line(3, message(0, "ship it\n\non friday")) == "[3] 09:30 Ana: ship it on friday"
    )
    long = transcript_line(1, message(0, "x" * 5000))
    assert len(long) < LINE_CHARS + 30 and long.endswith("…")


@given(sizes=st.lists(st.integers(1, 40), max_size=60), budget=st.integers(40, 200))
def test_parts_keep_the_order_and_fit_the_budget(sizes: list[int], budget: int) -> None:
    lines = [" ".join(["w"] * size) for size in sizes]
    parts = in_parts(lines, budget, words)
    assert [line for part in parts for line in part] == lines
    for part in parts:  # a line alone over the budget is a part of its own
        assert len(part) == 1 or sum(words(line) + 1 for line in part) <= budget


def test_cited_numbers_become_links_and_unknown_ones_go() -> None:
    messages = [message(n) for n in range(1, 4)]
    text = linked("- Ana shipped it [1]\n- Bo asked [2, 3] and [9]\n- nothing [0]", messages)
    assert text == (
        f"- Ana shipped it ([1](<{link(1)}>))\n"
        f"- Bo asked ([2](<{link(2)}>), [3](<{link(3)}>)) and\n- nothing"
    )


async def test_a_short_span_is_one_request() -> None:
    messages = [message(n, f"message {n}") for n in range(1, 4)]
    asked: list[list[dict[str, str]]] = []
    shown: list[str] = []

    async def complete(request: list[dict[str, str]]) -> str:
        asked.append(request)
        return "Ana said things [2]."

    async def progress(text: str) -> None:
        shown.append(text)

    summary = await summarise(
        messages, asker="Bo", channel="#general", budget=500, count=words,
        complete=complete, progress=progress,
    )  # fmt: skip
    assert summary == f"Ana said things ([2](<{link(2)}>))."
    [request] = asked
    assert "for Bo" in request[0]["content"] and "part" not in request[0]["content"]
    assert request[1]["content"].splitlines()[1:] == [
        transcript_line(n, m) for n, m in enumerate(messages, 1)
    ]
    assert shown == ["Summarising…"]


async def test_a_long_span_is_summarised_in_parts_then_merged_within_the_budget() -> None:
    messages = [message(n, " ".join(["word"] * 30)) for n in range(1, 41)]
    budget = 200
    asked: list[list[dict[str, str]]] = []
    shown: list[str] = []

    async def complete(request: list[dict[str, str]]) -> str:
        asked.append(request)
        return f"summary {len(asked)} [{len(asked)}]"

    async def progress(text: str) -> None:
        shown.append(text)

    summary = await summarise(
        messages, asker="Bo", channel="#general", budget=budget, count=words,
        complete=complete, progress=progress,
    )  # fmt: skip
    for request in asked:
        assert sum(words(m["content"]) for m in request) <= budget
    parts = [r for r in asked if "Messages in #general" in r[1]["content"]]
    merges = [r for r in asked if "Summaries of #general" in r[1]["content"]]
    assert len(parts) > 2 and merges
    assert "part 2 of" in parts[1][0]["content"]
    seen = [line for r in parts for line in r[1]["content"].splitlines()[1:]]
    assert seen == [transcript_line(n, m) for n, m in enumerate(messages, 1)]  # each once
    assert shown[:2] == [
        f"Summarising part 1 of {len(parts)}…",
        f"Summarising part 2 of {len(parts)}…",
    ]
    assert shown[len(parts)] == f"Putting {len(parts)} parts together…"
    assert summary.startswith(f"summary {len(asked)} (")  # the last merge is the answer


@given(
    reply_words=st.integers(1, 400),
    lines=st.integers(1, 80),
    budget=st.integers(150, 400),
)
async def test_every_merge_fits_the_budget_however_long_the_summaries(
    reply_words: int, lines: int, budget: int
) -> None:
    # The model may answer each part with up to its reply cap, near or over the room a
    # merge has: merges then take each summary's share of it, never more.
    messages = [message(n, " ".join(["word"] * 20)) for n in range(1, lines + 1)]
    asked: list[list[dict[str, str]]] = []

    async def complete(request: list[dict[str, str]]) -> str:
        asked.append(request)
        return "\n".join(f"- point{k} [{k % lines + 1}]" for k in range(1 + reply_words // 2))

    async def progress(text: str) -> None:
        pass

    summary = await summarise(
        messages, asker="Bo", channel="#general", budget=budget, count=words,
        complete=complete, progress=progress,
    )  # fmt: skip
    assert summary
    assert len(asked) < 4 * lines  # rounds end
    for request in asked:
        assert sum(words(m["content"]) for m in request) <= budget


def test_the_request_overhead_covers_the_instructions() -> None:
    request = part_request(["[1] 09:30 Ana: hi"], asker="Bo", part=1, parts=2, channel="#g")
    overhead = request_overhead("Bo", "#g", words)
    assert sum(words(m["content"]) for m in request) <= overhead + words("[1] 09:30 Ana: hi")
    merged = merge_request(["a [1]", "b [2]"], asker="Bo", channel="#g")
    assert "Part 1:\na [1]" in merged[1]["content"] and "never write links" in merged[0]["content"]


def test_the_reply_says_what_it_covers() -> None:
    two = [message(1), message(2)]
    since = int(START.timestamp())
    assert heading(Span(two, since_own=START), "#general") == (
        f"**Catch-up in #general**: 2 messages since your last message (<t:{since}:R>)"
    )
    assert (
        heading(Span(two[:1], hours=1), "#g") == "**Catch-up in #g**: 1 message in the last 1 hour"
    )
    assert "your last message is older" in heading(Span(two, cut=True), "#g")
    assert "you haven't written here" in heading(Span(two), "#g")
    assert nothing_new(Span([], since_own=START), "#g") == (
        f"Nothing new in #g since your last message (<t:{since}:R>)."
    )
    assert nothing_new(Span([], hours=3), "#g") == "Nothing was said in #g in the last 3 hours."
    assert reading_progress(1300) == "Reading… 1,300 messages"
