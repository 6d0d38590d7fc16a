"""Turn a Discord message's attachments into parts of a conversation turn.

Pure logic: nothing here touches Discord or the network. The bot's adapter downloads an
attachment and hands in its name, content type and bytes; this module decides what the
file is (`classify`), reads it (`read_text_file`, `read_pdf`, `prepare_image`) and says
what a request will cost (`image_tokens`) and what to tell the user (`describe_skipped`,
`describe_shortened`). Readers never raise on the bytes they are given: a file that
cannot be read comes back as a `Skipped` value.

`prepare_image` and `read_pdf` are CPU-bound (tens of milliseconds for a phone photo,
more for a long PDF); call them in a worker thread, not on the event loop.
"""

from __future__ import annotations

import base64
import codecs
import io
import math
import posixpath
import re
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from typing import TYPE_CHECKING, Literal

from text.tokens import TokenCounter

if TYPE_CHECKING:
    from PIL import Image

# Pillow, pypdf and charset-normalizer are imported where a file first needs them: together
# they are ~12 MB of a process that may never see an attachment.

Detail = Literal["low", "high", "auto"]


# --- Classification ------------------------------------------------------------------


class Kind(StrEnum):
    """What the bot does with an attachment."""

    TEXT = "text"  # decoded and put in the turn as a fenced block
    IMAGE = "image"  # downscaled and sent as an image part (vision models only)
    PDF = "pdf"  # its text layer is extracted
    OTHER = "other"  # not read; `Classification.reason` says why


@dataclass(frozen=True, slots=True)
class Classification:
    """How to read one attachment.

    `language` is the fence tag for TEXT ("" when the type implies none); `reason` is a
    short phrase for the user when `kind` is OTHER ("archives are not opened"), else None.
    """

    kind: Kind
    language: str = ""
    reason: str | None = None


# fmt: off
# Extension -> fence tag. "" means plain text (no tag).
_TEXT_EXTENSIONS: dict[str, str] = {
    "txt": "", "text": "", "log": "", "md": "markdown", "markdown": "markdown",
    "rst": "rst", "csv": "csv", "tsv": "tsv", "json": "json", "jsonl": "json",
    "ndjson": "json", "yaml": "yaml", "yml": "yaml", "toml": "toml", "ini": "ini",
    "cfg": "ini", "conf": "ini", "env": "bash", "properties": "properties", "xml": "xml",
    "svg": "xml", "html": "html", "htm": "html", "css": "css", "scss": "scss",
    "sass": "sass", "less": "less", "py": "python", "pyi": "python", "ipynb": "json",
    "js": "javascript", "mjs": "javascript", "cjs": "javascript", "ts": "typescript",
    "mts": "typescript", "tsx": "tsx", "jsx": "jsx", "vue": "vue", "svelte": "svelte",
    "java": "java", "kt": "kotlin", "kts": "kotlin", "groovy": "groovy", "gradle": "groovy",
    "c": "c", "h": "c", "cpp": "cpp", "cc": "cpp", "cxx": "cpp", "hpp": "cpp", "hh": "cpp",
    "hxx": "cpp", "cs": "csharp", "fs": "fsharp", "vb": "vbnet", "go": "go", "rs": "rust",
    "rb": "ruby", "php": "php", "pl": "perl", "pm": "perl", "swift": "swift", "m": "objectivec",
    "mm": "objectivec", "sql": "sql", "sh": "bash", "bash": "bash", "zsh": "bash",
    "fish": "fish", "ps1": "powershell", "psm1": "powershell", "bat": "batch", "cmd": "batch",
    "lua": "lua", "r": "r", "dart": "dart", "scala": "scala", "sc": "scala", "clj": "clojure",
    "ex": "elixir", "exs": "elixir", "erl": "erlang", "hs": "haskell", "ml": "ocaml",
    "jl": "julia", "zig": "zig", "nim": "nim", "v": "v", "asm": "asm", "s": "asm",
    "tex": "latex", "bib": "bibtex", "diff": "diff", "patch": "diff", "graphql": "graphql",
    "gql": "graphql", "proto": "protobuf", "tf": "hcl", "hcl": "hcl", "nix": "nix",
    "cmake": "cmake", "mk": "makefile", "dockerfile": "dockerfile", "srt": "", "vtt": "",
    "gitignore": "", "editorconfig": "ini", "lock": "", "gd": "gdscript", "sol": "solidity",
}

