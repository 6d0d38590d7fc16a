"""Attachments: classification, text and PDF reading under a token cap, image preparation,
OpenAI's image token rules, and the notes for the user. Every file is made in the test."""

from __future__ import annotations

import base64
import io
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pypdf
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from text import attachments
from text.attachments import (
    MIN_PART_TOKENS,
    FilePart,
    Kind,
    PreparedImage,
    SkipKind,
    Skipped,
    classify,
    decode_text,
    describe_shortened,
    describe_skipped,
    display_name,
    download_failed,
    fitted_size,
    image_tokens,
    model_accepts_images,
    no_vision,
    not_read,
    patch_count,
    prepare_image,
    read_pdf,
    read_text_file,
    tile_count,
    too_large,
)
from text.tokens import TokenCounter

# --- Helpers that make real files ------------------------------------------------------


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def gradient(width: int, height: int) -> Image.Image:
    """A photo-like RGB image: thousands of colours, so it goes out as JPEG."""
    red = Image.linear_gradient("L").resize((width, height))
    green = red.transpose(Image.Transpose.ROTATE_90).resize((width, height))
    blue = Image.radial_gradient("L").resize((width, height))
    return Image.merge("RGB", (red, green, blue))


def decoded(prepared: PreparedImage) -> Image.Image:
    header, payload = prepared.data_url.split(",", 1)
    assert header == f"data:{prepared.mime};base64"
    image = Image.open(io.BytesIO(base64.b64decode(payload)))
    image.load()
    return image


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims `width` x `height` but carries no pixels: a decompression bomb's
    header (the real thing would be a few KB of zlib expanding to gigabytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def make_pdf(pages: list[str]) -> bytes:
    """A minimal valid PDF (with a correct xref table) with one line of Helvetica text
    per page; an empty string makes a page without text, like a scan."""
    objects: list[bytes] = []
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(len(pages)))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for i, text in enumerate(pages):
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream = f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET".encode() if text else b""
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>".encode()
        )
        objects.append(f"<< /Length {len(stream)} >>\nstream\n".encode() + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\n".encode()
    out += f"startxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def encrypted(pdf: bytes, user_password: str, owner_password: str = "owner") -> bytes:
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(pdf)))
    # RC4 needs no extra crypto package, so this runs wherever pypdf does.
    writer.encrypt(user_password, owner_password, algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def body_of(part: FilePart) -> tuple[str, str]:
    """(fence, text inside the fenced block) of a part, checking the layout."""
    header, rest = part.content.split("\n", 1)
    assert header == f"File: `{display_name(part.filename)}`"
    opening, rest = rest.split("\n", 1)
    fence = re.match(r"`+", opening).group(0)
    assert opening == fence + part.language
    inside, closing = rest.rsplit(fence, 1)
    assert closing == "" or closing.startswith("\n[Only")
    return fence, inside


# --- Classification ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "content_type", "kind", "language"),
    [
        ("message.txt", "text/plain; charset=utf-8", Kind.TEXT, ""),  # Discord's long paste
        ("message.txt", None, Kind.TEXT, ""),
        ("main.py", "text/x-python; charset=utf-8", Kind.TEXT, "python"),
        ("main.py", "text/plain", Kind.TEXT, "python"),
        ("main.py", None, Kind.TEXT, "python"),
        ("lib.rs", "application/octet-stream", Kind.TEXT, "rust"),
        ("App.tsx", None, Kind.TEXT, "tsx"),
        ("data.json", "application/json", Kind.TEXT, "json"),
        ("config.yml", "application/x-yaml", Kind.TEXT, "yaml"),
        ("page.xml", "application/xml", Kind.TEXT, "xml"),
        ("run.sh", "application/x-sh", Kind.TEXT, "bash"),
        ("script.js", "application/javascript", Kind.TEXT, "javascript"),
        ("notes", "text/markdown", Kind.TEXT, "markdown"),
        ("Dockerfile", None, Kind.TEXT, "dockerfile"),
        ("Makefile", "application/octet-stream", Kind.TEXT, "makefile"),
        ("src/Query.SQL", None, Kind.TEXT, "sql"),
        ("table.csv", "text/csv", Kind.TEXT, "csv"),
        ("photo.png", "image/png", Kind.IMAGE, ""),
        ("photo.JPG", None, Kind.IMAGE, ""),
        ("photo", "image/jpeg", Kind.IMAGE, ""),
        ("anim.gif", "image/gif", Kind.IMAGE, ""),
        ("pic.webp", "application/octet-stream", Kind.IMAGE, ""),
        ("paper.pdf", "application/pdf", Kind.PDF, ""),
        ("paper.pdf", None, Kind.PDF, ""),
    ],
)
def test_classify_reads(filename, content_type, kind, language):
    found = classify(filename, content_type)
    assert (found.kind, found.language, found.reason) == (kind, language, None)


