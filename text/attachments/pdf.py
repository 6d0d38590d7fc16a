"""PDFs: their text layer, page by page, as a part under a token cap."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from text.attachments.parts import FilePart, check_cap, render, shortened_note
from text.attachments.skipped import SkipKind, Skipped
from text.tokens import TokenCounter

if TYPE_CHECKING:
    import pypdf


def read_pdf(
    filename: str, data: bytes, counter: TokenCounter, max_tokens: int
) -> FilePart | Skipped:
    """The text layer of a PDF as a turn part of at most `max_tokens` tokens.

    Pages are read in order until the cap is reached (later pages are not parsed at
    all), each after a "[page N]" line; `read`/`total` count pages. A PDF encrypted with
    a password (one that opens with the empty password is read), broken, or without
    any text (a scan) is Skipped (UNREADABLE). Never raises on any bytes; raises
    ValueError only if `max_tokens` < MIN_PART_TOKENS.
    """
    check_cap(max_tokens)
    import pypdf

    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            return Skipped(filename, SkipKind.UNREADABLE, "password-protected PDF")
        total = len(reader.pages)
    except Exception as error:  # pypdf on untrusted bytes raises many kinds of errors
        return Skipped(filename, SkipKind.UNREADABLE, _pdf_problem(error))
    if total == 0:
        return Skipped(filename, SkipKind.UNREADABLE, "PDF has no pages")

    note_room = shortened_note(total, total, "pages")
    budget = max_tokens - counter.count_text(render(filename, "", "", note_room))
    body, pages_read, cut = _pages(reader, total, counter, budget)
    if not body.strip() and not cut:
        return Skipped(filename, SkipKind.UNREADABLE, "PDF has no text layer (a scan?)")

    while True:
        shortened = cut or pages_read < total
        note = shortened_note(pages_read, total, "pages") if shortened else ""
        content = render(filename, "", body, note)
        tokens = counter.count_text(content)
        if tokens <= max_tokens or not body:
            break
        # Joining pieces can tokenise a little differently from counting them apart.
        body = counter.truncate(body, max(counter.count_text(body) - (tokens - max_tokens), 0))
        cut = True
    return FilePart(filename, content, tokens, shortened, pages_read, total, "pages", "pdf")


def _pages(
    reader: pypdf.PdfReader, total: int, counter: TokenCounter, budget: int
) -> tuple[str, int, bool]:
    """The pages' text, each after a "[page N]" line, while it fits `budget` tokens;
    returns (text, whole pages read, whether a page was cut part-way)."""
    pieces: list[str] = []
    used = pages_read = 0
    cut = False
    for number in range(total):
        try:
            page_text = reader.pages[number].extract_text() or ""
        except Exception:  # one broken page should not lose the others
            page_text = ""
        page_text = page_text.replace("\r\n", "\n").replace("\r", "\n").strip()
        piece = f"[page {number + 1}]\n{page_text}\n" if page_text else ""
        cost = counter.count_text(piece)
        if used + cost > budget:
            if used == 0:  # the first page with text is too long alone: keep its start
                pieces.append(counter.truncate(piece, max(budget, 0)))
                cut = True
            break
        pieces.append(piece)
        used += cost
        pages_read = number + 1
    return "".join(pieces), pages_read, cut


def _pdf_problem(error: Exception) -> str:
    import pypdf

    if isinstance(error, pypdf.errors.FileNotDecryptedError | pypdf.errors.DependencyError):
        return "encrypted PDF"
    return "not a valid PDF"
