"""What an attachment is (`classify`): text, an image, a PDF, or a file the bot does not read.

A new kind of file starts here: a `Kind` member, its names and content types in the tables
below, and a branch in `classify`.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from enum import StrEnum


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
    if by_name.kind is Kind.OTHER and by_name.reason != UNKNOWN_TYPE:
        return by_name
    return _not_read(f"files of type {mime} are not read")


UNKNOWN_TYPE = "this file type is not read"


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
    return _not_read(UNKNOWN_TYPE)


def language_for(filename: str) -> str:
    """The fence tag a text file's name implies ("" for none, or for a non-text name)."""
    found = _classify_by_name(
        posixpath.basename(filename.replace("\\", "/")).lower(), _extension(filename)
    )
    return found.language if found.kind is Kind.TEXT else ""
