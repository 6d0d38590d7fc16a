"""OpenAI's image token rules per model family."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from text.attachments.image_cost import image_tokens, patch_count, tile_count

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