@pytest.mark.parametrize(
    ("filename", "content_type", "reason"),
    [
        ("code.zip", "application/zip", "archives are not opened"),
        ("code.tar.gz", None, "archives are not opened"),
        ("setup.exe", "application/x-msdownload", "programs are not read"),
        ("song.mp3", "audio/mpeg", "audio is not read"),
        ("clip.mp4", "video/mp4", "video is not read"),
        ("clip.mov", None, "audio and video are not read"),
        ("report.docx", None, "office documents are not read; send a PDF or plain text"),
        ("IMG_1234.HEIC", "image/heic", "HEIC images are not read; send PNG, JPEG, WebP or GIF"),
        ("IMG_1234.heic", None, "HEIC images are not read; send PNG, JPEG, WebP or GIF"),
        ("mystery.xyz", None, "this file type is not read"),
        ("mystery", "application/octet-stream", "this file type is not read"),
        ("thing.bin2", "application/x-custom", "files of type application/x-custom are not read"),
    ],
)
def test_classify_says_why_a_file_is_not_read(filename, content_type, reason):
    found = classify(filename, content_type)
    assert found.kind is Kind.OTHER
    assert found.reason == reason


@given(st.text(max_size=200), st.one_of(st.none(), st.text(max_size=80)))
def test_classify_never_raises(filename, content_type):
    found = classify(filename, content_type)
    assert (found.kind is Kind.OTHER) == (found.reason is not None)


# --- Text files ------------------------------------------------------------------------

FRENCH = (
    "Le café de la gare servait une crème brûlée à 3 € — « très bon », disait-on.\n"
    "Naïve façade, déjà vu, œuvre, cœur, où, maïs.\n"
) * 3


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (FRENCH.encode("utf-8"), "utf-8"),
        (FRENCH.encode("utf-8-sig"), "utf-8-sig"),
        (FRENCH.encode("utf-16"), "utf-16"),  # with a BOM
        (FRENCH.encode("utf-16-le"), "utf-16-le"),  # without one
        (FRENCH.encode("utf-16-be"), "utf-16-be"),
        (FRENCH.encode("utf-32"), "utf-32"),
        (FRENCH.encode("cp1252"), "cp1252"),
        (FRENCH.replace("\n", "\r\n").encode("utf-8"), "utf-8"),  # Windows line ends
    ],
)
def test_decode_text_gets_the_text_back(data, encoding):
    assert decode_text(data) == (FRENCH, encoding)


@pytest.mark.parametrize(
    ("text", "codec"),
    [
        ("Größere Übung für Äpfel und Öl \u2013 „schön“ ist das.\n" * 2, "cp1252"),
        ("Café crème brûlée à la française, garçon! Ça coûte très cher.\n" * 3, "latin-1"),
        ("A ação não é fácil; o coração está em São Paulo, pôr-do-sol, avó.\n" * 3, "cp1252"),
        ("Perché è così difficile? La città più bella, però non c'è nessuno lì.\n" * 3, "cp1252"),
        ("Zażółć gęślą jaźń. Pchnąć w tę łódź jeża lub ośm skrzyń fig.\n" * 3, "cp1250"),
        ("Příliš žluťoučký kůň úpěl ďábelské ódy. Čeština je krásná.\n" * 3, "cp1250"),
        ("Просто текст на русском языке, ничего особенного.\n" * 3, "cp1251"),
        ("日本語のテキストです。これはテストです。\n" * 3, "shift_jis"),
    ],
)
def test_decode_text_detects_legacy_encodings(text, codec):
    result = decode_text(text.encode(codec))
    assert result is not None
    assert result[0] == text