# Whole file names (lower case) that are text without an extension.
_TEXT_NAMES: dict[str, str] = {
    "dockerfile": "dockerfile", "containerfile": "dockerfile", "makefile": "makefile",
    "gnumakefile": "makefile", "cmakelists.txt": "cmake", "justfile": "makefile",
    "procfile": "", "gemfile": "ruby", "rakefile": "ruby", "vagrantfile": "ruby",
    "jenkinsfile": "groovy", "license": "", "readme": "", "changelog": "",
    ".gitignore": "", ".dockerignore": "", ".env": "bash", ".bashrc": "bash",
    ".zshrc": "bash", ".profile": "bash", ".editorconfig": "ini",
}

# Content types (beyond text/*) that carry text, with their fence tag.
_TEXT_TYPES: dict[str, str] = {
    "application/json": "json", "application/ld+json": "json", "application/x-ndjson": "json",
    "application/xml": "xml", "application/xhtml+xml": "html", "image/svg+xml": "xml",
    "application/yaml": "yaml", "application/x-yaml": "yaml", "application/toml": "toml",
    "application/javascript": "javascript", "application/x-javascript": "javascript",
    "application/ecmascript": "javascript", "application/typescript": "typescript",
    "application/x-sh": "bash", "application/x-shellscript": "bash",
    "application/x-python": "python", "application/x-python-code": "python",
    "application/sql": "sql", "application/x-httpd-php": "php", "application/x-perl": "perl",
    "application/x-ruby": "ruby", "application/x-tex": "latex", "application/x-latex": "latex",
    "application/csv": "csv", "application/x-subrip": "", "application/graphql": "graphql",
}

# OpenAI accepts PNG, JPEG, WEBP and non-animated GIF (vision guide, "Image input
# requirements"); we re-encode anyway, but only let these decoders see user bytes.
_IMAGE_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/jpg": "JPEG",
                "image/pjpeg": "JPEG", "image/webp": "WEBP", "image/gif": "GIF"}
_IMAGE_EXTENSIONS = {"png", "jpg", "jpeg", "jpe", "jfif", "webp", "gif"}
_IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF")

# Content types that say nothing about the bytes: decide by the file name instead.
_GENERIC_TYPES = {"application/octet-stream", "binary/octet-stream", "application/unknown",
                  "application/x-unknown", "application/download", "application/binary"}

_ARCHIVE_EXTENSIONS = {"zip", "rar", "7z", "tar", "gz", "tgz", "bz2", "xz", "zst", "jar",
                       "war", "apk", "iso", "dmg", "cab", "lz", "lzma"}
_EXECUTABLE_EXTENSIONS = {"exe", "dll", "so", "dylib", "msi", "bin", "elf", "com", "app",
                          "deb", "rpm", "appimage", "class", "pyc", "o", "a", "wasm"}
_OFFICE_EXTENSIONS = {"doc", "docx", "xls", "xlsx", "ppt", "pptx", "odt", "ods", "odp",
                      "rtf", "pages", "numbers", "key", "epub"}
_AUDIO_VIDEO_EXTENSIONS = {"mp3", "wav", "ogg", "oga", "flac", "m4a", "aac", "opus", "wma",
                           "mp4", "m4v", "mov", "webm", "mkv", "avi", "wmv", "flv", "3gp"}
_OTHER_IMAGE_EXTENSIONS = {"heic", "heif", "avif", "bmp", "tif", "tiff", "ico", "psd",
                           "raw", "cr2", "nef", "dng", "jxl"}

_ARCHIVE_TYPES = ("zip", "x-rar", "x-7z", "x-tar", "gzip", "x-gzip", "x-bzip", "x-xz",
                  "zstd", "java-archive", "vnd.rar", "x-iso9660", "x-apple-diskimage")
_EXECUTABLE_TYPES = ("x-msdownload", "x-executable", "x-elf", "x-mach-binary",
                     "vnd.microsoft.portable-executable", "x-msi", "x-sharedlib",
                     "vnd.android.package-archive", "x-debian-package", "x-rpm",
                     "wasm")
# fmt: on


