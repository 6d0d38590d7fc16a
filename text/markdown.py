"""Discord's markdown, as plain text (no discord.py here)."""

SUBTEXT = "-# "  # starts Discord's small grey "subtext" line


def subtext(text: str) -> str:
    """`text` as one subtext line: the small grey note under an answer."""
    return SUBTEXT + text


# What stands for a backtick in a value that holds a run of two or more: Discord's inline
# code cannot hold those (``...`` holds single ones only).
BACKTICK_STAND_IN = "\u02cb"  # MODIFIER LETTER GRAVE ACCENT


def inline_code(value: str) -> str:
    """`value` as Discord inline code, whatever backticks it holds: `value`; one with
    single backticks in ``double ones`` (spaced, so one at an edge stays in); one with
    runs of backticks has them shown as BACKTICK_STAND_IN."""
    if "`" not in value:
        return f"`{value}`"
    if "``" in value:
        return f"`{value.replace('`', BACKTICK_STAND_IN)}`"
    return f"`` {value} ``"