def test_decode_text_calls_binary_data_binary():
    png = encode(gradient(16, 16), "PNG")
    assert decode_text(png) is None
    assert decode_text(b"\x00\x01\x02\x03" * 100) is None


@given(st.binary(max_size=4096))
@settings(max_examples=300)
def test_decode_text_never_raises(data):
    result = decode_text(data)
    if result is not None:
        text, encoding = result
        assert "\r" not in text
        assert encoding


def test_a_small_file_is_read_whole(o200k: TokenCounter):
    part = read_text_file("hello.py", FRENCH.encode("cp1252"), o200k, 1000)
    assert isinstance(part, FilePart)
    assert part.content == f"File: `hello.py`\n```python\n{FRENCH}```"
    assert (part.shortened, part.read, part.total, part.unit) == (False, 6, 6, "lines")
    assert part.tokens == o200k.count_text(part.content)
    assert part.encoding == "cp1252"
    assert describe_shortened(part) == ""


def test_the_fence_is_longer_than_any_backtick_run_inside(o200k: TokenCounter):
    text = "Here is markdown:\n```python\nprint(1)\n```\nand a `````five````` run\n"
    part = read_text_file("README.md", text.encode(), o200k, 1000)
    fence, inside = body_of(part)
    assert fence == "``````"
    assert inside == text
    assert part.language == "markdown"


def test_a_long_file_keeps_whole_lines_up_to_the_cap(o200k: TokenCounter):
    lines = [f"line {n}: the quick brown fox jumps over the lazy dog\n" for n in range(5000)]
    text = "".join(lines)
    part = read_text_file("server.log", text.encode(), o200k, 1000)
    assert isinstance(part, FilePart)
    assert part.shortened
    assert part.tokens == o200k.count_text(part.content) <= 1000
    assert part.unit == "lines" and part.total == 5000
    _, inside = body_of(part)
    assert inside == "".join(lines[: part.read])  # the first lines, whole
    assert 50 < part.read < 5000  # it filled most of the cap rather than stopping early
    assert part.content.endswith(
        f"[Only the first {part.read:,} of 5,000 lines of this file are shown.]"
    )
    assert describe_shortened(part) == (
        f"Read only the first {part.read:,} of 5,000 lines of `server.log` "
        f"({part.read / 5000:.0%})."
    )


def test_a_long_single_line_is_cut_by_characters(o200k: TokenCounter):
    text = '{"items": [' + ", ".join(f'{{"id": {n}}}' for n in range(20000)) + "]}"
    part = read_text_file("data.json", text.encode(), o200k, 600)
    assert part.shortened and part.unit == "characters"
    assert part.total == len(text)
    _, inside = body_of(part)
    assert text.startswith(inside.removesuffix("\n"))
    assert part.read == len(inside.removesuffix("\n"))
    assert part.tokens <= 600
    assert describe_shortened(part).startswith(f"Read only the first {part.read:,} of ")


def test_a_huge_file_is_not_tokenised_whole(o200k: TokenCounter, monkeypatch):
    seen: list[int] = []
    count_text = o200k.count_text
    monkeypatch.setattr(
        o200k, "count_text", lambda text: seen.append(len(text)) or count_text(text)
    )
    text = "word " * 2_000_000  # 10 MB
    part = read_text_file("big.txt", text.encode(), o200k, 1000)
    assert part.shortened and part.tokens <= 1000
    assert max(seen) <= 1000 * 64 + 200


def test_binary_content_under_a_text_name_is_unreadable(o200k: TokenCounter):
    skipped = read_text_file("notes.txt", encode(gradient(8, 8), "PNG"), o200k, 1000)
    assert skipped == Skipped("notes.txt", SkipKind.UNREADABLE, "not text")
    assert describe_skipped(skipped) == "Skipped `notes.txt`: could not be read (not text)."


