"""Download a message's `discord.Attachment`s and read them, through text/attachments,
into what they add to the message's conversation turn.

`AttachmentReader.read` decides from each attachment's name, `content_type` and `size`
whether to fetch it (the size is Discord's own figure, checked before any byte is
downloaded), downloads it with a timeout, and hands the bytes to text/attachments to read.
What comes back (`AttachmentContent`) is the text to add to the turn (each file's name and
its text in a fenced block; "[image: name]" for an image), the images as `ImagePart`s, and
the notes for the user about files that were skipped or shortened.

Limits: at most MAX_FILES attachments per message are looked at; together they may be
at most `Settings.max_attachment_bytes` bytes; one message's images may take at most
IMAGE_SHARE of the history budget (an image that does not fit at IMAGE_DETAIL is sent
at "low", then skipped). A failed download is a note, never an exception.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp
import discord

from config import Settings
from memory import ImagePart, image_placeholder
from text.attachments import (
    MIN_PART_TOKENS,
    Detail,
    FilePart,
    Kind,
    SkipKind,
    Skipped,
    classify,
    describe_shortened,
    describe_skipped,
    display_name,
    download_failed,
    image_tokens,
    model_accepts_images,
    no_vision,
    not_read,
    prepare_image,
    read_pdf,
    read_text_file,
    too_large,
)
from text.markdown import subtext
from text.tokens import TokenCounter

log = logging.getLogger(__name__)

MAX_FILES = 5  # attachments read per message; Discord allows 10
DOWNLOAD_TIMEOUT = 20.0  # seconds for one file from Discord's CDN
IMAGE_SHARE = 0.5  # of the history budget, at most, for one message's images
# Parts are joined by blank lines, which can also merge with a neighbour's tokens.
SEPARATOR_ROOM = 8


@dataclass(frozen=True, slots=True)
class AttachmentContent:
    """What a message's attachments add to its turn.

    `text` is the files' parts in attachment order, separated by blank lines ("" when no
    file was read); `names` are the files that are part of the turn; `skipped` and
    `shortened` are what the user is told about (`notes`).
    """

    text: str = ""
    images: tuple[ImagePart, ...] = ()
    names: tuple[str, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    shortened: tuple[FilePart, ...] = ()

    @property
    def unseen_images(self) -> bool:
        """Whether an image was left out because the model takes none."""
        return any(skipped.kind is SkipKind.NO_VISION for skipped in self.skipped)

    def notes(self, *, tell_no_vision: bool = True) -> list[str]:
        """One subtext line per file skipped or shortened; images skipped because the
        model takes none only with `tell_no_vision`."""
        lines = [
            describe_skipped(skipped)
            for skipped in self.skipped
            if tell_no_vision or skipped.kind is not SkipKind.NO_VISION
        ]
        lines += [describe_shortened(part) for part in self.shortened]
        return [subtext(line) for line in lines]


# An attachment to read, with what `classify` said about it: (attachment, kind, fence tag).
_Wanted = tuple[discord.Attachment, Kind, str]


@dataclass(slots=True)
class _Reading:
    """What one `AttachmentReader.read` call has gathered so far, and the history tokens
    still free for the message (`room`) and for its images (`image_room`)."""

    room: int
    image_room: int
    parts: dict[int, str] = field(default_factory=dict)  # attachment id -> turn text
    images: list[ImagePart] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    shortened: list[FilePart] = field(default_factory=list)


class AttachmentReader:
    """Downloads and reads attachments for one model (`model`, OPENAI_MODEL unless made
    by `viewing`): whether it takes images (VISION, judged by that model's name; off for
    the process once its server refused them, `refuse_images`) and what they cost in its
    tokens. One reader per process; `viewing(model)` gives the same reader for a
    channel's own /settings model."""

    def __init__(self, settings: Settings, counter: TokenCounter, history_budget: int) -> None:
        self.model = settings.openai_model
        self.detail: Detail = settings.image_detail
        self.max_bytes = settings.max_attachment_bytes
        self.counter = counter
        self.history_budget = history_budget
        self.vision_setting = settings.vision
        # Models whose server refused images (shared by every view of this reader).
        self.refused: set[str] = set()
        self._views: dict[str, AttachmentReader] = {self.model: self}

    @property
    def vision(self) -> bool:
        """Whether `model` is sent pictures."""
        if self.model in self.refused or self.vision_setting == "off":
            return False
        return self.vision_setting == "on" or model_accepts_images(self.model)

    def viewing(self, model: str) -> AttachmentReader:
        """This reader for `model` (a channel's /settings model): its vision and image
        costs; downloads, limits and refusals shared."""
        view = self._views.get(model)
        if view is None:
            view = copy.copy(self)
            view.model = model
            self._views[model] = view
        return view

    def refuse_images(self) -> None:
        """The server refused an image from `model`: send it none for the rest of the
        process (other models keep theirs)."""
        self.refused.add(self.model)

    async def read(
        self,
        attachments: Sequence[discord.Attachment],
        *,
        text_tokens: int = 0,
        images: bool = True,
    ) -> AttachmentContent:
        """Read `attachments` into turn parts that fit the history budget together with
        `text_tokens` already used by the message's own text. `images=False` leaves
        images as placeholders without fetching them (older messages read back).
        Never raises for a file: problems become `AttachmentContent.skipped`."""
        reading = _Reading(
            room=self.history_budget - text_tokens,
            image_room=int(self.history_budget * IMAGE_SHARE),
        )
        wanted = self._choose(attachments, images, reading.skipped)
        fetch = [a for a, kind, _ in wanted if images or kind is not Kind.IMAGE]
        fetched = await asyncio.gather(*map(_download, fetch))
        downloads = {a.id: data for a, data in zip(fetch, fetched, strict=True)}
        # Images first: their cost is fixed by their size, the text files share the rest.
        await self._read_images(wanted, downloads, images, reading)
        await self._read_files(wanted, downloads, reading)
        in_order = [reading.parts[a.id] for a in attachments if a.id in reading.parts]
        return AttachmentContent(
            "\n\n".join(in_order),
            tuple(reading.images),
            tuple(reading.names),
            tuple(reading.skipped),
            tuple(reading.shortened),
        )

    def _choose(
        self, attachments: Sequence[discord.Attachment], images: bool, skipped: list[Skipped]
    ) -> list[_Wanted]:
        """The attachments worth reading, in order, judged before any download; the others
        go to `skipped`. With `images=False` images are kept (as placeholders) whatever
        their size."""
        wanted: list[_Wanted] = []
        used_bytes = 0
        for index, attachment in enumerate(attachments):
            name = attachment.filename
            if index >= MAX_FILES:
                skipped.append(
                    Skipped(name, SkipKind.NOT_READ, f"only {MAX_FILES} files per message are read")
                )
                continue
            found = classify(name, attachment.content_type)
            if found.kind is Kind.OTHER:
                skipped.append(not_read(name, found))
                continue
            if found.kind is Kind.IMAGE and not self.vision:
                skipped.append(no_vision(name))
                continue
            if found.kind is Kind.IMAGE and not images:
                wanted.append((attachment, found.kind, found.language))  # placeholder only
                continue
            if used_bytes + attachment.size > self.max_bytes:
                skipped.append(too_large(name, attachment.size, self.max_bytes))
                continue
            used_bytes += attachment.size
            wanted.append((attachment, found.kind, found.language))
        return wanted

    async def _read_images(
        self,
        wanted: list[_Wanted],
        downloads: dict[int, bytes | Skipped],
        images: bool,
        reading: _Reading,
    ) -> None:
        """Add the wanted images to `reading`: each as a placeholder in the text and, with
        `images`, as an image part whose tokens come out of the rooms."""
        for attachment, kind, _ in wanted:
            if kind is not Kind.IMAGE:
                continue
            placeholder = image_placeholder(display_name(attachment.filename))
            if not images:
                reading.parts[attachment.id] = placeholder
                reading.names.append(attachment.filename)
                continue
            data = downloads[attachment.id]
            if isinstance(data, Skipped):
                reading.skipped.append(data)
                continue
            part = await self._image(attachment.filename, data, reading.image_room)
            if isinstance(part, Skipped):
                reading.skipped.append(part)
                continue
            reading.image_room -= part.tokens
            reading.room -= part.tokens
            reading.images.append(part)
            reading.parts[attachment.id] = placeholder
            reading.names.append(attachment.filename)

    async def _read_files(
        self, wanted: list[_Wanted], downloads: dict[int, bytes | Skipped], reading: _Reading
    ) -> None:
        """Add the wanted text files and PDFs to `reading`, each capped at an even share of
        the room the files still to read leave."""
        readable = [(a, kind, lang) for a, kind, lang in wanted if kind is not Kind.IMAGE]
        for left, (attachment, kind, language) in zip(
            range(len(readable), 0, -1), readable, strict=True
        ):
            data = downloads[attachment.id]
            if isinstance(data, Skipped):
                reading.skipped.append(data)
                continue
            cap = max(MIN_PART_TOKENS, reading.room // left - SEPARATOR_ROOM)
            if kind is Kind.PDF:
                read = await asyncio.to_thread(
                    read_pdf, attachment.filename, data, self.counter, cap
                )
            else:
                read = read_text_file(attachment.filename, data, self.counter, cap, language)
            if isinstance(read, Skipped):
                reading.skipped.append(read)
                continue
            reading.room -= read.tokens + SEPARATOR_ROOM
            reading.parts[attachment.id] = read.content
            reading.names.append(attachment.filename)
            if read.shortened:
                reading.shortened.append(read)

    async def _image(self, filename: str, data: bytes, room: int) -> ImagePart | Skipped:
        """The image at IMAGE_DETAIL, or at "low" if that does not fit in `room` tokens."""
        details: tuple[Detail, ...] = (self.detail, "low") if self.detail != "low" else ("low",)
        for detail in details:
            prepared = await asyncio.to_thread(prepare_image, filename, data, detail)
            if isinstance(prepared, Skipped):
                return prepared
            tokens = image_tokens(prepared.width, prepared.height, detail, self.model)
            if tokens <= room:
                return ImagePart(filename, prepared.data_url, detail, tokens)
        return Skipped(filename, SkipKind.TOO_LARGE, "no room for it in the model's context")


def has_images(attachments: Sequence[discord.Attachment]) -> bool:
    """Whether any of `attachments` is an image the model could be sent."""
    return any(
        classify(a.filename, a.content_type).kind is Kind.IMAGE for a in attachments[:MAX_FILES]
    )


async def _download(attachment: discord.Attachment) -> bytes | Skipped:
    """The attachment's bytes from Discord's CDN, or why they could not be had."""
    try:
        async with asyncio.timeout(DOWNLOAD_TIMEOUT):
            return await attachment.read()
    except discord.HTTPException as error:
        detail = f"HTTP {error.status}"
    except TimeoutError:
        detail = "timed out"
    except aiohttp.ClientError as error:
        detail = type(error).__name__
    log.warning("could not download attachment %s: %s", attachment.id, detail)
    return download_failed(attachment.filename, detail)
