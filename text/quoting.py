"""What a person points at, in their turn's text: the message they reply to, or the
message they forward, quoted so the model can tell it from what they wrote.

A quote is a header line in square brackets saying what it is (and whose it was),
then the quoted text with every line prefixed by "> " (as Discord renders a quote), so
nothing in it can pass for the person's own words; the person's text follows after a
blank line. A quote takes at most `QUOTE_SHARE` of the history budget: a longer one is
cut at its beginning and says so. Control markers in it are neutralised with the rest
of the user's turn (`PromptBuilder.turn`, text/control.py).

Pure functions: no Discord, no network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from text.tokens import TokenCounter

QUOTE_SHARE = 0.25  # of the history budget, at most, for the messages one turn points at
UNREADABLE_REPLY = "[replying to a message I can't read]"
SHORTENED_MARK = "[… the rest of this message is left out]"
QUOTE_PREFIX = "> "


def quote_budget(history_budget: int) -> int:
    """The most tokens the quotes of one turn may take with `history_budget`."""
    return max(int(history_budget * QUOTE_SHARE), 0)


def reply_header(author: str | None, *, bot: bool = False) -> str:
    """The line that opens the quote of a replied-to message by `author` (None: unknown)."""
    if author is None:
        return "[replying to this message:]"
    return f"[replying to this message from {author}{' (a bot)' if bot else ''}:]"


def forward_header(origin: str | None = None) -> str:
    """The line that opens a forwarded message's quote; `origin`: where it came from."""
    return f"[forwarded a message{f' from {origin}' if origin else ''}:]"


def embed_text(embeds: Sequence[Mapping[str, Any]]) -> str:
    """The readable text of Discord embeds (the dicts of Discord's embed object: title,
    description, fields' names and values, footer text), one block per embed.

    Monitoring and alert bots often post nothing but an embed."""
    blocks = []
    for embed in embeds:
        lines = [embed.get("title") or "", embed.get("description") or ""]
        for embed_field in embed.get("fields") or ():
            name, value = embed_field.get("name") or "", embed_field.get("value") or ""
            lines.append(f"{name}: {value}" if name and value else name or value)
        lines.append((embed.get("footer") or {}).get("text") or "")
        if block := "\n".join(line.strip() for line in lines if line and line.strip()):
            blocks.append(block)
    return "\n\n".join(blocks)


def quote(header: str, text: str, *, max_tokens: int, counter: TokenCounter) -> str:
    """`header`, then `text` with each line prefixed by "> ", at most `max_tokens`
    tokens in all (counted by `counter`): a longer text is cut at its beginning and
    ends with `SHORTENED_MARK`. A text that is empty (a message with only files) gives
    the header alone; so does a budget with no room for any of it."""
    text = text.strip()
    whole = _quoted(header, text)
    if not text or counter.count_text(whole) <= max_tokens:
        return whole
    # The prefixes and the mark cost tokens too: cut, then check, and cut further.
    room = max_tokens - counter.count_text(f"{header}\n{QUOTE_PREFIX}\n{SHORTENED_MARK}")
    while room > 0:
        start = counter.truncate(text, room).rstrip()
        shortened = _quoted(header, start) + "\n" + SHORTENED_MARK
        if start and counter.count_text(shortened) <= max_tokens:
            return shortened
        room -= max(1, room // 10)
    return f"{header}\n{SHORTENED_MARK}"


def _quoted(header: str, text: str) -> str:
    if not text:
        return header
    lines = "\n".join(
        QUOTE_PREFIX + line if line else QUOTE_PREFIX.rstrip() for line in text.splitlines()
    )
    return f"{header}\n{lines}"


def with_quotes(quotes: Sequence[str], own_text: str) -> str:
    """The turn's text: the `quotes` first, then the person's `own_text`, blank lines
    between."""
    return "\n\n".join(part for part in (*quotes, own_text) if part)