def test_the_cap_has_a_floor(o200k: TokenCounter):
    with pytest.raises(ValueError, match="at least 512"):
        read_text_file("a.txt", b"hi", o200k, MIN_PART_TOKENS - 1)


@given(
    text=st.text(st.characters(exclude_categories=("Cs",)), max_size=3000),
    cap=st.integers(MIN_PART_TOKENS, 900),
    name=st.text(max_size=300),
)
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_text_parts_fit_the_cap_and_keep_the_fence_whole(o200k, text, cap, name):
    part = read_text_file(name, text.encode("utf-8"), o200k, cap)
    if isinstance(part, Skipped):  # control characters: binary by our rule
        assert part.kind is SkipKind.UNREADABLE
        return
    assert part.tokens == o200k.count_text(part.content) <= cap
    fence, inside = body_of(part)
    assert "`" * len(fence) not in inside
    assert part.shortened == (part.read < part.total)
    if "\x00" in text:
        return  # UTF-8 with zero bytes can equally be UTF-16 text: either reading is right
    normalised = text.replace("\r\n", "\n").replace("\r", "\n")
    assert normalised.startswith(inside.removesuffix("\n")) or inside == normalised + "\n"


@given(st.binary(max_size=3000))
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_read_text_file_never_raises_on_bytes(o200k, data):
    part = read_text_file("x.txt", data, o200k, MIN_PART_TOKENS)
    assert isinstance(part, FilePart | Skipped)


# --- PDFs ------------------------------------------------------------------------------


def test_a_pdf_is_read_page_by_page(o200k: TokenCounter):
    pdf = make_pdf(["Hello from page one.", "And (parenthesised) page two."])
    part = read_pdf("paper.pdf", pdf, o200k, 1000)
    assert isinstance(part, FilePart)
    _, inside = body_of(part)
    assert inside == "[page 1]\nHello from page one.\n[page 2]\nAnd (parenthesised) page two.\n"
    assert (part.shortened, part.read, part.total, part.unit) == (False, 2, 2, "pages")
    assert part.tokens == o200k.count_text(part.content)


def test_a_long_pdf_stops_at_the_cap(o200k: TokenCounter):
    sentence = "This page talks at some length about nothing in particular. " * 6
    pdf = make_pdf([f"{n}. {sentence}" for n in range(40)])
    part = read_pdf("book.pdf", pdf, o200k, 1000)
    assert part.shortened and part.total == 40 and 0 < part.read < 40
    assert part.tokens <= 1000
    _, inside = body_of(part)
    assert inside.count("[page ") == part.read
    assert describe_shortened(part) == (
        f"Read only the first {part.read} of 40 pages of `book.pdf` ({part.read / 40:.0%})."
    )


def test_a_first_page_longer_than_the_cap_is_cut(o200k: TokenCounter):
    pdf = make_pdf(["word " * 3000, "second page"])
    part = read_pdf("dense.pdf", pdf, o200k, 600)
    assert part.shortened and part.read == 0 and part.tokens <= 600
    assert "[page 1]\nword word" in part.content
    assert describe_shortened(part) == "Read only part of the first of 2 pages of `dense.pdf`."


def test_a_long_page_after_a_blank_one_is_cut_not_dropped(o200k: TokenCounter):
    part = read_pdf("dense.pdf", make_pdf(["", "word " * 3000, "third"]), o200k, 600)
    assert part.shortened and part.tokens <= 600
    assert "[page 2]\nword word" in part.content


def test_a_pdf_with_an_empty_user_password_is_read(o200k: TokenCounter):
    pdf = encrypted(make_pdf(["Secret? Not really."]), user_password="")
    part = read_pdf("locked.pdf", pdf, o200k, 1000)
    assert isinstance(part, FilePart)
    assert "Secret? Not really." in part.content


def test_a_password_protected_pdf_is_unreadable(o200k: TokenCounter):
    pdf = encrypted(make_pdf(["Top secret."]), user_password="hunter2")
    skipped = read_pdf("locked.pdf", pdf, o200k, 1000)
    assert skipped == Skipped("locked.pdf", SkipKind.UNREADABLE, "password-protected PDF")


