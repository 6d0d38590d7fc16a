from text.markdown import subtext


def test_subtext_is_discords_small_grey_line() -> None:
    assert subtext("⚠️ Cut off.") == "-# ⚠️ Cut off."
