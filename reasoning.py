"""Removing a model's visible reasoning (`<think>...</think>`) from its answer.

Models served locally (DeepSeek-R1, Qwen3 on Ollama or vLLM) may write their thinking
into the answer between these tags. It is neither posted nor remembered. The filter
works on a stream, where a tag can arrive split across chunks.
"""

from __future__ import annotations

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"


class ReasoningFilter:
    """Feed an answer in pieces; get back only the text outside `<think>` blocks.

    `feed` holds back a possible partial tag at the end of what it has seen, so the
    concatenated output of `feed` calls and `finish` is the same however the text was
    cut into pieces. An unclosed block hides everything after it.
    """

    def __init__(self) -> None:
        self._held = ""  # text not yet judged: it may end in part of a tag
        self._thinking = False

    def feed(self, piece: str) -> str:
        """Take the next piece of the answer; return the newly visible text."""
        self._held += piece
        visible = []
        while True:
            tag = CLOSE_TAG if self._thinking else OPEN_TAG
            at = self._held.find(tag)
            if at == -1:
                break
            if not self._thinking:
                visible.append(self._held[:at])
            self._held = self._held[at + len(tag) :]
            self._thinking = not self._thinking
        # Keep back the longest end of the text that could start the next tag.
        tag = CLOSE_TAG if self._thinking else OPEN_TAG
        keep = next(
            (n for n in range(min(len(tag) - 1, len(self._held)), 0, -1)
             if tag.startswith(self._held[-n:])),
            0,
        )  # fmt: skip
        cut = len(self._held) - keep
        ready, self._held = self._held[:cut], self._held[cut:]
        if not self._thinking:
            visible.append(ready)
        return "".join(visible)

    def finish(self) -> str:
        """The end of the answer: release held-back text that turned out not to be a tag."""
        held, self._held = self._held, ""
        return "" if self._thinking else held


def strip_reasoning(text: str) -> str:
    """`text` without its `<think>...</think>` blocks."""
    reasoning = ReasoningFilter()
    return reasoning.feed(text) + reasoning.finish()
