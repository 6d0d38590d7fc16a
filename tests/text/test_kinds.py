"""Classification: what the bot does with a file, from its name and content type."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from text.attachments.kinds import Kind, classify


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
