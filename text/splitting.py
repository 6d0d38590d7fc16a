r"""Split a model's answer into Discord messages, whole or while it streams in.

The rules, in short:

* The answer is stripped of leading and trailing whitespace.
* A message holds at most ``limit`` characters (Discord counts code points, as ``len`` does).
* Text that does not fit is cut at the last paragraph break in the window, else the last line
  break, else the last whitespace, else hard at the window size. The whitespace at a cut is
  dropped; the indentation of the line after it is kept (it may be code).
* No cut, and no dropping of whitespace, splits a grapheme cluster: what a reader sees as one
  character, such as an emoji family joined by zero-width joiners, a flag (a pair of regional
  indicators), an emoji with its skin tone, or a letter with its combining accents. Clusters are
  the `regex` library's ``\X``. So a hard cut falls at the last cluster boundary in the window,
  and a whitespace character that is part of a larger cluster (a space carrying a combining
  mark, or following a prepended mark) counts as visible text, not as whitespace. Only a
  single cluster longer than a whole message (thousands of marks on one letter) is cut between
  code points, as nothing else can fit it into messages.
* Code blocks are fenced code blocks as CommonMark defines them (spec 0.31, "Fenced code
  blocks"), which Discord's renderer follows: a line of up to 3 spaces and then a run of at
  least 3 backticks or 3 tildes opens a block (a backtick run must not be followed by another
  backtick on its line: that is inline code); only a line of up to 3 spaces, then a run of the
  same character at least as long, then nothing but spaces and tabs closes it. So ```` ``` ````
  lines inside a ```` ```` ```` block are code, as in the files the bot shows (text/attachments
  fences them with a run longer than any inside).
* A cut inside a code block closes the block at the end of the message and reopens it, with
  the same fence (character and length) and its language tag, at the start of the next one, so
  each message renders on its own. The reopen line and the closing fence together take at
  most 40 characters: a tag that would make them longer is dropped, and a block whose fence is
  longer than 19 characters (which nothing but a pathological answer has) is neither closed
  nor reopened at a cut.

`ReplySplitter` does the work incrementally. `split_for_discord` is the same splitter fed the
whole answer at once, so a streamed answer ends as exactly the messages a non-streamed one gets.
"""

import re
from typing import NamedTuple

import regex

DISCORD_MESSAGE_LIMIT = 2000