def test_a_scan_without_text_is_unreadable(o200k: TokenCounter):
    skipped = read_pdf("scan.pdf", make_pdf(["", ""]), o200k, 1000)
    assert skipped.kind is SkipKind.UNREADABLE
    assert "no text layer" in skipped.detail


@pytest.mark.parametrize(
    "data",
    [b"", b"%PDF-1.4\n", b"not a pdf at all", make_pdf(["Cut short."])[:60]],
)
def test_a_broken_pdf_is_unreadable(o200k: TokenCounter, data):
    skipped = read_pdf("broken.pdf", data, o200k, 1000)
    assert isinstance(skipped, Skipped) and skipped.kind is SkipKind.UNREADABLE


@given(
    st.one_of(
        st.binary(max_size=2000),
        st.binary(max_size=2000).map(lambda tail: b"%PDF-1.4\n" + tail),
        st.integers(0, 700).map(lambda cut: make_pdf(["one", "two"])[:cut]),
        st.tuples(st.integers(0, 700), st.binary(min_size=1, max_size=8)).map(
            lambda t: make_pdf(["one", "two"])[: t[0]] + t[1] + make_pdf(["one", "two"])[t[0] :]
        ),
    )
)
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_read_pdf_never_raises_on_bytes(o200k, data):
    result = read_pdf("x.pdf", data, o200k, MIN_PART_TOKENS)
    assert isinstance(result, FilePart | Skipped)
    if isinstance(result, FilePart):
        assert result.tokens <= MIN_PART_TOKENS


# --- Images ----------------------------------------------------------------------------


def test_a_png_with_alpha_stays_png_and_keeps_its_transparency():
    image = gradient(600, 400).convert("RGBA")
    image.putalpha(Image.linear_gradient("L").resize((600, 400)))
    prepared = prepare_image("logo.png", encode(image, "PNG"), "low")
    assert isinstance(prepared, PreparedImage)
    assert (prepared.mime, prepared.width, prepared.height) == ("image/png", 512, 341)
    assert (prepared.original_width, prepared.original_height) == (600, 400)
    out = decoded(prepared)
    assert out.format == "PNG" and out.mode == "RGBA" and out.size == (512, 341)
    assert out.getchannel("A").getextrema()[0] < 10  # still transparent at the top


def test_a_jpeg_photo_is_downscaled_to_the_detail_level():
    data = encode(gradient(4000, 3000), "JPEG", quality=90)
    low = prepare_image("photo.jpg", data, "low")
    high = prepare_image("photo.jpg", data, "high")
    auto = prepare_image("photo.jpg", data, "auto")
    assert (low.width, low.height, low.mime) == (512, 384, "image/jpeg")
    assert (high.width, high.height, high.mime) == (1024, 768, "image/jpeg")
    assert (auto.width, auto.height) == (1024, 768)
    assert decoded(high).size == (1024, 768)
    # Still the same picture: the top-left corner is dark in red, the bottom-right bright.
    assert decoded(high).getpixel((5, 5))[0] < 40
    assert decoded(high).getpixel((5, 760))[0] > 200


def test_a_small_image_is_not_enlarged():
    prepared = prepare_image("icon.jpg", encode(gradient(300, 200), "JPEG"), "high")
    assert (prepared.width, prepared.height) == (300, 200)


def test_an_opaque_alpha_channel_does_not_force_png():
    data = encode(gradient(800, 600).convert("RGBA"), "PNG")
    assert prepare_image("photo.png", data, "low").mime == "image/jpeg"


def test_few_colours_go_out_as_lossless_png():
    image = Image.new("RGB", (900, 300), "white")
    image.paste((200, 30, 30), (100, 100, 400, 200))  # a red box on white: a diagram
    prepared = prepare_image("diagram.jpg", encode(image, "PNG"), "low")
    assert prepared.mime == "image/png"
    assert sorted(decoded(prepared).convert("RGB").getcolors())[-1][1] == (255, 255, 255)


def test_an_animated_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (64, 64), colour) for colour in ("red", "blue", "green")]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    prepared = prepare_image("anim.gif", out.getvalue(), "high")
    assert isinstance(prepared, PreparedImage)
    assert decoded(prepared).convert("RGB").getpixel((32, 32)) == (255, 0, 0)
    assert prepared.mime == "image/png"  # one colour: lossless, and not animated


