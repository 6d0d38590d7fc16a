"""Turn a Discord message's attachments into parts of a conversation turn.

Pure logic: nothing here touches Discord or the network. The bot's adapter
(discord_side/downloads.py) downloads an attachment and hands in its name, content type
and bytes; `kinds` decides what the file is, `decoding`, `pdf` and `images` read it,
`image_cost` says what an image costs in prompt tokens, `vision` which models take
images, and `skipped` and `parts` what the user is told. Readers never raise on the
bytes they are given: a file that cannot be read comes back as a `Skipped` value.

A new attachment kind: a `Kind` member and its names and types in `kinds.py`, a reader
module beside `pdf.py`, and its branch in discord_side/downloads.py.

`prepare_image` and `read_pdf` are CPU-bound (tens of milliseconds for a phone photo,
more for a long PDF); call them in a worker thread, not on the event loop. Pillow, pypdf
and charset-normalizer are imported where a file first needs them: together they are
~12 MB of a process that may never see an attachment.
"""

from text.attachments.decoding import read_text_file
from text.attachments.image_cost import image_tokens
from text.attachments.images import Detail, prepare_image
from text.attachments.kinds import Kind, classify
from text.attachments.parts import MIN_PART_TOKENS, FilePart, describe_shortened
from text.attachments.pdf import read_pdf
from text.attachments.skipped import (
    SkipKind,
    Skipped,
    describe_skipped,
    display_name,
    download_failed,
    no_vision,
    not_read,
    too_large,
)
from text.attachments.vision import model_accepts_images

__all__ = [
    "MIN_PART_TOKENS",
    "Detail",
    "FilePart",
    "Kind",
    "SkipKind",
    "Skipped",
    "classify",
    "describe_shortened",
    "describe_skipped",
    "display_name",
    "download_failed",
    "image_tokens",
    "model_accepts_images",
    "no_vision",
    "not_read",
    "prepare_image",
    "read_pdf",
    "read_text_file",
    "too_large",
]
