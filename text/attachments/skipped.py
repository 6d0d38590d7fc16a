"""Attachments left out of a turn (`Skipped`) and the line that tells the user why."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from text.attachments.kinds import UNKNOWN_TYPE, Classification


class SkipKind(StrEnum):
    """Why an attachment is not part of the turn."""

    TOO_LARGE = "too large"  # bytes over the bot's download limit, or too many pixels
    NOT_READ = "type not read"  # `classify` said OTHER
    DOWNLOAD_FAILED = "download failed"
    UNREADABLE = "unreadable"  # broken, encrypted, not what its name says, no text layer
    NO_VISION = "no vision"  # an image, but the model does not take images


@dataclass(frozen=True, slots=True)
class Skipped:
    """An attachment left out of the turn.

    `detail` is a short lower-case phrase ("encrypted PDF", "archives are not opened");
    `size` and `limit` are in bytes and set for TOO_LARGE by download size.
    """

    filename: str
    kind: SkipKind
    detail: str = ""
    size: int | None = None
    limit: int | None = None


def too_large(filename: str, size: int, limit: int) -> Skipped:
    """A file of `size` bytes over the bot's `limit` bytes."""
    return Skipped(filename, SkipKind.TOO_LARGE, size=size, limit=limit)


def not_read(filename: str, classification: Classification) -> Skipped:
    """A file whose type the bot does not read (`classification.kind` is OTHER)."""
    return Skipped(filename, SkipKind.NOT_READ, classification.reason or UNKNOWN_TYPE)


def download_failed(filename: str, detail: str = "") -> Skipped:
    """A file Discord's CDN did not hand over (`detail`, e.g. "HTTP 404", optional)."""
    return Skipped(filename, SkipKind.DOWNLOAD_FAILED, detail)


def no_vision(filename: str) -> Skipped:
    """An image sent while the model takes no images."""
    return Skipped(filename, SkipKind.NO_VISION, "this model does not take images")


def display_name(filename: str) -> str:
    """`filename` safe to show inside backticks on one line: at most 100 characters, with
    no backticks, line breaks or other control characters."""
    cleaned = "".join(
        "'" if ch == "`" else (" " if ch.isspace() or not ch.isprintable() else ch)
        for ch in filename
    ).strip()
    if len(cleaned) > 100:
        cleaned = cleaned[:60] + "…" + cleaned[-39:]
    return cleaned or "unnamed file"


def format_size(size: int) -> str:
    """Bytes as Discord shows them: 1024-based, labelled B / KB / MB / GB."""
    value = float(size)
    for unit in ("B", "KB", "MB"):
        if value < 1024:
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


_SKIP_PHRASES = {
    SkipKind.TOO_LARGE: "too large",
    SkipKind.DOWNLOAD_FAILED: "the download failed",
    SkipKind.UNREADABLE: "could not be read",
}


def describe_skipped(skipped: Skipped) -> str:
    """One short line telling the user which file was left out and why.

    e.g. "Skipped `video.mp4`: too large (25.0 MB; the limit is 8.0 MB)."
    """
    name = f"`{display_name(skipped.filename)}`"
    kind, detail = skipped.kind, skipped.detail
    if kind is SkipKind.TOO_LARGE and skipped.size is not None and skipped.limit is not None:
        size, limit = format_size(skipped.size), format_size(skipped.limit)
        why = f"too large ({size}; the limit is {limit})"
    elif kind in _SKIP_PHRASES:
        phrase = _SKIP_PHRASES[kind]
        why = f"{phrase} ({detail})" if detail else phrase
    else:  # NOT_READ, NO_VISION: the detail is the whole reason
        why = detail or kind.value
    return f"Skipped {name}: {why}."