def test_a_webp_is_read():
    prepared = prepare_image("pic.webp", encode(gradient(1200, 900), "WEBP"), "low")
    assert (prepared.width, prepared.height, prepared.mime) == (512, 384, "image/jpeg")


def test_exif_rotation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    data = encode(gradient(800, 400), "JPEG", exif=exif)
    prepared = prepare_image("phone.jpg", data, "low")
    assert (prepared.width, prepared.height) == (256, 512)


def test_sixteen_bit_greys_keep_their_shades():
    ramp = Image.linear_gradient("L").resize((300, 200)).convert("I")
    data = encode(ramp.point(lambda value: value * 256).convert("I;16"), "PNG")
    out = decoded(prepare_image("scan.png", data, "low")).convert("L")
    assert out.getpixel((0, 0)) == 0
    assert 120 <= out.getpixel((0, 100)) <= 136  # mid-grey, not clipped to white


def test_a_bomb_header_over_pillows_limit_is_refused_unread():
    # 100,000 x 100,000 = 10 gigapixels: Pillow itself refuses it while opening.
    skipped = prepare_image("bomb.png", png_header(100_000, 100_000))
    assert isinstance(skipped, Skipped) and skipped.kind is SkipKind.TOO_LARGE
    assert describe_skipped(skipped) == ("Skipped `bomb.png`: too large (more than 50 megapixels).")


def test_a_header_over_our_pixel_cap_is_refused_before_decoding():
    # 60 MP: under Pillow's limit, over ours. The file has no pixel data, so anything
    # that tried to decode it would call it unreadable instead.
    skipped = prepare_image("huge.png", png_header(10_000, 6_000))
    assert skipped == Skipped(
        "huge.png", SkipKind.TOO_LARGE, "10000x6000 pixels; the limit is 50 megapixels"
    )


def test_a_header_in_pillows_warning_band_is_refused():
    # 100 MP is where Pillow warns rather than refuses; our header check refuses it.
    with pytest.warns(Image.DecompressionBombWarning):
        skipped = prepare_image("big.png", png_header(10_000, 10_000))
    assert skipped.kind is SkipKind.TOO_LARGE


def test_the_pixel_cap_can_be_lowered():
    data = encode(gradient(400, 300), "PNG")
    assert prepare_image("a.png", data, max_pixels=100_000).kind is SkipKind.TOO_LARGE
    assert isinstance(prepare_image("a.png", data, max_pixels=120_000), PreparedImage)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"definitely not an image",
        encode(gradient(64, 64), "JPEG")[:200],  # truncated
        encode(gradient(64, 64), "TIFF"),  # a real image, but a format we do not decode
        encode(gradient(64, 64), "BMP"),
    ],
)
def test_junk_and_other_formats_are_unreadable(data):
    skipped = prepare_image("x.png", data)
    assert skipped == Skipped("x.png", SkipKind.UNREADABLE, "not a readable PNG, JPEG, WebP or GIF")


SMALL_PNG = encode(gradient(20, 20), "PNG")
SIGNATURES = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"RIFF\x00\x00\x00\x00WEBPVP8 "]


@given(
    st.one_of(
        st.binary(max_size=2000),
        st.tuples(st.sampled_from(SIGNATURES), st.binary(max_size=2000)).map(b"".join),
        st.tuples(st.integers(0, 400), st.binary(min_size=1, max_size=6)).map(
            lambda t: SMALL_PNG[: t[0]] + t[1] + SMALL_PNG[t[0] + len(t[1]) :]
        ),
    ),
    st.sampled_from(["low", "high", "auto"]),
)
@settings(max_examples=300, deadline=None)
def test_prepare_image_never_raises_on_bytes(data, detail):
    result = prepare_image("x", data, detail)
    assert isinstance(result, PreparedImage | Skipped)


def test_a_bad_detail_is_a_programming_error():
    with pytest.raises(ValueError, match="detail"):
        prepare_image("a.png", SMALL_PNG, "original")