# The most a reopen line and a closing fence may take together (a "```" fence with a 32-character
# tag): a longer tag is dropped and a longer fence not reopened, so they cannot eat the budget.
_MAX_REOPEN = 40
# The smallest limit leaving room for the longest reopen line, closing fence and one character.
_MIN_LIMIT = _MAX_REOPEN + 1
# The room a closing fence takes at least ("\n```"), reserved in every message.
_MIN_CLOSE = 4
# A line that may open or close a fenced code block (CommonMark): up to 3 spaces of
# indentation, a run of 3 or more backticks or tildes, and the rest of the line.
_FENCE_LINE = re.compile(r" {0,3}(`{3,}|~{3,})(.*)", re.DOTALL)
# Room a preview leaves for the caller's "still writing" marker.
_MARKER_ROOM = 2
_WHITESPACE = re.compile(r"\s")
_CLUSTER = regex.compile(r"\X")
# Matches up to the start of the last grapheme cluster: the giving back of one \X is the
# regex engine's own, so no cluster list is built.
_LAST_CLUSTER_START = regex.compile(r"\X*(?=\X)")


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
        # The code block open where pending starts; None outside a block.
        self._block: CodeBlock | None = None
        self._started = False  # a non-whitespace character of the answer has arrived
        self._settling = False  # dropping the whitespace after a cut, see _settle_head

    def feed(self, delta: str) -> list[str]:
        """Append delta to the answer; return the messages that have become final.

        A final message never changes, whatever text comes later: one is final only once the
        pending text, without trailing whitespace, is longer than any message could hold, so
        the non-streamed split cuts it too, at the same place.
        """
        self._pending += delta
        if not self._started:
            self._drop_leading_whitespace()
        self._settle_head()
        messages = []
        # Plain rstrip may drop a space that _rstrip keeps (one joined to the character before
        # it), so this length never exceeds the one finish() sees: the cut is due there too.
        while len(self._pending.rstrip()) > self._limit - len(self._reopen_prefix()):
            messages.append(self._cut())
        return messages

    def preview(self) -> str:
        """What the unfinished message should show right now.

        The reopen prefix and the pending text, with an open code block closed so it renders,
        truncated to at most limit - 2 characters so the caller can append a 2-character
        "still writing" marker. "" while there is no non-whitespace pending text.

        A truncation falls between grapheme clusters. The end of the pending text is shown as
        it has arrived, so it may be a cluster still growing (a family whose next member has
        not arrived yet); the next preview shows it whole.
        """
        room = self._budget() - _MARKER_ROOM
        while room > 0:
            body = _rstrip(self._pending[: _cluster_cut(self._pending, room)])
            if not body:
                return ""
            shown = self._enclose(body)
            # A block the body opens may take a longer closing fence than the room reserved.
            excess = len(shown) - (self._limit - _MARKER_ROOM)
            if excess <= 0:
                return shown
            room -= excess
        return ""

    def finish(self) -> list[str]:
        """End the answer: return the remaining messages, the last one closing an open block.

        Call once, after the last feed().
        """
        self._pending = _rstrip(self._pending)
        messages = []
        # Only here may the rest turn out to fit in one message: no more text can come.
        while len(self._enclose(self._pending)) > self._limit:
            messages.append(self._cut())
        if self._pending:
            messages.append(self._enclose(self._pending))
            self._pending = ""
        return messages

    def _reopen_prefix(self) -> str:
        return "" if self._block is None else self._block.reopen

    def _budget(self) -> int:
        """How much of pending the next message can hold.

        Room for a closing fence is always reserved, whether or not the cut ends up inside a
        block: that keeps the choice of cut independent of where it lands. It is the open
        block's closing fence, or a "```" one; a cut whose message opens a block with a longer
        fence is moved back to make room (_cut).
        """
        close = 0 if self._block is None else len(self._block.close)
        return self._limit - len(self._reopen_prefix()) - max(_MIN_CLOSE, close)

    def _enclose(self, body: str) -> str:
        """The message for body: reopen prefix, body, and a closing fence if a block is open."""
        block = _block_after(body, self._block)
        return self._reopen_prefix() + body + ("" if block is None else block.close)

    def _cut(self) -> str:
        """Finalise the next message from the head of pending; the rest stays pending.

        The cut looks only at pending[:budget + 2]: the window of budget + 1 characters, and
        the character after it, which tells whether the window ends inside a grapheme cluster.
        All of that has arrived whenever a cut is due (pending then holds more than budget + 4
        characters), and a cluster boundary never moves once the character after it has
        arrived, so a streamed answer is cut exactly where the whole one is, even when a
        cluster arrives split across deltas. The one code path for feed() and finish().
        """
        budget = self._budget()
        while True:
            end, start = _find_cut(self._pending[: budget + 2], budget)
            body = _rstrip(self._pending[:end])
            message = self._enclose(body)
            # The body opens a block whose closing fence is longer than the room reserved: a
            # smaller window, of text that has arrived too, leaves the room.
            excess = len(message) - self._limit
            if excess <= 0 or budget <= excess:
                break
            budget -= excess
        self._block = _block_after(body, self._block)
        self._pending = self._pending[start:]
        self._settling = True
        self._settle_head()
        return message

    def _drop_leading_whitespace(self) -> None:
        """Drop the answer's leading whitespace, as it arrives.

        The last whitespace character is held until the next character shows whether it
        carries that one (a combining mark on a space), and is kept if so.
        """
        text = self._pending.lstrip()
        if not text:
            self._pending = self._pending[-1:]
            return
        self._started = True
        self._pending = _joined_head(self._pending[: len(self._pending) - len(text)], text) + text

    def _settle_head(self) -> None:
        """Drop the whitespace that the message after a cut must not start with.

        That is the newlines and whitespace-only lines after the cut, as they arrive, and,
        once the first non-whitespace character has arrived, an indentation at least as wide
        as the budget: a hard cut in it would make a whitespace-only message. Any narrower
        indentation is kept; it may be code. So is the last whitespace character of a wide
        one if the text after it joins it in one cluster.
        """
        if not self._settling:
            return
        text = self._pending.lstrip()
        blank = self._pending[: len(self._pending) - len(text)]
        indent = blank[blank.rfind("\n") + 1 :]
        if text:
            self._settling = False
            if len(indent) >= self._budget():
                indent = _joined_head(indent, text)
        self._pending = indent + text


