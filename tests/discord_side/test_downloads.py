"""FileReader on real discord.py Attachment objects, with their CDN served from memory."""

from __future__ import annotations

import io
from types import SimpleNamespace

import discord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from config import load_settings
from conversation.prompts import PromptBuilder
from discord_side.downloads import MAX_FILES, FileReader, Files
from text.attachments import MIN_PART_TOKENS, SkipKind
from text.tokens import TokenCounter

MB = 1024 * 1024
ENV = {"DISCORD_BOT_TOKEN": "t", "OPENAI_API_KEY": "k"}


class MemoryCdn:
    """What `Attachment.read` calls (`state.http.get_from_cdn`), serving stored bytes."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.fetched: list[str] = []

    async def get_from_cdn(self, url: str) -> bytes:
        self.fetched.append(url)
        return self.files[url]

    def attach(
        self, filename: str, data: bytes, content_type: str | None = None, size: int | None = None
    ) -> discord.Attachment:
        url = f"https://cdn.example/{len(self.files)}/{filename}"
        self.files[url] = data
        payload = {
            "id": str(1000 + len(self.files)),
            "filename": filename,
            "size": len(data) if size is None else size,
            "url": url,
            "proxy_url": url,
        }
        if content_type is not None:
            payload["content_type"] = content_type
        return discord.Attachment(data=payload, state=SimpleNamespace(http=self))  # type: ignore[arg-type]


def reader(counter: TokenCounter, budget: int, **env: str) -> FileReader:
    return FileReader(load_settings({**ENV, **env}), counter, budget)


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), "navy").save(out, format="PNG")
    return out.getvalue()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    line_counts=st.lists(st.integers(0, 3000), min_size=1, max_size=3),
    words=st.integers(0, 300),
    budget=st.integers(1800, 6000),
)
async def test_text_files_and_the_message_fit_the_budget_together(
    o200k: TokenCounter, line_counts: list[int], words: int, budget: int
) -> None:
    builder = PromptBuilder(o200k, "Be brief.", budget)
    cdn = MemoryCdn()
    files = [
        cdn.attach(f"f{n}.log", "".join(f"line {i} of file {n}\n" for i in range(lines)).encode())
        for n, lines in enumerate(line_counts)
    ]
    text = "why? " * words
    used = o200k.count_message("user", text, "Ana")
    read = await reader(o200k, builder.history_budget).read(files, text_tokens=used)
    joined = "\n\n".join(filter(None, [text, read.text]))
    turn, shortened = builder.turn("user", joined, "Ana", read.images, read.names)
    # Whenever every file can get its minimum, nothing is cut but the files' own ends.
    if builder.history_budget - used >= len(files) * (MIN_PART_TOKENS + 8):
        assert not shortened
        assert turn.tokens <= builder.history_budget
    assert all(part.shortened and part.read < part.total for part in read.shortened)
    assert read.names == tuple(f.filename for f in files)


async def test_at_most_max_files_are_looked_at(o200k: TokenCounter) -> None:
    cdn = MemoryCdn()
    files = [cdn.attach(f"n{i}.txt", b"x", "text/plain") for i in range(MAX_FILES + 2)]
    read = await reader(o200k, 3000).read(files)
    assert read.names == tuple(f"n{i}.txt" for i in range(MAX_FILES))
    assert [s.filename for s in read.skipped] == [f"n{MAX_FILES}.txt", f"n{MAX_FILES + 1}.txt"]
    assert len(cdn.fetched) == MAX_FILES


async def test_the_byte_limit_is_per_message_and_checked_before_downloading(
    o200k: TokenCounter,
) -> None:
    cdn = MemoryCdn()
    first = cdn.attach("a.txt", b"first", size=6 * MB)
    second = cdn.attach("b.txt", b"second", size=6 * MB)
    small = cdn.attach("c.txt", b"third", size=3 * MB)
    read = await reader(o200k, 3000, MAX_ATTACHMENT_BYTES=str(10 * MB)).read([first, second, small])
    assert read.names == ("a.txt", "c.txt")
    [skipped] = read.skipped
    assert (skipped.filename, skipped.kind, skipped.size) == ("b.txt", SkipKind.TOO_LARGE, 6 * MB)
    assert cdn.fetched == [first.url, small.url]


async def test_an_image_too_costly_at_high_detail_goes_at_low_then_is_skipped(
    o200k: TokenCounter,
) -> None:
    cdn = MemoryCdn()
    shot = cdn.attach("shot.png", png(2000, 1200), "image/png")
    roomy = await reader(o200k, 20_000, VISION="on", IMAGE_DETAIL="high").read([shot])
    assert roomy.images[0].detail == "high"
    # gpt-5.4-mini at "high": 1280 x 768 is 40 x 24 patches, x 1.62 -> 1556 tokens; half
    # of a 2000-token budget is too little, so it goes at "low" (16 x 10 patches -> 260).
    tight = await reader(o200k, 2000, VISION="on", IMAGE_DETAIL="high").read([shot])
    assert [(i.detail, i.tokens) for i in tight.images] == [("low", 260)]
    assert tight.text == "[image: shot.png]"
    starved = await reader(o200k, 300, VISION="on", IMAGE_DETAIL="high").read([shot])
    assert starved.images == () and starved.text == ""
    assert starved.skipped[0].kind is SkipKind.TOO_LARGE


async def test_images_without_vision_are_not_fetched(o200k: TokenCounter) -> None:
    cdn = MemoryCdn()
    shot = cdn.attach("shot.png", png(20, 20), "image/png")
    read = await reader(o200k, 3000, VISION="off").read([shot])
    assert read.unseen_images and cdn.fetched == []
    assert read.notes() == ["-# Skipped `shot.png`: this model does not take images."]
    assert read.notes(tell_no_vision=False) == []


async def test_read_back_names_images_without_fetching_them(o200k: TokenCounter) -> None:
    cdn = MemoryCdn()
    shot = cdn.attach("shot.png", png(20, 20), "image/png")
    code = cdn.attach("a.py", b"print(1)\n")
    read = await reader(o200k, 3000, VISION="on").read([shot, code], images=False)
    assert read.text == "[image: shot.png]\n\nFile: `a.py`\n```python\nprint(1)\n```"
    assert read.images == () and cdn.fetched == [code.url]


def test_no_files_no_notes() -> None:
    assert Files().notes() == [] and not Files().unseen_images