def _extension(filename: str) -> str:
    base = posixpath.basename(filename.replace("\\", "/")).lower()
    _, dot, ext = base.rpartition(".")
    return ext if dot and _ else (base[1:] if base.startswith(".") else "")


def _not_read(reason: str) -> Classification:
    return Classification(Kind.OTHER, reason=reason)


def classify(filename: str, content_type: str | None) -> Classification:
    """Decide how to read an attachment from its name and Discord's `content_type`.

    A specific content type wins; a missing or generic one (application/octet-stream and
    the like) falls back to the extension, or to well-known names such as `Dockerfile`.
    Parameters such as "; charset=utf-8" are ignored. Discord sends pastes over the
    message length limit as `message.txt` (text/plain), which classifies as TEXT.
    Never raises.
    """
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    ext = _extension(filename)
    base = posixpath.basename(filename.replace("\\", "/")).lower()
    by_name = _classify_by_name(base, ext)

    if not mime or mime in _GENERIC_TYPES:
        return by_name
    if mime in _IMAGE_TYPES:
        return Classification(Kind.IMAGE)
    if mime == "application/pdf" or mime == "application/x-pdf":
        return Classification(Kind.PDF)
    if mime in _TEXT_TYPES:
        # The extension's tag is usually more precise (text/x-python vs .pyi, etc.).
        return Classification(Kind.TEXT, _TEXT_EXTENSIONS.get(ext, _TEXT_TYPES[mime]))
    major, _, minor = mime.partition("/")
    if major == "text" or minor.endswith(("+json", "+xml", "+yaml")):
        # text/plain for a .py file: keep the language the name implies.
        if by_name.kind is Kind.TEXT:
            return by_name
        return Classification(Kind.TEXT, _TEXT_TYPES.get(mime, _subtype_language(minor)))
    if major == "image":
        return _not_read(
            f"{minor.upper() or 'this'} images are not read; send PNG, JPEG, WebP or GIF"
        )
    if major in ("audio", "video"):
        return _not_read(f"{major} is not read")
    if minor.startswith(_ARCHIVE_TYPES):
        return _not_read("archives are not opened")
    if minor.startswith(_EXECUTABLE_TYPES):
        return _not_read("programs are not read")
    # An unhelpful but specific type (application/x-whatever): trust a text extension.
    if by_name.kind is Kind.TEXT:
        return by_name
    if by_name.kind is Kind.OTHER and by_name.reason != _UNKNOWN_TYPE:
        return by_name
    return _not_read(f"files of type {mime} are not read")


_UNKNOWN_TYPE = "this file type is not read"


def _subtype_language(minor: str) -> str:
    minor = minor.removeprefix("x-")
    if minor in ("plain", "") or "+" in minor:
        return minor.rpartition("+")[2] if "+" in minor else ""
    return minor if minor.isalnum() else ""


def _classify_by_name(base: str, ext: str) -> Classification:
    if base in _TEXT_NAMES:
        return Classification(Kind.TEXT, _TEXT_NAMES[base])
    if ext in _TEXT_EXTENSIONS:
        return Classification(Kind.TEXT, _TEXT_EXTENSIONS[ext])
    if ext in _IMAGE_EXTENSIONS:
        return Classification(Kind.IMAGE)
    if ext == "pdf":
        return Classification(Kind.PDF)
    if ext in _ARCHIVE_EXTENSIONS:
        return _not_read("archives are not opened")
    if ext in _EXECUTABLE_EXTENSIONS:
        return _not_read("programs are not read")
    if ext in _OFFICE_EXTENSIONS:
        return _not_read("office documents are not read; send a PDF or plain text")
    if ext in _AUDIO_VIDEO_EXTENSIONS:
        return _not_read("audio and video are not read")
    if ext in _OTHER_IMAGE_EXTENSIONS:
        return _not_read(f"{ext.upper()} images are not read; send PNG, JPEG, WebP or GIF")
    return _not_read(_UNKNOWN_TYPE)


# --- What the user is told -----------------------------------------------------------


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
    return Skipped(filename, SkipKind.NOT_READ, classification.reason or _UNKNOWN_TYPE)


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


# --- Text files ----------------------------------------------------------------------

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


