"""Quotes of what a person points at: bounded, marked line by line, embeds read."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from text.quoting import (
    OWN_CUT,
    QUOTE_PREFIX,
    QUOTES_CUT,
    SHORTENED_MARK,
    WHOLE,
    embed_text,
    fit_turn_text,
    forward_header,
    quote,
    quote_budget,
    reply_header,
    resolve_mentions,
    split_quotes,
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


# --- a turn cut to fit: the quotes go first, the person's words last -------------------

QUESTION = "so what should I do about this?"


def _turn_text(counter: TokenCounter, quoted: str, own: str) -> str:
    block = quote(reply_header("Bob"), quoted, max_tokens=10_000, counter=counter)
    return with_quotes([block], own)


def test_split_quotes_finds_the_persons_text(o200k: TokenCounter) -> None:
    text = with_quotes(
        [
            quote(reply_header("Bob"), "a\n\nb", max_tokens=100, counter=o200k),
            quote(forward_header(), "c", max_tokens=100, counter=o200k),
        ],
        "mine\n\n> not a quote of ours",
    )
    quotes, rest = split_quotes(text)
    assert len(quotes) == 2 and rest == "mine\n\n> not a quote of ours"
    assert split_quotes("[just brackets:]\n> x") == ([], "[just brackets:]\n> x")


def test_a_long_quote_is_cut_and_the_question_survives(o200k: TokenCounter) -> None:
    text = _turn_text(o200k, "log line 42 " * 400, QUESTION)
    fitted, what = fit_turn_text(text, 100, o200k)
    assert what == QUOTES_CUT
    assert fitted.endswith(f"{SHORTENED_MARK}\n\n{QUESTION}")
    assert fitted.startswith(f"{reply_header('Bob')}\n> log line 42")
    assert o200k.count_text(fitted) <= 100


def test_own_text_is_cut_only_when_it_alone_does_not_fit(o200k: TokenCounter) -> None:
    text = _turn_text(o200k, "quoted " * 50, "mine " * 300)
    fitted, what = fit_turn_text(text, 100, o200k)
    assert what == OWN_CUT and o200k.count_text(fitted) <= 100
    assert fitted.startswith(f"{reply_header('Bob')}\n{SHORTENED_MARK}\n\nmine mine")
    assert fit_turn_text("just mine", 100, o200k) == ("just mine", WHOLE)
    assert fit_turn_text("mine " * 300, 50, o200k)[1] == OWN_CUT


@settings(max_examples=40, deadline=None)
@given(
    st.text(alphabet="abc xyz\n", min_size=1, max_size=600),
    st.text(alphabet="def uvw", min_size=1, max_size=80).map(str.strip).filter(bool),
    st.integers(30, 400),
)
def test_the_persons_words_survive_whenever_they_fit(
    o200k: TokenCounter, quoted: str, own: str, budget: int
) -> None:
    text = _turn_text(o200k, quoted, own)
    fitted, what = fit_turn_text(text, budget, o200k)
    assert o200k.count_text(fitted) <= budget
    least = with_quotes([f"{reply_header('Bob')}\n{SHORTENED_MARK}"], own)
    if o200k.count_text(least) <= budget:
        assert fitted.endswith(f"\n\n{own}") and what != OWN_CUT


def test_mentions_are_resolved_to_names_or_a_neutral_placeholder() -> None:
    known = {("@", 1): "Alice", ("@&", 2): "admins", ("#", 3): "general"}
    text = "<@1> <@!1> <@&2> <#3> <@9> <@&9> <#9> <a:emoji:5> plain"
    assert resolve_mentions(text, lambda kind, id_: known.get((kind, id_))) == (
        "@Alice @Alice @admins #general @someone @a role #a channel <a:emoji:5> plain"
    )


@given(st.text(alphabet="<>@!&#0123456789 ab", max_size=60))
def test_no_raw_mention_is_left(text: str) -> None:
    resolved = resolve_mentions(text, lambda kind, id_: None)
    assert not re.search(r"<(@!?|@&|#)\d{1,20}>", resolved)
