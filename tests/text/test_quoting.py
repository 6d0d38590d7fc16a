"""Quotes of what a person points at: bounded, marked line by line, embeds read."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from text.quoting import (
    QUOTE_PREFIX,
    SHORTENED_MARK,
    embed_text,
    forward_header,
    quote,
    quote_budget,
    reply_header,
    with_quotes,
)
from text.tokens import TokenCounter


def test_a_short_message_is_quoted_whole_line_by_line(o200k: TokenCounter) -> None:
    header = reply_header("Grafana", bot=True)
    quoted = quote(header, "CPU 98%\n\non db-1", max_tokens=100, counter=o200k)
    assert quoted == "[replying to this message from Grafana (a bot):]\n> CPU 98%\n>\n> on db-1"


def test_a_long_message_is_cut_at_its_beginning_and_says_so(o200k: TokenCounter) -> None:
    text = " ".join(f"word{n}" for n in range(2000))
    quoted = quote(forward_header(), text, max_tokens=60, counter=o200k)
    assert o200k.count_text(quoted) <= 60
    assert quoted.startswith("[forwarded a message:]\n> word0 word1")
    assert quoted.endswith(SHORTENED_MARK)


def test_no_room_leaves_the_header(o200k: TokenCounter) -> None:
    assert quote("[h]", "some text " * 50, max_tokens=3, counter=o200k) == f"[h]\n{SHORTENED_MARK}"


def test_an_empty_message_is_its_header_alone(o200k: TokenCounter) -> None:
    assert quote(reply_header(None), "  ", max_tokens=50, counter=o200k) == (
        "[replying to this message:]"
    )


@settings(max_examples=150, deadline=None)
@given(text=st.text(min_size=1, max_size=400), max_tokens=st.integers(20, 200))
def test_every_quoted_line_is_marked_and_the_quote_fits(
    o200k: TokenCounter, text: str, max_tokens: int
) -> None:
    quoted = quote("[h]", text, max_tokens=max_tokens, counter=o200k)
    header, *lines = quoted.split("\n")
    assert header == "[h]"
    # Nothing quoted can pass for the person's own words: every line is marked.
    assert all(line.startswith(QUOTE_PREFIX.rstrip()) or line == SHORTENED_MARK for line in lines)
    assert o200k.count_text(quoted) <= max(max_tokens, o200k.count_text(f"[h]\n{SHORTENED_MARK}"))


def test_embeds_are_read_title_description_fields_footer() -> None:
    embeds = [
        {
            "title": "FIRING: DiskFull",
            "description": "db-1 /var 97%",
            "fields": [{"name": "severity", "value": "critical"}, {"name": "", "value": "x"}],
            "footer": {"text": "Alertmanager"},
        },
        {"type": "image", "url": "https://example.com/a.png"},  # nothing to read
    ]
    assert embed_text(embeds) == (
        "FIRING: DiskFull\ndb-1 /var 97%\nseverity: critical\nx\nAlertmanager"
    )


def test_quotes_come_first_then_the_persons_text() -> None:
    assert with_quotes(["[q]\n> a"], "why?") == "[q]\n> a\n\nwhy?"
    assert with_quotes([], "why?") == "why?"
    assert with_quotes(["[q]"], "") == "[q]"


def test_quotes_take_a_quarter_of_the_budget() -> None:
    assert quote_budget(3000) == 750
