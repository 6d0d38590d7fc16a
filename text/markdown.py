"""Discord's markdown, as plain text (no discord.py here)."""

SUBTEXT = "-# "  # starts Discord's small grey "subtext" line


def subtext(text: str) -> str:
    """`text` as one subtext line: the small grey note under an answer."""
    return SUBTEXT + text
