"""PDFs: their text layer page by page under a token cap, and broken or locked ones."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.text.sample_files import body_of, encrypted, make_pdf
from text.attachments.parts import MIN_PART_TOKENS, FilePart, describe_shortened
from text.attachments.pdf import read_pdf
from text.attachments.skipped import SkipKind, Skipped
from text.tokens import TokenCounter


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
