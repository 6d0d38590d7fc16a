"""The notes that tell the user which file was left out and why."""

from __future__ import annotations

import pytest

from text.attachments.kinds import classify
from text.attachments.skipped import (
    SkipKind,
    Skipped,
    describe_skipped,
    display_name,
    download_failed,
    format_size,
    no_vision,
    not_read,
    too_large,
)


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
    assert format_size(size) == text