def _fence(text: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _lines(text: str) -> int:
    if not text:
        return 0
    return text.count("\n") + (0 if text.endswith("\n") else 1)


def _header(filename: str) -> str:
    return f"File: `{display_name(filename)}`\n"


def _render(filename: str, language: str, body: str, note: str) -> str:
    fence = _fence(body)
    tail = f"\n{note}" if note else ""
    if body and not body.endswith("\n"):
        body += "\n"
    return f"{_header(filename)}{fence}{language}\n{body}{fence}{tail}"


def _check_cap(max_tokens: int) -> None:
    if max_tokens < MIN_PART_TOKENS:
        raise ValueError(f"max_tokens must be at least {MIN_PART_TOKENS}, not {max_tokens}")


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
    _check_cap(max_tokens)
    decoded = decode_text(data)
    if decoded is None:
        return Skipped(filename, SkipKind.UNREADABLE, "not text")
    text, encoding = decoded
    if language is None:
        language = _language_for(filename)
    lines_total = _lines(text)
    one_line = lines_total <= 1

    # Tokenising megabytes to keep a few thousand tokens is wasted work. A token is
    # hardly ever 64 characters (long runs of spaces at most), so no more can be kept.
    window = text[: max_tokens * 64]
    if len(window) == len(text):
        whole = _render(filename, language, text, "")
        tokens = counter.count_text(whole)
        if tokens <= max_tokens:
            unit = "characters" if one_line else "lines"
            total = len(text) if one_line else lines_total
            return FilePart(filename, whole, tokens, False, total, total, unit, encoding, language)

    # Leave room for the note; its numbers are at most as long as the totals.
    unit = "characters" if one_line else "lines"
    total = len(text) if one_line else lines_total
    note_room = _shortened_note(total, total, unit)
    budget = max_tokens - counter.count_text(_render(filename, language, "", note_room))
    while True:
        kept = counter.truncate(window, max(budget, 0))
        line_end = kept.rfind("\n") + 1
        if not one_line and 2 * line_end >= len(kept):
            kept = kept[:line_end]  # end on a whole line, unless that loses most of it
        # Whole lines only: a partly kept last line is not counted as read.
        read = len(kept) if one_line else kept.count("\n")
        content = _render(filename, language, kept, _shortened_note(read, total, unit))
        tokens = counter.count_text(content)
        if tokens <= max_tokens or not kept:
            break
        budget -= max(tokens - max_tokens, 1)
    return FilePart(filename, content, tokens, True, read, total, unit, encoding, language)


def _shortened_note(read: int, total: int, unit: str) -> str:
    if read == 0:
        return f"[Only part of the first of {total:,} {unit} of this file is shown.]"
    return f"[Only the first {read:,} of {total:,} {unit} of this file are shown.]"


def _language_for(filename: str) -> str:
    found = _classify_by_name(
        posixpath.basename(filename.replace("\\", "/")).lower(), _extension(filename)
    )
    return found.language if found.kind is Kind.TEXT else ""


# --- PDFs ----------------------------------------------------------------------------


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
    _check_cap(max_tokens)
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

    note_room = _shortened_note(total, total, "pages")
    budget = max_tokens - counter.count_text(_render(filename, "", "", note_room))
    pieces: list[str] = []
    used = pages_read = 0
    cut = False  # a page was cut part-way
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
    body = "".join(pieces)
    if not body.strip() and not cut:
        return Skipped(filename, SkipKind.UNREADABLE, "PDF has no text layer (a scan?)")

    while True:
        shortened = cut or pages_read < total
        note = _shortened_note(pages_read, total, "pages") if shortened else ""
        content = _render(filename, "", body, note)
        tokens = counter.count_text(content)
        if tokens <= max_tokens or not body:
            break
        # Joining pieces can tokenise a little differently from counting them apart.
        body = counter.truncate(body, max(counter.count_text(body) - (tokens - max_tokens), 0))
        cut = True
    return FilePart(filename, content, tokens, shortened, pages_read, total, "pages", "pdf")


def _pdf_problem(error: Exception) -> str:
    import pypdf

    if isinstance(error, pypdf.errors.FileNotDecryptedError | pypdf.errors.DependencyError):
        return "encrypted PDF"
    return "not a valid PDF"


# --- Images --------------------------------------------------------------------------

# Our own pixel cap, checked on the header before anything is decoded. A 50 MP phone
# photo (8160 x 6120) still passes; decoding it is ~150 MB of RGB for a moment (JPEGs
# are decoded at a reduced scale, so far less). Pillow's own bomb check is the backstop.
MAX_IMAGE_PIXELS = 50_000_000

LOW_DETAIL_BOX = 512  # "low": the model gets a 512 x 512 version (OpenAI vision guide)
HIGH_DETAIL_BOX = 2048  # "high": fit in 2048 x 2048 ...
HIGH_DETAIL_SHORT_SIDE = 768  # ... then the short side is at most 768 (tile models)

JPEG_QUALITY = 85
# At most this many colours (screenshots, diagrams, line art) -> lossless PNG. Greyscale
# always has at most 256 levels, so it needs a lower bar to tell drawings from photos.
PNG_MAX_COLOURS = 256
PNG_MAX_GREYS = 32


@dataclass(frozen=True, slots=True)
class PreparedImage:
    """An image ready for a chat-completions `image_url` part.

    `data_url` is "data:image/png;base64,..." or "data:image/jpeg;base64,...";
    `width`/`height` are the pixels sent (what `image_tokens` needs); `original_width`
    and `original_height` are the upload's.
    """

    filename: str
    data_url: str
    width: int
    height: int
    original_width: int
    original_height: int
    mime: str

    def as_part(self, detail: Detail = "auto") -> dict:
        """The chat-completions content part for this image."""
        return {"type": "image_url", "image_url": {"url": self.data_url, "detail": detail}}


def fitted_size(width: int, height: int, detail: Detail) -> tuple[int, int]:
    """The size the model works from at `detail`; never larger than the original.

    "low": fit within 512 x 512. "high"/"auto": fit within 2048 x 2048, then scale so
    the short side is at most 768 (OpenAI vision guide, tile-based sizing; a 768 x 2048
    result is also exactly 1,536 32-px patches, the patch-based models' budget).
    Dimensions are rounded down, but never below 1. Raises ValueError for a bad detail.
    """
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, not {width}x{height}")
    if detail == "low":
        scale = min(1.0, LOW_DETAIL_BOX / max(width, height))
    elif detail in ("high", "auto"):
        long_side, short_side = max(width, height), min(width, height)
        scale = min(1.0, HIGH_DETAIL_BOX / long_side, HIGH_DETAIL_SHORT_SIDE / short_side)
    else:
        raise ValueError(f"detail must be 'low', 'high' or 'auto', not {detail!r}")
    return max(1, math.floor(width * scale + 1e-9)), max(1, math.floor(height * scale + 1e-9))


def prepare_image(
    filename: str, data: bytes, detail: Detail = "auto", max_pixels: int = MAX_IMAGE_PIXELS
) -> PreparedImage | Skipped:
    """Downscale an uploaded image to what the model uses at `detail` and re-encode it.

    Only PNG, JPEG, WebP and GIF are decoded; an animated GIF/WebP/PNG gives its first
    frame; EXIF rotation is applied. Output is PNG when the image has transparency or
    few colours (256; 32 greys), else JPEG (quality 85). An image whose header claims more than
    `max_pixels` pixels is Skipped (TOO_LARGE) before any decoding; junk, truncated or
    mislabelled bytes are Skipped (UNREADABLE). Never raises on any bytes (ValueError
    only for a bad `detail`). CPU-bound: run it in a thread.
    """
    if detail not in ("low", "high", "auto"):
        raise ValueError(f"detail must be 'low', 'high' or 'auto', not {detail!r}")
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data), formats=_IMAGE_FORMATS) as image:
            width, height = image.size
            if width < 1 or height < 1:
                return Skipped(filename, SkipKind.UNREADABLE, "empty image")
            if width * height > max_pixels:
                return _too_many_pixels(filename, width, height, max_pixels)
            image.seek(0)  # the first frame of an animation
            target = fitted_size(width, height, detail)
            # JPEG can decode at 1/2, 1/4 or 1/8 scale: far faster and smaller in memory.
            image.draft(None, target)
            image.load()
            frame = _normalise_mode(image)
            if frame.size != target:
                # A gap of 2 first shrinks by a whole factor where it can: half the time
                # of a plain Lanczos pass, with a result a model cannot tell apart.
                frame = frame.resize(target, Image.Resampling.LANCZOS, reducing_gap=2.0)
            orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
            if orientation in _ORIENTATION_FIX:  # resizing dropped the EXIF: turn it now
                frame = frame.transpose(Image.Transpose[_ORIENTATION_FIX[orientation]])
            return _encode(filename, frame, width, height)
    except Image.DecompressionBombError:
        return Skipped(filename, SkipKind.TOO_LARGE, f"more than {max_pixels / 1e6:g} megapixels")
    except Exception:  # Pillow on untrusted bytes: OSError, SyntaxError, ValueError, ...
        return Skipped(filename, SkipKind.UNREADABLE, "not a readable PNG, JPEG, WebP or GIF")


