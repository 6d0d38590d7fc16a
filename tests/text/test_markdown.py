import pytest

from text.markdown import BACKTICK_STAND_IN, inline_code, subtext


def test_subtext_is_discords_small_grey_line() -> None:
    assert subtext("⚠️ Cut off.") == "-# ⚠️ Cut off."


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("gpt-4o", "`gpt-4o`"),
        ("my`model", "`` my`model ``"),
        ("`edge", "`` `edge ``"),
        ("a``b", f"`a{BACKTICK_STAND_IN * 2}b`"),
    ],
)
def test_inline_code_holds_any_backticks(value: str, shown: str) -> None:
    assert inline_code(value) == shown
    # Nothing breaks out: the code span's delimiters are the only unescaped runs.
    inner = shown.strip("`").strip()
    assert "``" not in inner
