"""Tests for splitting: an example per rule, then properties over generated answers."""

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from splitting import DISCORD_MESSAGE_LIMIT, ReplySplitter, split_for_discord

# Written independently of the module: up to 3 spaces, then three backticks.
FENCE_LINE = re.compile(r" {0,3}```")


def fence_count(message: str) -> int:
    return sum(1 for line in message.split("\n") if FENCE_LINE.match(line))


def visible_text(text: str) -> str:
    """The non-whitespace characters of text, in order, outside fence lines."""
    lines = [line for line in text.split("\n") if not FENCE_LINE.match(line)]
    return "".join("".join(line.split()) for line in lines)


def stream(text: str, deltas: list[str], limit: int) -> list[str]:
    """Feed deltas (which must join to text) and collect every message; check the previews."""
    assert "".join(deltas) == text
    splitter = ReplySplitter(limit)
    messages = []
    for delta in deltas:
        messages += splitter.feed(delta)
        preview = splitter.preview()
        assert len(preview) <= limit - 2
        assert fence_count(preview) % 2 == 0
    return messages + splitter.finish()


# --- Examples -------------------------------------------------------------------------------


def test_short_text_is_one_message_unchanged() -> None:
    assert split_for_discord("Hello, **world**!\n\nSecond paragraph.") == [
        "Hello, **world**!\n\nSecond paragraph."
    ]


def test_whitespace_only_gives_no_messages() -> None:
    assert split_for_discord("") == []
    assert split_for_discord(" \n\t\n  ") == []


def test_surrounding_whitespace_is_stripped() -> None:
    assert split_for_discord("\n\n\nhello\n\n") == ["hello"]


def test_exactly_the_limit_is_one_message_one_more_is_two() -> None:
    text = "x" * 1000 + " " + "y" * 999
    assert len(text) == DISCORD_MESSAGE_LIMIT
    assert split_for_discord(text) == [text]
    assert split_for_discord(text + "y") == ["x" * 1000, "y" * 1000]


def test_last_paragraph_break_is_preferred_over_line_break() -> None:
    text = "a" * 10 + "\n\n" + "b" * 20 + "\n\n" + "c" * 20 + "\n" + "d" * 20 + " " + "e" * 30
    assert split_for_discord(text, limit=100) == [
        "a" * 10 + "\n\n" + "b" * 20,
        "c" * 20 + "\n" + "d" * 20 + " " + "e" * 30,
    ]


def test_line_break_is_preferred_over_word_break() -> None:
    text = "b" * 60 + "\n" + "c" * 20 + " " + "d" * 30
    assert split_for_discord(text, limit=100) == ["b" * 60, "c" * 20 + " " + "d" * 30]


def test_word_break_drops_the_separating_space() -> None:
    text = "c" * 60 + " " + "d" * 30 + " " + "e" * 30
    assert split_for_discord(text, limit=100) == ["c" * 60 + " " + "d" * 30, "e" * 30]


def test_cut_drops_blank_lines_but_keeps_indentation() -> None:
    text = "a" * 40 + "\n\n\n    indented"
    assert split_for_discord(text, limit=50) == ["a" * 40, "    indented"]


def test_word_longer_than_the_limit_is_hard_cut() -> None:
    # 4 characters of every window stay reserved for a closing fence.
    assert split_for_discord("a" * 5000) == ["a" * 1996, "a" * 1996, "a" * 1008]


def test_long_code_block_is_closed_and_reopened_with_its_tag() -> None:
    code = [f"    value_{i} = compute({i})" for i in range(200)]
    messages = split_for_discord("```python\n" + "\n".join(code) + "\n```")
    assert len(messages) >= 3
    for message in messages:
        assert len(message) <= DISCORD_MESSAGE_LIMIT
        assert message.startswith("```python\n")
        assert message.endswith("\n```")
    inside = [line for m in messages for line in m.split("\n") if not FENCE_LINE.match(line)]
    assert inside == code  # in order, indentation intact


def test_block_left_open_is_closed_at_the_end() -> None:
    assert split_for_discord("Try:\n```py\nprint(1)\n") == ["Try:\n```py\nprint(1)\n```"]


def test_language_tag_is_reopened_up_to_32_characters() -> None:
    code = "\n".join(["x = 1"] * 20)
    for tag, reopened in [("t" * 32, "```" + "t" * 32 + "\n"), ("t" * 33, "```\n")]:
        messages = split_for_discord(f"```{tag}\n{code}\n```", limit=100)
        assert len(messages) > 1
        assert all(m.startswith(reopened) for m in messages[1:])


