"""A file's text as a part of the turn (`FilePart`): its fenced layout, the note when it
was shortened, and the line that tells the user how much the model saw."""

from __future__ import annotations

import re
from dataclasses import dataclass

from text.attachments.skipped import display_name

MIN_PART_TOKENS = 512  # room for the header (a 100-character name) and the fences


@dataclass(frozen=True, slots=True)
class FilePart:
    """A file's text as it goes in the turn, and how much of the file that is.

    `content` is "File: `name`", then the text in a fenced block tagged with `language`,
    then (if shortened) a line telling the model the rest was left out; `tokens` is its
    count with the caller's counter and never exceeds the cap it was read with.
    `read`/`total` are in `unit`: "lines", or "characters" for a file of one line, or
    "pages" for a PDF (where `read` counts whole pages, so 0 means part of page 1).
    `encoding` is what the text was decoded with ("pdf" for PDFs).
    """

    filename: str
    content: str
    tokens: int
    shortened: bool
    read: int
    total: int
    unit: str
    encoding: str
    language: str = ""


def describe_shortened(part: FilePart) -> str:
    """One short line telling the user how much of a shortened file the model saw, e.g.
    "Read only the first 120 of 5,000 lines of `log.txt` (2%)." Empty if not shortened."""
    if not part.shortened:
        return ""
    name = f"`{display_name(part.filename)}`"
    if part.read == 0:
        return f"Read only part of the first of {part.total:,} {part.unit} of {name}."
    share = part.read / part.total if part.total else 0.0
    percent = "<1%" if share < 0.01 else f"{share:.0%}"
    return f"Read only the first {part.read:,} of {part.total:,} {part.unit} of {name} ({percent})."


def _fence(text: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _header(filename: str) -> str:
    return f"File: `{display_name(filename)}`\n"


def render(filename: str, language: str, body: str, note: str) -> str:
    """A part's text: a "File: `name`" line, `body` in a fence longer than any backtick
    run in it and tagged `language`, then `note` (if any) on its own line."""
    fence = _fence(body)
    tail = f"\n{note}" if note else ""
    if body and not body.endswith("\n"):
        body += "\n"
    return f"{_header(filename)}{fence}{language}\n{body}{fence}{tail}"


def check_cap(max_tokens: int) -> None:
    """Raises ValueError if `max_tokens` is below MIN_PART_TOKENS."""
    if max_tokens < MIN_PART_TOKENS:
        raise ValueError(f"max_tokens must be at least {MIN_PART_TOKENS}, not {max_tokens}")


def shortened_note(read: int, total: int, unit: str) -> str:
    """The line under a shortened part telling the model how much of the file it has."""
    if read == 0:
        return f"[Only part of the first of {total:,} {unit} of this file is shown.]"
    return f"[Only the first {read:,} of {total:,} {unit} of this file are shown.]"
