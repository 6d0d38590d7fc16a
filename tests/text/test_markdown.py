from hypothesis import given
from hypothesis import strategies as st

from text.markdown import MAX_LABEL, inline_code, subtext


def test_subtext_is_discords_small_grey_line() -> None:
    assert subtext("⚠️ Cut off.") == "-# ⚠️ Cut off."


def test_inline_code_keeps_untrusted_text_inert_on_one_line() -> None:
    hostile = "[x](https://evil)\n# HEADER `code` @everyone\u202e\u200b\r\nend"
    shown = inline_code(hostile)
    assert shown == "`[x](https://evil) # HEADER \u02cbcode\u02cb @everyone end`"
    assert shown.count("`") == 2 and "\n" not in shown and "\r" not in shown


def test_inline_code_caps_the_length() -> None:
    shown = inline_code("a" * 500, 20)
    assert shown == "`" + "a" * 19 + "…`"
    assert inline_code("\n\n") == "`?`"


@given(st.text())
def test_inline_code_is_always_one_closed_span(text: str) -> None:
    shown = inline_code(text)
    assert shown.startswith("`") and shown.endswith("`") and shown.count("`") == 2
    assert all(c.isprintable() for c in shown) and len(shown) <= MAX_LABEL + 2
