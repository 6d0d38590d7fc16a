"""What an approval request shows (pure text) and who may decide it."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from discord_side.approvals import (
    MAX_ARGUMENTS,
    Decision,
    decided_text,
    request_text,
    shown_arguments,
)
from discord_side.permissions import may_decide_approval
from tools.base import Tool, ToolCall

TOOL = Tool("fs__write", "fs: write_file", "Write a file", {"type": "object"}, True)


def test_only_the_asker_or_an_admin_may_decide() -> None:
    assert may_decide_approval(1, asker_id=1, admins=frozenset())
    assert may_decide_approval(9, asker_id=1, admins=frozenset({9}))
    assert not may_decide_approval(2, asker_id=1, admins=frozenset({9}))


def test_arguments_are_compact_json_on_one_line_or_the_text_as_written() -> None:
    assert shown_arguments('{\n  "path": "a.txt",\n  "n": 1\n}') == '{"path": "a.txt", "n": 1}'
    assert shown_arguments("{not json") == "{not json"
    assert shown_arguments("") == "{}"
    assert shown_arguments(json.dumps({"t": "é ü"})) == '{"t": "é ü"}'  # not \\u escapes
    long = shown_arguments(json.dumps({"text": "x" * 5000}))
    assert len(long) == MAX_ARGUMENTS and long.endswith("…")


@given(st.text())
def test_arguments_never_close_their_code_block_nor_span_lines(text: str) -> None:
    shown = shown_arguments(json.dumps({"text": text}))
    assert "`" not in shown and "\n" not in shown and len(shown) <= MAX_ARGUMENTS
    request = request_text("Alice", ToolCall("c", TOOL.name, text), TOOL)
    assert request.count("```") == 2


def test_the_request_and_each_outcome_name_the_tool_and_who_decided() -> None:
    call = ToolCall("c", TOOL.name, '{"path": "notes.txt"}')
    asked = request_text("@everyone `x`", call, TOOL)
    assert "`fs: write_file`" in asked and '```json\n{"path": "notes.txt"}\n```' in asked
    assert "@everyone" not in asked and "@\u200beveryone" in asked  # no ping, even unsent
    assert decided_text("A", call, TOOL, Decision(True, "Bob")).endswith("✅ Allowed by Bob.")
    assert decided_text("A", call, TOOL, Decision(False, "Bob")).endswith("🚫 Denied by Bob.")
    timed_out = decided_text("A", call, TOOL, Decision(False))
    assert timed_out.endswith("Not run: nobody decided in time, so it counts as denied.")
    ended = decided_text("A", call, TOOL, None)
    assert ended.endswith("Not run: the answer ended before anyone decided.")
    tricky = Tool("t", "a`b", "", {}, True)
    assert "`a\u02cbb`" in request_text("A", call, tricky)