def _find_cut(head: str, budget: int) -> tuple[int, int]:
    """Choose where to cut the text that starts with head.

    head is budget + 2 characters of the text (all of it if shorter, which happens only once
    no more text can come): the window of budget + 1 characters and the one after, which
    tells whether the window ends inside a grapheme cluster.

    Returns (end, start): the message takes text[:end] less its trailing whitespace, the rest
    is text[start:]. Newlines at the start of the rest are dropped later, by _settle_head.
    Never returns an end before which there is only whitespace. Both are cluster boundaries
    unless the first cluster of the window is longer than the budget.
    """
    window = head[: budget + 1]
    # Only the last separator needs checking: if only whitespace precedes it, the same is
    # true of any earlier one. A line break is always a cluster boundary (a CR before it is
    # whitespace, dropped with it).
    for separator in ("\n\n", "\n"):
        at = window.rfind(separator)
        if at != -1 and window[:at].strip():
            return at, at
    # The last whitespace character that is a cluster of its own (one joined to a neighbour
    # is part of a visible character) and has text before it.
    text_from = len(window) - len(window.lstrip())
    for space in reversed(list(_WHITESPACE.finditer(window, text_from))):
        at = space.start()
        if not _joined(head[at - 1 : at + 1]) and not _joined(head[at : at + 2]):
            return at, at + 1  # drop the one separating space
    # One word longer than the budget. Only it can precede the hard cut, with at most an
    # indentation narrower than the budget (_settle_head), so the message is not whitespace.
    at = _cluster_cut(window, budget)
    if window[:at].strip():
        return at, at
    # The word's first cluster alone is longer than the budget: no cut can keep it whole.
    return budget, budget


def _cluster_cut(text: str, size: int) -> int:
    """The length of the longest prefix of text, at most size, that ends between clusters.

    text[:size + 1] must have arrived, or text must be shorter than size + 1: all of it is
    then taken. 0 if the first cluster is longer than size.
    """
    if len(text) <= size:
        return len(text)
    # The clusters of text[:size + 1]: the last one starts at or before size, and where it
    # starts is fixed, as the character after that start has arrived.
    head = text[: size + 1]
    # Segmenting from a cluster boundary gives the same clusters after it, so start from the
    # last one known without segmenting: after a whitespace character that the next one does
    # not join. Usually that is the start of the last word, not of the window.
    start = 0
    for space in reversed(list(_WHITESPACE.finditer(head, 0, size))):
        if not _joined(head[space.start() : space.start() + 2]):
            start = space.start() + 1
            break
    return _LAST_CLUSTER_START.match(head, start).end()


def _joined(pair: str) -> bool:
    """Whether pair is two characters of one grapheme cluster.

    Asked only of pairs with a whitespace character, whose joining depends on the pair alone:
    a whitespace character is no mark, joiner, regional indicator, emoji or syllable part, so
    only its neighbour can join it (a mark after it, a prepended mark before it, CR with LF).
    """
    return len(pair) == 2 and len(_CLUSTER.match(pair).group()) == 2


def _joined_head(blank: str, text: str) -> str:
    """What to keep of whitespace blank that is dropped before text: its last character if
    text's first one joins it in a cluster (a combining mark on a space), else nothing."""
    return blank[-1:] if blank and _joined(blank[-1] + text[0]) else ""


def _rstrip(text: str) -> str:
    """text without trailing whitespace, except a first whitespace character joined to the
    character before it in a cluster (as a space is to a prepended mark)."""
    kept = text.rstrip()
    if kept and len(kept) < len(text) and _joined(text[len(kept) - 1 : len(kept) + 1]):
        return text[: len(kept) + 1]
    return kept


class CodeBlock(NamedTuple):
    """A fenced code block as it is reopened after a cut."""

    fence: str  # the opening run: 3 or more backticks or tildes
    tag: str  # the info string's first word, "" if none or too long to reopen

    @property
    def reopen(self) -> str:
        """The line that reopens the block at the start of a message; "" if the fence is
        too long to reopen."""
        return f"{self.fence}{self.tag}\n" if self.close else ""

    @property
    def close(self) -> str:
        """The closing fence that ends a message inside the block; "" if too long."""
        return f"\n{self.fence}" if 2 * len(self.fence) + 2 <= _MAX_REOPEN else ""


def _block_after(text: str, block: CodeBlock | None) -> CodeBlock | None:
    """The code block open after text, given the one open before it; None outside any block.

    text starts a line. Lines are judged as they will appear in the messages (where a cut
    starts a new line), which keeps every message's fences balanced. The rules are
    CommonMark's, see the module docstring.
    """
    if "`" not in text and "~" not in text:
        return block  # the common case, found fast (a one-character search is memchr)
    for line in text.split("\n"):
        # str methods first: a regex per line would make previews of long answers slow.
        if line.lstrip(" ")[:3] not in ("```", "~~~") or not (match := _FENCE_LINE.match(line)):
            continue
        fence, info = match.groups()
        info = info.removesuffix("\r")
        if block is None:
            if fence[0] == "`" and "`" in info:
                continue  # inline code, not a fence
            words = info.split(maxsplit=1)
            tag = words[0] if words else ""
            room = _MAX_REOPEN - 2 * len(fence) - 2
            block = CodeBlock(fence, tag if len(tag) <= room else "")
        elif (
            fence[0] == block.fence[0] and len(fence) >= len(block.fence) and not info.strip(" \t")
        ):
            block = None
    return block
