"""Real files made in memory for the attachment tests: images, PDFs, and a check of a
text part's layout."""

from __future__ import annotations

import base64
import io
import re
import struct
import zlib

import pypdf
from PIL import Image

from text.attachments.images import PreparedImage
from text.attachments.parts import FilePart
from text.attachments.skipped import display_name


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
