"""The lines the channel sees about tools: labels come from MCP servers (untrusted), so
they are shown as inert one-line code spans."""

from conversation.tool_rounds import status_line, used_line

HOSTILE = "evil: [x](https://evil)\n# HEADER `tick` @everyone"
INERT = "`evil: [x](https://evil) # HEADER \u02cbtick\u02cb @everyone`"


def test_the_status_line_shows_labels_as_inert_code_on_one_line() -> None:
    line = status_line([HOSTILE, "time: now"])
    assert line == f"-# 🔧 Running {INERT}, `time: now` …"
    assert "\n" not in line


def test_the_used_line_names_each_tool_once_as_inert_code() -> None:
    line = used_line([HOSTILE, "time: now", HOSTILE])
    assert line == f"-# Used {INERT}, `time: now`"
    assert "\n" not in line


def test_a_very_long_label_is_cut() -> None:
    assert len(used_line(["x" * 5000])) < 120