_EXIF_ORIENTATION = 0x0112
# EXIF orientation value -> the transpose that shows the picture upright (EXIF 2.3, 4.6.4).
# Names of Pillow's Image.Transpose members (Pillow is imported lazily).
_ORIENTATION_FIX = {
    2: "FLIP_LEFT_RIGHT",
    3: "ROTATE_180",
    4: "FLIP_TOP_BOTTOM",
    5: "TRANSPOSE",
    6: "ROTATE_270",
    7: "TRANSVERSE",
    8: "ROTATE_90",
}


def _too_many_pixels(filename: str, width: int, height: int, max_pixels: int) -> Skipped:
    return Skipped(
        filename,
        SkipKind.TOO_LARGE,
        f"{width}x{height} pixels; the limit is {max_pixels / 1e6:g} megapixels",
    )


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    )


def _normalise_mode(image: Image.Image) -> Image.Image:
    if _has_alpha(image):
        rgba = image.convert("RGBA")
        # Fully opaque alpha is just noise: drop it so photos can go out as JPEG.
        if rgba.getchannel("A").getextrema()[0] == 255:
            return rgba.convert("RGB")
        return rgba
    if image.mode in ("RGB", "L"):
        return image
    if image.mode.startswith(("I;16", "I")):
        # 16-bit greys: a plain convert clips everything above 255 to white.
        return image.convert("I").point(lambda value: value / 256).convert("L")
    return image.convert("RGB")  # P, CMYK, 1, YCbCr, F ...


