"""Reasoning removal: whole texts, streams cut anywhere, both stream modes."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from model.reasoning import CLOSE_TAG, OPEN_TAG, ReasoningFilter, Release, strip_reasoning


@pytest.mark.parametrize(
    ("text", "visible"),
    [
        ("<think>hmm, let me see</think>The answer is 4.", "The answer is 4."),
        ("a<think>x</think>b<think>y</think>c", "abc"),
        ("<think>never closed", ""),
        ("x < y and <thin> is not a tag", "x < y and <thin> is not a tag"),
        # A lone closer: the chat template opened the block inside the prompt.
        ("Okay, the user asks for 2+2.\n</think>\n\nIt is 4.", "\n\nIt is 4."),
        ("</think>answer", "answer"),
        # Only the first tag can be a lone closer; later strays are text.
        ("reasoning</think>use </think> to close", "use </think> to close"),
        ("a<think>b</think>c</think>d", "ac</think>d"),
        ("reasoning</think>x<think>more</think>y", "xy"),
        ("no tags at all", "no tags at all"),
        ("", ""),
    ],
)
def test_strip_reasoning(text: str, visible: str) -> None:
    assert strip_reasoning(text) == visible


def shown(releases: list[Release]) -> str:
    """What a caller shows after applying `releases` in order."""
    text = ""
    for release in releases:
        text = ("" if release.retract else text) + release.visible
    return text


def stream(text: str, cuts: list[float], *, hold: bool) -> tuple[ReasoningFilter, list[Release]]:
    """Feed `text` cut at the given fractions of its length; return the filter and releases."""
    bounds = sorted({0, len(text), *(round(c * len(text)) for c in cuts)})
    reasoning = ReasoningFilter(hold=hold)
    releases = [reasoning.feed(text[a:b]) for a, b in pairwise(bounds)]
    return reasoning, [*releases, reasoning.finish()]


TEXTS = st.lists(
    st.sampled_from([OPEN_TAG, CLOSE_TAG, "<", "think", ">", "</", "/", "a", "b ", "<thi", "</th"])
).map("".join)
CUTS = st.lists(st.floats(min_value=0, max_value=1), max_size=8)


@given(text=TEXTS, cuts=CUTS, hold=st.booleans())
def test_what_is_shown_is_the_same_however_the_stream_is_cut(
    text: str, cuts: list[float], hold: bool
) -> None:
    _, releases = stream(text, cuts, hold=hold)
    assert shown(releases) == strip_reasoning(text)


@given(text=TEXTS, cuts=CUTS)
def test_only_normal_mode_retracts_and_only_text_before_a_lone_closer(
    text: str, cuts: list[float]
) -> None:
    _, held_releases = stream(text, cuts, hold=True)
    assert not any(release.retract for release in held_releases)

    _, releases = stream(text, cuts, hold=False)
    retractions = [i for i, release in enumerate(releases) if release.retract]
    opener, closer = text.find(OPEN_TAG), text.find(CLOSE_TAG)
    lone = closer != -1 and (opener == -1 or closer < opener)
    assert len(retractions) <= 1
    if retractions:
        assert lone
        withdrawn = "".join(release.visible for release in releases[: retractions[0]])
        assert withdrawn  # a retraction withdraws something
        assert text[:closer].startswith(withdrawn)  # ...and it was all reasoning


def test_normal_mode_shows_text_then_retracts_it_at_a_lone_closer() -> None:
    reasoning = ReasoningFilter()
    assert reasoning.feed("The user wants") == Release("The user wants")
    assert reasoning.feed(" a sum.</th") == Release(" a sum.")
    assert reasoning.feed("ink>\n\nIt is 4.") == Release("\n\nIt is 4.", retract=True)
    assert reasoning.feed(" </think> stays") == Release(" </think> stays")
    assert reasoning.finish() == Release()


def test_hold_mode_discards_what_came_before_the_closer() -> None:
    reasoning = ReasoningFilter(hold=True)
    assert reasoning.feed("Let me think about") == Release()
    assert reasoning.feed(" this.</think>It is") == Release("It is")
    assert reasoning.feed(" 4.") == Release(" 4.")
    assert reasoning.finish() == Release()


def test_hold_mode_releases_everything_when_no_closer_comes() -> None:
    reasoning = ReasoningFilter(hold=True)
    assert reasoning.feed("Just an answer, ") == Release()
    assert reasoning.feed("no reasoning <") == Release()
    assert reasoning.finish() == Release("Just an answer, no reasoning <")


def test_hold_mode_releases_text_before_an_opening_tag() -> None:
    reasoning = ReasoningFilter(hold=True)
    assert reasoning.feed("Sure. ") == Release()
    assert reasoning.feed("<think>hidden</think>Done.") == Release("Sure. Done.")
