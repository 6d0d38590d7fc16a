"""The note under an answer by how it finished (conversation/answers.py `finish_note`)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conversation.notes import (
    CUT_BY_CAP_NOTE,
    ERROR_NOTE,
    FILTERED_NOTE,
    NO_FINISH_NOTE,
    NORMAL_FINISHES,
    STOPPED_EARLY_NOTE,
    UNUSUAL_NOTE,
    WINDOW_FULL_NOTE,
    finish_note,
)


@pytest.mark.parametrize(
    ("reason", "note"),
    [
        ("stop", None),
        ("tool_calls", None),
        ("end_turn", None),
        (None, NO_FINISH_NOTE),
        ("length", CUT_BY_CAP_NOTE),
        ("max_tokens", CUT_BY_CAP_NOTE),
        ("content_filter", FILTERED_NOTE),
        ("error", ERROR_NOTE),
        ("model_context_window_exceeded", WINDOW_FULL_NOTE),
        ("recitation", UNUSUAL_NOTE.format(" (recitation)")),
        ("<@&123> everyone", UNUSUAL_NOTE.format("")),  # the server's words, not shown
        # Servers that shout their reasons (Gemini-style "STOP", "MAX_TOKENS").
        ("STOP", None),
        ("Tool_Calls", None),
        ("MAX_TOKENS", CUT_BY_CAP_NOTE),
        ("Content_Filter", FILTERED_NOTE),
        ("ERROR", ERROR_NOTE),
    ],
)
def test_each_finish_reason_has_its_note(reason: str | None, note: str | None) -> None:
    assert finish_note(reason) == note


def test_length_well_under_the_cap_does_not_blame_max_reply_tokens() -> None:
    note = finish_note("length", stopped_early=True)
    assert note == STOPPED_EARLY_NOTE and "MAX_REPLY_TOKENS" not in note


@given(st.text(max_size=50))
def test_anything_but_a_normal_stop_gets_a_note(reason: str) -> None:
    note = finish_note(reason)
    assert (note is None) == (reason in NORMAL_FINISHES)