def _encode(filename: str, image: Image.Image, width: int, height: int) -> PreparedImage:
    out = io.BytesIO()
    few = PNG_MAX_GREYS if image.mode == "L" else PNG_MAX_COLOURS
    if image.mode == "RGBA" or image.getcolors(few) is not None:
        image.save(out, format="PNG", compress_level=6)
        mime = "image/png"
    else:
        image.save(out, format="JPEG", quality=JPEG_QUALITY, optimize=False)
        mime = "image/jpeg"
    encoded = base64.b64encode(out.getvalue()).decode("ascii")
    return PreparedImage(
        filename, f"data:{mime};base64,{encoded}", image.width, image.height, width, height, mime
    )


# --- Image prompt tokens -------------------------------------------------------------
#
# OpenAI, "Images and vision" guide, section "Calculating costs" (read 2026-11-30):
# - Tile-based models (GPT-4o, GPT-4.1, GPT-4o-mini, computer-use-preview, o-series except
#   o4-mini; and gpt-5 / gpt-5-chat-latest): detail "low" costs the base tokens; "high"
#   fits the image in 2048 x 2048, scales its short side to 768, and adds a tile cost per
#   512-px square. Base/tile: gpt-5 70/140; 4o, 4.1, 4.5 85/170; 4o-mini 2833/5667;
#   o1, o1-pro, o3 75/150; computer-use-preview 65/129.
# - Patch-based models: 32-px patches up to a patch budget (shrinking the image to fit),
#   times a per-model multiplier: gpt-5-mini 1.62, gpt-5-nano 2.46, gpt-4.1-mini 1.62,
#   gpt-4.1-nano 2.46, o4-mini 1.72. Budget 1,536 patches / 2048 px for those and for
#   gpt-5.2, gpt-5.3-codex and the codex-mini models; gpt-5.4 and later allow 2,500
#   patches at "high". The guide gives no multiplier for gpt-5.1+ models; developers on
#   OpenAI's forum measured 1.2 (March 2026), which we use.
# The guide does not say how "low" changes a patch-based count; we count the size given
# (`prepare_image` sends at most 512 x 512 at "low"), which cannot undercount.


@dataclass(frozen=True, slots=True)
class TileRule:
    base: int
    tile: int


