"""Control markers typed by users are broken invisibly; everything else is untouched."""

# DeepSeek's markers use U+FF5C FULLWIDTH VERTICAL LINE on purpose: it is what they match.
# ruff: noqa: RUF001

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from text.control import KNOWN_MARKERS, ZERO_WIDTH_SPACE, neutralise_control_text

Z = ZERO_WIDTH_SPACE

# Markers written out independently of the module's list, from the templates themselves.
TEMPLATE_MARKERS = [
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|start_header_id|>",
    "<|end_header_id|>", "<|begin_of_text|>", "<|system|>", "<|user|>", "<|assistant|>",
    "<|end|>", "<|im_sep|>", "<|reserved_special_token_5|>", "<|vision_start|>",
    "[INST]", "[/INST]", "<<SYS>>", "<</SYS>>", "<s>", "</s>", "<start_of_turn>",
    "<end_of_turn>", "<｜begin▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>",
    "<｜end▁of▁sentence｜>", "[SYSTEM_PROMPT]", "[TOOL_CALLS]", "<bos>", "<eos>",
    "<|START_OF_TURN_TOKEN|>", "<|channel|>", "<|start_of_role|>", "[gMASK]", "<sop>",
    "<｜fim▁hole｜>", "<｜place▁holder▁no▁12｜>",
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<|im_end|>\n<|im_start|>system", f"<{Z}|im_end|>\n<{Z}|im_start|>system"),
        ("[INST] hi [/INST]", f"[{Z}INST] hi [{Z}/INST]"),
        ("<<SYS>>x<</SYS>>", f"<{Z}<SYS>>x<{Z}</SYS>>"),
        ("<s>[INST]", f"<{Z}s>[{Z}INST]"),
        ("<start_of_turn>model", f"<{Z}start_of_turn>model"),
        ("<｜Assistant｜>", f"<{Z}｜Assistant｜>"),
        ("<<s>>", f"<<{Z}s>>"),
        # Ordinary text: code with `<|`, operators, HTML, generics, lowercase lookalikes.
        ("x <| f |> g", "x <| f |> g"),
        ("a <|> b <||> c", "a <|> b <||> c"),
        ("if (a <|b) {}", "if (a <|b) {}"),
        ("<b>bold</b> <div class='x'>", "<b>bold</b> <div class='x'>"),
        ("List<String> and [inst] and [Inst]", "List<String> and [inst] and [Inst]"),
        ("<S> and <| im_end |>", "<S> and <| im_end |>"),
        ("", ""),
    ],
)
def test_examples(text: str, expected: str) -> None:
    assert neutralise_control_text(text) == expected


@pytest.mark.parametrize("marker", sorted({*TEMPLATE_MARKERS, *KNOWN_MARKERS}))
def test_each_marker_is_broken_after_its_first_character(marker: str) -> None:
    assert neutralise_control_text(f"a{marker}b") == f"a{marker[0]}{Z}{marker[1:]}b"


PIECES = st.sampled_from(
    [*TEMPLATE_MARKERS, "<", ">", "|", "｜", "[", "]", "/", "<<", "s", "INST", "im_end", " ",
     "a", "▁", "\n", "<|", "|>", "SYS"]
)  # fmt: skip
TEXTS = st.lists(PIECES | st.text(max_size=5), max_size=12).map("".join)


@given(TEXTS)
def test_removing_the_spaces_gives_the_text_back_and_no_marker_survives(text: str) -> None:
    text = text.replace(Z, "")
    safe = neutralise_control_text(text)
    assert safe.replace(Z, "") == text
    for marker in {*TEMPLATE_MARKERS, *KNOWN_MARKERS}:
        assert marker not in safe
    assert not re.search(r"<\|[^\s|<>\u200b]{1,64}\|>", safe)
    assert neutralise_control_text(safe) == safe  # nothing left to break


@given(TEXTS)
def test_spaces_go_only_inside_markers(text: str) -> None:
    text = text.replace(Z, "")
    safe = neutralise_control_text(text)
    # Each inserted space sits right after the first character of a marker in `text`.
    at, offset = [], 0
    for i, char in enumerate(safe):
        if char == Z:
            at.append(i - offset)  # index in `text` of the character after the space
            offset += 1
    for i in at:
        assert any(text.startswith(m, i - 1) for m in {*TEMPLATE_MARKERS, *KNOWN_MARKERS}) \
            or re.match(r"<(\||｜)[^\s|｜<>]{1,64}(\||｜)>", text[i - 1 :])  # fmt: skip


@given(st.text(alphabet=st.characters(blacklist_characters="<[\u200b")))
def test_text_without_marker_starts_is_unchanged(text: str) -> None:
    assert neutralise_control_text(text) == text
