"""Which models take images, by name."""

from __future__ import annotations

import pytest

from text.attachments.vision import model_accepts_images


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
