"""Which models take images (`model_accepts_images`), judged by the model's name."""

from __future__ import annotations

import re

_OPENAI_VISION = re.compile(
    r"(chatgpt-4o|gpt-4o|gpt-4\.1|gpt-4\.5|gpt-4-turbo|gpt-4-vision|gpt-5|o1|o1-pro|o3|o3-pro"
    r"|o4-mini|computer-use-preview)($|[-.:@].*)"
)
_OPENAI_NO_VISION = re.compile(
    r"(o1-mini|o1-preview|o3-mini|gpt-4o-(mini-)?(audio|realtime|transcribe|tts|search)"
    r"|gpt-4o-mini-(audio|realtime|transcribe|tts|search))($|[-.:@].*)"
)
# Text-only members of otherwise multimodal local families.
_LOCAL_NO_VISION = re.compile(r"gemma-?3[-:]?1b|gemma-?3n")
_LOCAL_VISION = re.compile(
    r"llava|bakllava|vision|-vl\b|qwen-?vl|qwen2\.5vl|claude-(3|opus|sonnet|haiku)"
    r"|gemini-(1\.5|[2-9])"
    r"|gemma-?3|gemma-?4|pixtral|minicpm-v|moondream|internvl|cogvlm|idefics|smolvlm"
    r"|paligemma|phi-?3\.5-vision|phi-?4-multimodal|molmo|mistral-small-3\.[12]|llama-?4"
    r"|granite3\.2-vision|granite-vision|deepseek-vl|janus|kimi-vl|glm-4\.?\dv|ovis"
)


def model_accepts_images(model: str) -> bool:
    """Whether `model` is known to take image input (used when VISION=auto).

    Best effort, case-insensitive, on the name alone: OpenAI's gpt-4o*, gpt-4.1*,
    gpt-4.5*, gpt-5* (and later), o1 and o3 (not o1-mini / o3-mini), o4-mini, and
    local vision models by name (llava, bakllava, *vision*, *-vl, qwen-vl / qwen2.5-vl,
    gemma3 but not its 1b, pixtral, minicpm-v, moondream, internvl, llama4, and Claude 3+
    or Gemini 1.5+ behind a proxy, ...). A "provider/" prefix
    and ":tag" suffix (Ollama) are allowed. Unknown names are False: set VISION=on for
    a model this list misses.
    """
    name = model.strip().lower()
    base = name.rpartition("/")[2]
    if _OPENAI_NO_VISION.match(base):
        return False
    if _OPENAI_VISION.match(base):
        return True
    return _LOCAL_NO_VISION.search(name) is None and _LOCAL_VISION.search(name) is not None