@given(st.integers(1, 20_000), st.integers(1, 20_000))
def test_fitted_sizes_follow_the_rule(width, height):
    low = fitted_size(width, height, "low")
    assert max(low) <= 512 and low[0] <= width and low[1] <= height
    high = fitted_size(width, height, "high")
    assert max(high) <= 2048 and min(high) <= 768
    assert high[0] <= width and high[1] <= height
    if max(width, height) <= 2048 and min(width, height) <= 768:
        assert high == (width, height)  # nothing to shrink


# --- Image tokens ----------------------------------------------------------------------
# OpenAI's vision guide, "Calculating costs". The tile examples (765, 1105, 85) are the
# gpt-4o worked examples of the guide's earlier edition; the patch examples (1024 and
# 1452 patches, the latter resized to 1056 x 1408) are in the current one.


@pytest.mark.parametrize(
    ("width", "height", "detail", "tokens"),
    [
        (1024, 1024, "high", 765),  # -> 768 x 768: 4 tiles * 170 + 85
        (2048, 4096, "high", 1105),  # -> 1024 x 2048 -> 768 x 1536: 6 tiles
        (4096, 8192, "low", 85),
        (1024, 1024, "auto", 765),
    ],
)
def test_tile_rule_matches_the_guides_worked_examples(width, height, detail, tokens):
    assert image_tokens(width, height, detail, "gpt-4o") == tokens


def test_patch_rule_matches_the_guides_worked_examples():
    assert patch_count(1024, 1024) == 1024  # under the 1,536 budget: no resize
    assert patch_count(1800, 2400) == 33 * 44 == 1452  # resized to 1056 x 1408


@pytest.mark.parametrize(
    ("model", "tokens"),
    [
        ("gpt-4o", 85 + 170 * 4),
        ("gpt-4o-2024-08-06", 85 + 170 * 4),
        ("openai/gpt-4.1", 85 + 170 * 4),
        ("gpt-4.5-preview", 85 + 170 * 4),
        ("gpt-4o-mini", 2833 + 5667 * 4),
        ("gpt-5", 70 + 140 * 4),
        ("gpt-5-chat-latest", 70 + 140 * 4),
        ("o1", 75 + 150 * 4),
        ("o3-2025-04-16", 75 + 150 * 4),
        ("computer-use-preview", 65 + 129 * 4),
        ("gpt-4.1-mini", 1659),  # 1024 patches * 1.62 = 1658.88, rounded up
        ("GPT-4.1-NANO-2025-04-14", 2520),  # * 2.46 = 2519.04
        ("gpt-5-mini", 1659),
        ("gpt-5-nano", 2520),
        ("o4-mini", 1762),  # * 1.72 = 1761.28
        ("gpt-5.2", 1229),  # no published multiplier: 1.2, as measured on the forum
        ("gpt-5.4-mini", 1659),
    ],
)
def test_image_tokens_per_model_family(model, tokens):
    assert image_tokens(1024, 1024, "high", model) == tokens


def test_low_detail_is_the_base_for_tile_models_and_the_size_for_patch_models():
    assert image_tokens(512, 384, "low", "gpt-5") == 70
    assert image_tokens(512, 384, "low", "o1") == 75
    assert image_tokens(512, 384, "low", "gpt-5-mini") == 16 * 12 * 162 // 100 + 1  # 311.04
    assert image_tokens(4000, 3000, "low", "gpt-5-mini") == image_tokens(
        4000, 3000, "high", "gpt-5-mini"
    )


def test_patch_models_with_a_2500_budget():
    assert image_tokens(1600, 1600, "high", "gpt-5.4") == 3000  # 50 x 50 patches * 1.2
    assert image_tokens(4000, 4000, "high", "gpt-5.4") == 3000


@given(st.integers(1, 10_000), st.integers(1, 10_000), st.sampled_from(["low", "high", "auto"]))
def test_unknown_models_never_cost_less_than_the_published_rules(width, height, detail):
    unknown = image_tokens(width, height, detail, "some-local-model")
    for model in ("gpt-4o", "gpt-4.1-mini", "gpt-4.1-nano", "o4-mini", "gpt-5.4", "gpt-5"):
        assert unknown >= image_tokens(width, height, detail, model)


