"""Split a model's answer into Discord messages, whole or while it streams in.

The rules, in short:

* The answer is stripped of leading and trailing whitespace.
* A message holds at most ``limit`` characters (Discord counts code points, as ``len`` does).
* Text that does not fit is cut at the last paragraph break in the window, else the last line
  break, else the last whitespace, else hard at the window size. The whitespace at a cut is
  dropped; the indentation of the line after it is kept (it may be code).
* A cut inside a ``` code block closes the block at the end of the message and reopens it, with
  its language tag, at the start of the next one, so each message renders on its own.

`ReplySplitter` does the work incrementally. `split_for_discord` is the same splitter fed the
whole answer at once, so a streamed answer ends as exactly the messages a non-streamed one gets.
"""

import re

DISCORD_MESSAGE_LIMIT = 2000

_FENCE = "```"
_CLOSE = "\n```"
# A longer language tag is dropped rather than reopened, so the prefix cannot eat the budget.
_MAX_TAG = 32
# The smallest limit leaving room for the longest reopen prefix, a closing fence and one character.
_MIN_LIMIT = len(_FENCE) + _MAX_TAG + len("\n") + len(_CLOSE) + 1
# Room a preview leaves for the caller's "still writing" marker.
_MARKER_ROOM = 2
_LAST_SPACE = re.compile(r"\s(?=\S*\Z)")  # the last whitespace character


def split_for_discord(text: str, limit: int = DISCORD_MESSAGE_LIMIT) -> list[str]:
    """Split a whole answer into messages of 1..limit characters, none whitespace-only.

    Returns [] iff the answer is whitespace-only. Every message has balanced code fences.
    Raises ValueError if limit is too small to hold a reopened code block (below 41).
    """
    splitter = ReplySplitter(limit)
    return splitter.feed(text) + splitter.finish()


class ReplySplitter:
    """Split a streamed answer into Discord messages as its text arrives.

    Feed the deltas in order, then call finish() once. The messages returned by all feed()
    calls followed by finish() are exactly split_for_discord(answer), however the answer was
    cut into deltas.
    """

    def __init__(self, limit: int = DISCORD_MESSAGE_LIMIT) -> None:
        if limit < _MIN_LIMIT:
            raise ValueError(f"limit must be at least {_MIN_LIMIT}, got {limit}")
        self._limit = limit
        # Answer text not in a final message yet. It always starts a line of the next message:
        # it begins the answer or follows a cut.
        self._pending = ""
        # The language tag of the code block open where pending starts; None outside a block.
        self._tag: str | None = None
        self._started = False  # a non-whitespace character of the answer has arrived
        self._settling = False  # dropping the whitespace after a cut, see _settle_head

    def feed(self, delta: str) -> list[str]:
        """Append delta to the answer; return the messages that have become final.

        A final message never changes, whatever text comes later: one is final only once the
        pending text, without trailing whitespace, is longer than any message could hold, so
        the non-streamed split cuts it too, at the same place.
        """
        if not self._started:
            delta = delta.lstrip()  # the answer's leading whitespace, dropped as it arrives
            self._started = bool(delta)
        self._pending += delta
        self._settle_head()
        messages = []
        while len(self._pending.rstrip()) > self._limit - len(self._reopen_prefix()):
            messages.append(self._cut())
        return messages

    def preview(self) -> str:
        """What the unfinished message should show right now.

        The reopen prefix and the pending text, with an open code block closed so it renders,
        truncated to at most limit - 2 characters so the caller can append a 2-character
        "still writing" marker. "" while there is no non-whitespace pending text.
        """
        body = self._pending[: self._budget() - _MARKER_ROOM].rstrip()
        return self._enclose(body) if body else ""

    def finish(self) -> list[str]:
        """End the answer: return the remaining messages, the last one closing an open block.

        Call once, after the last feed().
        """
        self._pending = self._pending.rstrip()
        messages = []
        # Only here may the rest turn out to fit in one message: no more text can come.
        while len(self._enclose(self._pending)) > self._limit:
            messages.append(self._cut())
        if self._pending:
            messages.append(self._enclose(self._pending))
            self._pending = ""
        return messages

    def _reopen_prefix(self) -> str:
        return "" if self._tag is None else f"{_FENCE}{self._tag}\n"

    def _budget(self) -> int:
        """How much of pending the next message can hold.

        Room for a closing fence is always reserved, whether or not the cut ends up inside a
        block: that keeps the choice of cut independent of where it lands.
        """
        return self._limit - len(self._reopen_prefix()) - len(_CLOSE)

    def _enclose(self, body: str) -> str:
        """The message for body: reopen prefix, body, and a closing fence if a block is open."""
        close = _CLOSE if _fence_after(body, self._tag) is not None else ""
        return self._reopen_prefix() + body + close

    def _cut(self) -> str:
        """Finalise the next message from the head of pending; the rest stays pending.

        The cut looks only at pending[:budget + 1], all of which has arrived whenever a cut is
        due (pending then holds more than budget + 4 characters), so a streamed answer is cut
        exactly where the whole one is. The one code path for feed() and finish().
        """
        end, start = _find_cut(self._pending[: self._budget() + 1])
        body = self._pending[:end].rstrip()
        message = self._enclose(body)
        self._tag = _fence_after(body, self._tag)
        self._pending = self._pending[start:]
        self._settling = True
        self._settle_head()
        return message

    def _settle_head(self) -> None:
        """Drop the whitespace that the message after a cut must not start with.

        That is the newlines and whitespace-only lines after the cut, as they arrive, and,
        once the first non-whitespace character has arrived, an indentation at least as wide
        as the budget: a hard cut in it would make a whitespace-only message. Any narrower
        indentation is kept; it may be code.
        """
        if not self._settling:
            return
        text = self._pending.lstrip()
        blank = self._pending[: len(self._pending) - len(text)]
        indent = blank[blank.rfind("\n") + 1 :]
        if text:
            self._settling = False
            if len(indent) >= self._budget():
                indent = ""
        self._pending = indent + text


def _find_cut(window: str) -> tuple[int, int]:
    """Choose where to cut the text that starts with window (budget + 1 characters).

    Returns (end, start): the message takes text[:end] less its trailing whitespace, the rest
    is text[start:]. Newlines at the start of the rest are dropped later, by _settle_head.
    Never returns an end before which there is only whitespace.
    """
    # Only the last separator needs checking: if only whitespace precedes it, the same is
    # true of any earlier one.
    for separator in ("\n\n", "\n"):
        at = window.rfind(separator)
        if at != -1 and window[:at].strip():
            return at, at
    space = _LAST_SPACE.search(window)
    if space and window[: space.start()].strip():
        return space.start(), space.start() + 1  # drop the one separating space
    # One word longer than the budget. Only it can precede the hard cut, with at most an
    # indentation narrower than the budget (_settle_head), so the message is not whitespace.
    budget = len(window) - 1
    return budget, budget


def _fence_after(text: str, tag: str | None) -> str | None:
    """The language tag of the code block open after text, given the one open before it.

    None means outside any block. text starts a line. Lines are judged as they will appear
    in the messages (where a cut starts a new line), which keeps every message's fences
    balanced.
    """
    for line in text.split("\n"):
        content = line.lstrip(" ")
        if len(line) - len(content) <= 3 and content.startswith(_FENCE):
            tag = _language_tag(content) if tag is None else None
    return tag


def _language_tag(fence_line: str) -> str:
    """The language tag of an opening fence line without its indentation, "" if too long."""
    words = fence_line[len(_FENCE) :].split(maxsplit=1)
    tag = words[0] if words else ""
    return tag if len(tag) <= _MAX_TAG else ""