@dataclass(frozen=True, slots=True)
class PatchRule:
    multiplier: Fraction
    budget: int = 1536
    max_side: int = 2048


_GPT_5_PLUS = re.compile(r"gpt-5\.(\d+)")

# Longest prefix first; names are matched lower-case with any "provider/" removed.
_RULES: tuple[tuple[str, TileRule | PatchRule], ...] = (
    ("gpt-4o-mini", TileRule(2833, 5667)),
    ("gpt-4.1-mini", PatchRule(Fraction("1.62"))),
    ("gpt-4.1-nano", PatchRule(Fraction("2.46"))),
    ("gpt-5-mini", PatchRule(Fraction("1.62"))),
    ("gpt-5-nano", PatchRule(Fraction("2.46"))),
    ("codex-mini", PatchRule(Fraction("1.72"))),
    ("o4-mini", PatchRule(Fraction("1.72"))),
    ("computer-use-preview", TileRule(65, 129)),
    ("chatgpt-4o", TileRule(85, 170)),
    ("gpt-4o", TileRule(85, 170)),
    ("gpt-4.1", TileRule(85, 170)),
    ("gpt-4.5", TileRule(85, 170)),
    ("gpt-4-turbo", TileRule(85, 170)),
    ("gpt-5", TileRule(70, 140)),
    ("o1-pro", TileRule(75, 150)),
    ("o1", TileRule(75, 150)),
    ("o3", TileRule(75, 150)),
)

# Unknown models (local vision models, future names): the most any of the published
# rules charges for an image of that size, gpt-4o-mini's price-driven numbers aside, and
# "low" treated as "high" since other servers may ignore `detail`.
_DEFAULT_RULES: tuple[TileRule | PatchRule, ...] = (
    TileRule(85, 170),
    PatchRule(Fraction("2.46")),
    PatchRule(Fraction("1.2"), budget=2500),
)


def image_rule(model: str) -> TileRule | PatchRule | None:
    """The published token rule for `model` (case-insensitive, "provider/" prefix and
    date suffix allowed), or None when OpenAI publishes none for it."""
    name = model.strip().lower().rpartition("/")[2]
    if name.startswith("gpt-5") and "codex-mini" in name:
        return PatchRule(Fraction("1.2"))  # listed with a 1,536-patch budget
    versioned = _GPT_5_PLUS.match(name)
    if versioned:
        minor = int(versioned.group(1))
        # No multiplier is published for gpt-5.2 and later. A mini or nano is counted
        # like gpt-5-mini or gpt-5-nano, the published figures of its size, so the
        # prompt is never under-counted; the others take the forum's measured 1.2.
        multiplier = Fraction("1.2")
        if "-mini" in name:
            multiplier = Fraction("1.62")
        elif "-nano" in name:
            multiplier = Fraction("2.46")
        if minor >= 4:
            return PatchRule(multiplier, budget=2500)
        if minor >= 2:
            return PatchRule(multiplier)
        return None  # gpt-5.1: not in the guide
    for prefix, rule in _RULES:
        if name == prefix or name.startswith(prefix + "-"):
            return rule
    return None


def tile_count(width: int, height: int) -> int:
    """512-px tiles of a "high" image: fit in 2048 x 2048, short side scaled to 768
    (down only: smaller images are not enlarged), then whole tiles to cover it."""
    w, h = fitted_size(width, height, "high")
    return math.ceil(w / 512) * math.ceil(h / 512)


def patch_count(width: int, height: int, budget: int = 1536, max_side: int = 2048) -> int:
    """32-px patches of an image after OpenAI's patch-budget shrink (vision guide steps
    A-C): first fit within `max_side`, then if the patches exceed `budget`, shrink by
    sqrt(32^2 * budget / (w * h)), adjusted so whole patches fit, and count again."""
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, not {width}x{height}")
    if max(width, height) > max_side:
        scale = max_side / max(width, height)
        width, height = max(1, math.floor(width * scale)), max(1, math.floor(height * scale))
    patches = math.ceil(width / 32) * math.ceil(height / 32)
    if patches <= budget:
        return patches
    shrink = math.sqrt(32 * 32 * budget / (width * height))
    fits_w, fits_h = width * shrink / 32, height * shrink / 32
    adjusted = shrink * min(
        max(math.floor(fits_w), 1) / fits_w, max(math.floor(fits_h), 1) / fits_h
    )
    # The tiny epsilon keeps 1055.9999 from flooring to 1055 when the maths says 1056.
    resized_w = max(1, math.floor(width * adjusted + 1e-6))
    resized_h = max(1, math.floor(height * adjusted + 1e-6))
    return min(budget, math.ceil(resized_w / 32) * math.ceil(resized_h / 32))