@given(st.integers(1, 10_000), st.integers(1, 10_000))
def test_tile_and_patch_counts_stay_in_their_bounds(width, height):
    assert 1 <= tile_count(width, height) <= 8  # at most 768 x 2048: 2 x 4 tiles
    assert 1 <= patch_count(width, height) <= 1536
    assert 1 <= patch_count(width, height, budget=2500) <= 2500


def test_image_tokens_rejects_nonsense():
    with pytest.raises(ValueError):
        image_tokens(0, 10, "high", "gpt-4o")
    with pytest.raises(ValueError):
        image_tokens(10, 10, "medium", "gpt-4o")


# --- Which models take images ----------------------------------------------------------


@pytest.mark.parametrize(
    "model",
    [
        "gpt-4o", "GPT-4o-2024-11-20", "gpt-4o-mini", "chatgpt-4o-latest", "gpt-4.1",
        "gpt-4.1-nano", "gpt-4.5-preview", "gpt-5", "gpt-5-mini", "gpt-5.4-mini", "o1",
        "o1-2024-12-17", "o3", "o4-mini", "openai/gpt-4o", "llava", "llava:13b",
        "bakllava", "llama3.2-vision:11b", "gemma3:12b", "qwen2.5-vl:7b",
        "Qwen/Qwen2.5-VL-7B-Instruct", "qwen-vl-max", "pixtral-12b", "minicpm-v",
        "moondream:latest", "granite3.2-vision",
    ],
)  # fmt: skip
def test_models_that_take_images(model):
    assert model_accepts_images(model)


@pytest.mark.parametrize(
    "model",
    [
        "gpt-3.5-turbo", "gpt-4", "gpt-4-0613", "o1-mini", "o1-preview", "o3-mini",
        "gpt-4o-audio-preview", "gpt-4o-mini-realtime-preview", "llama3.1:8b", "mistral",
        "qwen2.5:7b", "gemma3:1b", "gemma2", "phi3", "deepseek-r1", "",
    ],
)  # fmt: skip
def test_models_that_do_not(model):
    assert not model_accepts_images(model)


# --- Notes for the user ----------------------------------------------------------------


def test_skip_notes_say_which_file_and_why():
    lines = [
        describe_skipped(too_large("video.mp4", 25 * 1024 * 1024, 8 * 1024 * 1024)),
        describe_skipped(not_read("code.zip", classify("code.zip", "application/zip"))),
        describe_skipped(download_failed("a.png", "HTTP 404")),
        describe_skipped(download_failed("b.png")),
        describe_skipped(no_vision("cat.jpg")),
        describe_skipped(Skipped("x.pdf", SkipKind.UNREADABLE)),
    ]
    assert lines == [
        "Skipped `video.mp4`: too large (25.0 MB; the limit is 8.0 MB).",
        "Skipped `code.zip`: archives are not opened.",
        "Skipped `a.png`: the download failed (HTTP 404).",
        "Skipped `b.png`: the download failed.",
        "Skipped `cat.jpg`: this model does not take images.",
        "Skipped `x.pdf`: could not be read.",
    ]


def test_names_in_notes_cannot_break_out_of_their_backticks():
    name = "evil`name\n@everyone " + "x" * 200
    line = describe_skipped(download_failed(name))
    assert line.count("`") == 2 and "\n" not in line
    assert len(display_name(name)) == 100


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1536, "1.5 KB"),
        (10 * 1024**2, "10.0 MB"),
        (3 * 1024**3, "3.0 GB"),
    ],
)
def test_sizes_read_like_discords(size, text):
    assert attachments.format_size(size) == text


def test_the_file_readers_are_imported_only_when_a_file_needs_them():
    # ~12 MB of a bot process that may never see an attachment (issue 16).
    readers = "{'PIL', 'pypdf', 'charset_normalizer'}"
    code = f"import sys, bot; print(sorted({readers} & set(sys.modules)))"
    root = Path(__file__).resolve().parents[2]
    ran = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert ran.stdout.strip() == "[]"
