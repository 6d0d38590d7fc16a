"""Text files: decoding their bytes (byte-order marks, UTF-16 without one, UTF-8, then
charset-normalizer's guess) and reading them into a part under a token cap."""

from __future__ import annotations

import codecs

from text.attachments.kinds import language_for
from text.attachments.parts import FilePart, check_cap, render, shortened_note
from text.attachments.skipped import SkipKind, Skipped
from text.tokens import TokenCounter

_BOMS = (  # longest first: the UTF-32-LE BOM starts with the UTF-16-LE one
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def decode_text(data: bytes) -> tuple[str, str] | None:
    """Decode a text file's bytes; returns (text, encoding name) or None for binary data.

    A byte-order mark decides (UTF-8, UTF-16, UTF-32); then UTF-16 without a mark is
    recognised by its zero bytes; then strict UTF-8; then charset-normalizer's best
    guess (cp1252, Shift-JIS, ...). Line ends become "\\n". Data with NUL bytes or
    mostly control characters after decoding is binary. Never raises.
    """
    text, encoding = _decode(data)
    if text is None:
        return None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if _looks_binary(text):
        return None
    return text, encoding


def _decode(data: bytes) -> tuple[str | None, str]:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding), encoding
            except UnicodeDecodeError:
                return data.decode(encoding, errors="replace"), encoding
    utf16 = _utf16_without_bom(data)
    if utf16 is not None:
        try:
            return data.decode(utf16), utf16
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    encoding = _detect_encoding(data)
    if encoding is None:
        return None, ""
    try:
        return data.decode(encoding, errors="replace"), encoding
    except LookupError:
        return data.decode("utf-8", errors="replace"), "utf-8"


def _detect_encoding(data: bytes) -> str | None:
    import charset_normalizer

    try:
        matches = list(charset_normalizer.from_bytes(data))
    except Exception:  # a third-party detector on arbitrary bytes: never let it raise
        return None
    if not matches:
        return None
    best = matches[0]
    # charset-normalizer ranks the single-byte Latin code pages by how messy a few
    # letters look, and often puts cp1250 or cp1257 first for French, Portuguese or
    # Italian ("à", "ç" and "œ" then come out as "ą", "č" and "ś"), its mess score no
    # more than ~0.06 apart and its language guess the same. cp1252 is Windows' default
    # for Western European text and the WHATWG Encoding Standard's fallback for most
    # locales: prefer it unless clearly messier. Polish, Czech or Hungarian cp1250 text
    # decoded as cp1252 scores far worse, so it keeps its code page.
    for match in matches:
        if (
            match.encoding == "cp1252"
            and match.chaos <= best.chaos + 0.1
            and match.coherence >= best.coherence - 0.005
        ):
            return "cp1252"
    return best.encoding


def _utf16_without_bom(data: bytes) -> str | None:
    # ASCII-heavy UTF-16 has a zero in every other byte; real UTF-8 text has none.
    sample = data[:4096]
    if len(sample) < 4 or len(sample) % 2:
        return None
    pairs = len(sample) // 2
    even_zeros = sample[0::2].count(0)
    odd_zeros = sample[1::2].count(0)
    if odd_zeros > 0.4 * pairs and even_zeros < 0.05 * pairs:
        return "utf-16-le"
    if even_zeros > 0.4 * pairs and odd_zeros < 0.05 * pairs:
        return "utf-16-be"
    return None


def _looks_binary(text: str) -> bool:
    sample = text[:8192]
    if not sample:
        return False
    if "\x00" in sample:
        return True
    control = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\n\t\f\v\x1b")
    return control > 0.1 * len(sample)


def _lines(text: str) -> int:
    if not text:
        return 0
    return text.count("\n") + (0 if text.endswith("\n") else 1)


def read_text_file(
    filename: str,
    data: bytes,
    counter: TokenCounter,
    max_tokens: int,
    language: str | None = None,
) -> FilePart | Skipped:
    """The turn part for a text file, at most `max_tokens` tokens by `counter`.

    `language` is the fence tag (default: what `classify` gives the name). Decoding is as
    `decode_text`; a file that turns out to be binary is Skipped (UNREADABLE). A file too
    long for the cap keeps its first lines (cut at a line end when the kept part has one)
    and says so in the part. Raises ValueError only if `max_tokens` < MIN_PART_TOKENS.
    """
    check_cap(max_tokens)
    decoded = decode_text(data)
    if decoded is None:
        return Skipped(filename, SkipKind.UNREADABLE, "not text")
    text, encoding = decoded
    if language is None:
        language = language_for(filename)
    lines_total = _lines(text)
    one_line = lines_total <= 1

    # Tokenising megabytes to keep a few thousand tokens is wasted work. A token is
    # hardly ever 64 characters (long runs of spaces at most), so no more can be kept.
    window = text[: max_tokens * 64]
    if len(window) == len(text):
        whole = render(filename, language, text, "")
        tokens = counter.count_text(whole)
        if tokens <= max_tokens:
            unit = "characters" if one_line else "lines"
            total = len(text) if one_line else lines_total
            return FilePart(filename, whole, tokens, False, total, total, unit, encoding, language)

    # Leave room for the note; its numbers are at most as long as the totals.
    unit = "characters" if one_line else "lines"
    total = len(text) if one_line else lines_total
    note_room = shortened_note(total, total, unit)
    budget = max_tokens - counter.count_text(render(filename, language, "", note_room))
    while True:
        kept = counter.truncate(window, max(budget, 0))
        line_end = kept.rfind("\n") + 1
        if not one_line and 2 * line_end >= len(kept):
            kept = kept[:line_end]  # end on a whole line, unless that loses most of it
        # Whole lines only: a partly kept last line is not counted as read.
        read = len(kept) if one_line else kept.count("\n")
        content = render(filename, language, kept, shortened_note(read, total, unit))
        tokens = counter.count_text(content)
        if tokens <= max_tokens or not kept:
            break
        budget -= max(tokens - max_tokens, 1)
    return FilePart(filename, content, tokens, True, read, total, unit, encoding, language)
