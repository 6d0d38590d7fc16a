"""What an image costs in prompt tokens (`image_tokens`), by OpenAI's rules per model family."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

from text.attachments.images import Detail, fitted_size

# OpenAI, "Images and vision" guide, section "Calculating costs" (read 2026-11-30):
# - Tile-based models (GPT-4o, GPT-4.1, GPT-4o-mini, computer-use-preview, o-series except
#   o4-mini; and gpt-5 / gpt-5-chat-latest): detail "low" costs the base tokens; "high"
#   fits the image in 2048 x 2048, scales its short side to 768, and adds a tile cost per
#   512-px square. Base/tile: gpt-5 70/140; 4o, 4.1, 4.5 85/170; 4o-mini 2833/5667;
#   o1, o1-pro, o3 75/150; computer-use-preview 65/129.
# - Patch-based models: 32-px patches up to a patch budget (shrinking the image to fit),
#   times a per-model multiplier: gpt-5-mini 1.62, gpt-5-nano 2.46, gpt-4.1-mini 1.62,
#   gpt-4.1-nano 2.46, o4-mini 1.72. Budget 1,536 patches / 2048 px for those and for
#   gpt-5.2, gpt-5.3-codex and the codex-mini models; gpt-5.4 and later allow 2,500
#   patches at "high". The guide gives no multiplier for gpt-5.1+ models; developers on
#   OpenAI's forum measured 1.2 (March 2026), which we use.
# The guide does not say how "low" changes a patch-based count; we count the size given
# (`prepare_image` sends at most 512 x 512 at "low"), which cannot undercount.


@dataclass(frozen=True, slots=True)
class TileRule:
    """A tile-based price: `base` tokens, plus `tile` tokens per 512-px tile at "high"."""

    base: int
    tile: int


@dataclass(frozen=True, slots=True)
class PatchRule:
    """A patch-based price: 32-px patches (at most `budget`, the image first fitted within
    `max_side`) times `multiplier`."""

    multiplier: Fraction
    budget: int = 1536
    max_side: int = 2048


_GPT_5_PLUS = re.compile(r"gpt-5\.(\d+)")

# Longest prefix first; names are matched lower-case with any "provider/" removed.
_RULES: tuple[tuple[str, TileRule | PatchRule], ...] = (
    ("gpt-4o-mini", TileRule(2833, 5667)),
    ("gpt-4.1-mini", PatchRule(Fraction("1.62"))),
    ("gpt-4.1-nano", PatchRule(Fraction("2.46"))),
    ("gpt-5-mini", PatchRule(Fraction("1.62"))),
    ("gpt-5-nano", PatchRule(Fraction("2.46"))),
    ("codex-mini", PatchRule(Fraction("1.72"))),
    ("o4-mini", PatchRule(Fraction("1.72"))),
    ("computer-use-preview", TileRule(65, 129)),
    ("chatgpt-4o", TileRule(85, 170)),
    ("gpt-4o", TileRule(85, 170)),
    ("gpt-4.1", TileRule(85, 170)),
    ("gpt-4.5", TileRule(85, 170)),
    ("gpt-4-turbo", TileRule(85, 170)),
    ("gpt-5", TileRule(70, 140)),
    ("o1-pro", TileRule(75, 150)),
    ("o1", TileRule(75, 150)),
    ("o3", TileRule(75, 150)),
)

# Unknown models (local vision models, future names): the most any of the published
# rules charges for an image of that size, gpt-4o-mini's price-driven numbers aside, and
# "low" treated as "high" since other servers may ignore `detail`.
_DEFAULT_RULES: tuple[TileRule | PatchRule, ...] = (
    TileRule(85, 170),
    PatchRule(Fraction("2.46")),
    PatchRule(Fraction("1.2"), budget=2500),
)


def image_rule(model: str) -> TileRule | PatchRule | None:
    """The published token rule for `model` (case-insensitive, "provider/" prefix and
    date suffix allowed), or None when OpenAI publishes none for it."""
    name = model.strip().lower().rpartition("/")[2]
    if name.startswith("gpt-5") and "codex-mini" in name:
        return PatchRule(Fraction("1.2"))  # listed with a 1,536-patch budget
    versioned = _GPT_5_PLUS.match(name)
    if versioned:
        minor = int(versioned.group(1))
        # No multiplier is published for gpt-5.2 and later. A mini or nano is counted
        # like gpt-5-mini or gpt-5-nano, the published figures of its size, so the
        # prompt is never under-counted; the others take the forum's measured 1.2.
        multiplier = Fraction("1.2")
        if "-mini" in name:
            multiplier = Fraction("1.62")
        elif "-nano" in name:
            multiplier = Fraction("2.46")
        if minor >= 4:
            return PatchRule(multiplier, budget=2500)
        if minor >= 2:
            return PatchRule(multiplier)
        return None  # gpt-5.1: not in the guide
    for prefix, rule in _RULES:
        if name == prefix or name.startswith(prefix + "-"):
            return rule
    return None


def tile_count(width: int, height: int) -> int:
    """512-px tiles of a "high" image: fit in 2048 x 2048, short side scaled to 768
    (down only: smaller images are not enlarged), then whole tiles to cover it."""
    w, h = fitted_size(width, height, "high")
    return math.ceil(w / 512) * math.ceil(h / 512)


def patch_count(width: int, height: int, budget: int = 1536, max_side: int = 2048) -> int:
    """32-px patches of an image after OpenAI's patch-budget shrink (vision guide steps
    A-C): first fit within `max_side`, then if the patches exceed `budget`, shrink by
    sqrt(32^2 * budget / (w * h)), adjusted so whole patches fit, and count again."""
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, not {width}x{height}")
    if max(width, height) > max_side:
        scale = max_side / max(width, height)
        width, height = max(1, math.floor(width * scale)), max(1, math.floor(height * scale))
    patches = math.ceil(width / 32) * math.ceil(height / 32)
    if patches <= budget:
        return patches
    shrink = math.sqrt(32 * 32 * budget / (width * height))
    fits_w, fits_h = width * shrink / 32, height * shrink / 32
    adjusted = shrink * min(
        max(math.floor(fits_w), 1) / fits_w, max(math.floor(fits_h), 1) / fits_h
    )
    # The tiny epsilon keeps 1055.9999 from flooring to 1055 when the maths says 1056.
    resized_w = max(1, math.floor(width * adjusted + 1e-6))
    resized_h = max(1, math.floor(height * adjusted + 1e-6))
    return min(budget, math.ceil(resized_w / 32) * math.ceil(resized_h / 32))


def _rule_tokens(rule: TileRule | PatchRule, width: int, height: int, detail: Detail) -> int:
    if isinstance(rule, TileRule):
        if detail == "low":
            return rule.base
        return rule.base + rule.tile * tile_count(width, height)
    patches = patch_count(width, height, rule.budget, rule.max_side)
    return math.ceil(patches * rule.multiplier)  # round up: never undercount


def image_tokens(width: int, height: int, detail: Detail, model: str) -> int:
    """Prompt tokens one image of `width` x `height` pixels costs with `model`.

    Follows OpenAI's vision guide ("Calculating costs"; see the notes at the top of
    this module): tile-based or patch-based by model family. "auto" is counted as "high"
    (the model may choose it). Models with no published rule get the highest count of
    the 4o tile rule and the 1,536-patch x 2.46 and 2,500-patch x 1.2 patch rules, at
    "high". Raises ValueError for a non-positive size or an unknown detail.
    """
    if detail not in ("low", "high", "auto"):
        raise ValueError(f"detail must be 'low', 'high' or 'auto', not {detail!r}")
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, not {width}x{height}")
    rule = image_rule(model)
    if rule is not None:
        return _rule_tokens(rule, width, height, detail)
    return max(_rule_tokens(r, width, height, "high") for r in _DEFAULT_RULES)
