"""Keeping text typed by chat users from acting as a chat template's control tokens.

Local servers render the conversation through the model's chat template into one
prompt string and tokenize it with special-token parsing on: llama-cpp-python's server
reads a `<|im_end|>` typed by a user as the real control token (/work/shared/FACTS.md).
A user who types `<|im_end|>` or `[/INST]` can so end their own turn and write the
system's or the assistant's. Breaking each
marker with an invisible U+200B ZERO WIDTH SPACE after its first character keeps it from
matching the special token while it reads the same on Discord.
"""

# DeepSeek's markers use U+FF5C FULLWIDTH VERTICAL LINE on purpose: it is what they match.
# ruff: noqa: RUF001, RUF002, RUF003

from __future__ import annotations

import re

ZERO_WIDTH_SPACE = "\u200b"

# Exact markers from common chat templates and tokenizers (model cards' templates and
# tokenizer_config.json files). Forms written `<|...|>` or DeepSeek's `<｜...｜>` (with
# U+FF5C FULLWIDTH VERTICAL LINE) are caught by the patterns below whatever their name.
KNOWN_MARKERS: tuple[str, ...] = (
    # ChatML (Qwen, Yi, Phi-4 adds <|im_sep|>), GPT-2-style end of text.
    "<|im_start|>", "<|im_end|>", "<|im_sep|>", "<|endoftext|>",
    # Llama 3 and 4.
    "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
    "<|eot_id|>", "<|eom_id|>", "<|python_tag|>", "<|header_start|>", "<|header_end|>",
    "<|eot|>",
    # Phi-3, Zephyr, ChatGLM.
    "<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|observation|>",
    # Command R, gpt-oss (harmony), Granite.
    "<|START_OF_TURN_TOKEN|>", "<|END_OF_TURN_TOKEN|>", "<|USER_TOKEN|>",
    "<|CHATBOT_TOKEN|>", "<|SYSTEM_TOKEN|>", "<|start|>", "<|message|>", "<|channel|>",
    "<|return|>", "<|call|>", "<|constrain|>", "<|start_of_role|>", "<|end_of_role|>",
    # DeepSeek V3 / R1 (fullwidth bars, U+2581 for spaces).
    "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>",
    "<｜tool▁calls▁begin｜>", "<｜tool▁call▁end｜>",
    # Llama 2 and Mistral; SentencePiece's sentence markers.
    "[INST]", "[/INST]", "<<SYS>>", "<</SYS>>", "<s>", "</s>", "<unk>",
    # Mistral v3+ (Tekken) control tokens.
    "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]",
    "[TOOL_CALLS]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "[TOOL_CONTENT]", "[THINK]",
    "[/THINK]", "[IMG]", "[IMG_BREAK]", "[IMG_END]", "[PREFIX]", "[MIDDLE]", "[SUFFIX]",
    # Gemma.
    "<start_of_turn>", "<end_of_turn>", "<bos>", "<eos>", "<pad>", "<mask>",
    "<start_of_image>", "<end_of_image>",
    # ChatGLM; Command R's sentence markers.
    "[gMASK]", "<sop>", "<eop>", "<BOS_TOKEN>", "<EOS_TOKEN>",
    # Tags that Qwen3 and DeepSeek-R1 tokenizers define as added tokens, and
    # StarCoder-style fill-in-the-middle tokens.
    "<think>", "</think>", "<tool_call>", "</tool_call>", "<tool_response>",
    "</tool_response>", "<fim_prefix>", "<fim_middle>", "<fim_suffix>",
)  # fmt: skip

_NAMED_FORMS = (
    # `<|name|>`: ChatML, Llama 3, Phi, Command R, gpt-oss, Granite, Qwen's
    # <|vision_start|>, Llama 3's <|reserved_special_token_N|>... A name has no spaces
    # or bars, so code such as `a <| b |> c` or `<||>` is left alone.
    r"<\|[^\s|<>\u200b]{1,64}\|>",
    # DeepSeek's `<｜name｜>`.
    r"<\uff5c[^\s\uff5c<>\u200b]{1,64}\uff5c>",
)
_MARKER = re.compile(
    "|".join([*_NAMED_FORMS, *(re.escape(m) for m in sorted(KNOWN_MARKERS, key=len, reverse=True))])
)


def neutralise_control_text(text: str) -> str:
    """`text` with a U+200B inserted after the first character of each control marker.

    Markers are `KNOWN_MARKERS` and any `<|name|>` or `<｜name｜>` form, matched
    case-sensitively as tokenizers match them. Nothing else changes, so removing every
    U+200B from the result gives `text` back when `text` had none.
    """
    return _MARKER.sub(lambda m: m[0][0] + ZERO_WIDTH_SPACE + m[0][1:], text)