def test_pathological_language_tag_neither_loops_nor_overflows() -> None:
    text = "```" + "a" * 3000 + "\nprint('hi')\n```\n\nafter"
    messages = split_for_discord(text)
    assert 1 < len(messages) < 5
    assert all(len(m) <= DISCORD_MESSAGE_LIMIT and fence_count(m) % 2 == 0 for m in messages)
    assert messages[-1].endswith("after")
    assert stream(text, list(text), DISCORD_MESSAGE_LIMIT) == messages


def test_indentation_wider_than_a_message_is_dropped() -> None:
    # Found at the head of the rest after a cut, where it would make whitespace-only messages.
    assert split_for_discord("intro\n" + " " * 3000 + "code", limit=100) == ["intro", "code"]


def test_limit_too_small_for_a_reopened_block_is_refused() -> None:
    with pytest.raises(ValueError):
        ReplySplitter(40)


def test_streaming_finalises_messages_before_the_end() -> None:
    splitter = ReplySplitter(100)
    early = splitter.feed("word " * 100)
    assert early
    assert all(len(m) <= 100 for m in early)
    assert early + splitter.finish() == split_for_discord("word " * 100, 100)


def test_preview_closes_an_open_block_and_reopens_after_a_cut() -> None:
    splitter = ReplySplitter(60)
    assert splitter.preview() == ""
    splitter.feed(" \n")
    assert splitter.preview() == ""
    assert splitter.feed("```py\nprint(1)\n") == []
    assert splitter.preview() == "```py\nprint(1)\n```"
    assert splitter.feed("print(2)\n" * 6) == ["```py\nprint(1)\n" + "print(2)\n" * 4 + "```"]
    assert splitter.preview() == "```py\nprint(2)\nprint(2)\n```"
    assert splitter.finish() == ["```py\nprint(2)\nprint(2)\n```"]


def test_streaming_one_character_at_a_time_matches() -> None:
    text = "Intro.\n\n```js\n" + "let x = 1;  // comment\n" * 30 + "```\n\n" + "tail " * 40
    assert stream(text, list(text), 120) == split_for_discord(text, 120)


# --- Properties -----------------------------------------------------------------------------

WORD_CHARS = "abcxyzABC0129.,;:!?()*_-#'\"" + "éßñø" + "日本語中文" + "😀🎉👍🏽" + "\u0301\u0308"
words = st.text(st.sampled_from(WORD_CHARS), min_size=1, max_size=12)
long_words = st.builds(
    lambda char, n: char * n, st.sampled_from(["a", "語", "😀", "e\u0301"]), st.integers(40, 2100)
)
spaces = st.text(st.sampled_from("  \t\u3000\xa0"), min_size=1, max_size=30)
newlines = st.sampled_from(["\n", "\n\n", "\n\n\n", " \n", "\n  ", "\n    ", "\n \n"])
fences = st.builds(
    lambda indent, tag: f"\n{' ' * indent}```{tag}\n",
    st.integers(0, 3),
    st.sampled_from(["", "python", "js", "c++", "x" * 10]),
)
# Many short lines or words at once, so texts get long enough to need cuts at limit 2000.
filler = st.builds(
    lambda unit, n: unit * n,
    st.sampled_from(["lorem ipsum ", "    code(line)\n", "para one.\n\n", "日本語 "]),
    st.integers(1, 200),
)
answers = st.lists(
    st.one_of(words, words, spaces, newlines, fences, long_words, filler), max_size=40
).map("".join)
limits = st.one_of(st.integers(50, 300), st.just(DISCORD_MESSAGE_LIMIT))


@settings(max_examples=200, deadline=None)
@given(answers, limits)
def test_messages_fit_are_balanced_and_keep_the_text(text: str, limit: int) -> None:
    messages = split_for_discord(text, limit)
    assert (messages == []) == (text.strip() == "")
    for message in messages:
        assert 1 <= len(message) <= limit
        assert message.strip()
        assert fence_count(message) % 2 == 0
    assert visible_text("\n".join(messages)) == visible_text(text)


@settings(max_examples=150, deadline=None)
@given(answers, limits, st.data())
def test_streaming_gives_the_same_messages(text: str, limit: int, data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=60)))
    deltas = [text[a:b] for a, b in itertools.pairwise([0, *cuts, len(text)])]
    assert stream(text, deltas, limit) == split_for_discord(text, limit)


@settings(max_examples=50, deadline=None)
@given(answers, st.integers(50, 300), st.integers(1, 7))
def test_streaming_in_tiny_deltas_gives_the_same_messages(text: str, limit: int, size: int) -> None:
    deltas = [text[i : i + size] for i in range(0, len(text), size)]
    assert stream(text, deltas, limit) == split_for_discord(text, limit)
