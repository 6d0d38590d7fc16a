"""Text files: decoding their bytes and reading them under a token cap. Every file is made
in the test."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.text.sample_files import body_of, encode, gradient
from text.attachments.decoding import decode_text, read_text_file
from text.attachments.parts import MIN_PART_TOKENS, FilePart, describe_shortened
from text.attachments.skipped import SkipKind, Skipped, describe_skipped
from text.tokens import TokenCounter

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
