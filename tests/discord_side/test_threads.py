"""Thread names: Discord's 1-100 characters, cut after a word and between grapheme clusters,
never empty; end to end, a thread named after an emoji question."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from discord_side.threads import (
    ELLIPSIS,
    MAX_THREAD_NAME,
    UNNAMED_THREAD,
    thread_name,
)
from tests.helpers import cluster_edges, replies
from tests.standins.discord import DiscordStandIn
from tests.standins.openai_standin import OpenAIStandIn


def test_a_short_question_is_the_name_on_one_line() -> None:
    assert thread_name("  how do\nmagnets   work? ") == "how do magnets work?"


def test_a_question_without_words_gets_a_name() -> None:
    assert thread_name("") == UNNAMED_THREAD
    assert thread_name(" \n\t ") == UNNAMED_THREAD


def test_a_long_question_is_cut_after_a_word() -> None:
    question = "why " * 30  # 120 characters
    name = thread_name(question)
    assert name == ("why " * 25).rstrip() + ELLIPSIS  # 99 + 1 characters
    assert thread_name("a" * 30 + " " + "b" * 80) == "a" * 30 + ELLIPSIS


def test_a_cut_that_falls_on_a_space_keeps_the_whole_word() -> None:
    question = "x" * 99 + " tail"
    assert thread_name(question) == "x" * 99 + ELLIPSIS


def test_one_word_longer_than_the_limit_is_cut_inside() -> None:
    assert thread_name("y" * 150) == "y" * 99 + ELLIPSIS


def test_exactly_the_limit_is_kept_whole() -> None:
    assert thread_name("z" * MAX_THREAD_NAME) == "z" * MAX_THREAD_NAME


RAINBOW_FLAG = "\U0001f3f3\ufe0f\u200d\U0001f308"  # 4 code points, one character seen
FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"


def test_a_long_run_of_emoji_is_cut_between_them() -> None:
    # The tester's case: sixty rainbow flags ended in half a flag.
    assert thread_name(RAINBOW_FLAG * 60) == RAINBOW_FLAG * 24 + ELLIPSIS  # 96 + 1
    assert thread_name("x" + FAMILY * 30) == "x" + FAMILY * 19 + ELLIPSIS  # 96 + 1


def test_a_space_carrying_a_mark_is_no_word_break() -> None:
    # " \u0301" is one visible character: the cut is at the real space before it.
    question = "a" * 40 + " " + "b" * 40 + " \u0301" + "c" * 30
    assert thread_name(question) == "a" * 40 + ELLIPSIS


def test_a_first_character_longer_than_a_name_gives_the_default_name() -> None:
    assert thread_name("e" + "\u0301" * 150) == UNNAMED_THREAD


name_pieces = st.one_of(
    st.text(),
    st.sampled_from([RAINBOW_FLAG, FAMILY, "\U0001f1eb\U0001f1f7", "e\u0301", " \u0301", " "]),
)


@given(
    st.lists(name_pieces, max_size=60).map("".join),
    st.integers(min_value=len(UNNAMED_THREAD), max_value=120),
)
def test_names_fit_and_begin_the_question_at_a_word(question: str, limit: int) -> None:
    name = thread_name(question, limit)
    assert 1 <= len(name) <= limit
    assert name.strip() == name
    flat = " ".join(question.split())
    edges = cluster_edges(flat)
    room = limit - len(ELLIPSIS)
    # A space that is a cluster of its own, with text before it, where a name may end.
    breaks = [at for at in range(1, room + 1) if flat[at : at + 1] == " " and {at, at + 1} <= edges]
    if not flat:
        assert name == UNNAMED_THREAD
    elif len(flat) <= limit:
        assert name == flat
    elif name == UNNAMED_THREAD:  # a shortened name ends with the ellipsis; this does not
        assert min(edges - {0}) > room  # the first cluster alone does not fit
    else:
        kept = name.removesuffix(ELLIPSIS)
        assert name.endswith(ELLIPSIS) and flat.startswith(kept)
        assert len(kept) in edges  # never inside a grapheme cluster
        # Cut before the last word break that fits, else at the last cluster boundary.
        assert len(kept) == max(breaks or [at for at in edges if at <= room])


async def test_a_thread_named_after_an_emoji_question_keeps_its_emoji_whole(
    start_bot, discord_api: DiscordStandIn, openai_api: OpenAIStandIn
) -> None:
    await start_bot(REPLY_TO="thread")
    [asked] = await discord_api.crowd_says("general", [("alice", RAINBOW_FLAG * 60)])
    thread = await discord_api.wait_for(
        lambda: next(
            (t for t in discord_api.threads_in("general") if t.id == int(asked["id"])), None
        )
    )
    # The stand-in refuses a name over 100 code points, as Discord does.
    assert thread.name == RAINBOW_FLAG * 24 + ELLIPSIS
    [answer] = await replies(discord_api, thread.key)
    assert answer["content"] == "echo: " + RAINBOW_FLAG * 60
