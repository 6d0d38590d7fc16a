"""Removing a model's visible reasoning from its answer.

Models served locally (DeepSeek-R1, Qwen3 on Ollama, vLLM or llama.cpp) may write their
thinking into the answer's text. It is neither posted nor remembered. Two shapes occur:

- a block, `<think>...</think>`, anywhere in the answer;
- a lone `</think>` with no `<think>` before it. Distilled reasoning models are served
  with chat templates that open the block inside the prompt, so the answer starts in the
  middle of the reasoning and only its closer shows: everything before it is reasoning.

The rule, which `strip_reasoning` applies to a whole text and `ReasoningFilter` to a
stream: if the first tag in the text is `</think>`, everything up to and including it is
reasoning. After that (or if the first tag is `<think>`), each `<think>...</think>` block
is reasoning; a block that is never closed hides everything after its opener. A
`</think>` that is not the first tag and closes no block is ordinary text.

Reasoning a server sends in separate fields is never read as text (reading.py).
"""

from __future__ import annotations

from dataclasses import dataclass

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"


def strip_reasoning(text: str) -> str:
    """`text` without its reasoning, by the rule in this module's docstring."""
    # The two tags never overlap ("<think>" has no "/", "</think>" has no "<t"), so the
    # first occurrence of each decides which comes first.
    opener, closer = text.find(OPEN_TAG), text.find(CLOSE_TAG)
    if closer != -1 and (opener == -1 or closer < opener):
        text = text[closer + len(CLOSE_TAG) :]
    visible = []
    while (start := text.find(OPEN_TAG)) != -1:
        visible.append(text[:start])
        end = text.find(CLOSE_TAG, start + len(OPEN_TAG))
        if end == -1:
            return "".join(visible)
        text = text[end + len(CLOSE_TAG) :]
    visible.append(text)
    return "".join(visible)


@dataclass(frozen=True)
class Release:
    """What one `ReasoningFilter.feed` or `finish` call lets the caller show.

    `retract`: everything this filter released before (in earlier calls) turned out to
    be reasoning; the caller withdraws it, then shows `visible`. `visible`: new text to
    append to what is shown.
    """

    visible: str = ""
    retract: bool = False


_START, _OUTSIDE, _INSIDE = "start", "outside", "inside"


class ReasoningFilter:
    """Feed an answer in pieces; get back only its text outside reasoning.

    Contract: applying every `Release` in order (on `retract`, drop what was shown so
    far; then append `visible`) gives `strip_reasoning(whole answer)`, however the answer
    was cut into pieces. A possible partial tag at the end of what has been seen is held
    back until the next piece decides it.

    Two modes, for the text before the first tag:

    - normal (`hold=False`): that text flows as it arrives. If the first tag then turns
      out to be a lone `</think>`, the `Release` that reports it has `retract=True`
      (at most once per filter, and never after anything else was hidden), so the
      caller can use hold mode for this model from then on.
    - hold (`hold=True`, for a model known to write a lone closer): that text is held
      back until the first tag. A `</think>` discards it; a `<think>` releases it; the end
      of the answer releases it all (there was no reasoning). Never retracts.

    One filter per answer; `feed` after `finish` is not supported.
    """

    def __init__(self, *, hold: bool = False) -> None:
        self.hold = hold
        self._state = _START
        self._tail = ""  # text not yet judged: it may end in part of a tag
        self._held: list[str] = []  # hold mode: judged text before the first tag
        self._released_before_tag = False  # normal mode: shown text that may be retracted
        self.lone_closer = False  # the first tag was a lone `</think>`

    def feed(self, piece: str) -> Release:
        """Take the next piece of the answer; return what the caller may show now."""
        text = self._tail + piece
        visible: list[str] = []
        retract = False
        while True:
            if self._state == _START:
                opener, closer = text.find(OPEN_TAG), text.find(CLOSE_TAG)
                if closer != -1 and (opener == -1 or closer < opener):
                    retract = self._released_before_tag
                    self.lone_closer = True
                    self._held.clear()
                    text = text[closer + len(CLOSE_TAG) :]
                    self._state = _OUTSIDE
                elif opener != -1:
                    visible += [*self._held, text[:opener]]
                    self._held.clear()
                    text = text[opener + len(OPEN_TAG) :]
                    self._state = _INSIDE
                else:
                    break
            elif self._state == _OUTSIDE:
                if (opener := text.find(OPEN_TAG)) == -1:
                    break
                visible.append(text[:opener])
                text = text[opener + len(OPEN_TAG) :]
                self._state = _INSIDE
            else:
                if (closer := text.find(CLOSE_TAG)) == -1:
                    break
                text = text[closer + len(CLOSE_TAG) :]
                self._state = _OUTSIDE
        keep = _partial_tag_length(text, self._state)
        ready, self._tail = text[: len(text) - keep], text[len(text) - keep :]
        if self._state == _OUTSIDE:
            visible.append(ready)
        elif self._state == _START:
            if self.hold:
                self._held.append(ready)
            else:
                visible.append(ready)
                self._released_before_tag = self._released_before_tag or bool(ready)
        return Release("".join(visible), retract)

    def finish(self) -> Release:
        """The end of the answer: release what was held back and turned out visible."""
        tail, self._tail = self._tail, ""
        held, self._held = self._held, []
        if self._state == _INSIDE:  # an unclosed block hides the rest
            return Release()
        return Release("".join([*held, tail]) if self._state == _START else tail)


def _partial_tag_length(text: str, state: str) -> int:
    """Length of the longest end of `text` that could begin a tag that matters now."""
    tags = {_START: (OPEN_TAG, CLOSE_TAG), _OUTSIDE: (OPEN_TAG,), _INSIDE: (CLOSE_TAG,)}[state]
    longest = max(len(tag) for tag in tags) - 1
    for n in range(min(longest, len(text)), 0, -1):
        if any(tag.startswith(text[-n:]) for tag in tags):
            return n
    return 0
