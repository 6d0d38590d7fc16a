"""Discord's markdown, as plain text (no discord.py here)."""

SUBTEXT = "-# "  # starts Discord's small grey "subtext" line
# What a backtick in shown text becomes: U+02CB MODIFIER LETTER GRAVE ACCENT reads the same
# and cannot close a code span or block.
BACKTICK_LOOKALIKE = "\u02cb"
MAX_LABEL = 100  # characters of a tool's label shown


def subtext(text: str) -> str:
    """`text` as one subtext line: the small grey note under an answer."""
    return SUBTEXT + text


def one_line(text: str, limit: int) -> str:
    """`text` on one line, without control or format characters (newlines, bidi
    overrides, zero-width ones), at most `limit` characters (an ellipsis marks a cut)."""
    flat = "".join(c if c.isprintable() else " " for c in " ".join(text.split()))
    flat = " ".join(flat.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def inline_code(text: str, limit: int = MAX_LABEL) -> str:
    """`text` (untrusted, e.g. a tool's label from its server) as an inline code span it
    cannot leave: one line (`one_line`), its backticks look-alikes. Nothing inside a code
    span renders: no links, headers, formatting or mentions."""
    return "`" + (one_line(text, limit).replace("`", BACKTICK_LOOKALIKE) or "?") + "`"