def _rule_tokens(rule: TileRule | PatchRule, width: int, height: int, detail: Detail) -> int:
    if isinstance(rule, TileRule):
        if detail == "low":
            return rule.base
        return rule.base + rule.tile * tile_count(width, height)
    patches = patch_count(width, height, rule.budget, rule.max_side)
    return math.ceil(patches * rule.multiplier)  # round up: never undercount


def image_tokens(width: int, height: int, detail: Detail, model: str) -> int:
    """Prompt tokens one image of `width` x `height` pixels costs with `model`.

    Follows OpenAI's vision guide ("Calculating costs"; see the table above this
    function): tile-based or patch-based by model family. "auto" is counted as "high"
    (the model may choose it). Models with no published rule get the highest count of
    the 4o tile rule and the 1,536-patch x 2.46 and 2,500-patch x 1.2 patch rules, at
    "high". Raises ValueError for a non-positive size or an unknown detail.
    """
    if detail not in ("low", "high", "auto"):
        raise ValueError(f"detail must be 'low', 'high' or 'auto', not {detail!r}")
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, not {width}x{height}")
    rule = image_rule(model)
    if rule is not None:
        return _rule_tokens(rule, width, height, detail)
    return max(_rule_tokens(r, width, height, "high") for r in _DEFAULT_RULES)


# --- Which models take images --------------------------------------------------------

_OPENAI_VISION = re.compile(
    r"(chatgpt-4o|gpt-4o|gpt-4\.1|gpt-4\.5|gpt-4-turbo|gpt-4-vision|gpt-5|o1|o1-pro|o3|o3-pro"
    r"|o4-mini|computer-use-preview)($|[-.:@].*)"
)
_OPENAI_NO_VISION = re.compile(
    r"(o1-mini|o1-preview|o3-mini|gpt-4o-(mini-)?(audio|realtime|transcribe|tts|search)"
    r"|gpt-4o-mini-(audio|realtime|transcribe|tts|search))($|[-.:@].*)"
)
# Text-only members of otherwise multimodal local families.
_LOCAL_NO_VISION = re.compile(r"gemma-?3[-:]?1b|gemma-?3n")
_LOCAL_VISION = re.compile(
    r"llava|bakllava|vision|-vl\b|qwen-?vl|qwen2\.5vl|claude-(3|opus|sonnet|haiku)"
    r"|gemini-(1\.5|[2-9])"
    r"|gemma-?3|gemma-?4|pixtral|minicpm-v|moondream|internvl|cogvlm|idefics|smolvlm"
    r"|paligemma|phi-?3\.5-vision|phi-?4-multimodal|molmo|mistral-small-3\.[12]|llama-?4"
    r"|granite3\.2-vision|granite-vision|deepseek-vl|janus|kimi-vl|glm-4\.?\dv|ovis"
)


def model_accepts_images(model: str) -> bool:
    """Whether `model` is known to take image input (used when VISION=auto).

    Best effort, case-insensitive, on the name alone: OpenAI's gpt-4o*, gpt-4.1*,
    gpt-4.5*, gpt-5* (and later), o1 and o3 (not o1-mini / o3-mini), o4-mini, and
    local vision models by name (llava, bakllava, *vision*, *-vl, qwen-vl / qwen2.5-vl,
    gemma3 but not its 1b, pixtral, minicpm-v, moondream, internvl, llama4, and Claude 3+
    or Gemini 1.5+ behind a proxy, ...). A "provider/" prefix
    and ":tag" suffix (Ollama) are allowed. Unknown names are False: set VISION=on for
    a model this list misses.
    """
    name = model.strip().lower()
    base = name.rpartition("/")[2]
    if _OPENAI_NO_VISION.match(base):
        return False
    if _OPENAI_VISION.match(base):
        return True
    return _LOCAL_NO_VISION.search(name) is None and _LOCAL_VISION.search(name) is not None
