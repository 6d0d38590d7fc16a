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

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from text.tokens import TokenCounter

QUOTE_SHARE = 0.25  # of the history budget, at most, for the messages one turn points at
UNREADABLE_REPLY = "[replying to a message I can't read]"
SHORTENED_MARK = "[… the rest of this message is left out]"
QUOTE_PREFIX = "> "
# What `fit_turn_text` had to shorten: nothing, only the quotes, or the person's own text.
WHOLE, QUOTES_CUT, OWN_CUT = "", "quotes", "own"
_HEADER = re.compile(
    r"\[(?:replying to |forwarded a message)[^\n]*:\]|" + re.escape(UNREADABLE_REPLY)
)


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


# Discord's mention markup (the message resource docs, "Message Formatting"): users
# <@id> or <@!id>, roles <@&id>, channels <#id>.
_MENTION = re.compile(r"<(@!?|@&|#)(\d{1,20})>")
UNKNOWN_MENTIONS = {"@": "@someone", "@&": "@a role", "#": "#a channel"}


def resolve_mentions(content: str, name_of: Callable[[str, int], str | None]) -> str:
    """`content` with Discord's mention markup replaced by names, as discord.py's
    `clean_content` does for a message: `name_of(kind, id)` gives the name for kind "@"
    (a user), "@&" (a role) or "#" (a channel), or None when it is not known; unknown
    ones become a neutral placeholder (UNKNOWN_MENTIONS), never the raw markup."""

    def named(match: re.Match[str]) -> str:
        kind = "@" if match[1] == "@!" else match[1]
        name = name_of(kind, int(match[2]))
        prefix = "#" if kind == "#" else "@"
        return f"{prefix}{name}" if name else UNKNOWN_MENTIONS[kind]

    return _MENTION.sub(named, content)


def with_quotes(quotes: Sequence[str], own_text: str) -> str:
    """The turn's text: the `quotes` first, then the person's `own_text`, blank lines
    between."""
    return "\n\n".join(part for part in (*quotes, own_text) if part)


def split_quotes(text: str) -> tuple[list[str], str]:
    """A turn's text (`with_quotes`) split into its quote blocks and the rest (the
    person's own text, then any files' text). A quote block is a header line
    (`reply_header`, `forward_header`, `UNREADABLE_REPLY`) whose other lines all start
    with ">" or are `SHORTENED_MARK`; quoted blank lines are ">" lines, so a block never
    holds a blank line."""
    blocks = text.split("\n\n")
    quotes: list[str] = []
    for block in blocks:
        header, *lines = block.split("\n")
        quoted = all(line.startswith(">") or line == SHORTENED_MARK for line in lines)
        if not (_HEADER.fullmatch(header) and quoted):
            break
        quotes.append(block)
    return quotes, "\n\n".join(blocks[len(quotes) :])


def fit_turn_text(text: str, max_tokens: int, counter: TokenCounter) -> tuple[str, str]:
    """`text` (a turn's text, `with_quotes`) in at most `max_tokens` tokens, and what was
    cut: WHOLE (nothing), QUOTES_CUT (only what the person pointed at) or OWN_CUT.

    The person's own words always go last to be cut: the quotes are shortened first (to
    their header and `SHORTENED_MARK` at least), then the rest is cut at its end (the
    files' text goes before the person's text)."""
    if counter.count_text(text) <= max_tokens:
        return text, WHOLE
    quotes, rest = split_quotes(text)
    bare = [_bare(block) for block in quotes]
    # The smallest the quotes can be: their headers and marks.
    least = [f"{header}\n{SHORTENED_MARK}" for header, _, _ in bare]
    room = max_tokens - counter.count_text(with_quotes(least, rest))
    if quotes and room >= 0:
        share = max_tokens - counter.count_text(with_quotes([], rest)) - 2 * len(quotes)
        while True:
            each = max(share // len(quotes), 0)
            fitted = [_requoted(block, each, counter) for block in bare]
            whole = with_quotes(fitted, rest)
            if counter.count_text(whole) <= max_tokens or share <= 0:
                break
            share -= max(1, share // 10)
        if counter.count_text(whole) <= max_tokens:
            return whole, QUOTES_CUT
    head = with_quotes(least, "")
    room = max_tokens - counter.count_text(head + "\n\n") if quotes else max_tokens
    own = counter.truncate(rest, max(room, 0))
    return with_quotes(least, own) if quotes else own, OWN_CUT


def _bare(block: str) -> tuple[str, str, bool]:
    """A quote block's header, its quoted text (prefixes and mark taken off), and
    whether it was shortened already (ends with `SHORTENED_MARK`)."""
    header, *lines = block.split("\n")
    marked = bool(lines) and lines[-1] == SHORTENED_MARK
    lines = lines[:-1] if marked else lines
    text = [line[len(QUOTE_PREFIX) :] if line.startswith(QUOTE_PREFIX) else "" for line in lines]
    return header, "\n".join(text), marked


def _requoted(block: tuple[str, str, bool], max_tokens: int, counter: TokenCounter) -> str:
    """A quote block again in `max_tokens`, keeping the mark of one already shortened."""
    header, text, marked = block
    fitted = quote(header, text, max_tokens=max_tokens, counter=counter)
    return (
        f"{fitted}\n{SHORTENED_MARK}"
        if marked and fitted != header and not fitted.endswith(SHORTENED_MARK)
        else fitted
    )
