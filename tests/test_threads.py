"""Thread names: Discord's 1-100 characters, cut after a word, never empty."""

from __future__ import annotations

from typing import get_args

import discord
from hypothesis import given
from hypothesis import strategies as st

from bot import PERMISSIONS
from config import ReplyTo
from threads import (
    ELLIPSIS,
    MAX_THREAD_NAME,
    THREAD_MODE_PERMISSIONS,
    UNNAMED_THREAD,
    missing_permissions,
    permission_label,
    starts_threads,
    thread_name,
)


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


@given(st.text(), st.integers(min_value=len(UNNAMED_THREAD), max_value=120))
def test_names_fit_and_begin_the_question_at_a_word(question: str, limit: int) -> None:
    name = thread_name(question, limit)
    assert 1 <= len(name) <= limit
    assert name.strip() == name
    flat = " ".join(question.split())
    if not flat:
        assert name == UNNAMED_THREAD
    elif len(flat) <= limit:
        assert name == flat
    else:
        kept = name.removesuffix(ELLIPSIS)
        assert name.endswith(ELLIPSIS) and flat.startswith(kept)
        # Cut after a whole word, unless the first word alone is too long.
        assert flat[len(kept)] == " " or " " not in flat[: len(kept)]


def test_missing_thread_permissions_are_named_as_discord_names_them() -> None:
    permissions = discord.Permissions(send_messages_in_threads=True)
    names = ("create_public_threads", "send_messages_in_threads")
    assert missing_permissions(permissions, names) == ["create_public_threads"]
    assert permission_label("create_public_threads") == "Create Public Threads"


def test_the_invite_link_asks_for_what_thread_mode_needs() -> None:
    assert missing_permissions(PERMISSIONS, THREAD_MODE_PERMISSIONS) == []


def test_only_the_thread_modes_start_threads() -> None:
    assert [m for m in get_args(ReplyTo) if starts_threads(m)] == ["thread", "mention-thread"]
